#ifndef KA_VISIT_DECODE_H
#define KA_VISIT_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "ka/v1/visit.pb-c.h"
#include "ka_input.h"
#include "ka_validate.h"

/* Shared by every worker that reads the topic (no service includes another's
 * header): decoding and validation of visit events (DOMAIN.md sections 3 and 8) and
 * the pure rules of a visit (MAN class, follow-up due date), without any
 * server, so every rule is unit-testable. */

#define VISIT_MAX_CONTACTS 200
#define VISIT_MAX_NAME_LEN 500

/* Decodes and validates one message. Returns KA_OK with *out set (free with
 * ka__v1__visit_event__free_unpacked) and the event id copied to event_id,
 * or KA_ERR_INVALID with rej filled (*out may then be set too and must be
 * freed). now_ms bounds event times. */
ka_err_t visit_decode(const void *payload, size_t len, int64_t now_ms, Ka__V1__VisitEvent **out,
                      char *event_id, size_t idlen, ka_reject_t *rej);

/* Any content mode (ka_input.h): the decoder every worker reading the topic
 * uses, with the topic's configured modes. Same contract as visit_decode. */
ka_err_t visit_decode_msg(const ka_msg_t *msg, int64_t now_ms, Ka__V1__VisitEvent **out, char *event_id,
                  size_t idlen, ka_reject_t *rej);

/* The checks after decode, on an unpacked (or JSON-built) message. */
ka_err_t visit_decode_validate(const Ka__V1__VisitEvent *ev, int64_t now_ms, char *event_id, size_t idlen,
                       ka_reject_t *rej);

extern const ka_input_type_t ka_input_visit;


/* The MAN class of a reading in seed 004's notation, upper case = yes, in
 * the order Money, Authority, Need ("MAN" .. "man"). out gets 4 bytes. */
void visit_man_class(const Ka__V1__ManQualification *man, char out[4]);

/* The recommended action of a MAN class ("ideal_prospect", ...); NULL for a
 * string that is not a class. */
const char *visit_man_action(const char *man_class);

/* Days of a revisit interval (20, 40, 60, 80); 0 for UNSPECIFIED. */
int visit_interval_days(Ka__V1__RevisitInterval interval);

/* When the follow-up planned on a visit at visited_at_ms falls due, in ms:
 * visit time + interval, or the start (UTC) of the day after an explicit
 * next-visit date (the date has passed then). 0 when the plan schedules
 * nothing (give up, or no plan). The plan must have passed visit_decode. */
int64_t visit_due_ms(const Ka__V1__FollowUpPlan *plan, int64_t visited_at_ms);

/* Names stored in PostgreSQL (the CHECK constraints of visit and contact);
 * NULL for UNSPECIFIED or an unknown value. */
const char *visit_objective_name(Ka__V1__VisitObjective v);
const char *visit_role_name(Ka__V1__BuyingRole v);
const char *visit_function_name(Ka__V1__BuyingFunction v);
const char *visit_satisfaction_name(Ka__V1__Satisfaction v);
const char *visit_action_name(Ka__V1__FollowUpAction v);

#endif

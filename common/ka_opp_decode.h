#ifndef KA_OPP_DECODE_H
#define KA_OPP_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "ka/v1/opportunity.pb-c.h"
#include "ka_input.h"
#include "ka_validate.h"

/* Shared by every worker that reads the topic (no service includes another's
 * header): decoding and validation of opportunity events (DOMAIN.md sections 4 and 8),
 * without any server, so every rule is unit-testable. */

/* Max competitors on an opportunity. */
#define OPP_MAX_COMPETITORS 50

/* Decodes and validates one message. Returns KA_OK with *out set (free with
 * ka__v1__opportunity_event__free_unpacked) and the event id copied to
 * event_id, or KA_ERR_INVALID with rej filled (*out may then be set too and
 * must be freed). now_ms bounds event times. */
ka_err_t opp_decode(const void *payload, size_t len, int64_t now_ms,
                    Ka__V1__OpportunityEvent **out, char *event_id, size_t idlen,
                    ka_reject_t *rej);

/* Any content mode (ka_input.h): the decoder every worker reading the topic
 * uses, with the topic's configured modes. Same contract as opp_decode. */
ka_err_t opp_decode_msg(const ka_msg_t *msg, int64_t now_ms, Ka__V1__OpportunityEvent **out, char *event_id,
                  size_t idlen, ka_reject_t *rej);

/* The checks after decode, on an unpacked (or JSON-built) message. */
ka_err_t opp_decode_validate(const Ka__V1__OpportunityEvent *ev, int64_t now_ms, char *event_id, size_t idlen,
                       ka_reject_t *rej);

extern const ka_input_type_t ka_input_opportunity;


/* The event kind as stored in opportunity_event.kind ("created", ...). */
const char *opp_kind_name(const Ka__V1__OpportunityEvent *ev);

/* Yes-count of one assessment dimension. */
int opp_yes_count(const protobuf_c_boolean *answers, size_t n);

#endif

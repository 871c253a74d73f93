#ifndef KA_ORDER_DECODE_H
#define KA_ORDER_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "ka/v1/order.pb-c.h"
#include "ka_input.h"
#include "ka_validate.h"

/* Shared by every worker that reads the topic (no service includes another's
 * header): decoding and validation of order events (DOMAIN.md sections 6 and 8) and
 * the pure arithmetic of an order, without any server, so every rule is
 * unit-testable. */

#define ORDER_MAX_LINES 200
#define ORDER_MAX_QUANTITY_MILLI 1000000000000LL /* 10^9 units */

/* Decodes and validates one message. Returns KA_OK with *out set (free with
 * ka__v1__order_event__free_unpacked) and the event id copied to event_id,
 * or KA_ERR_INVALID with rej filled (*out may then be set too and must be
 * freed). now_ms bounds event times. */
ka_err_t order_decode(const void *payload, size_t len, int64_t now_ms, Ka__V1__OrderEvent **out,
                      char *event_id, size_t idlen, ka_reject_t *rej);

/* Any content mode (ka_input.h): the decoder every worker reading the topic
 * uses, with the topic's configured modes. Same contract as order_decode. */
ka_err_t order_decode_msg(const ka_msg_t *msg, int64_t now_ms, Ka__V1__OrderEvent **out, char *event_id,
                  size_t idlen, ka_reject_t *rej);

/* The checks after decode, on an unpacked (or JSON-built) message. */
ka_err_t order_decode_validate(const Ka__V1__OrderEvent *ev, int64_t now_ms, char *event_id, size_t idlen,
                       ka_reject_t *rej);

extern const ka_input_type_t ka_input_order;


/* A line's amount in minor units: quantity (thousandths) x unit price,
 * rounded half up to the minor unit, as the database computes it. The
 * inputs must have passed order_decode (no overflow then). */
int64_t order_line_amount(int64_t quantity_milli, int64_t unit_price_minor);

/* The order's total: the sum of its line amounts. */
int64_t order_total(const Ka__V1__OrderEvent *e);

/* When the event takes effect: booked_at for a booking, the header's time
 * for a cancellation or a return. */
int64_t order_effective_ms(const Ka__V1__OrderEvent *e);

/* Names stored in PostgreSQL; NULL for UNSPECIFIED or an unknown value. */
const char *order_status_name(Ka__V1__OrderStatus s);
const char *order_channel_name(Ka__V1__Channel c);

/* "YYYY-MM-01" of the UTC month of ms (out gets 11 bytes). */
void order_month(int64_t ms, char out[11]);

#endif

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ka_account_key.h"
#include "ka_envelope.h"
#include "ka_wire.h"
#include "ka_order_decode.h"

#define DAY_MS 86400000LL

/* An order is booked, cancelled or returned in the past; one day covers
 * clock skew and ERP systems that stamp local time by mistake. */
#define ORDER_MAX_FUTURE_MS DAY_MS

/* Products of two int64 values (quantity x price) need 127 bits; GCC and
 * Clang provide the type, __extension__ keeps -pedantic quiet about it. */
__extension__ typedef __int128 wide_t;

/* ----------------------------------------------------------------------------
 * Arithmetic
 * ------------------------------------------------------------------------- */

/* A line's amount, exact for any int64 inputs: quantity_milli x price is at
 * most 2^126 in magnitude. Rounds half up for non-negative inputs, the only
 * ones validation lets through. */
static wide_t line_amount_wide(int64_t quantity_milli, int64_t unit_price_minor)
{
    return ((wide_t)quantity_milli * unit_price_minor + 500) / 1000;
}

static int64_t saturate(wide_t v)
{
    if (v > INT64_MAX)
        return INT64_MAX;
    if (v < INT64_MIN)
        return INT64_MIN;
    return (int64_t)v;
}

/* ----------------------------------------------------------------------------
 * Field checks
 * ------------------------------------------------------------------------- */

static int known_enum(const ProtobufCEnumDescriptor *desc, int value)
{
    return value != 0 && protobuf_c_enum_descriptor_get_value(desc, value) != NULL;
}

static ka_err_t check_required_enum(ka_reject_t *rej, const char *field,
                                    const ProtobufCEnumDescriptor *desc, int value)
{
    if (known_enum(desc, value))
        return KA_OK;
    if (value == 0)
        return ka_reject(rej, KA_REASON_MISSING, "%s is required", field);
    return ka_reject(rej, KA_REASON_ENUM, "%s has unknown value %d", field, value);
}

/* A distributor order names its distributor; a direct order names none (the
 * database stores NULL there and checks the pairing). channel has been
 * checked already. */
static ka_err_t check_distributor(ka_reject_t *rej, Ka__V1__Channel channel, const char *id)
{
    if (channel == KA__V1__CHANNEL__CHANNEL_DISTRIBUTOR) {
        if (ka_is_empty(id))
            return ka_reject(rej, KA_REASON_MISSING,
                             "distributor_id is required for a distributor order");
        return ka_check_id(rej, "distributor_id", id, KA_MAX_ID_LEN);
    }
    if (!ka_is_empty(id))
        return ka_reject(rej, KA_REASON_MISSING,
                         "distributor_id must be empty for a direct order (got \"%.64s\")", id);
    return KA_OK;
}

/* The lines and their amounts. Amounts are summed in 128 bits, so neither a
 * line nor the total can overflow before it is compared with the bound.
 * status has been checked already. */
static ka_err_t check_lines(ka_reject_t *rej, Ka__V1__LineItem **lines, size_t n,
                            Ka__V1__OrderStatus status)
{
    char field[64];
    wide_t total = 0;

    if (ka_check_count(rej, "lines", n, ORDER_MAX_LINES) != KA_OK)
        return KA_ERR_INVALID;
    if (n == 0 && status == KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED)
        return ka_reject(rej, KA_REASON_MISSING, "lines: a booked order needs at least one line");
    for (size_t i = 0; i < n; i++) {
        const Ka__V1__LineItem *l = lines[i];
        snprintf(field, sizeof field, "lines[%zu].sku", i);
        if (ka_check_id(rej, field, l->sku, KA_MAX_ID_LEN) != KA_OK)
            return KA_ERR_INVALID;
        if (l->quantity_milli <= 0 || l->quantity_milli > ORDER_MAX_QUANTITY_MILLI)
            return ka_reject(rej, KA_REASON_AMOUNT,
                             "lines[%zu].quantity_milli=%lld is outside 1..%lld", i,
                             (long long)l->quantity_milli, (long long)ORDER_MAX_QUANTITY_MILLI);
        snprintf(field, sizeof field, "lines[%zu].unit_price_minor", i);
        if (ka_check_amount(rej, field, l->unit_price_minor, KA_MAX_AMOUNT_MINOR) != KA_OK)
            return KA_ERR_INVALID;
        snprintf(field, sizeof field, "lines[%zu].requirement", i);
        if (ka_check_text(rej, field, l->requirement, KA_MAX_TEXT_LEN) != KA_OK)
            return KA_ERR_INVALID;
        wide_t amount = line_amount_wide(l->quantity_milli, l->unit_price_minor);
        if (amount > KA_MAX_AMOUNT_MINOR)
            return ka_reject(rej, KA_REASON_AMOUNT,
                             "lines[%zu] amount (quantity_milli=%lld x unit_price_minor=%lld) "
                             "exceeds %lld minor units",
                             i, (long long)l->quantity_milli, (long long)l->unit_price_minor,
                             (long long)KA_MAX_AMOUNT_MINOR);
        total += amount;
    }
    /* at most 200 lines of at most 10^14 each: total fits in int64 */
    if (total > KA_MAX_AMOUNT_MINOR)
        return ka_reject(rej, KA_REASON_AMOUNT,
                         "lines: the order total %lld exceeds %lld minor units",
                         (long long)total, (long long)KA_MAX_AMOUNT_MINOR);
    return KA_OK;
}

/* ----------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------- */

KA_INPUT_DEFINE(ka_input_order, order, Ka__V1__OrderEvent, ka__v1__order_event__descriptor)

ka_err_t order_decode_validate(const Ka__V1__OrderEvent *ev, int64_t now_ms, char *event_id, size_t idlen,
                       ka_reject_t *rej)
{
    if (idlen)
        event_id[0] = '\0';
    if (ka_check_header(rej, ev->header, now_ms, ORDER_MAX_FUTURE_MS))
        return KA_ERR_INVALID;
    if (event_id && idlen)
        snprintf(event_id, idlen, "%s", ev->header->event_id);

    if (ka_check_id(rej, "order_id", ev->order_id, KA_MAX_ID_LEN) ||
        ka_check_account_ref(rej, ev->account) ||
        ka_check_id(rej, "rep_id", ev->rep_id, KA_MAX_ID_LEN) ||
        ka_check_optional_id(rej, "opportunity_id", ev->opportunity_id, KA_MAX_ID_LEN) ||
        check_required_enum(rej, "channel", &ka__v1__channel__descriptor, ev->channel) ||
        check_distributor(rej, ev->channel, ev->distributor_id) ||
        ka_check_optional_id(rej, "ship_to_region", ev->ship_to_region, KA_MAX_ID_LEN) ||
        check_required_enum(rej, "status", &ka__v1__order_status__descriptor, ev->status) ||
        ka_check_time(rej, "booked_at_ms", ev->booked_at_ms, now_ms, ORDER_MAX_FUTURE_MS) ||
        check_lines(rej, ev->lines, ev->n_lines, ev->status))
        return KA_ERR_INVALID;
    return KA_OK;
}

/* ----------------------------------------------------------------------------
 * Pure rules
 * ------------------------------------------------------------------------- */

/* Out-of-range results of unvalidated inputs saturate at the int64 bounds. */
int64_t order_line_amount(int64_t quantity_milli, int64_t unit_price_minor)
{
    return saturate(line_amount_wide(quantity_milli, unit_price_minor));
}

/* 0 for NULL; saturates like order_line_amount. */
int64_t order_total(const Ka__V1__OrderEvent *e)
{
    wide_t total = 0;

    if (!e)
        return 0;
    for (size_t i = 0; i < e->n_lines; i++)
        total += line_amount_wide(e->lines[i]->quantity_milli, e->lines[i]->unit_price_minor);
    return saturate(total);
}

/* 0 for a cancellation or return without a header (not a decoded event). */
int64_t order_effective_ms(const Ka__V1__OrderEvent *e)
{
    if (e->status == KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED)
        return e->booked_at_ms;
    return e->header ? e->header->occurred_at_ms : 0;
}

const char *order_status_name(Ka__V1__OrderStatus s)
{
    switch (s) {
    case KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED: return "booked";
    case KA__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED: return "cancelled";
    case KA__V1__ORDER_STATUS__ORDER_STATUS_RETURNED: return "returned";
    default: return NULL;
    }
}

const char *order_channel_name(Ka__V1__Channel c)
{
    switch (c) {
    case KA__V1__CHANNEL__CHANNEL_DIRECT: return "direct";
    case KA__V1__CHANNEL__CHANNEL_DISTRIBUTOR: return "distributor";
    default: return NULL;
    }
}

/* Writes "" when the year does not have four digits (never for a decoded
 * event). */
void order_month(int64_t ms, char out[11])
{
    struct tm tm;
    /* floor division, so the last millisecond before a month stays in it
     * even before 1970 */
    int64_t sec = ms / 1000 - (ms % 1000 < 0 ? 1 : 0);
    time_t t = (time_t)sec;

    if ((int64_t)t != sec || !gmtime_r(&t, &tm) || strftime(out, 11, "%Y-%m-01", &tm) != 10)
        out[0] = '\0';
}

/* Validation of order events and the pure arithmetic of an order (DOMAIN.md
 * sections 6 and 8), without servers. Epoch values below were computed
 * independently with `date -u -d <time> +%s`, not with the code under test;
 * expected amounts by hand (and python3 integer arithmetic for the large ones). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka_envelope.h"
#include "ka_order_decode.h"

#define NOW 1773135000000LL    /* 2026-03-10T09:30:00Z */
#define BOOKED 1773127800000LL /* 2026-03-10T07:30:00Z */
#define HOUR 3600000LL
#define VALID_USCC "91350100M000100Y43"
#define NAME_MAX_LEN KA_MAX_ACCOUNT_NAME_LEN

typedef struct fixture {
    Ka__V1__EventHeader h;
    Ka__V1__AccountRef a;
    Ka__V1__LineItem l[2];
    Ka__V1__LineItem *lp[2];
    Ka__V1__OrderEvent e;
} fixture_t;

/* A complete, valid direct booking of two lines:
 *   1.5 units x 333    = 499.5  -> 500
 *   2 units   x 125000 = 250000
 * total 250500. */
static void valid_direct(fixture_t *f)
{
    static const Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    static const Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    static const Ka__V1__LineItem l = KA__V1__LINE_ITEM__INIT;
    static const Ka__V1__OrderEvent e = KA__V1__ORDER_EVENT__INIT;

    f->h = h;
    f->h.event_id = "o-1";
    f->h.occurred_at_ms = NOW - 1000;
    f->h.producer = "erp";
    f->h.correlation_id = "deal-42";
    f->a = a;
    f->a.name = "Acme 精密机械";
    f->a.unified_social_credit_code = VALID_USCC;
    f->l[0] = l;
    f->l[0].sku = "SKU-100";
    f->l[0].quantity_milli = 1500;
    f->l[0].unit_price_minor = 333;
    f->l[0].requirement = "含安装调试";
    f->l[1] = l;
    f->l[1].sku = "SKU-200";
    f->l[1].quantity_milli = 2000;
    f->l[1].unit_price_minor = 125000;
    f->lp[0] = &f->l[0];
    f->lp[1] = &f->l[1];
    f->e = e;
    f->e.header = &f->h;
    f->e.order_id = "SO-2026-0001";
    f->e.account = &f->a;
    f->e.rep_id = "rep-1";
    f->e.opportunity_id = "opp-1";
    f->e.channel = KA__V1__CHANNEL__CHANNEL_DIRECT;
    f->e.ship_to_region = "CN-FJ";
    f->e.n_lines = 2;
    f->e.lines = f->lp;
    f->e.status = KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED;
    f->e.booked_at_ms = BOOKED;
}

/* The same order through a distributor. */
static void valid_distributor(fixture_t *f)
{
    valid_direct(f);
    f->e.channel = KA__V1__CHANNEL__CHANNEL_DISTRIBUTOR;
    f->e.distributor_id = "dist-7";
}

static uint8_t *pack(const Ka__V1__OrderEvent *e, size_t *len)
{
    *len = ka__v1__order_event__get_packed_size(e);
    uint8_t *buf = malloc(*len + 1);
    assert_non_null(buf);
    ka__v1__order_event__pack(e, buf);
    return buf;
}

/* Packs the event and runs the decoder at `now`; returns its verdict. */
static ka_err_t decode_at(const Ka__V1__OrderEvent *e, int64_t now, ka_reject_t *rej)
{
    size_t len;
    uint8_t *buf = pack(e, &len);
    Ka__V1__OrderEvent *out = NULL;
    char id[80];
    memset(rej, 0, sizeof *rej);
    ka_err_t rc = order_decode(buf, len, now, &out, id, sizeof id, rej);
    if (out)
        ka__v1__order_event__free_unpacked(out, NULL);
    free(buf);
    if (rc == KA_OK)
        assert_string_equal(id, e->header->event_id);
    return rc;
}

static ka_err_t decode(const Ka__V1__OrderEvent *e, ka_reject_t *rej)
{
    return decode_at(e, NOW, rej);
}

static char *filled(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* ----------------------------------------------------------------------------
 * Mutations of a valid order
 * ------------------------------------------------------------------------- */

static void no_header(fixture_t *f) { f->e.header = NULL; }
static void no_event_id(fixture_t *f) { f->h.event_id = ""; }
static void event_id_with_space(fixture_t *f) { f->h.event_id = "o 1"; }
static void event_id_too_long(fixture_t *f)
{
    static char s[KA_MAX_ID_LEN + 2];
    f->h.event_id = filled(s, 'e', KA_MAX_ID_LEN + 1);
}
static void no_occurred_at(fixture_t *f) { f->h.occurred_at_ms = 0; }
static void occurred_at_in_seconds(fixture_t *f) { f->h.occurred_at_ms = NOW / 1000; }
static void occurred_at_two_days_ahead(fixture_t *f) { f->h.occurred_at_ms = NOW + 48 * HOUR; }
static void producer_bad_utf8(fixture_t *f) { f->h.producer = "er\xff"; }
static void correlation_id_too_long(fixture_t *f)
{
    static char s[202];
    f->h.correlation_id = filled(s, 'x', 201);
}
static void no_order_id(fixture_t *f) { f->e.order_id = NULL; }
static void order_id_not_ascii(fixture_t *f) { f->e.order_id = "订单-1"; }
static void order_id_too_long(fixture_t *f)
{
    static char s[KA_MAX_ID_LEN + 2];
    f->e.order_id = filled(s, 'o', KA_MAX_ID_LEN + 1);
}
static void no_account(fixture_t *f) { f->e.account = NULL; }
static void empty_account(fixture_t *f)
{
    f->a.name = "";
    f->a.unified_social_credit_code = NULL;
}
static void account_id_with_space(fixture_t *f) { f->a.account_id = "acct 1"; }
static void account_name_too_long(fixture_t *f)
{
    static char s[NAME_MAX_LEN + 2];
    f->a.name = filled(s, 'n', NAME_MAX_LEN + 1);
}
static void account_name_bad_utf8(fixture_t *f) { f->a.name = "Acme \xe4\xb8"; }
static void account_name_blank(fixture_t *f)
{
    f->a.name = "  \t ";
    f->a.unified_social_credit_code = NULL;
}
static void malformed_credit_code(fixture_t *f)
{
    f->a.unified_social_credit_code = "91350100M000100Y44"; /* wrong check character */
}
static void malformed_credit_code_beside_id(fixture_t *f)
{
    f->a.account_id = "acct-1";
    f->a.unified_social_credit_code = "1234";
}
static void no_rep(fixture_t *f) { f->e.rep_id = NULL; }
static void rep_too_long(fixture_t *f)
{
    static char s[KA_MAX_ID_LEN + 2];
    f->e.rep_id = filled(s, 'r', KA_MAX_ID_LEN + 1);
}
static void opportunity_id_with_space(fixture_t *f) { f->e.opportunity_id = "opp 1"; }
static void no_channel(fixture_t *f) { f->e.channel = 0; }
static void unknown_channel(fixture_t *f) { f->e.channel = (Ka__V1__Channel)3; }
static void distributor_without_id(fixture_t *f)
{
    f->e.channel = KA__V1__CHANNEL__CHANNEL_DISTRIBUTOR;
    f->e.distributor_id = "";
}
static void distributor_id_with_space(fixture_t *f)
{
    f->e.channel = KA__V1__CHANNEL__CHANNEL_DISTRIBUTOR;
    f->e.distributor_id = "dist 7";
}
static void direct_with_distributor_id(fixture_t *f) { f->e.distributor_id = "dist-7"; }
static void region_with_space(fixture_t *f) { f->e.ship_to_region = "CN FJ"; }
static void region_too_long(fixture_t *f)
{
    static char s[KA_MAX_ID_LEN + 2];
    f->e.ship_to_region = filled(s, 'R', KA_MAX_ID_LEN + 1);
}
static void no_status(fixture_t *f) { f->e.status = 0; }
static void unknown_status(fixture_t *f) { f->e.status = (Ka__V1__OrderStatus)4; }
static void no_booked_at(fixture_t *f) { f->e.booked_at_ms = 0; }
static void booked_before_2000(fixture_t *f) { f->e.booked_at_ms = 946684799999LL; }
static void booked_two_days_ahead(fixture_t *f) { f->e.booked_at_ms = NOW + 48 * HOUR; }
static void too_many_lines(fixture_t *f)
{
    static Ka__V1__LineItem *many[ORDER_MAX_LINES + 1];
    for (size_t i = 0; i < ORDER_MAX_LINES + 1; i++)
        many[i] = &f->l[1];
    f->e.n_lines = ORDER_MAX_LINES + 1;
    f->e.lines = many;
}
static void booked_without_lines(fixture_t *f)
{
    f->e.n_lines = 0;
    f->e.lines = NULL;
}
static void line_without_sku(fixture_t *f) { f->l[1].sku = ""; }
static void sku_with_space(fixture_t *f) { f->l[0].sku = "SKU 100"; }
static void sku_too_long(fixture_t *f)
{
    static char s[KA_MAX_ID_LEN + 2];
    f->l[1].sku = filled(s, 's', KA_MAX_ID_LEN + 1);
}
static void zero_quantity(fixture_t *f) { f->l[0].quantity_milli = 0; }
static void negative_quantity(fixture_t *f) { f->l[1].quantity_milli = -1000; }
static void quantity_above_max(fixture_t *f) { f->l[0].quantity_milli = ORDER_MAX_QUANTITY_MILLI + 1; }
static void negative_price(fixture_t *f) { f->l[1].unit_price_minor = -1; }
static void price_above_max(fixture_t *f) { f->l[0].unit_price_minor = KA_MAX_AMOUNT_MINOR + 1; }
static void requirement_too_long(fixture_t *f)
{
    static char s[KA_MAX_TEXT_LEN + 2];
    f->l[0].requirement = filled(s, 'q', KA_MAX_TEXT_LEN + 1);
}
static void requirement_bad_utf8(fixture_t *f) { f->l[1].requirement = "ok \xf8\x88\x80\x80\x80"; }
/* 10^9 units x 100001 minor = 100001000000000 > 10^14 */
static void line_amount_over_max(fixture_t *f)
{
    f->l[1].quantity_milli = ORDER_MAX_QUANTITY_MILLI;
    f->l[1].unit_price_minor = 100001;
}
/* each bound at its maximum: 10^23 minor, far beyond int64 */
static void line_with_both_bounds_at_max(fixture_t *f)
{
    f->l[0].quantity_milli = ORDER_MAX_QUANTITY_MILLI;
    f->l[0].unit_price_minor = KA_MAX_AMOUNT_MINOR;
}
/* 5*10^13 + 5*10^13 is the bound; the first line adds 500 to it */
static void total_over_max(fixture_t *f)
{
    static Ka__V1__LineItem half[2], *hp[3];
    static const Ka__V1__LineItem l = KA__V1__LINE_ITEM__INIT;
    for (int i = 0; i < 2; i++) {
        half[i] = l;
        half[i].sku = "SKU-BIG";
        half[i].quantity_milli = 1000;
        half[i].unit_price_minor = 50000000000000LL;
        hp[i + 1] = &half[i];
    }
    hp[0] = &f->l[0];
    f->e.n_lines = 3;
    f->e.lines = hp;
}

typedef struct reject_case {
    const char *name;
    void (*mutate)(fixture_t *f);
    const char *reason;
    const char *field; /* the detail must name it */
} reject_case_t;

static const reject_case_t reject_cases[] = {
    {"no header", no_header, KA_REASON_MISSING, "header"},
    {"no event id", no_event_id, KA_REASON_MISSING, "header.event_id"},
    {"event id with a space", event_id_with_space, KA_REASON_BAD_ID, "header.event_id"},
    {"event id of 65 bytes", event_id_too_long, KA_REASON_TOO_LONG, "header.event_id"},
    {"no occurred_at", no_occurred_at, KA_REASON_MISSING, "header.occurred_at_ms"},
    {"occurred_at in seconds", occurred_at_in_seconds, KA_REASON_TIME, "header.occurred_at_ms"},
    {"occurred_at 2 days ahead", occurred_at_two_days_ahead, KA_REASON_TIME,
     "header.occurred_at_ms"},
    {"producer not UTF-8", producer_bad_utf8, KA_REASON_UTF8, "header.producer"},
    {"correlation id too long", correlation_id_too_long, KA_REASON_TOO_LONG,
     "header.correlation_id"},
    {"no order id", no_order_id, KA_REASON_MISSING, "order_id"},
    {"order id not ASCII", order_id_not_ascii, KA_REASON_BAD_ID, "order_id"},
    {"order id of 65 bytes", order_id_too_long, KA_REASON_TOO_LONG, "order_id"},
    {"no account", no_account, KA_REASON_ACCOUNT, "account"},
    {"account without id, code or name", empty_account, KA_REASON_ACCOUNT, "account"},
    {"account id with a space", account_id_with_space, KA_REASON_BAD_ID, "account.account_id"},
    {"account name too long", account_name_too_long, KA_REASON_TOO_LONG, "account.name"},
    {"account name not UTF-8", account_name_bad_utf8, KA_REASON_UTF8, "account.name"},
    {"account name blank", account_name_blank, KA_REASON_ACCOUNT, "account name"},
    {"malformed credit code", malformed_credit_code, KA_REASON_CREDIT_CODE,
     "unified_social_credit_code"},
    {"malformed credit code beside an id", malformed_credit_code_beside_id,
     KA_REASON_CREDIT_CODE, "unified_social_credit_code"},
    {"no rep", no_rep, KA_REASON_MISSING, "rep_id"},
    {"rep id too long", rep_too_long, KA_REASON_TOO_LONG, "rep_id"},
    {"opportunity id with a space", opportunity_id_with_space, KA_REASON_BAD_ID,
     "opportunity_id"},
    {"no channel", no_channel, KA_REASON_MISSING, "channel"},
    {"unknown channel", unknown_channel, KA_REASON_ENUM, "channel"},
    {"distributor order without distributor", distributor_without_id, KA_REASON_MISSING,
     "distributor_id is required for a distributor order"},
    {"distributor id with a space", distributor_id_with_space, KA_REASON_BAD_ID,
     "distributor_id"},
    {"direct order naming a distributor", direct_with_distributor_id, KA_REASON_MISSING,
     "distributor_id must be empty for a direct order"},
    {"ship-to region with a space", region_with_space, KA_REASON_BAD_ID, "ship_to_region"},
    {"ship-to region too long", region_too_long, KA_REASON_TOO_LONG, "ship_to_region"},
    {"no status", no_status, KA_REASON_MISSING, "status"},
    {"unknown status", unknown_status, KA_REASON_ENUM, "status"},
    {"no booked_at", no_booked_at, KA_REASON_MISSING, "booked_at_ms"},
    {"booked before 2000", booked_before_2000, KA_REASON_TIME, "booked_at_ms"},
    {"booked 2 days ahead", booked_two_days_ahead, KA_REASON_TIME, "booked_at_ms"},
    {"201 lines", too_many_lines, KA_REASON_LIST, "lines"},
    {"booked without lines", booked_without_lines, KA_REASON_MISSING, "at least one line"},
    {"line without sku", line_without_sku, KA_REASON_MISSING, "lines[1].sku"},
    {"sku with a space", sku_with_space, KA_REASON_BAD_ID, "lines[0].sku"},
    {"sku too long", sku_too_long, KA_REASON_TOO_LONG, "lines[1].sku"},
    {"zero quantity", zero_quantity, KA_REASON_AMOUNT, "lines[0].quantity_milli"},
    {"negative quantity", negative_quantity, KA_REASON_AMOUNT, "lines[1].quantity_milli"},
    {"quantity above 10^9 units", quantity_above_max, KA_REASON_AMOUNT,
     "lines[0].quantity_milli"},
    {"negative price", negative_price, KA_REASON_AMOUNT, "lines[1].unit_price_minor"},
    {"price above the amount bound", price_above_max, KA_REASON_AMOUNT,
     "lines[0].unit_price_minor"},
    {"requirement too long", requirement_too_long, KA_REASON_TOO_LONG, "lines[0].requirement"},
    {"requirement not UTF-8", requirement_bad_utf8, KA_REASON_UTF8, "lines[1].requirement"},
    {"line amount over the bound", line_amount_over_max, KA_REASON_AMOUNT, "lines[1] amount"},
    {"quantity and price both at their bounds", line_with_both_bounds_at_max, KA_REASON_AMOUNT,
     "lines[0] amount"},
    {"order total over the bound", total_over_max, KA_REASON_AMOUNT, "order total"},
};

/* ----------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------- */

static void a_valid_direct_order_decodes_with_its_event_id(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    Ka__V1__OrderEvent *out = NULL;
    char id[80] = "stale";
    size_t len;

    valid_direct(&f);
    uint8_t *buf = pack(&f.e, &len);
    assert_int_equal(order_decode(buf, len, NOW, &out, id, sizeof id, &rej), KA_OK);
    assert_non_null(out);
    assert_string_equal(id, "o-1");
    assert_string_equal(out->order_id, "SO-2026-0001");
    assert_string_equal(out->account->name, "Acme 精密机械");
    assert_string_equal(order_channel_name(out->channel), "direct");
    assert_string_equal(order_status_name(out->status), "booked");
    assert_string_equal(out->distributor_id, "");
    assert_int_equal(out->n_lines, 2);
    assert_string_equal(out->lines[0]->requirement, "含安装调试");
    assert_int_equal(order_line_amount(out->lines[0]->quantity_milli,
                                       out->lines[0]->unit_price_minor),
                     500);
    assert_int_equal(order_total(out), 250500);
    assert_int_equal(order_effective_ms(out), BOOKED);
    ka__v1__order_event__free_unpacked(out, NULL);

    /* the caller may not want the event id */
    assert_int_equal(order_decode(buf, len, NOW, &out, NULL, 0, &rej), KA_OK);
    ka__v1__order_event__free_unpacked(out, NULL);
    free(buf);
}

static void a_valid_distributor_order_decodes(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    Ka__V1__OrderEvent *out = NULL;
    char id[80];
    size_t len;

    valid_distributor(&f);
    uint8_t *buf = pack(&f.e, &len);
    assert_int_equal(order_decode(buf, len, NOW, &out, id, sizeof id, &rej), KA_OK);
    assert_string_equal(order_channel_name(out->channel), "distributor");
    assert_string_equal(out->distributor_id, "dist-7");
    assert_string_equal(out->ship_to_region, "CN-FJ");
    ka__v1__order_event__free_unpacked(out, NULL);
    free(buf);
}

static void optional_parts_may_be_left_out(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;

    valid_direct(&f);
    f.h.producer = NULL;
    f.h.correlation_id = NULL;
    f.e.opportunity_id = NULL;
    f.e.ship_to_region = NULL;
    f.l[0].requirement = NULL;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_distributor(&f); /* a distributor order without a region still decodes */
    f.e.ship_to_region = "";
    assert_int_equal(decode(&f.e, &rej), KA_OK);
}

static void the_account_may_be_named_by_id_code_or_name(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;

    valid_direct(&f);
    f.a.name = NULL;
    f.a.unified_social_credit_code = NULL;
    f.a.account_id = "acct-1";
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_direct(&f);
    f.a.name = NULL;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_direct(&f);
    f.a.unified_social_credit_code = NULL;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_direct(&f);
    f.a.unified_social_credit_code = "91350100m000100y43"; /* lower case is folded */
    assert_int_equal(decode(&f.e, &rej), KA_OK);
}

static void cancellations_and_returns_need_no_lines(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;

    valid_direct(&f);
    f.e.status = KA__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED;
    f.e.n_lines = 0;
    f.e.lines = NULL;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_distributor(&f);
    f.e.status = KA__V1__ORDER_STATUS__ORDER_STATUS_RETURNED;
    f.e.n_lines = 0;
    f.e.lines = NULL;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    /* but their lines are checked when they carry some */
    valid_direct(&f);
    f.e.status = KA__V1__ORDER_STATUS__ORDER_STATUS_RETURNED;
    f.l[1].quantity_milli = 0;
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_AMOUNT);
}

static void boundaries_that_pass(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    Ka__V1__LineItem *many[ORDER_MAX_LINES];
    char id[KA_MAX_ID_LEN + 1];

    valid_direct(&f); /* one day of clock skew is allowed on both times */
    f.h.occurred_at_ms = NOW + 23 * HOUR;
    f.e.booked_at_ms = NOW + 23 * HOUR;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_direct(&f); /* the first millisecond of 2000 */
    f.e.booked_at_ms = 946684800000LL;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_direct(&f);
    for (size_t i = 0; i < ORDER_MAX_LINES; i++)
        many[i] = &f.l[i % 2];
    f.e.n_lines = ORDER_MAX_LINES;
    f.e.lines = many;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_distributor(&f); /* ids of exactly 64 bytes */
    f.e.order_id = filled(id, 'o', KA_MAX_ID_LEN);
    f.e.distributor_id = id;
    f.e.ship_to_region = id;
    f.l[0].sku = id;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_direct(&f); /* 0.001 units, and a free line */
    f.l[0].quantity_milli = 1;
    f.l[1].unit_price_minor = 0;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_direct(&f); /* 10^9 units x 1000.00 = exactly the bound */
    f.l[0].quantity_milli = ORDER_MAX_QUANTITY_MILLI;
    f.l[0].unit_price_minor = 100000;
    f.e.n_lines = 1;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_direct(&f); /* one unit at the largest price: exactly the bound */
    f.l[0].quantity_milli = 1000;
    f.l[0].unit_price_minor = KA_MAX_AMOUNT_MINOR;
    f.e.n_lines = 1;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_direct(&f); /* two halves of the bound: the total is exactly the bound */
    f.l[0].quantity_milli = f.l[1].quantity_milli = 1000;
    f.l[0].unit_price_minor = f.l[1].unit_price_minor = 50000000000000LL;
    assert_int_equal(decode(&f.e, &rej), KA_OK);
}

static void each_bad_field_gives_its_reason(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;

    for (size_t i = 0; i < sizeof reject_cases / sizeof reject_cases[0]; i++) {
        const reject_case_t *c = &reject_cases[i];
        valid_direct(&f);
        c->mutate(&f);
        ka_err_t rc = decode(&f.e, &rej);
        if (rc != KA_ERR_INVALID)
            fail_msg("%s: accepted, expected %s", c->name, c->reason);
        if (strcmp(rej.reason, c->reason) != 0)
            fail_msg("%s: reason %s (%s), expected %s", c->name, rej.reason, rej.detail,
                     c->reason);
        if (!strstr(rej.detail, c->field))
            fail_msg("%s: detail \"%s\" does not name %s", c->name, rej.detail, c->field);
    }
}

static void a_distributor_order_is_checked_the_same_way(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;

    /* every case but the channel pairing, on the distributor variant */
    for (size_t i = 0; i < sizeof reject_cases / sizeof reject_cases[0]; i++) {
        const reject_case_t *c = &reject_cases[i];
        if (c->mutate == direct_with_distributor_id || c->mutate == no_channel ||
            c->mutate == unknown_channel)
            continue;
        valid_distributor(&f);
        c->mutate(&f);
        if (decode(&f.e, &rej) != KA_ERR_INVALID || strcmp(rej.reason, c->reason) != 0)
            fail_msg("%s (distributor): got %s (%s), expected %s", c->name, rej.reason,
                     rej.detail, c->reason);
    }
}

static void invalid_utf8_is_rejected_wherever_text_is_free(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\xe4\xb8",         /* truncated 3-byte sequence */
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "Acme\xff",
    };
    fixture_t f;
    ka_reject_t rej;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        valid_direct(&f);
        f.a.name = (char *)bad[i];
        assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
        assert_string_equal(rej.reason, KA_REASON_UTF8);
        assert_non_null(strstr(rej.detail, "account.name"));

        valid_direct(&f);
        f.l[0].requirement = (char *)bad[i];
        assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
        assert_string_equal(rej.reason, KA_REASON_UTF8);
        assert_non_null(strstr(rej.detail, "lines[0].requirement"));

        valid_direct(&f);
        f.h.producer = (char *)bad[i];
        assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
        assert_string_equal(rej.reason, KA_REASON_UTF8);
        assert_non_null(strstr(rej.detail, "header.producer"));

        /* ids allow printable ASCII only, so the same bytes are a bad id */
        valid_direct(&f);
        f.l[1].sku = (char *)bad[i];
        assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
        assert_string_equal(rej.reason, KA_REASON_BAD_ID);
        assert_non_null(strstr(rej.detail, "lines[1].sku"));
    }
}

static void garbage_and_empty_payloads_are_decode_failures(void **state)
{
    (void)state;
    static const uint8_t junk[] = {0xff, 0xff, 0x01};
    static Ka__V1__OrderEvent stale;
    Ka__V1__OrderEvent *out = &stale; /* the decoder must reset it */
    ka_reject_t rej;
    char id[80] = "stale";

    assert_int_equal(order_decode(junk, sizeof junk, NOW, &out, id, sizeof id, &rej),
                     KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_null(out);
    assert_string_equal(id, "");

    out = &stale;
    assert_int_equal(order_decode(junk, 0, NOW, &out, id, sizeof id, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_null(out);

    assert_int_equal(order_decode(NULL, 0, NOW, &out, id, sizeof id, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_null(out);
}

static void a_truncated_message_is_a_decode_failure(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    Ka__V1__OrderEvent *out = NULL;
    char id[80];
    size_t len;

    valid_direct(&f);
    uint8_t *buf = pack(&f.e, &len);
    /* booked_at_ms (field 11) is packed last: one byte short cuts its varint */
    assert_int_equal(order_decode(buf, len - 1, NOW, &out, id, sizeof id, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_null(out);
    /* the header's tag and length without its body */
    assert_int_equal(order_decode(buf, 2, NOW, &out, id, sizeof id, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_null(out);
    /* the whole message still decodes */
    assert_int_equal(order_decode(buf, len, NOW, &out, id, sizeof id, &rej), KA_OK);
    ka__v1__order_event__free_unpacked(out, NULL);
    free(buf);
}

static void a_rejected_event_keeps_its_event_id_for_the_dead_letter(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    Ka__V1__OrderEvent *out = NULL;
    char id[80] = "stale";
    size_t len;

    valid_direct(&f);
    f.e.rep_id = NULL;
    uint8_t *buf = pack(&f.e, &len);
    assert_int_equal(order_decode(buf, len, NOW, &out, id, sizeof id, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_MISSING);
    assert_non_null(out); /* the caller frees it */
    assert_string_equal(id, "o-1");
    ka__v1__order_event__free_unpacked(out, NULL);
    free(buf);
}

/* ----------------------------------------------------------------------------
 * Arithmetic
 * ------------------------------------------------------------------------- */

static void line_amounts_round_half_up_to_the_minor_unit(void **state)
{
    (void)state;
    static const struct {
        int64_t q, p, amount;
    } rows[] = {
        {1500, 333, 500},     /* 1.5 x 333 = 499.5 */
        {1499, 333, 499},     /* 499.167 */
        {1, 1, 0},            /* 0.001 */
        {499, 1, 0},          /* 0.499 */
        {500, 1, 1},          /* 0.5 */
        {1000, 0, 0},         /* a free line */
        {2000, 125000, 250000},
        {333, 3, 1},          /* 0.999 */
        {2500, 1999, 4998},   /* 4997.5 */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (order_line_amount(rows[i].q, rows[i].p) != rows[i].amount)
            fail_msg("%lld x %lld: %lld, expected %lld", (long long)rows[i].q,
                     (long long)rows[i].p, (long long)order_line_amount(rows[i].q, rows[i].p),
                     (long long)rows[i].amount);
}

static void large_amounts_do_not_overflow(void **state)
{
    (void)state;
    /* 10^12 x 10^5 / 1000 = 10^14: both bounds meet at the amount bound */
    assert_int_equal(order_line_amount(ORDER_MAX_QUANTITY_MILLI, 100000), KA_MAX_AMOUNT_MINOR);
    assert_int_equal(order_line_amount(1000, KA_MAX_AMOUNT_MINOR), KA_MAX_AMOUNT_MINOR);
    /* 999999999999 x 100000 / 1000 = 99999999999900 */
    assert_int_equal(order_line_amount(ORDER_MAX_QUANTITY_MILLI - 1, 100000), 99999999999900LL);
    /* 10^12 x 10^14 = 10^26 needs 87 bits; 10^23 minor is past int64, so
     * the result (of inputs order_decode rejects) saturates, never wraps */
    assert_int_equal(order_line_amount(ORDER_MAX_QUANTITY_MILLI, KA_MAX_AMOUNT_MINOR), INT64_MAX);
    assert_int_equal(order_line_amount(INT64_MAX, INT64_MAX), INT64_MAX);
    assert_int_equal(order_line_amount(INT64_MIN, INT64_MAX), INT64_MIN);
    /* 9223372036854775807 x 1 / 1000, rounded: 9223372036854776 */
    assert_int_equal(order_line_amount(INT64_MAX, 1), 9223372036854776LL);
    /* 3037000499 x 3037000499 = 9223372030926249001 fits; x 4 does not:
     * 4 x 9223372030926249001 / 1000 = 36893488123704996.004 */
    assert_int_equal(order_line_amount(4 * 3037000499LL, 3037000499LL), 36893488123704996LL);
}

static void the_total_is_the_sum_of_the_line_amounts(void **state)
{
    (void)state;
    fixture_t f;
    static Ka__V1__LineItem big, *many[ORDER_MAX_LINES];
    static const Ka__V1__LineItem l = KA__V1__LINE_ITEM__INIT;

    valid_direct(&f);
    assert_int_equal(order_total(&f.e), 500 + 250000);
    f.e.n_lines = 1;
    assert_int_equal(order_total(&f.e), 500);
    f.e.n_lines = 0;
    assert_int_equal(order_total(&f.e), 0);
    assert_int_equal(order_total(NULL), 0);

    /* rounding is per line: three lines of 0.5 are 3, not round(1.5) = 2 */
    f.l[0].quantity_milli = 500;
    f.l[0].unit_price_minor = 1;
    Ka__V1__LineItem *halves[3] = {&f.l[0], &f.l[0], &f.l[0]};
    f.e.lines = halves;
    f.e.n_lines = 3;
    assert_int_equal(order_total(&f.e), 3);

    /* 200 lines at the bound: 2 x 10^16, still exact */
    big = l;
    big.sku = "SKU-BIG";
    big.quantity_milli = 1000;
    big.unit_price_minor = KA_MAX_AMOUNT_MINOR;
    for (size_t i = 0; i < ORDER_MAX_LINES; i++)
        many[i] = &big;
    f.e.lines = many;
    f.e.n_lines = ORDER_MAX_LINES;
    assert_int_equal(order_total(&f.e), 20000000000000000LL);
    /* and 200 lines beyond any bound saturate rather than wrap */
    big.quantity_milli = INT64_MAX;
    big.unit_price_minor = INT64_MAX;
    assert_int_equal(order_total(&f.e), INT64_MAX);
}

/* ----------------------------------------------------------------------------
 * Time
 * ------------------------------------------------------------------------- */

static void a_booking_takes_effect_when_booked_others_when_they_happen(void **state)
{
    (void)state;
    fixture_t f;

    valid_direct(&f);
    f.h.occurred_at_ms = NOW - 1000;
    assert_int_equal(order_effective_ms(&f.e), BOOKED);
    f.e.status = KA__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED;
    assert_int_equal(order_effective_ms(&f.e), NOW - 1000);
    f.e.status = KA__V1__ORDER_STATUS__ORDER_STATUS_RETURNED;
    assert_int_equal(order_effective_ms(&f.e), NOW - 1000);
    f.e.header = NULL;
    assert_int_equal(order_effective_ms(&f.e), 0);
}

static void months_start_and_end_on_utc_boundaries(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *month;
    } rows[] = {
        {1772323200000LL - 1, "2026-02-01"}, /* 2026-02-28T23:59:59.999Z */
        {1772323200000LL, "2026-03-01"},     /* 2026-03-01T00:00:00Z */
        {1772409600000LL, "2026-03-01"},     /* 2026-03-02T00:00:00Z */
        {BOOKED, "2026-03-01"},
        {1775001600000LL - 1, "2026-03-01"}, /* 2026-03-31T23:59:59.999Z */
        {1775001600000LL, "2026-04-01"},     /* 2026-04-01T00:00:00Z */
        {1798761600000LL - 1, "2026-12-01"}, /* 2026-12-31T23:59:59.999Z */
        {1798761600000LL, "2027-01-01"},     /* 2027-01-01T00:00:00Z */
        {1835395200000LL, "2028-02-01"},     /* 2028-02-29T00:00:00Z */
        {1835481600000LL - 1, "2028-02-01"}, /* 2028-02-29T23:59:59.999Z */
        {1835481600000LL, "2028-03-01"},     /* 2028-03-01T00:00:00Z */
        {946684800000LL, "2000-01-01"},      /* 2000-01-01T00:00:00Z */
    };
    char out[11];

    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        memset(out, 'x', sizeof out);
        order_month(rows[i].ms, out);
        if (strcmp(out, rows[i].month) != 0)
            fail_msg("%lld: %s, expected %s", (long long)rows[i].ms, out, rows[i].month);
    }
    /* the last millisecond before 1970 stays in December */
    order_month(-1, out);
    assert_string_equal(out, "1969-12-01");
    /* years that do not fit four digits give no month */
    order_month(INT64_MAX, out);
    assert_string_equal(out, "");
}

static void names_match_the_database_constraints(void **state)
{
    (void)state;
    static const char *statuses[] = {NULL, "booked", "cancelled", "returned", NULL};
    static const char *channels[] = {NULL, "direct", "distributor", NULL};

    for (int v = 0; v <= 4; v++) {
        if (statuses[v])
            assert_string_equal(order_status_name((Ka__V1__OrderStatus)v), statuses[v]);
        else
            assert_null(order_status_name((Ka__V1__OrderStatus)v));
    }
    for (int v = 0; v <= 3; v++) {
        if (channels[v])
            assert_string_equal(order_channel_name((Ka__V1__Channel)v), channels[v]);
        else
            assert_null(order_channel_name((Ka__V1__Channel)v));
    }
    assert_null(order_status_name((Ka__V1__OrderStatus)-1));
    assert_null(order_channel_name((Ka__V1__Channel)-1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_valid_direct_order_decodes_with_its_event_id),
        cmocka_unit_test(a_valid_distributor_order_decodes),
        cmocka_unit_test(optional_parts_may_be_left_out),
        cmocka_unit_test(the_account_may_be_named_by_id_code_or_name),
        cmocka_unit_test(cancellations_and_returns_need_no_lines),
        cmocka_unit_test(boundaries_that_pass),
        cmocka_unit_test(each_bad_field_gives_its_reason),
        cmocka_unit_test(a_distributor_order_is_checked_the_same_way),
        cmocka_unit_test(invalid_utf8_is_rejected_wherever_text_is_free),
        cmocka_unit_test(garbage_and_empty_payloads_are_decode_failures),
        cmocka_unit_test(a_truncated_message_is_a_decode_failure),
        cmocka_unit_test(a_rejected_event_keeps_its_event_id_for_the_dead_letter),
        cmocka_unit_test(line_amounts_round_half_up_to_the_minor_unit),
        cmocka_unit_test(large_amounts_do_not_overflow),
        cmocka_unit_test(the_total_is_the_sum_of_the_line_amounts),
        cmocka_unit_test(a_booking_takes_effect_when_booked_others_when_they_happen),
        cmocka_unit_test(months_start_and_end_on_utc_boundaries),
        cmocka_unit_test(names_match_the_database_constraints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

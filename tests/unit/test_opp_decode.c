/* Validation of opportunity events (DOMAIN.md section 8), without servers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka_opp_decode.h"

#define NOW 1795000000000LL

typedef struct fixture {
    Ka__V1__EventHeader h;
    Ka__V1__OpportunityEvent e;
    Ka__V1__OpportunityCreated c;
    Ka__V1__AccountRef a;
} fixture_t;

static void valid_created(fixture_t *f)
{
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__OpportunityCreated c = KA__V1__OPPORTUNITY_CREATED__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    f->h = h;
    f->e = e;
    f->c = c;
    f->a = a;
    f->h.event_id = "e-1";
    f->h.occurred_at_ms = NOW - 1000;
    f->a.name = "Acme";
    f->c.account = &f->a;
    f->c.owner_rep_id = "rep-1";
    f->c.stage_code = "01";
    f->c.amount_minor = 5000;
    f->e.header = &f->h;
    f->e.opportunity_id = "opp-1";
    f->e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_CREATED;
    f->e.created = &f->c;
}

/* Packs the event and runs the decoder; returns its verdict. */
static ka_err_t decode(const Ka__V1__OpportunityEvent *e, ka_reject_t *rej)
{
    size_t len = ka__v1__opportunity_event__get_packed_size(e);
    uint8_t *buf = malloc(len + 1);
    ka__v1__opportunity_event__pack(e, buf);
    Ka__V1__OpportunityEvent *out = NULL;
    char id[80];
    ka_err_t rc = opp_decode(buf, len, NOW, &out, id, sizeof id, rej);
    if (rc == KA_OK)
        assert_string_equal(id, e->header->event_id);
    if (out)
        ka__v1__opportunity_event__free_unpacked(out, NULL);
    free(buf);
    return rc;
}

static void a_valid_created_event_passes(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    valid_created(&f);
    assert_int_equal(decode(&f.e, &rej), KA_OK);
}

static void garbage_is_a_decode_failure(void **state)
{
    (void)state;
    static const uint8_t junk[] = {0xff, 0xff, 0x01};
    Ka__V1__OpportunityEvent *out = NULL;
    ka_reject_t rej;
    char id[80];
    assert_int_equal(opp_decode(junk, sizeof junk, NOW, &out, id, sizeof id, &rej),
                     KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_null(out);
}

static void each_bad_field_names_its_reason(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    Ka__V1__LineItem line = KA__V1__LINE_ITEM__INIT;
    Ka__V1__LineItem *lines[201];

    valid_created(&f);
    f.e.opportunity_id = "";
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_MISSING);

    valid_created(&f);
    f.e.header = NULL;
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_MISSING);

    valid_created(&f);
    f.h.occurred_at_ms = NOW / 1000; /* seconds, not milliseconds */
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_TIME);

    valid_created(&f);
    f.c.amount_minor = -1;
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_AMOUNT);

    valid_created(&f);
    f.c.sales_mode = (Ka__V1__SalesMode)99;
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_ENUM);

    valid_created(&f);
    line.sku = "S";
    line.quantity_milli = 1000;
    for (int i = 0; i < 201; i++)
        lines[i] = &line;
    f.c.n_lines = 201;
    f.c.lines = lines;
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_LIST);

    valid_created(&f);
    line.quantity_milli = 0;
    f.c.n_lines = 1;
    f.c.lines = lines;
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_AMOUNT);

    valid_created(&f);
    f.a.name = "\xe4\xb8"; /* truncated UTF-8 */
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_UTF8);

    valid_created(&f);
    f.a.name = NULL;
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_ACCOUNT);

    valid_created(&f);
    f.c.expected_close_date = "2026-02-30";
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_TIME);

    valid_created(&f);
    f.e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND__NOT_SET;
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_MISSING);
}

static void assessment_needs_five_answers_per_dimension(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    protobuf_c_boolean five[5] = {1, 0, 1, 1, 0}, four[4] = {1, 1, 1, 1};
    Ka__V1__ValueAssessed a = KA__V1__VALUE_ASSESSED__INIT;
    valid_created(&f);
    a.n_is_there_an_opportunity = a.n_can_we_compete = a.n_can_we_win = 5;
    a.is_there_an_opportunity = a.can_we_compete = a.can_we_win = five;
    a.n_is_it_worth_winning = 4;
    a.is_it_worth_winning = four;
    f.e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_ASSESSED;
    f.e.assessed = &a;
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_LIST);
    a.n_is_it_worth_winning = 5;
    a.is_it_worth_winning = five;
    assert_int_equal(decode(&f.e, &rej), KA_OK);
    assert_int_equal(opp_yes_count(five, 5), 3);
}

static void owner_change_needs_an_actor(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    Ka__V1__OwnerChanged oc = KA__V1__OWNER_CHANGED__INIT;
    valid_created(&f);
    oc.new_owner_rep_id = "rep-2";
    f.e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED;
    f.e.owner_changed = &oc;
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_MISSING);
    assert_non_null(strstr(rej.detail, "actor_id"));
    f.e.actor_id = "mgr-1";
    assert_int_equal(decode(&f.e, &rej), KA_OK);
}

static void periods_and_dates_are_checked(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    int y, m, d;
    Ka__V1__Period p = KA__V1__PERIOD__INIT;
    Ka__V1__ForecastConfirmed fc = KA__V1__FORECAST_CONFIRMED__INIT;
    valid_created(&f);
    p.kind = KA__V1__PERIOD_KIND__PERIOD_KIND_QUARTER;
    p.year = 2026;
    p.number = 5;
    fc.period = &p;
    f.e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED;
    f.e.forecast_confirmed = &fc;
    assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
    p.number = 4;
    assert_int_equal(decode(&f.e, &rej), KA_OK);
    assert_int_equal(ka_parse_date("2024-02-29", &y, &m, &d), 0); /* leap year */
    assert_int_equal(ka_parse_date("2026-02-29", &y, &m, &d), -1);
    assert_int_equal(ka_parse_date("2026-1-05", &y, &m, &d), -1);
    assert_int_equal(ka_parse_date("2026-12-31x", &y, &m, &d), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_valid_created_event_passes),
        cmocka_unit_test(garbage_is_a_decode_failure),
        cmocka_unit_test(each_bad_field_names_its_reason),
        cmocka_unit_test(assessment_needs_five_answers_per_dimension),
        cmocka_unit_test(owner_change_needs_an_actor),
        cmocka_unit_test(periods_and_dates_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

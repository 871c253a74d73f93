/* The event schemas survive an encode/decode round trip with every kind of
 * field the product relies on: oneof kinds, one-field-oneof presence for
 * partial updates, maps, repeated fields and the UNSPECIFIED zero enums. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka/v1/alert.pb-c.h"
#include "ka/v1/forecast.pb-c.h"
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka/v1/planning.pb-c.h"
#include "ka/v1/visit.pb-c.h"

static Ka__V1__EventHeader header(const char *id)
{
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    h.event_id = (char *)id;
    h.occurred_at_ms = 1795000000123LL;
    h.producer = "crm";
    h.correlation_id = "flow-9";
    return h;
}

/* Packs, unpacks and packs again: the bytes must not change. */
#define ROUND_TRIP(type, prefix, msg, out)                                              \
    do {                                                                                \
        size_t len_ = prefix##__get_packed_size(msg);                                   \
        uint8_t *buf_ = malloc(len_ + 1);                                               \
        assert_int_equal(prefix##__pack(msg, buf_), len_);                              \
        out = prefix##__unpack(NULL, len_, buf_);                                       \
        assert_non_null(out);                                                           \
        uint8_t *again_ = malloc(len_ + 1);                                             \
        assert_int_equal(prefix##__pack(out, again_), len_);                            \
        assert_memory_equal(buf_, again_, len_);                                        \
        free(buf_);                                                                     \
        free(again_);                                                                   \
    } while (0)

static void visit_keeps_contacts_man_and_follow_up(void **state)
{
    (void)state;
    Ka__V1__EventHeader h = header("v-1");
    Ka__V1__AccountRef acct = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__ContactMet c1 = KA__V1__CONTACT_MET__INIT, c2 = KA__V1__CONTACT_MET__INIT;
    Ka__V1__ContactMet *contacts[] = {&c1, &c2};
    Ka__V1__ManQualification man = KA__V1__MAN_QUALIFICATION__INIT;
    Ka__V1__FollowUpPlan plan = KA__V1__FOLLOW_UP_PLAN__INIT;
    Ka__V1__VisitEvent v = KA__V1__VISIT_EVENT__INIT, *out;

    acct.unified_social_credit_code = "91350100M000100Y43";
    acct.name = "华建集团";
    c1.name = "王总";
    c1.role = KA__V1__BUYING_ROLE__BUYING_ROLE_DECISION_MAKER;
    c1.function = KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_ECONOMIC;
    c2.name = "李工";
    c2.role = KA__V1__BUYING_ROLE__BUYING_ROLE_COACH;
    man.money = 1;
    man.authority = 0;
    man.need = 1;
    plan.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_CONTINUE;
    plan.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_INTERVAL;
    plan.interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_40_DAYS;
    v.header = &h;
    v.account = &acct;
    v.rep_id = "rep-001";
    v.visited_at_ms = 1795000000000LL;
    v.objective = KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_RELATIONSHIP;
    v.n_contacts = 2;
    v.contacts = contacts;
    v.satisfaction = KA__V1__SATISFACTION__SATISFACTION_DISSATISFIED;
    v.man = &man;
    v.follow_up = &plan;

    ROUND_TRIP(Ka__V1__VisitEvent, ka__v1__visit_event, &v, out);
    assert_string_equal(out->header->event_id, "v-1");
    assert_string_equal(out->account->name, "华建集团");
    assert_int_equal(out->n_contacts, 2);
    assert_int_equal(out->contacts[0]->role, KA__V1__BUYING_ROLE__BUYING_ROLE_DECISION_MAKER);
    assert_non_null(out->man); /* presence: answered */
    assert_false(out->man->authority);
    assert_int_equal(out->follow_up->next_case, KA__V1__FOLLOW_UP_PLAN__NEXT_INTERVAL);
    assert_int_equal(out->follow_up->interval, KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_40_DAYS);
    ka__v1__visit_event__free_unpacked(out, NULL);
}

static void unanswered_man_stays_absent(void **state)
{
    (void)state;
    Ka__V1__EventHeader h = header("v-2");
    Ka__V1__VisitEvent v = KA__V1__VISIT_EVENT__INIT, *out;
    v.header = &h;
    ROUND_TRIP(Ka__V1__VisitEvent, ka__v1__visit_event, &v, out);
    assert_null(out->man);
    assert_null(out->follow_up);
    assert_int_equal(out->objective, KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_UNSPECIFIED);
    ka__v1__visit_event__free_unpacked(out, NULL);
}

static void opportunity_kinds_and_partial_updates(void **state)
{
    (void)state;
    Ka__V1__EventHeader h = header("o-1");
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT, *out;
    Ka__V1__OpportunityCreated c = KA__V1__OPPORTUNITY_CREATED__INIT;
    Ka__V1__LineItem line = KA__V1__LINE_ITEM__INIT;
    Ka__V1__LineItem *lines[] = {&line};
    Ka__V1__AccountRef acct = KA__V1__ACCOUNT_REF__INIT;

    acct.name = "Acme";
    line.sku = "SKU-1";
    line.quantity_milli = 2500;
    line.unit_price_minor = 199900;
    c.account = &acct;
    c.owner_rep_id = "rep-1";
    c.stage_code = "03";
    c.amount_minor = 499750;
    c.n_lines = 1;
    c.lines = lines;
    c.sales_mode = KA__V1__SALES_MODE__SALES_MODE_BID;
    e.header = &h;
    e.opportunity_id = "opp-1";
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_CREATED;
    e.created = &c;
    ROUND_TRIP(Ka__V1__OpportunityEvent, ka__v1__opportunity_event, &e, out);
    assert_int_equal(out->kind_case, KA__V1__OPPORTUNITY_EVENT__KIND_CREATED);
    assert_int_equal(out->created->lines[0]->quantity_milli, 2500);
    assert_int_equal(out->created->amount_minor, 499750);
    ka__v1__opportunity_event__free_unpacked(out, NULL);

    /* An update that sets the amount to zero differs from one that leaves it. */
    Ka__V1__OpportunityUpdated u = KA__V1__OPPORTUNITY_UPDATED__INIT;
    u.amount_minor_present_case = KA__V1__OPPORTUNITY_UPDATED__AMOUNT_MINOR_PRESENT_AMOUNT_MINOR;
    u.amount_minor = 0;
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED;
    e.updated = &u;
    ROUND_TRIP(Ka__V1__OpportunityEvent, ka__v1__opportunity_event, &e, out);
    assert_int_equal(out->updated->amount_minor_present_case,
                     KA__V1__OPPORTUNITY_UPDATED__AMOUNT_MINOR_PRESENT_AMOUNT_MINOR);
    assert_int_equal(out->updated->amount_minor, 0);
    assert_int_equal(out->updated->name_present_case,
                     KA__V1__OPPORTUNITY_UPDATED__NAME_PRESENT__NOT_SET);
    ka__v1__opportunity_event__free_unpacked(out, NULL);

    /* The value assessment keeps its four dimensions of five answers. */
    protobuf_c_boolean yes5[5] = {1, 1, 0, 1, 0}, no5[5] = {0, 0, 0, 0, 0};
    Ka__V1__ValueAssessed a = KA__V1__VALUE_ASSESSED__INIT;
    a.n_is_there_an_opportunity = a.n_can_we_compete = a.n_can_we_win = a.n_is_it_worth_winning = 5;
    a.is_there_an_opportunity = yes5;
    a.can_we_compete = no5;
    a.can_we_win = yes5;
    a.is_it_worth_winning = yes5;
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_ASSESSED;
    e.assessed = &a;
    ROUND_TRIP(Ka__V1__OpportunityEvent, ka__v1__opportunity_event, &e, out);
    assert_int_equal(out->assessed->n_can_we_compete, 5);
    assert_true(out->assessed->is_it_worth_winning[3]);
    assert_false(out->assessed->is_it_worth_winning[4]);
    ka__v1__opportunity_event__free_unpacked(out, NULL);
}

static void order_forecast_planning_round_trip(void **state)
{
    (void)state;
    Ka__V1__EventHeader h = header("x-1");
    Ka__V1__OrderEvent o = KA__V1__ORDER_EVENT__INIT, *oo;
    o.header = &h;
    o.order_id = "SO-1";
    o.channel = KA__V1__CHANNEL__CHANNEL_DISTRIBUTOR;
    o.distributor_id = "dist-9";
    o.status = KA__V1__ORDER_STATUS__ORDER_STATUS_RETURNED;
    ROUND_TRIP(Ka__V1__OrderEvent, ka__v1__order_event, &o, oo);
    assert_int_equal(oo->status, KA__V1__ORDER_STATUS__ORDER_STATUS_RETURNED);
    ka__v1__order_event__free_unpacked(oo, NULL);

    Ka__V1__Period q = KA__V1__PERIOD__INIT;
    q.kind = KA__V1__PERIOD_KIND__PERIOD_KIND_QUARTER;
    q.year = 2026;
    q.number = 4;
    Ka__V1__ForecastFigures raw = KA__V1__FORECAST_FIGURES__INIT;
    raw.quota_minor = 1000;
    raw.gap_minor = -25; /* ahead of quota */
    Ka__V1__ForecastEvent f = KA__V1__FORECAST_EVENT__INIT, *fo;
    f.header = &h;
    f.node_id = "div-east";
    f.period = &q;
    f.raw = &raw;
    ROUND_TRIP(Ka__V1__ForecastEvent, ka__v1__forecast_event, &f, fo);
    assert_int_equal(fo->raw->gap_minor, -25);
    assert_int_equal(fo->raw->coverage_bp_present_case,
                     KA__V1__FORECAST_FIGURES__COVERAGE_BP_PRESENT__NOT_SET);
    assert_int_equal(fo->period->number, 4);
    ka__v1__forecast_event__free_unpacked(fo, NULL);

    Ka__V1__PlanningEvent p = KA__V1__PLANNING_EVENT__INIT, *po;
    p.header = &h;
    p.sku = "SKU-1";
    p.weighted_quantity_milli = 1234567;
    ROUND_TRIP(Ka__V1__PlanningEvent, ka__v1__planning_event, &p, po);
    assert_int_equal(po->weighted_quantity_milli, 1234567);
    ka__v1__planning_event__free_unpacked(po, NULL);
}

static void alert_keeps_details_map(void **state)
{
    (void)state;
    Ka__V1__EventHeader h = header("a-1");
    Ka__V1__AlertEvent__DetailsEntry d1 = KA__V1__ALERT_EVENT__DETAILS_ENTRY__INIT;
    Ka__V1__AlertEvent__DetailsEntry *details[] = {&d1};
    char *causes[] = {"e-1", "e-2"};
    Ka__V1__AlertEvent a = KA__V1__ALERT_EVENT__INIT, *out;
    d1.key = "ratio_bp";
    d1.value = "6500";
    a.header = &h;
    a.alert_id = "funnel_health:node/div-1/03/count:1795000000000";
    a.type = KA__V1__ALERT_TYPE__ALERT_TYPE_FUNNEL_HEALTH;
    a.severity = KA__V1__SEVERITY__SEVERITY_WARNING;
    a.status = KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING;
    a.subject_kind = KA__V1__SUBJECT_KIND__SUBJECT_KIND_NODE;
    a.n_details = 1;
    a.details = details;
    a.n_cause_event_ids = 2;
    a.cause_event_ids = causes;
    ROUND_TRIP(Ka__V1__AlertEvent, ka__v1__alert_event, &a, out);
    assert_int_equal(out->n_details, 1);
    assert_string_equal(out->details[0]->key, "ratio_bp");
    assert_string_equal(out->cause_event_ids[1], "e-2");
    assert_int_equal(out->status, KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING);
    ka__v1__alert_event__free_unpacked(out, NULL);
}

static void garbage_does_not_decode(void **state)
{
    (void)state;
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x7f, 0x01};
    assert_null(ka__v1__visit_event__unpack(NULL, sizeof junk, junk));
    assert_null(ka__v1__opportunity_event__unpack(NULL, sizeof junk, junk));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(visit_keeps_contacts_man_and_follow_up),
        cmocka_unit_test(unanswered_man_stays_absent),
        cmocka_unit_test(opportunity_kinds_and_partial_updates),
        cmocka_unit_test(order_forecast_planning_round_trip),
        cmocka_unit_test(alert_keeps_details_map),
        cmocka_unit_test(garbage_does_not_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Validation of visit events and the pure rules of a visit (DOMAIN.md
 * sections 3 and 8), without servers. Epoch values below were computed
 * independently with `date -u -d <time> +%s`, not with the code under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka_visit_decode.h"

#define NOW 1773135000000LL     /* 2026-03-10T09:30:00Z */
#define VISITED 1773127800000LL /* 2026-03-10T07:30:00Z */
#define HOUR 3600000LL
#define VALID_USCC "91350100M000100Y43"

typedef struct fixture {
    Ka__V1__EventHeader h;
    Ka__V1__AccountRef a;
    Ka__V1__ContactMet c[2];
    Ka__V1__ContactMet *cp[2];
    Ka__V1__ManQualification man;
    Ka__V1__FollowUpPlan fu;
    Ka__V1__VisitEvent e;
} fixture_t;

/* A complete, valid visit: two contacts (one known by id, one by name only
 * with role and function unknown), a MAN reading MAn, a 40-day plan. */
static void valid_visit(fixture_t *f)
{
    static const Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    static const Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    static const Ka__V1__ContactMet c = KA__V1__CONTACT_MET__INIT;
    static const Ka__V1__ManQualification man = KA__V1__MAN_QUALIFICATION__INIT;
    static const Ka__V1__FollowUpPlan fu = KA__V1__FOLLOW_UP_PLAN__INIT;
    static const Ka__V1__VisitEvent e = KA__V1__VISIT_EVENT__INIT;

    f->h = h;
    f->h.event_id = "v-1";
    f->h.occurred_at_ms = NOW - 1000;
    f->h.producer = "crm";
    f->a = a;
    f->a.name = "Acme 精密机械";
    f->c[0] = c;
    f->c[0].contact_id = "c-1";
    f->c[0].name = "张伟";
    f->c[0].title = "采购经理";
    f->c[0].role = KA__V1__BUYING_ROLE__BUYING_ROLE_DECISION_MAKER;
    f->c[0].function = KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_ECONOMIC;
    f->c[1] = c;
    f->c[1].name = "Li Na";
    f->cp[0] = &f->c[0];
    f->cp[1] = &f->c[1];
    f->man = man;
    f->man.money = 1;
    f->man.authority = 1;
    f->man.need = 0;
    f->fu = fu;
    f->fu.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_CONTINUE;
    f->fu.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_INTERVAL;
    f->fu.interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_40_DAYS;
    f->e = e;
    f->e.header = &f->h;
    f->e.account = &f->a;
    f->e.rep_id = "rep-1";
    f->e.visited_at_ms = VISITED;
    f->e.objective = KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_SELL;
    f->e.n_contacts = 2;
    f->e.contacts = f->cp;
    f->e.opportunity_id = "opp-1";
    f->e.satisfaction = KA__V1__SATISFACTION__SATISFACTION_SATISFIED;
    f->e.man = &f->man;
    f->e.follow_up = &f->fu;
    f->e.notes = "客户关注交期";
}

static uint8_t *pack(const Ka__V1__VisitEvent *e, size_t *len)
{
    *len = ka__v1__visit_event__get_packed_size(e);
    uint8_t *buf = malloc(*len + 1);
    assert_non_null(buf);
    ka__v1__visit_event__pack(e, buf);
    return buf;
}

/* Packs the event and runs the decoder at `now`; returns its verdict. */
static ka_err_t decode_at(const Ka__V1__VisitEvent *e, int64_t now, ka_reject_t *rej)
{
    size_t len;
    uint8_t *buf = pack(e, &len);
    Ka__V1__VisitEvent *out = NULL;
    char id[80];
    memset(rej, 0, sizeof *rej);
    ka_err_t rc = visit_decode(buf, len, now, &out, id, sizeof id, rej);
    if (out)
        ka__v1__visit_event__free_unpacked(out, NULL);
    free(buf);
    if (rc == KA_OK)
        assert_string_equal(id, e->header->event_id);
    return rc;
}

static ka_err_t decode(const Ka__V1__VisitEvent *e, ka_reject_t *rej)
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
 * Mutations of a valid visit
 * ------------------------------------------------------------------------- */

static void no_header(fixture_t *f) { f->e.header = NULL; }
static void no_event_id(fixture_t *f) { f->h.event_id = ""; }
static void event_id_with_space(fixture_t *f) { f->h.event_id = "v 1"; }
static void event_id_too_long(fixture_t *f)
{
    static char s[KA_MAX_ID_LEN + 2];
    f->h.event_id = filled(s, 'e', KA_MAX_ID_LEN + 1);
}
static void no_occurred_at(fixture_t *f) { f->h.occurred_at_ms = 0; }
static void occurred_at_in_seconds(fixture_t *f) { f->h.occurred_at_ms = NOW / 1000; }
static void occurred_at_two_days_ahead(fixture_t *f) { f->h.occurred_at_ms = NOW + 48 * HOUR; }
static void producer_bad_utf8(fixture_t *f) { f->h.producer = "cr\xff"; }
static void correlation_id_too_long(fixture_t *f)
{
    static char s[202];
    f->h.correlation_id = filled(s, 'x', 201);
}
static void no_account(fixture_t *f) { f->e.account = NULL; }
static void empty_account(fixture_t *f) { f->a.name = ""; }
static void account_id_with_space(fixture_t *f) { f->a.account_id = "acct 1"; }
static void account_name_too_long(fixture_t *f)
{
    static char s[VISIT_MAX_NAME_LEN + 2];
    f->a.name = filled(s, 'n', VISIT_MAX_NAME_LEN + 1);
}
static void account_name_bad_utf8(fixture_t *f) { f->a.name = "Acme \xe4\xb8"; }
static void account_name_blank(fixture_t *f) { f->a.name = "  \t "; }
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
static void no_visited_at(fixture_t *f) { f->e.visited_at_ms = 0; }
static void visited_before_2000(fixture_t *f) { f->e.visited_at_ms = 946684799999LL; }
static void visited_two_days_ahead(fixture_t *f) { f->e.visited_at_ms = NOW + 48 * HOUR; }
static void no_objective(fixture_t *f) { f->e.objective = 0; }
static void unknown_objective(fixture_t *f) { f->e.objective = (Ka__V1__VisitObjective)99; }
static void too_many_contacts(fixture_t *f)
{
    static Ka__V1__ContactMet *many[VISIT_MAX_CONTACTS + 1];
    for (size_t i = 0; i < VISIT_MAX_CONTACTS + 1; i++)
        many[i] = &f->c[1];
    f->e.n_contacts = VISIT_MAX_CONTACTS + 1;
    f->e.contacts = many;
}
static void contact_without_id_or_name(fixture_t *f) { f->c[1].name = ""; }
static void contact_with_blank_name(fixture_t *f) { f->c[1].name = "   "; }
static void contact_id_with_space(fixture_t *f) { f->c[0].contact_id = "c 1"; }
static void contact_name_too_long(fixture_t *f)
{
    static char s[VISIT_MAX_NAME_LEN + 2];
    f->c[1].name = filled(s, 'n', VISIT_MAX_NAME_LEN + 1);
}
static void contact_name_bad_utf8(fixture_t *f) { f->c[1].name = "\xc0\xaf"; /* overlong */ }
static void contact_title_bad_utf8(fixture_t *f) { f->c[0].title = "\xed\xa0\x80"; }
static void unknown_role(fixture_t *f) { f->c[0].role = (Ka__V1__BuyingRole)99; }
static void unknown_function(fixture_t *f) { f->c[1].function = (Ka__V1__BuyingFunction)6; }
static void opportunity_id_with_space(fixture_t *f) { f->e.opportunity_id = "opp 1"; }
static void unknown_satisfaction(fixture_t *f) { f->e.satisfaction = (Ka__V1__Satisfaction)42; }
static void no_action(fixture_t *f) { f->fu.action = 0; }
static void unknown_action(fixture_t *f) { f->fu.action = (Ka__V1__FollowUpAction)7; }
static void continue_without_when(fixture_t *f) { f->fu.next_case = 0; }
static void pause_with_unspecified_interval(fixture_t *f)
{
    f->fu.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_PAUSE;
    f->fu.interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_UNSPECIFIED;
}
static void pause_with_empty_date(fixture_t *f)
{
    f->fu.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_PAUSE;
    f->fu.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_NEXT_VISIT_DATE;
    f->fu.next_visit_date = "";
}
static void unknown_interval(fixture_t *f) { f->fu.interval = (Ka__V1__RevisitInterval)5; }
static void give_up_with_interval(fixture_t *f)
{
    f->fu.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_GIVE_UP;
}
static void give_up_with_date(fixture_t *f)
{
    f->fu.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_GIVE_UP;
    f->fu.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_NEXT_VISIT_DATE;
    f->fu.next_visit_date = "2026-04-01";
}
static void set_date(fixture_t *f, char *date)
{
    f->fu.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_NEXT_VISIT_DATE;
    f->fu.next_visit_date = date;
}
static void date_not_a_date(fixture_t *f) { set_date(f, "2026-04-1"); }
static void date_feb_29_of_common_year(fixture_t *f) { set_date(f, "2027-02-29"); }
static void date_before_visit_day(fixture_t *f) { set_date(f, "2026-03-09"); }
static void date_367_days_after_visit(fixture_t *f) { set_date(f, "2027-03-12"); }
static void notes_too_long(fixture_t *f)
{
    static char s[KA_MAX_TEXT_LEN + 2];
    f->e.notes = filled(s, 'n', KA_MAX_TEXT_LEN + 1);
}
static void notes_bad_utf8(fixture_t *f) { f->e.notes = "ok \xf8\x88\x80\x80\x80"; }

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
    {"no visited_at", no_visited_at, KA_REASON_MISSING, "visited_at_ms"},
    {"visited before 2000", visited_before_2000, KA_REASON_TIME, "visited_at_ms"},
    {"visited 2 days ahead", visited_two_days_ahead, KA_REASON_TIME, "visited_at_ms"},
    {"no objective", no_objective, KA_REASON_MISSING, "objective"},
    {"unknown objective", unknown_objective, KA_REASON_ENUM, "objective"},
    {"201 contacts", too_many_contacts, KA_REASON_LIST, "contacts"},
    {"contact without id or name", contact_without_id_or_name, KA_REASON_MISSING,
     "contacts[1]"},
    {"contact with a blank name", contact_with_blank_name, KA_REASON_MISSING, "contacts[1]"},
    {"contact id with a space", contact_id_with_space, KA_REASON_BAD_ID,
     "contacts[0].contact_id"},
    {"contact name too long", contact_name_too_long, KA_REASON_TOO_LONG, "contacts[1].name"},
    {"contact name not UTF-8", contact_name_bad_utf8, KA_REASON_UTF8, "contacts[1].name"},
    {"contact title not UTF-8", contact_title_bad_utf8, KA_REASON_UTF8, "contacts[0].title"},
    {"unknown buying role", unknown_role, KA_REASON_ENUM, "contacts[0].role"},
    {"unknown buying function", unknown_function, KA_REASON_ENUM, "contacts[1].function"},
    {"opportunity id with a space", opportunity_id_with_space, KA_REASON_BAD_ID,
     "opportunity_id"},
    {"unknown satisfaction", unknown_satisfaction, KA_REASON_ENUM, "satisfaction"},
    {"follow-up without action", no_action, KA_REASON_MISSING, "follow_up.action"},
    {"unknown follow-up action", unknown_action, KA_REASON_ENUM, "follow_up.action"},
    {"continue without interval or date", continue_without_when, KA_REASON_MISSING,
     "follow_up.interval"},
    {"pause with UNSPECIFIED interval", pause_with_unspecified_interval, KA_REASON_MISSING,
     "follow_up.next_visit_date"},
    {"pause with an empty date", pause_with_empty_date, KA_REASON_MISSING,
     "follow_up.next_visit_date"},
    {"unknown interval", unknown_interval, KA_REASON_ENUM, "follow_up.interval"},
    {"give up with an interval", give_up_with_interval, KA_REASON_MISSING, "follow_up.interval"},
    {"give up with a date", give_up_with_date, KA_REASON_MISSING, "follow_up.next_visit_date"},
    {"date not YYYY-MM-DD", date_not_a_date, KA_REASON_TIME, "follow_up.next_visit_date"},
    {"Feb 29 of a common year", date_feb_29_of_common_year, KA_REASON_TIME,
     "follow_up.next_visit_date"},
    {"date before the visit's day", date_before_visit_day, KA_REASON_TIME,
     "follow_up.next_visit_date"},
    {"date 367 days after the visit", date_367_days_after_visit, KA_REASON_TIME,
     "follow_up.next_visit_date"},
    {"notes too long", notes_too_long, KA_REASON_TOO_LONG, "notes"},
    {"notes not UTF-8", notes_bad_utf8, KA_REASON_UTF8, "notes"},
};

/* ----------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------- */

static void a_valid_visit_decodes_with_its_event_id(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    Ka__V1__VisitEvent *out = NULL;
    char id[80] = "stale", cls[4];
    size_t len;

    valid_visit(&f);
    uint8_t *buf = pack(&f.e, &len);
    assert_int_equal(visit_decode(buf, len, NOW, &out, id, sizeof id, &rej), KA_OK);
    assert_non_null(out);
    assert_string_equal(id, "v-1");
    assert_string_equal(out->account->name, "Acme 精密机械");
    assert_int_equal(out->visited_at_ms, VISITED);
    assert_string_equal(visit_objective_name(out->objective), "sell");
    assert_int_equal(out->n_contacts, 2);
    assert_string_equal(visit_role_name(out->contacts[0]->role), "decision_maker");
    assert_null(visit_role_name(out->contacts[1]->role));
    assert_null(visit_function_name(out->contacts[1]->function));
    visit_man_class(out->man, cls);
    assert_string_equal(cls, "MAn");
    assert_string_equal(visit_man_action(cls), "pursue_with_selling_skill");
    /* 2026-03-10T07:30Z + 40 days = 2026-04-19T07:30Z */
    assert_int_equal(visit_due_ms(out->follow_up, out->visited_at_ms), 1776583800000LL);
    ka__v1__visit_event__free_unpacked(out, NULL);
    free(buf);
}

static void optional_parts_may_be_left_out(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;

    valid_visit(&f);
    f.h.producer = NULL;
    f.e.n_contacts = 0;
    f.e.contacts = NULL;
    f.e.opportunity_id = NULL;
    f.e.satisfaction = 0;
    f.e.man = NULL;
    f.e.follow_up = NULL;
    f.e.notes = NULL;
    assert_int_equal(decode(&f.e, &rej), KA_OK);
}

static void the_account_may_be_named_by_id_code_or_name(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;

    valid_visit(&f);
    f.a.name = NULL;
    f.a.account_id = "acct-1";
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_visit(&f);
    f.a.name = NULL;
    f.a.unified_social_credit_code = VALID_USCC;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_visit(&f);
    f.a.unified_social_credit_code = "91350100m000100y43"; /* lower case is folded */
    assert_int_equal(decode(&f.e, &rej), KA_OK);
}

static void boundaries_that_pass(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    Ka__V1__ContactMet *many[VISIT_MAX_CONTACTS];

    valid_visit(&f); /* one day of clock skew is allowed on both times */
    f.h.occurred_at_ms = NOW + 23 * HOUR;
    f.e.visited_at_ms = NOW + 23 * HOUR;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_visit(&f);
    for (size_t i = 0; i < VISIT_MAX_CONTACTS; i++)
        many[i] = &f.c[i % 2];
    f.e.n_contacts = VISIT_MAX_CONTACTS;
    f.e.contacts = many;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_visit(&f); /* a contact known only by its id */
    f.c[0].name = NULL;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_visit(&f); /* the next visit on the visit's own day */
    f.fu.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_PAUSE;
    set_date(&f, "2026-03-10");
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_visit(&f); /* 366 days after 2026-03-10 */
    set_date(&f, "2027-03-11");
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_visit(&f);
    f.fu.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_GIVE_UP;
    f.fu.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT__NOT_SET;
    assert_int_equal(decode(&f.e, &rej), KA_OK);

    valid_visit(&f); /* an all-"no" reading is a complete reading */
    f.man.money = f.man.authority = f.man.need = 0;
    assert_int_equal(decode(&f.e, &rej), KA_OK);
}

static void each_bad_field_gives_its_reason(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;

    for (size_t i = 0; i < sizeof reject_cases / sizeof reject_cases[0]; i++) {
        const reject_case_t *c = &reject_cases[i];
        valid_visit(&f);
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

static void an_invalid_utf8_name_is_rejected(void **state)
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
        valid_visit(&f);
        f.a.name = (char *)bad[i];
        assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
        assert_string_equal(rej.reason, KA_REASON_UTF8);
        assert_non_null(strstr(rej.detail, "account.name"));

        valid_visit(&f);
        f.c[0].name = (char *)bad[i];
        assert_int_equal(decode(&f.e, &rej), KA_ERR_INVALID);
        assert_string_equal(rej.reason, KA_REASON_UTF8);
        assert_non_null(strstr(rej.detail, "contacts[0].name"));
    }
}

static void garbage_and_empty_payloads_are_decode_failures(void **state)
{
    (void)state;
    static const uint8_t junk[] = {0xff, 0xff, 0x01};
    static Ka__V1__VisitEvent stale;
    Ka__V1__VisitEvent *out = &stale; /* the decoder must reset it */
    ka_reject_t rej;
    char id[80] = "stale";

    assert_int_equal(visit_decode(junk, sizeof junk, NOW, &out, id, sizeof id, &rej),
                     KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_null(out);
    assert_string_equal(id, "");

    out = &stale;
    assert_int_equal(visit_decode(junk, 0, NOW, &out, id, sizeof id, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_null(out);

    assert_int_equal(visit_decode(NULL, 0, NOW, &out, id, sizeof id, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_null(out);
}

static void a_truncated_message_is_a_decode_failure(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    Ka__V1__VisitEvent *out = NULL;
    char id[80];
    size_t len;

    valid_visit(&f);
    uint8_t *buf = pack(&f.e, &len);
    /* notes (field 11) is packed last: one byte short cuts its string */
    assert_int_equal(visit_decode(buf, len - 1, NOW, &out, id, sizeof id, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_null(out);
    /* the header's tag and length without its body */
    assert_int_equal(visit_decode(buf, 2, NOW, &out, id, sizeof id, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_DECODE);
    assert_null(out);
    /* the whole message still decodes */
    assert_int_equal(visit_decode(buf, len, NOW, &out, id, sizeof id, &rej), KA_OK);
    ka__v1__visit_event__free_unpacked(out, NULL);
    free(buf);
}

static void a_leap_day_is_a_valid_next_visit_date(void **state)
{
    (void)state;
    fixture_t f;
    ka_reject_t rej;
    const int64_t now = 1834660800000LL; /* 2028-02-20T12:00:00Z */

    valid_visit(&f);
    f.h.occurred_at_ms = now - HOUR;
    f.e.visited_at_ms = now - HOUR;
    set_date(&f, "2028-02-29");
    assert_int_equal(decode_at(&f.e, now, &rej), KA_OK);
    /* due at the start of 2028-03-01 UTC */
    assert_int_equal(visit_due_ms(&f.fu, f.e.visited_at_ms), 1835481600000LL);

    set_date(&f, "2028-02-30");
    assert_int_equal(decode_at(&f.e, now, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_TIME);
}

/* ----------------------------------------------------------------------------
 * Pure rules
 * ------------------------------------------------------------------------- */

static void each_man_class_maps_to_its_action(void **state)
{
    (void)state;
    static const struct {
        int money, authority, need;
        const char *cls, *action;
    } rows[] = {
        {1, 1, 1, "MAN", "ideal_prospect"},
        {1, 1, 0, "MAn", "pursue_with_selling_skill"},
        {1, 0, 1, "MaN", "find_authority"},
        {0, 1, 1, "mAN", "check_credit_offer_financing"},
        {0, 0, 1, "maN", "nurture_long_term"},
        {0, 1, 0, "mAn", "nurture_long_term"},
        {1, 0, 0, "Man", "nurture_long_term"},
        {0, 0, 0, "man", "not_a_prospect"},
    };
    Ka__V1__ManQualification man = KA__V1__MAN_QUALIFICATION__INIT;
    char cls[4];

    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        man.money = rows[i].money;
        man.authority = rows[i].authority;
        man.need = rows[i].need;
        visit_man_class(&man, cls);
        assert_string_equal(cls, rows[i].cls);
        assert_string_equal(visit_man_action(cls), rows[i].action);
    }
    visit_man_class(NULL, cls);
    assert_string_equal(cls, "");
}

static void a_string_that_is_not_a_man_class_has_no_action(void **state)
{
    (void)state;
    static const char *bad[] = {"", "MA", "MANN", "XAN", "NAM", "mAx", "M N", "AMN"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (visit_man_action(bad[i]) != NULL)
            fail_msg("\"%s\" got an action", bad[i]);
    assert_null(visit_man_action(NULL));
}

static void intervals_are_20_40_60_80_days(void **state)
{
    (void)state;
    assert_int_equal(visit_interval_days(KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_20_DAYS), 20);
    assert_int_equal(visit_interval_days(KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_40_DAYS), 40);
    assert_int_equal(visit_interval_days(KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_60_DAYS), 60);
    assert_int_equal(visit_interval_days(KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_80_DAYS), 80);
    assert_int_equal(visit_interval_days(KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_UNSPECIFIED),
                     0);
    assert_int_equal(visit_interval_days((Ka__V1__RevisitInterval)9), 0);
}

static void due_date_is_visit_time_plus_the_interval(void **state)
{
    (void)state;
    static const struct {
        Ka__V1__RevisitInterval interval;
        int64_t due;
    } rows[] = {
        {KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_20_DAYS, 1774855800000LL}, /* 03-30T07:30Z */
        {KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_40_DAYS, 1776583800000LL}, /* 04-19T07:30Z */
        {KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_60_DAYS, 1778311800000LL}, /* 05-09T07:30Z */
        {KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_80_DAYS, 1780039800000LL}, /* 05-29T07:30Z */
    };
    Ka__V1__FollowUpPlan p = KA__V1__FOLLOW_UP_PLAN__INIT;

    p.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_CONTINUE;
    p.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_INTERVAL;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        p.interval = rows[i].interval;
        assert_int_equal(visit_due_ms(&p, VISITED), rows[i].due);
    }
    /* pause schedules the same way; across 2028-02-29:
     * 2028-02-20T11:00Z + 20 days = 2028-03-11T11:00Z */
    p.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_PAUSE;
    p.interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_20_DAYS;
    assert_int_equal(visit_due_ms(&p, 1834657200000LL), 1836385200000LL);
}

static void an_explicit_date_falls_due_at_the_start_of_the_next_day(void **state)
{
    (void)state;
    static const struct {
        const char *date;
        int64_t due;
    } rows[] = {
        {"2026-03-01", 1772409600000LL}, /* 2026-03-02T00:00Z */
        {"2026-12-31", 1798761600000LL}, /* 2027-01-01T00:00Z */
        {"2028-02-29", 1835481600000LL}, /* 2028-03-01T00:00Z */
    };
    Ka__V1__FollowUpPlan p = KA__V1__FOLLOW_UP_PLAN__INIT;

    assert_int_equal(ka_date_to_ms(2026, 3, 1), 1772323200000LL); /* sanity of the helper */
    p.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_CONTINUE;
    p.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_NEXT_VISIT_DATE;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        p.next_visit_date = (char *)rows[i].date;
        assert_int_equal(visit_due_ms(&p, VISITED), rows[i].due);
    }
}

static void give_up_or_no_plan_schedules_nothing(void **state)
{
    (void)state;
    Ka__V1__FollowUpPlan p = KA__V1__FOLLOW_UP_PLAN__INIT;

    assert_int_equal(visit_due_ms(NULL, VISITED), 0);
    p.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_GIVE_UP;
    assert_int_equal(visit_due_ms(&p, VISITED), 0);
    p.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_INTERVAL; /* even if one slipped through */
    p.interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_20_DAYS;
    assert_int_equal(visit_due_ms(&p, VISITED), 0);
}

static void names_match_the_database_constraints(void **state)
{
    (void)state;
    static const char *objectives[] = {NULL, "sell", "maintain", "relationship", "intelligence",
                                       "consult", NULL};
    static const char *roles[] = {NULL,        "decision_maker", "influencer", "manager_in_charge",
                                  "bystander", "coach",          NULL};
    static const char *functions[] = {NULL, "economic", "technical", "user", "financial", "coach",
                                      NULL};
    static const char *satisfactions[] = {NULL,         "very_satisfied", "satisfied", "neutral",
                                          "dissatisfied", "very_dissatisfied", NULL};
    static const char *actions[] = {NULL, "continue", "pause", "give_up", NULL};

    for (int v = 0; v <= 6; v++) {
        const char *got[4] = {visit_objective_name((Ka__V1__VisitObjective)v),
                              visit_role_name((Ka__V1__BuyingRole)v),
                              visit_function_name((Ka__V1__BuyingFunction)v),
                              visit_satisfaction_name((Ka__V1__Satisfaction)v)};
        const char *want[4] = {objectives[v], roles[v], functions[v], satisfactions[v]};
        for (int k = 0; k < 4; k++) {
            if (want[k])
                assert_string_equal(got[k], want[k]);
            else
                assert_null(got[k]);
        }
    }
    for (int v = 0; v <= 4; v++) {
        if (actions[v])
            assert_string_equal(visit_action_name((Ka__V1__FollowUpAction)v), actions[v]);
        else
            assert_null(visit_action_name((Ka__V1__FollowUpAction)v));
    }
    assert_null(visit_objective_name((Ka__V1__VisitObjective)-1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_valid_visit_decodes_with_its_event_id),
        cmocka_unit_test(optional_parts_may_be_left_out),
        cmocka_unit_test(the_account_may_be_named_by_id_code_or_name),
        cmocka_unit_test(boundaries_that_pass),
        cmocka_unit_test(each_bad_field_gives_its_reason),
        cmocka_unit_test(an_invalid_utf8_name_is_rejected),
        cmocka_unit_test(garbage_and_empty_payloads_are_decode_failures),
        cmocka_unit_test(a_truncated_message_is_a_decode_failure),
        cmocka_unit_test(a_leap_day_is_a_valid_next_visit_date),
        cmocka_unit_test(each_man_class_maps_to_its_action),
        cmocka_unit_test(a_string_that_is_not_a_man_class_has_no_action),
        cmocka_unit_test(intervals_are_20_40_60_80_days),
        cmocka_unit_test(due_date_is_visit_time_plus_the_interval),
        cmocka_unit_test(an_explicit_date_falls_due_at_the_start_of_the_next_day),
        cmocka_unit_test(give_up_or_no_plan_schedules_nothing),
        cmocka_unit_test(names_match_the_database_constraints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

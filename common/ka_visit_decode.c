#include <stdio.h>
#include <string.h>

#include "ka_account_key.h"
#include "ka_envelope.h"
#include "ka_wire.h"
#include "ka_visit_decode.h"

#define DAY_MS 86400000LL

/* A visit happens in the past; one day covers clock skew and time zones of
 * field apps that stamp local time by mistake. */
#define VISIT_MAX_FUTURE_MS DAY_MS

/* The latest explicit next-visit date, in days after the visit's own date. */
#define VISIT_MAX_PLAN_DAYS 366

/* ----------------------------------------------------------------------------
 * Field checks
 * ------------------------------------------------------------------------- */

static int known_enum(const ProtobufCEnumDescriptor *desc, int value)
{
    return value != 0 && protobuf_c_enum_descriptor_get_value(desc, value) != NULL;
}

/* An enum that may be left UNSPECIFIED (meaning "not given"). */
static ka_err_t check_optional_enum(ka_reject_t *rej, const char *field,
                                    const ProtobufCEnumDescriptor *desc, int value)
{
    if (value == 0 || known_enum(desc, value))
        return KA_OK;
    return ka_reject(rej, KA_REASON_ENUM, "%s has unknown value %d", field, value);
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

/* Empty or only ASCII white space. */
static int is_blank(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return 0;
    return 1;
}

static ka_err_t check_contacts(ka_reject_t *rej, Ka__V1__ContactMet **contacts, size_t n)
{
    char field[64];

    if (ka_check_count(rej, "contacts", n, VISIT_MAX_CONTACTS) != KA_OK)
        return KA_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        const Ka__V1__ContactMet *c = contacts[i];
        snprintf(field, sizeof field, "contacts[%zu].contact_id", i);
        if (ka_check_optional_id(rej, field, c->contact_id, KA_MAX_ID_LEN) != KA_OK)
            return KA_ERR_INVALID;
        snprintf(field, sizeof field, "contacts[%zu].name", i);
        if (ka_check_text(rej, field, c->name, VISIT_MAX_NAME_LEN) != KA_OK)
            return KA_ERR_INVALID;
        if (ka_is_empty(c->contact_id) && is_blank(c->name))
            return ka_reject(rej, KA_REASON_MISSING, "contacts[%zu] needs a contact_id or a name",
                             i);
        snprintf(field, sizeof field, "contacts[%zu].title", i);
        if (ka_check_text(rej, field, c->title, VISIT_MAX_NAME_LEN) != KA_OK)
            return KA_ERR_INVALID;
        snprintf(field, sizeof field, "contacts[%zu].role", i);
        if (check_optional_enum(rej, field, &ka__v1__buying_role__descriptor, c->role) != KA_OK)
            return KA_ERR_INVALID;
        snprintf(field, sizeof field, "contacts[%zu].function", i);
        if (check_optional_enum(rej, field, &ka__v1__buying_function__descriptor, c->function) !=
            KA_OK)
            return KA_ERR_INVALID;
    }
    return KA_OK;
}

/* An explicit next-visit date: a real date from the visit's own UTC date to
 * VISIT_MAX_PLAN_DAYS after it. visited_at_ms has been checked already. */
static ka_err_t check_next_visit_date(ka_reject_t *rej, const char *date, int64_t visited_at_ms)
{
    int y, m, d;
    if (ka_parse_date(date, &y, &m, &d) != 0)
        return ka_reject(rej, KA_REASON_TIME,
                         "follow_up.next_visit_date=\"%.20s\" is not a YYYY-MM-DD date", date);
    int64_t day = ka_date_to_ms(y, m, d) / DAY_MS;
    int64_t visit_day = visited_at_ms / DAY_MS;
    if (day < visit_day || day > visit_day + VISIT_MAX_PLAN_DAYS)
        return ka_reject(rej, KA_REASON_TIME,
                         "follow_up.next_visit_date=%s is not between the visit's date and %d "
                         "days after it",
                         date, VISIT_MAX_PLAN_DAYS);
    return KA_OK;
}

static ka_err_t check_follow_up(ka_reject_t *rej, const Ka__V1__FollowUpPlan *p,
                                int64_t visited_at_ms)
{
    if (check_required_enum(rej, "follow_up.action", &ka__v1__follow_up_action__descriptor,
                            p->action))
        return KA_ERR_INVALID;
    int has_interval = 0, has_date = 0;
    if (p->next_case == KA__V1__FOLLOW_UP_PLAN__NEXT_INTERVAL) {
        if (check_optional_enum(rej, "follow_up.interval", &ka__v1__revisit_interval__descriptor,
                                p->interval))
            return KA_ERR_INVALID;
        has_interval = p->interval != 0;
    } else if (p->next_case == KA__V1__FOLLOW_UP_PLAN__NEXT_NEXT_VISIT_DATE &&
               !ka_is_empty(p->next_visit_date)) {
        if (check_next_visit_date(rej, p->next_visit_date, visited_at_ms))
            return KA_ERR_INVALID;
        has_date = 1;
    }
    if (p->action == KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_GIVE_UP) {
        if (has_interval || has_date)
            return ka_reject(rej, KA_REASON_MISSING,
                             "follow_up.%s must be empty when follow_up.action is give_up",
                             has_interval ? "interval" : "next_visit_date");
        return KA_OK;
    }
    if (!has_interval && !has_date)
        return ka_reject(rej, KA_REASON_MISSING,
                         "follow_up.action %s needs follow_up.interval or "
                         "follow_up.next_visit_date",
                         visit_action_name(p->action));
    return KA_OK;
}

/* ----------------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------------- */

KA_INPUT_DEFINE(ka_input_visit, visit, Ka__V1__VisitEvent, ka__v1__visit_event__descriptor)

ka_err_t visit_decode_validate(const Ka__V1__VisitEvent *ev, int64_t now_ms, char *event_id, size_t idlen,
                       ka_reject_t *rej)
{
    if (idlen)
        event_id[0] = '\0';
    if (ka_check_header(rej, ev->header, now_ms, VISIT_MAX_FUTURE_MS))
        return KA_ERR_INVALID;
    snprintf(event_id, idlen, "%s", ev->header->event_id);

    if (ka_check_account_ref(rej, ev->account) ||
        ka_check_id(rej, "rep_id", ev->rep_id, KA_MAX_ID_LEN) ||
        ka_check_time(rej, "visited_at_ms", ev->visited_at_ms, now_ms, VISIT_MAX_FUTURE_MS) ||
        check_required_enum(rej, "objective", &ka__v1__visit_objective__descriptor,
                            ev->objective) ||
        check_contacts(rej, ev->contacts, ev->n_contacts) ||
        ka_check_optional_id(rej, "opportunity_id", ev->opportunity_id, KA_MAX_ID_LEN) ||
        check_optional_enum(rej, "satisfaction", &ka__v1__satisfaction__descriptor,
                            ev->satisfaction) ||
        (ev->follow_up && check_follow_up(rej, ev->follow_up, ev->visited_at_ms)) ||
        ka_check_text(rej, "notes", ev->notes, KA_MAX_TEXT_LEN))
        return KA_ERR_INVALID;
    /* man: a present message is a complete reading, three booleans. */
    return KA_OK;
}

/* ----------------------------------------------------------------------------
 * MAN qualification (seed 004)
 * ------------------------------------------------------------------------- */

void visit_man_class(const Ka__V1__ManQualification *man, char out[4])
{
    if (!man) {
        out[0] = '\0'; /* not assessed: no class */
        return;
    }
    out[0] = man->money ? 'M' : 'm';
    out[1] = man->authority ? 'A' : 'a';
    out[2] = man->need ? 'N' : 'n';
    out[3] = '\0';
}

const char *visit_man_action(const char *man_class)
{
    if (!man_class || strlen(man_class) != 3 || (man_class[0] != 'M' && man_class[0] != 'm') ||
        (man_class[1] != 'A' && man_class[1] != 'a') ||
        (man_class[2] != 'N' && man_class[2] != 'n'))
        return NULL;
    int money = man_class[0] == 'M', authority = man_class[1] == 'A', need = man_class[2] == 'N';
    if (money && authority && need)
        return "ideal_prospect";
    if (money && authority)
        return "pursue_with_selling_skill";
    if (money && need)
        return "find_authority";
    if (authority && need)
        return "check_credit_offer_financing";
    if (money || authority || need)
        return "nurture_long_term"; /* maN, mAn, Man */
    return "not_a_prospect";
}

/* ----------------------------------------------------------------------------
 * Follow-up
 * ------------------------------------------------------------------------- */

int visit_interval_days(Ka__V1__RevisitInterval interval)
{
    switch (interval) {
    case KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_20_DAYS: return 20;
    case KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_40_DAYS: return 40;
    case KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_60_DAYS: return 60;
    case KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_80_DAYS: return 80;
    default: return 0;
    }
}

int64_t visit_due_ms(const Ka__V1__FollowUpPlan *plan, int64_t visited_at_ms)
{
    int y, m, d;
    if (!plan || (plan->action != KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_CONTINUE &&
                  plan->action != KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_PAUSE))
        return 0;
    switch (plan->next_case) {
    case KA__V1__FOLLOW_UP_PLAN__NEXT_INTERVAL: {
        int days = visit_interval_days(plan->interval);
        return days ? visited_at_ms + days * DAY_MS : 0;
    }
    case KA__V1__FOLLOW_UP_PLAN__NEXT_NEXT_VISIT_DATE:
        if (ka_parse_date(plan->next_visit_date, &y, &m, &d) != 0)
            return 0;
        return ka_date_to_ms(y, m, d) + DAY_MS;
    default:
        return 0;
    }
}

/* ----------------------------------------------------------------------------
 * Names stored in PostgreSQL
 * ------------------------------------------------------------------------- */

const char *visit_objective_name(Ka__V1__VisitObjective v)
{
    switch (v) {
    case KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_SELL: return "sell";
    case KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_MAINTAIN: return "maintain";
    case KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_RELATIONSHIP: return "relationship";
    case KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_INTELLIGENCE: return "intelligence";
    case KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_CONSULT: return "consult";
    default: return NULL;
    }
}

const char *visit_role_name(Ka__V1__BuyingRole v)
{
    switch (v) {
    case KA__V1__BUYING_ROLE__BUYING_ROLE_DECISION_MAKER: return "decision_maker";
    case KA__V1__BUYING_ROLE__BUYING_ROLE_INFLUENCER: return "influencer";
    case KA__V1__BUYING_ROLE__BUYING_ROLE_MANAGER_IN_CHARGE: return "manager_in_charge";
    case KA__V1__BUYING_ROLE__BUYING_ROLE_BYSTANDER: return "bystander";
    case KA__V1__BUYING_ROLE__BUYING_ROLE_COACH: return "coach";
    default: return NULL;
    }
}

const char *visit_function_name(Ka__V1__BuyingFunction v)
{
    switch (v) {
    case KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_ECONOMIC: return "economic";
    case KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_TECHNICAL: return "technical";
    case KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_USER: return "user";
    case KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_FINANCIAL: return "financial";
    case KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_COACH: return "coach";
    default: return NULL;
    }
}

const char *visit_satisfaction_name(Ka__V1__Satisfaction v)
{
    switch (v) {
    case KA__V1__SATISFACTION__SATISFACTION_VERY_SATISFIED: return "very_satisfied";
    case KA__V1__SATISFACTION__SATISFACTION_SATISFIED: return "satisfied";
    case KA__V1__SATISFACTION__SATISFACTION_NEUTRAL: return "neutral";
    case KA__V1__SATISFACTION__SATISFACTION_DISSATISFIED: return "dissatisfied";
    case KA__V1__SATISFACTION__SATISFACTION_VERY_DISSATISFIED: return "very_dissatisfied";
    default: return NULL;
    }
}

const char *visit_action_name(Ka__V1__FollowUpAction v)
{
    switch (v) {
    case KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_CONTINUE: return "continue";
    case KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_PAUSE: return "pause";
    case KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_GIVE_UP: return "give_up";
    default: return NULL;
    }
}

#include <stdio.h>
#include <string.h>

#include "ka_envelope.h"
#include "ka_wire.h"
#include "ka_opp_decode.h"

static int known_enum(const ProtobufCEnumDescriptor *desc, int value)
{
    return value != 0 && protobuf_c_enum_descriptor_get_value(desc, value) != NULL;
}

/* An enum that may be left UNSPECIFIED (meaning "unchanged" or "not given"). */
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

static ka_err_t check_date(ka_reject_t *rej, const char *field, const char *value, int required)
{
    int y, m, d;
    if (!value || !*value)
        return required ? ka_reject(rej, KA_REASON_MISSING, "%s is required", field) : KA_OK;
    if (ka_parse_date(value, &y, &m, &d) != 0)
        return ka_reject(rej, KA_REASON_TIME, "%s=\"%.20s\" is not a YYYY-MM-DD date", field,
                         value);
    return KA_OK;
}

static ka_err_t check_lines(ka_reject_t *rej, Ka__V1__LineItem **lines, size_t n)
{
    char field[64];
    if (ka_check_count(rej, "lines", n, KA_MAX_LIST_LEN) != KA_OK)
        return KA_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        snprintf(field, sizeof field, "lines[%zu].sku", i);
        if (ka_check_id(rej, field, lines[i]->sku, KA_MAX_ID_LEN) != KA_OK)
            return KA_ERR_INVALID;
        if (lines[i]->quantity_milli <= 0 || lines[i]->quantity_milli > 1000000000000LL)
            return ka_reject(rej, KA_REASON_AMOUNT, "lines[%zu].quantity_milli=%lld is outside "
                             "1..10^12", i, (long long)lines[i]->quantity_milli);
        snprintf(field, sizeof field, "lines[%zu].unit_price_minor", i);
        if (ka_check_amount(rej, field, lines[i]->unit_price_minor, KA_MAX_AMOUNT_MINOR) != KA_OK)
            return KA_ERR_INVALID;
        snprintf(field, sizeof field, "lines[%zu].requirement", i);
        if (ka_check_text(rej, field, lines[i]->requirement, KA_MAX_TEXT_LEN) != KA_OK)
            return KA_ERR_INVALID;
    }
    return KA_OK;
}

static ka_err_t check_competitors(ka_reject_t *rej, char **names, size_t n)
{
    if (ka_check_count(rej, "competitors", n, OPP_MAX_COMPETITORS) != KA_OK)
        return KA_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (ka_check_text(rej, "competitors[]", names[i], 200) != KA_OK)
            return KA_ERR_INVALID;
    return KA_OK;
}

static ka_err_t check_stage_code(ka_reject_t *rej, const char *field, const char *code)
{
    if (!code || !*code)
        return ka_reject(rej, KA_REASON_MISSING, "%s is required", field);
    size_t len = strlen(code);
    for (size_t i = 0; i < len; i++) {
        char c = code[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              c == '_') || len > 16)
            return ka_reject(rej, KA_REASON_UNKNOWN_STAGE, "%s=\"%.20s\" is not a stage code",
                             field, code);
    }
    return KA_OK;
}

static ka_err_t check_created(ka_reject_t *rej, const Ka__V1__OpportunityCreated *c)
{
    const Ka__V1__AccountRef *a = c->account;
    if (!a)
        return ka_reject(rej, KA_REASON_ACCOUNT, "created.account is required");
    if (ka_check_optional_id(rej, "created.account.account_id", a->account_id, KA_MAX_ID_LEN) ||
        ka_check_text(rej, "created.account.name", a->name, 500) ||
        ka_check_text(rej, "created.account.unified_social_credit_code",
                      a->unified_social_credit_code, 18 * 4))
        return KA_ERR_INVALID;
    if ((!a->account_id || !*a->account_id) && (!a->name || !*a->name) &&
        (!a->unified_social_credit_code || !*a->unified_social_credit_code))
        return ka_reject(rej, KA_REASON_ACCOUNT,
                         "created.account needs an account_id, a credit code or a name");
    if (ka_check_id(rej, "created.owner_rep_id", c->owner_rep_id, KA_MAX_ID_LEN) ||
        ka_check_optional_id(rej, "created.business_unit_id", c->business_unit_id,
                             KA_MAX_ID_LEN) ||
        check_stage_code(rej, "created.stage_code", c->stage_code) ||
        ka_check_amount(rej, "created.amount_minor", c->amount_minor, KA_MAX_AMOUNT_MINOR) ||
        check_date(rej, "created.expected_close_date", c->expected_close_date, 0) ||
        check_lines(rej, c->lines, c->n_lines) ||
        check_competitors(rej, c->competitors, c->n_competitors) ||
        ka_check_text(rej, "created.name", c->name, 500) ||
        check_optional_enum(rej, "created.sales_mode", &ka__v1__sales_mode__descriptor,
                            c->sales_mode) ||
        check_optional_enum(rej, "created.relationship", &ka__v1__relationship_degree__descriptor,
                            c->relationship) ||
        check_optional_enum(rej, "created.impact", &ka__v1__impact__descriptor, c->impact))
        return KA_ERR_INVALID;
    return KA_OK;
}

static ka_err_t check_updated(ka_reject_t *rej, const Ka__V1__OpportunityUpdated *u)
{
    if (u->amount_minor_present_case &&
        ka_check_amount(rej, "updated.amount_minor", u->amount_minor, KA_MAX_AMOUNT_MINOR))
        return KA_ERR_INVALID;
    if (u->expected_close_date_present_case &&
        check_date(rej, "updated.expected_close_date", u->expected_close_date, 1))
        return KA_ERR_INVALID;
    if (check_lines(rej, u->lines, u->n_lines) ||
        check_competitors(rej, u->competitors, u->n_competitors) ||
        (u->name_present_case && ka_check_text(rej, "updated.name", u->name, 500)) ||
        check_optional_enum(rej, "updated.sales_mode", &ka__v1__sales_mode__descriptor,
                            u->sales_mode) ||
        check_optional_enum(rej, "updated.relationship", &ka__v1__relationship_degree__descriptor,
                            u->relationship) ||
        check_optional_enum(rej, "updated.impact", &ka__v1__impact__descriptor, u->impact))
        return KA_ERR_INVALID;
    return KA_OK;
}

static ka_err_t check_assessed(ka_reject_t *rej, const Ka__V1__ValueAssessed *a)
{
    const struct {
        const char *name;
        size_t n;
    } dims[] = {{"is_there_an_opportunity", a->n_is_there_an_opportunity},
                {"can_we_compete", a->n_can_we_compete},
                {"can_we_win", a->n_can_we_win},
                {"is_it_worth_winning", a->n_is_it_worth_winning}};
    for (size_t i = 0; i < 4; i++)
        if (dims[i].n != 5)
            return ka_reject(rej, KA_REASON_LIST,
                             "assessed.%s has %zu answers, exactly 5 are required", dims[i].name,
                             dims[i].n);
    return KA_OK;
}

static ka_err_t check_period(ka_reject_t *rej, const char *field, const Ka__V1__Period *p)
{
    if (!p)
        return ka_reject(rej, KA_REASON_MISSING, "%s is required", field);
    if (check_required_enum(rej, field, &ka__v1__period_kind__descriptor, p->kind))
        return KA_ERR_INVALID;
    int max = p->kind == KA__V1__PERIOD_KIND__PERIOD_KIND_MONTH ? 12 : 4;
    if (p->year < 2000 || p->year > 2200 || p->number < 1 || p->number > max)
        return ka_reject(rej, KA_REASON_TIME, "%s %d/%d is not a valid period", field, p->year,
                         p->number);
    return KA_OK;
}

KA_INPUT_DEFINE(ka_input_opportunity, opp, Ka__V1__OpportunityEvent, ka__v1__opportunity_event__descriptor)

ka_err_t opp_decode_validate(const Ka__V1__OpportunityEvent *ev, int64_t now_ms, char *event_id, size_t idlen,
                       ka_reject_t *rej)
{
    if (idlen)
        event_id[0] = '\0';
    /* five minutes of clock skew: the CRM stamps events as they happen */
    if (ka_check_header(rej, ev->header, now_ms, 5LL * 60 * 1000))
        return KA_ERR_INVALID;
    snprintf(event_id, idlen, "%s", ev->header->event_id);
    if (ka_check_id(rej, "opportunity_id", ev->opportunity_id, KA_MAX_ID_LEN) ||
        ka_check_optional_id(rej, "actor_id", ev->actor_id, KA_MAX_ID_LEN))
        return KA_ERR_INVALID;

    switch (ev->kind_case) {
    case KA__V1__OPPORTUNITY_EVENT__KIND_CREATED:
        return check_created(rej, ev->created);
    case KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED:
        return check_updated(rej, ev->updated);
    case KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED:
        if (check_stage_code(rej, "stage_changed.to_stage_code", ev->stage_changed->to_stage_code))
            return KA_ERR_INVALID;
        return ka_check_text(rej, "stage_changed.reason", ev->stage_changed->reason,
                             KA_MAX_TEXT_LEN);
    case KA__V1__OPPORTUNITY_EVENT__KIND_ASSESSED:
        return check_assessed(rej, ev->assessed);
    case KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED:
        if (ka_check_id(rej, "actor_id", ev->actor_id, KA_MAX_ID_LEN) ||
            ka_check_id(rej, "owner_changed.new_owner_rep_id", ev->owner_changed->new_owner_rep_id,
                        KA_MAX_ID_LEN))
            return KA_ERR_INVALID;
        return ka_check_text(rej, "owner_changed.reason", ev->owner_changed->reason,
                             KA_MAX_TEXT_LEN);
    case KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED:
        if (check_period(rej, "forecast_confirmed.period", ev->forecast_confirmed->period))
            return KA_ERR_INVALID;
        return check_optional_enum(rej, "forecast_confirmed.category",
                                   &ka__v1__forecast_category__descriptor,
                                   ev->forecast_confirmed->category);
    case KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED:
        if (ka_check_id(rej, "forecast_adjusted.node_id", ev->forecast_adjusted->node_id,
                        KA_MAX_ID_LEN) ||
            check_period(rej, "forecast_adjusted.period", ev->forecast_adjusted->period) ||
            check_required_enum(rej, "forecast_adjusted.category",
                                &ka__v1__forecast_category__descriptor,
                                ev->forecast_adjusted->category))
            return KA_ERR_INVALID;
        if (ev->forecast_adjusted->amount_minor_present_case &&
            ka_check_amount(rej, "forecast_adjusted.amount_minor",
                            ev->forecast_adjusted->amount_minor, KA_MAX_AMOUNT_MINOR))
            return KA_ERR_INVALID;
        if (!ev->forecast_adjusted->reason || !*ev->forecast_adjusted->reason)
            return ka_reject(rej, KA_REASON_MISSING, "forecast_adjusted.reason is required");
        return ka_check_text(rej, "forecast_adjusted.reason", ev->forecast_adjusted->reason,
                             KA_MAX_TEXT_LEN);
    case KA__V1__OPPORTUNITY_EVENT__KIND_WON:
        return ka_check_optional_id(rej, "won.order_id", ev->won->order_id, KA_MAX_ID_LEN);
    case KA__V1__OPPORTUNITY_EVENT__KIND_LOST:
        if (check_required_enum(rej, "lost.reason", &ka__v1__lost_reason__descriptor,
                                ev->lost->reason))
            return KA_ERR_INVALID;
        return ka_check_text(rej, "lost.reason_text", ev->lost->reason_text, KA_MAX_TEXT_LEN);
    case KA__V1__OPPORTUNITY_EVENT__KIND_REOPENED:
        return check_stage_code(rej, "reopened.stage_code", ev->reopened->stage_code);
    default:
        return ka_reject(rej, KA_REASON_MISSING, "the event has no kind (created, updated, ...)");
    }
}

const char *opp_kind_name(const Ka__V1__OpportunityEvent *ev)
{
    switch (ev->kind_case) {
    case KA__V1__OPPORTUNITY_EVENT__KIND_CREATED: return "created";
    case KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED: return "updated";
    case KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED: return "stage_changed";
    case KA__V1__OPPORTUNITY_EVENT__KIND_ASSESSED: return "assessed";
    case KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED: return "owner_changed";
    case KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED: return "forecast_confirmed";
    case KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED: return "forecast_adjusted";
    case KA__V1__OPPORTUNITY_EVENT__KIND_WON: return "won";
    case KA__V1__OPPORTUNITY_EVENT__KIND_LOST: return "lost";
    case KA__V1__OPPORTUNITY_EVENT__KIND_REOPENED: return "reopened";
    default: return "unknown";
    }
}

int opp_yes_count(const protobuf_c_boolean *answers, size_t n)
{
    int yes = 0;
    for (size_t i = 0; i < n; i++)
        yes += answers[i] ? 1 : 0;
    return yes;
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka/v1/alert.pb-c.h"
#include "ka_alert.h"
#include "ka_ids.h"
#include "ka_opp_decode.h"
#include "opp_internal.h"

/* Applying events in memory -------------------------------------------------- */

static const stage_t *find_stage(const opp_ctx_t *ctx, const char *def, const char *code)
{
    for (size_t i = 0; i < ctx->nstages; i++)
        if (strcmp(ctx->stages[i].code, code) == 0 && strcmp(ctx->stages[i].def, def) == 0)
            return &ctx->stages[i];
    return NULL;
}

static const stage_t *terminal_stage(const opp_ctx_t *ctx, const char *def, int won)
{
    for (size_t i = 0; i < ctx->nstages; i++)
        if (strcmp(ctx->stages[i].def, def) == 0 &&
            (won ? ctx->stages[i].is_won : ctx->stages[i].is_lost))
            return &ctx->stages[i];
    return NULL;
}

static const char *definition_of(const opp_ctx_t *ctx, const char *bu)
{
    for (size_t i = 0; bu && *bu && i < ctx->nbus; i++)
        if (strcmp(ctx->bus[i].id, bu) == 0)
            return ctx->bus[i].def;
    return ctx->default_def;
}

static int64_t weighted(int64_t amount, int prob_bp)
{
    return (amount * prob_bp + 5000) / 10000; /* as the opportunity table computes it */
}

/* Funnel deltas: an open opportunity counts at (owner, definition, stage). */
static void add_delta(opp_ctx_t *ctx, const opp_t *o, int sign)
{
    if (strcmp(o->status, "open") != 0)
        return;
    delta_t *d = NULL;
    for (size_t i = 0; i < ctx->ndeltas; i++) {
        delta_t *c = &ctx->deltas[i];
        if (!strcmp(c->rep, o->owner) && !strcmp(c->def, o->def) && !strcmp(c->stage, o->stage)) {
            d = c;
            break;
        }
    }
    if (!d) {
        if (ctx->ndeltas == ctx->capdeltas) {
            ctx->capdeltas = ctx->capdeltas ? ctx->capdeltas * 2 : 64;
            ctx->deltas = ka_realloc(ctx->deltas, ctx->capdeltas * sizeof *ctx->deltas);
        }
        d = &ctx->deltas[ctx->ndeltas++];
        memset(d, 0, sizeof *d);
        copy(d->rep, sizeof d->rep, o->owner);
        copy(d->def, sizeof d->def, o->def);
        copy(d->stage, sizeof d->stage, o->stage);
    }
    d->count += sign;
    d->amount += sign * o->amount;
    d->weighted += sign * weighted(o->amount, o->prob_bp);
}

/* Only a manager of one of the owner's ancestor nodes may change the owner
 * (只有其上级才能更换). */
static int is_superior(const opp_ctx_t *ctx, const char *owner, const char *actor)
{
    for (size_t i = 0; i < ctx->nmanagers; i++)
        if (strcmp(ctx->managers[i].rep, owner) == 0 && strcmp(ctx->managers[i].manager, actor) == 0)
            return 1;
    return 0;
}

static const char *enum_sales_mode(int v)
{
    switch (v) {
    case KA__V1__SALES_MODE__SALES_MODE_BID: return "bid";
    case KA__V1__SALES_MODE__SALES_MODE_DIRECT: return "direct";
    case KA__V1__SALES_MODE__SALES_MODE_DISTRIBUTION: return "distribution";
    default: return NULL;
    }
}

static const char *enum_relationship(int v)
{
    switch (v) {
    case KA__V1__RELATIONSHIP_DEGREE__RELATIONSHIP_DEGREE_OVER_80: return "over_80";
    case KA__V1__RELATIONSHIP_DEGREE__RELATIONSHIP_DEGREE_OVER_60: return "over_60";
    case KA__V1__RELATIONSHIP_DEGREE__RELATIONSHIP_DEGREE_UNDER_30: return "under_30";
    case KA__V1__RELATIONSHIP_DEGREE__RELATIONSHIP_DEGREE_UNKNOWN: return "unknown";
    default: return NULL;
    }
}

static const char *enum_impact(int v)
{
    switch (v) {
    case KA__V1__IMPACT__IMPACT_VERY_LARGE: return "very_large";
    case KA__V1__IMPACT__IMPACT_LARGE: return "large";
    case KA__V1__IMPACT__IMPACT_MEDIUM: return "medium";
    case KA__V1__IMPACT__IMPACT_ORDINARY: return "ordinary";
    default: return NULL;
    }
}

static const char *enum_category(int v)
{
    switch (v) {
    case KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_PIPELINE: return "pipeline";
    case KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_BEST_CASE: return "best_case";
    case KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_COMMIT: return "commit";
    case KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_CLOSED: return "closed";
    case KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_OMITTED: return "omitted";
    default: return NULL;
    }
}

static const char *lost_reason_name(int v)
{
    const ProtobufCEnumValue *e =
        protobuf_c_enum_descriptor_get_value(&ka__v1__lost_reason__descriptor, v);
    return e ? e->name + strlen("LOST_REASON_") : "other";
}

static void set_lines(opp_t *o, Ka__V1__LineItem **lines, size_t n)
{
    opp_free_lines(o);
    o->lines = ka_calloc(n + 1, sizeof *o->lines);
    o->nlines = n;
    for (size_t i = 0; i < n; i++) {
        o->lines[i].sku = ka_strdup(lines[i]->sku);
        o->lines[i].requirement = lines[i]->requirement && *lines[i]->requirement
                                      ? ka_strdup(lines[i]->requirement)
                                      : NULL;
        o->lines[i].qty_milli = lines[i]->quantity_milli;
        o->lines[i].price = lines[i]->unit_price_minor;
    }
    o->lines_replaced = 1;
}

static char *competitors_literal(char **names, size_t n)
{
    ka_buf_t b = KA_BUF_INIT;
    ka_buf_array_begin(&b);
    for (size_t i = 0; i < n; i++)
        ka_buf_array_add(&b, names[i]);
    ka_buf_array_end(&b);
    return b.data;
}

void opp_record_event(event_rows_t *r, const ka_event_t *ev, const Ka__V1__OpportunityEvent *e,
                         const char *not_applied)
{
    ka_buf_array_add(&r->opp, e->opportunity_id);
    ka_buf_array_add(&r->id, ev->event_id);
    ka_buf_array_add(&r->kind, opp_kind_name(e));
    ka_buf_array_add_int(&r->at, e->header->occurred_at_ms);
    ka_buf_array_add(&r->applied, not_applied ? "f" : "t");
    ka_buf_array_add(&r->reason, not_applied);
    ka_buf_array_add(&r->topic, ev->msg->topic);
    ka_buf_array_add_int(&r->part, ev->msg->partition);
    ka_buf_array_add_int(&r->off, ev->msg->offset);
}

static void record_stage(stage_rows_t *r, const opp_t *o, const char *from, int64_t from_ms,
                         const char *event_id, int64_t at_ms)
{
    ka_buf_array_add(&r->opp, o->id);
    ka_buf_array_add(&r->def, o->def);
    ka_buf_array_add(&r->from, from);
    ka_buf_array_add(&r->to, o->stage);
    ka_buf_array_add(&r->id, event_id);
    ka_buf_array_add_int(&r->at, at_ms);
    if (from && at_ms >= from_ms)
        ka_buf_array_add_int(&r->dwell, (at_ms - from_ms) / 1000);
    else
        ka_buf_array_add(&r->dwell, NULL);
}

/* Moves o to `st` (a stage of its definition) at time t. */
static void enter_stage(opp_t *o, const stage_t *st, int64_t t, stage_rows_t *rows,
                        const char *event_id)
{
    char from[17];
    int had = o->stage[0] != '\0';
    copy(from, sizeof from, o->stage);
    int64_t from_ms = o->stage_entered_ms;
    copy(o->stage, sizeof o->stage, st->code);
    o->prob_bp = st->prob_bp;
    o->stage_entered_ms = t;
    if (st->is_won || st->is_lost) {
        copy(o->status, sizeof o->status, st->is_won ? "won" : "lost");
        o->closed_ms = t;
    } else {
        copy(o->status, sizeof o->status, "open");
        o->closed_ms = 0;
        free(o->lost_reason);
        o->lost_reason = NULL;
    }
    record_stage(rows, o, had ? from : NULL, from_ms, event_id, t);
}

/* 只有其上级才能更换: one alert per opportunity while attempts go on; it
 * resolves when a superior hands the deal over or it closes. */
static ka_err_t unauthorized_alert(ka_tx_t *tx, opp_t *o, const ka_event_t *ev,
                                   const char *actor, int firing, int64_t at, char *errstr,
                                   size_t errlen)
{
    char fp[KA_FINGERPRINT_LEN], summary[300];
    const char *labels[] = {o->id};
    const char *causes[] = {ev->event_id};
    ka_alert_fingerprint(fp, "unauthorized_owner_change", labels, 1);
    if (firing)
        snprintf(summary, sizeof summary, "%s tried to change the owner of opportunity %s, "
                 "owned by %s, without being a superior", actor, o->id, o->owner);
    else
        snprintf(summary, sizeof summary, "opportunity %s was handed over properly or closed",
                 o->id);
    const char *keys[] = {"opportunity_id", "owner_rep_id", "actor_id"};
    const char *vals[] = {o->id, o->owner, actor};
    ka_alert_t a = {
        .type = "unauthorized_owner_change",
        .proto_type = KA__V1__ALERT_TYPE__ALERT_TYPE_UNAUTHORIZED_OWNER_CHANGE,
        .severity = "warning",
        .subject_kind = "opportunity",
        .subject_id = o->id,
        .fingerprint = fp,
        .summary = summary,
        .detail_keys = keys,
        .detail_values = vals,
        .ndetails = 3,
        .starts_at_ms = firing ? at : o->unauthorized_since,
        .at_ms = at,
        .causes = causes,
        .ncauses = 1,
    };
    ka_err_t rc = ka_alert_transition(tx, &a, firing, errstr, errlen);
    if (rc == KA_OK)
        o->unauthorized_since = firing ? at : 0;
    return rc;
}

/* Applies one event to its opportunity in memory. Returns NULL when applied,
 * a not-applied reason for history ("stale", ...), or rejects the event. */
const char *opp_apply_one(opp_ctx_t *ctx, ka_tx_t *tx, ka_event_t *ev, stage_rows_t *stages,
                             confirm_rows_t *confirms, ka_err_t *rc, char *errstr, size_t errlen)
{
    Ka__V1__OpportunityEvent *e = ev->decoded;
    opp_t *o = opp_find(ctx, e->opportunity_id);
    int64_t t = e->header->occurred_at_ms;
    const stage_t *st;

    if (e->kind_case == KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED)
        return "forecast_worker"; /* node-level: the forecast worker applies it */
    if (e->kind_case == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED) {
        Ka__V1__OpportunityCreated *c = e->created;
        if (o->exists)
            return "already_exists";
        const char *account = ka_accounts_id(&ctx->accounts, c->account);
        if (!account && c->account->account_id && *c->account->account_id) {
            ka_tx_reject(tx, ev, KA_REASON_ACCOUNT, "created.account.account_id \"%s\" is "
                         "not a known account", c->account->account_id);
            return NULL;
        }
        if (!account) {
            ka_tx_reject(tx, ev, KA_REASON_ACCOUNT, "the account of the opportunity could not "
                         "be resolved");
            return NULL;
        }
        const char *def = definition_of(ctx, c->business_unit_id);
        if (!(st = find_stage(ctx, def, c->stage_code)) || st->is_lost) {
            ka_tx_reject(tx, ev, KA_REASON_UNKNOWN_STAGE, "stage \"%s\" is not an open stage of "
                         "funnel \"%s\"", c->stage_code, def);
            return NULL;
        }
        memset(o->account_id, 0, sizeof o->account_id);
        copy(o->account_id, sizeof o->account_id, account);
        copy(o->owner, sizeof o->owner, c->owner_rep_id);
        copy(o->bu, sizeof o->bu, c->business_unit_id);
        copy(o->def, sizeof o->def, def);
        o->stage[0] = '\0';
        o->amount = c->amount_minor;
        copy(o->close_date, sizeof o->close_date, c->expected_close_date);
        copy(o->sales_mode, sizeof o->sales_mode, enum_sales_mode(c->sales_mode));
        copy(o->relationship, sizeof o->relationship,
             enum_relationship(c->relationship) ? enum_relationship(c->relationship) : "unknown");
        copy(o->impact, sizeof o->impact, enum_impact(c->impact));
        free(o->competitors);
        o->competitors = competitors_literal(c->competitors, c->n_competitors);
        for (int k = 0; k < 4; k++)
            o->assess[k] = -1;
        set_lines(o, c->lines, c->n_lines);
        o->exists = 1;
        enter_stage(o, st, t, stages, ev->event_id);
        for (size_t k = 0; k < ctx->nbooked; k++) {
            const stage_t *won = terminal_stage(ctx, o->def, 1);
            if (strcmp(ctx->booked_opps[k], o->id) != 0 || !won)
                continue;
            /* Its order was booked before the deal reached us: it is won,
             * under the id the order's own won event carries. */
            char won_id[KA_DERIVED_ID_LEN];
            ka_order_won_event_id(ctx->booked_orders[k], won_id);
            enter_stage(o, won, ctx->booked_ms[k] > t ? ctx->booked_ms[k] : t, stages, won_id);
        }
        add_delta(ctx, o, +1);
        goto applied;
    }
    if (!o->exists && e->kind_case == KA__V1__OPPORTUNITY_EVENT__KIND_WON &&
        e->won->order_id && *e->won->order_id)
        return "awaiting_created"; /* the order came first; the created event closes it */
    if (!o->exists) {
        ka_tx_reject(tx, ev, KA_REASON_UNKNOWN_OPPORTUNITY, "opportunity \"%s\" has no created event",
                     e->opportunity_id);
        return NULL;
    }
    if (t < o->last_event_ms)
        return "stale"; /* kept in history; the state does not roll back */

    add_delta(ctx, o, -1); /* take it out of the funnel, put it back after */
    switch (e->kind_case) {
    case KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED: {
        Ka__V1__OpportunityUpdated *u = e->updated;
        if (u->amount_minor_present_case)
            o->amount = u->amount_minor;
        if (u->expected_close_date_present_case)
            copy(o->close_date, sizeof o->close_date, u->expected_close_date);
        if (u->replace_lines)
            set_lines(o, u->lines, u->n_lines);
        if (enum_sales_mode(u->sales_mode))
            copy(o->sales_mode, sizeof o->sales_mode, enum_sales_mode(u->sales_mode));
        if (u->replace_competitors) {
            free(o->competitors);
            o->competitors = competitors_literal(u->competitors, u->n_competitors);
        }
        if (enum_relationship(u->relationship))
            copy(o->relationship, sizeof o->relationship, enum_relationship(u->relationship));
        if (enum_impact(u->impact))
            copy(o->impact, sizeof o->impact, enum_impact(u->impact));
        break;
    }
    case KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED:
        st = find_stage(ctx, o->def, e->stage_changed->to_stage_code);
        if (!st) {
            add_delta(ctx, o, +1);
            ka_tx_reject(tx, ev, KA_REASON_UNKNOWN_STAGE, "stage \"%s\" is not in funnel \"%s\"",
                         e->stage_changed->to_stage_code, o->def);
            return NULL;
        }
        if (strcmp(st->code, o->stage) != 0)
            enter_stage(o, st, t, stages, ev->event_id);
        break;
    case KA__V1__OPPORTUNITY_EVENT__KIND_ASSESSED: {
        Ka__V1__ValueAssessed *a = e->assessed;
        o->assess[0] = opp_yes_count(a->is_there_an_opportunity, a->n_is_there_an_opportunity);
        o->assess[1] = opp_yes_count(a->can_we_compete, a->n_can_we_compete);
        o->assess[2] = opp_yes_count(a->can_we_win, a->n_can_we_win);
        o->assess[3] = opp_yes_count(a->is_it_worth_winning, a->n_is_it_worth_winning);
        o->assessed_ms = t;
        break;
    }
    case KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED:
        if (!is_superior(ctx, o->owner, e->actor_id)) {
            add_delta(ctx, o, +1);
            ka_tx_reject(tx, ev, KA_REASON_UNAUTHORIZED, "\"%s\" manages no ancestor of owner "
                         "\"%s\" and may not change the owner", e->actor_id, o->owner);
            if (!o->unauthorized_since)
                *rc = unauthorized_alert(tx, o, ev, e->actor_id, 1, t, errstr, errlen);
            return NULL;
        }
        if (o->unauthorized_since)
            *rc = unauthorized_alert(tx, o, ev, e->actor_id, 0, t, errstr, errlen);
        copy(o->owner, sizeof o->owner, e->owner_changed->new_owner_rep_id);
        break;
    case KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED: {
        Ka__V1__Period *p = e->forecast_confirmed->period;
        char start[16];
        /* 商机确认 (避免重复计算): only the owner of the moment confirms. */
        if (!e->actor_id || !*e->actor_id || strcmp(e->actor_id, o->owner) != 0) {
            add_delta(ctx, o, +1);
            if (!e->actor_id || !*e->actor_id)
                ka_tx_reject(tx, ev, KA_REASON_MISSING_ACTOR, "a forecast confirmation needs "
                             "actor_id: only the owner \"%s\" may confirm", o->owner);
            else
                ka_tx_reject(tx, ev, KA_REASON_NOT_OWNER, "\"%s\" is not the owner \"%s\": only "
                             "the owner may confirm", e->actor_id, o->owner);
            return NULL;
        }
        int month = p->kind == KA__V1__PERIOD_KIND__PERIOD_KIND_MONTH ? p->number
                                                                      : (p->number - 1) * 3 + 1;
        snprintf(start, sizeof start, "%04d-%02d-01", p->year, month);
        ka_buf_array_add(&confirms->opp, o->id);
        ka_buf_array_add(&confirms->kind,
                         p->kind == KA__V1__PERIOD_KIND__PERIOD_KIND_MONTH ? "month" : "quarter");
        ka_buf_array_add(&confirms->start, start);
        ka_buf_array_add(&confirms->owner, o->owner);
        ka_buf_array_add(&confirms->category, enum_category(e->forecast_confirmed->category));
        ka_buf_array_add(&confirms->id, ev->event_id);
        ka_buf_array_add_int(&confirms->at, t);
        break;
    }
    case KA__V1__OPPORTUNITY_EVENT__KIND_WON:
    case KA__V1__OPPORTUNITY_EVENT__KIND_LOST: {
        int won = e->kind_case == KA__V1__OPPORTUNITY_EVENT__KIND_WON;
        st = terminal_stage(ctx, o->def, won);
        if (!st) {
            add_delta(ctx, o, +1);
            ka_tx_reject(tx, ev, KA_REASON_UNKNOWN_STAGE, "funnel \"%s\" has no %s stage", o->def,
                         won ? "won" : "lost");
            return NULL;
        }
        if (strcmp(o->status, "open") != 0) {
            add_delta(ctx, o, +1);
            return "already_closed"; /* won once: an order and a won event both close it */
        }
        enter_stage(o, st, t, stages, ev->event_id);
        if (o->unauthorized_since)
            *rc = unauthorized_alert(tx, o, ev, e->actor_id ? e->actor_id : "", 0, t, errstr,
                                     errlen);
        if (!won) {
            ka_buf_t r = KA_BUF_INIT;
            ka_buf_puts(&r, lost_reason_name(e->lost->reason));
            if (e->lost->reason_text && *e->lost->reason_text)
                ka_buf_printf(&r, ": %s", e->lost->reason_text);
            free(o->lost_reason);
            o->lost_reason = r.data;
        }
        break;
    }
    case KA__V1__OPPORTUNITY_EVENT__KIND_REOPENED:
        st = find_stage(ctx, o->def, e->reopened->stage_code);
        if (!st || st->is_won || st->is_lost) {
            add_delta(ctx, o, +1);
            ka_tx_reject(tx, ev, KA_REASON_UNKNOWN_STAGE, "stage \"%s\" is not an open stage "
                         "of funnel \"%s\"", e->reopened->stage_code, o->def);
            return NULL;
        }
        if (strcmp(o->status, "open") == 0 && strcmp(o->stage, st->code) == 0)
            break;
        enter_stage(o, st, t, stages, ev->event_id);
        break;
    default:
        break;
    }
    add_delta(ctx, o, +1);
applied:
    o->touched = 1;
    o->version++;
    o->last_event_ms = t;
    copy(o->last_event_id, sizeof o->last_event_id, ev->event_id);
    return NULL;
}

/* The opportunity worker's batch logic. One batch costs three round trips:
 * the runtime's BEGIN + event-id dedupe; one pipeline here that reads the
 * batch's opportunities (locked), the reference data when stale, the owner
 * hierarchy and resolves (creates) the accounts new opportunities name
 * (ka_accounts.c); and one that writes everything and commits (queued here,
 * run by the runtime). The events themselves are applied in memory, in
 * order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/alert.pb-c.h"
#include "ka_account_key.h"
#include "ka_accounts.h"
#include "ka_alert.h"
#include "ka_buf.h"
#include "ka_ids.h"
#include "ka_log.h"
#include "ka_opp_decode.h"
#include "opp_health.h"
#include "opp_reorg.h"
#include "opp_stalled.h"
#include "opp_worker.h"

#define REFERENCE_MAX_AGE_MS 10000

/* Reference data ------------------------------------------------------------ */

typedef struct stage {
    char def[KA_MAX_ID_LEN + 1];
    char code[17];
    int prob_bp;
    int is_won, is_lost;
} stage_t;

typedef struct bu {
    char id[KA_MAX_ID_LEN + 1];
    char def[KA_MAX_ID_LEN + 1];
} bu_t;

/* In-memory state of one opportunity during a batch ----------------------- */

typedef struct line {
    char *sku, *requirement;
    int64_t qty_milli, price;
} line_t;

typedef struct opp {
    char id[KA_MAX_ID_LEN + 1];
    int exists;  /* in the database or created earlier in this batch */
    int stored;  /* its row was in the database before this batch */
    int touched; /* must be written back */
    char account_id[KA_MAX_ID_LEN + 1];
    char owner[KA_MAX_ID_LEN + 1];
    char bu[KA_MAX_ID_LEN + 1];
    char def[KA_MAX_ID_LEN + 1];
    char stage[17];
    int64_t amount;
    int prob_bp;
    char status[8];
    char *lost_reason;
    int64_t closed_ms; /* 0: open */
    int64_t stage_entered_ms;
    char close_date[11];
    char sales_mode[16], relationship[16], impact[16];
    char *competitors; /* a PostgreSQL array literal */
    int assess[4];     /* -1: not assessed */
    int64_t assessed_ms;
    int64_t version, last_event_ms;
    char last_event_id[KA_MAX_ID_LEN + 1];
    int64_t unauthorized_since; /* a firing unauthorized-owner-change alert; 0: none */
    int lines_replaced;
    line_t *lines;
    size_t nlines;
} opp_t;

typedef struct delta {
    char rep[KA_MAX_ID_LEN + 1], def[KA_MAX_ID_LEN + 1], stage[17];
    int64_t count, amount, weighted;
} delta_t;

typedef struct funnel_row {
    char *node, *def, *stage, *count, *amount, *weighted;
} funnel_row_t;

typedef struct health_in {
    char *node, *def, *stage, *metric;
    int64_t baseline; /* -1: none */
    opp_health_t previous;
    int64_t since_ms;
    int stored;               /* a funnel_health row exists */
    int64_t stored_baseline;  /* its baseline_value; -1: none */
} health_in_t;

typedef struct manager_pair {
    char *rep, *manager;
} manager_pair_t;

struct opp_ctx {
    const ka_config_t *cfg;
    stage_t *stages;
    size_t nstages;
    bu_t *bus;
    size_t nbus;
    char default_def[KA_MAX_ID_LEN + 1];
    int64_t reference_loaded_ms; /* monotonic; 0 forces a reload */

    /* per batch */
    opp_t *opps;
    size_t nopps;
    delta_t *deltas;
    size_t ndeltas, capdeltas;
    manager_pair_t *managers;
    size_t nmanagers;
    ka_accounts_t accounts; /* the accounts new opportunities name */
    /* booked orders naming opportunities this batch creates: order came first */
    char **booked_opps, **booked_orders;
    int64_t *booked_ms;
    size_t nbooked;

    health_in_t *health;
    size_t nhealth;
    int warning_bp, hysteresis_bp;
    int64_t scan_interval_ms, next_scan_ms, next_reorg_ms;
    int no_visit_days;
    int64_t batch_at_ms;       /* latest applied event time: alert times derive from it */
    const char *causes[10];    /* a sample of the batch's applied event ids */
    size_t ncauses;

    /* after commit: absolute funnel values to cache */
    funnel_row_t *funnel;
    size_t nfunnel;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

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

static opp_t *find_opp(opp_ctx_t *ctx, const char *id)
{
    for (size_t i = 0; i < ctx->nopps; i++)
        if (strcmp(ctx->opps[i].id, id) == 0)
            return &ctx->opps[i];
    return NULL;
}

static void free_lines(opp_t *o)
{
    for (size_t i = 0; i < o->nlines; i++) {
        free(o->lines[i].sku);
        free(o->lines[i].requirement);
    }
    free(o->lines);
    o->lines = NULL;
    o->nlines = 0;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void reset_batch(opp_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nopps; i++) {
        free(ctx->opps[i].lost_reason);
        free(ctx->opps[i].competitors);
        free_lines(&ctx->opps[i]);
    }
    free(ctx->opps);
    ctx->opps = NULL;
    ctx->nopps = 0;
    ctx->ndeltas = 0;
    for (size_t i = 0; i < ctx->nmanagers; i++) {
        free(ctx->managers[i].rep);
        free(ctx->managers[i].manager);
    }
    free(ctx->managers);
    ctx->managers = NULL;
    ctx->nmanagers = 0;
    ka_accounts_free(&ctx->accounts);
    for (size_t i = 0; i < ctx->nhealth; i++) {
        free(ctx->health[i].node);
        free(ctx->health[i].def);
        free(ctx->health[i].stage);
        free(ctx->health[i].metric);
    }
    free(ctx->health);
    ctx->health = NULL;
    ctx->nhealth = 0;
    ctx->batch_at_ms = 0;
    ctx->ncauses = 0;
    free_strv(ctx->booked_opps, ctx->nbooked);
    free_strv(ctx->booked_orders, ctx->nbooked);
    free(ctx->booked_ms);
    ctx->booked_opps = ctx->booked_orders = NULL;
    ctx->booked_ms = NULL;
    ctx->nbooked = 0;
}

static void reset_funnel(opp_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nfunnel; i++) {
        funnel_row_t *r = &ctx->funnel[i];
        free(r->node);
        free(r->def);
        free(r->stage);
        free(r->count);
        free(r->amount);
        free(r->weighted);
    }
    free(ctx->funnel);
    ctx->funnel = NULL;
    ctx->nfunnel = 0;
}

/* Reading rows ----------------------------------------------------------- */

static const char *val(const ka_pgres_t *res, int row, int col)
{
    const char *v = ka_pgres_value(res, row, col);
    return v ? v : "";
}

static int read_stages(void *ud, const ka_pgres_t *res)
{
    opp_ctx_t *ctx = ud;
    free(ctx->stages);
    ctx->nstages = (size_t)ka_pgres_rows(res);
    ctx->stages = ka_calloc(ctx->nstages + 1, sizeof *ctx->stages);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        stage_t *s = &ctx->stages[i];
        copy(s->def, sizeof s->def, val(res, i, 0));
        copy(s->code, sizeof s->code, val(res, i, 1));
        s->prob_bp = (int)ka_pgres_int(res, i, 2, 0);
        s->is_won = val(res, i, 3)[0] == 't';
        s->is_lost = val(res, i, 4)[0] == 't';
    }
    return 0;
}

static int read_bus(void *ud, const ka_pgres_t *res)
{
    opp_ctx_t *ctx = ud;
    free(ctx->bus);
    ctx->nbus = (size_t)ka_pgres_rows(res);
    ctx->bus = ka_calloc(ctx->nbus + 1, sizeof *ctx->bus);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        copy(ctx->bus[i].id, sizeof ctx->bus[i].id, val(res, i, 0));
        copy(ctx->bus[i].def, sizeof ctx->bus[i].def, val(res, i, 1));
    }
    return 0;
}

static int read_default_def(void *ud, const ka_pgres_t *res)
{
    opp_ctx_t *ctx = ud;
    copy(ctx->default_def, sizeof ctx->default_def,
         ka_pgres_rows(res) ? val(res, 0, 0) : "default-8");
    ctx->reference_loaded_ms = mono_ms();
    return 0;
}

static int read_opps(void *ud, const ka_pgres_t *res)
{
    opp_ctx_t *ctx = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        opp_t *o = find_opp(ctx, val(res, i, 0));
        if (!o)
            continue;
        o->exists = 1;
        o->stored = 1;
        copy(o->account_id, sizeof o->account_id, val(res, i, 1));
        copy(o->owner, sizeof o->owner, val(res, i, 2));
        copy(o->bu, sizeof o->bu, val(res, i, 3));
        copy(o->def, sizeof o->def, val(res, i, 4));
        copy(o->stage, sizeof o->stage, val(res, i, 5));
        o->amount = ka_pgres_int(res, i, 6, 0);
        o->prob_bp = (int)ka_pgres_int(res, i, 7, 0);
        copy(o->close_date, sizeof o->close_date, val(res, i, 8));
        copy(o->sales_mode, sizeof o->sales_mode, val(res, i, 9));
        free(o->competitors);
        o->competitors = ka_strdup(ka_pgres_value(res, i, 10) ? val(res, i, 10) : "{}");
        copy(o->relationship, sizeof o->relationship, val(res, i, 11));
        copy(o->impact, sizeof o->impact, val(res, i, 12));
        copy(o->status, sizeof o->status, val(res, i, 13));
        o->lost_reason = ka_pgres_value(res, i, 14) ? ka_strdup(val(res, i, 14)) : NULL;
        o->closed_ms = ka_pgres_int(res, i, 15, 0);
        o->stage_entered_ms = ka_pgres_int(res, i, 16, 0);
        for (int k = 0; k < 4; k++)
            o->assess[k] = (int)ka_pgres_int(res, i, 17 + k, -1);
        o->assessed_ms = ka_pgres_int(res, i, 21, 0);
        o->version = ka_pgres_int(res, i, 22, 0);
        o->last_event_ms = ka_pgres_int(res, i, 23, 0);
        copy(o->last_event_id, sizeof o->last_event_id, val(res, i, 24));
    }
    return 0;
}

static int read_managers(void *ud, const ka_pgres_t *res)
{
    opp_ctx_t *ctx = ud;
    ctx->nmanagers = (size_t)ka_pgres_rows(res);
    ctx->managers = ka_calloc(ctx->nmanagers + 1, sizeof *ctx->managers);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        ctx->managers[i].rep = ka_strdup(val(res, i, 0));
        ctx->managers[i].manager = ka_strdup(val(res, i, 1));
    }
    return 0;
}

static int read_funnel(void *ud, const ka_pgres_t *res)
{
    opp_ctx_t *ctx = ud;
    size_t n = (size_t)ka_pgres_rows(res);
    ctx->funnel = ka_realloc(ctx->funnel, (ctx->nfunnel + n + 1) * sizeof *ctx->funnel);
    for (int i = 0; i < (int)n; i++) {
        funnel_row_t *r = &ctx->funnel[ctx->nfunnel++];
        r->node = ka_strdup(val(res, i, 0));
        r->def = ka_strdup(val(res, i, 1));
        r->stage = ka_strdup(val(res, i, 2));
        r->count = ka_strdup(val(res, i, 3));
        r->amount = ka_strdup(val(res, i, 4));
        r->weighted = ka_strdup(val(res, i, 5));
    }
    return 0;
}

static int read_health_inputs(void *ud, const ka_pgres_t *res)
{
    opp_ctx_t *ctx = ud;
    ctx->nhealth = (size_t)ka_pgres_rows(res);
    ctx->health = ka_calloc(ctx->nhealth + 1, sizeof *ctx->health);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        health_in_t *h = &ctx->health[i];
        h->node = ka_strdup(val(res, i, 0));
        h->def = ka_strdup(val(res, i, 1));
        h->stage = ka_strdup(val(res, i, 2));
        h->metric = ka_strdup(val(res, i, 3));
        h->baseline = ka_pgres_int(res, i, 4, -1);
        h->previous = opp_health_parse(ka_pgres_value(res, i, 5));
        h->since_ms = ka_pgres_int(res, i, 6, 0);
        h->stored_baseline = ka_pgres_int(res, i, 7, -1);
        h->stored = ka_pgres_value(res, i, 5) != NULL;
    }
    return 0;
}

static int read_unauthorized(void *ud, const ka_pgres_t *res)
{
    opp_ctx_t *ctx = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        opp_t *o = find_opp(ctx, val(res, i, 0));
        if (o)
            o->unauthorized_since = ka_pgres_int(res, i, 1, 0);
    }
    return 0;
}

static int read_booked(void *ud, const ka_pgres_t *res)
{
    opp_ctx_t *ctx = ud;
    ctx->nbooked = (size_t)ka_pgres_rows(res);
    ctx->booked_opps = ka_calloc(ctx->nbooked + 1, sizeof(char *));
    ctx->booked_orders = ka_calloc(ctx->nbooked + 1, sizeof(char *));
    ctx->booked_ms = ka_calloc(ctx->nbooked + 1, sizeof(int64_t));
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        ctx->booked_opps[i] = ka_strdup(val(res, i, 0));
        ctx->booked_orders[i] = ka_strdup(val(res, i, 1));
        ctx->booked_ms[i] = ka_pgres_int(res, i, 2, 0);
    }
    return 0;
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

/* Applying events in memory -------------------------------------------------- */

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
    free_lines(o);
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

/* Appends one row to the opportunity_event arrays. */
typedef struct event_rows {
    ka_buf_t opp, id, kind, at, applied, reason, topic, part, off;
} event_rows_t;

typedef struct stage_rows {
    ka_buf_t opp, def, from, to, id, at, dwell;
} stage_rows_t;

typedef struct confirm_rows {
    ka_buf_t opp, kind, start, owner, category, id, at;
} confirm_rows_t;

static void record_event(event_rows_t *r, const ka_event_t *ev, const Ka__V1__OpportunityEvent *e,
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
static const char *apply_one(opp_ctx_t *ctx, ka_tx_t *tx, ka_event_t *ev, stage_rows_t *stages,
                             confirm_rows_t *confirms, ka_err_t *rc, char *errstr, size_t errlen)
{
    Ka__V1__OpportunityEvent *e = ev->decoded;
    opp_t *o = find_opp(ctx, e->opportunity_id);
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

/* The batch ------------------------------------------------------------------ */

static ka_err_t queue_reads(opp_ctx_t *ctx, ka_tx_t *tx, ka_event_t *const *events, size_t n,
                            char *errstr, size_t errlen)
{
    ka_pg_t *pg = ka_tx_pg(tx);
    ka_buf_t ids = KA_BUF_INIT, owners = KA_BUF_INIT;
    int any_owner_change = 0, any_created = 0;
    ka_err_t rc = KA_OK;

    ka_buf_array_begin(&ids);
    ka_buf_array_begin(&owners);
    ka_accounts_begin(&ctx->accounts);
    for (size_t i = 0; i < n; i++) {
        Ka__V1__OpportunityEvent *e = events[i]->decoded;
        if (!find_opp(ctx, e->opportunity_id)) {
            ctx->opps = ka_realloc(ctx->opps, (ctx->nopps + 1) * sizeof *ctx->opps);
            opp_t *o = &ctx->opps[ctx->nopps++];
            memset(o, 0, sizeof *o);
            copy(o->id, sizeof o->id, e->opportunity_id);
            o->competitors = ka_strdup("{}");
            ka_buf_array_add(&ids, e->opportunity_id);
        }
        if (e->kind_case == KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED) {
            any_owner_change = 1;
            ka_buf_array_add(&owners, e->owner_changed->new_owner_rep_id);
        }
        if (e->kind_case == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED) {
            any_created = 1;
            ka_buf_array_add(&owners, e->created->owner_rep_id);
            ka_accounts_add(&ctx->accounts, e->created->account, e->created->owner_rep_id,
                            events[i]->event_id);
        }
    }
    ka_buf_array_end(&ids);
    ka_buf_array_end(&owners);

    if (ctx->reference_loaded_ms == 0 || mono_ms() - ctx->reference_loaded_ms > REFERENCE_MAX_AGE_MS) {
        if ((rc = ka_pg_pipe_push(pg, "opp_stages", 0, NULL, read_stages, ctx, errstr, errlen)) ||
            (rc = ka_pg_pipe_push(pg, "opp_bus", 0, NULL, read_bus, ctx, errstr, errlen)) ||
            (rc = ka_pg_pipe_push(pg, "opp_default_def", 0, NULL, read_default_def, ctx, errstr,
                                  errlen)))
            goto out;
    }
    ka_pg_param_t p1 = {ka_buf_str(&ids), 0, 0};
    if ((rc = ka_pg_pipe_push(pg, "opp_load", 1, &p1, read_opps, ctx, errstr, errlen)))
        goto out;
    if (any_owner_change) {
        ka_pg_param_t p[2] = {{ka_buf_str(&ids), 0, 0}, {ka_buf_str(&owners), 0, 0}};
        if ((rc = ka_pg_pipe_push(pg, "opp_managers", 2, p, read_managers, ctx, errstr, errlen)))
            goto out;
    }
    /* Open unauthorized-owner-change alerts: a closing or a proper hand-over resolves them. */
    if ((rc = ka_pg_pipe_push(pg, "opp_unauthorized_firing", 1, &p1, read_unauthorized, ctx,
                              errstr, errlen)))
        goto out;
    if (any_created &&
        (rc = ka_pg_pipe_push(pg, "opp_booked_orders", 1, &p1, read_booked, ctx, errstr, errlen)))
        goto out;
    if ((rc = ka_accounts_queue(&ctx->accounts, pg, errstr, errlen)))
        goto out;
    rc = ka_tx_flush(tx, errstr, errlen);
out:
    ka_buf_free(&ids);
    ka_buf_free(&owners);
    return rc;
}

#define NOPP_COLS 25

static ka_err_t queue_writes(opp_ctx_t *ctx, ka_tx_t *tx, event_rows_t *er, stage_rows_t *sr,
                             confirm_rows_t *cr, int nconfirm, char *errstr, size_t errlen)
{
    ka_pg_t *pg = ka_tx_pg(tx);
    ka_buf_t cols[NOPP_COLS];
    ka_buf_t lopp = KA_BUF_INIT, lno = KA_BUF_INIT, lsku = KA_BUF_INIT, lreq = KA_BUF_INIT,
             lqty = KA_BUF_INIT, lprice = KA_BUF_INIT, replaced = KA_BUF_INIT;
    ka_buf_t drep = KA_BUF_INIT, ddef = KA_BUF_INIT, dstage = KA_BUF_INIT, dcnt = KA_BUF_INIT,
             damt = KA_BUF_INIT, dw = KA_BUF_INIT;
    ka_pg_param_t p[NOPP_COLS];
    int ntouched = 0, nreplaced = 0, nclear = 0;
    ka_err_t rc = KA_OK;

    for (int c = 0; c < NOPP_COLS; c++) {
        memset(&cols[c], 0, sizeof cols[c]);
        ka_buf_array_begin(&cols[c]);
    }
    ka_buf_array_begin(&lopp);
    ka_buf_array_begin(&lno);
    ka_buf_array_begin(&lsku);
    ka_buf_array_begin(&lreq);
    ka_buf_array_begin(&lqty);
    ka_buf_array_begin(&lprice);
    ka_buf_array_begin(&replaced);
    for (size_t i = 0; i < ctx->nopps; i++) {
        opp_t *o = &ctx->opps[i];
        if (!o->touched)
            continue;
        ntouched++;
        const char *text[] = {o->id, o->account_id, o->owner, o->bu[0] ? o->bu : NULL, o->def,
                              o->stage, NULL, NULL, o->close_date[0] ? o->close_date : NULL,
                              o->sales_mode[0] ? o->sales_mode : NULL, o->competitors,
                              o->relationship[0] ? o->relationship : "unknown",
                              o->impact[0] ? o->impact : NULL, o->status, o->lost_reason};
        for (int c = 0; c < 15; c++)
            if (c != 6 && c != 7)
                ka_buf_array_add(&cols[c], text[c]);
        ka_buf_array_add_int(&cols[6], o->amount);
        ka_buf_array_add_int(&cols[7], o->prob_bp);
        if (o->closed_ms)
            ka_buf_array_add_int(&cols[15], o->closed_ms);
        else
            ka_buf_array_add(&cols[15], NULL);
        ka_buf_array_add_int(&cols[16], o->stage_entered_ms);
        for (int k = 0; k < 4; k++) {
            if (o->assess[k] >= 0)
                ka_buf_array_add_int(&cols[17 + k], o->assess[k]);
            else
                ka_buf_array_add(&cols[17 + k], NULL);
        }
        if (o->assessed_ms)
            ka_buf_array_add_int(&cols[21], o->assessed_ms);
        else
            ka_buf_array_add(&cols[21], NULL);
        ka_buf_array_add_int(&cols[22], o->version);
        ka_buf_array_add_int(&cols[23], o->last_event_ms);
        ka_buf_array_add(&cols[24], o->last_event_id);
        if (o->lines_replaced) {
            nreplaced++;
            /* A deal this batch created has no lines to delete (they reference
             * its row): most lines come with the creation, so the delete is
             * mostly skipped. */
            if (o->stored) {
                nclear++;
                ka_buf_array_add(&replaced, o->id);
            }
            for (size_t l = 0; l < o->nlines; l++) {
                char qty[48];
                snprintf(qty, sizeof qty, "%lld.%03lld", (long long)(o->lines[l].qty_milli / 1000),
                         (long long)(o->lines[l].qty_milli % 1000));
                ka_buf_array_add(&lopp, o->id);
                ka_buf_array_add_int(&lno, (long long)l + 1);
                ka_buf_array_add(&lsku, o->lines[l].sku);
                ka_buf_array_add(&lreq, o->lines[l].requirement);
                ka_buf_array_add(&lqty, qty);
                ka_buf_array_add_int(&lprice, o->lines[l].price);
            }
        }
    }
    for (int c = 0; c < NOPP_COLS; c++) {
        ka_buf_array_end(&cols[c]);
        p[c] = (ka_pg_param_t){ka_buf_str(&cols[c]), 0, 0};
    }
    ka_buf_array_end(&lopp);
    ka_buf_array_end(&lno);
    ka_buf_array_end(&lsku);
    ka_buf_array_end(&lreq);
    ka_buf_array_end(&lqty);
    ka_buf_array_end(&lprice);
    ka_buf_array_end(&replaced);

    if (ntouched && (rc = ka_pg_pipe_push(pg, "opp_upsert", NOPP_COLS, p, NULL, NULL, errstr,
                                          errlen)))
        goto out;
    /* The forecast worker recomputes what these deals contribute. */
    if (ntouched && (rc = ka_pg_pipe_push(pg, "opp_forecast_dirty", 1, p, NULL, NULL, errstr,
                                          errlen)))
        goto out;
    if (nreplaced) {
        ka_pg_param_t lp[6] = {{ka_buf_str(&lopp), 0, 0}, {ka_buf_str(&lno), 0, 0},
                               {ka_buf_str(&lsku), 0, 0}, {ka_buf_str(&lreq), 0, 0},
                               {ka_buf_str(&lqty), 0, 0}, {ka_buf_str(&lprice), 0, 0}};
        ka_pg_param_t rp = {ka_buf_str(&replaced), 0, 0};
        if ((nclear && (rc = ka_pg_pipe_push(pg, "opp_lines_clear", 1, &rp, NULL, NULL, errstr,
                                             errlen))) ||
            (lopp.len > 2 &&
             (rc = ka_pg_pipe_push(pg, "opp_lines_insert", 6, lp, NULL, NULL, errstr, errlen))))
            goto out;
    }
    ka_buf_array_end(&sr->opp);
    ka_buf_array_end(&sr->def);
    ka_buf_array_end(&sr->from);
    ka_buf_array_end(&sr->to);
    ka_buf_array_end(&sr->id);
    ka_buf_array_end(&sr->at);
    ka_buf_array_end(&sr->dwell);
    if (sr->opp.len > 2) {
        ka_pg_param_t sp[7] = {{ka_buf_str(&sr->opp), 0, 0}, {ka_buf_str(&sr->def), 0, 0},
                               {ka_buf_str(&sr->from), 0, 0}, {ka_buf_str(&sr->to), 0, 0},
                               {ka_buf_str(&sr->id), 0, 0},  {ka_buf_str(&sr->at), 0, 0},
                               {ka_buf_str(&sr->dwell), 0, 0}};
        if ((rc = ka_pg_pipe_push(pg, "opp_stage_history", 7, sp, NULL, NULL, errstr, errlen)))
            goto out;
    }
    ka_buf_t *eb[] = {&er->opp, &er->id,    &er->kind, &er->at, &er->applied,
                      &er->reason, &er->topic, &er->part, &er->off};
    ka_pg_param_t ep[9];
    for (int k = 0; k < 9; k++) {
        ka_buf_array_end(eb[k]);
        ep[k] = (ka_pg_param_t){ka_buf_str(eb[k]), 0, 0};
    }
    if (er->opp.len > 2 &&
        (rc = ka_pg_pipe_push(pg, "opp_event_history", 9, ep, NULL, NULL, errstr, errlen)))
        goto out;
    if (nconfirm) {
        ka_buf_t *cb[] = {&cr->opp, &cr->kind, &cr->start, &cr->owner, &cr->category, &cr->id,
                          &cr->at};
        ka_pg_param_t cp[7];
        for (int k = 0; k < 7; k++) {
            ka_buf_array_end(cb[k]);
            cp[k] = (ka_pg_param_t){ka_buf_str(cb[k]), 0, 0};
        }
        if ((rc = ka_pg_pipe_push(pg, "opp_confirm", 7, cp, NULL, NULL, errstr, errlen)))
            goto out;
    }
    ka_buf_array_begin(&drep);
    ka_buf_array_begin(&ddef);
    ka_buf_array_begin(&dstage);
    ka_buf_array_begin(&dcnt);
    ka_buf_array_begin(&damt);
    ka_buf_array_begin(&dw);
    int ndelta = 0;
    for (size_t i = 0; i < ctx->ndeltas; i++) {
        delta_t *d = &ctx->deltas[i];
        if (!d->count && !d->amount && !d->weighted)
            continue;
        ndelta++;
        ka_buf_array_add(&drep, d->rep);
        ka_buf_array_add(&ddef, d->def);
        ka_buf_array_add(&dstage, d->stage);
        ka_buf_array_add_int(&dcnt, d->count);
        ka_buf_array_add_int(&damt, d->amount);
        ka_buf_array_add_int(&dw, d->weighted);
    }
    ka_buf_array_end(&drep);
    ka_buf_array_end(&ddef);
    ka_buf_array_end(&dstage);
    ka_buf_array_end(&dcnt);
    ka_buf_array_end(&damt);
    ka_buf_array_end(&dw);
    if (ndelta) {
        ka_pg_param_t dp[6] = {{ka_buf_str(&drep), 0, 0},   {ka_buf_str(&ddef), 0, 0},
                               {ka_buf_str(&dstage), 0, 0}, {ka_buf_str(&dcnt), 0, 0},
                               {ka_buf_str(&damt), 0, 0},   {ka_buf_str(&dw), 0, 0}};
        rc = ka_pg_pipe_push(pg, "opp_funnel_add", 6, dp, read_funnel, ctx, errstr, errlen);
        if (rc == KA_OK)
            rc = ka_pg_pipe_push(pg, "opp_health_inputs", 3, dp, read_health_inputs, ctx,
                                 errstr, errlen);
        /* Reps counted here that the org tree does not know (opp_reorg.c
         * alerts them); after the funnel rows, the locks' order. */
        char at[24];
        snprintf(at, sizeof at, "%lld", (long long)ctx->batch_at_ms);
        ka_pg_param_t up[2] = {{ka_buf_str(&drep), 0, 0}, {at, 0, 0}};
        if (rc == KA_OK)
            rc = ka_pg_pipe_push(pg, "opp_unknown_reps", 2, up, NULL, NULL, errstr, errlen);
    }
out:
    for (int c = 0; c < NOPP_COLS; c++)
        ka_buf_free(&cols[c]);
    ka_buf_t *all[] = {&lopp, &lno, &lsku, &lreq, &lqty, &lprice, &replaced,
                       &drep, &ddef, &dstage, &dcnt, &damt, &dw};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        ka_buf_free(all[k]);
    return rc;
}

/* Funnel health ------------------------------------------------------------------ */

static const funnel_row_t *find_funnel(const opp_ctx_t *ctx, const health_in_t *h)
{
    for (size_t i = 0; i < ctx->nfunnel; i++) {
        const funnel_row_t *r = &ctx->funnel[i];
        if (!strcmp(r->node, h->node) && !strcmp(r->def, h->def) && !strcmp(r->stage, h->stage))
            return r;
    }
    return NULL;
}

static ka_err_t raise_health_alert(opp_ctx_t *ctx, ka_tx_t *tx, const health_in_t *h,
                                   int64_t current, int64_t ratio_bp, int firing,
                                   char *errstr, size_t errlen)
{
    char fp[KA_FINGERPRINT_LEN], summary[300], cur[24], base[24], pct[24];
    const char *labels[] = {h->node, h->def, h->stage, h->metric};
    ka_alert_fingerprint(fp, "funnel_health", labels, 4);
    snprintf(cur, sizeof cur, "%lld", (long long)current);
    snprintf(base, sizeof base, "%lld", (long long)h->baseline);
    snprintf(pct, sizeof pct, "%lld", (long long)(ratio_bp / 100));
    snprintf(summary, sizeof summary, "funnel %s at node %s: stage %s %s at %s%% of baseline",
             firing ? "warning" : "recovered", h->node, h->stage, h->metric, pct);
    const char *keys[] = {"node_id", "definition_id", "stage_code", "metric", "current",
                          "baseline", "ratio_pct"};
    const char *vals[] = {h->node, h->def, h->stage, h->metric, cur, base, pct};
    ka_alert_t a = {
        .type = "funnel_health",
        .proto_type = KA__V1__ALERT_TYPE__ALERT_TYPE_FUNNEL_HEALTH,
        .severity = "warning",
        .subject_kind = "node",
        .subject_id = h->node,
        .fingerprint = fp,
        .summary = summary,
        .detail_keys = keys,
        .detail_values = vals,
        .ndetails = 7,
        /* a resolve belongs to the episode its firing started */
        .starts_at_ms = firing ? ctx->batch_at_ms : h->since_ms,
        .at_ms = ctx->batch_at_ms,
        .causes = ctx->causes,
        .ncauses = ctx->ncauses,
    };
    return ka_alert_transition(tx, &a, firing, errstr, errlen);
}

/* Evaluates every (node, stage, metric) the batch moved and queues the new
 * health rows and the alert transitions into and out of warning. */
static ka_err_t evaluate_health(opp_ctx_t *ctx, ka_tx_t *tx, char *errstr, size_t errlen)
{
    ka_buf_t cols[9];
    ka_err_t rc = KA_OK;
    for (int c = 0; c < 9; c++) {
        memset(&cols[c], 0, sizeof cols[c]);
        ka_buf_array_begin(&cols[c]);
    }
    for (size_t i = 0; i < ctx->nhealth && rc == KA_OK; i++) {
        health_in_t *h = &ctx->health[i];
        const funnel_row_t *f = find_funnel(ctx, h);
        if (!f)
            continue;
        int64_t current = atoll(strcmp(h->metric, "count") == 0 ? f->count : f->amount), ratio;
        opp_health_t now = opp_health_eval(current, h->baseline, h->previous, ctx->warning_bp,
                                           ctx->hysteresis_bp, &ratio);
        int64_t since = now == h->previous && h->since_ms ? h->since_ms : ctx->batch_at_ms;
        if (now == OPP_HEALTH_WARNING && h->previous != OPP_HEALTH_WARNING)
            rc = raise_health_alert(ctx, tx, h, current, ratio, 1, errstr, errlen);
        else if (now != OPP_HEALTH_WARNING && h->previous == OPP_HEALTH_WARNING)
            rc = raise_health_alert(ctx, tx, h, current, ratio, 0, errstr, errlen);
        /* Written when the band or the baseline changes (or the row is new):
         * the live ratio is funnel_health_now's (migration 0023). */
        if (h->stored && now == h->previous && h->baseline == h->stored_baseline)
            continue;
        ka_buf_array_add(&cols[0], h->node);
        ka_buf_array_add(&cols[1], h->def);
        ka_buf_array_add(&cols[2], h->stage);
        ka_buf_array_add(&cols[3], h->metric);
        ka_buf_array_add_int(&cols[4], current);
        if (h->baseline >= 0)
            ka_buf_array_add_int(&cols[5], h->baseline);
        else
            ka_buf_array_add(&cols[5], NULL);
        if (ratio >= 0)
            ka_buf_array_add_int(&cols[6], ratio);
        else
            ka_buf_array_add(&cols[6], NULL);
        ka_buf_array_add(&cols[7], opp_health_name(now));
        ka_buf_array_add_int(&cols[8], since);
    }
    ka_pg_param_t p[9];
    for (int c = 0; c < 9; c++) {
        ka_buf_array_end(&cols[c]);
        p[c] = (ka_pg_param_t){ka_buf_str(&cols[c]), 0, 0};
    }
    if (rc == KA_OK && cols[0].len > 2)
        rc = ka_pg_pipe_push(ka_tx_pg(tx), "opp_health_save", 9, p, NULL, NULL, errstr, errlen);
    for (int c = 0; c < 9; c++)
        ka_buf_free(&cols[c]);
    return rc;
}

ka_err_t opp_health_recheck(opp_ctx_t *ctx, ka_tx_t *tx, const char *nodes, int64_t at_ms,
                            char *errstr, size_t errlen)
{
    ka_pg_param_t p = {nodes, 0, 0};
    ka_err_t rc;
    reset_batch(ctx);
    reset_funnel(ctx);
    ctx->batch_at_ms = at_ms;
    if ((rc = ka_pg_pipe_push(ka_tx_pg(tx), "opp_recheck_funnel", 1, &p, read_funnel, ctx,
                              errstr, errlen)) == KA_OK &&
        (rc = ka_pg_pipe_push(ka_tx_pg(tx), "opp_recheck_inputs", 1, &p, read_health_inputs,
                              ctx, errstr, errlen)) == KA_OK &&
        (rc = ka_tx_flush(tx, errstr, errlen)) == KA_OK)
        rc = evaluate_health(ctx, tx, errstr, errlen);
    reset_batch(ctx);
    reset_funnel(ctx);
    return rc;
}

static void rows_begin(ka_buf_t *const *bufs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ka_buf_array_begin(bufs[i]);
}

static void rows_free(ka_buf_t *const *bufs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ka_buf_free(bufs[i]);
}

static ka_err_t opp_apply(void *ud, ka_tx_t *tx, ka_event_t *const *events, size_t n,
                          char *errstr, size_t errlen)
{
    opp_ctx_t *ctx = ud;
    event_rows_t er;
    stage_rows_t sr;
    confirm_rows_t cr;
    int nconfirm = 0;
    ka_err_t rc;

    memset(&er, 0, sizeof er);
    memset(&sr, 0, sizeof sr);
    memset(&cr, 0, sizeof cr);
    ka_buf_t *ebufs[] = {&er.opp, &er.id, &er.kind, &er.at, &er.applied, &er.reason, &er.topic,
                         &er.part, &er.off};
    ka_buf_t *sbufs[] = {&sr.opp, &sr.def, &sr.from, &sr.to, &sr.id, &sr.at, &sr.dwell};
    ka_buf_t *cbufs[] = {&cr.opp, &cr.kind, &cr.start, &cr.owner, &cr.category, &cr.id, &cr.at};
    rows_begin(ebufs, 9);
    rows_begin(sbufs, 7);
    rows_begin(cbufs, 7);
    reset_batch(ctx);
    reset_funnel(ctx);

    if ((rc = queue_reads(ctx, tx, events, n, errstr, errlen)) != KA_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        Ka__V1__OpportunityEvent *e = events[i]->decoded;
        size_t before = cr.opp.len;
        const char *not_applied = apply_one(ctx, tx, events[i], &sr, &cr, &rc, errstr, errlen);
        if (rc != KA_OK)
            goto out;
        if (events[i]->status == KA_EVENT_REJECTED)
            continue;
        if (cr.opp.len != before)
            nconfirm++;
        if (e->kind_case != KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED)
            record_event(&er, events[i], e, not_applied);
        if (!not_applied) {
            if (e->header->occurred_at_ms > ctx->batch_at_ms)
                ctx->batch_at_ms = e->header->occurred_at_ms;
            if (ctx->ncauses < sizeof ctx->causes / sizeof ctx->causes[0])
                ctx->causes[ctx->ncauses++] = events[i]->event_id;
        }
    }
    rc = queue_writes(ctx, tx, &er, &sr, &cr, nconfirm, errstr, errlen);
    /* The funnel's new values decide health, in this same transaction. The
     * funnel_state row locks taken by the upsert serialize instances that
     * evaluate the same node, so a transition is decided once. */
    if (rc == KA_OK && ctx->ndeltas > 0)
        rc = ka_tx_flush(tx, errstr, errlen);
    if (rc == KA_OK && ctx->nhealth > 0)
        rc = evaluate_health(ctx, tx, errstr, errlen);
out:
    rows_free(ebufs, 9);
    rows_free(sbufs, 7);
    rows_free(cbufs, 7);
    return rc;
}

/* Redis ------------------------------------------------------------------------ */

void opp_funnel_key(char *out, size_t len, const char *node_id, const char *definition_id)
{
    snprintf(out, len, "ka:funnel:%s:%s", node_id, definition_id);
}

static void cache_row(ka_redis_t *rds, const funnel_row_t *r)
{
    char key[256], fc[32], fa[32], fw[32];
    opp_funnel_key(key, sizeof key, r->node, r->def);
    snprintf(fc, sizeof fc, "%s:count", r->stage);
    snprintf(fa, sizeof fa, "%s:amount", r->stage);
    snprintf(fw, sizeof fw, "%s:weighted", r->stage);
    const char *argv[] = {"HSET", key, fc, r->count, fa, r->amount, fw, r->weighted};
    ka_redis_append_str(rds, 8, argv);
}

static ka_err_t opp_after_commit(void *ud, ka_redis_t *rds, ka_event_t *const *events, size_t n,
                                 char *errstr, size_t errlen)
{
    opp_ctx_t *ctx = ud;
    (void)events;
    (void)n;
    for (size_t i = 0; i < ctx->nfunnel; i++)
        cache_row(rds, &ctx->funnel[i]);
    ka_err_t rc = ka_redis_flush(rds, errstr, errlen);
    reset_funnel(ctx);
    return rc;
}

static ka_err_t opp_rebuild(void *ud, ka_pg_t *pg, ka_redis_t *rds, char *errstr, size_t errlen)
{
    opp_ctx_t *ctx = ud;
    reset_funnel(ctx);
    ka_err_t rc = ka_pg_query(pg,
                              "SELECT node_id, definition_id, stage_code, open_count, amount_minor, "
                              "weighted_amount_minor FROM funnel_state",
                              0, NULL, read_funnel, ctx, errstr, errlen);
    if (rc == KA_OK)
        rc = opp_after_commit(ud, rds, NULL, 0, errstr, errlen);
    reset_funnel(ctx);
    return rc;
}

/* Setup --------------------------------------------------------------------------- */

static ka_err_t opp_handler_decode(void *ud, const ka_msg_t *msg, void **decoded, char *event_id,
                                   size_t idlen, ka_reject_t *rej)
{
    (void)ud;
    Ka__V1__OpportunityEvent *ev = NULL;
    ka_err_t rc = opp_decode_msg(msg, ka_now_ms(), &ev, event_id, idlen, rej);
    *decoded = ev;
    return rc;
}

static void opp_free_decoded(void *ud, void *decoded)
{
    (void)ud;
    ka__v1__opportunity_event__free_unpacked(decoded, NULL);
}

static const char *statements[][2] = {
    {"opp_stages", "SELECT definition_id, code, win_probability_bp, is_won, is_lost "
                   "FROM funnel_stage"},
    {"opp_bus", "SELECT id, definition_id FROM business_unit"},
    {"opp_default_def", "SELECT id FROM funnel_definition WHERE is_default"},
    {"opp_load",
     "SELECT id, account_id, owner_rep_id, business_unit_id, definition_id, stage_code, "
     "amount_minor, win_probability_bp, expected_close_date::text, sales_mode, competitors::text, "
     "relationship_degree, impact, status, lost_reason, "
     "(extract(epoch FROM closed_at) * 1000)::bigint, "
     "(extract(epoch FROM stage_entered_at) * 1000)::bigint, assess_exists, assess_compete, "
     "assess_win, assess_worth, (extract(epoch FROM assessed_at) * 1000)::bigint, version, "
     "(extract(epoch FROM last_event_at) * 1000)::bigint, last_event_id "
     "FROM opportunity WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"},
    {"opp_managers",
     "SELECT DISTINCT c.descendant_id, n.manager_user_id FROM org_closure c "
     "JOIN org_node n ON n.id = c.ancestor_id "
     "WHERE c.depth > 0 AND n.manager_user_id IS NOT NULL AND c.descendant_id IN "
     "(SELECT owner_rep_id FROM opportunity WHERE id = ANY($1::text[]) "
     "UNION SELECT unnest($2::text[]))"},
    {"opp_unauthorized_firing",
     "SELECT subject_id, (extract(epoch FROM starts_at) * 1000)::bigint FROM alert_state "
     "WHERE type = 'unauthorized_owner_change' AND status = 'firing' "
     "AND subject_id = ANY($1::text[])"},
    /* The first booked order of each opportunity (an order may come first). */
    {"opp_booked_orders",
     "SELECT DISTINCT ON (opportunity_id) opportunity_id, id, "
     "(extract(epoch FROM booked_at) * 1000)::bigint FROM sales_order "
     "WHERE opportunity_id = ANY($1::text[]) AND status = 'booked' "
     "ORDER BY opportunity_id, booked_at, id"},
    {"opp_upsert",
     "INSERT INTO opportunity (id, account_id, owner_rep_id, business_unit_id, definition_id, "
     "stage_code, amount_minor, win_probability_bp, expected_close_date, sales_mode, competitors, "
     "relationship_degree, impact, status, lost_reason, closed_at, stage_entered_at, "
     "assess_exists, assess_compete, assess_win, assess_worth, assessed_at, version, "
     "last_event_at, last_event_id) "
     "SELECT o.id, o.account, o.owner, o.bu, o.def, o.stage, o.amount, o.prob, o.close::date, "
     "o.mode, o.comp::text[], o.rel, o.impact, o.status, o.lost, "
     "to_timestamp(o.closed / 1000.0), to_timestamp(o.entered / 1000.0), o.a1, o.a2, o.a3, o.a4, "
     "to_timestamp(o.assessed / 1000.0), o.version, to_timestamp(o.last_at / 1000.0), o.last_id "
     "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
     "$7::bigint[], $8::int[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], "
     "$14::text[], $15::text[], $16::bigint[], $17::bigint[], $18::smallint[], $19::smallint[], "
     "$20::smallint[], $21::smallint[], $22::bigint[], $23::bigint[], $24::bigint[], $25::text[]) "
     "AS o(id, account, owner, bu, def, stage, amount, prob, close, mode, comp, rel, impact, "
     "status, lost, closed, entered, a1, a2, a3, a4, assessed, version, last_at, last_id) "
     "ON CONFLICT (id) DO UPDATE SET owner_rep_id = EXCLUDED.owner_rep_id, "
     "stage_code = EXCLUDED.stage_code, amount_minor = EXCLUDED.amount_minor, "
     "win_probability_bp = EXCLUDED.win_probability_bp, "
     "expected_close_date = EXCLUDED.expected_close_date, sales_mode = EXCLUDED.sales_mode, "
     "competitors = EXCLUDED.competitors, relationship_degree = EXCLUDED.relationship_degree, "
     "impact = EXCLUDED.impact, status = EXCLUDED.status, lost_reason = EXCLUDED.lost_reason, "
     "closed_at = EXCLUDED.closed_at, stage_entered_at = EXCLUDED.stage_entered_at, "
     "assess_exists = EXCLUDED.assess_exists, assess_compete = EXCLUDED.assess_compete, "
     "assess_win = EXCLUDED.assess_win, assess_worth = EXCLUDED.assess_worth, "
     "assessed_at = EXCLUDED.assessed_at, version = EXCLUDED.version, "
     "last_event_at = EXCLUDED.last_event_at, last_event_id = EXCLUDED.last_event_id, "
     "updated_at = now()"},
    {"opp_forecast_dirty",
     "INSERT INTO forecast_dirty (opportunity_id) SELECT unnest($1::text[])"},
    /* A semi-join on the array, not `= ANY`: see forecast_old_lines. */
    {"opp_lines_clear",
     "DELETE FROM opportunity_line WHERE opportunity_id IN (SELECT unnest($1::text[]))"},
    {"opp_lines_insert",
     "INSERT INTO opportunity_line (opportunity_id, line_no, sku, requirement, quantity, "
     "unit_price_minor) SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], "
     "$5::numeric[], $6::bigint[])"},
    {"opp_stage_history",
     "INSERT INTO opportunity_stage_history (opportunity_id, definition_id, from_stage, to_stage, "
     "event_id, occurred_at, dwell_seconds) SELECT h.opp, h.def, h.from_stage, h.to_stage, h.ev, "
     "to_timestamp(h.at / 1000.0), h.dwell FROM unnest($1::text[], $2::text[], $3::text[], "
     "$4::text[], $5::text[], $6::bigint[], $7::bigint[]) "
     "AS h(opp, def, from_stage, to_stage, ev, at, dwell) "
     "ON CONFLICT (opportunity_id, event_id) DO NOTHING"},
    {"opp_event_history",
     "INSERT INTO opportunity_event (opportunity_id, event_id, kind, occurred_at, applied, "
     "not_applied_reason, source_topic, source_partition, source_offset) "
     "SELECT e.opp, e.ev, e.kind, to_timestamp(e.at / 1000.0), e.applied, e.reason, e.topic, "
     "e.part, e.off FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], "
     "$5::boolean[], $6::text[], $7::text[], $8::int[], $9::bigint[]) "
     "AS e(opp, ev, kind, at, applied, reason, topic, part, off) "
     "ON CONFLICT (opportunity_id, event_id, occurred_at) DO NOTHING"},
    {"opp_confirm",
     "INSERT INTO forecast_confirmation (opportunity_id, period_kind, period_start, owner_rep_id, "
     "category, event_id, confirmed_at) SELECT DISTINCT ON (c.opp, c.kind, c.start) c.opp, "
     "c.kind, c.start::date, c.owner, c.category, c.ev, to_timestamp(c.at / 1000.0) "
     "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
     "$7::bigint[]) WITH ORDINALITY AS c(opp, kind, start, owner, category, ev, at, i) "
     "ORDER BY c.opp, c.kind, c.start, c.i DESC "
     "ON CONFLICT (opportunity_id, period_kind, period_start) DO UPDATE SET "
     "owner_rep_id = EXCLUDED.owner_rep_id, category = EXCLUDED.category, "
     "event_id = EXCLUDED.event_id, confirmed_at = EXCLUDED.confirmed_at, updated_at = now()"},
    /* Deltas per rep roll up to every ancestor (and to the rep itself even
     * before the org tree knows it). Sorted, so concurrent instances lock the
     * shared ancestor rows in one order. */
    {"opp_funnel_add",
     "INSERT INTO funnel_state AS f (node_id, definition_id, stage_code, open_count, amount_minor, "
     "weighted_amount_minor) "
     "SELECT n.node_id, d.def, d.stage, sum(d.cnt), sum(d.amt), sum(d.w) "
     "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[]) "
     "AS d(rep, def, stage, cnt, amt, w) "
     "CROSS JOIN LATERAL (SELECT ancestor_id AS node_id FROM org_closure "
     "WHERE descendant_id = d.rep UNION SELECT d.rep) n "
     "GROUP BY n.node_id, d.def, d.stage "
     "HAVING (sum(d.cnt), sum(d.amt), sum(d.w)) <> (0, 0, 0) "
     "ORDER BY n.node_id, d.def, d.stage "
     "ON CONFLICT (node_id, definition_id, stage_code) DO UPDATE SET "
     "open_count = f.open_count + EXCLUDED.open_count, "
     "amount_minor = f.amount_minor + EXCLUDED.amount_minor, "
     "weighted_amount_minor = f.weighted_amount_minor + EXCLUDED.weighted_amount_minor, "
     "updated_at = now() "
     "RETURNING node_id, definition_id, stage_code, open_count, amount_minor, "
     "weighted_amount_minor"},
    {"opp_health_inputs",
     "WITH keys AS (SELECT DISTINCT n.node_id, d.def, d.stage "
     "FROM unnest($1::text[], $2::text[], $3::text[]) AS d(rep, def, stage) "
     "CROSS JOIN LATERAL (SELECT ancestor_id AS node_id FROM org_closure "
     "WHERE descendant_id = d.rep UNION SELECT d.rep) n) "
     "SELECT k.node_id, k.def, k.stage, m.metric, "
     "(SELECT b.value FROM funnel_baseline b WHERE b.node_id = k.node_id "
     "AND b.definition_id = k.def AND b.stage_code = k.stage AND b.metric = m.metric "
     "AND b.valid_from <= current_date AND b.valid_to > current_date "
     "ORDER BY (b.source = 'explicit') DESC, b.valid_from DESC LIMIT 1), "
     "h.status, (extract(epoch FROM h.status_since) * 1000)::bigint, h.baseline_value "
     "FROM keys k CROSS JOIN (VALUES ('count'), ('amount')) AS m(metric) "
     "LEFT JOIN funnel_health h ON h.node_id = k.node_id AND h.definition_id = k.def "
     "AND h.stage_code = k.stage AND h.metric = m.metric "
     "ORDER BY 1, 2, 3, 4"},
    {"opp_unknown_reps", "SELECT ka_unknown_reps_seen($1::text[], $2::bigint, 'opportunity')"},
    /* The health of whole nodes after a re-org (opp_health_recheck): their
     * funnel rows locked in the upsert's order, then their inputs. */
    {"opp_recheck_funnel",
     "SELECT node_id, definition_id, stage_code, open_count, amount_minor, weighted_amount_minor "
     "FROM funnel_state WHERE node_id = ANY($1::text[]) ORDER BY 1, 2, 3 FOR UPDATE"},
    {"opp_recheck_inputs",
     "SELECT f.node_id, f.definition_id, f.stage_code, m.metric, "
     "(SELECT b.value FROM funnel_baseline b WHERE b.node_id = f.node_id "
     "AND b.definition_id = f.definition_id AND b.stage_code = f.stage_code "
     "AND b.metric = m.metric AND b.valid_from <= current_date AND b.valid_to > current_date "
     "ORDER BY (b.source = 'explicit') DESC, b.valid_from DESC LIMIT 1), "
     "h.status, (extract(epoch FROM h.status_since) * 1000)::bigint, h.baseline_value "
     "FROM funnel_state f CROSS JOIN (VALUES ('count'), ('amount')) AS m(metric) "
     "LEFT JOIN funnel_health h ON h.node_id = f.node_id AND h.definition_id = f.definition_id "
     "AND h.stage_code = f.stage_code AND h.metric = m.metric "
     "WHERE f.node_id = ANY($1::text[]) ORDER BY 1, 2, 3, 4"},
    {"opp_health_save",
     "INSERT INTO funnel_health (node_id, definition_id, stage_code, metric, current_value, "
     "baseline_value, ratio_bp, status, status_since, evaluated_at) "
     "SELECT h.node, h.def, h.stage, h.metric, h.cur, h.base, h.ratio, h.status, "
     "to_timestamp(h.since / 1000.0), now() FROM unnest($1::text[], $2::text[], $3::text[], "
     "$4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], $9::bigint[]) "
     "AS h(node, def, stage, metric, cur, base, ratio, status, since) "
     "ON CONFLICT (node_id, definition_id, stage_code, metric) DO UPDATE SET "
     "current_value = EXCLUDED.current_value, baseline_value = EXCLUDED.baseline_value, "
     "ratio_bp = EXCLUDED.ratio_bp, status = EXCLUDED.status, "
     "status_since = EXCLUDED.status_since, evaluated_at = EXCLUDED.evaluated_at"},
};

static ka_err_t opp_prepare(void *ud, ka_pg_t *pg, char *errstr, size_t errlen)
{
    (void)ud;
    if (ka_alert_prepare(pg, errstr, errlen) != KA_OK ||
        opp_stalled_prepare(pg, errstr, errlen) != KA_OK ||
        opp_reorg_prepare(pg, errstr, errlen) != KA_OK ||
        ka_accounts_prepare(pg, errstr, errlen) != KA_OK)
        return KA_ERR;
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

static void opp_tick(void *ud, ka_worker_t *w)
{
    opp_ctx_t *ctx = ud;
    char err[KA_ERRSTR_SIZE];
    int fired = 0, resolved = 0;
    int64_t now = mono_ms();
    opp_reorg_tick(ctx, w, &ctx->next_reorg_ms);
    if (now < ctx->next_scan_ms)
        return;
    ctx->next_scan_ms = now + ctx->scan_interval_ms;
    if (opp_stalled_scan(w, ka_now_ms(), ctx->no_visit_days, &fired, &resolved, err,
                         sizeof err) != KA_OK)
        ka_log(KA_LOG_WARN, "stalled-opportunity scan failed", "{s:s}", "error", err);
    else if (fired || resolved)
        ka_log(KA_LOG_INFO, "stalled-opportunity scan", "{s:i,s:i}", "fired", fired,
               "resolved", resolved);
}

opp_ctx_t *opp_ctx_new(const ka_config_t *cfg)
{
    opp_ctx_t *ctx = ka_calloc(1, sizeof *ctx);
    ctx->cfg = cfg;
    ctx->warning_bp = (int)ka_config_int(cfg, "KA_HEALTH_WARNING_BP");
    ctx->hysteresis_bp = (int)ka_config_int(cfg, "KA_HEALTH_HYSTERESIS_BP");
    ctx->scan_interval_ms = ka_config_int(cfg, "KA_SCAN_INTERVAL_MS");
    ctx->no_visit_days = (int)ka_config_int(cfg, "KA_STALL_NO_VISIT_DAYS");
    copy(ctx->default_def, sizeof ctx->default_def, "default-8");
    return ctx;
}

void opp_ctx_free(opp_ctx_t *ctx)
{
    if (!ctx)
        return;
    reset_batch(ctx);
    reset_funnel(ctx);
    free(ctx->deltas);
    free(ctx->stages);
    free(ctx->bus);
    free(ctx);
}

void opp_handler_init(ka_handler_t *h, opp_ctx_t *ctx)
{
    memset(h, 0, sizeof *h);
    h->ud = ctx;
    h->prepare = opp_prepare;
    h->decode = opp_handler_decode;
    h->free_decoded = opp_free_decoded;
    h->apply = opp_apply;
    h->after_commit = opp_after_commit;
    h->rebuild_cache = opp_rebuild;
    h->tick = opp_tick;
}

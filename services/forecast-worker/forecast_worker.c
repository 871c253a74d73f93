/* The forecast worker (DOMAIN.md section 5). Its Kafka input is the
 * opportunity topic, for one kind of event: a manager's adjustment of a
 * node's forecast (修订销售预测); every other kind belongs to the opportunity
 * worker, which also dead-letters the invalid ones. Everything else it
 * learns from forecast_dirty, the marks the opportunity and order workers
 * leave in their own transactions, which its tick turns into projections,
 * roll-ups and debounced events (forecast_recompute, forecast_publish), and
 * its periodic rules (forecast_scan). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka/v1/opportunity.pb-c.h"
#include "ka_buf.h"
#include "ka_log.h"
#include "forecast_publish.h"
#include "forecast_recompute.h"
#include "forecast_scan.h"
#include "forecast_worker.h"
#include "ka_opp_decode.h"

#define RECOMPUTE_EVERY_MS 100
/* Marks per round. 5,000 (issue 17) made each roll-up per tree level 34
 * times slower for 6.5 times the buffers (2.2 s a call at medium): the
 * roll-up's plan does not scale with the keys, so rounds stay small until it does. */
#define RECOMPUTE_LIMIT 500
#define RECOMPUTE_ROUNDS 10 /* per tick: the consumer must keep polling */
#define PUBLISH_EVERY_MS 200

struct forecast_ctx {
    const ka_config_t *cfg;
    forecast_scan_t *scan;
    int64_t debounce_ms, full_interval_ms;
    int64_t next_recompute_mono, next_publish_mono;
    long long last_full_round;
    char month_checked[11]; /* whose overdue planning demand was moved */

    /* per batch */
    char **manager_nodes, **managers; /* (node, its manager) */
    size_t nmanagers;
    char **raw_keys; /* "<node>|<kind>|<start>|<category>" -> raw_values */
    long long *raw_values;
    size_t nraw;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void reset_batch(forecast_ctx_t *ctx)
{
    free_strv(ctx->manager_nodes, ctx->nmanagers);
    free_strv(ctx->managers, ctx->nmanagers);
    free_strv(ctx->raw_keys, ctx->nraw);
    free(ctx->raw_values);
    ctx->manager_nodes = ctx->managers = ctx->raw_keys = NULL;
    ctx->raw_values = NULL;
    ctx->nmanagers = ctx->nraw = 0;
}

static const char *category_name(int v)
{
    switch (v) {
    case KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_PIPELINE: return "pipeline";
    case KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_BEST_CASE: return "best_case";
    case KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_COMMIT: return "commit";
    case KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_CLOSED: return "closed";
    default: return NULL; /* omitted is no figure to adjust */
    }
}

static void period_start(const Ka__V1__Period *p, char out[32], const char **kind)
{
    int quarter = p->kind == KA__V1__PERIOD_KIND__PERIOD_KIND_QUARTER;
    int month = quarter ? (p->number - 1) * 3 + 1 : p->number;
    snprintf(out, 32, "%04d-%02d-01", p->year, month);
    *kind = quarter ? "quarter" : "month";
}

/* Decoding: only valid adjustments are ours. --------------------------------------- */

static ka_err_t forecast_decode(void *ud, const ka_msg_t *msg, void **decoded, char *event_id,
                                size_t idlen, ka_reject_t *rej)
{
    (void)ud;
    Ka__V1__OpportunityEvent *ev = NULL;
    ka_err_t rc = opp_decode_msg(msg, ka_now_ms(), &ev, event_id, idlen, rej);
    if (rc == KA_OK && ev->kind_case == KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED) {
        *decoded = ev;
        return KA_OK;
    }
    /* Not ours (the opportunity worker applies it, or dead-letters it): it
     * is only marked processed, under its id when it has one. */
    if (rc != KA_OK || !event_id[0])
        snprintf(event_id, idlen, "skip:%d:%lld", (int)msg->partition, (long long)msg->offset);
    ka__v1__opportunity_event__free_unpacked(ev, NULL);
    *decoded = NULL;
    return KA_OK;
}

static void forecast_free_decoded(void *ud, void *decoded)
{
    (void)ud;
    ka__v1__opportunity_event__free_unpacked(decoded, NULL);
}

/* Adjustments ---------------------------------------------------------------------- */

static int read_managers(void *ud, const ka_pgres_t *res)
{
    forecast_ctx_t *ctx = ud;
    size_t n = (size_t)ka_pgres_rows(res);
    ctx->manager_nodes = ka_calloc(n + 1, sizeof(char *));
    ctx->managers = ka_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        ctx->manager_nodes[i] = ka_strdup(ka_pgres_value(res, (int)i, 0));
        ctx->managers[i] = ka_strdup(ka_pgres_value(res, (int)i, 1));
    }
    ctx->nmanagers = n;
    return 0;
}

static int read_raw(void *ud, const ka_pgres_t *res)
{
    forecast_ctx_t *ctx = ud;
    static const char *cats[] = {"closed", "commit", "best_case", "pipeline"};
    size_t n = (size_t)ka_pgres_rows(res) * 4;
    ctx->raw_keys = ka_calloc(n + 1, sizeof(char *));
    ctx->raw_values = ka_calloc(n + 1, sizeof(long long));
    for (int i = 0; i < ka_pgres_rows(res); i++)
        for (int c = 0; c < 4; c++) {
            ka_buf_t k = KA_BUF_INIT;
            ka_buf_printf(&k, "%s|%s|%s|%s", ka_pgres_value(res, i, 0), ka_pgres_value(res, i, 1),
                          ka_pgres_value(res, i, 2), cats[c]);
            ctx->raw_keys[ctx->nraw] = k.data;
            ctx->raw_values[ctx->nraw++] = ka_pgres_int(res, i, 3 + c, 0);
        }
    return 0;
}

static int may_adjust(const forecast_ctx_t *ctx, const char *node, const char *actor)
{
    for (size_t i = 0; i < ctx->nmanagers; i++)
        if (!strcmp(ctx->manager_nodes[i], node) && !strcmp(ctx->managers[i], actor))
            return 1;
    return 0;
}

static long long raw_value(const forecast_ctx_t *ctx, const char *node, const char *kind,
                           const char *start, const char *category)
{
    char key[256];
    snprintf(key, sizeof key, "%s|%s|%s|%s", node, kind, start, category);
    for (size_t i = 0; i < ctx->nraw; i++)
        if (strcmp(ctx->raw_keys[i], key) == 0)
            return ctx->raw_values[i];
    return 0;
}

static ka_err_t forecast_apply(void *ud, ka_tx_t *tx, ka_event_t *const *events, size_t n,
                               char *errstr, size_t errlen)
{
    forecast_ctx_t *ctx = ud;
    ka_pg_t *pg = ka_tx_pg(tx);
    ka_buf_t nodes = KA_BUF_INIT, cols[10];
    ka_pg_param_t p[10];
    int nadj = 0, any = 0;
    ka_err_t rc = KA_OK;

    reset_batch(ctx);
    ka_buf_array_begin(&nodes);
    for (size_t i = 0; i < n; i++)
        if (events[i]->decoded) {
            const Ka__V1__OpportunityEvent *e = events[i]->decoded;
            ka_buf_array_add(&nodes, e->forecast_adjusted->node_id);
            any = 1;
        }
    ka_buf_array_end(&nodes);
    if (!any) {
        ka_buf_free(&nodes);
        return KA_OK;
    }
    ka_pg_param_t np = {ka_buf_str(&nodes), 0, 0};
    if ((rc = ka_pg_pipe_push(pg, "forecast_managers", 1, &np, read_managers, ctx, errstr,
                              errlen)) ||
        (rc = ka_pg_pipe_push(pg, "forecast_raw", 1, &np, read_raw, ctx, errstr, errlen)) ||
        (rc = ka_tx_flush(tx, errstr, errlen))) {
        ka_buf_free(&nodes);
        return rc;
    }
    ka_buf_free(&nodes);
    for (int c = 0; c < 10; c++) {
        memset(&cols[c], 0, sizeof cols[c]);
        ka_buf_array_begin(&cols[c]);
    }
    for (size_t i = 0; i < n; i++) {
        const Ka__V1__OpportunityEvent *e = events[i]->decoded;
        if (!e)
            continue;
        const Ka__V1__ForecastAdjusted *a = e->forecast_adjusted;
        const char *cat = category_name(a->category), *kind;
        char start[32];
        if (!cat) {
            ka_tx_reject(tx, events[i], KA_REASON_ENUM, "forecast_adjusted.category: an omitted "
                         "category has no figure to adjust");
            continue;
        }
        /* 修订销售预测 "at their node": the node's own manager only; a
         * superior adjusts their own node, of which this one's figure is a part. */
        if (!e->actor_id || !may_adjust(ctx, a->node_id, e->actor_id)) {
            ka_tx_reject(tx, events[i], KA_REASON_UNAUTHORIZED_ADJUSTMENT,
                         "\"%s\" is not the manager of node \"%s\": only the node's manager "
                         "adjusts its forecast", e->actor_id ? e->actor_id : "", a->node_id);
            continue;
        }
        period_start(a->period, start, &kind);
        ka_buf_array_add(&cols[0], a->node_id);
        ka_buf_array_add(&cols[1], kind);
        ka_buf_array_add(&cols[2], start);
        ka_buf_array_add(&cols[3], cat);
        ka_buf_array_add_int(&cols[4], raw_value(ctx, a->node_id, kind, start, cat));
        if (a->amount_minor_present_case)
            ka_buf_array_add_int(&cols[5], a->amount_minor);
        else
            ka_buf_array_add(&cols[5], NULL); /* withdrawn: back to raw */
        ka_buf_array_add(&cols[6], a->reason);
        ka_buf_array_add(&cols[7], e->actor_id);
        ka_buf_array_add_int(&cols[8], e->header->occurred_at_ms);
        ka_buf_array_add(&cols[9], events[i]->event_id);
        nadj++;
    }
    for (int c = 0; c < 10; c++) {
        ka_buf_array_end(&cols[c]);
        p[c] = (ka_pg_param_t){ka_buf_str(&cols[c]), 0, 0};
    }
    if (nadj)
        rc = ka_pg_pipe_push(pg, "forecast_adjust", 10, p, NULL, NULL, errstr, errlen);
    for (int c = 0; c < 10; c++)
        ka_buf_free(&cols[c]);
    return rc;
}

/* The tick ------------------------------------------------------------------------- */

static void forecast_tick(void *ud, ka_worker_t *w)
{
    forecast_ctx_t *ctx = ud;
    char err[KA_ERRSTR_SIZE];
    int64_t mono = mono_ms();
    if (mono >= ctx->next_recompute_mono) {
        int taken = RECOMPUTE_LIMIT;
        ctx->next_recompute_mono = mono + RECOMPUTE_EVERY_MS;
        for (int round = 0; round < RECOMPUTE_ROUNDS && taken == RECOMPUTE_LIMIT; round++)
            if (forecast_recompute_run(w, RECOMPUTE_LIMIT, ctx->month_checked,
                                       forecast_scan_pace(ctx->scan), &taken, err,
                                       sizeof err) != KA_OK) {
                ka_log(KA_LOG_WARN, "forecast recompute failed", "{s:s}", "error", err);
                break;
            }
    }
    if (mono >= ctx->next_publish_mono) {
        int published = 0;
        long long round = ka_now_ms() / ctx->full_interval_ms + 1;
        ctx->next_publish_mono = mono + PUBLISH_EVERY_MS;
        if (forecast_publish_run(w, ctx->debounce_ms, 0, &published, err, sizeof err) != KA_OK)
            ka_log(KA_LOG_WARN, "forecast publishing failed", "{s:s}", "error", err);
        /* The whole current forecast again, once per interval (the first
         * at the end of the interval the worker started in). */
        if (!ctx->last_full_round)
            ctx->last_full_round = round;
        if (round != ctx->last_full_round) {
            if (forecast_publish_run(w, ctx->debounce_ms, round, &published, err, sizeof err) !=
                KA_OK)
                ka_log(KA_LOG_WARN, "forecast full publishing failed", "{s:s}", "error", err);
            else
                ctx->last_full_round = round;
        }
    }
    forecast_scan_tick(ctx->scan, w);
}

/* Setup ------------------------------------------------------------------------------ */

static const char *statements[][2] = {
    {"forecast_managers",
     "SELECT id, manager_user_id FROM org_node "
     "WHERE id = ANY($1::text[]) AND manager_user_id IS NOT NULL"},
    {"forecast_raw",
     "SELECT node_id, period_kind, period_start::text, raw_closed_minor, raw_commit_minor, "
     "raw_best_case_minor, raw_pipeline_minor FROM forecast WHERE node_id = ANY($1::text[])"},
    /* The adjustment, and the mark that makes the tick roll it up. */
    {"forecast_adjust",
     "WITH a AS (INSERT INTO forecast_adjustment (node_id, period_kind, period_start, category, "
     "raw_minor, adjusted_minor, reason, adjusted_by, adjusted_at, event_id) "
     "SELECT x.node, x.kind, x.start::date, x.cat, x.raw, x.adj, x.reason, x.actor, "
     "to_timestamp(x.at / 1000.0), x.ev FROM unnest($1::text[], $2::text[], $3::text[], "
     "$4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::text[]) "
     "AS x(node, kind, start, cat, raw, adj, reason, actor, at, ev) "
     "ON CONFLICT (event_id) DO NOTHING RETURNING node_id, period_kind, period_start) "
     "INSERT INTO forecast_dirty (node_id, period_kind, period_start) "
     "SELECT DISTINCT node_id, period_kind, period_start FROM a"},
};

static ka_err_t forecast_prepare(void *ud, ka_pg_t *pg, char *errstr, size_t errlen)
{
    (void)ud;
    ka_err_t rc;
    /* A plan per execution: the roll-up's tables (forecast_line, actual,
     * forecast) grow from empty faster than autovacuum analyzes them, and a
     * cached generic plan made while they were small scanned them whole in a
     * nested loop (41,000 buffers a call in issue 17's profile). A custom plan
     * sizes them from their current pages; planning costs a fraction of a
     * millisecond next to a roll-up's tens. */
    if ((rc = ka_pg_exec(pg, "SET plan_cache_mode = force_custom_plan", errstr, errlen)) ||
        (rc = forecast_recompute_prepare(pg, errstr, errlen)) ||
        (rc = forecast_publish_prepare(pg, errstr, errlen)) ||
        (rc = forecast_scan_prepare(pg, errstr, errlen)))
        return rc;
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

forecast_ctx_t *forecast_ctx_new(const ka_config_t *cfg)
{
    forecast_ctx_t *ctx = ka_calloc(1, sizeof *ctx);
    ctx->cfg = cfg;
    ctx->scan = forecast_scan_new(cfg);
    ctx->debounce_ms = ka_config_int(cfg, "KA_FORECAST_DEBOUNCE_MS");
    ctx->full_interval_ms = ka_config_int(cfg, "KA_FORECAST_FULL_INTERVAL_MS");
    return ctx;
}

void forecast_ctx_free(forecast_ctx_t *ctx)
{
    if (!ctx)
        return;
    reset_batch(ctx);
    forecast_scan_free(ctx->scan);
    free(ctx);
}

void forecast_handler_init(ka_handler_t *h, forecast_ctx_t *ctx)
{
    memset(h, 0, sizeof *h);
    h->ud = ctx;
    h->prepare = forecast_prepare;
    h->decode = forecast_decode;
    h->free_decoded = forecast_free_decoded;
    h->apply = forecast_apply;
    h->tick = forecast_tick;
}

/* The opportunity worker's batch logic. One batch costs three round trips:
 * the runtime's BEGIN + event-id dedupe; one pipeline (opp_reads.c) that reads the
 * batch's opportunities (locked), the reference data when stale, the owner
 * hierarchy and resolves (creates) the accounts new opportunities name
 * (ka_accounts.c); and one that writes everything and commits (queued by
 * opp_writes.c, run by the runtime). The events themselves are applied in memory, in
 * order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka/v1/opportunity.pb-c.h"
#include "ka_accounts.h"
#include "ka_alert.h"
#include "ka_buf.h"
#include "ka_log.h"
#include "ka_opp_decode.h"
#include "opp_internal.h"
#include "opp_reorg.h"
#include "opp_stalled.h"

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
    opp_reset_batch(ctx);
    opp_reset_funnel(ctx);

    if ((rc = opp_queue_reads(ctx, tx, events, n, errstr, errlen)) != KA_OK)
        goto out;
    for (size_t i = 0; i < n; i++) {
        Ka__V1__OpportunityEvent *e = events[i]->decoded;
        size_t before = cr.opp.len;
        const char *not_applied = opp_apply_one(ctx, tx, events[i], &sr, &cr, &rc, errstr, errlen);
        if (rc != KA_OK)
            goto out;
        if (events[i]->status == KA_EVENT_REJECTED)
            continue;
        if (cr.opp.len != before)
            nconfirm++;
        if (e->kind_case != KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED)
            opp_record_event(&er, events[i], e, not_applied);
        if (!not_applied) {
            if (e->header->occurred_at_ms > ctx->batch_at_ms)
                ctx->batch_at_ms = e->header->occurred_at_ms;
            if (ctx->ncauses < sizeof ctx->causes / sizeof ctx->causes[0])
                ctx->causes[ctx->ncauses++] = events[i]->event_id;
        }
    }
    rc = opp_queue_writes(ctx, tx, &er, &sr, &cr, nconfirm, errstr, errlen);
    /* The funnel's new values decide health, in this same transaction. The
     * funnel_state row locks taken by the upsert serialize instances that
     * evaluate the same node, so a transition is decided once. */
    if (rc == KA_OK && ctx->ndeltas > 0)
        rc = ka_tx_flush(tx, errstr, errlen);
    if (rc == KA_OK && ctx->nhealth > 0)
        rc = opp_evaluate_health(ctx, tx, errstr, errlen);
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
    opp_reset_funnel(ctx);
    return rc;
}

static ka_err_t opp_rebuild(void *ud, ka_pg_t *pg, ka_redis_t *rds, char *errstr, size_t errlen)
{
    opp_ctx_t *ctx = ud;
    opp_reset_funnel(ctx);
    ka_err_t rc = ka_pg_query(pg,
                              "SELECT node_id, definition_id, stage_code, open_count, amount_minor, "
                              "weighted_amount_minor FROM funnel_state",
                              0, NULL, opp_read_funnel, ctx, errstr, errlen);
    if (rc == KA_OK)
        rc = opp_after_commit(ud, rds, NULL, 0, errstr, errlen);
    opp_reset_funnel(ctx);
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

static ka_err_t opp_prepare(void *ud, ka_pg_t *pg, char *errstr, size_t errlen)
{
    (void)ud;
    if (ka_alert_prepare(pg, errstr, errlen) != KA_OK ||
        opp_stalled_prepare(pg, errstr, errlen) != KA_OK ||
        opp_reorg_prepare(pg, errstr, errlen) != KA_OK ||
        ka_accounts_prepare(pg, errstr, errlen) != KA_OK)
        return KA_ERR;
    return opp_statements_prepare(pg, errstr, errlen);
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
    opp_reset_batch(ctx);
    opp_reset_funnel(ctx);
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

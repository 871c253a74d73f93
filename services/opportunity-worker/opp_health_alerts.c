#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka/v1/alert.pb-c.h"
#include "ka_alert.h"
#include "opp_internal.h"

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
ka_err_t opp_evaluate_health(opp_ctx_t *ctx, ka_tx_t *tx, char *errstr, size_t errlen)
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
    opp_reset_batch(ctx);
    opp_reset_funnel(ctx);
    ctx->batch_at_ms = at_ms;
    if ((rc = ka_pg_pipe_push(ka_tx_pg(tx), "opp_recheck_funnel", 1, &p, opp_read_funnel, ctx,
                              errstr, errlen)) == KA_OK &&
        (rc = ka_pg_pipe_push(ka_tx_pg(tx), "opp_recheck_inputs", 1, &p, opp_read_health_inputs,
                              ctx, errstr, errlen)) == KA_OK &&
        (rc = ka_tx_flush(tx, errstr, errlen)) == KA_OK)
        rc = opp_evaluate_health(ctx, tx, errstr, errlen);
    opp_reset_batch(ctx);
    opp_reset_funnel(ctx);
    return rc;
}

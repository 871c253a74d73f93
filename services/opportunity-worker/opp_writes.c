#include <stdio.h>
#include <string.h>

#include "opp_internal.h"

#define NOPP_COLS 25

ka_err_t opp_queue_writes(opp_ctx_t *ctx, ka_tx_t *tx, event_rows_t *er, stage_rows_t *sr,
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
        rc = ka_pg_pipe_push(pg, "opp_funnel_add", 6, dp, opp_read_funnel, ctx, errstr, errlen);
        if (rc == KA_OK)
            rc = ka_pg_pipe_push(pg, "opp_health_inputs", 3, dp, opp_read_health_inputs, ctx,
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

#include <stdlib.h>
#include <string.h>

#include "opp_internal.h"

#define REFERENCE_MAX_AGE_MS 10000

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
        opp_t *o = opp_find(ctx, val(res, i, 0));
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

int opp_read_funnel(void *ud, const ka_pgres_t *res)
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

int opp_read_health_inputs(void *ud, const ka_pgres_t *res)
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
        opp_t *o = opp_find(ctx, val(res, i, 0));
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

ka_err_t opp_queue_reads(opp_ctx_t *ctx, ka_tx_t *tx, ka_event_t *const *events, size_t n,
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
        if (!opp_find(ctx, e->opportunity_id)) {
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

#include <stdlib.h>
#include <string.h>

#include "opp_internal.h"

/* The batch's in-memory state: lookup and release. */

opp_t *opp_find(opp_ctx_t *ctx, const char *id)
{
    for (size_t i = 0; i < ctx->nopps; i++)
        if (strcmp(ctx->opps[i].id, id) == 0)
            return &ctx->opps[i];
    return NULL;
}

void opp_free_lines(opp_t *o)
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

void opp_reset_batch(opp_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nopps; i++) {
        free(ctx->opps[i].lost_reason);
        free(ctx->opps[i].competitors);
        opp_free_lines(&ctx->opps[i]);
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

void opp_reset_funnel(opp_ctx_t *ctx)
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

#ifndef OPP_WORKER_H
#define OPP_WORKER_H

#include "ka_worker.h"

/* The opportunity worker's handler (DOMAIN.md section 4): opportunities, line
 * items, stage and event history, accounts named by new opportunities, and
 * the funnel state rolled up the org tree, in PostgreSQL and Redis. */
typedef struct opp_ctx opp_ctx_t;

/* Creates the handler state; free with opp_ctx_free. */
opp_ctx_t *opp_ctx_new(const ka_config_t *cfg);
void opp_ctx_free(opp_ctx_t *ctx);

/* Fills h with the callbacks, bound to ctx. */
void opp_handler_init(ka_handler_t *h, opp_ctx_t *ctx);

/* Redis key of a node's funnel for one funnel definition: a hash with fields
 * "<stage>:count", "<stage>:amount", "<stage>:weighted". */
void opp_funnel_key(char *out, size_t len, const char *node_id, const char *definition_id);

/* Re-evaluates the funnel health of every row of the nodes in `nodes` (an
 * array literal) from their current funnel_state, in tx, as a batch does
 * for the rows it moved: health rows and alert transitions, at at_ms (the
 * worker's clock). For figures that changed outside a batch (a re-org). */
ka_err_t opp_health_recheck(opp_ctx_t *ctx, ka_tx_t *tx, const char *nodes, int64_t at_ms,
                            char *errstr, size_t errlen);

#endif

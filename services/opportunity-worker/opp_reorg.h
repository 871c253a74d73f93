#ifndef OPP_REORG_H
#define OPP_REORG_H

#include <stdint.h>

#include "ka_worker.h"
#include "opp_worker.h"

/* What the opportunity worker does after the org tree changes, or when
 * figures reach a rep it does not know (deploy/sql/0016_reorg.sql):
 *   - re-evaluates the funnel health of the nodes `kactl load org`
 *     recomputed (funnel_health_dirty), so health alerts follow the new
 *     figures;
 *   - raises one unknown_rep warning per rep the workers counted while the
 *     tree did not know it (unknown_rep), and resolves it once the rep is an
 *     org node.
 * About once a second, in its own transaction, one instance at a time. */

/* Prepares the statements (once, on the worker's connection). */
ka_err_t opp_reorg_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* From handler.tick: runs when the monotonic clock has reached *next_ms and
 * moves *next_ms on. Failures are logged; the next round retries. */
void opp_reorg_tick(opp_ctx_t *ctx, ka_worker_t *w, int64_t *next_ms);

#endif

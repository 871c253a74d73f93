#ifndef FORECAST_GAP_H
#define FORECAST_GAP_H

#include <stddef.h>
#include <stdint.h>

#include "ka_worker.h"

/* The forecast-gap rule (DOMAIN.md sections 1 and 5): a node-period of the
 * current month or quarter with a quota is behind when its adjusted closed +
 * commit is under the quota's pace (KA_FORECAST_PACE) by today; its
 * forecast_gap alert fires then and resolves when it catches up, or when the
 * period ends or its quota goes. Two callers judge with the same statements:
 * the periodic scan (forecast_scan), every node-period, and the recompute
 * (forecast_recompute), just the current node-periods whose row it changed,
 * in the transaction that changed them. Both hold FORECAST_GAP_LOCK (a
 * transaction-level advisory lock, ka_scan_lock) while they judge, so one
 * judgement at a time decides each transition from the state the one
 * before committed; neither waits for it: a scan that finds it taken runs
 * at the next tick, a recompute rolls back and runs again. */

#define FORECAST_GAP_LOCK 4242025

/* The node-periods to judge, as PostgreSQL array literals of equal length
 * (node ids, period kinds, period starts "YYYY-MM-DD"); borrowed. */
typedef struct forecast_gap_keys {
    const char *nodes, *kinds, *starts;
    int n;
} forecast_gap_keys_t;

/* Prepares the statements (once, from handler.prepare). */
ka_err_t forecast_gap_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* Judges `keys` (NULL: every node-period, at most `limit` transitions) at
 * the worker's clock now_ms, whose UTC date is today ("YYYY-MM-DD"), with
 * the pace as an int[] literal, and queues the alert transitions in tx:
 * first the episodes that are over (of the keys' node and period kind),
 * then the verdicts. Adds the transitions to *fired and *resolved. The
 * caller holds FORECAST_GAP_LOCK. */
ka_err_t forecast_gap_judge(ka_tx_t *tx, const char *pace, const char *today, int64_t now_ms,
                            const forecast_gap_keys_t *keys, int limit, int *fired,
                            int *resolved, char *errstr, size_t errlen);

#endif

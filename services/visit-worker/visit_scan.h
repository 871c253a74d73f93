#ifndef VISIT_SCAN_H
#define VISIT_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "ka_worker.h"

/* The visit worker's two alerts and the periodic scan that raises them:
 *   visit_overdue       an account's follow-up due date passed with no newer
 *                       visit (DOMAIN.md section 3); subject the account,
 *                       severity by its tier; resolved by the next visit;
 *   decision_maker_gap  an open opportunity at stage 05 or later (win
 *                       probability 50% or more) whose account had no visit
 *                       with a decision maker in KA_DECISION_MAKER_GAP_DAYS
 *                       (section 4, 找对人); resolved by such a visit, by the
 *                       deal closing or falling back under stage 05.
 * The scan runs in one instance at a time (a transaction-level advisory
 * lock). An episode starts at the moment its rule was first broken (the due
 * date; the gap's end), so its alert id is the same whichever instance, or
 * whichever scan after a crash, finds it. */

/* Prepares the scan's statements (once, from handler.prepare). */
ka_err_t visit_scan_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* "critical" for tier A, "warning" for B, "info" for C and D. */
const char *visit_overdue_severity(const char *tier);

/* Queues a visit-overdue transition of `account` in the open transaction. */
ka_err_t visit_overdue_alert(ka_tx_t *tx, const char *account, const char *severity,
                             const char *rep, int64_t due_ms, int64_t at_ms, int firing,
                             const char *cause, char *errstr, size_t errlen);

/* Queues a decision-maker-gap transition of opportunity `opp`. */
ka_err_t visit_dm_gap_alert(ka_tx_t *tx, const char *opp, const char *account, const char *owner,
                            const char *stage, int64_t starts_ms, int64_t at_ms, int firing,
                            const char *cause, char *errstr, size_t errlen);

typedef struct visit_scan_counts {
    int overdue_fired, overdue_resolved, dm_fired, dm_resolved;
    int skipped; /* another instance held the scan lock */
} visit_scan_counts_t;

/* Runs both scans at the worker's clock now_ms in one transaction of the
 * worker's connection and records them in scan_run. */
ka_err_t visit_scan_run(ka_worker_t *w, int64_t now_ms, int gap_days, visit_scan_counts_t *out,
                        char *errstr, size_t errlen);

#endif

#ifndef FORECAST_RECOMPUTE_H
#define FORECAST_RECOMPUTE_H

#include <stddef.h>
#include <stdint.h>

#include "ka_worker.h"

/* The incremental forecast (DOMAIN.md section 5). Other workers mark what
 * changed in forecast_dirty in their own transactions; one instance at a
 * time takes a bounded set of marks and, in one transaction:
 *   - projects each marked opportunity into the lines it contributes: to its
 *     owner's forecast for at most one month and one quarter (its latest
 *     confirmation of each kind; category as confirmed, else the stage's
 *     default; only confirmations by its current owner count), and to the
 *     planning feed per (sku, month, division): open confirmed deals in
 *     their close month, won deals for what booked orders naming them have
 *     not delivered, neither ever in a month that is over;
 *   - recomputes the forecast of every (node, period) those lines, closed
 *     revenue or an adjustment touched, and of their ancestors, level by
 *     level from the reps up: raw = own lines + own closed + the children's
 *     adjusted figures; adjusted = the manager's adjustment in force, else
 *     raw. A row that changed gets a new revision and a submission record;
 *   - recomputes the planning feed rows whose lines moved;
 *   - judges the forecast-gap rule (forecast_gap.h) for the rows of the
 *     current month and quarter that changed, so the pace alert moves with
 *     the figures.
 * Publishing the changed rows is forecast_publish's. */

/* Prepares the statements (once, from handler.prepare). */
ka_err_t forecast_recompute_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* Takes up to `limit` marks and recomputes, judging gaps at the pace `pace`
 * (an int[] literal, forecast_scan_pace); *taken receives how many (0:
 * nothing to do, or another instance holds the recompute lock or is judging
 * gaps: the marks wait for the next run). month_checked is the caller's
 * "YYYY-MM-01" ("" at start): when the worker's clock is in another month,
 * the opportunities with planning lines in a month now past are marked again
 * first (overdue demand moves to the new month), and month_checked is set
 * once that committed. */
ka_err_t forecast_recompute_run(ka_worker_t *w, int limit, char month_checked[11],
                                const char *pace, int *taken,
                                char *errstr, size_t errlen);

/* "YYYY-MM-01" of the quarter containing the month "YYYY-MM-DD" (11 bytes). */
void forecast_quarter_of(const char *month, char out[11]);

#endif

#ifndef FORECAST_SCAN_H
#define FORECAST_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "ka_worker.h"

/* The forecast worker's daily and periodic rules (DOMAIN.md sections 4 and
 * 5), each run by one instance at a time (a transaction-level advisory lock)
 * at the worker's clock (ka_now_ms), and recorded in scan_run:
 *   snapshots  once per UTC day: funnel_snapshot (from funnel_state),
 *              forecast_snapshot (forecast rows), opportunity_snapshot
 *              (open opportunities);
 *   accuracy   for every period that ended: forecast_accuracy at 30, 60 and
 *              90 days before its end (adjusted closed + commit of the
 *              snapshot taken then, against the actual closed revenue);
 *   baselines  derived funnel baselines for today: the mean of the same day
 *              of the last KA_BASELINE_PERIODS months' funnel snapshots (at
 *              least 2), which the opportunity worker uses when no explicit
 *              baseline is loaded;
 *   slipping   slipping_deal alerts: an open deal whose expected close date
 *              passed, or pushed out more than twice in a quarter; resolved
 *              when it closes or has a realistic date again;
 *   gap        forecast_gap alerts (forecast_gap.h) over every node-period:
 *              adjusted closed + commit behind the quota's pace
 *              (KA_FORECAST_PACE) for the current period; resolved when it
 *              catches up. The recompute judges the rows it changes at
 *              once; the scan catches what the clock moves (the pace, a new
 *              period) and whatever came before. */

typedef struct forecast_scan forecast_scan_t;

/* cfg must outlive the scan. */
forecast_scan_t *forecast_scan_new(const ka_config_t *cfg);

/* No operation is performed if s is NULL. */
void forecast_scan_free(forecast_scan_t *s);

ka_err_t forecast_scan_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* The pace as a PostgreSQL int[] literal, for forecast_gap_judge; lives as
 * long as s. */
const char *forecast_scan_pace(const forecast_scan_t *s);

/* Runs the rules that are due (from handler.tick). */
void forecast_scan_tick(forecast_scan_t *s, ka_worker_t *w);

#endif

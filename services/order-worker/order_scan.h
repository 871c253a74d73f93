#ifndef ORDER_SCAN_H
#define ORDER_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "ka_worker.h"

/* The order worker's periodic rules, each run by one instance at a time (a
 * transaction-level advisory lock) at the worker's clock, and recorded in
 * scan_run:
 *   tiers    (every KA_TIER_INTERVAL_MS) A/B/C/D by the 80/20 rule on
 *            trailing-12-month booked revenue (DOMAIN.md section 2); an
 *            account's first ranking is no change and raises nothing; each
 *            change is a point event, an info alert (tier_changed) sent
 *            firing with its end, KA_TIER_ALERT_TTL_MS on, and resolved by
 *            the first run after that end (or by the account's next change);
 *   churn    (every KA_SCAN_INTERVAL_MS) 大客户叛离 on tier A/B accounts:
 *            trailing-90-day revenue down more than KA_CHURN_DROP_PCT against
 *            the 90 days before, the latest satisfaction reading on a visit
 *            dissatisfied, or the follow-up overdue; one churn_risk alert per
 *            account and episode with the reasons in its details, resolved
 *            when none holds;
 *   channel  (every KA_SCAN_INTERVAL_MS) a channel_diversion or
 *            price_dumping alert of a distributor resolves after
 *            KA_CHANNEL_QUIET_DAYS without a new violation of its kind. */

typedef struct order_scan order_scan_t;

/* cfg must outlive the scan. */
order_scan_t *order_scan_new(const ka_config_t *cfg);
void order_scan_free(order_scan_t *s);

ka_err_t order_scan_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* Runs the scans that are due (from handler.tick). */
void order_scan_tick(order_scan_t *s, ka_worker_t *w);

/* Queues a channel_diversion or price_dumping transition of distributor
 * `dist` (the order and region that started the episode go in its details). */
ka_err_t order_channel_alert(ka_tx_t *tx, const char *type, const char *dist, const char *order,
                             const char *region, int64_t starts_ms, int64_t at_ms, int firing,
                             const char *cause, char *errstr, size_t errlen);

#endif

#ifndef ORDER_WORKER_H
#define ORDER_WORKER_H

#include "ka_worker.h"

/* The order worker's handler (DOMAIN.md sections 2 and 6): orders and their
 * lines, status changes adjusting the actuals per account, product, node and
 * month (rolled up the org tree, cached in Redis as ACTUALS_KEY), the
 * opportunity an order names closed as won through the opportunity topic,
 * distributor orders checked against territories and floor prices, and the
 * tier, churn and channel scans (order_scan.h). */

typedef struct order_ctx order_ctx_t;

/* cfg must outlive the context. */
order_ctx_t *order_ctx_new(const ka_config_t *cfg);

/* No operation is performed if ctx is NULL. */
void order_ctx_free(order_ctx_t *ctx);

/* Fills h with the worker's callbacks; ctx must outlive the worker. */
void order_handler_init(ka_handler_t *h, order_ctx_t *ctx);

/* Redis hash of a node's booked revenue, rolled up over its subtree:
 * field "YYYY-MM", value minor units. */
void order_actuals_key(char *out, size_t len, const char *node_id);

#endif

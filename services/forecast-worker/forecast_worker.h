#ifndef FORECAST_WORKER_H
#define FORECAST_WORKER_H

#include "ka_worker.h"

/* The forecast worker's handler: managers' adjustments from the opportunity
 * topic, and a tick that recomputes, publishes and runs the periodic rules. */

typedef struct forecast_ctx forecast_ctx_t;

/* cfg must outlive the context. */
forecast_ctx_t *forecast_ctx_new(const ka_config_t *cfg);

/* No operation is performed if ctx is NULL. */
void forecast_ctx_free(forecast_ctx_t *ctx);

void forecast_handler_init(ka_handler_t *h, forecast_ctx_t *ctx);

#endif

/* forecast-worker: keeps the forecast per node and period (confirmed deals,
 * closed revenue, managers' adjustments, rolled up the org tree) and the
 * planning feed, and publishes both, exactly once. */
#include "forecast_worker.h"
#include "ka_service.h"

static void *init(const ka_config_t *cfg, ka_handler_t *h)
{
    forecast_ctx_t *ctx = forecast_ctx_new(cfg);
    forecast_handler_init(h, ctx);
    return ctx;
}

static void done(void *ctx)
{
    forecast_ctx_free(ctx);
}

int main(int argc, char **argv)
{
    static const ka_service_t svc = {
        .name = "forecast-worker",
        .summary = "Keeps and publishes the forecast per node and period and the planning "
                   "feed; applies managers' adjustments from the opportunity topic.",
        .topic_key = "KA_TOPIC_OPPORTUNITY",
        .init = init,
        .free = done,
    };
    return ka_service_main(&svc, argc, argv);
}

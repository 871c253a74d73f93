/* order-worker: consumes ka.order.v1 and keeps orders and the actuals
 * (PostgreSQL, Redis) exactly once; closes the opportunities orders name,
 * recomputes tiers and raises churn and channel alerts. */
#include "ka_service.h"
#include "order_worker.h"

static void *init(const ka_config_t *cfg, ka_handler_t *h)
{
    order_ctx_t *ctx = order_ctx_new(cfg);
    order_handler_init(h, ctx);
    return ctx;
}

static void done(void *ctx)
{
    order_ctx_free(ctx);
}

int main(int argc, char **argv)
{
    static const ka_service_t svc = {
        .name = "order-worker",
        .summary = "Consumes order events; keeps orders and actuals, closes won deals, "
                   "recomputes tiers, raises churn and channel alerts.",
        .topic_key = "KA_TOPIC_ORDER",
        .init = init,
        .free = done,
    };
    return ka_service_main(&svc, argc, argv);
}

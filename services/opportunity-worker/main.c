/* opportunity-worker: consumes ka.opportunity.v1 and keeps opportunities and
 * the funnel (PostgreSQL, Redis) exactly once. */
#include "ka_service.h"
#include "opp_worker.h"

static void *init(const ka_config_t *cfg, ka_handler_t *h)
{
    opp_ctx_t *ctx = opp_ctx_new(cfg);
    opp_handler_init(h, ctx);
    return ctx;
}

static void done(void *ctx)
{
    opp_ctx_free(ctx);
}

int main(int argc, char **argv)
{
    static const ka_service_t svc = {
        .name = "opportunity-worker",
        .summary = "Consumes opportunity events; keeps opportunities, the funnel and its health.",
        .topic_key = "KA_TOPIC_OPPORTUNITY",
        .init = init,
        .free = done,
    };
    return ka_service_main(&svc, argc, argv);
}

/* visit-worker: consumes ka.visit.v1 and keeps accounts, visits, MAN classes
 * and follow-up plans (PostgreSQL, Redis) exactly once; raises visit-overdue
 * and decision-maker-gap alerts. */
#include "ka_service.h"
#include "visit_worker.h"

static void *init(const ka_config_t *cfg, ka_handler_t *h)
{
    visit_ctx_t *ctx = visit_ctx_new(cfg);
    visit_handler_init(h, ctx);
    return ctx;
}

static void done(void *ctx)
{
    visit_ctx_free(ctx);
}

int main(int argc, char **argv)
{
    static const ka_service_t svc = {
        .name = "visit-worker",
        .summary = "Consumes visit events; keeps accounts, MAN classes and follow-ups, "
                   "raises overdue and decision-maker-gap alerts.",
        .topic_key = "KA_TOPIC_VISIT",
        .init = init,
        .free = done,
    };
    return ka_service_main(&svc, argc, argv);
}

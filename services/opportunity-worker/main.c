/* opportunity-worker: consumes ka.opportunity.v1 and keeps opportunities and
 * the funnel (PostgreSQL, Redis) exactly once. */
#include <stdio.h>
#include <string.h>

#include "ka_log.h"
#include "ka_signal.h"
#include "opp_worker.h"

int main(int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE];
    const char *config_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_file = argv[++i];
        } else {
            int help = strcmp(argv[i], "--help") == 0;
            if (!help)
                fprintf(stderr, "opportunity-worker: unknown argument \"%s\"\n", argv[i]);
            fprintf(help ? stdout : stderr,
                    "usage: opportunity-worker [--config FILE]\n"
                    "Configuration: KA_* environment variables, overridden by FILE "
                    "(see `kactl config`).\n");
            return help ? 0 : 2;
        }
    }
    ka_config_t *cfg = ka_config_load("opportunity-worker", config_file, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "opportunity-worker: %s\n", err);
        return 1;
    }
    ka_log_init("opportunity-worker", ka_config_str(cfg, "KA_LOG_LEVEL"));
    ka_signal_install();
    opp_ctx_t *ctx = opp_ctx_new(cfg);
    ka_handler_t h;
    opp_handler_init(&h, ctx);
    const char *topics[] = {ka_config_str(cfg, "KA_TOPIC_OPPORTUNITY")};
    ka_worker_t *w = ka_worker_new(cfg, topics, 1, &h, err, sizeof err);
    int rc = 1;
    if (!w) {
        ka_log(KA_LOG_ERROR, "could not start", "{s:s}", "error", err);
    } else {
        ka_log(KA_LOG_INFO, "started", "{s:s,s:s}", "topic", topics[0], "group",
               ka_config_str(cfg, "KA_CONSUMER_GROUP"));
        rc = ka_worker_run(w) == KA_OK ? 0 : 1;
    }
    ka_worker_free(w);
    opp_ctx_free(ctx);
    ka_config_free(cfg);
    return rc;
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_log.h"
#include "ka_service.h"
#include "ka_signal.h"

int ka_service_main(const ka_service_t *svc, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE];
    const char *config_file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_file = argv[++i];
        } else {
            int help = strcmp(argv[i], "--help") == 0;
            if (!help)
                fprintf(stderr, "%s: unknown argument \"%s\"\n", svc->name, argv[i]);
            fprintf(help ? stdout : stderr,
                    "usage: %s [--config FILE]\n"
                    "%s\n"
                    "Configuration: KA_* environment variables, overridden by FILE "
                    "(see `kactl config`).\n",
                    svc->name, svc->summary);
            return help ? 0 : 2;
        }
    }
    ka_config_t *cfg = ka_config_load(svc->name, config_file, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s: %s\n", svc->name, err);
        return 1;
    }
    ka_log_init(svc->name, ka_config_str(cfg, "KA_LOG_LEVEL"));
    char *settings = ka_config_summary(cfg); /* passwords show as *** */
    ka_log(KA_LOG_INFO, "configuration", "{s:s}", "settings", settings);
    free(settings);
    ka_signal_install();
    ka_handler_t h;
    void *ctx = svc->init(cfg, &h);
    const char *topics[] = {ka_config_str(cfg, svc->topic_key)};
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
    svc->free(ctx);
    ka_config_free(cfg);
    return rc;
}

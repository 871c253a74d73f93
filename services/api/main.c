/* ka-api: the HTTP API of the funnel engine (docs/api/openapi.yaml).
 *
 * Read-only JSON under /v1 for managers' pages, BI tools and planning
 * systems: the org tree, a node's funnel, forecast, alerts, follow-ups and
 * coverage, accounts, opportunities, the planning feed and (ops tokens) the
 * dead letters. Bearer tokens from `kactl token create` scope every answer
 * to the subtree of the token's node. PostgreSQL (as role ka_api, SELECT
 * only) is the source; the funnel's figures come from the Redis cache when
 * it is warm. /healthz, /readyz and /metrics are on the same port.
 *
 * SIGTERM drains: /readyz turns 503, the listener closes, the requests in
 * flight finish (KA_API_DRAIN_MS at most), and the process exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_http.h"
#include "api_pool.h"
#include "ka_config.h"
#include "ka_log.h"
#include "ka_metrics.h"
#include "ka_signal.h"
#include "ka_validate.h"

#define SERVICE "api"

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
                fprintf(stderr, "ka-api: unknown argument \"%s\"\n", argv[i]);
            fprintf(help ? stdout : stderr,
                    "usage: ka-api [--config FILE]\n"
                    "Serves the HTTP API (/v1, docs/api/openapi.yaml) and /healthz, /readyz,\n"
                    "/metrics on KA_HTTP_ADDR:KA_API_PORT. Tokens: kactl token create.\n"
                    "Configuration: KA_* environment variables, overridden by FILE "
                    "(see `kactl config`).\n");
            return help ? 0 : 2;
        }
    }
    ka_config_t *cfg = ka_config_load(SERVICE, config_file, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "ka-api: %s\n", err);
        return 1;
    }
    ka_log_init(SERVICE, ka_config_str(cfg, "KA_LOG_LEVEL"));
    char *settings = ka_config_summary(cfg);
    ka_log(KA_LOG_INFO, "configuration", "{s:s}", "settings", settings);
    free(settings);
    ka_signal_install();
    ka_clock_set_offset_ms(ka_config_int(cfg, "KA_CLOCK_OFFSET_MS"));

    int threads = (int)ka_config_int(cfg, "KA_API_THREADS");
    api_pool_t *pool = api_pool_new(cfg, threads);
    api_http_t *http = api_http_start(cfg, pool, ka_metrics_global(), err, sizeof err);
    if (!http) {
        ka_log(KA_LOG_ERROR, "could not start", "{s:s}", "error", err);
        api_pool_free(pool);
        ka_config_free(cfg);
        return 1;
    }
    ka_log(KA_LOG_INFO, "serving /v1, /healthz, /readyz, /metrics", "{s:i,s:i}", "port",
           api_http_port(http), "threads", threads);
    while (!ka_signal_stop_requested()) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    ka_log(KA_LOG_INFO, "stopping: draining requests in flight", NULL);
    api_http_drain_and_stop(http, (int)ka_config_int(cfg, "KA_API_DRAIN_MS"));
    api_pool_free(pool);
    ka_config_free(cfg);
    ka_log(KA_LOG_INFO, "stopped", NULL);
    return 0;
}

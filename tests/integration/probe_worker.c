/* A stand-alone probe worker for tests that need a real process (interop,
 * kill -9): consumes KA_TOPIC_VISIT, echoes to PROBE_ECHO_TOPIC. */
#include <stdio.h>
#include <stdlib.h>

#include "ka_log.h"
#include "ka_signal.h"
#include "probe_handler.h"

int main(void)
{
    char err[KA_ERRSTR_SIZE];
    ka_handler_t h;
    const char *echo = getenv("PROBE_ECHO_TOPIC");
    ka_config_t *cfg = ka_config_load("probe-worker", NULL, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "probe-worker: %s\n", err);
        return 1;
    }
    ka_log_init("probe-worker", ka_config_str(cfg, "KA_LOG_LEVEL"));
    ka_signal_install();
    probe_t probe = {ka_config_str(cfg, "KA_CONSUMER_GROUP"), echo ? echo : "ka.probe.echo"};
    probe_handler_init(&h, &probe);
    const char *topics[] = {ka_config_str(cfg, "KA_TOPIC_VISIT")};
    ka_worker_t *w = ka_worker_new(cfg, topics, 1, &h, err, sizeof err);
    if (!w) {
        ka_log(KA_LOG_ERROR, "could not start", "{s:s}", "error", err);
        ka_config_free(cfg);
        return 1;
    }
    ka_err_t rc = ka_worker_run(w);
    ka_worker_free(w);
    ka_config_free(cfg);
    return rc == KA_OK ? 0 : 1;
}

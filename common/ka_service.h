#ifndef KA_SERVICE_H
#define KA_SERVICE_H

#include "ka_worker.h"

/* The main() every worker shares: --config FILE / --help, configuration,
 * logging, signals, the exactly-once loop on one input topic, and the exit
 * code (0 after a clean stop, 1 when the worker cannot start or go on, 2 for
 * a bad argument). A worker's main.c only names itself and its handler. */
typedef struct ka_service {
    const char *name;      /* e.g. "visit-worker": logs, consumer group, ce_source */
    const char *summary;   /* one line for --help */
    const char *topic_key; /* the configuration key of the input topic */
    /* Creates the handler's context (cfg outlives it) and fills h. */
    void *(*init)(const ka_config_t *cfg, ka_handler_t *h);
    void (*free)(void *ctx);
} ka_service_t;

int ka_service_main(const ka_service_t *svc, int argc, char **argv);

#endif

#ifndef PROBE_HANDLER_H
#define PROBE_HANDLER_H

#include "ka_worker.h"

/* The foundation's probe: a minimal handler on the shared worker runtime that
 * consumes VisitEvents, records each in ingest_probe, caches it in Redis
 * (ka:probe:<group>:<event id>) and emits one AlertEvent per event through the
 * outbox to `echo_topic` (ce_id probe:<group>:<event id>), so tests can watch every step of the pipeline. */
typedef struct probe {
    const char *group;
    const char *echo_topic;
} probe_t;

/* Fills `h` with the probe's callbacks; `p` must outlive the worker. */
void probe_handler_init(ka_handler_t *h, probe_t *p);

#endif

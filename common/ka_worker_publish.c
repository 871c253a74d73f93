#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "ka_log.h"
#include "ka_worker_internal.h"

/* After a commit: the loop's counters and the Redis cache from the committed
 * state (the outbox relay: ka_worker_relay.c). */

void ka_worker_after_commit(ka_worker_t *w, ka_event_t **evs, size_t n)
{
    char err[KA_ERRSTR_SIZE];
    ka_event_t **fresh = ka_calloc(n + 1, sizeof *fresh);
    size_t nfresh = 0, ndup = 0;
    int64_t now = wall_ms();
    double t = mono_s();
    ka_metrics_inc(w->m.batches);
    ka_metrics_observe(w->m.batch_size, (double)n);
    ka_metrics_observe(w->m.processing, mono_s() - w->batch_started_s);
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->status == KA_EVENT_NEW)
            fresh[nfresh++] = evs[i];
        else if (evs[i]->status == KA_EVENT_DUPLICATE)
            ndup++;
        if (evs[i]->msg->timestamp_ms >= 0) {
            int64_t ms = now - evs[i]->msg->timestamp_ms;
            ka_metrics_observe(w->m.end_to_end, ms > 0 ? (double)ms / 1000.0 : 0.0);
        }
    }
    w->stats.duplicates += ndup;
    w->stats.applied += nfresh;
    ka_metrics_add(w->m.duplicates, (double)ndup);
    ka_metrics_add(w->m.applied, (double)nfresh);
    ka_worker_log_rejects(w, evs, n);
    if (nfresh && w->h->after_commit && !w->cache_stale) {
        ka_err_t rc = KA_ERR_RETRY;
        if (!w->rds)
            snprintf(err, sizeof err, "not connected");
        else if ((rc = ka_worker_cache_lock(w, 0, err, sizeof err)) == KA_OK) {
            rc = w->h->after_commit(w->h->ud, w->rds, fresh, nfresh, err, sizeof err);
            ka_worker_cache_unlock(w, 0);
        }
        if (rc != KA_OK) {
            /* The cache is behind PostgreSQL now; a rebuild catches it up. */
            ka_log(KA_LOG_WARN, "cache update failed, will rebuild", "{s:s}", "error", err);
            w->cache_stale = 1;
        }
    }
    free(fresh);
    ka_worker_step_done(w, STEP_AFTER_COMMIT, t);
}

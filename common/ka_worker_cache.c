#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "ka_log.h"
#include "ka_worker_internal.h"

#define CACHE_CHECK_MS 5000

/* Redis --------------------------------------------------------------------- */

static void cache_marker(const ka_worker_t *w, char *key, size_t len)
{
    snprintf(key, len, "ka:cache:ready:%s", w->group);
}

/* A rebuild writes a snapshot of PostgreSQL over the cache. An instance that
 * commits after that snapshot and writes its newer values before the
 * rebuild's flush would see them overwritten (or deleted with a rebuilt set)
 * until the next rebuild: rebuilds hold this lock exclusively, the updates
 * after each commit hold it shared. Rebuilds are rare (cold start, flushed
 * Redis), so writers almost never wait. */
#define CACHE_LOCK KA_WORKER_CACHE_LOCK

ka_err_t ka_worker_cache_lock(ka_worker_t *w, int exclusive, char *errstr, size_t errlen)
{
    return ka_pg_exec(w->pg,
                      exclusive ? "SELECT pg_advisory_lock(" CACHE_LOCK ")"
                                : "SELECT pg_advisory_lock_shared(" CACHE_LOCK ")",
                      errstr, errlen);
}

void ka_worker_cache_unlock(ka_worker_t *w, int exclusive)
{
    char err[KA_ERRSTR_SIZE];
    /* A failure means the session is gone, and its locks with it. */
    (void)ka_pg_exec(w->pg,
                     exclusive ? "SELECT pg_advisory_unlock(" CACHE_LOCK ")"
                               : "SELECT pg_advisory_unlock_shared(" CACHE_LOCK ")",
                     err, sizeof err);
}

static void rebuild_cache(ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE], marker[256];
    if (!w->h->rebuild_cache)
        return;
    if (!w->rds) {
        w->rds = ka_redis_connect_config(w->cfg, (int)ka_config_int(w->cfg, "KA_REDIS_TIMEOUT_MS"),
                                         err, sizeof err);
        if (!w->rds) {
            w->cache_stale = 1;
            ka_metrics_inc(w->m.rebuilds_failed);
            return;
        }
    }
    ka_err_t rc = ka_worker_cache_lock(w, 1, err, sizeof err);
    if (rc == KA_OK) {
        rc = w->h->rebuild_cache(w->h->ud, w->pg, w->rds, err, sizeof err);
        ka_worker_cache_unlock(w, 1);
    }
    if (rc != KA_OK) {
        ka_log(KA_LOG_WARN, "cache rebuild failed", "{s:s}", "error", err);
        w->cache_stale = 1;
        ka_metrics_inc(w->m.rebuilds_failed);
        return;
    }
    cache_marker(w, marker, sizeof marker);
    const char *argv[] = {"SET", marker, "1"};
    ka_redis_append_str(w->rds, 3, argv);
    if (ka_redis_flush(w->rds, err, sizeof err) != KA_OK) {
        w->cache_stale = 1;
        ka_metrics_inc(w->m.rebuilds_failed);
        return;
    }
    if (w->cache_stale)
        ka_log(KA_LOG_INFO, "cache rebuilt from PostgreSQL", NULL);
    w->cache_stale = 0;
    ka_metrics_inc(w->m.rebuilds_ok);
}

/* A flushed or restarted Redis lost the marker: rebuild. */
void ka_worker_check_cache(ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE], marker[256], *val = NULL;
    int64_t now = mono_ms();
    /* Also paces rebuild attempts while Redis is down. */
    if (now < w->next_cache_check_ms)
        return;
    w->next_cache_check_ms = now + CACHE_CHECK_MS;
    double t = mono_s();
    if (!w->cache_stale && w->rds) {
        cache_marker(w, marker, sizeof marker);
        if (ka_redis_get(w->rds, marker, &val, NULL, err, sizeof err) == KA_OK && val) {
            free(val);
            ka_worker_step_done(w, STEP_CACHE_CHECK, t);
            return;
        }
    }
    rebuild_cache(w);
    ka_worker_step_done(w, STEP_CACHE_CHECK, t);
}

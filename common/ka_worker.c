#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "ka_fault.h"
#include "ka_input.h"
#include "ka_log.h"
#include "ka_metrics.h"
#include "ka_signal.h"
#include "ka_worker_internal.h"
#include "ka_event_time.h"

/* SIGTERM drain: the outbox relay gets this long to publish what the last
 * batches wrote (its thread's round in progress finishes first: its flush
 * waits up to 10 s); the rest stays in the outbox for the next relay. */
#define DRAIN_RELAY_MS 5000
/* /healthz fails when the loop made no round for this long (and at least
 * 3 x KA_RETRY_MAX_MS, the longest back-off sleep between rounds). */
#define STALL_MIN_MS 300000

/* The loop: poll and decode a batch (ka_worker_poll.c); in one transaction
 * dedupe it (ka_worker_dedupe.c), apply it (the handler), dead-letter what
 * was rejected (ka_worker_deadletter.c), advance the stored offsets by
 * compare-and-set (ka_worker_offsets.c) and commit; then refresh Redis
 * (ka_worker_publish.c) and wake the outbox relay's thread
 * (ka_worker_relay.c), which publishes while the loop goes on. */

/* For the should_stop callbacks of reconnect loops; one worker per thread. */
static _Thread_local ka_worker_t *current_worker;

int ka_worker_should_stop(void)
{
    return ka_signal_stop_requested() || (current_worker && atomic_load(&current_worker->stop));
}

void ka_worker_log_pg_retry(const char *err, int next_ms)
{
    ka_log(KA_LOG_WARN, "PostgreSQL unavailable, retrying", "{s:s,s:i}", "error", err,
           "retry_in_ms", next_ms);
    if (current_worker) { /* the loop is alive, waiting for PostgreSQL */
        atomic_store(&current_worker->up_pg, 0);
        atomic_store(&current_worker->heartbeat_ms, mono_ms());
    }
}

/* One transaction over `evs`: dedupe, apply, dead letters, offsets, commit. */
static ka_err_t commit_events(ka_worker_t *w, ka_event_t **evs, size_t n, char *errstr,
                              size_t errlen)
{
    ka_tx_t tx = {w, 0, NULL};
    fresh_ids_t fresh = {NULL, 0};
    ka_event_t **fresh_evs = ka_calloc(n + 1, sizeof *fresh_evs);
    int64_t *next_of = ka_calloc(w->nparts + 1, sizeof *next_of);
    size_t nfresh = 0;
    ka_err_t rc;
    double t = mono_s();

    ka_metrics_stage_discard(); /* alert transitions count only once committed */
    if ((rc = ka_pg_pipe_begin(w->pg, errstr, errlen)) != KA_OK)
        goto out;
    /* Dedupe: record the ids; the database answers with those it had not seen. */
    if ((rc = ka_pg_pipe_push(w->pg, "BEGIN", 0, NULL, NULL, NULL, errstr, errlen)) != KA_OK ||
        (rc = ka_worker_record_events(w, evs, n, &fresh, errstr, errlen)) != KA_OK) {
        ka_worker_abandon(w);
        goto out;
    }
    if ((rc = ka_tx_flush(&tx, errstr, errlen)) != KA_OK)
        goto out;
    t = ka_worker_step_done(w, STEP_DEDUPE, t);
    ka_worker_mark_duplicates(evs, n, &fresh);
    for (size_t i = 0; i < n; i++)
        if (evs[i]->status == KA_EVENT_NEW)
            fresh_evs[nfresh++] = evs[i];
    /* Apply, in the same transaction. */
    if (nfresh) {
        rc = w->h->apply(w->h->ud, &tx, fresh_evs, nfresh, errstr, errlen);
        if (rc == KA_OK && !tx.failed)
            rc = ka_tx_end(&tx, errstr, errlen); /* the alerts it queued */
        if (tx.failed)
            goto out;
        if (rc != KA_OK) {
            ka_worker_abandon(w);
            goto out;
        }
        t = ka_worker_step_done(w, STEP_APPLY, t);
    }
    /* Dead letters, the offsets' compare-and-set, commit. */
    rc = ka_worker_forget_rejected(w, fresh_evs, nfresh, errstr, errlen);
    if (rc == KA_OK)
        rc = ka_worker_push_dead_letters(w, evs, n, errstr, errlen);
    if (rc == KA_OK)
        rc = ka_worker_push_offsets(w, evs, n, next_of, errstr, errlen);
    if ((rc = ka_worker_commit(w, rc, errstr, errlen)) != KA_OK)
        goto out;
    ka_worker_step_done(w, STEP_COMMIT, t);
    for (size_t k = 0; k < w->nparts; k++)
        if (next_of[k] >= 0)
            w->parts[k].stored_next = next_of[k];
out:
    ka_tx_discard(&tx);
    if (rc == KA_OK)
        ka_metrics_stage_commit();
    else
        ka_metrics_stage_discard();
    if (rc != KA_OK) {
        /* Statuses set during a rolled-back attempt must not leak into the retry. */
        for (size_t i = 0; i < n; i++)
            if (evs[i]->status == KA_EVENT_DUPLICATE ||
                (evs[i]->status == KA_EVENT_REJECTED && evs[i]->decoded))
                evs[i]->status = KA_EVENT_NEW;
    }
    ka_worker_free_fresh(&fresh);
    free(fresh_evs);
    free(next_of);
    return rc;
}

/* Applies the batch, falling back to one event per transaction to isolate an
 * event that makes the batch fail. */
static ka_err_t process_batch(ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE];
    size_t n = w->nbatch;
    ka_event_t **evs = ka_calloc(n + 1, sizeof *evs);
    ka_err_t rc;

    for (size_t i = 0; i < n; i++)
        evs[i] = &w->batch[i];
    rc = commit_events(w, evs, n, err, sizeof err);
    if (rc == KA_OK) {
        w->stats.batches++;
        ka_worker_after_commit(w, evs, n);
    } else if (rc == KA_ERR) {
        ka_log(KA_LOG_WARN, "batch failed, isolating the failing event", "{s:s,s:i}", "error",
               err, "events", (int)n);
        w->stats.rollbacks++;
        ka_metrics_inc(w->m.rollbacks);
        for (size_t i = 0; i < n; i++) {
            rc = commit_events(w, &evs[i], 1, err, sizeof err);
            if (rc == KA_ERR) {
                ka_tx_reject(NULL, evs[i], KA_REASON_APPLY, "%s", err);
                rc = commit_events(w, &evs[i], 1, err, sizeof err);
            }
            if (rc != KA_OK)
                break; /* server trouble: the rewind resumes at the stored offsets */
            w->stats.batches++;
            ka_worker_after_commit(w, &evs[i], 1);
        }
    }
    free(evs);
    return rc;
}

ka_pg_t *ka_worker_pg(ka_worker_t *w)
{
    return w->pg;
}

const ka_config_t *ka_worker_config(const ka_worker_t *w)
{
    return w->cfg;
}

const ka_worker_stats_t *ka_worker_stats(const ka_worker_t *w)
{
    return &w->stats;
}

void ka_worker_stop(ka_worker_t *w)
{
    atomic_store(&w->stop, 1);
}

ka_worker_t *ka_worker_new(const ka_config_t *cfg, const char *const *topics, size_t ntopics,
                           const ka_handler_t *handler, char *errstr, size_t errlen)
{
    ka_worker_t *w = ka_calloc(1, sizeof *w);
    char err[KA_ERRSTR_SIZE];

    w->cfg = cfg;
    w->h = handler;
    w->group = ka_config_str(cfg, "KA_CONSUMER_GROUP");
    w->source = ka_config_str(cfg, "KA_CE_SOURCE");
    w->max_events = (int)ka_config_int(cfg, "KA_BATCH_MAX_EVENTS");
    w->max_ms = (int)ka_config_int(cfg, "KA_BATCH_MAX_MS");
    w->retry_max_ms = (int)ka_config_int(cfg, "KA_RETRY_MAX_MS");
    w->batch = ka_calloc((size_t)w->max_events, sizeof *w->batch);
    current_worker = w;
    ka_clock_set_offset_ms(ka_config_int(cfg, "KA_CLOCK_OFFSET_MS"));
    w->stall_ms = 3LL * w->retry_max_ms > STALL_MIN_MS ? 3LL * w->retry_max_ms : STALL_MIN_MS;
    atomic_init(&w->state, STATE_STARTING);
    atomic_init(&w->heartbeat_ms, mono_ms());
    ka_worker_start_watchdog(w);
    ka_worker_register_metrics(w);
    /* First, so /healthz answers while the servers are still being reached. */
    if (ka_worker_start_http(w, errstr, errlen) != KA_OK)
        goto fail;
    /* the input topics' content modes, for the handlers' decoders */
    if (ka_input_configure(cfg, errstr, errlen) != KA_OK)
        goto fail;

    ka_pg_set_idle_in_transaction_timeout((int)ka_config_int(cfg, "KA_PG_IDLE_IN_TRANSACTION_MS"));
    w->pg = ka_pg_connect_retry(ka_config_str(cfg, "KA_PG_DSN"), w->retry_max_ms,
                                ka_worker_should_stop, ka_worker_log_pg_retry);
    if (!w->pg) {
        snprintf(errstr, errlen, "stopped before PostgreSQL was reachable");
        goto fail;
    }
    if (ka_worker_prepare_statements(w->pg, errstr, errlen) != KA_OK)
        goto fail;
    if (ka_outbox_prepare(w->pg, errstr, errlen) != KA_OK)
        goto fail;
    if (ka_dedupe_window_load(w->pg, &w->max_event_age_ms, errstr, errlen) != KA_OK)
        goto fail;
    if (handler->prepare && handler->prepare(handler->ud, w->pg, errstr, errlen) != KA_OK)
        goto fail;
    w->rds = ka_redis_connect_config(cfg, (int)ka_config_int(cfg, "KA_REDIS_TIMEOUT_MS"), err,
                                     sizeof err);
    if (!w->rds) {
        /* The cache is not the store of record: run without it, rebuild later. */
        ka_log(KA_LOG_WARN, "Redis unavailable, continuing without cache", "{s:s}", "error", err);
        w->cache_stale = 1;
    }
    w->relay = ka_relay_new(cfg, errstr, errlen);
    if (!w->relay)
        goto fail;
    ka_consumer_hooks_t hooks = {w, ka_worker_on_assign, ka_worker_on_revoke,
                                 ka_worker_on_kafka_error};
    w->kc = ka_consumer_new(cfg, topics, ntopics, &hooks, errstr, errlen);
    if (!w->kc)
        goto fail;
    return w;
fail:
    ka_worker_free(w);
    return NULL;
}

ka_err_t ka_worker_run(ka_worker_t *w)
{
    ka_err_t rc = KA_OK;
    char err[KA_ERRSTR_SIZE];

    current_worker = w;
    atomic_store(&w->state, STATE_RUNNING);
    ka_worker_check_cache(w);
    ka_worker_relay_round(w, -1);
    if (ka_worker_relay_start(w, err, sizeof err) != KA_OK)
        ka_log(KA_LOG_WARN, "outbox relay publishes from the loop", "{s:s}", "error", err);
    while (!ka_worker_should_stop()) {
        double t = mono_s();
        ka_worker_housekeeping(w);
        ka_worker_step_done(w, STEP_HOUSEKEEPING, t);
        if ((rc = ka_worker_fill_batch(w)) != KA_OK)
            break;
        if (w->nbatch)
            ka_worker_step_done(w, STEP_FILL, w->batch_started_s);
        /* Once a stop is requested only the batch in hand is finished: no
         * scans, no cache rebuild (the next owner rebuilds on assignment). */
        int stopping = ka_worker_should_stop();
        if (w->h->tick && !stopping) { /* the handler paces its own periodic work */
            t = mono_s();
            w->h->tick(w->h->ud, w);
            ka_worker_step_done(w, STEP_TICK, t);
        }
        if (w->nbatch == 0) {
            if (!stopping) {
                ka_worker_relay_wake(w);
                ka_worker_check_cache(w);
            }
            continue;
        }
        if (!stopping)
            ka_worker_check_cache(w);
        rc = process_batch(w);
        if (rc == KA_ERR_RETRY) {
            ka_log(KA_LOG_WARN, "batch rolled back, server unavailable", NULL);
            w->stats.rollbacks++;
            ka_metrics_inc(w->m.rollbacks);
            if (!ka_pg_ok(w->pg) &&
                ka_pg_reconnect(w->pg, w->retry_max_ms, ka_worker_should_stop,
                                ka_worker_log_pg_retry) != KA_OK)
                break;
            ka_worker_rewind_batch(w);
        } else if (rc == KA_ERR_FENCED) {
            ka_log(KA_LOG_WARN, "batch fenced: another instance advanced the stored offsets",
                   NULL);
            w->stats.fenced++;
            w->stats.rollbacks++;
            ka_metrics_inc(w->m.fenced);
            ka_metrics_inc(w->m.rollbacks);
            ka_worker_reload_after_fence(w);
        } else if (rc != KA_OK) {
            ka_log(KA_LOG_ERROR, "batch failed", "{s:s}", "error", ka_err_name(rc));
        }
        ka_worker_free_batch(w);
        rc = KA_OK;
        if (!ka_worker_should_stop()) /* else the drain below publishes, within its budget */
            ka_worker_relay_wake(w);
    }
    ka_worker_free_batch(w);
    /* The drain publishes what the last batches wrote, within a budget; the
     * rest stays in the outbox for the next relay to publish. */
    int64_t drain_until = mono_ms() + DRAIN_RELAY_MS;
    ka_worker_relay_stop(w);
    if (mono_ms() < drain_until) /* else the thread's last round took the budget */
        ka_worker_relay_round(w, drain_until);
    atomic_store(&w->state, STATE_STOPPED);
    ka_worker_publish_state(w);
    ka_log(KA_LOG_INFO, "worker stopped", "{s:I,s:I,s:I,s:I}", "consumed",
           (json_int_t)w->stats.consumed, "applied", (json_int_t)w->stats.applied, "duplicates",
           (json_int_t)w->stats.duplicates, "dead_lettered", (json_int_t)w->stats.dead_lettered);
    return rc;
}

void ka_worker_free(ka_worker_t *w)
{
    if (!w)
        return;
    ka_worker_free_batch(w);
    ka_worker_relay_stop(w); /* if ka_worker_run did not */
    ka_consumer_free(w->kc);
    ka_relay_free(w->relay);
    ka_redis_free(w->rds);
    ka_pg_free(w->pg);
    for (size_t i = 0; i < w->nparts; i++) {
        char part[16];
        const char *labels[2];
        ka_worker_lag_labels(&w->parts[i], part, sizeof part, labels);
        ka_metrics_remove(w->m.lag, labels);
        free(w->parts[i].topic);
    }
    free(w->parts);
    free(w->batch);
    for (size_t i = 0; i < w->nalert_types; i++)
        free(w->alert_types[i]);
    const char *info[] = {ka_config_service(w->cfg), w->group};
    ka_metrics_remove(w->m.info, info);
    /* Last: /healthz answers while the consumer leaves its group. */
    ka_http_stop(w->http);
    ka_worker_stop_watchdog(w);
    if (current_worker == w)
        current_worker = NULL;
    free(w);
}

#ifndef KA_WORKER_INTERNAL_H
#define KA_WORKER_INTERNAL_H

/* What the files of the worker loop share (not for handlers: ka_worker.h is
 * their API). The loop itself, decode -> dedupe -> apply -> offsets ->
 * commit -> publish, is in ka_worker.c; each concern has a file:
 *
 *   ka_worker_poll.c        Kafka polling, batching, decode, rebalance hooks
 *   ka_worker_dedupe.c      processed_event: record ids, mark duplicates
 *   ka_worker_tx.c          the transaction handed to handlers (ka_tx_*)
 *   ka_worker_deadletter.c  dead-letter rows and their log lines
 *   ka_worker_offsets.c     partition table, stored offsets, compare-and-set
 *   ka_worker_publish.c     after commit: counters, Redis updates
 *   ka_worker_relay.c       the outbox relay's thread, woken after each commit
 *   ka_worker_cache.c       Redis cache marker, lock and rebuild
 *   ka_worker_ops.c         metrics, /healthz /readyz, drain watchdog
 *   ka_worker_sql.c         the loop's prepared statements */

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "ka_http.h"
#include "ka_metrics.h"
#include "ka_worker.h"

#define MAX_ALERT_TYPES 64

enum { STATE_STARTING, STATE_RUNNING, STATE_STOPPED };

typedef struct part_state {
    char *topic;
    int32_t partition;
    int64_t stored_next; /* -1: no row in consumer_offset yet */
} part_state_t;

/* The loop's steps, each timed into ka_worker_step_seconds{step}: where a
 * batch's time goes (the latency profile of docs/performance.md). */
enum {
    STEP_FILL,         /* a batch's first event polled -> the batch in hand */
    STEP_DEDUPE,       /* BEGIN + processed_event: the first round trip */
    STEP_APPLY,        /* the handler's statements */
    STEP_COMMIT,       /* dead letters, offsets' compare-and-set, COMMIT */
    STEP_AFTER_COMMIT, /* counters and the Redis updates */
    STEP_RELAY,        /* what the loop spends on the outbox relay */
    STEP_TICK,         /* the handler's periodic work */
    STEP_HOUSEKEEPING, /* lag, firing alerts, state gauges */
    STEP_CACHE_CHECK,  /* the Redis cache marker (and a rebuild) */
    STEP_COUNT
};

/* Handles of the loop's metrics in the process's registry (never removed, so
 * the handles stay valid); labelled families are looked up when used. */
typedef struct worker_metrics {
    ka_series_t *consumed, *applied, *duplicates, *batches, *rollbacks, *fenced;
    ka_series_t *rebuilds_ok, *rebuilds_failed;
    ka_series_t *batch_size, *processing, *end_to_end, *poll_delay;
    ka_series_t *assigned, *ready, *up_pg, *up_redis, *up_kafka, *last_round;
    ka_metric_t *info, *dead_lettered, *lag, *firing;
    ka_series_t *step[STEP_COUNT];
} worker_metrics_t;

typedef struct ka_relay_thread ka_relay_thread_t;

struct ka_worker {
    const ka_config_t *cfg;
    const ka_handler_t *h;
    const char *group;
    const char *source;
    ka_pg_t *pg;
    ka_redis_t *rds;
    ka_consumer_t *kc;
    ka_relay_t *relay;
    ka_relay_thread_t *relay_thread; /* NULL: rounds run in the loop */
    atomic_int stop;
    int max_events, max_ms, retry_max_ms;
    int64_t max_event_age_ms; /* the dedupe window's reach (ka_event_time.h) */

    part_state_t *parts;
    size_t nparts, capparts;

    ka_event_t *batch; /* the batch being filled or applied */
    size_t nbatch;

    int cache_stale; /* Redis missed writes: rebuild when reachable */
    int64_t next_cache_check_ms;
    ka_worker_stats_t stats;

    /* Operations: metrics, /metrics /healthz /readyz, the drain watchdog. */
    worker_metrics_t m;
    double batch_started_s; /* monotonic: when the batch's first event was polled */
    int64_t next_lag_ms, next_alerts_ms;
    char *alert_types[MAX_ALERT_TYPES]; /* seen firing: reset to 0 when none fire */
    size_t nalert_types;
    int alerts_query_failed;
    ka_http_t *http;
    int64_t stall_ms;
    /* Written by the loop, read by the HTTP thread. */
    atomic_int state, up_pg, up_redis, up_kafka, nassigned;
    _Atomic long long heartbeat_ms;
    pthread_t watchdog;
    int watchdog_running, watchdog_quit;
    pthread_mutex_t watchdog_lock;
    pthread_cond_t watchdog_cond;
};

struct ka_tx {
    ka_worker_t *w;
    int failed;
    struct ka_alert_batch *alerts; /* its alert transitions not yet written, or NULL */
};

/* The end of a transaction's own statements: queues what it holds in memory
 * (its alert transitions) before the offsets and COMMIT. */
ka_err_t ka_tx_end(ka_tx_t *tx, char *errstr, size_t errlen);
/* Frees what the transaction held in memory (every path, after commit or
 * rollback). */
void ka_tx_discard(ka_tx_t *tx);

static inline int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Kafka timestamps are real time: no KA_CLOCK_OFFSET_MS here. */
static inline int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Observes the seconds since `since` (mono_s()) as `step`; returns now. */
static inline double ka_worker_step_done(ka_worker_t *w, int step, double since)
{
    double now = mono_s();
    ka_metrics_observe(w->m.step[step], now - since);
    return now;
}

/* ka_worker.c: the stop flags, for the should_stop callbacks of reconnect
 * loops, and their retry log line. */
int ka_worker_should_stop(void);
void ka_worker_log_pg_retry(const char *err, int next_ms);

/* ka_worker_poll.c */
ka_err_t ka_worker_fill_batch(ka_worker_t *w);
void ka_worker_free_batch(ka_worker_t *w);
ka_err_t ka_worker_on_assign(void *ud, ka_partition_t *parts, size_t n);
void ka_worker_on_revoke(void *ud, const ka_partition_t *parts, size_t n, int lost);
void ka_worker_on_kafka_error(void *ud, const char *err);

/* ka_worker_dedupe.c: the ids the database had not seen, sorted. */
typedef struct fresh_ids {
    char **ids;
    int n;
} fresh_ids_t;
ka_err_t ka_worker_record_events(ka_worker_t *w, ka_event_t **evs, size_t n, fresh_ids_t *fresh,
                                 char *errstr, size_t errlen);
void ka_worker_mark_duplicates(ka_event_t **evs, size_t n, fresh_ids_t *f);
ka_err_t ka_worker_forget_rejected(ka_worker_t *w, ka_event_t **fresh_evs, size_t nfresh,
                                   char *errstr, size_t errlen);
void ka_worker_free_fresh(fresh_ids_t *f);

/* ka_worker_tx.c */
void ka_worker_abandon(ka_worker_t *w);
/* Queues COMMIT after a transaction whose queued work gave rc and runs the
 * pipeline, with the commit_before/commit_after fault points; on any
 * failure the transaction is abandoned. */
ka_err_t ka_worker_commit(ka_worker_t *w, ka_err_t rc, char *errstr, size_t errlen);

/* ka_worker_deadletter.c */
ka_err_t ka_worker_push_dead_letters(ka_worker_t *w, ka_event_t **evs, size_t n, char *errstr,
                                     size_t errlen);
void ka_worker_log_rejects(ka_worker_t *w, ka_event_t **evs, size_t n);

/* ka_worker_offsets.c */
void ka_worker_lag_labels(const part_state_t *p, char *part, size_t len, const char *labels[2]);
part_state_t *ka_worker_find_part(ka_worker_t *w, const char *topic, int32_t partition);
void ka_worker_remove_part(ka_worker_t *w, const char *topic, int32_t partition);
ka_err_t ka_worker_load_offsets(ka_worker_t *w, ka_partition_t *parts, size_t n);
ka_err_t ka_worker_push_offsets(ka_worker_t *w, ka_event_t **evs, size_t n, int64_t *next_of,
                                char *errstr, size_t errlen);
void ka_worker_rewind_batch(ka_worker_t *w);
void ka_worker_reload_after_fence(ka_worker_t *w);

/* ka_worker_publish.c */
void ka_worker_after_commit(ka_worker_t *w, ka_event_t **evs, size_t n);

/* ka_worker_relay.c. Relay rounds on the loop's thread while rows are
 * pending: a deadline (>= 0) bounds the drain's rounds; without one they end
 * early when a stop is requested, so that the drain takes over. */
void ka_worker_relay_round(ka_worker_t *w, int64_t deadline_ms);
/* Starts the relay's thread; from then on ka_worker_relay_wake() after a
 * commit publishes what it wrote, without waiting, until
 * ka_worker_relay_stop() ends the thread (its round in progress finishes). */
ka_err_t ka_worker_relay_start(ka_worker_t *w, char *errstr, size_t errlen);
void ka_worker_relay_wake(ka_worker_t *w);
void ka_worker_relay_stop(ka_worker_t *w);

/* ka_worker_cache.c */
ka_err_t ka_worker_cache_lock(ka_worker_t *w, int exclusive, char *errstr, size_t errlen);
void ka_worker_cache_unlock(ka_worker_t *w, int exclusive);
void ka_worker_check_cache(ka_worker_t *w);

/* ka_worker_ops.c */
void ka_worker_register_metrics(ka_worker_t *w);
void ka_worker_publish_state(ka_worker_t *w);
void ka_worker_housekeeping(ka_worker_t *w);
void ka_worker_start_watchdog(ka_worker_t *w);
void ka_worker_stop_watchdog(ka_worker_t *w);
ka_err_t ka_worker_start_http(ka_worker_t *w, char *errstr, size_t errlen);

/* ka_worker_sql.c */
ka_err_t ka_worker_prepare_statements(ka_pg_t *pg, char *errstr, size_t errlen);

#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ka_log.h"
#include "ka_signal.h"
#include "ka_worker_internal.h"

#define LAG_INTERVAL_MS 1000     /* consumer lag from cached high watermarks */
#define ALERTS_INTERVAL_MS 5000  /* firing alerts counted; an idle lost PostgreSQL re-tried */
/* The hard bound: a drain still going this long after SIGTERM/SIGINT (a
 * broker that never answers the consumer's close, a server that hangs) ends
 * the process with exit code 1. Everything committed is safe in PostgreSQL. */
#define DRAIN_MAX_MS 20000

/* Operations: metrics, health, readiness, the drain watchdog -------------- */

static const double batch_size_buckets[] = {1,   2,    5,    10,   20,    50,    100,   200,
                                            500, 1000, 2000, 5000, 10000, 20000, 50000, 100000};

void ka_worker_register_metrics(ka_worker_t *w)
{
    ka_metrics_t *m = ka_metrics_global();
    worker_metrics_t *wm = &w->m;
    const char *info[] = {ka_config_service(w->cfg), w->group};
    wm->info = ka_metrics_gauge(m, "ka_worker_info", "The worker's service and consumer group",
                                "service,group");
    ka_metrics_set(ka_metrics_series(wm->info, info), 1);
    wm->consumed = ka_metrics_series(
        ka_metrics_counter(m, "ka_events_consumed_total",
                           "Events polled from Kafka (read again after a rollback: counted again)",
                           NULL),
        NULL);
    wm->applied = ka_metrics_series(
        ka_metrics_counter(m, "ka_events_applied_total", "New events applied and committed", NULL),
        NULL);
    wm->duplicates = ka_metrics_series(
        ka_metrics_counter(m, "ka_events_duplicate_total",
                           "Events committed as duplicates of an event id already processed",
                           NULL),
        NULL);
    wm->dead_lettered = ka_metrics_counter(
        m, "ka_events_dead_lettered_total",
        "Events committed to the dead-letter topic, by stable reason code", "reason");
    wm->batches = ka_metrics_series(
        ka_metrics_counter(m, "ka_batches_total",
                           "Transactions the loop committed (a batch, or one event while a "
                           "failing batch is isolated)",
                           NULL),
        NULL);
    wm->batch_size = ka_metrics_series(
        ka_metrics_histogram(m, "ka_batch_size_events", "Events per committed transaction", NULL,
                             batch_size_buckets,
                             sizeof batch_size_buckets / sizeof batch_size_buckets[0]),
        NULL);
    wm->processing = ka_metrics_series(
        ka_metrics_histogram(m, "ka_batch_processing_seconds",
                             "From polling a batch's first event to its commit", NULL,
                             KA_METRICS_LATENCY_BUCKETS, KA_METRICS_LATENCY_NBUCKETS),
        NULL);
    wm->end_to_end = ka_metrics_series(
        ka_metrics_histogram(m, "ka_event_end_to_end_seconds",
                             "From an event's Kafka message timestamp to the commit that "
                             "handled it",
                             NULL, KA_METRICS_LATENCY_BUCKETS, KA_METRICS_LATENCY_NBUCKETS),
        NULL);
    wm->poll_delay = ka_metrics_series(
        ka_metrics_histogram(m, "ka_event_poll_delay_seconds",
                             "From an event's Kafka message timestamp to the worker polling it "
                             "(the producer's and the broker's share of the latency)",
                             NULL, KA_METRICS_LATENCY_BUCKETS, KA_METRICS_LATENCY_NBUCKETS),
        NULL);
    wm->lag = ka_metrics_gauge(m, "ka_consumer_lag_messages",
                               "Messages in an assigned partition after the worker's committed "
                               "offset, from the last fetch's high watermark",
                               "topic,partition");
    wm->rollbacks = ka_metrics_series(
        ka_metrics_counter(m, "ka_rollbacks_total",
                           "Batches rolled back (server unavailable, failing event, fenced)", NULL),
        NULL);
    wm->fenced = ka_metrics_series(
        ka_metrics_counter(m, "ka_fenced_batches_total",
                           "Batches rolled back because another instance advanced the stored "
                           "offsets",
                           NULL),
        NULL);
    ka_metric_t *rebuilds = ka_metrics_counter(
        m, "ka_cache_rebuilds_total", "Rebuilds of the Redis cache from PostgreSQL, by result",
        "result");
    const char *ok[] = {"ok"}, *failed[] = {"failed"};
    wm->rebuilds_ok = ka_metrics_series(rebuilds, ok);
    wm->rebuilds_failed = ka_metrics_series(rebuilds, failed);
    wm->firing = ka_metrics_gauge(m, "ka_alerts_firing",
                                  "Alerts firing now, by type (the whole deployment's alert_state)",
                                  "type");
    wm->assigned = ka_metrics_series(
        ka_metrics_gauge(m, "ka_assigned_partitions", "Partitions assigned to this worker", NULL),
        NULL);
    ka_metric_t *up = ka_metrics_gauge(
        m, "ka_dependency_up", "1 while the worker is connected to the dependency", "dependency");
    const char *pg[] = {"postgresql"}, *redis[] = {"redis"}, *kafka[] = {"kafka"};
    wm->up_pg = ka_metrics_series(up, pg);
    wm->up_redis = ka_metrics_series(up, redis);
    wm->up_kafka = ka_metrics_series(up, kafka);
    wm->ready = ka_metrics_series(
        ka_metrics_gauge(m, "ka_ready", "1 while /readyz answers 200", NULL), NULL);
    static const char *const steps[STEP_COUNT] = {
        [STEP_FILL] = "fill",         [STEP_DEDUPE] = "dedupe",
        [STEP_APPLY] = "apply",       [STEP_COMMIT] = "commit",
        [STEP_AFTER_COMMIT] = "after_commit", [STEP_RELAY] = "relay",
        [STEP_TICK] = "tick",         [STEP_HOUSEKEEPING] = "housekeeping",
        [STEP_CACHE_CHECK] = "cache_check"};
    ka_metric_t *step = ka_metrics_histogram(
        m, "ka_worker_step_seconds",
        "Time the loop spent in each step: fill (a batch's first event polled to the batch in "
        "hand), dedupe, apply, commit, after_commit (Redis), relay, tick, housekeeping, "
        "cache_check",
        "step", KA_METRICS_RTT_BUCKETS, KA_METRICS_RTT_NBUCKETS);
    ka_metrics_series_each(step, steps, STEP_COUNT, wm->step);
    wm->last_round = ka_metrics_series(
        ka_metrics_gauge(m, "ka_worker_last_round_timestamp_seconds",
                         "When the loop last started a round (Unix time)", NULL),
        NULL);
}

/* Ready: running, connected to PostgreSQL, Redis and Kafka, holding a
 * partition. Reads only atomics: safe on the HTTP thread. */
static int readiness(ka_worker_t *w, char *reason, size_t len)
{
    int state = atomic_load(&w->state);
    if (state == STATE_STARTING) {
        snprintf(reason, len, "starting");
        return 0;
    }
    if (state == STATE_STOPPED || ka_worker_should_stop() || atomic_load(&w->stop)) {
        snprintf(reason, len, "stopping");
        return 0;
    }
    reason[0] = '\0';
    size_t used = 0;
    const char *why[4] = {NULL, NULL, NULL, NULL};
    size_t n = 0;
    if (!atomic_load(&w->up_pg))
        why[n++] = "postgresql not connected";
    if (!atomic_load(&w->up_redis))
        why[n++] = "redis not connected";
    if (!atomic_load(&w->up_kafka))
        why[n++] = "kafka not connected";
    if (atomic_load(&w->nassigned) < 1)
        why[n++] = "no partition assigned";
    for (size_t i = 0; i < n && used < len; i++) {
        int k = snprintf(reason + used, len - used, "%s%s", i ? "; " : "", why[i]);
        used += k > 0 ? (size_t)k : 0;
    }
    return n == 0;
}

static int probe_ready(void *ud, char *reason, size_t len)
{
    return readiness(ud, reason, len);
}

/* Alive while the loop turns: fails only when no round started for
 * stall_ms (a loop stuck in a call that never returns). */
static int probe_health(void *ud, char *reason, size_t len)
{
    ka_worker_t *w = ud;
    long long age = mono_ms() - atomic_load(&w->heartbeat_ms);
    if (atomic_load(&w->state) != STATE_STOPPED && age > w->stall_ms) {
        snprintf(reason, len, "loop stalled: no round for %lld s", age / 1000);
        return 0;
    }
    return 1;
}

/* What the HTTP thread and the gauges see, from the loop's own state. */
void ka_worker_publish_state(ka_worker_t *w)
{
    char ignore[128];
    int pg = ka_pg_ok(w->pg);
    /* A cache behind PostgreSQL means Redis failed and is not back yet. */
    int redis = w->rds && (!w->cache_stale || !w->h->rebuild_cache);
    int kafka = w->kc && ka_consumer_connected(w->kc);
    atomic_store(&w->up_pg, pg);
    atomic_store(&w->up_redis, redis);
    atomic_store(&w->up_kafka, kafka);
    atomic_store(&w->nassigned, (int)w->nparts);
    atomic_store(&w->heartbeat_ms, mono_ms());
    ka_metrics_set(w->m.up_pg, pg);
    ka_metrics_set(w->m.up_redis, redis);
    ka_metrics_set(w->m.up_kafka, kafka);
    ka_metrics_set(w->m.assigned, (double)w->nparts);
    ka_metrics_set(w->m.ready, readiness(w, ignore, sizeof ignore));
    ka_metrics_set(w->m.last_round, (double)wall_ms() / 1000.0);
}

static void update_lag(ka_worker_t *w)
{
    char part[16];
    const char *labels[2];
    for (size_t i = 0; i < w->nparts; i++) {
        part_state_t *p = &w->parts[i];
        int64_t lag;
        /* Unknown until the first fetch (or commit): no series rather than a false 0. */
        if (ka_consumer_lag(w->kc, p->topic, p->partition, p->stored_next, &lag) != KA_OK)
            continue;
        ka_worker_lag_labels(p, part, sizeof part, labels);
        ka_metrics_set(ka_metrics_series(w->m.lag, labels), (double)lag);
    }
}

static int read_firing(void *ud, const ka_pgres_t *res)
{
    ka_worker_t *w = ud;
    char seen[MAX_ALERT_TYPES] = {0};
    for (int row = 0; row < ka_pgres_rows(res); row++) {
        const char *type = ka_pgres_value(res, row, 0);
        if (!type)
            continue;
        size_t k;
        for (k = 0; k < w->nalert_types; k++)
            if (strcmp(w->alert_types[k], type) == 0)
                break;
        if (k == w->nalert_types) {
            if (k == MAX_ALERT_TYPES)
                continue;
            w->alert_types[w->nalert_types++] = ka_strdup(type);
        }
        seen[k] = 1;
        const char *labels[] = {type};
        ka_metrics_set(ka_metrics_series(w->m.firing, labels),
                       (double)ka_pgres_int(res, row, 1, 0));
    }
    for (size_t k = 0; k < w->nalert_types; k++) {
        const char *labels[] = {w->alert_types[k]};
        if (!seen[k])
            ka_metrics_set(ka_metrics_series(w->m.firing, labels), 0);
    }
    return 0;
}

static int give_up_at_once(void)
{
    return 1;
}

/* Every few seconds, between batches: counts the firing alerts, which also
 * notices a PostgreSQL connection that died while the worker was idle; a
 * dead one gets one reconnect attempt (a batch retries with back-off). */
static void count_firing(ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE];
    if (!ka_pg_ok(w->pg) && ka_pg_reconnect(w->pg, w->retry_max_ms, give_up_at_once, NULL) != KA_OK)
        return;
    ka_err_t rc = ka_pg_query(w->pg,
                              "SELECT type, count(*) FROM alert_state WHERE status = 'firing' "
                              "GROUP BY type",
                              0, NULL, read_firing, w, err, sizeof err);
    if (rc != KA_OK && !w->alerts_query_failed)
        ka_log(KA_LOG_WARN, "could not count firing alerts", "{s:s}", "error", err);
    w->alerts_query_failed = rc != KA_OK;
}

/* Once per loop round: paced metrics, then the state the probes read. */
void ka_worker_housekeeping(ka_worker_t *w)
{
    int64_t now = mono_ms();
    if (now >= w->next_lag_ms) {
        w->next_lag_ms = now + LAG_INTERVAL_MS;
        update_lag(w);
    }
    if (now >= w->next_alerts_ms && !ka_worker_should_stop()) {
        w->next_alerts_ms = now + ALERTS_INTERVAL_MS;
        count_firing(w);
    }
    ka_worker_publish_state(w);
}

/* The drain watchdog: after SIGTERM/SIGINT (not ka_worker_stop, which an
 * embedding program or a test calls) the process has DRAIN_MAX_MS to finish
 * the batch, publish, leave the group and free; then it exits with 1. */
static void *watchdog_main(void *arg)
{
    ka_worker_t *w = arg;
    int64_t stop_seen = -1;
    pthread_mutex_lock(&w->watchdog_lock);
    while (!w->watchdog_quit) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->watchdog_cond, &w->watchdog_lock, &until);
        if (w->watchdog_quit)
            break;
        if (stop_seen < 0 && ka_signal_stop_requested())
            stop_seen = mono_ms();
        if (stop_seen >= 0 && mono_ms() - stop_seen > DRAIN_MAX_MS) {
            alarm(2); /* should the log line block (a stalled stderr pipe), SIGALRM ends us */
            ka_log(KA_LOG_ERROR, "drain did not finish in time, exiting", "{s:i}", "limit_ms",
                   DRAIN_MAX_MS);
            _exit(1);
        }
    }
    pthread_mutex_unlock(&w->watchdog_lock);
    return NULL;
}

void ka_worker_start_watchdog(ka_worker_t *w)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->watchdog_cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&w->watchdog_lock, NULL);
    w->watchdog_running = pthread_create(&w->watchdog, NULL, watchdog_main, w) == 0;
    if (!w->watchdog_running)
        ka_log(KA_LOG_WARN, "could not start the drain watchdog", NULL);
}

void ka_worker_stop_watchdog(ka_worker_t *w)
{
    if (w->watchdog_running) {
        pthread_mutex_lock(&w->watchdog_lock);
        w->watchdog_quit = 1;
        pthread_cond_signal(&w->watchdog_cond);
        pthread_mutex_unlock(&w->watchdog_lock);
        pthread_join(w->watchdog, NULL);
    }
    pthread_cond_destroy(&w->watchdog_cond);
    pthread_mutex_destroy(&w->watchdog_lock);
}

ka_err_t ka_worker_start_http(ka_worker_t *w, char *errstr, size_t errlen)
{
    int port = (int)ka_config_int(w->cfg, "KA_HTTP_PORT");
    const char *addr = ka_config_str(w->cfg, "KA_HTTP_ADDR");
    if (port <= 0)
        return KA_OK;
    ka_http_handlers_t h = {w, ka_metrics_global(), probe_health, probe_ready};
    w->http = ka_http_start(addr, port, &h, errstr, errlen);
    if (!w->http)
        return KA_ERR;
    ka_log(KA_LOG_INFO, "serving /metrics, /healthz, /readyz", "{s:s,s:i}", "addr", addr, "port",
           ka_http_port(w->http));
    return KA_OK;
}

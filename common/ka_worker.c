#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ka_buf.h"
#include "ka_fault.h"
#include "ka_http.h"
#include "ka_input.h"
#include "ka_log.h"
#include "ka_metrics.h"
#include "ka_signal.h"
#include "ka_worker.h"
#include "ka_event_time.h"

#define IDLE_POLL_MS 100
#define CACHE_CHECK_MS 5000
#define LAG_INTERVAL_MS 1000     /* consumer lag from cached high watermarks */
#define ALERTS_INTERVAL_MS 5000  /* firing alerts counted; an idle lost PostgreSQL re-tried */
#define MAX_ALERT_TYPES 64
/* SIGTERM drain: the outbox relay gets this long to publish what the last
 * batches wrote (a round in progress finishes: its flush waits up to 10 s);
 * the rest stays in the outbox for the next relay. */
#define DRAIN_RELAY_MS 5000
/* The hard bound: a drain still going this long after SIGTERM/SIGINT (a
 * broker that never answers the consumer's close, a server that hangs) ends
 * the process with exit code 1. Everything committed is safe in PostgreSQL. */
#define DRAIN_MAX_MS 20000
/* /healthz fails when the loop made no round for this long (and at least
 * 3 x KA_RETRY_MAX_MS, the longest back-off sleep between rounds). */
#define STALL_MIN_MS 300000

enum { STATE_STARTING, STATE_RUNNING, STATE_STOPPED };

typedef struct part_state {
    char *topic;
    int32_t partition;
    int64_t stored_next; /* -1: no row in consumer_offset yet */
} part_state_t;

/* Handles of the loop's metrics in the process's registry (never removed, so
 * the handles stay valid); labelled families are looked up when used. */
typedef struct worker_metrics {
    ka_series_t *consumed, *applied, *duplicates, *batches, *rollbacks, *fenced;
    ka_series_t *rebuilds_ok, *rebuilds_failed;
    ka_series_t *batch_size, *processing, *end_to_end;
    ka_series_t *assigned, *ready, *up_pg, *up_redis, *up_kafka, *last_round;
    ka_metric_t *info, *dead_lettered, *lag, *firing;
} worker_metrics_t;

struct ka_worker {
    const ka_config_t *cfg;
    const ka_handler_t *h;
    const char *group;
    const char *source;
    ka_pg_t *pg;
    ka_redis_t *rds;
    ka_consumer_t *kc;
    ka_relay_t *relay;
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
};

/* For the should_stop callbacks of reconnect loops; one worker per thread. */
static _Thread_local ka_worker_t *current_worker;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Kafka timestamps are real time: no KA_CLOCK_OFFSET_MS here. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int should_stop(void)
{
    return ka_signal_stop_requested() || (current_worker && atomic_load(&current_worker->stop));
}

static void log_pg_retry(const char *err, int next_ms)
{
    ka_log(KA_LOG_WARN, "PostgreSQL unavailable, retrying", "{s:s,s:i}", "error", err,
           "retry_in_ms", next_ms);
    if (current_worker) { /* the loop is alive, waiting for PostgreSQL */
        atomic_store(&current_worker->up_pg, 0);
        atomic_store(&current_worker->heartbeat_ms, mono_ms());
    }
}

static void lag_labels(const part_state_t *p, char *part, size_t len, const char *labels[2])
{
    snprintf(part, len, "%d", (int)p->partition);
    labels[0] = p->topic;
    labels[1] = part;
}

/* Partition bookkeeping ------------------------------------------------------ */

static part_state_t *find_part(ka_worker_t *w, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < w->nparts; i++)
        if (w->parts[i].partition == partition && strcmp(w->parts[i].topic, topic) == 0)
            return &w->parts[i];
    return NULL;
}

static part_state_t *add_part(ka_worker_t *w, const char *topic, int32_t partition)
{
    part_state_t *p = find_part(w, topic, partition);
    if (p)
        return p;
    if (w->nparts == w->capparts) {
        w->capparts = w->capparts ? w->capparts * 2 : 8;
        w->parts = ka_realloc(w->parts, w->capparts * sizeof *w->parts);
    }
    p = &w->parts[w->nparts++];
    p->topic = ka_strdup(topic);
    p->partition = partition;
    p->stored_next = -1;
    return p;
}

static void remove_part(ka_worker_t *w, const char *topic, int32_t partition)
{
    part_state_t *p = find_part(w, topic, partition);
    char part[16];
    const char *labels[2];
    if (!p)
        return;
    lag_labels(p, part, sizeof part, labels);
    ka_metrics_remove(w->m.lag, labels); /* not ours any more: no stale lag */
    free(p->topic);
    *p = w->parts[--w->nparts];
}

typedef struct offsets_read {
    ka_worker_t *w;
    ka_partition_t *parts;
    size_t n;
} offsets_read_t;

static int read_offsets(void *ud, const ka_pgres_t *res)
{
    offsets_read_t *r = ud;
    for (int row = 0; row < ka_pgres_rows(res); row++) {
        size_t i = (size_t)ka_pgres_int(res, row, 0, -1);
        if (i >= r->n)
            return -1;
        int64_t next = ka_pgres_int(res, row, 1, -1);
        part_state_t *p = add_part(r->w, r->parts[i].topic, r->parts[i].partition);
        p->stored_next = next;
        if (next >= 0)
            r->parts[i].offset = next;
        else
            r->parts[i].offset = strcmp(ka_config_str(r->w->cfg, "KA_START_OFFSET"), "latest") == 0
                                     ? KA_OFFSET_END
                                     : KA_OFFSET_BEGINNING;
    }
    return 0;
}

/* Reads the stored next offsets of `parts` into parts[i].offset and the
 * partition table, reconnecting as long as it takes. */
static ka_err_t load_offsets(ka_worker_t *w, ka_partition_t *parts, size_t n)
{
    char err[KA_ERRSTR_SIZE];
    ka_buf_t topics = KA_BUF_INIT, partitions = KA_BUF_INIT;
    ka_err_t rc;

    ka_buf_array_begin(&topics);
    ka_buf_array_begin(&partitions);
    for (size_t i = 0; i < n; i++) {
        ka_buf_array_add(&topics, parts[i].topic);
        ka_buf_array_add_int(&partitions, parts[i].partition);
    }
    ka_buf_array_end(&topics);
    ka_buf_array_end(&partitions);
    ka_pg_param_t p[3] = {{w->group, 0, 0}, {ka_buf_str(&topics), 0, 0},
                          {ka_buf_str(&partitions), 0, 0}};
    offsets_read_t r = {w, parts, n};
    for (;;) {
        rc = ka_pg_query(w->pg, "ka_load_offsets", 3, p, read_offsets, &r, err, sizeof err);
        if (rc != KA_ERR_RETRY)
            break;
        if (ka_pg_reconnect(w->pg, w->retry_max_ms, should_stop, log_pg_retry) != KA_OK)
            break;
    }
    if (rc != KA_OK)
        ka_log(KA_LOG_ERROR, "could not load stored offsets", "{s:s}", "error", err);
    ka_buf_free(&topics);
    ka_buf_free(&partitions);
    return rc;
}

static ka_err_t on_assign(void *ud, ka_partition_t *parts, size_t n)
{
    ka_worker_t *w = ud;
    ka_err_t rc = load_offsets(w, parts, n);
    /* The previous owner may have died between its commit and its Redis
     * write: rebuild from PostgreSQL before the first batch. */
    w->cache_stale = 1;
    w->next_cache_check_ms = 0;
    for (size_t i = 0; rc == KA_OK && i < n; i++)
        ka_log(KA_LOG_INFO, "partition assigned", "{s:s,s:i,s:I}", "topic", parts[i].topic,
               "partition", parts[i].partition, "offset", (json_int_t)parts[i].offset);
    return rc;
}

static void drop_batch_events(ka_worker_t *w, const char *topic, int32_t partition)
{
    size_t keep = 0;
    for (size_t i = 0; i < w->nbatch; i++) {
        ka_event_t *ev = &w->batch[i];
        if (ev->msg->partition == partition && strcmp(ev->msg->topic, topic) == 0) {
            if (ev->decoded && w->h->free_decoded)
                w->h->free_decoded(w->h->ud, ev->decoded);
            ka_msg_free(ev->msg);
            continue;
        }
        w->batch[keep++] = *ev;
    }
    w->nbatch = keep;
}

static void on_revoke(void *ud, const ka_partition_t *parts, size_t n, int lost)
{
    ka_worker_t *w = ud;
    for (size_t i = 0; i < n; i++) {
        /* Messages polled but not committed belong to the next owner now. */
        drop_batch_events(w, parts[i].topic, parts[i].partition);
        remove_part(w, parts[i].topic, parts[i].partition);
        ka_log(KA_LOG_INFO, lost ? "partition lost" : "partition revoked", "{s:s,s:i}", "topic",
               parts[i].topic, "partition", parts[i].partition);
    }
}

static void on_kafka_error(void *ud, const char *err)
{
    (void)ud;
    ka_log(KA_LOG_WARN, "kafka client error", "{s:s}", "error", err);
}

/* Moves every partition of the batch back to its stored offset, so what was
 * rolled back is read again. */
static void rewind_batch(ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE];
    ka_partition_t *seek = ka_calloc(w->nbatch + 1, sizeof *seek);
    size_t n = 0;
    for (size_t i = 0; i < w->nbatch; i++) {
        const ka_msg_t *m = w->batch[i].msg;
        size_t k;
        for (k = 0; k < n; k++)
            if (seek[k].partition == m->partition && strcmp(seek[k].topic, m->topic) == 0)
                break;
        if (k < n)
            continue;
        part_state_t *p = find_part(w, m->topic, m->partition);
        seek[n].topic = m->topic;
        seek[n].partition = m->partition;
        /* The batch holds the partition's events in order: its first one is
         * where reading resumes when nothing was ever stored. */
        seek[n].offset = p && p->stored_next >= 0 ? p->stored_next : m->offset;
        n++;
    }
    if (n && ka_consumer_seek(w->kc, seek, n, err, sizeof err) != KA_OK)
        ka_log(KA_LOG_ERROR, "could not rewind after a rollback", "{s:s}", "error", err);
    free(seek);
}

/* Re-reads stored offsets after a fence and seeks there. */
static void reload_after_fence(ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE];
    size_t n = w->nparts;
    ka_partition_t *parts = ka_calloc(n + 1, sizeof *parts);
    for (size_t i = 0; i < n; i++) {
        parts[i].topic = w->parts[i].topic;
        parts[i].partition = w->parts[i].partition;
    }
    if (n && load_offsets(w, parts, n) == KA_OK &&
        ka_consumer_seek(w->kc, parts, n, err, sizeof err) != KA_OK)
        ka_log(KA_LOG_ERROR, "could not seek after a fence", "{s:s}", "error", err);
    free(parts);
}

/* The transaction ------------------------------------------------------------ */

ka_pg_t *ka_tx_pg(ka_tx_t *tx)
{
    return tx->w->pg;
}

const char *ka_tx_group(const ka_tx_t *tx)
{
    return tx->w->group;
}

const ka_config_t *ka_tx_config(const ka_tx_t *tx)
{
    return tx->w->cfg;
}

ka_err_t ka_tx_flush(ka_tx_t *tx, char *errstr, size_t errlen)
{
    ka_err_t rc = ka_pg_pipe_run(tx->w->pg, errstr, errlen);
    if (rc == KA_OK)
        rc = ka_pg_pipe_begin(tx->w->pg, errstr, errlen);
    if (rc != KA_OK)
        tx->failed = 1;
    return rc;
}

void ka_tx_reject(ka_tx_t *tx, ka_event_t *ev, const char *reason, const char *fmt, ...)
{
    va_list ap;
    (void)tx;
    ev->status = KA_EVENT_REJECTED;
    snprintf(ev->reject.reason, sizeof ev->reject.reason, "%s", reason);
    va_start(ap, fmt);
    vsnprintf(ev->reject.detail, sizeof ev->reject.detail, fmt, ap);
    va_end(ap);
}

ka_err_t ka_tx_emit(ka_tx_t *tx, const ka_outbox_row_t *row, char *errstr, size_t errlen)
{
    return ka_outbox_push(tx->w->pg, tx->w->source, row, errstr, errlen);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct fresh_ids {
    char **ids;
    int n;
} fresh_ids_t;

static int read_fresh_ids(void *ud, const ka_pgres_t *res)
{
    fresh_ids_t *f = ud;
    f->n = ka_pgres_rows(res);
    f->ids = ka_calloc((size_t)f->n + 1, sizeof *f->ids);
    for (int i = 0; i < f->n; i++)
        f->ids[i] = ka_strdup(ka_pgres_value(res, i, 0));
    qsort(f->ids, (size_t)f->n, sizeof *f->ids, cmp_str);
    return 0;
}

/* Marks, in batch order, the first event of each id the database had not
 * seen as new and every other one as a duplicate. */
static void mark_duplicates(ka_event_t **evs, size_t n, fresh_ids_t *f)
{
    char *used = ka_calloc((size_t)f->n + 1, 1);
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->status != KA_EVENT_NEW)
            continue;
        const char *key = evs[i]->event_id;
        char **hit = bsearch(&key, f->ids, (size_t)f->n, sizeof *f->ids, cmp_str);
        size_t k = hit ? (size_t)(hit - f->ids) : 0;
        if (hit && !used[k])
            used[k] = 1;
        else
            evs[i]->status = KA_EVENT_DUPLICATE;
    }
    free(used);
}

static void free_fresh(fresh_ids_t *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->ids[i]);
    free(f->ids);
}

static ka_err_t push_dead_letter(ka_worker_t *w, const ka_event_t *ev, char *errstr,
                                 size_t errlen)
{
    const ka_msg_t *m = ev->msg;
    char id[256], part[16], off[24], at[24];
    /* The record's own time, so a replay that judges it again meets its rows. */
    int64_t at_ms = m->timestamp_ms >= 0 ? m->timestamp_ms : ka_now_ms();
    snprintf(id, sizeof id, "dlq:%s:%s:%d:%lld", w->group, m->topic, m->partition,
             (long long)m->offset);
    snprintf(at, sizeof at, "%lld", (long long)at_ms);
    snprintf(part, sizeof part, "%d", m->partition);
    snprintf(off, sizeof off, "%lld", (long long)m->offset);
    const char *service = ka_config_service(w->cfg);
    ka_header_t h[] = {
        {"ka_dlq_reason", ev->reject.reason, strlen(ev->reject.reason)},
        {"ka_dlq_detail", ev->reject.detail, strlen(ev->reject.detail)},
        {"ka_src_topic", m->topic, strlen(m->topic)},
        {"ka_src_partition", part, strlen(part)},
        {"ka_src_offset", off, strlen(off)},
        {"ka_service", service, strlen(service)},
        {"ka_dlq_mode", ev->reject.mode, strlen(ev->reject.mode)},
        {"ka_dlq_path", ev->reject.path, strlen(ev->reject.path)},
    };
    ka_outbox_row_t row = {
        .event_id = id,
        .topic = ka_config_str(w->cfg, "KA_TOPIC_DEADLETTER"),
        .key = m->key,
        .key_len = m->key_len,
        .ce_type = NULL,
        .ce_time_ms = at_ms,
        .payload = m->payload,
        .len = m->len,
        .headers = h,
        .nheaders = sizeof h / sizeof h[0],
    };
    ka_err_t rc = ka_outbox_push(w->pg, w->source, &row, errstr, errlen);
    if (rc != KA_OK)
        return rc;
    ka_pg_param_t p[10] = {
        {w->group, 0, 0},   {m->topic, 0, 0},          {part, 0, 0},
        {off, 0, 0},        {ev->reject.reason, 0, 0}, {ev->reject.detail, 0, 0},
        {m->payload ? m->payload : "", (int)m->len, 1}, {at, 0, 0},
        {ev->reject.mode, 0, 0}, {ev->reject.path, 0, 0},
    };
    return ka_pg_pipe_push(w->pg, "ka_dead_letter_insert", 10, p, NULL, NULL, errstr, errlen);
}

/* Queues the compare-and-set of every partition the events touch; fills
 * `next` of each touched partition so the caller can advance its copy. */
static ka_err_t push_offsets(ka_worker_t *w, ka_event_t **evs, size_t n, int64_t *next_of,
                             char *errstr, size_t errlen)
{
    ka_buf_t topics = KA_BUF_INIT, parts = KA_BUF_INIT, expected = KA_BUF_INIT,
             next = KA_BUF_INIT;
    for (size_t i = 0; i < w->nparts; i++)
        next_of[i] = -1;
    for (size_t i = 0; i < n; i++) {
        part_state_t *p = find_part(w, evs[i]->msg->topic, evs[i]->msg->partition);
        if (!p) {
            snprintf(errstr, errlen, "event from unassigned partition %s [%d]",
                     evs[i]->msg->topic, evs[i]->msg->partition);
            return KA_ERR_FENCED;
        }
        size_t k = (size_t)(p - w->parts);
        if (evs[i]->msg->offset + 1 > next_of[k])
            next_of[k] = evs[i]->msg->offset + 1;
    }
    ka_buf_array_begin(&topics);
    ka_buf_array_begin(&parts);
    ka_buf_array_begin(&expected);
    ka_buf_array_begin(&next);
    for (size_t k = 0; k < w->nparts; k++) {
        if (next_of[k] < 0)
            continue;
        ka_buf_array_add(&topics, w->parts[k].topic);
        ka_buf_array_add_int(&parts, w->parts[k].partition);
        if (w->parts[k].stored_next >= 0)
            ka_buf_array_add_int(&expected, w->parts[k].stored_next);
        else
            ka_buf_array_add(&expected, NULL);
        ka_buf_array_add_int(&next, next_of[k]);
    }
    ka_buf_array_end(&topics);
    ka_buf_array_end(&parts);
    ka_buf_array_end(&expected);
    ka_buf_array_end(&next);
    ka_pg_param_t p[5] = {{w->group, 0, 0},
                          {ka_buf_str(&topics), 0, 0},
                          {ka_buf_str(&parts), 0, 0},
                          {ka_buf_str(&expected), 0, 0},
                          {ka_buf_str(&next), 0, 0}};
    ka_err_t rc = ka_pg_pipe_push(w->pg, "ka_advance_offsets", 5, p, NULL, NULL, errstr, errlen);
    ka_buf_free(&topics);
    ka_buf_free(&parts);
    ka_buf_free(&expected);
    ka_buf_free(&next);
    return rc;
}

/* Aborts an open pipeline + transaction after a handler failure. */
static void abandon(ka_worker_t *w)
{
    char ignore[KA_ERRSTR_SIZE];
    ka_pg_pipe_run(w->pg, ignore, sizeof ignore);
    ka_pg_rollback(w->pg);
}

/* One transaction over `evs`: dedupe, apply, dead letters, offsets, commit. */
static ka_err_t commit_events(ka_worker_t *w, ka_event_t **evs, size_t n, char *errstr,
                              size_t errlen)
{
    ka_tx_t tx = {w, 0};
    fresh_ids_t fresh = {NULL, 0};
    ka_buf_t ids = KA_BUF_INIT, topics = KA_BUF_INIT, parts = KA_BUF_INIT, offs = KA_BUF_INIT,
             ats = KA_BUF_INIT;
    ka_event_t **fresh_evs = ka_calloc(n + 1, sizeof *fresh_evs);
    int64_t *next_of = ka_calloc(w->nparts + 1, sizeof *next_of);
    size_t nvalid = 0, nfresh = 0;
    ka_err_t rc;

    ka_metrics_stage_discard(); /* alert transitions count only once committed */
    ka_buf_array_begin(&ids);
    ka_buf_array_begin(&topics);
    ka_buf_array_begin(&parts);
    ka_buf_array_begin(&offs);
    ka_buf_array_begin(&ats);
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->status != KA_EVENT_NEW)
            continue;
        nvalid++;
        ka_buf_array_add(&ids, evs[i]->event_id);
        ka_buf_array_add(&topics, evs[i]->msg->topic);
        ka_buf_array_add_int(&parts, evs[i]->msg->partition);
        ka_buf_array_add_int(&offs, evs[i]->msg->offset);
        ka_buf_array_add_int(&ats, evs[i]->occurred_at_ms);
    }
    ka_buf_array_end(&ats);
    ka_buf_array_end(&ids);
    ka_buf_array_end(&topics);
    ka_buf_array_end(&parts);
    ka_buf_array_end(&offs);

    if ((rc = ka_pg_pipe_begin(w->pg, errstr, errlen)) != KA_OK)
        goto out;
    if ((rc = ka_pg_pipe_push(w->pg, "BEGIN", 0, NULL, NULL, NULL, errstr, errlen)) != KA_OK) {
        abandon(w);
        goto out;
    }
    if (nvalid) {
        ka_pg_param_t p[6] = {{w->group, 0, 0},          {ka_buf_str(&ids), 0, 0},
                              {ka_buf_str(&topics), 0, 0}, {ka_buf_str(&parts), 0, 0},
                              {ka_buf_str(&offs), 0, 0},   {ka_buf_str(&ats), 0, 0}};
        rc = ka_pg_pipe_push(w->pg, "ka_record_events", 6, p, read_fresh_ids, &fresh, errstr,
                             errlen);
        if (rc != KA_OK) {
            abandon(w);
            goto out;
        }
    }
    if ((rc = ka_tx_flush(&tx, errstr, errlen)) != KA_OK)
        goto out;
    mark_duplicates(evs, n, &fresh);
    for (size_t i = 0; i < n; i++)
        if (evs[i]->status == KA_EVENT_NEW)
            fresh_evs[nfresh++] = evs[i];

    if (nfresh) {
        rc = w->h->apply(w->h->ud, &tx, fresh_evs, nfresh, errstr, errlen);
        if (tx.failed)
            goto out;
        if (rc != KA_OK) {
            abandon(w);
            goto out;
        }
    }
    /* An event rejected by apply may be re-driven after a fix: forget its id. */
    ka_buf_array_begin(&ids);
    int any_rejected_fresh = 0;
    for (size_t i = 0; i < nfresh; i++) {
        if (fresh_evs[i]->status == KA_EVENT_REJECTED) {
            ka_buf_array_add(&ids, fresh_evs[i]->event_id);
            any_rejected_fresh = 1;
        }
    }
    ka_buf_array_end(&ids);
    if (any_rejected_fresh) {
        ka_pg_param_t p[2] = {{w->group, 0, 0}, {ka_buf_str(&ids), 0, 0}};
        rc = ka_pg_pipe_push(w->pg, "ka_forget_events", 2, p, NULL, NULL, errstr, errlen);
    }
    for (size_t i = 0; rc == KA_OK && i < n; i++)
        if (evs[i]->status == KA_EVENT_REJECTED)
            rc = push_dead_letter(w, evs[i], errstr, errlen);
    if (rc == KA_OK)
        rc = push_offsets(w, evs, n, next_of, errstr, errlen);
    if (rc == KA_OK)
        rc = ka_pg_pipe_push(w->pg, "COMMIT", 0, NULL, NULL, NULL, errstr, errlen);
    if (rc != KA_OK) {
        abandon(w);
        goto out;
    }
    ka_fault_point("commit_before");
    if ((rc = ka_pg_pipe_run(w->pg, errstr, errlen)) != KA_OK)
        goto out;
    ka_fault_point("commit_after");
    for (size_t k = 0; k < w->nparts; k++)
        if (next_of[k] >= 0)
            w->parts[k].stored_next = next_of[k];
out:
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
    free_fresh(&fresh);
    free(fresh_evs);
    free(next_of);
    ka_buf_free(&ids);
    ka_buf_free(&topics);
    ka_buf_free(&parts);
    ka_buf_free(&offs);
    ka_buf_free(&ats);
    return rc;
}

ka_err_t ka_worker_transaction(ka_worker_t *w,
                               ka_err_t (*fn)(void *ud, ka_tx_t *tx, char *errstr, size_t errlen),
                               void *ud, char *errstr, size_t errlen)
{
    ka_tx_t tx = {w, 0};
    ka_metrics_stage_discard();
    ka_err_t rc = ka_pg_pipe_begin(w->pg, errstr, errlen);
    if (rc != KA_OK)
        return rc;
    if ((rc = ka_pg_pipe_push(w->pg, "BEGIN", 0, NULL, NULL, NULL, errstr, errlen)) != KA_OK) {
        abandon(w);
        return rc;
    }
    rc = fn(ud, &tx, errstr, errlen);
    if (tx.failed)
        goto out;
    if (rc == KA_OK)
        rc = ka_pg_pipe_push(w->pg, "COMMIT", 0, NULL, NULL, NULL, errstr, errlen);
    if (rc != KA_OK) {
        abandon(w);
        goto out;
    }
    ka_fault_point("commit_before");
    if ((rc = ka_pg_pipe_run(w->pg, errstr, errlen)) == KA_OK)
        ka_fault_point("commit_after");
out:
    if (rc == KA_OK)
        ka_metrics_stage_commit();
    else
        ka_metrics_stage_discard();
    return rc;
}

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

static ka_err_t cache_lock(ka_worker_t *w, int exclusive, char *errstr, size_t errlen)
{
    return ka_pg_exec(w->pg,
                      exclusive ? "SELECT pg_advisory_lock(" CACHE_LOCK ")"
                                : "SELECT pg_advisory_lock_shared(" CACHE_LOCK ")",
                      errstr, errlen);
}

static void cache_unlock(ka_worker_t *w, int exclusive)
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
    ka_err_t rc = cache_lock(w, 1, err, sizeof err);
    if (rc == KA_OK) {
        rc = w->h->rebuild_cache(w->h->ud, w->pg, w->rds, err, sizeof err);
        cache_unlock(w, 1);
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
static void check_cache(ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE], marker[256], *val = NULL;
    int64_t now = mono_ms();
    /* Also paces rebuild attempts while Redis is down. */
    if (now < w->next_cache_check_ms)
        return;
    w->next_cache_check_ms = now + CACHE_CHECK_MS;
    if (!w->cache_stale && w->rds) {
        cache_marker(w, marker, sizeof marker);
        if (ka_redis_get(w->rds, marker, &val, NULL, err, sizeof err) == KA_OK && val) {
            free(val);
            return;
        }
    }
    rebuild_cache(w);
}

/* The loop ------------------------------------------------------------------ */

/* Publishes the outbox, round after round while rows are pending. A
 * deadline (>= 0) bounds the drain's rounds; without one the rounds end early
 * when a stop is requested, so that the drain takes over. */
static void relay_round(ka_worker_t *w, int64_t deadline_ms)
{
    char err[KA_ERRSTR_SIZE];
    int published = 0, pending = 1;
    for (int rounds = 0; pending && rounds < 100; rounds++) {
        if (rounds > 0 && (deadline_ms >= 0 ? mono_ms() >= deadline_ms : should_stop()))
            break;
        ka_err_t rc = ka_relay_round(w->relay, &published, &pending, err, sizeof err);
        w->stats.published += (uint64_t)published;
        if (rc != KA_OK) {
            ka_log(KA_LOG_WARN, "outbox relay round failed", "{s:s}", "error", err);
            return;
        }
    }
}

static void free_batch(ka_worker_t *w)
{
    for (size_t i = 0; i < w->nbatch; i++) {
        if (w->batch[i].decoded && w->h->free_decoded)
            w->h->free_decoded(w->h->ud, w->batch[i].decoded);
        ka_msg_free(w->batch[i].msg);
    }
    w->nbatch = 0;
}

/* Polls until the batch is full, its time is up, or nothing comes. */
static ka_err_t fill_batch(ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE];
    int64_t deadline = -1;
    while (w->nbatch < (size_t)w->max_events && !should_stop()) {
        int timeout = IDLE_POLL_MS;
        if (deadline >= 0) {
            int64_t left = deadline - mono_ms();
            if (left <= 0)
                break;
            timeout = (int)left;
        }
        ka_msg_t *m = NULL;
        if (ka_consumer_poll(w->kc, timeout, &m, err, sizeof err) != KA_OK) {
            ka_log(KA_LOG_ERROR, "consumer cannot go on", "{s:s}", "error", err);
            return KA_ERR;
        }
        if (!m) {
            if (deadline < 0)
                break; /* idle */
            continue;
        }
        if (deadline < 0) {
            deadline = mono_ms() + w->max_ms;
            w->batch_started_s = mono_s();
        }
        ka_event_t *ev = &w->batch[w->nbatch++];
        memset(ev, 0, sizeof *ev);
        ev->msg = m;
        w->stats.consumed++;
        ka_metrics_inc(w->m.consumed);
        if (w->h->decode(w->h->ud, m, &ev->decoded, ev->event_id, sizeof ev->event_id,
                         &ev->reject) != KA_OK ||
            ka_check_dedupe_window(&ev->reject,
                                   ev->occurred_at_ms = ka_event_time_ms(m, ka_now_ms()),
                                   ka_now_ms(), w->max_event_age_ms) != KA_OK) {
            ev->status = KA_EVENT_REJECTED;
            if (ev->decoded && w->h->free_decoded)
                w->h->free_decoded(w->h->ud, ev->decoded);
            ev->decoded = NULL;
        }
    }
    return KA_OK;
}

static void log_rejects(ka_worker_t *w, ka_event_t **evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->status != KA_EVENT_REJECTED)
            continue;
        w->stats.dead_lettered++;
        const char *reason[] = {evs[i]->reject.reason};
        ka_metrics_inc(ka_metrics_series(w->m.dead_lettered, reason));
        ka_log(KA_LOG_WARN, "event dead-lettered", "{s:s,s:i,s:I,s:s,s:s,s:s,s:s,s:s}",
               "topic", evs[i]->msg->topic, "partition", evs[i]->msg->partition, "offset",
               (json_int_t)evs[i]->msg->offset, "event_id", evs[i]->event_id, "reason",
               evs[i]->reject.reason, "detail", evs[i]->reject.detail, "mode",
               evs[i]->reject.mode, "json_path", evs[i]->reject.path);
    }
}

static void after_commit(ka_worker_t *w, ka_event_t **evs, size_t n)
{
    char err[KA_ERRSTR_SIZE];
    ka_event_t **fresh = ka_calloc(n + 1, sizeof *fresh);
    size_t nfresh = 0, ndup = 0;
    int64_t now = wall_ms();
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
    log_rejects(w, evs, n);
    if (nfresh && w->h->after_commit && !w->cache_stale) {
        ka_err_t rc = KA_ERR_RETRY;
        if (!w->rds)
            snprintf(err, sizeof err, "not connected");
        else if ((rc = cache_lock(w, 0, err, sizeof err)) == KA_OK) {
            rc = w->h->after_commit(w->h->ud, w->rds, fresh, nfresh, err, sizeof err);
            cache_unlock(w, 0);
        }
        if (rc != KA_OK) {
            /* The cache is behind PostgreSQL now; a rebuild catches it up. */
            ka_log(KA_LOG_WARN, "cache update failed, will rebuild", "{s:s}", "error", err);
            w->cache_stale = 1;
        }
    }
    free(fresh);
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
        after_commit(w, evs, n);
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
            after_commit(w, &evs[i], 1);
        }
    }
    free(evs);
    return rc;
}

/* Operations: metrics, health, readiness, the drain watchdog -------------- */

static const double batch_size_buckets[] = {1,   2,    5,    10,   20,    50,    100,   200,
                                            500, 1000, 2000, 5000, 10000, 20000, 50000, 100000};

static void register_metrics(ka_worker_t *w)
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
    if (state == STATE_STOPPED || should_stop() || atomic_load(&w->stop)) {
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
static void publish_state(ka_worker_t *w)
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
        lag_labels(p, part, sizeof part, labels);
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
static void housekeeping(ka_worker_t *w)
{
    int64_t now = mono_ms();
    if (now >= w->next_lag_ms) {
        w->next_lag_ms = now + LAG_INTERVAL_MS;
        update_lag(w);
    }
    if (now >= w->next_alerts_ms && !should_stop()) {
        w->next_alerts_ms = now + ALERTS_INTERVAL_MS;
        count_firing(w);
    }
    publish_state(w);
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

static void start_watchdog(ka_worker_t *w)
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

static void stop_watchdog(ka_worker_t *w)
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

static ka_err_t start_http(ka_worker_t *w, char *errstr, size_t errlen)
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

static const char *runtime_statements[][2] = {
    {"ka_load_offsets",
     "SELECT t.i - 1, o.next_offset FROM unnest($2::text[], $3::int[]) WITH ORDINALITY "
     "AS t(topic, partition, i) LEFT JOIN consumer_offset o ON o.consumer_group = $1 "
     "AND o.topic = t.topic AND o.partition = t.partition"},
    {"ka_record_events",
     "INSERT INTO processed_event (consumer_group, event_id, topic, partition, \"offset\", "
     "occurred_at) SELECT $1, e.id, e.topic, e.partition, e.off, "
     "timestamptz 'epoch' + e.at * interval '1 millisecond' FROM unnest($2::text[], $3::text[], "
     "$4::int[], $5::bigint[], $6::bigint[]) AS e(id, topic, partition, off, at) "
     /* The id alone is the idempotency key: a re-send under another time is
      * a duplicate too (one probe per partition), as is an id of the inbox of
      * before partitioning (0026). The unique key catches a concurrent copy. */
     "WHERE NOT EXISTS (SELECT 1 FROM processed_event p "
     "WHERE p.consumer_group = $1 AND p.event_id = e.id) "
     "AND NOT EXISTS (SELECT 1 FROM processed_event_legacy l "
     "WHERE l.consumer_group = $1 AND l.event_id = e.id) "
     "ON CONFLICT (consumer_group, event_id, occurred_at) DO NOTHING RETURNING event_id"},
    {"ka_forget_events",
     "DELETE FROM processed_event WHERE consumer_group = $1 AND event_id = ANY($2::text[])"},
    {"ka_advance_offsets", "SELECT ka_advance_offsets($1, $2::text[], $3::int[], $4::bigint[], "
                           "$5::bigint[])"},
    {"ka_dead_letter_insert",
     "INSERT INTO dead_letter (consumer_group, source_topic, source_partition, source_offset, "
     "reason, detail, payload, source_time, content_mode, json_path) "
     "VALUES ($1, $2, $3, $4, $5, $6, $7, timestamptz 'epoch' + $8::bigint * interval '1 millisecond', "
     "NULLIF($9, ''), NULLIF($10, '')) "
     "ON CONFLICT (consumer_group, source_topic, source_partition, source_offset, source_time) "
     "DO NOTHING"},
};

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
    start_watchdog(w);
    register_metrics(w);
    /* First, so /healthz answers while the servers are still being reached. */
    if (start_http(w, errstr, errlen) != KA_OK)
        goto fail;
    /* the input topics' content modes, for the handlers' decoders */
    if (ka_input_configure(cfg, errstr, errlen) != KA_OK)
        goto fail;

    ka_pg_set_idle_in_transaction_timeout((int)ka_config_int(cfg, "KA_PG_IDLE_IN_TRANSACTION_MS"));
    w->pg = ka_pg_connect_retry(ka_config_str(cfg, "KA_PG_DSN"), w->retry_max_ms, should_stop,
                                log_pg_retry);
    if (!w->pg) {
        snprintf(errstr, errlen, "stopped before PostgreSQL was reachable");
        goto fail;
    }
    for (size_t i = 0; i < sizeof runtime_statements / sizeof runtime_statements[0]; i++)
        if (ka_pg_prepare(w->pg, runtime_statements[i][0], runtime_statements[i][1], errstr,
                          errlen) != KA_OK)
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
    ka_consumer_hooks_t hooks = {w, on_assign, on_revoke, on_kafka_error};
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

    current_worker = w;
    atomic_store(&w->state, STATE_RUNNING);
    check_cache(w);
    relay_round(w, -1);
    while (!should_stop()) {
        housekeeping(w);
        if ((rc = fill_batch(w)) != KA_OK)
            break;
        /* Once a stop is requested only the batch in hand is finished: no
         * scans, no cache rebuild (the next owner rebuilds on assignment). */
        int stopping = should_stop();
        if (w->h->tick && !stopping) /* the handler paces its own periodic work */
            w->h->tick(w->h->ud, w);
        if (w->nbatch == 0) {
            if (!stopping) {
                relay_round(w, -1);
                check_cache(w);
            }
            continue;
        }
        if (!stopping)
            check_cache(w);
        rc = process_batch(w);
        if (rc == KA_ERR_RETRY) {
            ka_log(KA_LOG_WARN, "batch rolled back, server unavailable", NULL);
            w->stats.rollbacks++;
            ka_metrics_inc(w->m.rollbacks);
            if (!ka_pg_ok(w->pg) &&
                ka_pg_reconnect(w->pg, w->retry_max_ms, should_stop, log_pg_retry) != KA_OK)
                break;
            rewind_batch(w);
        } else if (rc == KA_ERR_FENCED) {
            ka_log(KA_LOG_WARN, "batch fenced: another instance advanced the stored offsets",
                   NULL);
            w->stats.fenced++;
            w->stats.rollbacks++;
            ka_metrics_inc(w->m.fenced);
            ka_metrics_inc(w->m.rollbacks);
            reload_after_fence(w);
        } else if (rc != KA_OK) {
            ka_log(KA_LOG_ERROR, "batch failed", "{s:s}", "error", ka_err_name(rc));
        }
        free_batch(w);
        rc = KA_OK;
        if (!should_stop()) /* else the drain below publishes, within its budget */
            relay_round(w, -1);
    }
    free_batch(w);
    /* The drain publishes what the last batches wrote, within a budget; the
     * rest stays in the outbox for the next relay to publish. */
    relay_round(w, mono_ms() + DRAIN_RELAY_MS);
    atomic_store(&w->state, STATE_STOPPED);
    publish_state(w);
    ka_log(KA_LOG_INFO, "worker stopped", "{s:I,s:I,s:I,s:I}", "consumed",
           (json_int_t)w->stats.consumed, "applied", (json_int_t)w->stats.applied, "duplicates",
           (json_int_t)w->stats.duplicates, "dead_lettered", (json_int_t)w->stats.dead_lettered);
    return rc;
}

void ka_worker_free(ka_worker_t *w)
{
    if (!w)
        return;
    free_batch(w);
    ka_consumer_free(w->kc);
    ka_relay_free(w->relay);
    ka_redis_free(w->rds);
    ka_pg_free(w->pg);
    for (size_t i = 0; i < w->nparts; i++) {
        char part[16];
        const char *labels[2];
        lag_labels(&w->parts[i], part, sizeof part, labels);
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
    stop_watchdog(w);
    if (current_worker == w)
        current_worker = NULL;
    free(w);
}

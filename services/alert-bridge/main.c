/* ka-alert-bridge: alerts from ka.alert.v1 into Prometheus Alertmanager.
 *
 *   poll ka.alert.v1; decode each event (a malformed one is dead-lettered)
 *   and note its fingerprint and the next offset of its partition
 *   every KA_BATCH_MAX_MS (or KA_BATCH_MAX_EVENTS): a round reads those
 *   alerts from PostgreSQL (alert_delivery), posts them to every
 *   Alertmanager in chunks, and only when one accepted every chunk commits
 *   the offsets read up to the round's start; the loop goes on reading
 *   while a round's posts run, so what arrives meanwhile is the next round
 *   (one round at a time: the commits stay in order)
 *   every KA_ALERT_RESEND_MS, and whenever an Alertmanager comes back: post
 *   the whole firing set (and what resolved within the retention)
 *
 * Delivery is at least once: offsets are committed after the post, so a
 * crash re-reads and re-posts, and Alertmanager, which identifies an alert
 * by its label set, keeps one copy. Exactly-once in the worker sense
 * (EXACTLY-ONCE.md: offsets beside the state in one transaction) does not
 * apply: the effect is in Alertmanager, which takes part in no transaction;
 * an idempotent effect plus at-least-once is what it allows. What the bridge
 * posts is the alert as stored now, so a re-read event never posts an
 * older state. Alertmanager keeps alerts in memory only: the full re-send,
 * on the bridge's start and on an interval under Alertmanager's
 * resolve_timeout, puts back what a restarted Alertmanager lost, and keeps
 * firing alerts from timing out, as Prometheus does. While no Alertmanager
 * answers, the bridge keeps reading (it must poll to stay in its group),
 * remembers the fingerprints (past a bound, only that a full re-send is due)
 * and commits nothing. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"
#include "bridge_am.h"
#include "ka_config.h"
#include "ka_http.h"
#include "ka_kafka.h"
#include "ka_log.h"
#include "ka_metrics.h"
#include "ka_pg.h"
#include "ka_signal.h"

#define SERVICE "alert-bridge"
#define MAX_PENDING 20000  /* fingerprints remembered; past that, a full re-send */
#define POST_CHUNK 500     /* alerts per post */
#define DLQ_FLUSH_MS 10000
#define STALL_MS 60000

typedef struct offset {
    char *topic;
    int32_t partition;
    int64_t next;
} offset_t;

typedef struct dead {
    char *topic, *key, *payload;
    size_t key_len, len;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* the Kafka record's: source_time, the same on a re-read */
    ka_reject_t rej;
} dead_t;

/* The round whose posts run. It covers the first nfps fingerprints and
 * nstamps stamps of the bridge's pending lists (those read before it
 * began) and commits offs, the offsets as they were then. */
typedef struct round {
    int active, full, overflow;
    size_t nfps, nstamps;
    offset_t *offs;
    size_t noffs;
    char **bodies; /* the chunks to post, JSON arrays */
    size_t *lens, *counts, nbodies, next;
    size_t n, firing;
    int64_t first_ms, start_ms, pg_ms, post_ms, post_t0; /* for the debug log */
} round_t;

typedef struct bridge {
    const ka_config_t *cfg;
    const char *group;
    ka_pg_t *pg;
    ka_consumer_t *kc;
    ka_producer_t *kp;
    bridge_am_t *am;
    ka_http_t *http;

    char **fps;
    int64_t *stamps; /* the pending events' Kafka record times (wall ms), for the latency */
    size_t nfps, nstamps;
    int overflow;
    offset_t *offs;
    size_t noffs;
    dead_t *dead;
    size_t ndead;
    int64_t first_pending_ms, next_resend_ms, retry_at_ms; /* first_pending: not in the round */
    round_t round;
    int backoff_ms, dlq_failed;

    atomic_llong heartbeat_ms;
    atomic_int pg_ok, kafka_ok, am_ok, stopped;

    ka_series_t *consumed, *firing, *pending, *resends, *flush_failed, *read_delay, *delivery;
    ka_metric_t *dead_lettered;
} bridge_t;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The real wall clock (not KA_CLOCK_OFFSET_MS's), as the producer's record
 * timestamps are. */
static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note_stamp(bridge_t *b, int64_t ts_ms)
{
    if (ts_ms <= 0)
        return;
    double age = wall_s() - (double)ts_ms / 1000.0;
    ka_metrics_observe(b->read_delay, age > 0 ? age : 0);
    if (b->nstamps == MAX_PENDING)
        return;
    if (!b->stamps)
        b->stamps = ka_calloc(MAX_PENDING, sizeof *b->stamps);
    b->stamps[b->nstamps++] = ts_ms;
}

/* Record time to accepted by an Alertmanager, for each event of the round;
 * the stamps read since stay. */
static void observe_delivered(bridge_t *b, size_t n)
{
    double now = wall_s();
    for (size_t i = 0; i < n && i < b->nstamps; i++) {
        double age = now - (double)b->stamps[i] / 1000.0;
        ka_metrics_observe(b->delivery, age > 0 ? age : 0);
    }
    if (n >= b->nstamps) {
        b->nstamps = 0;
        return;
    }
    memmove(b->stamps, b->stamps + n, (b->nstamps - n) * sizeof *b->stamps);
    b->nstamps -= n;
}

/* Pending work ----------------------------------------------------------- */

static void note_offset(bridge_t *b, const ka_msg_t *m)
{
    for (size_t i = 0; i < b->noffs; i++)
        if (b->offs[i].partition == m->partition && strcmp(b->offs[i].topic, m->topic) == 0) {
            if (m->offset + 1 > b->offs[i].next)
                b->offs[i].next = m->offset + 1;
            return;
        }
    b->offs = ka_realloc(b->offs, (b->noffs + 1) * sizeof *b->offs);
    b->offs[b->noffs++] = (offset_t){ka_strdup(m->topic), m->partition, m->offset + 1};
}

static void note_fingerprint(bridge_t *b, const char *fp)
{
    if (b->overflow)
        return;
    if (b->nfps == MAX_PENDING) {
        /* The full set covers every fingerprint there is. */
        for (size_t i = 0; i < b->nfps; i++)
            free(b->fps[i]);
        b->nfps = 0;
        b->round.nfps = 0;
        b->overflow = 1;
        return;
    }
    if (!b->fps)
        b->fps = ka_calloc(MAX_PENDING, sizeof *b->fps);
    b->fps[b->nfps++] = ka_strdup(fp);
}

static void clear_pending(bridge_t *b)
{
    for (size_t i = 0; i < b->nfps; i++)
        free(b->fps[i]);
    b->nfps = 0;
    b->overflow = 0;
    for (size_t i = 0; i < b->noffs; i++)
        free(b->offs[i].topic);
    b->noffs = 0;
    b->nstamps = 0;
    b->first_pending_ms = 0;
    ka_metrics_set(b->pending, 0);
}

/* The round's first n fingerprints delivered: only those read since stay. */
static void drop_delivered(bridge_t *b, size_t n)
{
    if (n > b->nfps)
        n = b->nfps;
    for (size_t i = 0; i < n; i++)
        free(b->fps[i]);
    if (n && n < b->nfps) /* fps is NULL until the first fingerprint */
        memmove(b->fps, b->fps + n, (b->nfps - n) * sizeof *b->fps);
    b->nfps -= n;
    ka_metrics_set(b->pending, (double)b->nfps);
}

static void free_offsets(offset_t *offs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(offs[i].topic);
    free(offs);
}

static void round_clear(bridge_t *b)
{
    round_t *r = &b->round;
    for (size_t i = 0; i < r->nbodies; i++)
        free(r->bodies[i]);
    free(r->bodies);
    free(r->lens);
    free(r->counts);
    free_offsets(r->offs, r->noffs);
    memset(r, 0, sizeof *r);
}

static void clear_dead(bridge_t *b)
{
    for (size_t i = 0; i < b->ndead; i++) {
        free(b->dead[i].topic);
        free(b->dead[i].key);
        free(b->dead[i].payload);
    }
    b->ndead = 0;
}

static char *copy_bytes(const void *p, size_t len)
{
    char *s = ka_malloc(len + 1);
    if (len)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static void handle(bridge_t *b, const ka_msg_t *m)
{
    bridge_event_t ev;
    ka_reject_t rej;
    ka_metrics_inc(b->consumed);
    note_offset(b, m);
    note_stamp(b, m->timestamp_ms);
    if (b->first_pending_ms == 0)
        b->first_pending_ms = mono_ms();
    if (bridge_decode(m->payload, m->len, ka_now_ms(), &ev, &rej) != KA_OK) {
        b->dead = ka_realloc(b->dead, (b->ndead + 1) * sizeof *b->dead);
        dead_t *d = &b->dead[b->ndead++];
        d->topic = ka_strdup(m->topic);
        d->key = copy_bytes(m->key, m->key ? m->key_len : 0);
        d->key_len = m->key ? m->key_len : 0;
        d->payload = copy_bytes(m->payload, m->payload ? m->len : 0);
        d->len = m->payload ? m->len : 0;
        d->partition = m->partition;
        d->offset = m->offset;
        d->timestamp_ms = m->timestamp_ms;
        d->rej = rej;
        return;
    }
    note_fingerprint(b, ev.fingerprint);
    ka_metrics_set(b->pending, (double)b->nfps);
    bridge_event_free(&ev);
}

/* Dead letters ------------------------------------------------------------ */

static void on_delivery(void *ud, void *msg_opaque, ka_err_t status, int possibly_persisted,
                        const char *err)
{
    bridge_t *b = ud;
    (void)msg_opaque;
    (void)possibly_persisted;
    if (status != KA_OK) {
        b->dlq_failed = 1;
        ka_log(KA_LOG_WARN, "dead letter not delivered", "{s:s}", "error", err ? err : "");
    }
}

/* Every malformed event is in the dead_letter table and on the dead-letter
 * topic before its offset may be committed. */
static ka_err_t write_dead_letters(bridge_t *b, char *errstr, size_t errlen)
{
    const char *service = ka_config_service(b->cfg);
    for (size_t i = 0; i < b->ndead; i++) {
        dead_t *d = &b->dead[i];
        char part[16], off[24], ts[24], id[256];
        snprintf(part, sizeof part, "%d", d->partition);
        snprintf(off, sizeof off, "%lld", (long long)d->offset);
        /* The record's time makes a re-read hit the unique key (consumer_group,
         * source_topic, source_partition, source_offset, source_time). Without
         * a conflict target: naming one needs SELECT on its columns, which the
         * bridge's role (INSERT only, 0018) lacks. No broker timestamp (-1):
         * the epoch, still the same on a re-read. */
        snprintf(ts, sizeof ts, "%lld", (long long)(d->timestamp_ms > 0 ? d->timestamp_ms : 0));
        snprintf(id, sizeof id, "dlq:%s:%s:%d:%lld", b->group, d->topic, d->partition,
                 (long long)d->offset);
        ka_pg_param_t p[8] = {
            {b->group, 0, 0},   {d->topic, 0, 0},        {part, 0, 0},
            {off, 0, 0},        {d->rej.reason, 0, 0},   {d->rej.detail, 0, 0},
            {d->payload, (int)d->len, 1}, {ts, 0, 0},
        };
        ka_err_t rc = ka_pg_query(
            b->pg,
            "INSERT INTO dead_letter (consumer_group, source_topic, source_partition, "
            "source_offset, reason, detail, payload, source_time) VALUES ($1, $2, $3::int, "
            "$4::bigint, $5, $6, $7, timestamptz 'epoch' + $8::bigint * interval '1 millisecond') "
            "ON CONFLICT DO NOTHING",
            8, p, NULL, NULL, errstr, errlen);
        if (rc != KA_OK)
            return rc;
        ka_header_t h[] = {
            {"ce_id", id, strlen(id)},
            {"ka_dlq_reason", d->rej.reason, strlen(d->rej.reason)},
            {"ka_dlq_detail", d->rej.detail, strlen(d->rej.detail)},
            {"ka_src_topic", d->topic, strlen(d->topic)},
            {"ka_src_partition", part, strlen(part)},
            {"ka_src_offset", off, strlen(off)},
            {"ka_service", service, strlen(service)},
        };
        for (;;) {
            rc = ka_producer_send(b->kp, ka_config_str(b->cfg, "KA_TOPIC_DEADLETTER"), d->key,
                                  d->key_len, d->payload, d->len, h, sizeof h / sizeof h[0],
                                  NULL, errstr, errlen);
            if (rc != KA_ERR_RETRY)
                break;
            ka_producer_poll(b->kp, 100);
        }
        if (rc != KA_OK)
            return rc;
    }
    b->dlq_failed = 0;
    if (ka_producer_flush(b->kp, DLQ_FLUSH_MS) != KA_OK || b->dlq_failed) {
        snprintf(errstr, errlen, "the dead-letter topic did not confirm every dead letter");
        return KA_ERR_RETRY;
    }
    for (size_t i = 0; i < b->ndead; i++) {
        const char *reason[] = {b->dead[i].rej.reason};
        ka_metrics_inc(ka_metrics_series(b->dead_lettered, reason));
        ka_log(KA_LOG_WARN, "event dead-lettered", "{s:s,s:i,s:I,s:s,s:s}", "topic",
               b->dead[i].topic, "partition", b->dead[i].partition, "offset",
               (json_int_t)b->dead[i].offset, "reason", b->dead[i].rej.reason, "detail",
               b->dead[i].rej.detail);
    }
    clear_dead(b);
    return KA_OK;
}

/* Reading and posting ----------------------------------------------------- */

static const char *val(const ka_pgres_t *res, int row, int col)
{
    return ka_pgres_value(res, row, col);
}

static void add_chunk(round_t *r, ka_buf_t *body, size_t n)
{
    ka_buf_append(body, "]", 1);
    r->bodies = ka_realloc(r->bodies, (r->nbodies + 1) * sizeof *r->bodies);
    r->lens = ka_realloc(r->lens, (r->nbodies + 1) * sizeof *r->lens);
    r->counts = ka_realloc(r->counts, (r->nbodies + 1) * sizeof *r->counts);
    r->lens[r->nbodies] = body->len;
    r->counts[r->nbodies] = n;
    r->bodies[r->nbodies++] = ka_strdup(ka_buf_str(body));
    ka_buf_free(body);
    ka_buf_append(body, "[", 1);
}

#define DELIVERY_COLUMNS                                                                        \
    "fingerprint, alert_id, type, severity, status, subject_kind, subject_id, summary, "       \
    "details, starts_at_ms, coalesce(ends_at_ms, 0), division, region, team, rep, account_id, " \
    "opportunity_id, manager"

/* The round's alerts as chunks of POST_CHUNK, posted once the read is over. */
static int round_rows(void *ud, const ka_pgres_t *res)
{
    bridge_t *b = ud;
    round_t *r = &b->round;
    r->pg_ms = mono_ms() - r->start_ms;
    const char *link = ka_config_str(b->cfg, "KA_ALERT_LINK_URL");
    ka_buf_t body = KA_BUF_INIT;
    size_t in_chunk = 0;
    int rows = ka_pgres_rows(res);
    ka_buf_append(&body, "[", 1);
    for (int i = 0; i < rows; i++) {
        bridge_alert_t a = {
            .fingerprint = val(res, i, 0), .alert_id = val(res, i, 1), .type = val(res, i, 2),
            .severity = val(res, i, 3), .status = val(res, i, 4),
            .subject_kind = val(res, i, 5), .subject_id = val(res, i, 6),
            .summary = val(res, i, 7), .details = val(res, i, 8),
            .starts_at_ms = ka_pgres_int(res, i, 9, 0), .ends_at_ms = ka_pgres_int(res, i, 10, 0),
            .division = val(res, i, 11), .region = val(res, i, 12), .team = val(res, i, 13),
            .rep = val(res, i, 14), .account = val(res, i, 15), .opportunity = val(res, i, 16),
            .manager = val(res, i, 17),
        };
        r->firing += a.status && strcmp(a.status, "firing") == 0;
        bridge_alert_json(&body, &a, link, in_chunk == 0);
        if (++in_chunk == POST_CHUNK) {
            add_chunk(r, &body, in_chunk);
            in_chunk = 0;
        }
    }
    /* An empty full set is posted too: it tells a target that came back
     * that it has all there is. */
    if (in_chunk > 0 || (r->full && rows == 0))
        add_chunk(r, &body, in_chunk);
    r->n = (size_t)rows;
    ka_buf_free(&body);
    return 0;
}

static char *fps_array(const bridge_t *b)
{
    ka_buf_t a = KA_BUF_INIT;
    ka_buf_array_begin(&a);
    for (size_t i = 0; i < b->nfps; i++)
        ka_buf_array_add(&a, b->fps[i]);
    ka_buf_array_end(&a);
    char *s = ka_strdup(ka_buf_str(&a));
    ka_buf_free(&a);
    return s;
}

static int pg_ready(bridge_t *b, char *errstr, size_t errlen)
{
    if (b->pg && ka_pg_ok(b->pg))
        return 1;
    ka_pg_free(b->pg);
    b->pg = ka_pg_connect(ka_config_str(b->cfg, "KA_PG_DSN"), errstr, errlen);
    atomic_store(&b->pg_ok, b->pg != NULL);
    return b->pg != NULL;
}

static ka_err_t commit(bridge_t *b, const offset_t *offs, size_t n, char *errstr, size_t errlen)
{
    if (n == 0)
        return KA_OK;
    ka_partition_t *parts = ka_calloc(n, sizeof *parts);
    for (size_t i = 0; i < n; i++)
        parts[i] = (ka_partition_t){offs[i].topic, offs[i].partition, offs[i].next};
    ka_err_t rc = ka_consumer_commit(b->kc, parts, n, errstr, errlen);
    free(parts);
    return rc;
}

static void backoff(bridge_t *b, const char *what, const char *err)
{
    int cap = (int)ka_config_int(b->cfg, "KA_RETRY_MAX_MS");
    b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : 200;
    if (b->backoff_ms > cap)
        b->backoff_ms = cap;
    b->retry_at_ms = mono_ms() + b->backoff_ms;
    ka_metrics_inc(b->flush_failed);
    ka_log(KA_LOG_WARN, what, "{s:s,s:i}", "error", err, "retry_in_ms", b->backoff_ms);
}

/* Every chunk accepted: the round's offsets are committed and its events
 * leave the pending lists. */
static void round_done(bridge_t *b)
{
    char err[KA_ERRSTR_SIZE] = "";
    round_t *r = &b->round;
    atomic_store(&b->am_ok, bridge_am_reachable(b->am) > 0);
    if (commit(b, r->offs, r->noffs, err, sizeof err) != KA_OK)
        ka_log(KA_LOG_WARN, "offsets not committed: the events will be read and posted again",
               "{s:s}", "error", err);
    if (r->full) {
        ka_metrics_set(b->firing, (double)r->firing);
        ka_metrics_inc(b->resends);
        b->next_resend_ms = mono_ms() + ka_config_int(b->cfg, "KA_ALERT_RESEND_MS");
        ka_log(KA_LOG_DEBUG, "firing set re-sent", "{s:I,s:I}", "firing", (json_int_t)r->firing,
               "alerts", (json_int_t)r->n);
    }
    ka_log(KA_LOG_DEBUG, "alerts posted", "{s:I,s:i,s:I,s:I,s:I,s:I,s:I}", "alerts",
           (json_int_t)r->n, "full", r->full, "events", (json_int_t)r->nstamps, "ms",
           (json_int_t)(mono_ms() - r->start_ms), "pg_ms", (json_int_t)r->pg_ms, "post_ms",
           (json_int_t)r->post_ms, "waited_ms", (json_int_t)(r->start_ms - r->first_ms));
    b->backoff_ms = 0;
    b->retry_at_ms = 0;
    observe_delivered(b, r->nstamps);
    drop_delivered(b, r->nfps);
    round_clear(b);
}

/* No Alertmanager took a chunk: the round's events stay pending (the next
 * round reads them again) and nothing is committed. */
static void round_failed(bridge_t *b)
{
    round_t *r = &b->round;
    atomic_store(&b->am_ok, bridge_am_reachable(b->am) > 0);
    b->overflow |= r->overflow;
    if (r->first_ms && (!b->first_pending_ms || r->first_ms < b->first_pending_ms))
        b->first_pending_ms = r->first_ms;
    round_clear(b);
    backoff(b, "no Alertmanager accepted the alerts: retrying", "every post failed");
}

static void round_post_next(bridge_t *b)
{
    round_t *r = &b->round;
    if (r->next == r->nbodies) {
        round_done(b);
        return;
    }
    size_t i = r->next++;
    r->post_t0 = mono_ms();
    if (bridge_am_start(b->am, r->bodies[i], r->lens[i], r->counts[i], r->full, r->post_t0) == 0)
        round_failed(b);
}

/* Drives the round's post in flight (waiting up to wait_ms); the next chunk
 * once one is accepted. */
static void round_step(bridge_t *b, int wait_ms)
{
    round_t *r = &b->round;
    if (!r->active)
        return;
    int accepted = bridge_am_step(b->am, wait_ms);
    if (accepted < 0)
        return;
    r->post_ms += mono_ms() - r->post_t0;
    if (accepted == 0)
        round_failed(b);
    else
        round_post_next(b);
}

/* Starts a round for what is pending (or, with full, the whole set): dead
 * letters written, the alerts read, the first chunk posted. */
static void round_begin(bridge_t *b, int full)
{
    char err[KA_ERRSTR_SIZE] = "";
    round_t *r = &b->round;
    if (b->overflow)
        full = 1;
    if (!pg_ready(b, err, sizeof err)) {
        backoff(b, "PostgreSQL unreachable: alerts wait", err);
        return;
    }
    if (b->ndead && write_dead_letters(b, err, sizeof err) != KA_OK) {
        backoff(b, "could not write dead letters: retrying", err);
        return;
    }
    memset(r, 0, sizeof *r);
    r->full = full;
    r->start_ms = mono_ms();
    ka_err_t rc = KA_OK;
    char *fps = fps_array(b);
    if (full) {
        char retention[24];
        snprintf(retention, sizeof retention, "%lld",
                 ka_config_int(b->cfg, "KA_ALERT_RESOLVED_RETENTION_MS"));
        ka_pg_param_t p[2] = {{retention, 0, 0}, {fps, 0, 0}};
        rc = ka_pg_query(b->pg,
                         "SELECT " DELIVERY_COLUMNS " FROM alert_delivery WHERE status = 'firing' "
                         "OR ends_at > now() - $1::bigint * interval '1 millisecond' "
                         "OR fingerprint = ANY($2::text[]) ORDER BY fingerprint",
                         2, p, round_rows, b, err, sizeof err);
    } else if (b->nfps) {
        ka_pg_param_t p[1] = {{fps, 0, 0}};
        rc = ka_pg_query(b->pg,
                         "SELECT " DELIVERY_COLUMNS " FROM alert_delivery "
                         "WHERE fingerprint = ANY($1::text[])",
                         1, p, round_rows, b, err, sizeof err);
    }
    free(fps);
    if (rc != KA_OK) {
        round_clear(b);
        atomic_store(&b->pg_ok, ka_pg_ok(b->pg));
        backoff(b, "could not read the alerts: retrying", err);
        return;
    }
    /* What was read up to now is the round's; what is read from here on
     * waits for the next. */
    r->active = 1;
    r->overflow = b->overflow;
    b->overflow = 0;
    r->nfps = b->nfps;
    r->nstamps = b->nstamps;
    r->first_ms = b->first_pending_ms ? b->first_pending_ms : r->start_ms;
    b->first_pending_ms = 0;
    r->noffs = b->noffs;
    r->offs = ka_calloc(b->noffs ? b->noffs : 1, sizeof *r->offs);
    for (size_t i = 0; i < b->noffs; i++)
        r->offs[i] = (offset_t){ka_strdup(b->offs[i].topic), b->offs[i].partition,
                                b->offs[i].next};
    round_post_next(b);
}

/* The round in flight, to its end (the drain). */
static void round_finish(bridge_t *b)
{
    while (b->round.active)
        round_step(b, 100);
}

/* Probes and wiring ------------------------------------------------------- */

static int probe_health(void *ud, char *reason, size_t len)
{
    bridge_t *b = ud;
    long long age = mono_ms() - atomic_load(&b->heartbeat_ms);
    if (!atomic_load(&b->stopped) && age > STALL_MS) {
        snprintf(reason, len, "loop stalled: no round for %lld s", age / 1000);
        return 0;
    }
    return 1;
}

static int probe_ready(void *ud, char *reason, size_t len)
{
    bridge_t *b = ud;
    if (atomic_load(&b->stopped))
        snprintf(reason, len, "stopping");
    else if (!atomic_load(&b->kafka_ok))
        snprintf(reason, len, "Kafka not connected");
    else if (!atomic_load(&b->pg_ok))
        snprintf(reason, len, "PostgreSQL unreachable");
    else if (!atomic_load(&b->am_ok))
        snprintf(reason, len, "no Alertmanager reachable");
    else
        return 1;
    return 0;
}

static void on_kafka_error(void *ud, const char *err)
{
    (void)ud;
    ka_log(KA_LOG_WARN, "Kafka", "{s:s}", "error", err);
}

/* Offsets of partitions taken away are forgotten, not committed: the new
 * owner reads those events again and posts them again, which Alertmanager
 * dedupes. */
static void forget_partitions(offset_t *offs, size_t *noffs, const ka_partition_t *parts,
                              size_t n)
{
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < *noffs; i++)
            if (offs[i].partition == parts[j].partition &&
                strcmp(offs[i].topic, parts[j].topic) == 0) {
                free(offs[i].topic);
                offs[i] = offs[--*noffs];
                break;
            }
}

static void on_revoke(void *ud, const ka_partition_t *parts, size_t n, int lost)
{
    bridge_t *b = ud;
    (void)lost;
    forget_partitions(b->offs, &b->noffs, parts, n);
    forget_partitions(b->round.offs, &b->round.noffs, parts, n);
}

static void register_metrics(bridge_t *b, ka_metrics_t *m)
{
    b->consumed = ka_metrics_series(
        ka_metrics_counter(m, "ka_alert_bridge_events_total", "Alert events read", NULL), NULL);
    b->firing = ka_metrics_series(
        ka_metrics_gauge(m, "ka_alert_bridge_firing",
                         "Alerts firing in PostgreSQL at the last full re-send", NULL),
        NULL);
    b->pending = ka_metrics_series(
        ka_metrics_gauge(m, "ka_alert_bridge_pending",
                         "Alerts read from Kafka and not yet accepted by an Alertmanager", NULL),
        NULL);
    b->resends = ka_metrics_series(
        ka_metrics_counter(m, "ka_alert_bridge_resends_total",
                           "Full re-sends of the firing set", NULL),
        NULL);
    b->flush_failed = ka_metrics_series(
        ka_metrics_counter(m, "ka_alert_bridge_flush_failures_total",
                           "Rounds that could not deliver (retried with back-off)", NULL),
        NULL);
    b->read_delay = ka_metrics_series(
        ka_metrics_histogram(m, "ka_alert_bridge_read_delay_seconds",
                             "Kafka record time of an alert event to its read by the bridge",
                             NULL, KA_METRICS_RTT_BUCKETS, KA_METRICS_RTT_NBUCKETS),
        NULL);
    b->delivery = ka_metrics_series(
        ka_metrics_histogram(m, "ka_alert_bridge_delivery_seconds",
                             "Kafka record time of an alert event to its alert accepted by an "
                             "Alertmanager",
                             NULL, KA_METRICS_RTT_BUCKETS, KA_METRICS_RTT_NBUCKETS),
        NULL);
    b->dead_lettered = ka_metrics_counter(m, "ka_alert_bridge_dead_lettered_total",
                                          "Malformed alert events dead-lettered, by reason",
                                          "reason");
}

static int run(bridge_t *b)
{
    char err[KA_ERRSTR_SIZE];
    int max_events = (int)ka_config_int(b->cfg, "KA_BATCH_MAX_EVENTS");
    int max_ms = (int)ka_config_int(b->cfg, "KA_BATCH_MAX_MS");
    int rc = 0;
    /* The whole set first: an Alertmanager may have restarted while the
     * bridge was away. */
    b->next_resend_ms = mono_ms();
    while (!ka_signal_stop_requested()) {
        atomic_store(&b->heartbeat_ms, mono_ms());
        ka_msg_t *m = NULL;
        int busy = b->round.active;
        /* While a round posts, Kafka is only looked at and the wait is on
         * the post; reading goes on between its steps. */
        int timeout = busy ? 0 : b->first_pending_ms ? 5 : 50;
        if (ka_consumer_poll(b->kc, timeout, &m, err, sizeof err) != KA_OK) {
            ka_log(KA_LOG_ERROR, "Kafka consumer cannot go on", "{s:s}", "error", err);
            rc = 1;
            break;
        }
        atomic_store(&b->kafka_ok, ka_consumer_connected(b->kc));
        if (m) {
            handle(b, m);
            ka_msg_free(m);
        }
        if (busy)
            round_step(b, m ? 0 : 2);
        int64_t now = mono_ms();
        if (b->round.active || (b->retry_at_ms && now < b->retry_at_ms))
            continue;
        int pending = b->first_pending_ms != 0;
        int full = now >= b->next_resend_ms || bridge_am_wants_full(b->am, now);
        if (full || (pending && ((int)b->nfps >= max_events || b->overflow ||
                                 now - b->first_pending_ms >= max_ms)))
            round_begin(b, full);
    }
    atomic_store(&b->stopped, 1);
    /* Drain: the round in flight to its end, then one last round for what
     * was read since; whatever they cannot deliver stays uncommitted and is
     * read again by the next instance. */
    if (rc == 0) {
        round_finish(b);
        if (b->first_pending_ms) {
            b->retry_at_ms = 0;
            round_begin(b, 0);
            round_finish(b);
        }
    }
    return rc;
}

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
                fprintf(stderr, "ka-alert-bridge: unknown argument \"%s\"\n", argv[i]);
            fprintf(help ? stdout : stderr,
                    "usage: ka-alert-bridge [--config FILE]\n"
                    "Posts the alerts of ka.alert.v1 to Prometheus Alertmanager "
                    "(KA_ALERTMANAGER_URLS), labelled with their org path.\n"
                    "Configuration: KA_* environment variables, overridden by FILE "
                    "(see `kactl config`).\n");
            return help ? 0 : 2;
        }
    }
    ka_config_t *cfg = ka_config_load(SERVICE, config_file, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "ka-alert-bridge: %s\n", err);
        return 1;
    }
    ka_log_init(SERVICE, ka_config_str(cfg, "KA_LOG_LEVEL"));
    char *settings = ka_config_summary(cfg);
    ka_log(KA_LOG_INFO, "configuration", "{s:s}", "settings", settings);
    free(settings);
    ka_signal_install();
    ka_clock_set_offset_ms(ka_config_int(cfg, "KA_CLOCK_OFFSET_MS"));
    curl_global_init(CURL_GLOBAL_DEFAULT);

    bridge_t b = {.cfg = cfg, .group = ka_config_str(cfg, "KA_CONSUMER_GROUP")};
    ka_metrics_t *m = ka_metrics_global();
    register_metrics(&b, m);
    atomic_store(&b.heartbeat_ms, mono_ms());
    int rc = 1;
    int port = (int)ka_config_int(cfg, "KA_HTTP_PORT");
    if (port > 0) {
        ka_http_handlers_t h = {&b, m, probe_health, probe_ready};
        b.http = ka_http_start(ka_config_str(cfg, "KA_HTTP_ADDR"), port, &h, err, sizeof err);
        if (!b.http) {
            ka_log(KA_LOG_ERROR, "could not start", "{s:s}", "error", err);
            goto out;
        }
        ka_log(KA_LOG_INFO, "serving /metrics, /healthz, /readyz", "{s:i}", "port",
               ka_http_port(b.http));
    }
    b.am = bridge_am_new(ka_config_str(cfg, "KA_ALERTMANAGER_URLS"),
                         (int)ka_config_int(cfg, "KA_ALERTMANAGER_TIMEOUT_MS"),
                         (int)ka_config_int(cfg, "KA_RETRY_MAX_MS"), m, err, sizeof err);
    if (!b.am) {
        ka_log(KA_LOG_ERROR, "could not start", "{s:s}", "error", err);
        goto out;
    }
    b.kp = ka_producer_new(cfg, on_delivery, &b, err, sizeof err);
    const char *topics[] = {ka_config_str(cfg, "KA_TOPIC_ALERT")};
    ka_consumer_hooks_t hooks = {&b, NULL, on_revoke, on_kafka_error};
    if (b.kp)
        b.kc = ka_consumer_new_kafka_offsets(cfg, topics, 1, &hooks, err, sizeof err);
    if (!b.kp || !b.kc) {
        ka_log(KA_LOG_ERROR, "could not start", "{s:s}", "error", err);
        goto out;
    }
    if (!pg_ready(&b, err, sizeof err))
        ka_log(KA_LOG_WARN, "PostgreSQL unreachable: retrying", "{s:s}", "error", err);
    ka_log(KA_LOG_INFO, "started", "{s:s,s:s,s:i}", "topic", topics[0], "group", b.group,
           "alertmanagers", (int)bridge_am_count(b.am));
    rc = run(&b);
out:
    atomic_store(&b.stopped, 1);
    ka_consumer_free(b.kc);
    if (b.kp)
        ka_producer_flush(b.kp, DLQ_FLUSH_MS);
    ka_producer_free(b.kp);
    ka_http_stop(b.http);
    bridge_am_free(b.am);
    ka_pg_free(b.pg);
    round_clear(&b);
    clear_pending(&b);
    clear_dead(&b);
    free(b.fps);
    free(b.stamps);
    free(b.offs);
    free(b.dead);
    curl_global_cleanup();
    ka_config_free(cfg);
    ka_log(KA_LOG_INFO, rc == 0 ? "stopped" : "stopped on an error", NULL);
    return rc;
}

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka_buf.h"
#include "ka_cols.h"
#include "ka_fault.h"
#include "ka_metrics.h"
#include "ka_outbox.h"

/* Any fixed number: it names the relay's lock among the database's locks. */
#define RELAY_LOCK_KEY "4242001"

/* The backlog is counted at most this often (one index scan of the
 * unpublished rows); a round that emptied the outbox knows it is 0. */
#define BACKLOG_INTERVAL_MS 1000

struct ka_relay {
    const ka_config_t *cfg;
    ka_pg_t *pg;
    ka_producer_t *kp;
    int leader;
    int batch;
    char leader_idle[24]; /* KA_OUTBOX_LEADER_IDLE_MS, as the query's parameter */
    int64_t next_backlog_ms;
};

/* Metrics, in the process's registry. */
static ka_series_t *m_published, *m_unconfirmed, *m_backlog, *m_leader;
/* A relay round's parts: the lock query (not the leader yet), the SELECT of
 * the unpublished rows, queuing them in the producer, waiting for Kafka's
 * delivery reports, the UPDATEs that mark them. */
enum { RSTEP_LOCK, RSTEP_SELECT, RSTEP_PRODUCE, RSTEP_FLUSH, RSTEP_MARK, RSTEP_COUNT };
static ka_series_t *m_step[RSTEP_COUNT];
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_init(void)
{
    ka_metrics_t *m = ka_metrics_global();
    m_published = ka_metrics_series(
        ka_metrics_counter(m, "ka_outbox_published_total",
                           "Outbox rows published: confirmed by Kafka and marked published", NULL),
        NULL);
    m_unconfirmed = ka_metrics_series(
        ka_metrics_counter(m, "ka_outbox_unconfirmed_total",
                           "Outbox rows sent that Kafka did not confirm (sent again later)", NULL),
        NULL);
    m_backlog = ka_metrics_series(
        ka_metrics_gauge(m, "ka_outbox_backlog_rows",
                         "Unpublished outbox rows (every worker's), as the relay last counted them",
                         NULL),
        NULL);
    m_leader = ka_metrics_series(
        ka_metrics_gauge(m, "ka_outbox_relay_leader",
                         "1 while this process's relay holds the publishing lock", NULL),
        NULL);
    static const char *const steps[RSTEP_COUNT] = {"lock", "select", "produce", "flush", "mark"};
    ka_metric_t *step = ka_metrics_histogram(
        m, "ka_outbox_relay_step_seconds",
        "Time a relay round spent in each part: lock (taking the publishing lock), select (the "
        "unpublished rows), produce (queuing them), flush (waiting for Kafka's delivery "
        "reports), mark (the rows published)",
        "step", KA_METRICS_RTT_BUCKETS, KA_METRICS_RTT_NBUCKETS);
    ka_metrics_series_each(step, steps, RSTEP_COUNT, m_step);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Observes the seconds since `since` as `step`; returns now. */
static double step_done(int step, double since)
{
    double now = mono_s();
    ka_metrics_observe(m_step[step], now - since);
    return now;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ka_err_t ka_outbox_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    ka_err_t rc = ka_pg_prepare(
        pg, "ka_outbox_insert",
        /* The id alone decides, across the partitions: a row pushed again
         * (an alert's resolve re-derived after a restart) carries another
         * ce_time, which the partitioned unique key would let in. */
        "INSERT INTO outbox (event_id, topic, kafka_key, ce_type, ce_source, ce_time, payload, "
        "headers) SELECT $1, $2, $3, $4, $5, to_timestamp($6::bigint / 1000.0), $7, $8::jsonb "
        "WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = $1) "
        "ON CONFLICT (event_id, ce_time) DO NOTHING",
        errstr, errlen);
    if (rc != KA_OK)
        return rc;
    /* The batch: its first row of each event_id, inserted in the order
     * added (the ids the relay publishes by). */
    return ka_pg_prepare(
        pg, "ka_outbox_insert_many",
        "INSERT INTO outbox (event_id, topic, kafka_key, ce_type, ce_source, ce_time, payload, "
        "headers) SELECT d.ev, d.topic, d.k, d.ct, $5::text, to_timestamp(d.t / 1000.0), d.p, "
        "d.h::jsonb FROM (SELECT DISTINCT ON (x.ev) * FROM unnest($1::text[], $2::text[], "
        "$3::bytea[], $4::text[], $6::bigint[], $7::bytea[], $8::text[]) WITH ORDINALITY "
        "AS x(ev, topic, k, ct, t, p, h, ord) ORDER BY x.ev, x.ord) d "
        "WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = d.ev) ORDER BY d.ord "
        "ON CONFLICT (event_id, ce_time) DO NOTHING",
        errstr, errlen);
}

/* The row's extra headers as the JSON object the headers column holds
 * (malloc'd), or NULL with errstr filled. */
static char *headers_json(const ka_outbox_row_t *row, char *errstr, size_t errlen)
{
    json_t *hdrs = json_object();
    for (size_t i = 0; i < row->nheaders; i++)
        json_object_set_new(hdrs, row->headers[i].name,
                            json_stringn(row->headers[i].value, row->headers[i].len));
    char *hjson = json_dumps(hdrs, JSON_COMPACT);
    json_decref(hdrs);
    if (!hjson)
        snprintf(errstr, errlen, "outbox headers of %s are not valid UTF-8", row->event_id);
    return hjson;
}

ka_err_t ka_outbox_push(ka_pg_t *pg, const char *ce_source, const ka_outbox_row_t *row,
                        char *errstr, size_t errlen)
{
    char when[32];
    char *hjson = headers_json(row, errstr, errlen);
    if (!hjson)
        return KA_ERR;
    snprintf(when, sizeof when, "%lld", (long long)row->ce_time_ms);
    ka_pg_param_t p[8] = {
        {row->event_id, 0, 0},
        {row->topic, 0, 0},
        {row->key, (int)row->key_len, 1},
        {row->ce_type, 0, 0},
        {ce_source, 0, 0},
        {when, 0, 0},
        {row->payload ? row->payload : "", (int)row->len, 1},
        {hjson, 0, 0},
    };
    if (!row->key)
        p[2].value = NULL;
    ka_err_t rc = ka_pg_pipe_push(pg, "ka_outbox_insert", 8, p, NULL, NULL, errstr, errlen);
    free(hjson);
    return rc;
}

/* Batched inserts ---------------------------------------------------------- */

struct ka_outbox_batch {
    ka_cols_t c; /* event_id, topic, key, ce_type, ce_time, payload, headers */
};

ka_outbox_batch_t *ka_outbox_batch_new(void)
{
    ka_outbox_batch_t *b = ka_calloc(1, sizeof *b);
    ka_cols_begin(&b->c, 7);
    return b;
}

/* bytea's hex input form, "\x0a1b...". */
static void add_bytea(ka_buf_t *col, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    char *hex = ka_malloc(2 * len + 3);
    hex[0] = '\\';
    hex[1] = 'x';
    for (size_t i = 0; i < len; i++) {
        hex[2 + 2 * i] = digits[p[i] >> 4];
        hex[3 + 2 * i] = digits[p[i] & 15];
    }
    hex[2 + 2 * len] = '\0';
    ka_buf_array_add(col, hex);
    free(hex);
}

ka_err_t ka_outbox_batch_add(ka_outbox_batch_t *b, const ka_outbox_row_t *row, char *errstr,
                             size_t errlen)
{
    char *hjson = headers_json(row, errstr, errlen);
    if (!hjson)
        return KA_ERR;
    ka_buf_array_add(&b->c.b[0], row->event_id);
    ka_buf_array_add(&b->c.b[1], row->topic);
    if (row->key)
        add_bytea(&b->c.b[2], row->key, row->key_len);
    else
        ka_buf_array_add(&b->c.b[2], NULL);
    ka_buf_array_add(&b->c.b[3], row->ce_type);
    ka_buf_array_add_int(&b->c.b[4], row->ce_time_ms);
    add_bytea(&b->c.b[5], row->payload ? row->payload : "", row->payload ? row->len : 0);
    ka_buf_array_add(&b->c.b[6], hjson);
    b->c.rows++;
    free(hjson);
    return KA_OK;
}

ka_err_t ka_outbox_batch_push(ka_pg_t *pg, ka_outbox_batch_t *b, const char *ce_source,
                              char *errstr, size_t errlen)
{
    ka_pg_param_t c[7];
    ka_err_t rc = KA_OK;
    if (!b || !b->c.rows)
        return KA_OK;
    ka_cols_end(&b->c, c);
    ka_pg_param_t p[8] = {c[0], c[1], c[2], c[3], {ce_source, 0, 0}, c[4], c[5], c[6]};
    rc = ka_pg_pipe_push(pg, "ka_outbox_insert_many", 8, p, NULL, NULL, errstr, errlen);
    ka_cols_free(&b->c);
    ka_cols_begin(&b->c, 7);
    return rc;
}

void ka_outbox_batch_free(ka_outbox_batch_t *b)
{
    if (!b)
        return;
    ka_cols_free(&b->c);
    free(b);
}

/* Relay ------------------------------------------------------------------- */

typedef struct pending_row {
    long long id;
    int state; /* 0 waiting, 1 delivered, -1 failed */
    char *event_id, *topic, *ce_type, *ce_source, *ce_time, *headers;
    unsigned char *key, *payload;
    size_t key_len, len;
} pending_row_t;

typedef struct round {
    pending_row_t *rows;
    int n;
} round_t;

static void on_delivery(void *ud, void *msg_opaque, ka_err_t status, int possibly_persisted,
                        const char *err)
{
    (void)ud;
    (void)possibly_persisted; /* either way the row stays unpublished and is sent again
                                 with the same ce_id, which consumers deduplicate */
    (void)err;
    pending_row_t *row = msg_opaque;
    row->state = status == KA_OK ? 1 : -1;
}

ka_relay_t *ka_relay_new(const ka_config_t *cfg, char *errstr, size_t errlen)
{
    ka_relay_t *relay = ka_calloc(1, sizeof *relay);
    pthread_once(&metrics_once, metrics_init);
    relay->cfg = cfg;
    relay->batch = (int)ka_config_int(cfg, "KA_OUTBOX_BATCH");
    snprintf(relay->leader_idle, sizeof relay->leader_idle, "%lld",
             (long long)ka_config_int(cfg, "KA_OUTBOX_LEADER_IDLE_MS"));
    relay->pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), errstr, errlen);
    if (!relay->pg)
        goto fail;
    relay->kp = ka_producer_new(cfg, on_delivery, relay, errstr, errlen);
    if (!relay->kp)
        goto fail;
    return relay;
fail:
    ka_relay_free(relay);
    return NULL;
}

int ka_relay_is_leader(const ka_relay_t *relay)
{
    return relay->leader;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = hex ? strlen(hex) / 2 : 0;
    unsigned char *out = ka_malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    *len = n;
    return out;
}

static char *dup_or_null(const char *s)
{
    return s ? ka_strdup(s) : NULL;
}

static int read_rows(void *ud, const ka_pgres_t *res)
{
    round_t *r = ud;
    r->n = ka_pgres_rows(res);
    r->rows = ka_calloc((size_t)r->n, sizeof *r->rows);
    for (int i = 0; i < r->n; i++) {
        pending_row_t *row = &r->rows[i];
        row->id = ka_pgres_int(res, i, 0, -1);
        row->event_id = ka_strdup(ka_pgres_value(res, i, 1));
        row->topic = ka_strdup(ka_pgres_value(res, i, 2));
        row->key = ka_pgres_value(res, i, 3) ? unhex(ka_pgres_value(res, i, 3), &row->key_len) : NULL;
        row->ce_type = dup_or_null(ka_pgres_value(res, i, 4));
        row->ce_source = ka_strdup(ka_pgres_value(res, i, 5));
        row->ce_time = ka_strdup(ka_pgres_value(res, i, 6));
        row->payload = unhex(ka_pgres_value(res, i, 7), &row->len);
        row->headers = dup_or_null(ka_pgres_value(res, i, 8));
    }
    return 0;
}

static void free_round(round_t *r)
{
    for (int i = 0; i < r->n; i++) {
        pending_row_t *row = &r->rows[i];
        free(row->event_id);
        free(row->topic);
        free(row->key);
        free(row->ce_type);
        free(row->ce_source);
        free(row->ce_time);
        free(row->payload);
        free(row->headers);
    }
    free(r->rows);
}

static int read_lock(void *ud, const ka_pgres_t *res)
{
    const char *v = ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : NULL;
    *(int *)ud = v && v[0] == 't';
    return 0;
}

static ka_err_t send_row(ka_relay_t *relay, pending_row_t *row, char *errstr, size_t errlen)
{
    ka_header_t h[40];
    size_t nh = 0;
    json_t *extra = row->headers ? json_loads(row->headers, 0, NULL) : NULL;
    const char *name;
    json_t *value;
    ka_err_t rc;

    if (row->ce_type) {
        h[nh++] = (ka_header_t){"ce_specversion", "1.0", 3};
        h[nh++] = (ka_header_t){"ce_id", row->event_id, strlen(row->event_id)};
        h[nh++] = (ka_header_t){"ce_type", row->ce_type, strlen(row->ce_type)};
        h[nh++] = (ka_header_t){"ce_source", row->ce_source, strlen(row->ce_source)};
        h[nh++] = (ka_header_t){"ce_time", row->ce_time, strlen(row->ce_time)};
        h[nh++] = (ka_header_t){"content-type", "application/x-protobuf", 22};
    }
    json_object_foreach(extra, name, value)
    {
        if (nh < sizeof h / sizeof h[0] && json_is_string(value))
            h[nh++] = (ka_header_t){name, json_string_value(value), json_string_length(value)};
    }
    for (;;) {
        rc = ka_producer_send(relay->kp, row->topic, row->key, row->key_len, row->payload,
                              row->len, h, nh, row, errstr, errlen);
        if (rc != KA_ERR_RETRY)
            break;
        ka_producer_poll(relay->kp, 100); /* local queue full: make room */
    }
    json_decref(extra);
    return rc;
}

/* Non-zero while a row sent this round has had no delivery report. */
static int any_in_flight(const round_t *r)
{
    for (int i = 0; i < r->n; i++)
        if (r->rows[i].state == 0)
            return 1;
    return 0;
}

static ka_err_t mark(ka_relay_t *relay, const round_t *r, int state, const char *sql,
                     char *errstr, size_t errlen)
{
    ka_buf_t ids = KA_BUF_INIT;
    int any = 0;
    ka_buf_array_begin(&ids);
    for (int i = 0; i < r->n; i++) {
        if (r->rows[i].state == state) {
            ka_buf_array_add_int(&ids, r->rows[i].id);
            any = 1;
        }
    }
    ka_buf_array_end(&ids);
    ka_err_t rc = KA_OK;
    if (any) {
        ka_pg_param_t p = {ka_buf_str(&ids), 0, 0};
        rc = ka_pg_query(relay->pg, sql, 1, &p, NULL, NULL, errstr, errlen);
    }
    ka_buf_free(&ids);
    return rc;
}

static int give_up_at_once(void)
{
    return 1;
}

static int read_count(void *ud, const ka_pgres_t *res)
{
    *(long long *)ud = ka_pgres_rows(res) ? ka_pgres_int(res, 0, 0, -1) : -1;
    return 0;
}

/* Updates the backlog gauge: 0 when the caller knows the outbox is empty,
 * else a count at most every BACKLOG_INTERVAL_MS. A failed count keeps the
 * last value (the round's own error tells what is wrong). */
static void note_backlog(ka_relay_t *relay, int known_empty)
{
    char err[KA_ERRSTR_SIZE];
    long long n = -1;
    int64_t now = mono_ms();
    if (!known_empty && now < relay->next_backlog_ms)
        return;
    relay->next_backlog_ms = now + BACKLOG_INTERVAL_MS;
    if (known_empty)
        n = 0;
    else if (ka_pg_query(relay->pg, "SELECT count(*) FROM outbox WHERE published_at IS NULL", 0,
                         NULL, read_count, &n, err, sizeof err) != KA_OK)
        return;
    if (n >= 0)
        ka_metrics_set(m_backlog, (double)n);
}

ka_err_t ka_relay_round(ka_relay_t *relay, int *published, int *pending, char *errstr,
                        size_t errlen)
{
    round_t r = {NULL, 0};
    char limit[16];
    ka_err_t rc;

    *published = 0;
    *pending = 0;
    errstr[0] = '\0';
    double t;
    if (!ka_pg_ok(relay->pg)) {
        relay->leader = 0; /* the lock died with the session */
        if (ka_pg_reconnect(relay->pg, 100, give_up_at_once, NULL) != KA_OK) {
            snprintf(errstr, errlen, "outbox relay: PostgreSQL unavailable");
            return KA_ERR_RETRY;
        }
    }
    if (relay->kp && ka_producer_fatal(relay->kp, errstr, errlen)) {
        /* Idempotence is broken for this producer: start a fresh one; the
         * unconfirmed rows are still unpublished and go out again. */
        ka_producer_free(relay->kp);
        relay->kp = NULL;
    }
    if (!relay->kp) {
        relay->kp = ka_producer_new(relay->cfg, on_delivery, relay, errstr, errlen);
        if (!relay->kp)
            return KA_ERR;
    }
    if (!relay->leader) {
        /* The lock is the session's: a leader whose process is paused or
         * frozen would keep it, and every instance's output would wait for
         * it. PostgreSQL ends a session idle longer than this, the lock goes
         * with it and another relay takes over (re-sent rows keep their
         * ids). A live leader queries every round, far more often. */
        ka_pg_param_t idle = {relay->leader_idle, 0, 0};
        t = mono_s();
        rc = ka_pg_query(relay->pg,
                         "SELECT pg_try_advisory_lock(" RELAY_LOCK_KEY "), "
                         "set_config('idle_session_timeout', $1, false)",
                         1, &idle, read_lock, &relay->leader, errstr, errlen);
        step_done(RSTEP_LOCK, t);
        ka_metrics_set(m_leader, relay->leader);
        if (rc == KA_OK && !relay->leader)
            note_backlog(relay, 0); /* another process publishes: still worth watching */
        if (rc != KA_OK || !relay->leader)
            return rc;
    }
    snprintf(limit, sizeof limit, "%d", relay->batch);
    ka_pg_param_t p = {limit, 0, 0};
    t = mono_s();
    rc = ka_pg_query(relay->pg,
                     "SELECT id, event_id, topic, encode(kafka_key, 'hex'), ce_type, ce_source, "
                     "to_char(ce_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
                     "encode(payload, 'hex'), headers::text FROM outbox "
                     "WHERE published_at IS NULL ORDER BY id LIMIT $1",
                     1, &p, read_rows, &r, errstr, errlen);
    if (rc != KA_OK)
        goto out;
    t = step_done(RSTEP_SELECT, t);
    if (r.n)
        ka_fault_point("relay_before");
    for (int i = 0; i < r.n; i++) {
        if ((rc = send_row(relay, &r.rows[i], errstr, errlen)) != KA_OK) {
            r.n = i; /* only what was queued can be reported */
            break;
        }
    }
    if (r.n)
        t = step_done(RSTEP_PRODUCE, t);
    ka_producer_flush(relay->kp, 10000);
    if (r.n) {
        t = step_done(RSTEP_FLUSH, t);
        ka_fault_point("relay_flushed");
    }
    if (any_in_flight(&r)) {
        /* Kafka did not answer for all of these in time (down or hung). Their
         * delivery reports would come later and point into rows this round
         * frees; dropping the producer drops them. The rows stay unpublished
         * and go out again, with the same ids, from a fresh producer. */
        ka_producer_free(relay->kp);
        relay->kp = NULL;
    }
    ka_err_t mrc = mark(relay, &r, 1,
                        "UPDATE outbox SET published_at = now(), attempts = attempts + 1 "
                        "WHERE id = ANY($1::bigint[])",
                        errstr, errlen);
    if (mrc == KA_OK)
        mrc = mark(relay, &r, -1,
                   "UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1::bigint[])",
                   errstr, errlen);
    if (r.n)
        step_done(RSTEP_MARK, t);
    if (mrc == KA_OK && r.n)
        ka_fault_point("relay_marked");
    int unconfirmed = 0;
    for (int i = 0; i < r.n; i++) {
        if (r.rows[i].state == 1) {
            (*published)++;
        } else {
            unconfirmed++;
            if (rc == KA_OK)
                rc = KA_ERR_RETRY; /* some rows were not confirmed: Kafka is unwell */
        }
    }
    if (rc == KA_ERR_RETRY && errstr[0] == '\0')
        snprintf(errstr, errlen, "outbox relay: Kafka did not confirm every row");
    if (mrc != KA_OK)
        rc = mrc;
    *pending = r.n == relay->batch;
    if (mrc == KA_OK)
        ka_metrics_add(m_published, *published);
    ka_metrics_add(m_unconfirmed, unconfirmed);
    note_backlog(relay, rc == KA_OK && !*pending);
out:
    free_round(&r);
    return rc;
}

void ka_relay_free(ka_relay_t *relay)
{
    if (!relay)
        return;
    if (relay->kp) {
        ka_producer_flush(relay->kp, 5000);
        ka_producer_free(relay->kp);
    }
    ka_pg_free(relay->pg);
    free(relay);
}

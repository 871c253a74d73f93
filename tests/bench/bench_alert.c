/* Alert event to notification: ka-alert-bridge and Alertmanager end to end.
 *
 *   ka-bench alert TOPIC HOOK_PORT EVENTS RATE
 *
 * Every 10 ms, RATE/100 new firing alerts are written to alert_state (one
 * statement, as a worker's batch would) and their ka.alert.v1 events
 * produced to TOPIC; the send time of each is the moment its event is
 * handed to the producer. A webhook receiver on 127.0.0.1:HOOK_PORT (the
 * one Alertmanager's bench configuration notifies, group_wait 0) notes
 * when each alert first arrives. The latency is the difference: the
 * bridge's read, its PostgreSQL read and post, Alertmanager's dispatch and
 * its webhook call. Both clocks are this process's wall clock. */
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "ka/v1/alert.pb-c.h"

#define TICK_MS 10

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t *sent_ms, *got_ms;
static long nevents, nreceived;
static char prefix[64];

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct upload {
    char *data;
    size_t len;
} upload_t;

static void note(const char *body, size_t len, int64_t now)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(doc, "alerts"), i, a)
    {
        const char *fp =
            json_string_value(json_object_get(json_object_get(a, "labels"), "fingerprint"));
        size_t plen = strlen(prefix);
        if (!fp || strncmp(fp, prefix, plen) != 0)
            continue;
        long k = strtol(fp + plen, NULL, 10);
        pthread_mutex_lock(&mu);
        if (k >= 0 && k < nevents && got_ms[k] == 0) {
            got_ms[k] = now;
            nreceived++;
        }
        pthread_mutex_unlock(&mu);
    }
    json_decref(doc);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    upload_t *u = *con_cls;
    if (!u) {
        *con_cls = calloc(1, sizeof *u);
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*size) {
        char *grown = realloc(u->data, u->len + *size);
        if (!grown)
            return MHD_NO;
        u->data = grown;
        memcpy(u->data + u->len, data, *size);
        u->len += *size;
        *size = 0;
        return MHD_YES;
    }
    if (u->data)
        note(u->data, u->len, wall_ms());
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    upload_t *u = *con_cls;
    if (u) {
        free(u->data);
        free(u);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t quantile(const int64_t *v, long n, double q)
{
    long rank = (long)(q * (double)n + 0.999999);
    return v[rank ? rank - 1 : 0];
}

/* Writes alerts [from, to) to alert_state, firing, on `subject`. */
static int write_rows(PGconn *pg, long from, long to, const char *subject)
{
    char lo[24], hi[24];
    snprintf(lo, sizeof lo, "%ld", from);
    snprintf(hi, sizeof hi, "%ld", to - 1);
    const char *p[4] = {prefix, lo, hi, subject};
    PGresult *res = PQexecParams(
        pg,
        "INSERT INTO alert_state (fingerprint, alert_id, type, severity, status, subject_kind, "
        "subject_id, summary, details, starts_at, last_transition_at) "
        "SELECT $1 || i, $1 || i || '@1', 'stalled_opportunity', 'warning', 'firing', 'node', $4, "
        "'bench alert ' || i, '{}'::jsonb, now(), now() FROM generate_series($2::bigint, "
        "$3::bigint) i",
        4, NULL, p, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "ka-bench alert: %s", PQerrorMessage(pg));
    PQclear(res);
    return ok ? 0 : -1;
}

static int produce(rd_kafka_t *rk, const char *topic, long k, int64_t now)
{
    char fp[96], id[112], ce[128];
    snprintf(fp, sizeof fp, "%s%ld", prefix, k);
    snprintf(id, sizeof id, "%s@1", fp);
    snprintf(ce, sizeof ce, "%s:firing", id);
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__AlertEvent ev = KA__V1__ALERT_EVENT__INIT;
    h.event_id = ce;
    h.occurred_at_ms = now;
    h.producer = "ka-bench";
    ev.header = &h;
    ev.alert_id = id;
    ev.fingerprint = fp;
    ev.type = KA__V1__ALERT_TYPE__ALERT_TYPE_STALLED_OPPORTUNITY;
    ev.severity = KA__V1__SEVERITY__SEVERITY_WARNING;
    ev.status = KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING;
    ev.subject_kind = KA__V1__SUBJECT_KIND__SUBJECT_KIND_NODE;
    ev.subject_id = "bench";
    ev.summary = "bench";
    ev.starts_at_ms = now;
    uint8_t buf[512];
    size_t len = ka__v1__alert_event__pack(&ev, buf);
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(fp, strlen(fp)),
                                    RD_KAFKA_V_VALUE(buf, len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(rk, 10);
    if (err) {
        fprintf(stderr, "ka-bench alert: %s\n", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

int bench_alert(int argc, char **argv)
{
    char err[512];
    if (argc != 4 || atoi(argv[1]) <= 0 || atol(argv[2]) <= 0 || atol(argv[3]) < 100) {
        fprintf(stderr, "ka-bench alert: expects TOPIC HOOK_PORT EVENTS RATE (100/s or more)\n");
        return 2;
    }
    const char *topic = argv[0];
    int port = atoi(argv[1]);
    nevents = atol(argv[2]);
    long rate = atol(argv[3]), per_tick = rate * TICK_MS / 1000;
    snprintf(prefix, sizeof prefix, "bench/alert-%d-%" PRId64 "-", (int)getpid(), wall_ms());
    sent_ms = calloc((size_t)nevents, sizeof *sent_ms);
    got_ms = calloc((size_t)nevents, sizeof *got_ms);

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *hook =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
    PGconn *pg = PQconnectdb(bench_dsn());
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bench_brokers(), err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!hook || PQstatus(pg) != CONNECTION_OK || !rk) {
        fprintf(stderr, "ka-bench alert: %s\n",
                !hook ? "webhook port busy" : !rk ? err : PQerrorMessage(pg));
        return 1;
    }
    /* The subject: a rep of the org tree, so the alert has a team and a manager. */
    PGresult *res = PQexec(pg, "SELECT id FROM org_node WHERE kind = 'rep' ORDER BY id LIMIT 1");
    char subject[128] = "bench";
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        snprintf(subject, sizeof subject, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    /* The topic's partitions known before the clock starts. A producer
     * that meets a topic only in its first produce call may not ask for
     * its metadata until its once-a-second topic scan (librdkafka 2.0.2,
     * seen with debug=topic,metadata): the first second's events wait in
     * its unassigned queue and reach the broker together. A worker's
     * relay, producing for hours, has its topics known. */
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t merr = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (merr == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err)
        merr = md->topics[0].err;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (merr) {
        fprintf(stderr, "ka-bench alert: no metadata for %s: %s\n", topic,
                rd_kafka_err2str(merr));
        return 1;
    }

    int rc = 0;
    int64_t start = bench_mono_ms();
    for (long k = 0, tick = 0; k < nevents && rc == 0; tick++) {
        int64_t due = start + tick * TICK_MS, now = bench_mono_ms();
        if (due > now)
            usleep((useconds_t)(due - now) * 1000);
        long to = k + per_tick < nevents ? k + per_tick : nevents;
        /* The row commits before its event is sent, as a worker's does. */
        rc = write_rows(pg, k, to, subject);
        for (; k < to && rc == 0; k++) {
            int64_t w = wall_ms();
            pthread_mutex_lock(&mu);
            sent_ms[k] = w;
            pthread_mutex_unlock(&mu);
            rc = produce(rk, topic, k, w);
        }
        rd_kafka_poll(rk, 0);
    }
    double send_s = (double)(bench_mono_ms() - start) / 1000.0;
    rd_kafka_flush(rk, 10000);
    /* Every notification, or 15 s of none more. */
    long last = -1;
    int64_t since = bench_mono_ms();
    while (rc == 0) {
        pthread_mutex_lock(&mu);
        long got = nreceived;
        pthread_mutex_unlock(&mu);
        if (got == nevents)
            break;
        if (got != last) {
            last = got;
            since = bench_mono_ms();
        } else if (bench_mono_ms() - since > 15000) {
            break;
        }
        usleep(20 * 1000);
    }
    MHD_stop_daemon(hook);
    /* KA_BENCH_ALERT_TRACE=FILE: each event's send and notification time
     * (wall ms), to line up against the bridge's log when looking for where
     * the time goes. */
    const char *trace = getenv("KA_BENCH_ALERT_TRACE");
    FILE *tf = trace && *trace ? fopen(trace, "w") : NULL;
    for (long k = 0; tf && k < nevents; k++)
        fprintf(tf, "%ld %" PRId64 " %" PRId64 "\n", k, sent_ms[k], got_ms[k]);
    if (tf)
        fclose(tf);
    int64_t *lat = calloc((size_t)nevents, sizeof *lat);
    long n = 0;
    for (long k = 0; k < nevents; k++)
        if (got_ms[k])
            lat[n++] = got_ms[k] - sent_ms[k] > 0 ? got_ms[k] - sent_ms[k] : 0;
    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    if (rc == 0) {
        printf("{\"events\":%ld,\"rate\":%ld,\"send_s\":%.2f,\"received\":%ld", nevents, rate,
               send_s, n);
        if (n)
            printf(",\"p50_ms\":%" PRId64 ",\"p95_ms\":%" PRId64 ",\"p99_ms\":%" PRId64
                   ",\"max_ms\":%" PRId64,
                   quantile(lat, n, 0.50), quantile(lat, n, 0.95), quantile(lat, n, 0.99),
                   lat[n - 1]);
        printf("}\n");
    }
    free(lat);
    free(sent_ms);
    free(got_ms);
    rd_kafka_destroy(rk);
    PQfinish(pg);
    return rc == 0 ? 0 : 1;
}

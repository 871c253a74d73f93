/* Event to alert: reads the input topic and the alert topic from the ends
 * they have at start, for SECONDS. Each input event's Kafka timestamp (set
 * by its producer when sent) is kept by event id; each firing alert's
 * timestamp (set by the worker's outbox relay when published) is matched to
 * the events it names as causes. The latency is the difference: queueing,
 * the worker's batch, its transaction and the relay, end to end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "ka/v1/alert.pb-c.h"
#include "ka/v1/opportunity.pb-c.h"

typedef struct stamp {
    char *id;
    int64_t ms;
} stamp_t;

typedef struct stamps {
    stamp_t *v;
    size_t n, cap;
} stamps_t;

static void push(stamps_t *s, const char *id, int64_t ms)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v)
            abort();
    }
    s->v[s->n].id = strdup(id);
    if (!s->v[s->n].id)
        abort();
    s->v[s->n++].ms = ms;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const stamp_t *)a)->id, ((const stamp_t *)b)->id);
}

static int by_ms(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (nearest rank) of sorted v. */
static int64_t quantile(const int64_t *v, size_t n, double q)
{
    size_t rank = (size_t)(q * (double)n + 0.999999);
    return v[rank ? rank - 1 : 0];
}

int bench_latency(int argc, char **argv)
{
    stamps_t in = {0}, causes = {0};
    int64_t total = 0, first_ms = -1, last_ms = -1;
    size_t alerts = 0;
    int rc = 1;
    char *end;
    long seconds = argc == 3 ? strtol(argv[2], &end, 10) : 0;
    if (argc != 3 || *end || seconds < 1) {
        fprintf(stderr, "ka-bench latency: expects INPUT_TOPIC ALERT_TOPIC SECONDS\n");
        return 2;
    }
    const char *input = argv[0], *alert = argv[1];
    rd_kafka_t *rk = bench_kafka_consumer("latency");
    if (!rk)
        return 1;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(16);
    if (bench_kafka_add_topic(rk, input, 1, list, &total) ||
        bench_kafka_add_topic(rk, alert, 1, list, &total))
        goto out;
    rd_kafka_assign(rk, list);
    fprintf(stderr, "ready\n"); /* the driver starts producing now */
    int64_t stop = bench_mono_ms() + seconds * 1000;
    while (bench_mono_ms() < stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                fprintf(stderr, "ka-bench latency: %s\n", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                goto out;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        int64_t ts = rd_kafka_message_timestamp(m, NULL);
        const char *topic = rd_kafka_topic_name(m->rkt);
        if (strcmp(topic, input) == 0) {
            Ka__V1__OpportunityEvent *e =
                ka__v1__opportunity_event__unpack(NULL, m->len, m->payload);
            if (e && e->header && e->header->event_id) {
                push(&in, e->header->event_id, ts);
                if (first_ms < 0 || ts < first_ms)
                    first_ms = ts;
                if (ts > last_ms)
                    last_ms = ts;
            }
            ka__v1__opportunity_event__free_unpacked(e, NULL);
        } else {
            Ka__V1__AlertEvent *a = ka__v1__alert_event__unpack(NULL, m->len, m->payload);
            if (a && a->status == KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING) {
                alerts++;
                for (size_t i = 0; i < a->n_cause_event_ids; i++)
                    push(&causes, a->cause_event_ids[i], ts);
            }
            ka__v1__alert_event__free_unpacked(a, NULL);
        }
        rd_kafka_message_destroy(m);
    }
    qsort(in.v, in.n, sizeof *in.v, by_id);
    int64_t *lat = calloc(causes.n + 1, sizeof *lat);
    size_t n = 0;
    for (size_t i = 0; i < causes.n; i++) {
        stamp_t *hit = bsearch(&causes.v[i], in.v, in.n, sizeof *in.v, by_id);
        if (hit)
            lat[n++] = causes.v[i].ms - hit->ms;
    }
    qsort(lat, n, sizeof *lat, by_ms);
    double span = (double)(last_ms - first_ms) / 1000.0;
    printf("{\"input_events\":%zu,\"input_per_s\":%.1f,\"alerts\":%zu,\"matched\":%zu", in.n,
           span > 0 ? (double)in.n / span : 0.0, alerts, n);
    if (n)
        printf(",\"p50_ms\":%lld,\"p95_ms\":%lld,\"p99_ms\":%lld,\"max_ms\":%lld",
               (long long)quantile(lat, n, 0.50), (long long)quantile(lat, n, 0.95),
               (long long)quantile(lat, n, 0.99), (long long)lat[n - 1]);
    printf("}\n");
    free(lat);
    rc = 0;
out:
    for (size_t i = 0; i < in.n; i++)
        free(in.v[i].id);
    for (size_t i = 0; i < causes.n; i++)
        free(causes.v[i].id);
    free(in.v);
    free(causes.v);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

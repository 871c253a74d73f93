/* The foundation's pipeline against the real stack: protobuf events produced
 * to Kafka are consumed through common/, written to PostgreSQL, cached in
 * Redis and echoed through the outbox; bad ones land on the dead-letter topic
 * with their reason while the worker goes on; duplicates change nothing; a
 * restarted worker resumes at the offsets stored in PostgreSQL; a flushed
 * cache is rebuilt. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "ka/v1/alert.pb-c.h"
#include "ka_redis.h"
#include "probe_handler.h"

#define PARTITIONS 3

typedef struct fixture {
    ka_config_t *cfg;
    ka_pg_t *pg;
    ka_redis_t *rds;
    ka_producer_t *kp;
    char in_topic[128], echo_topic[128], dlq_topic[128], group[128];
    probe_t probe;
    ka_handler_t handler;
    ka_worker_t *w;
    pthread_t thread;
    int produced; /* messages on in_topic */
    ka_worker_stats_t last_stats;
} fixture_t;

static fixture_t fx;

static const char *COUNT_APPLIED = "SELECT count(*) FROM ingest_probe WHERE consumer_group = $1";
static const char *SUM_OFFSETS =
    "SELECT coalesce(sum(next_offset), 0) FROM consumer_offset WHERE consumer_group = $1";
static const char *COUNT_DEAD = "SELECT count(*) FROM dead_letter WHERE consumer_group = $1";
static const char *COUNT_UNPUBLISHED =
    "SELECT count(*) FROM outbox WHERE published_at IS NULL AND topic = $1";

static void *run_worker(void *arg)
{
    ka_worker_run(arg);
    return NULL;
}

static void start_worker(void)
{
    char err[KA_ERRSTR_SIZE];
    const char *topics[] = {fx.in_topic};
    fx.w = ka_worker_new(fx.cfg, topics, 1, &fx.handler, err, sizeof err);
    if (!fx.w)
        fail_msg("worker: %s", err);
    assert_int_equal(pthread_create(&fx.thread, NULL, run_worker, fx.w), 0);
}

static void stop_worker(void)
{
    ka_worker_stop(fx.w);
    pthread_join(fx.thread, NULL);
    fx.last_stats = *ka_worker_stats(fx.w);
    ka_worker_free(fx.w);
    fx.w = NULL;
}

static void produce_visit(const char *event_id, const char *account)
{
    uint8_t *buf;
    size_t len = it_visit_bytes(event_id, account, &buf);
    it_produce(fx.kp, fx.in_topic, account, buf, len);
    free(buf);
    fx.produced++;
}

static void produce_raw(const char *key, const void *bytes, size_t len)
{
    it_produce(fx.kp, fx.in_topic, key, bytes, len);
    fx.produced++;
}

static void wait_consumed(void)
{
    long long sum = it_pg_wait(fx.pg, SUM_OFFSETS, fx.group, fx.produced, 60000);
    assert_int_equal(sum, fx.produced);
}

static int setup(void **state)
{
    char err[KA_ERRSTR_SIZE];
    (void)state;
    fx.cfg = it_config("it-pipeline");
    snprintf(fx.in_topic, sizeof fx.in_topic, "it.visit.%s", it_suffix());
    snprintf(fx.echo_topic, sizeof fx.echo_topic, "it.echo.%s", it_suffix());
    snprintf(fx.dlq_topic, sizeof fx.dlq_topic, "it.deadletter.%s", it_suffix());
    snprintf(fx.group, sizeof fx.group, "it-pipeline-%s", it_suffix());
    ka_config_set(fx.cfg, "KA_CONSUMER_GROUP", fx.group, err, sizeof err);
    ka_config_set(fx.cfg, "KA_TOPIC_DEADLETTER", fx.dlq_topic, err, sizeof err);
    ka_config_set(fx.cfg, "KA_BATCH_MAX_MS", "10", err, sizeof err);
    const char *brokers = ka_config_str(fx.cfg, "KA_KAFKA_BROKERS");
    if (ka_kafka_create_topic(brokers, fx.in_topic, PARTITIONS, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, fx.echo_topic, 1, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, fx.dlq_topic, 1, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    fx.pg = it_pg(fx.cfg);
    fx.rds = ka_redis_connect(ka_config_str(fx.cfg, "KA_REDIS_HOST"),
                              (int)ka_config_int(fx.cfg, "KA_REDIS_PORT"), 2000, err, sizeof err);
    if (!fx.rds)
        fail_msg("%s", err);
    fx.kp = it_producer(fx.cfg);
    fx.probe.group = fx.group;
    fx.probe.echo_topic = fx.echo_topic;
    probe_handler_init(&fx.handler, &fx.probe);
    return 0;
}

/* A failed assertion leaves the test early: never leave its worker running. */
static int stop_leftover_worker(void **state)
{
    (void)state;
    if (fx.w)
        stop_worker();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (fx.w)
        stop_worker();
    ka_producer_free(fx.kp);
    ka_redis_free(fx.rds);
    ka_pg_free(fx.pg);
    ka_config_free(fx.cfg);
    return 0;
}

static char *cached(const char *event_id)
{
    char key[256], err[KA_ERRSTR_SIZE], *val = NULL;
    snprintf(key, sizeof key, "ka:probe:%s:%s", fx.group, event_id);
    if (ka_redis_get(fx.rds, key, &val, NULL, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    return val;
}

static const char garbage[] = "\xff\xff\xff not a protobuf";

static void events_reach_postgres_redis_and_outbox_and_bad_ones_dead_letter(void **state)
{
    char id[64], acct[64];
    (void)state;
    start_worker();
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "evt-%d", i);
        snprintf(acct, sizeof acct, "Account %d", i % 8);
        produce_visit(id, acct);
        if (i == 10)
            produce_raw("Account 2", garbage, sizeof garbage - 1);
        if (i == 20)
            produce_visit("", "Account 3"); /* no event id */
    }
    for (int i = 0; i < 5; i++) { /* the bus re-delivers five events */
        snprintf(id, sizeof id, "evt-%d", i);
        snprintf(acct, sizeof acct, "Account %d", i % 8);
        produce_visit(id, acct);
    }
    wait_consumed();
    assert_int_equal(it_pg_int(fx.pg, COUNT_APPLIED, fx.group), 40);
    assert_int_equal(it_pg_int(fx.pg, COUNT_DEAD, fx.group), 2);
    assert_int_equal(it_pg_wait(fx.pg, COUNT_UNPUBLISHED, fx.echo_topic, 0, 30000), 0);
    assert_int_equal(it_pg_wait(fx.pg, COUNT_UNPUBLISHED, fx.dlq_topic, 0, 30000), 0);

    /* Redis holds every applied event with where it came from. */
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "evt-%d", i);
        char *v = NULL;
        for (int tries = 0; tries < 50 && !(v = cached(id)); tries++)
            usleep(100 * 1000);
        assert_non_null(v);
        assert_non_null(strstr(v, fx.in_topic));
        free(v);
    }

    /* The dead-letter topic has both bad messages, whole, with reasons. */
    it_msgs_t dls = it_consume_all(fx.cfg, fx.dlq_topic, 2, 30000);
    it_drop_resent(&dls);
    ka_msg_t **dl = dls.m;
    size_t n = dls.n;
    assert_int_equal(n, 2);
    int saw_decode = 0, saw_missing = 0;
    for (size_t i = 0; i < n; i++) {
        char *reason = it_header(dl[i], "ka_dlq_reason");
        char *src = it_header(dl[i], "ka_src_topic");
        char *off = it_header(dl[i], "ka_src_offset");
        assert_string_equal(src, fx.in_topic);
        assert_true(off[0] >= '0' && off[0] <= '9');
        if (strcmp(reason, KA_REASON_DECODE) == 0) {
            saw_decode = 1;
            assert_int_equal(dl[i]->len, sizeof garbage - 1);
            assert_memory_equal(dl[i]->payload, garbage, sizeof garbage - 1);
        } else if (strcmp(reason, KA_REASON_MISSING) == 0) {
            saw_missing = 1;
            char *detail = it_header(dl[i], "ka_dlq_detail");
            assert_non_null(strstr(detail, "event_id"));
            free(detail);
        }
        free(reason);
        free(src);
        free(off);
    }
    assert_true(saw_decode);
    assert_true(saw_missing);
    it_free_msgs(&dls);

    /* One echo per applied event, never for a duplicate, as a CloudEvent. */
    it_msgs_t echos = it_consume_all(fx.cfg, fx.echo_topic, 40, 30000);
    it_drop_resent(&echos);
    ka_msg_t **echo = echos.m;
    n = echos.n;
    assert_int_equal(n, 40);
    for (size_t i = 0; i < n; i++) {
        Ka__V1__AlertEvent *a = ka__v1__alert_event__unpack(NULL, echo[i]->len, echo[i]->payload);
        assert_non_null(a);
        assert_int_equal(a->n_cause_event_ids, 1);
        char *ce_id = it_header(echo[i], "ce_id");
        char *ce_spec = it_header(echo[i], "ce_specversion");
        char *ctype = it_header(echo[i], "content-type");
        char want[320];
        snprintf(want, sizeof want, "probe:%s:%s", fx.group, a->cause_event_ids[0]);
        assert_string_equal(ce_id, want);
        assert_string_equal(ce_spec, "1.0");
        assert_string_equal(ctype, "application/x-protobuf");
        free(ce_id);
        free(ce_spec);
        free(ctype);
        ka__v1__alert_event__free_unpacked(a, NULL);
    }
    it_free_msgs(&echos);
    stop_worker();
    assert_int_equal(fx.last_stats.duplicates, 5);
    assert_int_equal(fx.last_stats.dead_lettered, 2);
}

static void restarted_worker_resumes_at_stored_offsets(void **state)
{
    char id[64];
    (void)state;
    for (int i = 40; i < 50; i++) {
        snprintf(id, sizeof id, "evt-%d", i);
        produce_visit(id, "Account 1");
    }
    start_worker();
    wait_consumed();
    stop_worker();
    /* Only the ten new events were consumed: nothing before them again. */
    assert_int_equal(fx.last_stats.consumed, 10);
    assert_int_equal(fx.last_stats.duplicates, 0);
    assert_int_equal(it_pg_int(fx.pg, COUNT_APPLIED, fx.group), 50);
}

static void flushed_cache_is_rebuilt_from_postgres(void **state)
{
    char key[256], marker[256], err[KA_ERRSTR_SIZE];
    (void)state;
    snprintf(key, sizeof key, "ka:probe:%s:evt-7", fx.group);
    snprintf(marker, sizeof marker, "ka:cache:ready:%s", fx.group);
    const char *del[] = {"DEL", key, marker};
    ka_redis_append_str(fx.rds, 3, del);
    assert_int_equal(ka_redis_flush(fx.rds, err, sizeof err), KA_OK);
    char *v = cached("evt-7");
    assert_null(v);
    start_worker();
    for (int tries = 0; tries < 150 && !(v = cached("evt-7")); tries++)
        usleep(100 * 1000);
    stop_worker();
    assert_non_null(v);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(events_reach_postgres_redis_and_outbox_and_bad_ones_dead_letter,
                                  stop_leftover_worker),
        cmocka_unit_test_teardown(restarted_worker_resumes_at_stored_offsets, stop_leftover_worker),
        cmocka_unit_test_teardown(flushed_cache_is_rebuilt_from_postgres, stop_leftover_worker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

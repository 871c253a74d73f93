/* The operations endpoint of a real worker process (the probe worker) against
 * the real stack: /metrics counts exactly what was sent (consumed), applied
 * and dead-lettered by reason, in a valid text exposition; /readyz is 200
 * while it runs and 503 with a reason when it holds no partition; /healthz is
 * 200; SIGTERM drains and exits 0 well within the drain bound, and a drain
 * stuck in a commit that never returns is cut at the bound with exit 1. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "ka_validate.h"

#define PARTITIONS 3
#define GOOD 30
#define BAD_DECODE 3
#define BAD_MISSING 2
#define DRAIN_BOUND_MS 20000 /* ka_worker.c: DRAIN_MAX_MS */

static const char *worker_path;

typedef struct fixture {
    ka_config_t *cfg;
    ka_pg_t *pg;
    ka_producer_t *kp;
    char in_topic[128], echo_topic[128], dlq_topic[128], group[128];
    int produced;
    pid_t worker;
    int port;
} fixture_t;

static fixture_t fx;

/* HTTP ------------------------------------------------------------------------ */

/* Polls `path` until it answers `want` (or timeout_ms); returns the last
 * reply (body may be NULL). */
static it_reply_t http_wait(int port, const char *path, int want, int timeout_ms)
{
    it_reply_t r = {0, NULL};
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        free(r.body);
        r = it_http_get(port, path);
        if (r.status == want)
            break;
        usleep(100 * 1000);
    }
    return r;
}

/* The text format -------------------------------------------------------------- */

/* The value of the sample line that starts with `series` (name and labels
 * exactly as rendered), or -1 when there is none. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
    return -1;
}

static int name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Checks every line against the exposition format 0.0.4: HELP/TYPE comments,
 * then samples `name{label="value",...} value` whose family has a TYPE. */
static void assert_valid_exposition(const char *text)
{
    char typed[200][128];
    size_t ntyped = 0;
    char *copy = strdup(text), *save = NULL;
    assert_true(text[0] && text[strlen(text) - 1] == '\n');
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0)
            continue;
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[128], type[32];
            assert_int_equal(sscanf(line + 7, "%127s %31s", name, type), 2);
            assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                        strcmp(type, "histogram") == 0);
            assert_true(ntyped < 200);
            snprintf(typed[ntyped++], sizeof typed[0], "%s", name);
            continue;
        }
        const char *p = line;
        assert_true(name_char(*p, 1));
        while (name_char(*p, 0))
            p++;
        size_t nlen = (size_t)(p - line);
        int known = 0;
        for (size_t i = 0; i < ntyped && !known; i++) {
            size_t tl = strlen(typed[i]);
            known = (nlen == tl || (nlen > tl && line[tl] == '_' &&
                                    (strncmp(line + tl, "_bucket", nlen - tl) == 0 ||
                                     strncmp(line + tl, "_sum", nlen - tl) == 0 ||
                                     strncmp(line + tl, "_count", nlen - tl) == 0))) &&
                    strncmp(line, typed[i], tl) == 0;
        }
        if (!known)
            fail_msg("sample without a TYPE: %s", line);
        if (*p == '{') {
            p++;
            while (*p != '}') {
                assert_true(name_char(*p, 1) && *p != ':');
                while (name_char(*p, 0))
                    p++;
                assert_true(p[0] == '=' && p[1] == '"');
                p += 2;
                while (*p && *p != '"')
                    p += *p == '\\' ? 2 : 1;
                assert_true(*p == '"');
                p++;
                if (*p == ',')
                    p++;
                else
                    assert_true(*p == '}');
            }
            p++;
        }
        assert_true(*p == ' ');
        p++;
        char *end = NULL;
        if (strcmp(p, "+Inf") != 0 && strcmp(p, "-Inf") != 0 && strcmp(p, "NaN") != 0) {
            strtod(p, &end);
            if (end == p || *end != '\0')
                fail_msg("bad value in: %s", line);
        }
    }
    free(copy);
}

/* The worker ---------------------------------------------------------------- */

static pid_t spawn_probe(const char *topic, const char *group, int port)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("KA_TOPIC_VISIT", topic, 1);
        setenv("PROBE_ECHO_TOPIC", fx.echo_topic, 1);
        setenv("KA_TOPIC_DEADLETTER", fx.dlq_topic, 1);
        setenv("KA_CONSUMER_GROUP", group, 1);
        setenv("KA_BATCH_MAX_MS", "10", 1);
        setenv("KA_HTTP_ADDR", "127.0.0.1", 1);
        setenv("KA_HTTP_PORT", portstr, 1);
        execl(worker_path, worker_path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SIGTERM, then the exit status and how long the drain took. */
static int terminate(pid_t pid, int64_t *took_ms)
{
    int status = 0;
    int64_t t0 = now_ms();
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    *took_ms = now_ms() - t0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void produce(const char *topic, const char *event_id, const char *account, int garbage)
{
    static const char junk[] = "\xff\xff\xff not a protobuf";
    if (garbage) {
        it_produce(fx.kp, topic, account, junk, sizeof junk - 1);
    } else {
        uint8_t *buf;
        size_t len = it_visit_bytes(event_id, account, &buf);
        it_produce(fx.kp, topic, account, buf, len);
        free(buf);
    }
    fx.produced++;
}

static int setup(void **state)
{
    char err[KA_ERRSTR_SIZE];
    (void)state;
    fx.cfg = it_config("it-metrics");
    snprintf(fx.in_topic, sizeof fx.in_topic, "it.metrics.visit.%s", it_suffix());
    snprintf(fx.echo_topic, sizeof fx.echo_topic, "it.metrics.echo.%s", it_suffix());
    snprintf(fx.dlq_topic, sizeof fx.dlq_topic, "it.metrics.deadletter.%s", it_suffix());
    snprintf(fx.group, sizeof fx.group, "it-metrics-%s", it_suffix());
    const char *brokers = ka_config_str(fx.cfg, "KA_KAFKA_BROKERS");
    if (ka_kafka_create_topic(brokers, fx.in_topic, PARTITIONS, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, fx.echo_topic, 1, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, fx.dlq_topic, 1, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    fx.pg = it_pg(fx.cfg);
    fx.kp = it_producer(fx.cfg);
    return 0;
}

static int kill_leftover_worker(void **state)
{
    (void)state;
    if (fx.worker > 0) {
        kill(fx.worker, SIGKILL);
        waitpid(fx.worker, NULL, 0);
        fx.worker = 0;
    }
    return 0;
}

static int teardown(void **state)
{
    kill_leftover_worker(state);
    ka_producer_free(fx.kp);
    ka_pg_free(fx.pg);
    ka_config_free(fx.cfg);
    return 0;
}

static void metrics_count_what_was_sent_applied_and_dead_lettered(void **state)
{
    char series[512], id[64], acct[64];
    (void)state;
    fx.port = it_free_port();
    fx.worker = spawn_probe(fx.in_topic, fx.group, fx.port);

    it_reply_t r = http_wait(fx.port, "/healthz", 200, 30000);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    free(r.body);
    r = http_wait(fx.port, "/readyz", 200, 60000);
    if (r.status != 200)
        fail_msg("/readyz %d: %s", r.status, r.body ? r.body : "");
    assert_string_equal(r.body, "ready\n");
    free(r.body);

    /* "Account 0".."Account 7" land on all three partitions (CRC32 of the key). */
    for (int i = 0; i < GOOD; i++) {
        snprintf(id, sizeof id, "m-%d", i);
        snprintf(acct, sizeof acct, "Account %d", i % 8);
        produce(fx.in_topic, id, acct, 0);
        if (i % 10 == 3 && i / 10 < BAD_DECODE)
            produce(fx.in_topic, NULL, "Account 2", 1); /* decode_failed */
        if (i % 10 == 7 && i / 10 < BAD_MISSING)
            produce(fx.in_topic, "", "Account 3", 0); /* missing_field: no event id */
    }
    assert_int_equal(fx.produced, GOOD + BAD_DECODE + BAD_MISSING);
    long long sum = it_pg_wait(fx.pg,
                               "SELECT coalesce(sum(next_offset), 0) FROM consumer_offset "
                               "WHERE consumer_group = $1",
                               fx.group, fx.produced, 60000);
    assert_int_equal(sum, fx.produced);

    /* The counters move right after the commit the offsets came with. */
    char *text = NULL;
    for (int tries = 0; tries < 100; tries++) {
        free(text);
        r = it_http_get(fx.port, "/metrics");
        assert_int_equal(r.status, 200);
        text = r.body;
        if (sample(text, "ka_events_consumed_total") == fx.produced &&
            sample(text, "ka_events_applied_total") == GOOD)
            break;
        usleep(100 * 1000);
    }
    assert_valid_exposition(text);
    assert_true(sample(text, "ka_events_consumed_total") == fx.produced);
    assert_true(sample(text, "ka_events_applied_total") == GOOD);
    assert_true(sample(text, "ka_events_duplicate_total") == 0);
    assert_true(sample(text, "ka_events_dead_lettered_total{reason=\"decode_failed\"}") ==
                BAD_DECODE);
    assert_true(sample(text, "ka_events_dead_lettered_total{reason=\"missing_field\"}") ==
                BAD_MISSING);
    /* Every committed event had a Kafka timestamp; every transaction a size. */
    double batches = sample(text, "ka_batches_total");
    assert_true(batches >= 1);
    assert_true(sample(text, "ka_batch_size_events_count") == batches);
    assert_true(sample(text, "ka_batch_size_events_sum") == fx.produced);
    assert_true(sample(text, "ka_batch_processing_seconds_count") == batches);
    assert_true(sample(text, "ka_event_end_to_end_seconds_count") == fx.produced);
    assert_true(sample(text, "ka_event_end_to_end_seconds_bucket{le=\"+Inf\"}") == fx.produced);
    assert_true(sample(text, "ka_rollbacks_total") == 0);
    assert_true(sample(text, "ka_fenced_batches_total") == 0);
    assert_true(sample(text, "ka_cache_rebuilds_total{result=\"ok\"}") >= 1);
    assert_true(sample(text, "ka_pg_round_trip_seconds_count") > 0);
    assert_true(sample(text, "ka_redis_round_trip_seconds_count") > 0);
    assert_true(sample(text, "ka_assigned_partitions") == PARTITIONS);
    assert_true(sample(text, "ka_dependency_up{dependency=\"postgresql\"}") == 1);
    assert_true(sample(text, "ka_dependency_up{dependency=\"redis\"}") == 1);
    assert_true(sample(text, "ka_dependency_up{dependency=\"kafka\"}") == 1);
    assert_true(sample(text, "ka_ready") == 1);
    assert_true(sample(text, "ka_outbox_relay_leader") >= 0); /* another test's relay may lead */
    assert_true(sample(text, "ka_outbox_published_total") >= 0);
    snprintf(series, sizeof series, "ka_worker_info{service=\"probe-worker\",group=\"%s\"}",
             fx.group);
    assert_true(sample(text, series) == 1);
    /* No secret leaks: the DSN is never rendered. */
    assert_null(strstr(text, "dbname="));
    free(text);

    /* Lag from the high watermarks falls to 0 on every partition. */
    int zero = 0;
    for (int tries = 0; tries < 100 && zero < PARTITIONS; tries++) {
        r = it_http_get(fx.port, "/metrics");
        zero = 0;
        for (int p = 0; p < PARTITIONS; p++) {
            snprintf(series, sizeof series,
                     "ka_consumer_lag_messages{topic=\"%s\",partition=\"%d\"}", fx.in_topic, p);
            zero += sample(r.body, series) == 0;
        }
        free(r.body);
        if (zero < PARTITIONS)
            usleep(100 * 1000);
    }
    assert_int_equal(zero, PARTITIONS);

    r = it_http_get(fx.port, "/readyz");
    assert_int_equal(r.status, 200);
    free(r.body);
    r = it_http_get(fx.port, "/healthz");
    assert_int_equal(r.status, 200);
    free(r.body);
    r = it_http_get(fx.port, "/nothing-here");
    assert_int_equal(r.status, 404);
    free(r.body);

    int64_t took;
    int code = terminate(fx.worker, &took);
    fx.worker = 0;
    print_message("SIGTERM drain took %lld ms\n", (long long)took);
    assert_int_equal(code, 0);
    assert_true(took < DRAIN_BOUND_MS);
    /* The endpoint went with the process. */
    r = it_http_get(fx.port, "/healthz");
    assert_int_equal(r.status, 0);
}

static void readyz_is_503_with_a_reason_without_partitions(void **state)
{
    char topic[160], group[160];
    (void)state;
    /* Subscribed to a topic that does not exist: connected, but nothing to own. */
    snprintf(topic, sizeof topic, "it.metrics.absent.%s", it_suffix());
    snprintf(group, sizeof group, "it-metrics-absent-%s", it_suffix());
    fx.port = it_free_port();
    fx.worker = spawn_probe(topic, group, fx.port);
    it_reply_t r = http_wait(fx.port, "/healthz", 200, 30000);
    assert_int_equal(r.status, 200);
    free(r.body);
    /* Give the consumer time to connect and find nothing to own. */
    int saw_partition_reason = 0;
    for (int tries = 0; tries < 100 && !saw_partition_reason; tries++) {
        r = it_http_get(fx.port, "/readyz");
        assert_int_equal(r.status, 503);
        assert_non_null(r.body);
        saw_partition_reason = strstr(r.body, "no partition assigned") != NULL &&
                               strstr(r.body, "kafka not connected") == NULL;
        free(r.body);
        if (!saw_partition_reason)
            usleep(100 * 1000);
    }
    assert_true(saw_partition_reason);
    r = it_http_get(fx.port, "/metrics");
    assert_int_equal(r.status, 200);
    assert_true(sample(r.body, "ka_ready") == 0);
    assert_true(sample(r.body, "ka_assigned_partitions") == 0);
    free(r.body);
    int64_t took;
    int code = terminate(fx.worker, &took);
    fx.worker = 0;
    assert_int_equal(code, 0);
    assert_true(took < DRAIN_BOUND_MS);
}

static void a_drain_stuck_in_a_commit_is_cut_at_the_bound(void **state)
{
    char topic[160], group[160];
    (void)state;
    snprintf(topic, sizeof topic, "it.metrics.stuck.%s", it_suffix());
    snprintf(group, sizeof group, "it-metrics-stuck-%s", it_suffix());
    char err[KA_ERRSTR_SIZE], sql[512];
    if (ka_kafka_create_topic(ka_config_str(fx.cfg, "KA_KAFKA_BROKERS"), topic, 1, err,
                              sizeof err) != KA_OK)
        fail_msg("%s", err);
    fx.port = it_free_port();
    fx.worker = spawn_probe(topic, group, fx.port);
    it_reply_t r = http_wait(fx.port, "/readyz", 200, 60000);
    assert_int_equal(r.status, 200);
    free(r.body);

    /* An open transaction holds the row the probe will insert: its commit
     * waits for this lock, and the lock is never released while it runs. */
    ka_pg_t *blocker = it_pg(fx.cfg);
    snprintf(sql, sizeof sql,
             "BEGIN; INSERT INTO ingest_probe (consumer_group, event_id, topic, partition, "
             "\"offset\", payload_kind) VALUES ('%s', 'stuck-1', 'x', 0, 0, 'x')",
             group);
    if (ka_pg_exec(blocker, sql, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    produce(topic, "stuck-1", "Account 1", 0);
    /* ($1 only because it_pg_wait passes one parameter.) */
    long long waiting = it_pg_wait(fx.pg,
                                   "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type "
                                   "= 'Lock' AND query LIKE '%ingest_probe%' AND $1 <> ''",
                                   group, 1, 30000);
    assert_true(waiting >= 1);
    r = it_http_get(fx.port, "/healthz"); /* stuck, but not for minutes: still alive */
    assert_int_equal(r.status, 200);
    free(r.body);

    int64_t took;
    int code = terminate(fx.worker, &took);
    fx.worker = 0;
    print_message("stuck drain ended after %lld ms with exit code %d\n", (long long)took, code);
    assert_int_equal(code, 1);
    assert_true(took >= DRAIN_BOUND_MS - 500 && took < DRAIN_BOUND_MS + 3000);
    ka_pg_rollback(blocker);
    ka_pg_free(blocker);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PROBE_WORKER\n", argv[0]);
        return 2;
    }
    worker_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(metrics_count_what_was_sent_applied_and_dead_lettered,
                                  kill_leftover_worker),
        cmocka_unit_test_teardown(readyz_is_503_with_a_reason_without_partitions,
                                  kill_leftover_worker),
        cmocka_unit_test_teardown(a_drain_stuck_in_a_commit_is_cut_at_the_bound,
                                  kill_leftover_worker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

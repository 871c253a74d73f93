/* The alert bridge posting to a cluster of two live Alertmanagers (0.25,
 * each on its own loopback port with its own data, no gossip: each notifies
 * on its own, so the webhook receiver tells them apart by the external URL
 * each notification carries):
 *   - both receive every alert and notify the team's manager;
 *   - one stopped is retried with back-off (a few failed posts in seconds,
 *     not one a round), shows in /metrics (failed posts, up 0), keeps
 *     /readyz ready while the other answers, blocks nothing: the other still
 *     gets new alerts and the offsets move on;
 *   - with none answering, nothing is committed, /readyz says why, /healthz
 *     stays up, the bridge keeps running; each Alertmanager that comes back
 *     (its state wiped) gets the whole firing set, and only then is the
 *     offset committed;
 *   - /metrics reports posts, failures, the firing set's size as PostgreSQL
 *     holds it, and which Alertmanagers are reachable;
 *   - SIGTERM drains: an alert read but not yet posted (its batch would wait
 *     a minute) is posted and committed before the bridge exits 0.
 * Offsets are read from Kafka (the group's committed offset) with librdkafka. */
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_alert.h"
#include "it_util.h"
#include "ka/v1/alert.pb-c.h"
#include "ka_validate.h"

static const char *bridge_bin, *kactl;
static ka_config_t *cfg;
static ka_pg_t *pg;
static ka_producer_t *kp;
static rd_kafka_t *rk;
static char dir[64], topic[128], dlq_topic[128], group[128], prefix[96];
static int am_port[2], http_port;
static pid_t am_pid[2], bridge_pid;
static const char *am_name[2] = {"am0", "am1"};

#define TEAM_MANAGER "/u-ind-east-t1"
#define REP "rep-ind-east-t1-05"

static void am_up(int i)
{
    /* Started again with its data wiped: it has lost every alert. */
    am_pid[i] = it_am_start(dir, am_name[i], am_port[i], 1);
}

static void am_url(char *out, size_t len, int i)
{
    snprintf(out, len, "http://127.0.0.1:%d", am_port[i]);
}

static void bridge_start(const char *batch_ms, const char *resend_ms)
{
    static char s_urls[128], s_topic[160], s_dlq[160], s_group[160], s_dsn[512], s_port[40],
        s_batch[40], s_resend[40];
    snprintf(s_urls, sizeof s_urls, "KA_ALERTMANAGER_URLS=http://127.0.0.1:%d,http://127.0.0.1:%d",
             am_port[0], am_port[1]);
    snprintf(s_topic, sizeof s_topic, "KA_TOPIC_ALERT=%s", topic);
    snprintf(s_dlq, sizeof s_dlq, "KA_TOPIC_DEADLETTER=%s", dlq_topic);
    snprintf(s_group, sizeof s_group, "KA_CONSUMER_GROUP=%s", group);
    snprintf(s_port, sizeof s_port, "KA_HTTP_PORT=%d", http_port);
    snprintf(s_batch, sizeof s_batch, "KA_BATCH_MAX_MS=%s", batch_ms);
    snprintf(s_resend, sizeof s_resend, "KA_ALERT_RESEND_MS=%s", resend_ms);
    char *dsn = it_role_dsn(ka_config_str(cfg, "KA_PG_DSN"), "ka_alert_bridge");
    snprintf(s_dsn, sizeof s_dsn, "KA_PG_DSN=%s", dsn);
    free(dsn);
    const char *settings[] = {s_urls,   s_topic,  s_dlq,
                              s_group,  s_dsn,    s_port,
                              s_batch,  s_resend, "KA_START_OFFSET=earliest",
                              "KA_RETRY_MAX_MS=1000", "KA_ALERTMANAGER_TIMEOUT_MS=1000", NULL};
    bridge_pid = it_spawn(bridge_bin, settings);
}

static void fire(const char *name, int firing)
{
    char fp[160];
    snprintf(fp, sizeof fp, "%s%s", prefix, name);
    it_alert(pg, kp, topic, fp, IT_STALLED, "warning", firing, IT_NODE, REP,
             ka_now_ms() - 60000);
}

/* "A\nB\n" from names "A B". */
static char *want(const char *names)
{
    char *copy = strdup(names), *save = NULL, *out = calloc(1, 4096);
    for (char *n = strtok_r(copy, " ", &save); n; n = strtok_r(NULL, " ", &save)) {
        strcat(out, prefix);
        strcat(out, n);
        strcat(out, "\n");
    }
    free(copy);
    return out;
}

/* Waits until Alertmanager i holds exactly `names` active. */
static void assert_holds(int i, const char *names, int timeout_ms)
{
    char *w = want(names), *got = NULL;
    for (int waited = 0;; waited += 100) {
        free(got);
        got = it_am_active(am_port[i], prefix);
        if (strcmp(got, w) == 0 || waited >= timeout_ms)
            break;
        usleep(100 * 1000);
    }
    if (strcmp(got, w) != 0)
        fail_msg("Alertmanager %s holds:\n%s\nwanted:\n%s", am_name[i], got, w);
    free(got);
    free(w);
}

/* The group's committed offset of the topic's one partition (-1: none). */
static long long committed(void)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0);
    long long off = -1;
    if (rd_kafka_committed(rk, l, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[0].offset >= 0)
        off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return off;
}

static long long wait_committed(long long want_off, int timeout_ms)
{
    long long got = committed();
    for (int waited = 0; got != want_off && waited < timeout_ms; waited += 200) {
        usleep(200 * 1000);
        got = committed();
    }
    return got;
}

/* A sample of /metrics (-1 when absent or not served yet). */
static double metric(const char *name, const char *labels)
{
    it_reply_t r = it_http_get(http_port, "/metrics");
    double v = r.status == 200 ? it_metric(r.body, name, labels) : -1;
    free(r.body);
    return v;
}

static void am_label(char *out, size_t len, int i)
{
    snprintf(out, len, "alertmanager=\"http://127.0.0.1:%d\"", am_port[i]);
}

static double am_metric(const char *name, int i, const char *result)
{
    char labels[160];
    am_label(labels, sizeof labels, i);
    if (result) {
        size_t n = strlen(labels);
        snprintf(labels + n, sizeof labels - n, ",result=\"%s\"", result);
    }
    return metric(name, labels);
}

static double wait_metric(const char *name, int i, const char *result, double want_v,
                          int timeout_ms)
{
    double v = i < 0 ? metric(name, NULL) : am_metric(name, i, result);
    for (int waited = 0; v != want_v && waited < timeout_ms; waited += 100) {
        usleep(100 * 1000);
        v = i < 0 ? metric(name, NULL) : am_metric(name, i, result);
    }
    return v;
}

static int status_of(const char *path, char **body)
{
    it_reply_t r = it_http_get(http_port, path);
    if (body)
        *body = r.body;
    else
        free(r.body);
    return r.status;
}

static void assert_running(void)
{
    assert_int_equal(waitpid(bridge_pid, NULL, WNOHANG), 0);
}

/* Tests ------------------------------------------------------------------- */

static void both_alertmanagers_receive_every_alert(void **state)
{
    char fp[160], url[64];
    (void)state;
    fire("a", 1);
    snprintf(fp, sizeof fp, "%sa", prefix);
    for (int i = 0; i < 2; i++) {
        am_url(url, sizeof url, i);
        if (it_hook_wait(TEAM_MANAGER, url, fp, "firing", 15000) == 0)
            fail_msg("no notification of %s from %s", fp, am_name[i]);
        assert_holds(i, "a", 5000);
    }
    assert_int_equal(wait_committed(1, 10000), 1);
    assert_int_equal(status_of("/healthz", NULL), 200);
    assert_int_equal(status_of("/readyz", NULL), 200);
}

static void a_stopped_alertmanager_is_retried_with_backoff_and_blocks_nothing(void **state)
{
    char fp[160], url[64];
    (void)state;
    it_am_kill(&am_pid[1]);
    fire("b", 1);
    /* the other one still gets it, and the offset moves on */
    snprintf(fp, sizeof fp, "%sb", prefix);
    am_url(url, sizeof url, 0);
    assert_true(it_hook_wait(TEAM_MANAGER, url, fp, "firing", 10000) > 0);
    assert_holds(0, "a b", 5000);
    assert_int_equal(wait_committed(2, 10000), 2);
    /* it shows: down, failed posts */
    assert_true(wait_metric("ka_alert_bridge_alertmanager_up", 1, NULL, 0, 10000) == 0);
    assert_true(am_metric("ka_alert_bridge_alertmanager_up", 0, NULL) == 1);
    /* back-off: the retries double up to KA_RETRY_MAX_MS (1 s), so a few in
     * 3 s; tried every round (50 ms) it would be some 60 */
    double f1 = am_metric("ka_alert_bridge_posts_total", 1, "failed");
    sleep(3);
    double f2 = am_metric("ka_alert_bridge_posts_total", 1, "failed");
    assert_true(f1 >= 1);
    if (f2 - f1 < 1 || f2 - f1 > 8)
        fail_msg("%.0f failed posts in 3 s to the stopped Alertmanager", f2 - f1);
    assert_true(am_metric("ka_alert_bridge_posts_total", 0, "ok") >= 2);
    assert_true(am_metric("ka_alert_bridge_alerts_posted_total", 0, NULL) >= 2);
    /* one answering is enough to be ready */
    assert_int_equal(status_of("/readyz", NULL), 200);
    assert_running();
}

static void with_none_answering_nothing_is_committed_until_one_is_back(void **state)
{
    char *body = NULL, fp[160], url[64];
    (void)state;
    it_am_kill(&am_pid[0]);
    double read = metric("ka_alert_bridge_events_total", NULL);
    fire("c", 1);
    assert_true(wait_metric("ka_alert_bridge_events_total", -1, NULL, read + 1, 10000) ==
                read + 1);
    sleep(2);
    assert_int_equal(committed(), 2);
    assert_true(metric("ka_alert_bridge_pending", NULL) >= 1);
    assert_true(metric("ka_alert_bridge_flush_failures_total", NULL) >= 1);
    assert_true(am_metric("ka_alert_bridge_alertmanager_up", 0, NULL) == 0);
    assert_int_equal(status_of("/readyz", &body), 503);
    assert_non_null(strstr(body, "no Alertmanager reachable"));
    free(body);
    assert_int_equal(status_of("/healthz", NULL), 200);
    assert_running();
    /* the first back, wiped: the whole firing set, then the commit */
    am_up(0);
    assert_holds(0, "a b c", 15000);
    assert_int_equal(wait_committed(3, 10000), 3);
    assert_int_equal(status_of("/readyz", NULL), 200);
    /* the second back, wiped: the whole firing set too */
    am_up(1);
    assert_holds(1, "a b c", 15000);
    snprintf(fp, sizeof fp, "%sc", prefix);
    am_url(url, sizeof url, 1);
    assert_true(it_hook_wait(TEAM_MANAGER, url, fp, "firing", 10000) > 0);
    assert_true(wait_metric("ka_alert_bridge_alertmanager_up", 1, NULL, 1, 5000) == 1);
    assert_running();
}

static void metrics_report_the_firing_set_as_postgresql_holds_it(void **state)
{
    (void)state;
    /* Other tests may change alert_state meanwhile: the gauge follows
     * within a re-send (1 s here). */
    double gauge = -1;
    long long db = -2;
    for (int i = 0; i < 100 && gauge != (double)db; i++) {
        db = it_pg_int(pg, "SELECT count(*) FROM alert_delivery WHERE status = $1", "firing");
        gauge = metric("ka_alert_bridge_firing", NULL);
        if (gauge != (double)db)
            usleep(100 * 1000);
    }
    assert_true(db >= 3);
    assert_true(gauge == (double)db);
    assert_true(metric("ka_alert_bridge_resends_total", NULL) >= 1);
}

static void sigterm_drains_what_was_read(void **state)
{
    (void)state;
    it_stop(bridge_pid, SIGTERM);
    /* A batch that would wait a minute, no periodic re-send: only the drain
     * can post what is read now. */
    bridge_start("60000", "3600000");
    assert_true(wait_metric("ka_alert_bridge_resends_total", -1, NULL, 1, 15000) == 1);
    fire("a", 0);
    assert_true(wait_metric("ka_alert_bridge_pending", -1, NULL, 1, 10000) == 1);
    assert_holds(0, "a b c", 0); /* not posted yet */
    assert_int_equal(committed(), 3);
    it_stop(bridge_pid, SIGTERM); /* exits 0 */
    bridge_pid = 0;
    assert_holds(0, "b c", 0);
    assert_holds(1, "b c", 0);
    assert_int_equal(committed(), 4);
}

static int setup(void **state)
{
    char err[KA_ERRSTR_SIZE], errstr[512];
    (void)state;
    it_open("test-alert-cluster", &cfg, &pg, &kp);
    snprintf(topic, sizeof topic, "ka.alert.v1.%s", it_suffix());
    snprintf(dlq_topic, sizeof dlq_topic, "ka.deadletter.v1.%s", it_suffix());
    snprintf(group, sizeof group, "ka-alert-bridge-%s", it_suffix());
    snprintf(prefix, sizeof prefix, "test/cluster-%s-", it_suffix());
    const char *brokers = ka_config_str(cfg, "KA_KAFKA_BROKERS");
    if (ka_kafka_create_topic(brokers, topic, 1, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, dlq_topic, 1, err, sizeof err) != KA_OK)
        fail_msg("topics: %s", err);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr))
        fail_msg("%s", errstr);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    assert_non_null(rk);
    snprintf(dir, sizeof dir, "/tmp/ka-cluster-XXXXXX");
    assert_non_null(mkdtemp(dir));
    int hook_port = it_hook_start();
    const char *users[] = {"u-hs", "u-div-ind", "u-ind-east", "u-ind-east-t1"};
    it_am_config(kactl, dir, hook_port, users, sizeof users / sizeof users[0]);
    for (int i = 0; i < 2; i++) {
        am_port[i] = it_free_port();
        am_up(i);
    }
    http_port = it_free_port();
    bridge_start("10", "1000");
    for (int i = 0; i < 100 && status_of("/readyz", NULL) != 200; i++)
        usleep(100 * 1000);
    assert_int_equal(status_of("/readyz", NULL), 200);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (bridge_pid > 0)
        it_stop(bridge_pid, SIGTERM);
    for (int i = 0; i < 2; i++)
        it_am_kill(&am_pid[i]);
    it_hook_stop();
    if (rk)
        rd_kafka_destroy(rk);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    it_close(cfg, pg, kp);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s KA_ALERT_BRIDGE KACTL\n", argv[0]);
        return 2;
    }
    bridge_bin = argv[1];
    kactl = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(both_alertmanagers_receive_every_alert),
        cmocka_unit_test(a_stopped_alertmanager_is_retried_with_backoff_and_blocks_nothing),
        cmocka_unit_test(with_none_answering_nothing_is_committed_until_one_is_back),
        cmocka_unit_test(metrics_report_the_firing_set_as_postgresql_holds_it),
        cmocka_unit_test(sigterm_drains_what_was_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

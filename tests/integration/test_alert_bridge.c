/* The alert bridge against a real Alertmanager (0.25, started here on a free
 * loopback port with the routes kactl alertmanager-config writes from the
 * sample org tree) and a webhook receiver in this process (loopback only),
 * one URL path per manager:
 *   - a team's alerts reach exactly its manager's receiver, grouped, and
 *     their resolve reaches it too;
 *   - a critical alert also reaches the region head;
 *   - a silence made with amtool suppresses an alert;
 *   - a critical churn_risk on an account inhibits its visit_overdue;
 *   - malformed events are dead-lettered with their reason;
 *   - a second Alertmanager URL that never answers holds nothing up;
 *   - the bridge SIGKILLed mid-stream and Alertmanager restarted with its
 *     data wiped still end with exactly the firing set PostgreSQL holds.
 * Alerts are written to alert_state as the workers would (the bridge reads
 * the state; the event says which alert changed), with fingerprints unique
 * to this run, and every check looks at those alerts only. */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_alert.h"
#include "it_util.h"
#include "ka/v1/alert.pb-c.h"
#include "ka_buf.h"
#include "ka_validate.h"

static const char *bridge_bin, *kactl;
static ka_config_t *cfg;
static ka_pg_t *pg;
static ka_producer_t *kp;
static char dir[64], topic[128], dlq_topic[128], group[128];
static int am_port, hook_port, dead_port;
static pid_t am_pid, bridge_pid;

/* Processes --------------------------------------------------------------- */

static int sh(const char *cmd, char *out, size_t len)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    return it_sh(full, out, len);
}

static void am_start(int wipe)
{
    am_pid = it_am_start(dir, "am", am_port, wipe);
}

static void am_kill(void)
{
    it_am_kill(&am_pid);
}

static int count_notes(const char *path, const char *fp, const char *status, size_t *most,
                       const char *sfx)
{
    return it_hook_count(path, NULL, fp, status, most, sfx);
}

static int wait_notes(const char *path, const char *fp, const char *status, int timeout_ms)
{
    return it_hook_wait(path, NULL, fp, status, timeout_ms);
}

static void bridge_start(void)
{
    static char s_urls[128], s_topic[160], s_dlq[160], s_group[160], s_dsn[512];
    /* A cluster of two whose second member never answers: posts to it back
     * off and never hold up the first. */
    snprintf(s_urls, sizeof s_urls, "KA_ALERTMANAGER_URLS=http://127.0.0.1:%d,http://127.0.0.1:%d",
             am_port, dead_port);
    snprintf(s_topic, sizeof s_topic, "KA_TOPIC_ALERT=%s", topic);
    snprintf(s_dlq, sizeof s_dlq, "KA_TOPIC_DEADLETTER=%s", dlq_topic);
    snprintf(s_group, sizeof s_group, "KA_CONSUMER_GROUP=%s", group);
    /* As its own least-privilege role (0018_alert_bridge.sql). */
    char *dsn = it_role_dsn(ka_config_str(cfg, "KA_PG_DSN"), "ka_alert_bridge");
    snprintf(s_dsn, sizeof s_dsn, "KA_PG_DSN=%s", dsn);
    free(dsn);
    const char *settings[] = {s_urls, s_topic, s_dlq, s_group, s_dsn,
                              "KA_START_OFFSET=earliest", "KA_ALERT_RESEND_MS=2000",
                              "KA_BATCH_MAX_MS=10", "KA_RETRY_MAX_MS=1000",
                              "KA_ALERT_LINK_URL=http://ka.example/view", NULL};
    bridge_pid = it_spawn(bridge_bin, settings);
}

/* Alerts ------------------------------------------------------------------ */

static const char *suffix(void)
{
    return it_suffix();
}

static void alert(const char *fp, const char *type, int proto_type, const char *severity,
                  int firing, const char *kind, int proto_kind, const char *subject,
                  int64_t starts_ms)
{
    it_alert(pg, kp, topic, fp, type, proto_type, severity, firing, kind, proto_kind, subject,
             starts_ms);
}

#define STALLED IT_STALLED
#define FUNNEL IT_FUNNEL
#define CHURN IT_CHURN
#define OVERDUE IT_OVERDUE
#define NODE IT_NODE
#define ACCOUNT IT_ACCOUNT

static void fp_of(char *out, size_t len, const char *name)
{
    snprintf(out, len, "test/%s-%s", name, suffix());
}

/* Tests ------------------------------------------------------------------- */

static void team_alerts_reach_exactly_its_manager_grouped_and_resolve(void **state)
{
    char a[128], b[128];
    (void)state;
    fp_of(a, sizeof a, "stall-1");
    fp_of(b, sizeof b, "stall-2");
    int64_t t0 = ka_now_ms() - 60000;
    alert(a, STALLED, "warning", 1, NODE, "rep-ind-east-t1-01", t0);
    alert(b, STALLED, "warning", 1, NODE, "rep-ind-east-t1-02", t0);
    assert_true(wait_notes("/u-ind-east-t1", a, "firing", 15000) > 0);
    assert_true(wait_notes("/u-ind-east-t1", b, "firing", 15000) > 0);
    /* grouped: one notification carries both (group_interval 1s) */
    size_t most = 0;
    for (int i = 0; i < 50 && most < 2; i++) {
        most = 0;
        count_notes("/u-ind-east-t1", NULL, "firing", &most, suffix());
        usleep(100 * 1000);
    }
    assert_int_equal(most, 2);
    /* nobody else: warnings stay with the team */
    assert_int_equal(count_notes(NULL, a, NULL, NULL, NULL),
                     count_notes("/u-ind-east-t1", a, NULL, NULL, NULL));
    alert(a, STALLED, "warning", 0, NODE, "rep-ind-east-t1-01", t0);
    assert_true(wait_notes("/u-ind-east-t1", a, "resolved", 15000) > 0);
}

static void critical_alerts_also_reach_the_region_head(void **state)
{
    char a[128];
    (void)state;
    fp_of(a, sizeof a, "funnel-crit");
    alert(a, FUNNEL, "critical", 1, NODE, "rep-ind-east-t1-03", ka_now_ms() - 1000);
    assert_true(wait_notes("/u-ind-east-t1", a, "firing", 15000) > 0);
    assert_true(wait_notes("/u-ind-east", a, "firing", 15000) > 0);
    assert_int_equal(count_notes("/u-div-ind", a, NULL, NULL, NULL), 0);
    /* the labels: the org path, the manager, the link */
    json_t *found = it_hook_alert(a);
    assert_non_null(found);
    json_t *labels = json_object_get(found, "labels");
    assert_string_equal(json_string_value(json_object_get(labels, "alertname")), "funnel_health");
    assert_string_equal(json_string_value(json_object_get(labels, "team")), "ind-east-t1");
    assert_string_equal(json_string_value(json_object_get(labels, "region")), "ind-east");
    assert_string_equal(json_string_value(json_object_get(labels, "division")), "div-ind");
    assert_string_equal(json_string_value(json_object_get(labels, "rep")), "rep-ind-east-t1-03");
    assert_string_equal(json_string_value(json_object_get(labels, "manager")), "u-ind-east-t1");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(found, "annotations"), "link")),
        "http://ka.example/view/node/rep-ind-east-t1-03");
    json_decref(found);
}

static void a_silence_made_with_amtool_suppresses(void **state)
{
    char a[128], cmd[1024], out[4096];
    (void)state;
    fp_of(a, sizeof a, "silenced");
    snprintf(cmd, sizeof cmd,
             "amtool --alertmanager.url=http://127.0.0.1:%d silence add fingerprint=%s "
             "--duration=1h --comment=test --author=test",
             am_port, a);
    if (sh(cmd, out, sizeof out) != 0)
        fail_msg("amtool silence add: %s", out);
    alert(a, STALLED, "warning", 1, NODE, "rep-ind-east-t2-01", ka_now_ms() - 1000);
    /* Alertmanager has it, suppressed */
    snprintf(cmd, sizeof cmd,
             "amtool --alertmanager.url=http://127.0.0.1:%d alert query --silenced "
             "fingerprint=%s -o simple",
             am_port, a);
    int seen = 0;
    for (int i = 0; i < 100 && !seen; i++) {
        assert_int_equal(sh(cmd, out, sizeof out), 0);
        seen = strstr(out, "stalled_opportunity") != NULL;
        usleep(100 * 1000);
    }
    assert_true(seen);
    sleep(2);
    assert_int_equal(count_notes(NULL, a, NULL, NULL, NULL), 0);
}

static void critical_churn_inhibits_the_accounts_overdue_visit(void **state)
{
    char churn[128], overdue[128], other[128], account[96], cmd[512];
    (void)state;
    snprintf(account, sizeof account, "acc-inhibit-%s", suffix());
    snprintf(cmd, sizeof cmd, "INSERT INTO account (id, canonical_key, display_name, owner_rep_id) "
                              "VALUES ($1, 'name:' || $1, $1, 'rep-ind-east-t1-04') RETURNING 1");
    assert_int_equal(it_pg_int(pg, cmd, account), 1);
    fp_of(churn, sizeof churn, "churn");
    fp_of(overdue, sizeof overdue, "overdue");
    fp_of(other, sizeof other, "overdue-other");
    alert(churn, CHURN, "critical", 1, ACCOUNT, account, ka_now_ms() - 1000);
    assert_true(wait_notes("/u-ind-east-t1", churn, "firing", 15000) > 0);
    alert(overdue, OVERDUE, "warning", 1, ACCOUNT, account, ka_now_ms() - 1000);
    /* a control: the same rule on an account without churn risk is delivered */
    alert(other, OVERDUE, "warning", 1, NODE, "rep-ind-east-t1-04", ka_now_ms() - 1000);
    assert_true(wait_notes("/u-ind-east-t1", other, "firing", 15000) > 0);
    sleep(2);
    assert_int_equal(count_notes(NULL, overdue, NULL, NULL, NULL), 0);
}

static void malformed_events_are_dead_lettered_with_their_reason(void **state)
{
    (void)state;
    it_produce(kp, topic, "bad-1", "\xff\xff\xff", 3);
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__AlertEvent ev = KA__V1__ALERT_EVENT__INIT;
    h.event_id = "bad-2";
    ev.header = &h;
    ev.alert_id = "x@1";
    ev.fingerprint = "x";
    ev.type = 99;
    ev.severity = KA__V1__SEVERITY__SEVERITY_WARNING;
    ev.status = KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING;
    ev.subject_kind = KA__V1__SUBJECT_KIND__SUBJECT_KIND_NODE;
    ev.subject_id = "n";
    ev.starts_at_ms = ka_now_ms();
    uint8_t buf[256];
    size_t len = ka__v1__alert_event__pack(&ev, buf);
    it_produce(kp, topic, "bad-2", buf, len);
    const char *q = "SELECT count(*) FROM dead_letter WHERE consumer_group = $1 AND reason IN "
                    "('decode_failed', 'unknown_enum_value')";
    assert_int_equal(it_pg_wait(pg, q, group, 2, 20000), 2);
    it_msgs_t msgs = it_consume_all(cfg, dlq_topic, 2, 10000);
    assert_int_equal(msgs.n, 2);
    char *reason = it_header(msgs.m[0], "ka_dlq_reason");
    assert_true(strcmp(reason, "decode_failed") == 0 || strcmp(reason, "unknown_enum_value") == 0);
    free(reason);
    it_free_msgs(&msgs);
    /* source_time is the Kafka record's timestamp (replay-stable), not the
     * time of the insert. */
    it_msgs_t src = it_consume_all(cfg, topic, 100000, 5000);
    int checked = 0;
    for (size_t i = 0; i < src.n; i++) {
        const ka_msg_t *m = src.m[i];
        if (!m->key || m->key_len != 5 || (memcmp(m->key, "bad-1", 5) != 0 &&
                                           memcmp(m->key, "bad-2", 5) != 0))
            continue;
        char part[16], off[24];
        snprintf(part, sizeof part, "%d", m->partition);
        snprintf(off, sizeof off, "%lld", (long long)m->offset);
        const char *args[] = {group, topic, part, off};
        long long ts = it_pg_int_args(
            pg,
            "SELECT (extract(epoch FROM source_time) * 1000)::bigint FROM dead_letter "
            "WHERE consumer_group = $1 AND source_topic = $2 AND source_partition = $3::int "
            "AND source_offset = $4::bigint",
            4, args);
        assert_int_equal(ts, m->timestamp_ms);
        checked++;
    }
    assert_int_equal(checked, 2);
    it_free_msgs(&src);
}

/* The kill test's fingerprints: test/kill-<suffix>-NN. */
static const char *kill_prefix(void)
{
    static char prefix[96];
    snprintf(prefix, sizeof prefix, "test/kill-%s-", suffix());
    return prefix;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct fps {
    char **v;
    size_t n;
} fps_t;

static int collect(void *ud, const ka_pgres_t *res)
{
    fps_t *f = ud;
    f->v = calloc((size_t)ka_pgres_rows(res) + 1, sizeof *f->v);
    for (int r = 0; r < ka_pgres_rows(res); r++)
        f->v[f->n++] = strdup(ka_pgres_value(res, r, 0));
    return 0;
}

static char *pg_firing(void)
{
    char err[KA_ERRSTR_SIZE];
    fps_t f = {0};
    ka_pg_param_t p[1] = {{kill_prefix(), 0, 0}};
    if (ka_pg_query(pg, "SELECT fingerprint FROM alert_state WHERE status = 'firing' AND "
                        "starts_with(fingerprint, $1)",
                    1, p, collect, &f, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    qsort(f.v, f.n, sizeof *f.v, cmp_str);
    ka_buf_t b = KA_BUF_INIT;
    for (size_t i = 0; i < f.n; i++) {
        ka_buf_append(&b, f.v[i], strlen(f.v[i]));
        ka_buf_append(&b, "\n", 1);
        free(f.v[i]);
    }
    free(f.v);
    char *s = strdup(ka_buf_str(&b));
    ka_buf_free(&b);
    return s;
}

static void kill_and_a_wiped_alertmanager_end_with_the_firing_set(void **state)
{
    (void)state;
    char fp[128];
    int64_t t0 = ka_now_ms() - 60000;
    /* 60 alerts fire; every third resolves again; the bridge is killed in
     * the middle of the stream */
    for (int i = 0; i < 60; i++) {
        snprintf(fp, sizeof fp, "%s%02d", kill_prefix(), i);
        alert(fp, STALLED, "warning", 1, NODE, "rep-ind-east-t3-01", t0);
        if (i == 30) {
            kill(bridge_pid, SIGKILL);
            waitpid(bridge_pid, NULL, 0);
            bridge_pid = 0;
        }
    }
    for (int i = 0; i < 60; i += 3) {
        snprintf(fp, sizeof fp, "%s%02d", kill_prefix(), i);
        alert(fp, STALLED, "warning", 0, NODE, "rep-ind-east-t3-01", t0);
    }
    am_kill();
    am_start(1); /* its alerts and silences are gone */
    bridge_start();
    char *want = pg_firing();
    assert_true(strlen(want) > 0);
    char *got = NULL;
    for (int i = 0; i < 150; i++) {
        free(got);
        got = it_am_active(am_port, kill_prefix());
        if (strcmp(got, want) == 0)
            break;
        usleep(100 * 1000);
    }
    if (strcmp(got, want) != 0)
        fail_msg("Alertmanager holds:\n%s\nPostgreSQL fires:\n%s", got, want);
    /* and stays so over a full re-send (KA_ALERT_RESEND_MS 2 s) */
    sleep(3);
    free(got);
    got = it_am_active(am_port, kill_prefix());
    assert_string_equal(got, want);
    free(got);
    free(want);
}

static int setup(void **state)
{
    char err[KA_ERRSTR_SIZE];
    (void)state;
    it_open("test-alert-bridge", &cfg, &pg, &kp);
    snprintf(topic, sizeof topic, "ka.alert.v1.%s", suffix());
    snprintf(dlq_topic, sizeof dlq_topic, "ka.deadletter.v1.%s", suffix());
    snprintf(group, sizeof group, "ka-alert-bridge-%s", suffix());
    const char *brokers = ka_config_str(cfg, "KA_KAFKA_BROKERS");
    if (ka_kafka_create_topic(brokers, topic, 3, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, dlq_topic, 1, err, sizeof err) != KA_OK)
        fail_msg("topics: %s", err);
    snprintf(dir, sizeof dir, "/tmp/ka-bridge-XXXXXX");
    assert_non_null(mkdtemp(dir));

    hook_port = it_hook_start();
    const char *users[] = {"u-hs", "u-div-ind", "u-ind-east", "u-ind-east-t1", "u-ind-east-t2",
                           "u-ind-east-t3"};
    it_am_config(kactl, dir, hook_port, users, sizeof users / sizeof users[0]);
    am_port = it_free_port();
    dead_port = it_free_port();
    am_start(1);
    bridge_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (bridge_pid > 0)
        it_stop(bridge_pid, SIGTERM);
    am_kill();
    it_hook_stop();
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
        cmocka_unit_test(team_alerts_reach_exactly_its_manager_grouped_and_resolve),
        cmocka_unit_test(critical_alerts_also_reach_the_region_head),
        cmocka_unit_test(a_silence_made_with_amtool_suppresses),
        cmocka_unit_test(critical_churn_inhibits_the_accounts_overdue_visit),
        cmocka_unit_test(malformed_events_are_dead_lettered_with_their_reason),
        cmocka_unit_test(kill_and_a_wiped_alertmanager_end_with_the_firing_set),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

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

/* The webhook receiver ------------------------------------------------------ */

typedef struct note {
    char *path; /* /<user id> */
    json_t *body;
} note_t;

static pthread_mutex_t notes_mu = PTHREAD_MUTEX_INITIALIZER;
static note_t notes[4096];
static size_t nnotes;
static struct MHD_Daemon *hook;

typedef struct upload {
    char *data;
    size_t len;
} upload_t;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)cls;
    (void)version;
    upload_t *u = *con_cls;
    if (!u) {
        *con_cls = calloc(1, sizeof *u);
        return MHD_YES;
    }
    if (*size) {
        u->data = realloc(u->data, u->len + *size + 1);
        memcpy(u->data + u->len, data, *size);
        u->len += *size;
        u->data[u->len] = '\0';
        *size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST") == 0 && u->data) {
        json_t *body = json_loadb(u->data, u->len, 0, NULL);
        pthread_mutex_lock(&notes_mu);
        if (body && nnotes < sizeof notes / sizeof notes[0])
            notes[nnotes++] = (note_t){strdup(url), body};
        else
            json_decref(body);
        pthread_mutex_unlock(&notes_mu);
    }
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

/* Notifications that reached `path` (NULL: any) carrying an alert of
 * fingerprint `fp` in `status` ("firing", "resolved"); *nalerts gets the
 * largest number of alerts of ours one such notification held. */
static int count_notes(const char *path, const char *fp, const char *status, size_t *most,
                       const char *suffix)
{
    int n = 0;
    pthread_mutex_lock(&notes_mu);
    for (size_t i = 0; i < nnotes; i++) {
        if (path && strcmp(notes[i].path, path) != 0)
            continue;
        json_t *alerts = json_object_get(notes[i].body, "alerts");
        size_t k, ours = 0;
        int hit = 0;
        json_t *a;
        json_array_foreach(alerts, k, a)
        {
            const char *f =
                json_string_value(json_object_get(json_object_get(a, "labels"), "fingerprint"));
            const char *st = json_string_value(json_object_get(a, "status"));
            if (f && suffix && strstr(f, suffix))
                ours++;
            if (f && (!fp || strcmp(f, fp) == 0) && (!status || (st && !strcmp(st, status))))
                hit = 1;
        }
        if (hit) {
            n++;
            if (most && ours > *most)
                *most = ours;
        }
    }
    pthread_mutex_unlock(&notes_mu);
    return n;
}

static int wait_notes(const char *path, const char *fp, const char *status, int timeout_ms)
{
    for (int waited = 0;; waited += 100) {
        int n = count_notes(path, fp, status, NULL, NULL);
        if (n > 0 || waited >= timeout_ms)
            return n;
        usleep(100 * 1000);
    }
}

/* Processes --------------------------------------------------------------- */

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static int sh(const char *cmd, char *out, size_t len)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    return it_sh(full, out, len);
}

static void am_start(int wipe)
{
    char cmd[512], out[4096], flag[256], data[128], config[128], listen[64];
    snprintf(data, sizeof data, "%s/am-data", dir);
    if (wipe) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", data);
        assert_int_equal(sh(cmd, out, sizeof out), 0);
    }
    snprintf(config, sizeof config, "--config.file=%s/am.yml", dir);
    snprintf(flag, sizeof flag, "--storage.path=%s", data);
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", am_port);
    am_pid = fork();
    assert_true(am_pid >= 0);
    if (am_pid == 0) {
        char log[128];
        snprintf(log, sizeof log, "%s/am.log", dir);
        if (!freopen(log, "a", stderr))
            _exit(126);
        execl("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager", config, flag, listen,
              "--cluster.listen-address=", "--log.level=warn", (char *)NULL);
        _exit(127);
    }
    snprintf(cmd, sizeof cmd, "curl -fsS -m 1 http://127.0.0.1:%d/-/ready", am_port);
    for (int i = 0; i < 100; i++) {
        if (sh(cmd, out, sizeof out) == 0)
            return;
        usleep(100 * 1000);
    }
    fail_msg("Alertmanager did not start: see %s/am.log", dir);
}

static void am_kill(void)
{
    if (am_pid > 0) {
        kill(am_pid, SIGKILL);
        waitpid(am_pid, NULL, 0);
        am_pid = 0;
    }
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

/* Writes the state row as a worker would, then its event. */
static void alert(const char *fp, const char *type, int proto_type, const char *severity,
                  int firing, const char *kind, int proto_kind, const char *subject,
                  int64_t starts_ms)
{
    char alert_id[256], starts[24], ends[24], ce_id[300];
    int64_t now = ka_now_ms();
    snprintf(alert_id, sizeof alert_id, "%s@%lld", fp, (long long)starts_ms);
    snprintf(starts, sizeof starts, "%lld", (long long)starts_ms);
    snprintf(ends, sizeof ends, "%lld", (long long)now);
    const char *args[] = {fp, alert_id, type, severity, firing ? "firing" : "resolved", kind,
                          subject, starts, firing ? NULL : ends};
    ka_pg_param_t p[9];
    for (int i = 0; i < 9; i++)
        p[i] = (ka_pg_param_t){args[i], 0, 0};
    char err[KA_ERRSTR_SIZE];
    if (ka_pg_query(pg,
                    "INSERT INTO alert_state (fingerprint, alert_id, type, severity, status, "
                    "subject_kind, subject_id, summary, details, starts_at, ends_at, "
                    "last_transition_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $3 || ' on ' || $7, "
                    "jsonb_build_object('subject', $7), to_timestamp($8::bigint / 1000.0), "
                    "to_timestamp($9::bigint / 1000.0), now()) ON CONFLICT (fingerprint) DO "
                    "UPDATE SET alert_id = EXCLUDED.alert_id, status = EXCLUDED.status, "
                    "starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, updated_at = now()",
                    9, p, NULL, NULL, err, sizeof err) != KA_OK)
        fail_msg("alert_state: %s", err);
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__AlertEvent ev = KA__V1__ALERT_EVENT__INIT;
    snprintf(ce_id, sizeof ce_id, "%s:%s", alert_id, firing ? "firing" : "resolved");
    h.event_id = ce_id;
    h.occurred_at_ms = now;
    h.producer = "ka";
    ev.header = &h;
    ev.alert_id = alert_id;
    ev.fingerprint = (char *)fp;
    ev.type = proto_type;
    ev.severity = strcmp(severity, "critical") == 0 ? KA__V1__SEVERITY__SEVERITY_CRITICAL
                                                    : KA__V1__SEVERITY__SEVERITY_WARNING;
    ev.status = firing ? KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING
                       : KA__V1__ALERT_STATUS__ALERT_STATUS_RESOLVED;
    ev.subject_kind = proto_kind;
    ev.subject_id = (char *)subject;
    ev.summary = "test";
    ev.starts_at_ms = starts_ms;
    ev.ends_at_ms = firing ? 0 : now;
    size_t len = ka__v1__alert_event__get_packed_size(&ev);
    uint8_t *buf = malloc(len + 1);
    ka__v1__alert_event__pack(&ev, buf);
    it_produce(kp, topic, fp, buf, len);
    free(buf);
}

#define STALLED "stalled_opportunity", KA__V1__ALERT_TYPE__ALERT_TYPE_STALLED_OPPORTUNITY
#define FUNNEL "funnel_health", KA__V1__ALERT_TYPE__ALERT_TYPE_FUNNEL_HEALTH
#define CHURN "churn_risk", KA__V1__ALERT_TYPE__ALERT_TYPE_CHURN_RISK
#define OVERDUE "visit_overdue", KA__V1__ALERT_TYPE__ALERT_TYPE_VISIT_OVERDUE
#define NODE "node", KA__V1__SUBJECT_KIND__SUBJECT_KIND_NODE
#define ACCOUNT "account", KA__V1__SUBJECT_KIND__SUBJECT_KIND_ACCOUNT

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
    pthread_mutex_lock(&notes_mu);
    json_t *found = NULL;
    for (size_t i = 0; i < nnotes && !found; i++) {
        size_t k;
        json_t *al;
        json_array_foreach(json_object_get(notes[i].body, "alerts"), k, al)
        {
            const char *f = json_string_value(
                json_object_get(json_object_get(al, "labels"), "fingerprint"));
            if (f && strcmp(f, a) == 0)
                found = al;
        }
    }
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
    pthread_mutex_unlock(&notes_mu);
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
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, newline-joined; frees the strings. */
static char *join_sorted(char **v, size_t n)
{
    ka_buf_t b = KA_BUF_INIT;
    qsort(v, n, sizeof *v, cmp_str);
    for (size_t i = 0; i < n; i++) {
        ka_buf_append(&b, v[i], strlen(v[i]));
        ka_buf_append(&b, "\n", 1);
        free(v[i]);
    }
    char *s = strdup(ka_buf_str(&b));
    ka_buf_free(&b);
    return s;
}

static int is_kill_fp(const char *fp)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "-%s", suffix());
    return fp && strncmp(fp, "test/kill-", 10) == 0 && strstr(fp, prefix);
}

/* The fingerprints of the kill test Alertmanager holds active (not
 * resolved: silenced and inhibited ones count too), from its API. */
static char *am_active(void)
{
    char cmd[512], *out = calloc(1, 1 << 20);
    snprintf(cmd, sizeof cmd,
             "curl -fsS -m 5 'http://127.0.0.1:%d/api/v2/alerts?active=true&silenced=true&"
             "inhibited=true&unprocessed=true'", am_port);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, (1 << 20) - 1, p);
    out[n] = '\0';
    pclose(p);
    json_t *arr = json_loads(out, 0, NULL);
    free(out);
    char **v = calloc(json_array_size(arr) + 1, sizeof *v);
    size_t nv = 0, i;
    json_t *a;
    json_array_foreach(arr, i, a)
    {
        const char *fp =
            json_string_value(json_object_get(json_object_get(a, "labels"), "fingerprint"));
        const char *st = json_string_value(json_object_get(json_object_get(a, "status"), "state"));
        if (is_kill_fp(fp) && st && strcmp(st, "active") == 0)
            v[nv++] = strdup(fp);
    }
    json_decref(arr);
    char *s = join_sorted(v, nv);
    free(v);
    return s;
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
        if (is_kill_fp(ka_pgres_value(res, r, 0)))
            f->v[f->n++] = strdup(ka_pgres_value(res, r, 0));
    return 0;
}

static char *pg_firing(void)
{
    char err[KA_ERRSTR_SIZE];
    fps_t f = {0};
    if (ka_pg_query(pg, "SELECT fingerprint FROM alert_state WHERE status = 'firing' AND "
                        "fingerprint LIKE 'test/kill-%'",
                    0, NULL, collect, &f, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    char *s = join_sorted(f.v, f.n);
    free(f.v);
    return s;
}

static void kill_and_a_wiped_alertmanager_end_with_the_firing_set(void **state)
{
    (void)state;
    char fp[128], name[32];
    int64_t t0 = ka_now_ms() - 60000;
    /* 60 alerts fire; every third resolves again; the bridge is killed in
     * the middle of the stream */
    for (int i = 0; i < 60; i++) {
        snprintf(name, sizeof name, "kill-%02d", i);
        fp_of(fp, sizeof fp, name);
        alert(fp, STALLED, "warning", 1, NODE, "rep-ind-east-t3-01", t0);
        if (i == 30) {
            kill(bridge_pid, SIGKILL);
            waitpid(bridge_pid, NULL, 0);
            bridge_pid = 0;
        }
    }
    for (int i = 0; i < 60; i += 3) {
        snprintf(name, sizeof name, "kill-%02d", i);
        fp_of(fp, sizeof fp, name);
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
        got = am_active();
        if (strcmp(got, want) == 0)
            break;
        usleep(100 * 1000);
    }
    if (strcmp(got, want) != 0)
        fail_msg("Alertmanager holds:\n%s\nPostgreSQL fires:\n%s", got, want);
    /* and stays so over a full re-send (KA_ALERT_RESEND_MS 2 s) */
    sleep(3);
    free(got);
    got = am_active();
    assert_string_equal(got, want);
    free(got);
    free(want);
}

static int setup(void **state)
{
    char err[KA_ERRSTR_SIZE], out[8192], cmd[1024], contacts[128];
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

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    hook = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_END);
    assert_non_null(hook);
    hook_port = MHD_get_daemon_info(hook, MHD_DAEMON_INFO_BIND_PORT)->port;

    snprintf(contacts, sizeof contacts, "%s/contacts.csv", dir);
    FILE *f = fopen(contacts, "w");
    assert_non_null(f);
    fprintf(f, "user_id,channel,address\n");
    const char *users[] = {"u-hs", "u-div-ind", "u-ind-east", "u-ind-east-t1", "u-ind-east-t2",
                           "u-ind-east-t3"};
    for (size_t i = 0; i < sizeof users / sizeof users[0]; i++)
        fprintf(f, "%s,webhook,http://127.0.0.1:%d/%s\n", users[i], hook_port, users[i]);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "%s alertmanager-config --contacts %s --out %s/am.yml --group-wait 0s "
             "--group-interval 1s --repeat-interval 1h",
             kactl, contacts, dir);
    if (sh(cmd, out, sizeof out) != 0)
        fail_msg("kactl alertmanager-config: %s", out);
    am_port = free_port();
    dead_port = free_port();
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
    if (hook)
        MHD_stop_daemon(hook);
    for (size_t i = 0; i < nnotes; i++) {
        free(notes[i].path);
        json_decref(notes[i].body);
    }
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

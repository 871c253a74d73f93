/* The alert bridge goes on reading while its posts run, and still commits
 * only what an Alertmanager accepted. Its only target is a stand-in
 * Alertmanager in the test (loopback only) that answers each post only when
 * the test lets it, so "a post is in flight" is a state the test holds:
 *   - an event sent while the bridge's first post (the firing set on its
 *     start) hangs is read at once (it used to wait, unread, for the post to
 *     end: up to the post's time-out);
 *   - its offset is not committed while the post that carries it hangs,
 *     nor when an earlier post (read before the event) is accepted; only
 *     when its own post is.
 * Offsets are read from Kafka (the group's committed offset) with librdkafka. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "it_alert.h"
#include "it_util.h"
#include "ka/v1/alert.pb-c.h"
#include "ka_validate.h"

#define REP "rep-ind-east-t1-05"
#define MAX_POSTS 256

static const char *bridge_bin;
static ka_config_t *cfg;
static ka_pg_t *pg;
static ka_producer_t *kp;
static rd_kafka_t *rk;
static char topic[128], dlq_topic[128], group[128], prefix[96];
static int http_port;
static pid_t bridge_pid;

/* The stand-in Alertmanager: each post's body, kept; answered (200) once
 * `released` passes its number, or at once when `stopping`. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char *posts[MAX_POSTS];
static int nposts, released, stopping, listen_fd, conn_fd = -1, am_port;
static pthread_t am_thread;

/* One HTTP request off fd: its body (malloc'd), NULL at the end of the
 * connection. Answers "Expect: 100-continue" as a server does. */
static char *read_request(int fd)
{
    static char buf[1 << 20];
    size_t len = 0;
    char *end = NULL;
    while (!(end = strstr(buf, "\r\n\r\n"))) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            return NULL;
        len += (size_t)n;
        buf[len] = '\0';
    }
    size_t head = (size_t)(end + 4 - buf), want = 0;
    const char *cl = strcasestr(buf, "content-length:");
    if (cl && cl < end)
        want = strtoul(cl + 15, NULL, 10);
    const char *ex = strcasestr(buf, "expect: 100-continue");
    if (ex && ex < end && len == head && send(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25, 0) < 0)
        return NULL;
    char *body = calloc(1, want + 1);
    size_t have = len - head < want ? len - head : want;
    memcpy(body, buf + head, have);
    while (have < want) {
        ssize_t n = recv(fd, body + have, want - have, 0);
        if (n <= 0) {
            free(body);
            return NULL;
        }
        have += (size_t)n;
    }
    buf[0] = '\0';
    return body;
}

static void *am_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_mutex_lock(&mu);
        conn_fd = fd;
        pthread_mutex_unlock(&mu);
        char *body;
        while ((body = read_request(fd))) {
            pthread_mutex_lock(&mu);
            int me = nposts < MAX_POSTS ? nposts++ : MAX_POSTS - 1;
            free(posts[me]);
            posts[me] = body;
            pthread_cond_broadcast(&cv);
            while (released <= me && !stopping)
                pthread_cond_wait(&cv, &mu);
            pthread_mutex_unlock(&mu);
            const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            if (send(fd, ok, strlen(ok), MSG_NOSIGNAL) < 0)
                break;
        }
        pthread_mutex_lock(&mu);
        conn_fd = -1;
        pthread_mutex_unlock(&mu);
        close(fd);
    }
}

static void am_start(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(listen_fd >= 0);
    assert_int_equal(bind(listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(listen_fd, 8), 0);
    assert_int_equal(getsockname(listen_fd, (struct sockaddr *)&sa, &sl), 0);
    am_port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&am_thread, NULL, am_main, NULL), 0);
}

/* Every post answered from now on (the bridge's drain never hangs). */
static void am_answer_all(void)
{
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void am_stop(void)
{
    am_answer_all();
    pthread_mutex_lock(&mu);
    if (conn_fd >= 0)
        shutdown(conn_fd, SHUT_RDWR);
    pthread_mutex_unlock(&mu);
    shutdown(listen_fd, SHUT_RDWR);
    close(listen_fd);
    pthread_join(am_thread, NULL);
    for (int i = 0; i < MAX_POSTS; i++)
        free(posts[i]);
}

/* Waits until more than `seen` posts arrived; the number arrived. */
static int wait_posts(int seen, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    pthread_mutex_lock(&mu);
    while (nposts <= seen && pthread_cond_timedwait(&cv, &mu, &until) == 0)
        ;
    int n = nposts;
    pthread_mutex_unlock(&mu);
    return n;
}

/* Answers every post that arrived so far. */
static void release_all(void)
{
    pthread_mutex_lock(&mu);
    released = nposts;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static int post_holds(int i, const char *fp)
{
    pthread_mutex_lock(&mu);
    int yes = i < nposts && posts[i] && strstr(posts[i], fp) != NULL;
    pthread_mutex_unlock(&mu);
    return yes;
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

static double metric(const char *name)
{
    it_reply_t r = it_http_get(http_port, "/metrics");
    double v = r.status == 200 ? it_metric(r.body, name, NULL) : -1;
    free(r.body);
    return v;
}

static double wait_metric(const char *name, double want, int timeout_ms)
{
    double v = metric(name);
    for (int waited = 0; v != want && waited < timeout_ms; waited += 100) {
        usleep(100 * 1000);
        v = metric(name);
    }
    return v;
}

static void bridge_start(void)
{
    static char s_urls[96], s_topic[160], s_dlq[160], s_group[160], s_dsn[512], s_port[40];
    snprintf(s_urls, sizeof s_urls, "KA_ALERTMANAGER_URLS=http://127.0.0.1:%d", am_port);
    snprintf(s_topic, sizeof s_topic, "KA_TOPIC_ALERT=%s", topic);
    snprintf(s_dlq, sizeof s_dlq, "KA_TOPIC_DEADLETTER=%s", dlq_topic);
    snprintf(s_group, sizeof s_group, "KA_CONSUMER_GROUP=%s", group);
    snprintf(s_port, sizeof s_port, "KA_HTTP_PORT=%d", http_port);
    char *dsn = it_role_dsn(ka_config_str(cfg, "KA_PG_DSN"), "ka_alert_bridge");
    snprintf(s_dsn, sizeof s_dsn, "KA_PG_DSN=%s", dsn);
    free(dsn);
    /* Posts may hang for a minute: only the test ends them. */
    const char *settings[] = {s_urls, s_topic, s_dlq, s_group, s_dsn, s_port,
                              "KA_BATCH_MAX_MS=10", "KA_ALERT_RESEND_MS=3600000",
                              "KA_START_OFFSET=earliest", "KA_ALERTMANAGER_TIMEOUT_MS=60000",
                              NULL};
    bridge_pid = it_spawn(bridge_bin, settings);
}

/* Tests ------------------------------------------------------------------- */

static void reads_while_a_post_hangs_and_commits_only_what_was_accepted(void **state)
{
    (void)state;
    char fp[160];
    snprintf(fp, sizeof fp, "%sa", prefix);
    /* The firing set, posted on the bridge's start, hangs. */
    assert_true(wait_posts(0, 30000) >= 1);
    assert_false(post_holds(0, fp));
    it_alert(pg, kp, topic, fp, IT_STALLED, "warning", 1, IT_NODE, REP, ka_now_ms() - 60000);
    /* Read while the post hangs (it would hang a minute). */
    assert_true(wait_metric("ka_alert_bridge_events_total", 1, 20000) == 1);
    assert_true(metric("ka_alert_bridge_pending") == 1);
    assert_int_equal(committed(), -1);
    /* The firing set's posts answered: the event was not in them, so its
     * offset stays uncommitted; then the post that carries it hangs. */
    int n = 1, carrier = -1;
    for (int rounds = 0; carrier < 0 && rounds < 100; rounds++) {
        release_all();
        int before = n;
        n = wait_posts(n, 20000);
        if (n == before)
            break;
        for (int i = 0; i < n; i++)
            if (post_holds(i, fp))
                carrier = i;
    }
    assert_true(carrier >= 0);
    usleep(500 * 1000);
    assert_int_equal(committed(), -1);
    assert_true(metric("ka_alert_bridge_pending") == 1);
    /* Accepted: committed past it. */
    release_all();
    long long got = committed();
    for (int waited = 0; got != 1 && waited < 10000; waited += 200) {
        usleep(200 * 1000);
        got = committed();
    }
    assert_int_equal(got, 1);
    assert_true(wait_metric("ka_alert_bridge_pending", 0, 5000) == 0);
}

static int setup(void **state)
{
    char err[KA_ERRSTR_SIZE], errstr[512];
    (void)state;
    it_open("test-alert-pipeline", &cfg, &pg, &kp);
    snprintf(topic, sizeof topic, "ka.alert.v1.%s", it_suffix());
    snprintf(dlq_topic, sizeof dlq_topic, "ka.deadletter.v1.%s", it_suffix());
    snprintf(group, sizeof group, "ka-alert-bridge-%s", it_suffix());
    snprintf(prefix, sizeof prefix, "test/pipeline-%s-", it_suffix());
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
    am_start();
    http_port = it_free_port();
    bridge_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    am_answer_all();
    if (bridge_pid > 0)
        it_stop(bridge_pid, SIGTERM);
    am_stop();
    if (rk)
        rd_kafka_destroy(rk);
    it_close(cfg, pg, kp);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s KA_ALERT_BRIDGE\n", argv[0]);
        return 2;
    }
    bridge_bin = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_while_a_post_hangs_and_commits_only_what_was_accepted),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

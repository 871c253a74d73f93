#include <arpa/inet.h>
#include <errno.h>
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
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_log.h"
#include "ka_validate.h"

const char *it_suffix(void)
{
    static char suffix[64];
    if (!suffix[0]) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(suffix, sizeof suffix, "%ld%03ld-%d", (long)ts.tv_sec, ts.tv_nsec / 1000000,
                 (int)getpid());
    }
    return suffix;
}

size_t it_visit_bytes(const char *event_id, const char *account, uint8_t **out)
{
    Ka__V1__EventHeader header = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__VisitEvent ev = KA__V1__VISIT_EVENT__INIT;
    Ka__V1__AccountRef acct = KA__V1__ACCOUNT_REF__INIT;
    header.event_id = (char *)event_id;
    header.occurred_at_ms = ka_now_ms() - 1000;
    header.producer = "it";
    acct.name = (char *)account;
    ev.header = &header;
    ev.account = &acct;
    ev.rep_id = "rep-1";
    size_t len = ka__v1__visit_event__get_packed_size(&ev);
    *out = malloc(len + 1);
    assert_non_null(*out);
    ka__v1__visit_event__pack(&ev, *out);
    return len;
}

ka_config_t *it_config(const char *service)
{
    char err[KA_ERRSTR_SIZE];
    ka_config_t *cfg = ka_config_load(service, NULL, err, sizeof err);
    if (!cfg)
        fail_msg("config: %s", err);
    ka_log_init(service, ka_config_str(cfg, "KA_LOG_LEVEL"));
    return cfg;
}

ka_pg_t *it_pg(const ka_config_t *cfg)
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg)
        fail_msg("%s", err);
    return pg;
}

static int read_int(void *ud, const ka_pgres_t *res)
{
    *(long long *)ud = ka_pgres_rows(res) ? ka_pgres_int(res, 0, 0, -1) : -1;
    return 0;
}

long long it_pg_int_args(ka_pg_t *pg, const char *sql, int n, const char *const *args)
{
    char err[KA_ERRSTR_SIZE];
    long long v = -1;
    ka_pg_param_t p[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++)
        p[i] = (ka_pg_param_t){args[i], 0, 0};
    if (ka_pg_query(pg, sql, n, p, read_int, &v, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", sql, err);
    return v;
}

long long it_pg_int(ka_pg_t *pg, const char *sql, const char *p1)
{
    char err[KA_ERRSTR_SIZE];
    long long v = -1;
    ka_pg_param_t p = {p1, 0, 0};
    if (ka_pg_query(pg, sql, p1 ? 1 : 0, &p, read_int, &v, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", sql, err);
    return v;
}

long long it_pg_wait(ka_pg_t *pg, const char *sql, const char *p1, long long want,
                     int timeout_ms)
{
    long long v = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        v = it_pg_int(pg, sql, p1);
        if (v == want)
            break;
        usleep(50 * 1000);
    }
    return v;
}

static void on_delivery(void *ud, void *msg_opaque, ka_err_t status, int possibly,
                        const char *err)
{
    (void)ud;
    (void)possibly;
    (void)err;
    *(int *)msg_opaque = status == KA_OK ? 1 : -1;
}

ka_producer_t *it_producer(const ka_config_t *cfg)
{
    char err[KA_ERRSTR_SIZE];
    ka_producer_t *kp = ka_producer_new(cfg, on_delivery, NULL, err, sizeof err);
    if (!kp)
        fail_msg("%s", err);
    return kp;
}

void it_produce(ka_producer_t *kp, const char *topic, const char *key, const void *payload,
                size_t len)
{
    char err[KA_ERRSTR_SIZE];
    int done = 0;
    if (ka_producer_send(kp, topic, key, key ? strlen(key) : 0, payload, len, NULL, 0, &done,
                         err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    for (int i = 0; i < 300 && !done; i++)
        ka_producer_poll(kp, 100);
    if (done != 1)
        fail_msg("Kafka did not confirm a message to %s", topic);
}

static ka_err_t from_beginning(void *ud, ka_partition_t *parts, size_t n)
{
    (void)ud;
    for (size_t i = 0; i < n; i++)
        parts[i].offset = KA_OFFSET_BEGINNING;
    return KA_OK;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

it_msgs_t it_consume_all(const ka_config_t *base, const char *topic, size_t want, int timeout_ms)
{
    char err[KA_ERRSTR_SIZE], group[256];
    it_msgs_t r = {NULL, 0, NULL, it_config("it-reader")};
    snprintf(group, sizeof group, "it-reader-%s-%s", topic, it_suffix());
    ka_config_set(r.cfg, "KA_KAFKA_BROKERS", ka_config_str(base, "KA_KAFKA_BROKERS"), err,
                  sizeof err);
    ka_config_set(r.cfg, "KA_CONSUMER_GROUP", group, err, sizeof err);
    ka_consumer_hooks_t hooks = {NULL, from_beginning, NULL, NULL};
    const char *topics[] = {topic};
    r.kc = ka_consumer_new(r.cfg, topics, 1, &hooks, err, sizeof err);
    if (!r.kc)
        fail_msg("%s", err);
    r.m = calloc(want + 64, sizeof *r.m);
    /* Wall-clock time: a poll that returns a message at once must not spend
     * the budget of one that waited (a topic of hundreds of events would
     * otherwise be cut at timeout_ms / 100 messages). */
    long long start = now_ms(), last_msg = start;
    while (now_ms() - start < timeout_ms && r.n < want + 64) {
        ka_msg_t *m = NULL;
        if (ka_consumer_poll(r.kc, 100, &m, err, sizeof err) != KA_OK)
            fail_msg("%s", err);
        if (m) {
            r.m[r.n++] = m;
            last_msg = now_ms();
        }
        /* Past `want`, keep reading a little: extra messages are a bug to see. */
        if (r.n >= want && now_ms() - last_msg >= 500)
            break;
    }
    return r;
}

void it_free_msgs(it_msgs_t *msgs)
{
    for (size_t i = 0; i < msgs->n; i++)
        ka_msg_free(msgs->m[i]);
    free(msgs->m);
    ka_consumer_free(msgs->kc);
    ka_config_free(msgs->cfg);
}

size_t it_drop_resent(it_msgs_t *msgs)
{
    size_t kept = 0, dropped = 0;
    for (size_t i = 0; i < msgs->n; i++) {
        ka_msg_t *m = msgs->m[i];
        char *id = it_header(m, "ce_id");
        size_t first = kept;
        for (size_t k = 0; id[0] && k < kept; k++) {
            char *other = it_header(msgs->m[k], "ce_id");
            int same = strcmp(id, other) == 0;
            free(other);
            if (same) {
                first = k;
                break;
            }
        }
        free(id);
        if (first == kept) {
            msgs->m[kept++] = m;
            continue;
        }
        const ka_msg_t *f = msgs->m[first];
        assert_int_equal(m->len, f->len);
        assert_memory_equal(m->payload, f->payload, m->len);
        assert_int_equal(m->key_len, f->key_len);
        if (m->key_len)
            assert_memory_equal(m->key, f->key, m->key_len);
        ka_msg_free(m);
        dropped++;
    }
    msgs->n = kept;
    return dropped;
}

char *it_header(const ka_msg_t *m, const char *name)
{
    const void *v = NULL;
    size_t len = 0;
    if (ka_msg_header(m, name, &v, &len) != KA_OK)
        return strdup("");
    char *s = malloc(len + 1);
    memcpy(s, v, len);
    s[len] = '\0';
    return s;
}

const char *it_worker_role(const char *path)
{
    static const char *const workers[][2] = {
        {"opportunity-worker", "ka_opportunity_worker"},
        {"visit-worker", "ka_visit_worker"},
        {"order-worker", "ka_order_worker"},
        {"forecast-worker", "ka_forecast_worker"},
    };
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (size_t i = 0; i < sizeof workers / sizeof workers[0]; i++)
        if (strcmp(base, workers[i][0]) == 0)
            return workers[i][1];
    return NULL;
}

char *it_role_dsn(const char *dsn, const char *role)
{
    /* A keyword=value string: libpq takes the last of a repeated keyword. */
    if (strncmp(dsn, "postgres", 8) == 0)
        fail_msg("KA_PG_DSN must be keyword=value, not a URI, for the worker roles: %s", dsn);
    size_t n = strlen(dsn) + strlen(role) + 8;
    char *out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "%s user=%s", dsn, role);
    return out;
}

pid_t it_spawn(const char *path, const char *const *settings)
{
    const char *role = it_worker_role(path);
    char *dsn_setting = NULL;
    int has_dsn = 0;
    for (size_t i = 0; settings && settings[i]; i++)
        if (strncmp(settings[i], "KA_PG_DSN=", 10) == 0)
            has_dsn = 1;
    /* Workers run as their own least-privilege roles (0012_worker_roles.sql),
     * so a statement needing more than its grants fails the tests. */
    if (role && !has_dsn) {
        char err[KA_ERRSTR_SIZE];
        ka_config_t *cfg = ka_config_load("it", NULL, err, sizeof err);
        if (!cfg)
            fail_msg("config: %s", err);
        char *dsn = it_role_dsn(ka_config_str(cfg, "KA_PG_DSN"), role);
        size_t n = strlen(dsn) + 16;
        dsn_setting = malloc(n);
        assert_non_null(dsn_setting);
        snprintf(dsn_setting, n, "KA_PG_DSN=%s", dsn);
        free(dsn);
        ka_config_free(cfg);
    }
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        if (dsn_setting)
            putenv(dsn_setting);
        for (size_t i = 0; settings && settings[i]; i++)
            putenv((char *)settings[i]);
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    free(dsn_setting);
    return pid;
}

void it_stop(pid_t pid, int sig)
{
    int status = 0;
    kill(pid, sig);
    waitpid(pid, &status, 0);
    if (sig == SIGTERM && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fail_msg("worker %d did not drain cleanly on SIGTERM (status %d)", (int)pid, status);
}

void it_open(const char *service, ka_config_t **cfg, ka_pg_t **pg, ka_producer_t **kp)
{
    *cfg = it_config(service);
    *pg = it_pg(*cfg);
    *kp = it_producer(*cfg);
}

void it_close(ka_config_t *cfg, ka_pg_t *pg, ka_producer_t *kp)
{
    ka_producer_free(kp);
    ka_pg_free(pg);
    ka_config_free(cfg);
}

void it_kill_all(pid_t *pids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
            pids[i] = 0;
        }
}

it_reply_t it_http_get(int port, const char *path)
{
    it_reply_t r = {0, NULL};
    char req[256], buf[8192];
    char *all = NULL;
    size_t len = 0, cap = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return r;
    }
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0) {
        if (len + (size_t)got + 1 > cap) {
            cap = (len + (size_t)got + 1) * 2;
            all = realloc(all, cap);
        }
        memcpy(all + len, buf, (size_t)got);
        len += (size_t)got;
        all[len] = '\0';
    }
    close(fd);
    if (!all)
        return r;
    char *split = strstr(all, "\r\n\r\n");
    if (split && sscanf(all, "HTTP/1.%*d %d", &r.status) == 1)
        r.body = strdup(split + 4);
    else
        r.status = 0;
    free(all);
    return r;
}

int it_free_port(void)
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

int it_sh(const char *cmd, char *out, size_t len)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    char rest[4096];
    while (fread(rest, 1, sizeof rest, p) > 0)
        ;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void it_wait_group(ka_pg_t *pg, const char *group, long long want)
{
    long long got = it_pg_wait(pg,
                               "SELECT coalesce(sum(next_offset), 0) FROM consumer_offset "
                               "WHERE consumer_group = $1",
                               group, want, 90000);
    assert_int_equal(got, want);
}

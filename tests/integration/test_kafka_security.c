/* Kafka security settings against the stack's own listeners
 * (deploy/local/stack):
 * - SASL_PLAINTEXT (PLAIN, user "ka"): a worker process (the probe worker)
 *   reads and writes through it with its password from a file and processes
 *   an event end to end; with a wrong password it stops within seconds with a
 *   message that names the failure and not the password.
 * - SSL with client authentication (the development CA of <stack>/kafka/tls):
 *   the same end to end with the CA and a client certificate; with a CA
 *   that did not sign the broker's certificate the worker stops with the
 *   TLS failure. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "ka_validate.h"

#define SASL_USER "ka"
#define SASL_PASSWORD "ka-dev-sasl" /* the stack's development credential */
#define WRONG_PASSWORD "wrong-pw-61"

static const char *worker_path;

typedef struct fixture {
    ka_config_t *cfg; /* PLAINTEXT, for setting up and checking */
    ka_pg_t *pg;
    char sasl_brokers[128], tls_brokers[128];
    char ca[512], cert[512], key[512];
    char topic[128], echo[128], dlq[128], group[128];
    char pw_file[64];
} fixture_t;

static fixture_t fx;

/* Whether host:port accepts a TCP connection. */
static int listening(const char *hostport)
{
    char host[128];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host)
        return 0;
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return 1; /* a name: let the client resolve it and report */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* The address of one of the stack's listeners: from `var`, else the Kafka
 * port + `offset` (the stack's default); 0 when nothing listens there. */
static int listener(const char *var, int offset, const char *what, char *out, size_t len)
{
    const char *b = getenv(var);
    if (b && *b) {
        snprintf(out, len, "%s", b);
    } else {
        const char *plain = ka_config_str(fx.cfg, "KA_KAFKA_BROKERS");
        const char *colon = strrchr(plain, ':');
        if (!colon)
            return 0;
        snprintf(out, len, "%.*s:%d", (int)(colon - plain), plain, atoi(colon + 1) + offset);
    }
    if (!listening(out)) {
        fprintf(stderr, "nothing listens on %s, the stack's %s listener: a broker started "
                        "before the stack had one needs a restart (deploy/local/stack stop kafka "
                        "&& deploy/local/stack start kafka)\n", out, what);
        return 0;
    }
    return 1;
}

static int setup(void **state)
{
    (void)state;
    char err[KA_ERRSTR_SIZE];
    fx.cfg = it_config("test-kafka-security");
    fx.pg = it_pg(fx.cfg);
    if (!listener("KA_KAFKA_SASL_BROKERS", 2, "SASL", fx.sasl_brokers, sizeof fx.sasl_brokers) ||
        !listener("KA_KAFKA_TLS_BROKERS", 3, "TLS", fx.tls_brokers, sizeof fx.tls_brokers))
        return -1;
    const char *tls = getenv("KA_KAFKA_TLS_DIR");
    if (!tls || !*tls) {
        fprintf(stderr, "KA_KAFKA_TLS_DIR is not set: eval \"$(deploy/local/stack env)\"\n");
        return -1;
    }
    snprintf(fx.ca, sizeof fx.ca, "%s/ca.pem", tls);
    snprintf(fx.cert, sizeof fx.cert, "%s/client.pem", tls);
    snprintf(fx.key, sizeof fx.key, "%s/client.key", tls);
    snprintf(fx.topic, sizeof fx.topic, "it.sasl.%s", it_suffix());
    snprintf(fx.echo, sizeof fx.echo, "it.sasl.echo.%s", it_suffix());
    snprintf(fx.dlq, sizeof fx.dlq, "it.sasl.dlq.%s", it_suffix());
    snprintf(fx.group, sizeof fx.group, "it-sasl-%s", it_suffix());
    const char *brokers = ka_config_str(fx.cfg, "KA_KAFKA_BROKERS");
    const char *topics[] = {fx.topic, fx.echo, fx.dlq};
    for (size_t i = 0; i < 3; i++)
        if (ka_kafka_create_topic(brokers, topics[i], 1, err, sizeof err) != KA_OK) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
    snprintf(fx.pw_file, sizeof fx.pw_file, "/tmp/ka-sasl-pw-XXXXXX");
    int fd = mkstemp(fx.pw_file);
    if (fd < 0 || write(fd, SASL_PASSWORD "\n", sizeof SASL_PASSWORD) != (ssize_t)sizeof SASL_PASSWORD)
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(fx.pw_file);
    ka_pg_free(fx.pg);
    ka_config_free(fx.cfg);
    return 0;
}

extern char **environ;

/* A client config for this process: the environment with KEY=VALUE
 * `settings` over it, loaded as a deployment's is (a *_FILE key read). */
static ka_config_t *client_config(const char *const *settings, size_t n)
{
    char err[KA_ERRSTR_SIZE];
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **env = calloc(ne + n + 1, sizeof *env);
    assert_non_null(env);
    memcpy(env, environ, ne * sizeof *env);
    for (size_t i = 0; i < n; i++)
        env[ne + i] = (char *)settings[i];
    ka_config_t *cfg = ka_config_load_env("test-kafka-security", NULL, env, err, sizeof err);
    free(env);
    if (!cfg)
        fail_msg("config: %s", err);
    return cfg;
}

#define MAX_SETTINGS 8

/* Starts the probe worker with the connection `settings` (KEY=VALUE) on this
 * test's topics; its stderr goes to `log`. */
static pid_t start_worker(const char *const *settings, size_t n, const char *log)
{
    char s[MAX_SETTINGS + 4][600];
    assert_true(n <= MAX_SETTINGS);
    for (size_t i = 0; i < n; i++)
        snprintf(s[i], sizeof s[i], "%s", settings[i]);
    snprintf(s[n], sizeof s[n], "KA_TOPIC_VISIT=%s", fx.topic);
    snprintf(s[n + 1], sizeof s[n + 1], "KA_CONSUMER_GROUP=%s", fx.group);
    snprintf(s[n + 2], sizeof s[n + 2], "KA_TOPIC_DEADLETTER=%s", fx.dlq);
    snprintf(s[n + 3], sizeof s[n + 3], "PROBE_ECHO_TOPIC=%s", fx.echo);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, STDERR_FILENO);
        for (size_t i = 0; i < n + 4; i++)
            putenv(s[i]);
        execl(worker_path, worker_path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* One event produced by this process and applied and echoed by the worker,
 * both connected with `settings`; the echo is read back in plaintext. */
static void processes_an_event(const char *const *settings, size_t n, const char *what,
                               const char *brokers)
{
    char log[] = "/tmp/ka-kafka-security-log-XXXXXX";
    close(mkstemp(log));
    ka_config_t *pcfg = client_config(settings, n);
    ka_producer_t *kp = it_producer(pcfg);
    uint8_t *buf;
    char event_id[64];
    snprintf(event_id, sizeof event_id, "%s-%s", what, it_suffix());
    size_t len = it_visit_bytes(event_id, "Secured Account", &buf);
    it_produce(kp, fx.topic, "Secured Account", buf, len);
    free(buf);

    long long before = it_pg_int(fx.pg, "SELECT count(*) FROM ingest_probe WHERE consumer_group = $1",
                                 fx.group);
    pid_t pid = start_worker(settings, n, log);
    long long applied = it_pg_wait(fx.pg, "SELECT count(*) FROM ingest_probe WHERE consumer_group = $1",
                                   fx.group, before + 1, 60000);
    it_stop(pid, SIGTERM);
    if (applied != before + 1) {
        char *text = slurp(log);
        fail_msg("the worker applied %lld events over %s, want 1; its log:\n%s", applied - before,
                 what, text);
    }
    /* Its outbox relay published the echo through the same listener. */
    it_msgs_t echo = it_consume_all(fx.cfg, fx.echo, (size_t)before + 1, 20000);
    assert_int_equal(echo.n, before + 1);
    it_free_msgs(&echo);
    printf("%s: 1 event produced, applied and echoed over %s\n", what, brokers);
    ka_producer_free(kp);
    ka_config_free(pcfg);
    unlink(log);
}

/* The worker, connected with `settings`, must stop by itself within 30 s,
 * exit 1 and name `reason` in its log, which must not hold `secret`. */
static void stops_with_the_reason(const char *const *settings, size_t n, const char *what,
                                  const char *reason, const char *secret)
{
    char log[] = "/tmp/ka-kafka-security-log-XXXXXX";
    close(mkstemp(log));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = start_worker(settings, n, log);
    int status = 0, exited = 0;
    for (int i = 0; i < 300 && !exited; i++) { /* 30 s */
        exited = waitpid(pid, &status, WNOHANG) == pid;
        if (!exited) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("the worker kept running with %s", what);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    char *text = slurp(log);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 1)
        fail_msg("want exit status 1, got %d; log:\n%s", status, text);
    if (!strstr(text, reason))
        fail_msg("the log does not name \"%s\":\n%s", reason, text);
    if (secret)
        assert_null(strstr(text, secret));
    printf("%s: refused, worker stopped after %.1f s\n", what,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(text);
    unlink(log);
}

static void worker_processes_an_event_over_sasl(void **state)
{
    (void)state;
    char brokers[160], file[128];
    snprintf(brokers, sizeof brokers, "KA_KAFKA_BROKERS=%s", fx.sasl_brokers);
    snprintf(file, sizeof file, "KA_KAFKA_SASL_PASSWORD_FILE=%s", fx.pw_file);
    const char *s[] = {brokers, "KA_KAFKA_SECURITY_PROTOCOL=sasl_plaintext",
                       "KA_KAFKA_SASL_USERNAME=" SASL_USER, file};
    processes_an_event(s, 4, "sasl", fx.sasl_brokers);
}

static void wrong_password_stops_the_worker_with_the_reason(void **state)
{
    (void)state;
    char brokers[160];
    snprintf(brokers, sizeof brokers, "KA_KAFKA_BROKERS=%s", fx.sasl_brokers);
    const char *s[] = {brokers, "KA_KAFKA_SECURITY_PROTOCOL=sasl_plaintext",
                       "KA_KAFKA_SASL_USERNAME=" SASL_USER,
                       "KA_KAFKA_SASL_PASSWORD=" WRONG_PASSWORD};
    stops_with_the_reason(s, 4, "a wrong SASL password", "authentication failed",
                          WRONG_PASSWORD);
}

/* The TLS listener's settings: the client certificate and `ca` as the
 * trusted CA. */
typedef struct tls_settings {
    char brokers[160], ca[600], cert[600], key[600];
    const char *s[5];
} tls_settings_t;

static void tls_settings(tls_settings_t *t, const char *ca)
{
    snprintf(t->brokers, sizeof t->brokers, "KA_KAFKA_BROKERS=%s", fx.tls_brokers);
    snprintf(t->ca, sizeof t->ca, "KA_KAFKA_SSL_CA_LOCATION=%s", ca);
    snprintf(t->cert, sizeof t->cert, "KA_KAFKA_SSL_CERTIFICATE_LOCATION=%s", fx.cert);
    snprintf(t->key, sizeof t->key, "KA_KAFKA_SSL_KEY_LOCATION=%s", fx.key);
    const char *s[] = {t->brokers, "KA_KAFKA_SECURITY_PROTOCOL=ssl", t->ca, t->cert, t->key};
    memcpy(t->s, s, sizeof s);
}

static void worker_processes_an_event_over_tls(void **state)
{
    (void)state;
    tls_settings_t t;
    tls_settings(&t, fx.ca);
    processes_an_event(t.s, 5, "tls", fx.tls_brokers);
}

static void an_untrusted_broker_stops_the_worker_with_the_reason(void **state)
{
    (void)state;
    /* The client's own certificate as the only trusted CA: it did not sign
     * the broker's, so the broker cannot be verified. */
    tls_settings_t t;
    tls_settings(&t, fx.cert);
    stops_with_the_reason(t.s, 5, "a broker certificate it cannot verify", "Kafka TLS failed",
                          NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROBE_WORKER\n", argv[0]);
        return 2;
    }
    worker_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(worker_processes_an_event_over_sasl),
        cmocka_unit_test(wrong_password_stops_the_worker_with_the_reason),
        cmocka_unit_test(worker_processes_an_event_over_tls),
        cmocka_unit_test(an_untrusted_broker_stops_the_worker_with_the_reason),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

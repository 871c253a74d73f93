/* Kafka SASL: a worker process (the probe worker) reads and writes through
 * the stack's SASL_PLAINTEXT listener (deploy/local/stack, PLAIN, user "ka")
 * with its password from a file, and processes an event end to end; with a
 * wrong password it stops within seconds with a message that names the
 * failure and not the password. */
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
#include "ka/v1/visit.pb-c.h"
#include "ka_validate.h"

#define SASL_USER "ka"
#define SASL_PASSWORD "ka-dev-sasl" /* the stack's development credential */
#define WRONG_PASSWORD "wrong-pw-61"

static const char *worker_path;

typedef struct fixture {
    ka_config_t *cfg; /* PLAINTEXT, for setting up and checking */
    ka_pg_t *pg;
    char sasl_brokers[128];
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

static int setup(void **state)
{
    (void)state;
    char err[KA_ERRSTR_SIZE];
    const char *b = getenv("KA_KAFKA_SASL_BROKERS");
    fx.cfg = it_config("test-kafka-sasl");
    if (b && *b) {
        snprintf(fx.sasl_brokers, sizeof fx.sasl_brokers, "%s", b);
    } else { /* the stack's default: the Kafka port + 2 */
        const char *plain = ka_config_str(fx.cfg, "KA_KAFKA_BROKERS");
        const char *colon = strrchr(plain, ':');
        if (!colon)
            return -1;
        snprintf(fx.sasl_brokers, sizeof fx.sasl_brokers, "%.*s:%d", (int)(colon - plain), plain,
                 atoi(colon + 1) + 2);
    }
    fx.pg = it_pg(fx.cfg);
    if (!listening(fx.sasl_brokers)) {
        fprintf(stderr, "nothing listens on %s, the stack's SASL listener: a broker started "
                        "before the stack had one needs a restart (deploy/local/stack stop kafka "
                        "&& deploy/local/stack start kafka)\n", fx.sasl_brokers);
        return -1;
    }
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

/* A SASL client config for this process: the settings a deployment sets. */
static ka_config_t *sasl_config(const char *password)
{
    char err[KA_ERRSTR_SIZE];
    ka_config_t *cfg = it_config("test-kafka-sasl");
    if (ka_config_set(cfg, "KA_KAFKA_BROKERS", fx.sasl_brokers, err, sizeof err) != KA_OK ||
        ka_config_set(cfg, "KA_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext", err, sizeof err) ||
        ka_config_set(cfg, "KA_KAFKA_SASL_USERNAME", SASL_USER, err, sizeof err) ||
        ka_config_set(cfg, "KA_KAFKA_SASL_PASSWORD", password, err, sizeof err))
        fail_msg("%s", err);
    return cfg;
}

static size_t visit_bytes(const char *event_id, uint8_t **out)
{
    Ka__V1__EventHeader header = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__VisitEvent ev = KA__V1__VISIT_EVENT__INIT;
    Ka__V1__AccountRef acct = KA__V1__ACCOUNT_REF__INIT;
    header.event_id = (char *)event_id;
    header.occurred_at_ms = ka_now_ms() - 1000;
    header.producer = "it";
    acct.name = "SASL Account";
    ev.header = &header;
    ev.account = &acct;
    ev.rep_id = "rep-1";
    size_t len = ka__v1__visit_event__get_packed_size(&ev);
    *out = malloc(len + 1);
    ka__v1__visit_event__pack(&ev, *out);
    return len;
}

/* Starts the probe worker on the SASL listener with `password_setting`
 * (KA_KAFKA_SASL_PASSWORD=... or ..._FILE=...); its stderr goes to `log`. */
static pid_t start_worker(const char *password_setting, const char *log)
{
    char s[8][256];
    snprintf(s[0], sizeof s[0], "KA_KAFKA_BROKERS=%s", fx.sasl_brokers);
    snprintf(s[1], sizeof s[1], "KA_KAFKA_SECURITY_PROTOCOL=sasl_plaintext");
    snprintf(s[2], sizeof s[2], "KA_KAFKA_SASL_USERNAME=%s", SASL_USER);
    snprintf(s[3], sizeof s[3], "%s", password_setting);
    snprintf(s[4], sizeof s[4], "KA_TOPIC_VISIT=%s", fx.topic);
    snprintf(s[5], sizeof s[5], "KA_CONSUMER_GROUP=%s", fx.group);
    snprintf(s[6], sizeof s[6], "KA_TOPIC_DEADLETTER=%s", fx.dlq);
    snprintf(s[7], sizeof s[7], "PROBE_ECHO_TOPIC=%s", fx.echo);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, STDERR_FILENO);
        for (int i = 0; i < 8; i++)
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

static void worker_processes_an_event_over_sasl(void **state)
{
    (void)state;
    char pw_setting[128], log[] = "/tmp/ka-sasl-log-XXXXXX";
    close(mkstemp(log));

    /* This process produces through SASL as well. */
    ka_config_t *pcfg = sasl_config(SASL_PASSWORD);
    ka_producer_t *kp = it_producer(pcfg);
    uint8_t *buf;
    char event_id[64];
    snprintf(event_id, sizeof event_id, "sasl-%s", it_suffix());
    size_t len = visit_bytes(event_id, &buf);
    it_produce(kp, fx.topic, "SASL Account", buf, len);
    free(buf);

    snprintf(pw_setting, sizeof pw_setting, "KA_KAFKA_SASL_PASSWORD_FILE=%s", fx.pw_file);
    pid_t pid = start_worker(pw_setting, log);
    long long applied = it_pg_wait(fx.pg, "SELECT count(*) FROM ingest_probe WHERE consumer_group = $1",
                                   fx.group, 1, 60000);
    it_stop(pid, SIGTERM);
    if (applied != 1) {
        char *text = slurp(log);
        fail_msg("the worker applied %lld events over SASL, want 1; its log:\n%s", applied, text);
    }
    /* Its outbox relay published the echo through SASL too. */
    it_msgs_t echo = it_consume_all(fx.cfg, fx.echo, 1, 20000);
    assert_int_equal(echo.n, 1);
    it_free_msgs(&echo);
    printf("sasl: 1 event produced, applied and echoed over %s\n", fx.sasl_brokers);
    ka_producer_free(kp);
    ka_config_free(pcfg);
    unlink(log);
}

static void wrong_password_stops_the_worker_with_the_reason(void **state)
{
    (void)state;
    char log[] = "/tmp/ka-sasl-log-XXXXXX";
    close(mkstemp(log));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = start_worker("KA_KAFKA_SASL_PASSWORD=" WRONG_PASSWORD, log);
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
        fail_msg("the worker kept running with a wrong SASL password");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    char *text = slurp(log);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 1)
        fail_msg("want exit status 1, got %d; log:\n%s", status, text);
    if (!strstr(text, "authentication failed"))
        fail_msg("the log does not name the authentication failure:\n%s", text);
    assert_null(strstr(text, WRONG_PASSWORD));
    printf("sasl: wrong password refused, worker stopped after %.1f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(text);
    unlink(log);
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

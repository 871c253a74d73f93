/* The outbox under concurrency (issue 8): transactions that insert outbox
 * rows overlap, so rows commit out of id order. One transaction takes its ids
 * first and stays open for seconds while short ones commit many later ids and
 * the relay publishes them; it then adds more rows and commits. Another takes
 * ids and rolls back. Two relays run at once, as two worker processes would.
 *
 * Then the topic, read from the start, must hold every committed row's id
 * exactly once and no rolled-back one, and the relays' confirmed counts must
 * add up to the committed rows (a row published twice would count twice).
 *
 * The outbox and the relay's lock are per database, and workers of other
 * tests publish from ka_test all the time, so the test migrates a database of
 * its own on the same server (kactl migrate) and drops it at the end.
 *
 * A second test hangs the broker under the relay (see below).
 *
 *   test_outbox_concurrency <kactl>
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "ka_outbox.h"

#define SHORT_WRITERS 4
#define SHORT_TX_PER_WRITER 40
#define LONG_ROWS 10        /* rows the long transaction inserts first, and again last */
#define ROLLED_BACK_ROWS 10 /* rows of the transaction that rolls back */
#define LONG_HOLD_MS 3000   /* the long transaction stays open at least this long */
#define RELAYS 2
#define RELAY_BATCH "16" /* small rounds, so the relay interleaves with the writers */

static const char *kactl;

static struct {
    ka_config_t *cfg;
    ka_pg_t *admin; /* on the test database, to create and drop the private one */
    ka_pg_t *pg;    /* on the private database */
    char db[64], dsn[512], topic[128];
    atomic_int stop;
    atomic_long confirmed[RELAYS];
    atomic_long short_rows;
    char thread_err[RELAYS + SHORT_WRITERS][KA_ERRSTR_SIZE];
} fx;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ----------------------------------------------------------------------------
 * Writing outbox rows
 * ------------------------------------------------------------------------- */

static ka_pg_t *connect_private(void)
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_t *pg = ka_pg_connect(fx.dsn, err, sizeof err);
    if (pg && ka_outbox_prepare(pg, err, sizeof err) != KA_OK) {
        ka_pg_free(pg);
        pg = NULL;
    }
    if (!pg)
        fail_msg("private database: %s", err);
    return pg;
}

/* Queues one row whose payload is its own id (the reader checks both). */
static ka_err_t push_row(ka_pg_t *pg, const char *event_id, const char *key, char *err,
                         size_t errlen)
{
    ka_outbox_row_t row = {
        .event_id = event_id,
        .topic = fx.topic,
        .key = key,
        .key_len = strlen(key),
        .ce_type = "ka.test.OutboxProbe",
        .ce_time_ms = 1795000000000LL,
        .payload = event_id,
        .len = strlen(event_id),
    };
    return ka_outbox_push(pg, "urn:ka:test-outbox", &row, err, errlen);
}

/* BEGIN and n rows, leaving the transaction open. */
static void open_tx(ka_pg_t *pg, const char *name, int n)
{
    char err[KA_ERRSTR_SIZE], id[128];
    if (ka_pg_pipe_begin(pg, err, sizeof err) != KA_OK ||
        ka_pg_pipe_push(pg, "BEGIN", 0, NULL, NULL, NULL, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", name, err);
    for (int j = 0; j < n; j++) {
        snprintf(id, sizeof id, "oc-%s-%s-first-%d", it_suffix(), name, j);
        if (push_row(pg, id, name, err, sizeof err) != KA_OK)
            fail_msg("%s: %s", name, err);
    }
    if (ka_pg_pipe_run(pg, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", name, err);
}

/* n more rows, then `end` (COMMIT or ROLLBACK). */
static void close_tx(ka_pg_t *pg, const char *name, int n, const char *end)
{
    char err[KA_ERRSTR_SIZE], id[128];
    if (ka_pg_pipe_begin(pg, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", name, err);
    for (int j = 0; j < n; j++) {
        snprintf(id, sizeof id, "oc-%s-%s-last-%d", it_suffix(), name, j);
        if (push_row(pg, id, name, err, sizeof err) != KA_OK)
            fail_msg("%s: %s", name, err);
    }
    if (ka_pg_pipe_push(pg, end, 0, NULL, NULL, NULL, err, sizeof err) != KA_OK ||
        ka_pg_pipe_run(pg, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", name, err);
}

/* A short writer: SHORT_TX_PER_WRITER transactions of 1..3 rows each, a few
 * milliseconds apart. Errors go to thread_err (cmocka asserts belong to the
 * main thread). */
static void *short_writer(void *arg)
{
    int w = (int)(intptr_t)arg;
    char *err = fx.thread_err[RELAYS + w], id[128], key[16];
    char e2[KA_ERRSTR_SIZE];
    ka_pg_t *pg = ka_pg_connect(fx.dsn, e2, sizeof e2);
    if (!pg || ka_outbox_prepare(pg, e2, sizeof e2) != KA_OK) {
        snprintf(err, KA_ERRSTR_SIZE, "writer %d: %.400s", w, e2);
        ka_pg_free(pg);
        return NULL;
    }
    snprintf(key, sizeof key, "w%d", w);
    for (int i = 0; i < SHORT_TX_PER_WRITER && !err[0]; i++) {
        int rows = 1 + (i + w) % 3;
        ka_err_t rc = ka_pg_pipe_begin(pg, e2, sizeof e2);
        if (rc == KA_OK)
            rc = ka_pg_pipe_push(pg, "BEGIN", 0, NULL, NULL, NULL, e2, sizeof e2);
        for (int j = 0; rc == KA_OK && j < rows; j++) {
            snprintf(id, sizeof id, "oc-%s-w%d-%d-%d", it_suffix(), w, i, j);
            rc = push_row(pg, id, key, e2, sizeof e2);
        }
        if (rc == KA_OK)
            rc = ka_pg_pipe_push(pg, "COMMIT", 0, NULL, NULL, NULL, e2, sizeof e2);
        if (rc == KA_OK)
            rc = ka_pg_pipe_run(pg, e2, sizeof e2);
        if (rc != KA_OK)
            snprintf(err, KA_ERRSTR_SIZE, "writer %d, transaction %d: %.400s", w, i, e2);
        else
            atomic_fetch_add(&fx.short_rows, rows);
        sleep_ms(5 + (i * 7 + w * 3) % 20);
    }
    ka_pg_free(pg);
    return NULL;
}

/* ----------------------------------------------------------------------------
 * Relays
 * ------------------------------------------------------------------------- */

static void *relay_loop(void *arg)
{
    int r = (int)(intptr_t)arg;
    char *err = fx.thread_err[r], e2[KA_ERRSTR_SIZE];
    ka_relay_t *relay = ka_relay_new(fx.cfg, e2, sizeof e2);
    if (!relay) {
        snprintf(err, KA_ERRSTR_SIZE, "relay %d: %.400s", r, e2);
        return NULL;
    }
    while (!atomic_load(&fx.stop)) {
        int published = 0, pending = 0;
        ka_err_t rc = ka_relay_round(relay, &published, &pending, e2, sizeof e2);
        if (rc == KA_ERR) {
            snprintf(err, KA_ERRSTR_SIZE, "relay %d: %.400s", r, e2);
            break;
        }
        atomic_fetch_add(&fx.confirmed[r], published);
        if (!pending)
            sleep_ms(20);
    }
    ka_relay_free(relay);
    return NULL;
}

/* ----------------------------------------------------------------------------
 * Setup: a private database and topic
 * ------------------------------------------------------------------------- */

static void run_kactl_migrate(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("KA_PG_DSN", fx.dsn, 1);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 1);
        execl(kactl, kactl, "migrate", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("kactl migrate on %s failed (status %d)", fx.db, status);
}

static int setup(void **state)
{
    (void)state;
    char err[KA_ERRSTR_SIZE];
    fx.cfg = it_config("test-outbox");
    fx.admin = it_pg(fx.cfg);
    /* it_suffix is digits, a dash and digits: safe in an identifier once the
     * dash is replaced */
    snprintf(fx.db, sizeof fx.db, "ka_outbox_%s", it_suffix());
    for (char *p = fx.db; *p; p++)
        if (*p == '-')
            *p = '_';
    char sql[160];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", fx.db);
    if (ka_pg_exec(fx.admin, sql, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", sql, err);
    /* libpq takes the last value of a repeated keyword */
    snprintf(fx.dsn, sizeof fx.dsn, "%s dbname=%s", ka_config_str(fx.cfg, "KA_PG_DSN"), fx.db);
    run_kactl_migrate();
    if (ka_config_set(fx.cfg, "KA_PG_DSN", fx.dsn, err, sizeof err) != KA_OK ||
        ka_config_set(fx.cfg, "KA_OUTBOX_BATCH", RELAY_BATCH, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    fx.pg = connect_private();
    snprintf(fx.topic, sizeof fx.topic, "fault.outbox.%s", it_suffix());
    if (ka_kafka_create_topic(ka_config_str(fx.cfg, "KA_KAFKA_BROKERS"), fx.topic, 3, err,
                              sizeof err) != KA_OK)
        fail_msg("%s", err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char err[KA_ERRSTR_SIZE], sql[160];
    ka_pg_free(fx.pg);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", fx.db);
    if (ka_pg_exec(fx.admin, sql, err, sizeof err) != KA_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    ka_pg_free(fx.admin);
    ka_config_free(fx.cfg);
    return 0;
}

/* ----------------------------------------------------------------------------
 * The test
 * ------------------------------------------------------------------------- */

typedef struct idlist {
    char **v;
    size_t n;
} idlist_t;

static int read_ids(void *ud, const ka_pgres_t *res)
{
    idlist_t *l = ud;
    l->n = (size_t)ka_pgres_rows(res);
    l->v = calloc(l->n + 1, sizeof *l->v);
    for (size_t i = 0; i < l->n; i++)
        l->v[i] = strdup(ka_pgres_value(res, (int)i, 0));
    return 0;
}

static void free_ids(idlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static long long count(const char *sql)
{
    return it_pg_int(fx.pg, sql, NULL);
}

static void every_committed_row_is_published_once(void **state)
{
    (void)state;
    pthread_t relays[RELAYS], writers[SHORT_WRITERS];
    char prefix[96];

    /* The long transaction and the one that rolls back take the first ids. */
    ka_pg_t *long_pg = connect_private(), *rolled_pg = connect_private();
    open_tx(long_pg, "long", LONG_ROWS);
    open_tx(rolled_pg, "rolled", ROLLED_BACK_ROWS);
    int64_t opened = now_ms();

    for (int r = 0; r < RELAYS; r++)
        assert_int_equal(pthread_create(&relays[r], NULL, relay_loop, (void *)(intptr_t)r), 0);
    for (int w = 0; w < SHORT_WRITERS; w++)
        assert_int_equal(pthread_create(&writers[w], NULL, short_writer, (void *)(intptr_t)w),
                         0);
    for (int w = 0; w < SHORT_WRITERS; w++)
        pthread_join(writers[w], NULL);
    for (int i = 0; i < RELAYS + SHORT_WRITERS; i++)
        if (fx.thread_err[i][0])
            fail_msg("%s", fx.thread_err[i]);
    long short_rows = atomic_load(&fx.short_rows);

    /* The later ids are published while the earlier ones are not committed. */
    long long shorts_published = 0;
    for (int waited = 0; waited < 30000; waited += 50) {
        shorts_published = count("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL");
        if (shorts_published >= short_rows)
            break;
        sleep_ms(50);
    }
    assert_int_equal(shorts_published, short_rows);
    int64_t held = now_ms() - opened;
    if (held < LONG_HOLD_MS)
        sleep_ms((int)(LONG_HOLD_MS - held));

    close_tx(long_pg, "long", LONG_ROWS, "COMMIT");
    close_tx(rolled_pg, "rolled", ROLLED_BACK_ROWS, "ROLLBACK");
    ka_pg_free(long_pg);
    ka_pg_free(rolled_pg);
    long committed = short_rows + 2 * LONG_ROWS;

    long long unpublished = -1;
    for (int waited = 0; waited < 30000; waited += 50) {
        unpublished = count("SELECT count(*) FROM outbox WHERE published_at IS NULL");
        if (unpublished == 0)
            break;
        sleep_ms(50);
    }
    atomic_store(&fx.stop, 1);
    for (int r = 0; r < RELAYS; r++)
        pthread_join(relays[r], NULL);
    for (int r = 0; r < RELAYS; r++)
        if (fx.thread_err[r][0])
            fail_msg("%s", fx.thread_err[r]);
    assert_int_equal(unpublished, 0);
    assert_int_equal(count("SELECT count(*) FROM outbox"), committed);

    /* The hazard happened: the long transaction's first rows have ids below
     * rows that were published before they were committed. */
    snprintf(prefix, sizeof prefix, "oc-%s-long-first-", it_suffix());
    assert_true(it_pg_int(fx.pg,
                          "SELECT count(*) FROM outbox a JOIN outbox b ON b.id > a.id "
                          "WHERE starts_with(a.event_id, $1) AND b.published_at < a.published_at",
                          prefix) > 0);

    /* One relay published, the other waited on the lock; together they
     * confirmed each row once. */
    long c0 = atomic_load(&fx.confirmed[0]), c1 = atomic_load(&fx.confirmed[1]);
    assert_int_equal(c0 + c1, committed);
    assert_true(c0 == 0 || c1 == 0);

    /* The topic: every committed id exactly once, its payload the id. */
    idlist_t want = {NULL, 0}, got = {NULL, 0};
    char err[KA_ERRSTR_SIZE];
    if (ka_pg_query(fx.pg, "SELECT event_id FROM outbox ORDER BY event_id COLLATE \"C\"", 0,
                    NULL, read_ids, &want, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    it_msgs_t msgs = it_consume_all(fx.cfg, fx.topic, (size_t)committed, 60000);
    got.v = calloc(msgs.n + 1, sizeof *got.v);
    for (size_t i = 0; i < msgs.n; i++) {
        char *id = it_header(msgs.m[i], "ce_id");
        if (msgs.m[i]->len != strlen(id) || memcmp(msgs.m[i]->payload, id, msgs.m[i]->len) != 0)
            fail_msg("message %s: payload is not its id", id);
        got.v[got.n++] = id;
    }
    it_free_msgs(&msgs);
    qsort(got.v, got.n, sizeof *got.v, cmp_str);
    size_t dup = 0, lost = 0, extra = 0, i = 0, j = 0;
    while (i < want.n || j < got.n) {
        int c = i == want.n ? 1 : j == got.n ? -1 : strcmp(want.v[i], got.v[j]);
        if (c == 0) {
            for (j++; j < got.n && strcmp(got.v[j], want.v[i]) == 0; j++)
                dup++;
            i++;
        } else if (c < 0) {
            fprintf(stderr, "never published: %s\n", want.v[i++]);
            lost++;
        } else {
            fprintf(stderr, "published but not committed: %s\n", got.v[j++]);
            extra++;
        }
    }
    assert_int_equal(want.n, (size_t)committed);
    assert_int_equal(lost, 0);
    assert_int_equal(dup, 0);
    assert_int_equal(extra, 0); /* the rolled-back rows among them */
    assert_int_equal(got.n, (size_t)committed);
    /* faults: the two transactions held across others' commits */
    printf("FAULT-REPORT test=outbox_concurrency faults=2 events=%zu\n", got.n);
    free_ids(&want);
    free_ids(&got);
}

/* A broker that accepts connections and never answers (a hung one): the
kernel completes the handshakes on a listening socket nobody reads. */
static int hung_broker(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A round whose rows Kafka never confirms within the relay's flush (10 s)
 * while the producer would still report them later (message timeout 12 s):
 * the reports must not reach rows the round has freed (ASan reports the
 * write; the sanitized build runs this label), the rows stay unpublished,
 * and the relay still shuts down promptly. */
static void a_hung_broker_leaves_rows_unpublished(void **state)
{
    (void)state;
    char err[KA_ERRSTR_SIZE], brokers[64], id[128];
    int port, published = -1, pending = -1;
    int fd = hung_broker(&port);
    snprintf(brokers, sizeof brokers, "127.0.0.1:%d", port);
    ka_config_t *cfg = it_config("test-outbox-hung");
    if (ka_config_set(cfg, "KA_PG_DSN", fx.dsn, err, sizeof err) != KA_OK ||
        ka_config_set(cfg, "KA_KAFKA_BROKERS", brokers, err, sizeof err) != KA_OK ||
        ka_config_set(cfg, "KA_KAFKA_MESSAGE_TIMEOUT_MS", "12000", err, sizeof err) != KA_OK)
        fail_msg("%s", err);

    ka_pg_t *pg = connect_private();
    if (ka_pg_pipe_begin(pg, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "oc-%s-hung-%d", it_suffix(), i);
        if (push_row(pg, id, "hung", err, sizeof err) != KA_OK)
            fail_msg("%s", err);
    }
    if (ka_pg_pipe_run(pg, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    ka_pg_free(pg);

    ka_relay_t *relay = ka_relay_new(cfg, err, sizeof err);
    if (!relay)
        fail_msg("%s", err);
    ka_err_t rc = ka_relay_round(relay, &published, &pending, err, sizeof err);
    assert_int_equal(rc, KA_ERR_RETRY);
    assert_int_equal(published, 0);
    sleep_ms(3000); /* past the message timeout: any report still due is out */
    int64_t t0 = now_ms();
    ka_relay_free(relay);
    int64_t took = now_ms() - t0;
    assert_true(took < 8000);
    assert_int_equal(count("SELECT count(*) FROM outbox WHERE published_at IS NULL"), 5);
    close(fd);
    ka_config_free(cfg);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <kactl>\n", argv[0]);
        return 2;
    }
    kactl = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_committed_row_is_published_once),
        cmocka_unit_test(a_hung_broker_leaves_rows_unpublished),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

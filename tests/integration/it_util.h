#ifndef IT_UTIL_H
#define IT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ka_config.h"
#include "ka_kafka.h"
#include "ka_pg.h"

/* Helpers shared by the integration tests (real Kafka, PostgreSQL, Redis from
 * deploy/local/stack; tests/run exports where they are). */

/* A suffix unique to this test process, for topics and consumer groups, so
 * runs never see each other's data. */
const char *it_suffix(void);

/* A minimal valid VisitEvent (rep "rep-1", occurred a second ago) for
 * `account`, packed into *out (malloc'd); returns its length. */
size_t it_visit_bytes(const char *event_id, const char *account, uint8_t **out);

/* Loads the configuration from the environment; fails the test on error. */
ka_config_t *it_config(const char *service);

/* Connects to KA_PG_DSN; fails the test on error. */
ka_pg_t *it_pg(const ka_config_t *cfg);

/* Runs a query returning one integer (first column of the first row). */
long long it_pg_int(ka_pg_t *pg, const char *sql, const char *p1);

/* The same with n parameters. */
long long it_pg_int_args(ka_pg_t *pg, const char *sql, int n, const char *const *args);

/* Waits until it_pg_int(sql, p1) == want or timeout_ms passes; returns the
 * last value seen. */
long long it_pg_wait(ka_pg_t *pg, const char *sql, const char *p1, long long want,
                     int timeout_ms);

/* Waits (90 s at most) until consumer group `group` has committed `want`
 * offsets over its partitions; fails the test otherwise. */
void it_wait_group(ka_pg_t *pg, const char *group, long long want);

/* Produces synchronously (waits for the delivery report); fails the test when
 * Kafka does not confirm. */
void it_produce(ka_producer_t *kp, const char *topic, const char *key, const void *payload,
                size_t len);

ka_producer_t *it_producer(const ka_config_t *cfg);

/* Messages read by it_consume_all. They reference their consumer, which
 * librdkafka cannot destroy while a message lives: free both together. */
typedef struct it_msgs {
    ka_msg_t **m;
    size_t n;
    ka_consumer_t *kc;
    ka_config_t *cfg;
} it_msgs_t;

/* Reads `topic` from the beginning in a fresh group until `want` messages
 * (and a little longer, so extra messages show) or timeout_ms. */
it_msgs_t it_consume_all(const ka_config_t *cfg, const char *topic, size_t want, int timeout_ms);
void it_free_msgs(it_msgs_t *msgs);

/* The outbox publishes at least once: a delivery that timed out is sent again
 * with the same ce_id. Drops such re-sent copies from msgs (failing the test
 * unless each carries the same key and bytes as the first) and returns how
 * many it dropped, so a test counts distinct events as a consumer would. */
size_t it_drop_resent(it_msgs_t *msgs);

/* The value of a header as a NUL-terminated copy ("" when absent); free it. */
char *it_header(const ka_msg_t *m, const char *name);

/* Opens what a worker test holds for its whole run: configuration, a
 * PostgreSQL connection and a producer; fails the test on error. */
void it_open(const char *service, ka_config_t **cfg, ka_pg_t **pg, ka_producer_t **kp);

/* Closes what it_open opened. */
void it_close(ka_config_t *cfg, ka_pg_t *pg, ka_producer_t *kp);

/* SIGKILLs and reaps every worker still running among pids[0..n) and zeroes
 * them: the teardown of a test that an assertion ended. */
void it_kill_all(pid_t *pids, size_t n);

/* The PostgreSQL role of a worker binary (by its file name), or NULL for
 * other programs. */
const char *it_worker_role(const char *path);

/* `dsn` connecting as `role` instead (malloc'd). */
char *it_role_dsn(const char *dsn, const char *role);

/* Starts a worker binary with extra "KEY=VALUE" settings (NULL-terminated)
 * on top of this process's environment. A worker connects to PostgreSQL as
 * its own role (it_worker_role) unless the settings name a KA_PG_DSN. */
pid_t it_spawn(const char *path, const char *const *settings);

/* Sends sig and reaps the worker; after SIGTERM it must have exited 0 (a
 * clean drain). */
void it_stop(pid_t pid, int sig);

/* A reply of the operations endpoint: status 0 when nothing answered; body
 * malloc'd (free it), NULL without one. */
typedef struct it_reply {
    int status;
    char *body;
} it_reply_t;

/* A blocking HTTP/1.0 GET to 127.0.0.1:port (the server closes after its
 * answer). */
it_reply_t it_http_get(int port, const char *path);

/* A port nothing listens on right now. */
int it_free_port(void);

/* Runs a shell command (add 2>&1 to it for its errors too); its output, cut
 * to len - 1 bytes, in out. The rest is read and dropped, so a long output
 * never ends the command by SIGPIPE. Returns the exit code, -1 when killed. */
int it_sh(const char *cmd, char *out, size_t len);

#endif

#ifndef KA_WORKER_H
#define KA_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "ka_config.h"
#include "ka_err.h"
#include "ka_kafka.h"
#include "ka_outbox.h"
#include "ka_pg.h"
#include "ka_redis.h"
#include "ka_validate.h"

/* The exactly-once consumer loop every worker runs (EXACTLY-ONCE.md):
 *
 *   poll a batch (bounded in events and time)
 *   decode + validate each event            -> handler.decode (no servers)
 *   BEGIN; record event ids, drop duplicates
 *   apply the new events                    -> handler.apply (one pipeline)
 *   dead letters + outbox rows, stored offsets compare-and-set; COMMIT
 *   refresh Redis with absolute values      -> handler.after_commit
 *   publish the outbox
 *
 * Offsets live in PostgreSQL beside the state; on every assignment the loop
 * seeks to them. A failed compare-and-set (another instance owns the
 * partition) rolls the whole batch back. A batch that fails for a reason other
 * than a server going away is retried one event at a time so that the one bad
 * event is dead-lettered and the rest are applied. */

typedef enum ka_event_status {
    KA_EVENT_NEW = 0,
    KA_EVENT_DUPLICATE,
    KA_EVENT_REJECTED,
} ka_event_status_t;

typedef struct ka_event {
    ka_msg_t *msg;
    void *decoded; /* the handler's, freed by handler.free_decoded */
    char event_id[KA_MAX_ID_LEN + 1];
    /* The time its dedupe row is partitioned by (ka_event_time.h). */
    int64_t occurred_at_ms;
    ka_event_status_t status;
    ka_reject_t reject;
} ka_event_t;

typedef struct ka_worker ka_worker_t;

/* The open transaction of one batch, handed to handler.apply. */
typedef struct ka_tx ka_tx_t;

typedef struct ka_handler {
    void *ud;
    /* Once, after the first connection: prepare statements (ka_pg re-prepares
     * them after reconnects). Optional. */
    ka_err_t (*prepare)(void *ud, ka_pg_t *pg, char *errstr, size_t errlen);
    /* Decodes and validates one message without touching any server. Returns
     * KA_OK with *decoded and event_id set, or KA_ERR_INVALID with rej set. */
    ka_err_t (*decode)(void *ud, const ka_msg_t *msg, void **decoded, char *event_id,
                       size_t idlen, ka_reject_t *rej);
    void (*free_decoded)(void *ud, void *decoded);
    /* Applies the batch's new events, in consumption order, inside the open
     * transaction: queue statements on ka_tx_pg(tx); ka_tx_reject() an event
     * that state shows invalid (before queuing its writes). Returns KA_OK or
     * an error that rolls the batch back (KA_ERR_RETRY when a server went
     * away). */
    ka_err_t (*apply)(void *ud, ka_tx_t *tx, ka_event_t *const *events, size_t n, char *errstr,
                      size_t errlen);
    /* After commit: write the committed state to Redis as absolute values.
     * A failure is not fatal: the cache is rebuilt when Redis is back. */
    ka_err_t (*after_commit)(void *ud, ka_redis_t *rds, ka_event_t *const *events, size_t n,
                             char *errstr, size_t errlen);
    /* Writes the whole cache from PostgreSQL (cold start, flushed Redis). */
    ka_err_t (*rebuild_cache)(void *ud, ka_pg_t *pg, ka_redis_t *rds, char *errstr,
                              size_t errlen);
    /* Called between batches, busy or idle, so periodic work (scans) keeps
     * its pace; it checks its own clock. Optional. */
    void (*tick)(void *ud, ka_worker_t *w);
} ka_handler_t;

typedef struct ka_worker_stats {
    uint64_t consumed, applied, duplicates, dead_lettered, batches, rollbacks, fenced;
    uint64_t published;
} ka_worker_stats_t;

/* Connects to PostgreSQL (retrying), Redis and Kafka and subscribes to
 * `topics`. `cfg` and `handler` must outlive the worker. Returns NULL and
 * fills errstr when it cannot start. */
ka_worker_t *ka_worker_new(const ka_config_t *cfg, const char *const *topics, size_t ntopics,
                           const ka_handler_t *handler, char *errstr, size_t errlen);

/* Runs until ka_worker_stop() or SIGTERM/SIGINT, then drains: the batch in
 * hand is committed, the outbox published, the group left. Returns KA_OK on
 * a clean stop, or an error (logged) when the worker cannot go on. */
ka_err_t ka_worker_run(ka_worker_t *w);

/* Asks ka_worker_run to stop; safe from another thread. */
void ka_worker_stop(ka_worker_t *w);

/* No operation is performed if w is NULL. */
void ka_worker_free(ka_worker_t *w);

/* Counters since start; the pointer lives as long as w. */
const ka_worker_stats_t *ka_worker_stats(const ka_worker_t *w);

/* The worker's own PostgreSQL connection, for handler.tick (outside any
 * batch). */
ka_pg_t *ka_worker_pg(ka_worker_t *w);
const ka_config_t *ka_worker_config(const ka_worker_t *w);

/* Runs fn inside a transaction of the worker's connection, for periodic work
 * between batches (scans that raise or resolve alerts): BEGIN, fn queues its
 * statements on ka_tx_pg(tx) (ka_tx_flush for results), COMMIT. Returns fn's
 * error (the transaction rolled back) or the commit's. The outbox is
 * published on the loop's next round. */
ka_err_t ka_worker_transaction(ka_worker_t *w,
                               ka_err_t (*fn)(void *ud, ka_tx_t *tx, char *errstr, size_t errlen),
                               void *ud, char *errstr, size_t errlen);

/* The session advisory lock that orders cache writes: held shared by the
 * updates after each commit, exclusively by a rebuild or by another process
 * that writes a snapshot of PostgreSQL over some keys (kactl load org). */
#define KA_WORKER_CACHE_LOCK "4242003"

/* Inside handler.apply ------------------------------------------------------ */

/* The transaction's connection, in pipeline mode: queue with ka_pg_pipe_push. */
ka_pg_t *ka_tx_pg(ka_tx_t *tx);

/* Runs what is queued so far (results reach their callbacks) and keeps the
 * transaction open for more, for an apply that needs rows to decide. */
ka_err_t ka_tx_flush(ka_tx_t *tx, char *errstr, size_t errlen);

/* Marks an event rejected: it goes to the dead-letter topic, in this same
 * transaction, with the reason. */
void ka_tx_reject(ka_tx_t *tx, ka_event_t *ev, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds an output event to the outbox in this transaction. */
ka_err_t ka_tx_emit(ka_tx_t *tx, const ka_outbox_row_t *row, char *errstr, size_t errlen);

/* The consumer group (names the worker's rows in shared tables). */
const char *ka_tx_group(const ka_tx_t *tx);

/* The worker's configuration. */
const ka_config_t *ka_tx_config(const ka_tx_t *tx);

#endif

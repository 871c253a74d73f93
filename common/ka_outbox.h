#ifndef KA_OUTBOX_H
#define KA_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "ka_config.h"
#include "ka_err.h"
#include "ka_kafka.h"
#include "ka_pg.h"

/* The transactional outbox (EXACTLY-ONCE.md): output events are rows written
 * in the same PostgreSQL transaction as the state they describe, and a relay
 * publishes them after commit with an idempotent producer, marking a row
 * published only when Kafka confirmed it. */

typedef struct ka_outbox_row {
    const char *event_id; /* CloudEvents ce_id: deterministic, unique */
    const char *topic;
    const void *key;
    size_t key_len;
    const char *ce_type; /* NULL: not a CloudEvent (dead letters keep raw bytes) */
    int64_t ce_time_ms;
    const void *payload;
    size_t len;
    const ka_header_t *headers; /* extra string headers */
    size_t nheaders;
} ka_outbox_row_t;

/* Prepares the outbox statements on a worker's connection (once). */
ka_err_t ka_outbox_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* Queues the INSERT of one row into the caller's open pipeline (inside its
 * transaction). A row whose event_id exists already is left alone, so a
 * replayed input cannot publish twice. */
ka_err_t ka_outbox_push(ka_pg_t *pg, const char *ce_source, const ka_outbox_row_t *row,
                        char *errstr, size_t errlen);

/* Rows queued in memory and written by one INSERT (a transaction's alert
 * events, issue 17): ka_outbox_batch_add per row, ka_outbox_batch_push once
 * into the open pipeline. The same rows as ka_outbox_push one by one, in
 * the order added: a row whose event_id exists already (in the table or
 * earlier in the batch) is left alone. */
typedef struct ka_outbox_batch ka_outbox_batch_t;

ka_outbox_batch_t *ka_outbox_batch_new(void);
ka_err_t ka_outbox_batch_add(ka_outbox_batch_t *b, const ka_outbox_row_t *row, char *errstr,
                             size_t errlen);
/* Queues the INSERT (nothing when empty) and empties the batch. */
ka_err_t ka_outbox_batch_push(ka_pg_t *pg, ka_outbox_batch_t *b, const char *ce_source,
                              char *errstr, size_t errlen);
void ka_outbox_batch_free(ka_outbox_batch_t *b);

/* The relay: its own PostgreSQL connection and producer. Only one relay in a
 * deployment publishes at a time (a PostgreSQL advisory lock); the others'
 * rounds do nothing until the holder goes away. */
typedef struct ka_relay ka_relay_t;

/* Returns NULL and fills errstr when PostgreSQL or Kafka cannot be set up. */
ka_relay_t *ka_relay_new(const ka_config_t *cfg, char *errstr, size_t errlen);

/* One round: publishes up to KA_OUTBOX_BATCH unpublished rows in id order and
 * marks those Kafka confirmed. *published receives how many were confirmed,
 * *pending whether more rows may be waiting. Returns KA_OK, KA_ERR_RETRY when
 * a server is unavailable (try again later), KA_ERR otherwise. */
ka_err_t ka_relay_round(ka_relay_t *relay, int *published, int *pending, char *errstr,
                        size_t errlen);

/* Non-zero while this relay holds the publishing lock. */
int ka_relay_is_leader(const ka_relay_t *relay);

/* Frees the relay after flushing what it sent. No operation is performed if
 * relay is NULL. */
void ka_relay_free(ka_relay_t *relay);

#endif

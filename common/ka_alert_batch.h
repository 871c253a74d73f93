#ifndef KA_ALERT_BATCH_H
#define KA_ALERT_BATCH_H

#include "ka_cols.h"
#include "ka_outbox.h"
#include "ka_pg.h"

/* A transaction's alert transitions, held in memory and written with one
 * statement per table (alert_state, alert_history, outbox) when the
 * transaction next flushes its pipeline or ends (issue 17: three statements
 * per transition before). The rows are those ka_alert_transition wrote one
 * by one: per fingerprint the state of its last transition, every history
 * row in order, each outbox row once by event id, in order. */
typedef struct ka_alert_batch {
    ka_cols_t state; /* the 13 columns of ka_alert_state */
    ka_cols_t hist;  /* the 12 of ka_alert_history */
    ka_outbox_batch_t *out;
} ka_alert_batch_t;

/* The transaction's batch, made on first use (ka_worker_tx.c). */
struct ka_tx;
ka_alert_batch_t *ka_tx_alerts(struct ka_tx *tx);

ka_alert_batch_t *ka_alert_batch_new(void);
void ka_alert_batch_free(ka_alert_batch_t *b);

/* Prepares the batched statements (from ka_alert_prepare). */
ka_err_t ka_alert_batch_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* Queues the writes into the open pipeline (nothing when empty) and empties
 * the batch. */
ka_err_t ka_alert_batch_push(ka_pg_t *pg, ka_alert_batch_t *b, const char *ce_source,
                             char *errstr, size_t errlen);

#endif

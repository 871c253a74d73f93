#include <stdarg.h>
#include <stdio.h>

#include "ka_alert_batch.h"
#include "ka_fault.h"
#include "ka_worker_internal.h"

/* The transaction ------------------------------------------------------------ */

ka_pg_t *ka_tx_pg(ka_tx_t *tx)
{
    return tx->w->pg;
}

const char *ka_tx_group(const ka_tx_t *tx)
{
    return tx->w->group;
}

const ka_config_t *ka_tx_config(const ka_tx_t *tx)
{
    return tx->w->cfg;
}

ka_alert_batch_t *ka_tx_alerts(ka_tx_t *tx)
{
    if (!tx->alerts)
        tx->alerts = ka_alert_batch_new();
    return tx->alerts;
}

ka_err_t ka_tx_end(ka_tx_t *tx, char *errstr, size_t errlen)
{
    return ka_alert_batch_push(tx->w->pg, tx->alerts, tx->w->source, errstr, errlen);
}

void ka_tx_discard(ka_tx_t *tx)
{
    ka_alert_batch_free(tx->alerts);
    tx->alerts = NULL;
}

/* The alert transitions queued so far go first: what the caller reads next
 * sees them, as when each was written at once. */
ka_err_t ka_tx_flush(ka_tx_t *tx, char *errstr, size_t errlen)
{
    ka_err_t rc = ka_tx_end(tx, errstr, errlen);
    if (rc == KA_OK)
        rc = ka_pg_pipe_run(tx->w->pg, errstr, errlen);
    if (rc == KA_OK)
        rc = ka_pg_pipe_begin(tx->w->pg, errstr, errlen);
    if (rc != KA_OK)
        tx->failed = 1;
    return rc;
}

void ka_tx_reject(ka_tx_t *tx, ka_event_t *ev, const char *reason, const char *fmt, ...)
{
    va_list ap;
    (void)tx;
    ev->status = KA_EVENT_REJECTED;
    snprintf(ev->reject.reason, sizeof ev->reject.reason, "%s", reason);
    va_start(ap, fmt);
    vsnprintf(ev->reject.detail, sizeof ev->reject.detail, fmt, ap);
    va_end(ap);
}

ka_err_t ka_tx_emit(ka_tx_t *tx, const ka_outbox_row_t *row, char *errstr, size_t errlen)
{
    return ka_outbox_push(tx->w->pg, tx->w->source, row, errstr, errlen);
}

/* Aborts an open pipeline + transaction after a handler failure. */
void ka_worker_abandon(ka_worker_t *w)
{
    char ignore[KA_ERRSTR_SIZE];
    ka_pg_pipe_run(w->pg, ignore, sizeof ignore);
    ka_pg_rollback(w->pg);
}

ka_err_t ka_worker_commit(ka_worker_t *w, ka_err_t rc, char *errstr, size_t errlen)
{
    if (rc == KA_OK)
        rc = ka_pg_pipe_push(w->pg, "COMMIT", 0, NULL, NULL, NULL, errstr, errlen);
    if (rc != KA_OK) {
        ka_worker_abandon(w);
        return rc;
    }
    ka_fault_point("commit_before");
    if ((rc = ka_pg_pipe_run(w->pg, errstr, errlen)) == KA_OK)
        ka_fault_point("commit_after");
    return rc;
}

ka_err_t ka_worker_transaction(ka_worker_t *w,
                               ka_err_t (*fn)(void *ud, ka_tx_t *tx, char *errstr, size_t errlen),
                               void *ud, char *errstr, size_t errlen)
{
    ka_tx_t tx = {w, 0, NULL};
    ka_metrics_stage_discard();
    ka_err_t rc = ka_pg_pipe_begin(w->pg, errstr, errlen);
    if (rc != KA_OK)
        return rc;
    if ((rc = ka_pg_pipe_push(w->pg, "BEGIN", 0, NULL, NULL, NULL, errstr, errlen)) != KA_OK) {
        ka_worker_abandon(w);
        return rc;
    }
    rc = fn(ud, &tx, errstr, errlen);
    if (rc == KA_OK && !tx.failed)
        rc = ka_tx_end(&tx, errstr, errlen);
    if (!tx.failed)
        rc = ka_worker_commit(w, rc, errstr, errlen);
    ka_tx_discard(&tx);
    if (rc == KA_OK) {
        ka_metrics_stage_commit();
        if (w->relay_thread) /* what it wrote to the outbox goes out now */
            ka_worker_relay_wake(w);
    } else
        ka_metrics_stage_discard();
    return rc;
}

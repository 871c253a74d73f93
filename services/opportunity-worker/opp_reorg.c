/* Re-org follow-up and unknown reps (see opp_reorg.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka/v1/alert.pb-c.h"
#include "ka_alert.h"
#include "ka_buf.h"
#include "ka_log.h"
#include "ka_scan.h"
#include "ka_validate.h"
#include "opp_reorg.h"

#define REORG_LOCK 4242016 /* beside the forecast recompute's 4242015 */
#define REORG_EVERY_MS 1000
#define REORG_LIMIT "500"

static const char *statements[][2] = {
    /* Idle rounds cost this one statement, outside any transaction. */
    {"opp_reorg_pending",
     "SELECT EXISTS (SELECT 1 FROM funnel_health_dirty) "
     "OR EXISTS (SELECT 1 FROM unknown_rep u WHERE NOT u.alerted "
     "OR EXISTS (SELECT 1 FROM org_node n WHERE n.id = u.rep_id))"},
    {"opp_reorg_take",
     "DELETE FROM funnel_health_dirty WHERE id IN (SELECT id FROM funnel_health_dirty "
     "ORDER BY id LIMIT " REORG_LIMIT ") RETURNING node_id"},
    /* Reps the tree knows now: kactl load org has rolled their figures up. */
    {"opp_reorg_known",
     "DELETE FROM unknown_rep u USING org_node n WHERE n.id = u.rep_id "
     "RETURNING u.rep_id, u.first_seen_ms, u.alerted, u.source, coalesce(n.parent_id, '')"},
    {"opp_reorg_unalerted",
     "UPDATE unknown_rep SET alerted = true WHERE rep_id IN (SELECT rep_id FROM unknown_rep "
     "WHERE NOT alerted ORDER BY rep_id LIMIT " REORG_LIMIT ") "
     "RETURNING rep_id, first_seen_ms, source"},
};

ka_err_t opp_reorg_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

typedef struct round {
    opp_ctx_t *ctx;
    int64_t now_ms;
    int rechecked, fired, resolved;
} round_t;

/* One alert per rep: the episode starts when the workers first counted it. */
static ka_err_t unknown_rep_alert(ka_tx_t *tx, const char *rep, int64_t first_seen_ms,
                                  const char *source, const char *parent, int firing,
                                  int64_t now_ms, char *errstr, size_t errlen)
{
    char fp[KA_FINGERPRINT_LEN], summary[400];
    const char *labels[] = {rep};
    ka_alert_fingerprint(fp, "unknown_rep", labels, 1);
    if (firing)
        snprintf(summary, sizeof summary,
                 "rep %s is not in the org tree: its %s figures count at the rep only until "
                 "kactl load org adds it", rep, source);
    else
        snprintf(summary, sizeof summary,
                 "rep %s joined the org tree under %s: its figures roll up", rep, parent);
    const char *keys[] = {"rep_id", "first_seen_in", "parent_id"};
    const char *vals[] = {rep, source, parent};
    ka_alert_t a = {
        .type = "unknown_rep",
        .proto_type = KA__V1__ALERT_TYPE__ALERT_TYPE_UNKNOWN_REP,
        .severity = "warning",
        .subject_kind = "node",
        .subject_id = rep,
        .fingerprint = fp,
        .summary = summary,
        .detail_keys = keys,
        .detail_values = vals,
        .ndetails = firing ? 2 : 3,
        .starts_at_ms = first_seen_ms,
        .at_ms = firing ? first_seen_ms : now_ms,
    };
    return ka_alert_transition(tx, &a, firing, errstr, errlen);
}

static ka_err_t run(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    round_t *rd = ud;
    ka_rows_t rows = {0};
    int locked = 0;
    ka_err_t rc;

    if ((rc = ka_scan_lock(tx, REORG_LOCK, &locked, errstr, errlen)) || !locked)
        return rc;

    /* Health first: it locks funnel_state rows in the batches' order, and
     * a batch takes its unknown_rep row only after its funnel rows. */
    if ((rc = ka_rows_query(tx, "opp_reorg_take", 0, NULL, &rows, errstr, errlen)))
        return rc;
    if (rows.nrows) {
        ka_buf_t nodes = KA_BUF_INIT;
        ka_buf_array_begin(&nodes);
        for (int i = 0; i < rows.nrows; i++)
            ka_buf_array_add(&nodes, ka_rows_str(&rows, i, 0));
        ka_buf_array_end(&nodes);
        rd->rechecked = rows.nrows;
        rc = opp_health_recheck(rd->ctx, tx, ka_buf_str(&nodes), rd->now_ms, errstr, errlen);
        ka_buf_free(&nodes);
    }
    ka_rows_free(&rows);
    if (rc)
        return rc;

    if ((rc = ka_rows_query(tx, "opp_reorg_known", 0, NULL, &rows, errstr, errlen)))
        return rc;
    for (int i = 0; rc == KA_OK && i < rows.nrows; i++) {
        if (ka_rows_str(&rows, i, 2)[0] != 't')
            continue; /* joined before its alert was raised: nothing to say */
        rc = unknown_rep_alert(tx, ka_rows_str(&rows, i, 0), ka_rows_int(&rows, i, 1, 0),
                               ka_rows_str(&rows, i, 3), ka_rows_str(&rows, i, 4), 0, rd->now_ms,
                               errstr, errlen);
        rd->resolved++;
    }
    ka_rows_free(&rows);
    if (rc)
        return rc;

    if ((rc = ka_rows_query(tx, "opp_reorg_unalerted", 0, NULL, &rows, errstr, errlen)))
        return rc;
    for (int i = 0; rc == KA_OK && i < rows.nrows; i++) {
        rc = unknown_rep_alert(tx, ka_rows_str(&rows, i, 0), ka_rows_int(&rows, i, 1, 0),
                               ka_rows_str(&rows, i, 2), "", 1, rd->now_ms, errstr, errlen);
        rd->fired++;
    }
    ka_rows_free(&rows);
    return rc;
}

static int read_pending(void *ud, const ka_pgres_t *res)
{
    const char *v = ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : NULL;
    *(int *)ud = v && v[0] == 't';
    return 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void opp_reorg_tick(opp_ctx_t *ctx, ka_worker_t *w, int64_t *next_ms)
{
    char err[KA_ERRSTR_SIZE];
    int64_t mono = mono_ms();
    if (mono < *next_ms)
        return;
    *next_ms = mono + REORG_EVERY_MS;
    round_t rd = {ctx, ka_now_ms(), 0, 0, 0};
    int pending = 0;
    if (ka_pg_query(ka_worker_pg(w), "opp_reorg_pending", 0, NULL, read_pending, &pending, err,
                    sizeof err) != KA_OK)
        ka_log(KA_LOG_WARN, "re-org follow-up failed", "{s:s}", "error", err);
    else if (pending && ka_worker_transaction(w, run, &rd, err, sizeof err) != KA_OK)
        ka_log(KA_LOG_WARN, "re-org follow-up failed", "{s:s}", "error", err);
    else if (rd.rechecked || rd.fired || rd.resolved)
        ka_log(KA_LOG_INFO, "re-org follow-up", "{s:i,s:i,s:i}", "health_nodes", rd.rechecked,
               "unknown_rep_fired", rd.fired, "unknown_rep_resolved", rd.resolved);
}

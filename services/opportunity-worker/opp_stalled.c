/* Stalled opportunities (DOMAIN.md section 4): open longer in a stage than
 * the stage's max dwell. A periodic scan, run by one instance at a time (a
 * transaction-level advisory lock), fires one alert per stall and resolves it
 * when the deal moves on or closes. The firing's start is the moment the
 * limit was crossed, so its id is the same whichever instance finds it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka/v1/alert.pb-c.h"
#include "ka_alert.h"
#include "ka_validate.h"
#include "opp_stalled.h"


/* One row of either query, copied out: statements may not be queued from
 * inside a result callback. */
typedef struct found {
    char *v[5];
    int64_t starts_ms;
} found_t;

typedef struct scan {
    ka_tx_t *tx;
    int locked;
    found_t *rows;
    int nrows;
    int fired, resolved;
    char *errstr;
    size_t errlen;
} scan_t;

static int read_lock(void *ud, const ka_pgres_t *res)
{
    const char *v = ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : NULL;
    ((scan_t *)ud)->locked = v && v[0] == 't';
    return 0;
}

static ka_err_t transition(scan_t *sc, const char *opp, const char *stage, const char *owner,
                           const char *days, const char *limit, int64_t starts_ms, int firing)
{
    char fp[KA_FINGERPRINT_LEN], summary[256];
    const char *labels[] = {opp};
    ka_alert_fingerprint(fp, "stalled_opportunity", labels, 1);
    if (firing)
        snprintf(summary, sizeof summary,
                 "opportunity %s has been in stage %s for %s days (limit %s)", opp, stage, days,
                 limit);
    else
        snprintf(summary, sizeof summary, "opportunity %s moved on from stage %s", opp, stage);
    const char *keys[] = {"opportunity_id", "stage_code", "owner_rep_id", "days_in_stage",
                          "max_dwell_days"};
    const char *vals[] = {opp, stage, owner, days, limit};
    ka_alert_t a = {
        .type = "stalled_opportunity",
        .proto_type = KA__V1__ALERT_TYPE__ALERT_TYPE_STALLED_OPPORTUNITY,
        .severity = "warning",
        .subject_kind = "opportunity",
        .subject_id = opp,
        .fingerprint = fp,
        .summary = summary,
        .detail_keys = keys,
        .detail_values = vals,
        .ndetails = 5,
        .starts_at_ms = starts_ms,
        .at_ms = firing ? starts_ms : ka_now_ms(),
    };
    return ka_alert_transition(sc->tx, &a, firing, sc->errstr, sc->errlen);
}

static int collect(void *ud, const ka_pgres_t *res)
{
    scan_t *sc = ud;
    sc->nrows = ka_pgres_rows(res);
    sc->rows = ka_calloc((size_t)sc->nrows + 1, sizeof *sc->rows);
    for (int i = 0; i < sc->nrows; i++) {
        for (int c = 0; c < 5; c++)
            sc->rows[i].v[c] = ka_strdup(ka_pgres_value(res, i, c) ? ka_pgres_value(res, i, c) : "");
        sc->rows[i].starts_ms = ka_pgres_int(res, i, 5, 0);
    }
    return 0;
}

static void free_rows(scan_t *sc)
{
    for (int i = 0; i < sc->nrows; i++)
        for (int c = 0; c < 5; c++)
            free(sc->rows[i].v[c]);
    free(sc->rows);
    sc->rows = NULL;
    sc->nrows = 0;
}

/* Runs one query and raises a transition for every row it returns. */
static ka_err_t run_query(scan_t *sc, const char *stmt, int firing, int *count)
{
    ka_err_t rc = ka_pg_pipe_push(ka_tx_pg(sc->tx), stmt, 0, NULL, collect, sc, sc->errstr,
                                  sc->errlen);
    if (rc == KA_OK)
        rc = ka_tx_flush(sc->tx, sc->errstr, sc->errlen);
    for (int i = 0; rc == KA_OK && i < sc->nrows; i++) {
        found_t *f = &sc->rows[i];
        rc = transition(sc, f->v[0], f->v[1], f->v[2], f->v[3], f->v[4], f->starts_ms, firing);
        (*count)++;
    }
    free_rows(sc);
    return rc;
}

ka_err_t opp_stalled_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    ka_err_t rc = ka_pg_prepare(
        pg, "opp_stalled_new",
        "SELECT o.id, o.stage_code, o.owner_rep_id, "
        "floor(extract(epoch FROM now() - o.stage_entered_at) / 86400)::bigint, "
        "s.max_dwell_days, (extract(epoch FROM o.stage_entered_at + s.max_dwell_days * "
        "interval '1 day') * 1000)::bigint "
        "FROM opportunity o JOIN funnel_stage s ON s.definition_id = o.definition_id "
        "AND s.code = o.stage_code "
        "WHERE o.status = 'open' AND s.max_dwell_days IS NOT NULL "
        "AND o.stage_entered_at + s.max_dwell_days * interval '1 day' < now() "
        "AND NOT EXISTS (SELECT 1 FROM alert_state a WHERE a.type = 'stalled_opportunity' "
        "AND a.subject_id = o.id AND a.status = 'firing') "
        "ORDER BY o.stage_entered_at LIMIT 500",
        errstr, errlen);
    if (rc != KA_OK)
        return rc;
    return ka_pg_prepare(
        pg, "opp_stalled_over",
        "SELECT a.subject_id, a.details->>'stage_code', a.details->>'owner_rep_id', "
        "a.details->>'days_in_stage', a.details->>'max_dwell_days', "
        "(extract(epoch FROM a.starts_at) * 1000)::bigint "
        "FROM alert_state a LEFT JOIN opportunity o ON o.id = a.subject_id "
        "LEFT JOIN funnel_stage s ON s.definition_id = o.definition_id AND s.code = o.stage_code "
        "WHERE a.type = 'stalled_opportunity' AND a.status = 'firing' AND (o.id IS NULL "
        "OR o.status <> 'open' OR o.stage_code IS DISTINCT FROM a.details->>'stage_code' "
        "OR s.max_dwell_days IS NULL "
        "OR o.stage_entered_at + s.max_dwell_days * interval '1 day' >= now()) "
        "ORDER BY a.starts_at LIMIT 500",
        errstr, errlen);
}

static ka_err_t scan(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    scan_t *sc = ud;
    ka_pg_t *pg = ka_tx_pg(tx);
    ka_err_t rc;
    sc->tx = tx;
    sc->errstr = errstr;
    sc->errlen = errlen;
    /* One scanner at a time; the lock ends with the transaction. */
    if ((rc = ka_pg_pipe_push(pg, "SELECT pg_try_advisory_xact_lock(4242011)", 0, NULL,
                              read_lock, sc, errstr, errlen)) ||
        (rc = ka_tx_flush(tx, errstr, errlen)))
        return rc;
    if (!sc->locked)
        return KA_OK;
    /* Resolve first: a deal that moved to another stage and stalls there
     * again ends its old episode before the new one starts. */
    if ((rc = run_query(sc, "opp_stalled_over", 0, &sc->resolved)) != KA_OK)
        return rc;
    return run_query(sc, "opp_stalled_new", 1, &sc->fired);
}

ka_err_t opp_stalled_scan(ka_worker_t *w, int *fired, int *resolved, char *errstr, size_t errlen)
{
    scan_t sc;
    memset(&sc, 0, sizeof sc);
    ka_err_t rc = ka_worker_transaction(w, scan, &sc, errstr, errlen);
    *fired = rc == KA_OK ? sc.fired : 0;
    *resolved = rc == KA_OK ? sc.resolved : 0;
    return rc;
}

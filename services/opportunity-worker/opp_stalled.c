/* Stalled opportunities (DOMAIN.md section 4), two causes, each its own
 * alert (fingerprint: the opportunity and the cause):
 *   stage_dwell  open longer in a stage than the stage's max dwell; resolved
 *                when the deal moves on or closes;
 *   no_visit     no visit on the account for KA_STALL_NO_VISIT_DAYS, counted
 *                from the last visit or the deal's start, whichever is later;
 *                resolved by a visit or the deal closing.
 * A periodic scan, run by one instance at a time (a transaction-level
 * advisory lock), at the worker's clock. The firing's start is the moment
 * the limit was crossed, so its id is the same whichever instance finds it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka/v1/alert.pb-c.h"
#include "ka_alert.h"
#include "ka_validate.h"
#include "ka_scan.h"
#include "opp_stalled.h"


/* One row of either query, copied out: statements may not be queued from
 * inside a result callback. */
typedef struct found {
    char *v[6];
    int64_t starts_ms;
} found_t;

typedef struct scan {
    ka_tx_t *tx;
    int64_t now_ms;
    int no_visit_days;
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

/* v: opportunity, stage, owner, days, limit, cause. */
static ka_err_t transition(scan_t *sc, char *const *v, int64_t starts_ms, int firing)
{
    char fp[KA_FINGERPRINT_LEN], summary[256];
    const char *opp = v[0], *cause = v[5];
    int no_visit = strcmp(cause, "no_visit") == 0;
    const char *labels[] = {opp, "no_visit"};
    /* The dwell alert keeps the fingerprint of the opportunity alone. */
    ka_alert_fingerprint(fp, "stalled_opportunity", labels, no_visit ? 2 : 1);
    if (firing && no_visit)
        snprintf(summary, sizeof summary,
                 "opportunity %s: nobody has visited its account for %s days (limit %s)", opp,
                 v[3], v[4]);
    else if (firing)
        snprintf(summary, sizeof summary,
                 "opportunity %s has been in stage %s for %s days (limit %s)", opp, v[1], v[3],
                 v[4]);
    else if (no_visit)
        snprintf(summary, sizeof summary, "opportunity %s: its account was visited, or it closed",
                 opp);
    else
        snprintf(summary, sizeof summary, "opportunity %s moved on from stage %s", opp, v[1]);
    const char *keys[] = {"opportunity_id", "stage_code", "owner_rep_id",
                          no_visit ? "days_without_visit" : "days_in_stage",
                          no_visit ? "max_days_without_visit" : "max_dwell_days", "cause"};
    const char *const *vals = (const char *const *)v;
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
        .ndetails = 6,
        .starts_at_ms = starts_ms,
        .at_ms = firing ? starts_ms : (sc->now_ms > starts_ms ? sc->now_ms : starts_ms),
    };
    return ka_alert_transition(sc->tx, &a, firing, sc->errstr, sc->errlen);
}

static int collect(void *ud, const ka_pgres_t *res)
{
    scan_t *sc = ud;
    sc->nrows = ka_pgres_rows(res);
    sc->rows = ka_calloc((size_t)sc->nrows + 1, sizeof *sc->rows);
    for (int i = 0; i < sc->nrows; i++) {
        for (int c = 0; c < 6; c++)
            sc->rows[i].v[c] = ka_strdup(ka_pgres_value(res, i, c) ? ka_pgres_value(res, i, c) : "");
        sc->rows[i].starts_ms = ka_pgres_int(res, i, 6, 0);
    }
    return 0;
}

static void free_rows(scan_t *sc)
{
    for (int i = 0; i < sc->nrows; i++)
        for (int c = 0; c < 6; c++)
            free(sc->rows[i].v[c]);
    free(sc->rows);
    sc->rows = NULL;
    sc->nrows = 0;
}

/* Runs one query and raises a transition for every row it returns. */
static ka_err_t run_query(scan_t *sc, const char *stmt, int firing, int *count)
{
    char now[24], days[16];
    snprintf(now, sizeof now, "%lld", (long long)sc->now_ms);
    snprintf(days, sizeof days, "%d", sc->no_visit_days);
    ka_pg_param_t p[2] = {{now, 0, 0}, {days, 0, 0}};
    /* Only the no-visit rule takes the day limit. */
    int np = strstr(stmt, "no_visit") ? 2 : 1;
    ka_err_t rc = ka_pg_pipe_push(ka_tx_pg(sc->tx), stmt, np, p, collect, sc, sc->errstr,
                                  sc->errlen);
    if (rc == KA_OK)
        rc = ka_tx_flush(sc->tx, sc->errstr, sc->errlen);
    for (int i = 0; rc == KA_OK && i < sc->nrows; i++) {
        found_t *f = &sc->rows[i];
        rc = transition(sc, f->v, f->starts_ms, firing);
        (*count)++;
    }
    free_rows(sc);
    return rc;
}

#define NOW "to_timestamp($1::bigint / 1000.0)"
#define NO_VISIT "$2::int * interval '1 day'"
#define DWELL_CAUSE "coalesce(a.details->>'cause', 'stage_dwell')"
/* When the deal's silence began: the account's last visit, or the deal's
 * start when that came later (a new deal is not stalled on day one). */
#define SILENT_SINCE "greatest(ac.last_activity_at, coalesce((SELECT min(h.occurred_at) FROM " \
    "opportunity_stage_history h WHERE h.opportunity_id = o.id), o.stage_entered_at))"

static const char *statements[][2] = {
    {"opp_stalled_new",
     "SELECT o.id, o.stage_code, o.owner_rep_id, "
     "floor(extract(epoch FROM " NOW " - o.stage_entered_at) / 86400)::bigint, "
     "s.max_dwell_days, 'stage_dwell', (extract(epoch FROM o.stage_entered_at + "
     "s.max_dwell_days * interval '1 day') * 1000)::bigint "
     "FROM opportunity o JOIN funnel_stage s ON s.definition_id = o.definition_id "
     "AND s.code = o.stage_code "
     "WHERE o.status = 'open' AND s.max_dwell_days IS NOT NULL "
     "AND o.stage_entered_at + s.max_dwell_days * interval '1 day' < " NOW " "
     "AND NOT EXISTS (SELECT 1 FROM alert_state a WHERE a.type = 'stalled_opportunity' "
     "AND a.subject_id = o.id AND a.status = 'firing' AND " DWELL_CAUSE " = 'stage_dwell') "
     "ORDER BY o.stage_entered_at LIMIT 500"},
    {"opp_stalled_over",
     "SELECT a.subject_id, a.details->>'stage_code', a.details->>'owner_rep_id', "
     "a.details->>'days_in_stage', a.details->>'max_dwell_days', 'stage_dwell', "
     "(extract(epoch FROM a.starts_at) * 1000)::bigint "
     "FROM alert_state a LEFT JOIN opportunity o ON o.id = a.subject_id "
     "LEFT JOIN funnel_stage s ON s.definition_id = o.definition_id AND s.code = o.stage_code "
     "WHERE a.type = 'stalled_opportunity' AND a.status = 'firing' "
     "AND " DWELL_CAUSE " = 'stage_dwell' AND (o.id IS NULL "
     "OR o.status <> 'open' OR o.stage_code IS DISTINCT FROM a.details->>'stage_code' "
     "OR s.max_dwell_days IS NULL "
     "OR o.stage_entered_at + s.max_dwell_days * interval '1 day' >= " NOW ") "
     "ORDER BY a.starts_at LIMIT 500"},
    {"opp_no_visit_new",
     "SELECT o.id, o.stage_code, o.owner_rep_id, "
     "floor(extract(epoch FROM " NOW " - " SILENT_SINCE ") / 86400)::bigint, $2::int, "
     "'no_visit', (extract(epoch FROM " SILENT_SINCE " + " NO_VISIT ") * 1000)::bigint "
     "FROM opportunity o JOIN account ac ON ac.id = o.account_id "
     "WHERE o.status = 'open' AND " SILENT_SINCE " + " NO_VISIT " < " NOW " "
     "AND NOT EXISTS (SELECT 1 FROM alert_state a WHERE a.type = 'stalled_opportunity' "
     "AND a.subject_id = o.id AND a.status = 'firing' AND a.details->>'cause' = 'no_visit') "
     "ORDER BY o.id LIMIT 500"},
    {"opp_no_visit_over",
     "SELECT a.subject_id, a.details->>'stage_code', a.details->>'owner_rep_id', "
     "a.details->>'days_without_visit', a.details->>'max_days_without_visit', 'no_visit', "
     "(extract(epoch FROM a.starts_at) * 1000)::bigint "
     "FROM alert_state a LEFT JOIN opportunity o ON o.id = a.subject_id "
     "LEFT JOIN account ac ON ac.id = o.account_id "
     "WHERE a.type = 'stalled_opportunity' AND a.status = 'firing' "
     "AND a.details->>'cause' = 'no_visit' AND (o.id IS NULL OR o.status <> 'open' "
     "OR ac.last_activity_at + " NO_VISIT " >= " NOW ") "
     "ORDER BY a.starts_at LIMIT 500"},
};

ka_err_t opp_stalled_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
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
    if ((rc = run_query(sc, "opp_stalled_over", 0, &sc->resolved)) ||
        (rc = run_query(sc, "opp_stalled_new", 1, &sc->fired)) ||
        (rc = run_query(sc, "opp_no_visit_over", 0, &sc->resolved)) ||
        (rc = run_query(sc, "opp_no_visit_new", 1, &sc->fired)))
        return rc;
    /* Its run, clock and counts, as every scan records them (scan_run). */
    return ka_scan_record(tx, "stalled_opportunity", sc->now_ms, sc->fired, sc->resolved, errstr,
                          errlen);
}

ka_err_t opp_stalled_scan(ka_worker_t *w, int64_t now_ms, int no_visit_days, int *fired,
                          int *resolved, char *errstr, size_t errlen)
{
    scan_t sc;
    memset(&sc, 0, sizeof sc);
    sc.now_ms = now_ms;
    sc.no_visit_days = no_visit_days;
    ka_err_t rc = ka_worker_transaction(w, scan, &sc, errstr, errlen);
    *fired = rc == KA_OK ? sc.fired : 0;
    *resolved = rc == KA_OK ? sc.resolved : 0;
    return rc;
}

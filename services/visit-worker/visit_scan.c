/* Visit-overdue and decision-maker-gap alerts, and the periodic scan that
 * raises and (as a safety net) resolves them; see visit_scan.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka/v1/alert.pb-c.h"
#include "ka_alert.h"
#include "visit_scan.h"

/* Stage 05 of the default funnel is 50%: the decision-maker rule covers every
 * open stage at least that likely, in any funnel definition. */
#define DM_MIN_PROBABILITY_BP "5000"
#define SCAN_LOCK "SELECT pg_try_advisory_xact_lock(4242012)"
#define SCAN_LIMIT "500"

const char *visit_overdue_severity(const char *tier)
{
    if (tier && strcmp(tier, "A") == 0)
        return "critical";
    if (tier && strcmp(tier, "B") == 0)
        return "warning";
    return "info";
}

static void utc_date(int64_t ms, char out[16])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

ka_err_t visit_overdue_alert(ka_tx_t *tx, const char *account, const char *severity,
                             const char *rep, int64_t due_ms, int64_t at_ms, int firing,
                             const char *cause, char *errstr, size_t errlen)
{
    char fp[KA_FINGERPRINT_LEN], summary[256], due[16];
    const char *labels[] = {account};
    ka_alert_fingerprint(fp, "visit_overdue", labels, 1);
    utc_date(due_ms, due);
    if (firing)
        snprintf(summary, sizeof summary, "follow-up visit to account %s was due on %s", account,
                 due);
    else
        snprintf(summary, sizeof summary, "account %s was visited again (follow-up due %s)",
                 account, due);
    const char *keys[] = {"account_id", "rep_id", "due_date"};
    const char *vals[] = {account, rep ? rep : "", due};
    ka_alert_t a = {
        .type = "visit_overdue",
        .proto_type = KA__V1__ALERT_TYPE__ALERT_TYPE_VISIT_OVERDUE,
        .severity = severity,
        .subject_kind = "account",
        .subject_id = account,
        .fingerprint = fp,
        .summary = summary,
        .detail_keys = keys,
        .detail_values = vals,
        .ndetails = 3,
        .starts_at_ms = due_ms,
        .at_ms = at_ms > due_ms ? at_ms : due_ms,
        .causes = cause ? &cause : NULL,
        .ncauses = cause ? 1 : 0,
    };
    return ka_alert_transition(tx, &a, firing, errstr, errlen);
}

ka_err_t visit_dm_gap_alert(ka_tx_t *tx, const char *opp, const char *account, const char *owner,
                            const char *stage, int64_t starts_ms, int64_t at_ms, int firing,
                            const char *cause, char *errstr, size_t errlen)
{
    char fp[KA_FINGERPRINT_LEN], summary[300];
    const char *labels[] = {opp};
    ka_alert_fingerprint(fp, "decision_maker_gap", labels, 1);
    if (firing)
        snprintf(summary, sizeof summary, "opportunity %s is at stage %s but nobody has met a "
                 "decision maker of account %s recently", opp, stage, account);
    else
        snprintf(summary, sizeof summary, "opportunity %s: a decision maker was met, or the deal "
                 "closed or moved back", opp);
    const char *keys[] = {"opportunity_id", "account_id", "owner_rep_id", "stage_code"};
    const char *vals[] = {opp, account, owner, stage};
    ka_alert_t a = {
        .type = "decision_maker_gap",
        .proto_type = KA__V1__ALERT_TYPE__ALERT_TYPE_DECISION_MAKER_GAP,
        .severity = "warning",
        .subject_kind = "opportunity",
        .subject_id = opp,
        .fingerprint = fp,
        .summary = summary,
        .detail_keys = keys,
        .detail_values = vals,
        .ndetails = 4,
        .starts_at_ms = starts_ms,
        .at_ms = at_ms > starts_ms ? at_ms : starts_ms,
        .causes = cause ? &cause : NULL,
        .ncauses = cause ? 1 : 0,
    };
    return ka_alert_transition(tx, &a, firing, errstr, errlen);
}

#define MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"
#define NOW "to_timestamp($1::bigint / 1000.0)"
#define GAP "$2::int * interval '1 day'"

static const char *statements[][2] = {
    {"visit_overdue_new",
     "SELECT f.account_id, a.tier, f.rep_id, '', " MS("f.next_due_at") " "
     "FROM follow_up f JOIN account a ON a.id = f.account_id "
     "WHERE f.next_due_at < " NOW " AND NOT EXISTS (SELECT 1 FROM alert_state al "
     "WHERE al.subject_kind = 'account' AND al.subject_id = f.account_id "
     "AND al.type = 'visit_overdue' AND al.status = 'firing') "
     "ORDER BY f.next_due_at, f.account_id LIMIT " SCAN_LIMIT},
    /* Visits resolve their account's alert as they are applied; this catches
     * plans that ended or moved any other way. */
    {"visit_overdue_over",
     "SELECT al.subject_id, al.severity, al.details->>'rep_id', '', " MS("al.starts_at") " "
     "FROM alert_state al LEFT JOIN follow_up f ON f.account_id = al.subject_id "
     "WHERE al.type = 'visit_overdue' AND al.status = 'firing' AND (f.account_id IS NULL "
     "OR f.next_due_at >= " NOW " OR f.next_due_at <> al.starts_at) "
     "ORDER BY al.starts_at, al.subject_id LIMIT " SCAN_LIMIT},
    {"visit_dm_new",
     "SELECT o.id, o.account_id, o.owner_rep_id, o.stage_code, "
     MS("greatest(o.stage_entered_at, a.last_decision_maker_visit_at + " GAP ")") " "
     "FROM opportunity o JOIN account a ON a.id = o.account_id "
     "WHERE o.status = 'open' AND o.win_probability_bp >= " DM_MIN_PROBABILITY_BP " "
     "AND (a.last_decision_maker_visit_at IS NULL "
     "OR a.last_decision_maker_visit_at < " NOW " - " GAP ") "
     "AND NOT EXISTS (SELECT 1 FROM alert_state al WHERE al.subject_kind = 'opportunity' "
     "AND al.subject_id = o.id AND al.type = 'decision_maker_gap' AND al.status = 'firing') "
     "ORDER BY o.id LIMIT " SCAN_LIMIT},
    {"visit_dm_over",
     "SELECT al.subject_id, al.details->>'account_id', al.details->>'owner_rep_id', "
     "al.details->>'stage_code', " MS("al.starts_at") " "
     "FROM alert_state al LEFT JOIN opportunity o ON o.id = al.subject_id "
     "LEFT JOIN account a ON a.id = o.account_id "
     "WHERE al.type = 'decision_maker_gap' AND al.status = 'firing' AND (o.id IS NULL "
     "OR o.status <> 'open' OR o.win_probability_bp < " DM_MIN_PROBABILITY_BP " "
     "OR a.last_decision_maker_visit_at >= " NOW " - " GAP ") "
     "ORDER BY al.starts_at, al.subject_id LIMIT " SCAN_LIMIT},
    {"visit_scan_record",
     "INSERT INTO scan_run (name, consumer_group, clock_at, fired, resolved, finished_at) "
     "VALUES ($1, $2, to_timestamp($3::bigint / 1000.0), $4, $5, now()) "
     "ON CONFLICT (name) DO UPDATE SET consumer_group = EXCLUDED.consumer_group, "
     "clock_at = EXCLUDED.clock_at, fired = EXCLUDED.fired, resolved = EXCLUDED.resolved, "
     "finished_at = EXCLUDED.finished_at"},
};

ka_err_t visit_scan_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

/* One row of a scan query, copied out: statements may not be queued from
 * inside a result callback. Columns: subject, then three labels, then the
 * episode start. */
typedef struct found {
    char *v[4];
    int64_t starts_ms;
} found_t;

typedef struct scan {
    ka_tx_t *tx;
    int64_t now_ms;
    int gap_days;
    int locked;
    found_t *rows;
    int nrows;
    visit_scan_counts_t counts;
    char *errstr;
    size_t errlen;
} scan_t;

static int read_lock(void *ud, const ka_pgres_t *res)
{
    const char *v = ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : NULL;
    ((scan_t *)ud)->locked = v && v[0] == 't';
    return 0;
}

static int collect(void *ud, const ka_pgres_t *res)
{
    scan_t *sc = ud;
    sc->nrows = ka_pgres_rows(res);
    sc->rows = ka_calloc((size_t)sc->nrows + 1, sizeof *sc->rows);
    for (int i = 0; i < sc->nrows; i++) {
        for (int c = 0; c < 4; c++) {
            const char *v = ka_pgres_value(res, i, c);
            sc->rows[i].v[c] = ka_strdup(v ? v : "");
        }
        sc->rows[i].starts_ms = ka_pgres_int(res, i, 4, 0);
    }
    return 0;
}

static void free_rows(scan_t *sc)
{
    for (int i = 0; i < sc->nrows; i++)
        for (int c = 0; c < 4; c++)
            free(sc->rows[i].v[c]);
    free(sc->rows);
    sc->rows = NULL;
    sc->nrows = 0;
}

typedef enum { OVERDUE_NEW, OVERDUE_OVER, DM_NEW, DM_OVER } rule_t;

static ka_err_t run_rule(scan_t *sc, const char *stmt, rule_t rule, int *count)
{
    char now[24], gap[16];
    snprintf(now, sizeof now, "%lld", (long long)sc->now_ms);
    snprintf(gap, sizeof gap, "%d", sc->gap_days);
    ka_pg_param_t p[2] = {{now, 0, 0}, {gap, 0, 0}};
    int np = rule == DM_NEW || rule == DM_OVER ? 2 : 1;
    ka_err_t rc = ka_pg_pipe_push(ka_tx_pg(sc->tx), stmt, np, p, collect, sc, sc->errstr,
                                  sc->errlen);
    if (rc == KA_OK)
        rc = ka_tx_flush(sc->tx, sc->errstr, sc->errlen);
    for (int i = 0; rc == KA_OK && i < sc->nrows; i++) {
        found_t *f = &sc->rows[i];
        switch (rule) {
        case OVERDUE_NEW: /* the firing happened when the due date passed */
            rc = visit_overdue_alert(sc->tx, f->v[0], visit_overdue_severity(f->v[1]), f->v[2],
                                     f->starts_ms, f->starts_ms, 1, NULL, sc->errstr, sc->errlen);
            break;
        case OVERDUE_OVER:
            rc = visit_overdue_alert(sc->tx, f->v[0], f->v[1], f->v[2], f->starts_ms, sc->now_ms,
                                     0, NULL, sc->errstr, sc->errlen);
            break;
        case DM_NEW:
            rc = visit_dm_gap_alert(sc->tx, f->v[0], f->v[1], f->v[2], f->v[3], f->starts_ms,
                                    f->starts_ms, 1, NULL, sc->errstr, sc->errlen);
            break;
        case DM_OVER:
            rc = visit_dm_gap_alert(sc->tx, f->v[0], f->v[1], f->v[2], f->v[3], f->starts_ms,
                                    sc->now_ms, 0, NULL, sc->errstr, sc->errlen);
            break;
        }
        (*count)++;
    }
    free_rows(sc);
    return rc;
}

static ka_err_t record(scan_t *sc, const char *name, int fired, int resolved)
{
    char now[24], f[16], r[16];
    snprintf(now, sizeof now, "%lld", (long long)sc->now_ms);
    snprintf(f, sizeof f, "%d", fired);
    snprintf(r, sizeof r, "%d", resolved);
    ka_pg_param_t p[5] = {{name, 0, 0}, {ka_tx_group(sc->tx), 0, 0}, {now, 0, 0}, {f, 0, 0},
                          {r, 0, 0}};
    return ka_pg_pipe_push(ka_tx_pg(sc->tx), "visit_scan_record", 5, p, NULL, NULL, sc->errstr,
                           sc->errlen);
}

static ka_err_t scan(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    scan_t *sc = ud;
    visit_scan_counts_t *c = &sc->counts;
    ka_err_t rc;
    sc->tx = tx;
    sc->errstr = errstr;
    sc->errlen = errlen;
    /* One scanner at a time; the lock ends with the transaction. */
    if ((rc = ka_pg_pipe_push(ka_tx_pg(tx), SCAN_LOCK, 0, NULL, read_lock, sc, errstr, errlen)) ||
        (rc = ka_tx_flush(tx, errstr, errlen)))
        return rc;
    if (!sc->locked) {
        c->skipped = 1;
        return KA_OK;
    }
    /* Resolve first: an episode that ended makes room for the next one. */
    if ((rc = run_rule(sc, "visit_overdue_over", OVERDUE_OVER, &c->overdue_resolved)) ||
        (rc = run_rule(sc, "visit_overdue_new", OVERDUE_NEW, &c->overdue_fired)) ||
        (rc = run_rule(sc, "visit_dm_over", DM_OVER, &c->dm_resolved)) ||
        (rc = run_rule(sc, "visit_dm_new", DM_NEW, &c->dm_fired)) ||
        (rc = record(sc, "visit_overdue", c->overdue_fired, c->overdue_resolved)))
        return rc;
    return record(sc, "decision_maker_gap", c->dm_fired, c->dm_resolved);
}

ka_err_t visit_scan_run(ka_worker_t *w, int64_t now_ms, int gap_days, visit_scan_counts_t *out,
                        char *errstr, size_t errlen)
{
    scan_t sc;
    memset(&sc, 0, sizeof sc);
    sc.now_ms = now_ms;
    sc.gap_days = gap_days;
    ka_err_t rc = ka_worker_transaction(w, scan, &sc, errstr, errlen);
    free_rows(&sc);
    if (rc == KA_OK)
        *out = sc.counts;
    else
        memset(out, 0, sizeof *out);
    return rc;
}

/* The forecast worker's daily and periodic rules: snapshots, forecast
 * accuracy, derived funnel baselines, slipping deals and forecast gaps (see
 * forecast_scan.h). Every date is the worker's clock (ka_now_ms, UTC), sent
 * to SQL as a parameter, so KA_CLOCK_OFFSET_MS moves all of them. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "forecast_gap.h"
#include "forecast_scan.h"
#include "ka/v1/alert.pb-c.h"
#include "ka_alert.h"
#include "ka_log.h"
#include "ka_scan.h"

/* One advisory lock per rule, beside the recompute's 4242015 (and the gap
 * rule's FORECAST_GAP_LOCK, which the recompute takes too). */
#define SNAPSHOT_LOCK 4242021
#define ACCURACY_LOCK 4242022
#define BASELINE_LOCK 4242023
#define SLIPPING_LOCK 4242024

#define DAY_MS 86400000LL
/* Alert transitions per transaction; a backlog takes a few rounds of one
 * tick (at most SLIPPING_ROUNDS), the rest waits for the next tick. */
#define SCAN_LIMIT 500
#define SLIPPING_ROUNDS 20
/* A deal pushed out more than this many times in a quarter is slipping. */
#define MAX_PUSHES 2

struct forecast_scan {
    int64_t interval_ms, next_mono;
    int baseline_periods;
    /* The pace as cumulative percentages at the end of each tenth of the
     * period, as a PostgreSQL int[] literal. */
    char pace[64];
    /* UTC day number (ms / DAY_MS) each daily rule last completed; -1:
     * never in this process. */
    long long snapshot_day, accuracy_day, baseline_day;
    /* The gap rule is due (its interval came) but has not run: another
     * instance's recompute or scan held its lock; tried again each tick. */
    int gap_due;
};

/* Set by forecast_scan_new when KA_FORECAST_PACE is malformed; makes
 * forecast_scan_prepare fail, so the worker refuses to start with the reason
 * (ka_worker_new calls handler.prepare once, after forecast_scan_new). */
static char pace_error[480];

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long day_of(int64_t ms)
{
    return ms >= 0 ? ms / DAY_MS : -((-ms + DAY_MS - 1) / DAY_MS);
}

/* "YYYY-MM-DD" of the UTC day of ms. */
static void utc_date(int64_t ms, char out[16])
{
    time_t t = (time_t)(day_of(ms) * (DAY_MS / 1000));
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

/* "YYYY-MM-01" of the quarter containing the date "YYYY-MM-DD". */
static void quarter_start(const char *date, char out[16])
{
    unsigned y = 0, m = 1;
    if (sscanf(date, "%4u-%2u", &y, &m) != 2 || m < 1 || m > 12)
        m = 1;
    snprintf(out, 16, "%04u-%02u-01", y % 10000, (m - 1) / 3 * 3 + 1);
}

/* KA_FORECAST_PACE: "linear", or ten comma-separated whole percentages, the
 * share of the quota due by the end of each tenth of the period: each 0..100,
 * never decreasing, the last 100. Writes the int[] literal to out. Returns 0,
 * or -1 with the reason in err. */
static int parse_pace(const char *v, char *out, size_t outlen, char *err, size_t errlen)
{
    int pct[10], n = 0;
    const char *p = v;
    while (isspace((unsigned char)*p))
        p++;
    if (strncasecmp(p, "linear", 6) == 0) {
        const char *q = p + 6;
        while (isspace((unsigned char)*q))
            q++;
        if (!*q) {
            snprintf(out, outlen, "{10,20,30,40,50,60,70,80,90,100}");
            return 0;
        }
    }
    for (;;) {
        char *end = NULL;
        while (isspace((unsigned char)*p))
            p++;
        if (!isdigit((unsigned char)*p)) {
            snprintf(err, errlen, "item %d is not a whole number", n + 1);
            return -1;
        }
        long x = strtol(p, &end, 10);
        if (x > 100) {
            snprintf(err, errlen, "item %d is %ld, over 100", n + 1, x);
            return -1;
        }
        if (n == 10) {
            snprintf(err, errlen, "more than 10 items");
            return -1;
        }
        if (n > 0 && x < pct[n - 1]) {
            snprintf(err, errlen, "item %d (%ld) is less than item %d (%d): the percentages are "
                     "cumulative", n + 1, x, n, pct[n - 1]);
            return -1;
        }
        pct[n++] = (int)x;
        p = end;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        if (*p != ',') {
            snprintf(err, errlen, "unexpected \"%c\" after item %d", *p, n);
            return -1;
        }
        p++;
    }
    if (n != 10) {
        snprintf(err, errlen, "%d item%s, 10 needed", n, n == 1 ? "" : "s");
        return -1;
    }
    if (pct[9] != 100) {
        snprintf(err, errlen, "the last item is %d: the whole quota is due by the period's end, "
                 "so it must be 100", pct[9]);
        return -1;
    }
    snprintf(out, outlen, "{%d,%d,%d,%d,%d,%d,%d,%d,%d,%d}", pct[0], pct[1], pct[2], pct[3],
             pct[4], pct[5], pct[6], pct[7], pct[8], pct[9]);
    return 0;
}

forecast_scan_t *forecast_scan_new(const ka_config_t *cfg)
{
    char why[160];
    forecast_scan_t *s = ka_calloc(1, sizeof *s);
    s->interval_ms = ka_config_int(cfg, "KA_SCAN_INTERVAL_MS");
    s->baseline_periods = (int)ka_config_int(cfg, "KA_BASELINE_PERIODS");
    s->snapshot_day = s->accuracy_day = s->baseline_day = -1;
    const char *pace = ka_config_str(cfg, "KA_FORECAST_PACE");
    pace_error[0] = '\0';
    if (parse_pace(pace, s->pace, sizeof s->pace, why, sizeof why) != 0) {
        snprintf(pace_error, sizeof pace_error,
                 "KA_FORECAST_PACE \"%.40s\": %s (give linear, or 10 comma-separated cumulative "
                 "percentages, e.g. 5,10,20,30,40,50,60,75,90,100)", pace, why);
        /* Never used (the worker does not start), but keep the scan sane. */
        snprintf(s->pace, sizeof s->pace, "{10,20,30,40,50,60,70,80,90,100}");
    }
    return s;
}

void forecast_scan_free(forecast_scan_t *s)
{
    free(s);
}

/* Alerts ------------------------------------------------------------------------ */

static ka_err_t slipping_alert(ka_tx_t *tx, const char *opp, const char *owner,
                               const char *close, const char *pushes, const char *reason,
                               const char *outcome, int64_t starts_ms, int64_t at_ms, int firing,
                               char *errstr, size_t errlen)
{
    char fp[KA_FINGERPRINT_LEN], summary[320];
    const char *labels[] = {opp};
    ka_alert_fingerprint(fp, "slipping_deal", labels, 1);
    if (firing && strcmp(reason, "close_date_passed") == 0)
        snprintf(summary, sizeof summary, "opportunity %s of rep %s was expected to close on %s "
                 "and is still open", opp, owner, close);
    else if (firing)
        snprintf(summary, sizeof summary, "opportunity %s of rep %s was pushed out %s times this "
                 "quarter (now expected on %s)", opp, owner, pushes, close[0] ? close : "no date");
    else if (strcmp(outcome, "open") != 0)
        snprintf(summary, sizeof summary, "opportunity %s is no longer open (%s)", opp, outcome);
    else
        snprintf(summary, sizeof summary, "opportunity %s has a realistic close date again "
                 "(%s, pushed out %s times this quarter)", opp, close[0] ? close : "none", pushes);
    const char *keys[] = {"opportunity_id", "owner_rep_id", "expected_close_date", "pushes",
                          "reason"};
    const char *vals[] = {opp, owner, close, pushes, reason};
    ka_alert_t a = {
        .type = "slipping_deal",
        .proto_type = KA__V1__ALERT_TYPE__ALERT_TYPE_SLIPPING_DEAL,
        .severity = "warning",
        .subject_kind = "opportunity",
        .subject_id = opp,
        .fingerprint = fp,
        .summary = summary,
        .detail_keys = keys,
        .detail_values = vals,
        .ndetails = 5,
        .starts_at_ms = starts_ms,
        .at_ms = at_ms,
    };
    return ka_alert_transition(tx, &a, firing, errstr, errlen);
}

/* Statements ---------------------------------------------------------------------- */

#define MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"
/* The worker's clock: $1 is always today ("YYYY-MM-DD", UTC); statements
 * that stamp a time take the clock in ms as $2 (CLOCK). */
#define CLOCK "to_timestamp($2::bigint / 1000.0)"
#define PERIOD_END(f)                                                                            \
    "(" f ".period_start + CASE " f ".period_kind WHEN 'month' THEN interval '1 month' "         \
    "ELSE interval '3 months' END)::date"

static const char *statements[][2] = {
    /* Snapshots of today, each table's rows at most once per date: a second
     * run of the same day (a restart, another instance) adds only what the
     * first did not see and changes nothing it wrote. Zero rows of
     * funnel_state are kept: a stage that was empty that day means 0 in a
     * baseline, not "no data". */
    {"fscan_snap_funnel",
     "WITH ins AS (INSERT INTO funnel_snapshot (node_id, definition_id, stage_code, "
     "snapshot_date, open_count, amount_minor, weighted_amount_minor, taken_at) "
     "SELECT node_id, definition_id, stage_code, $1::date, open_count, amount_minor, "
     "weighted_amount_minor, " CLOCK " FROM funnel_state "
     "WHERE open_count >= 0 AND amount_minor >= 0 AND weighted_amount_minor >= 0 "
     "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM ins"},
    {"fscan_snap_forecast",
     "WITH ins AS (INSERT INTO forecast_snapshot (node_id, period_kind, period_start, "
     "snapshot_date, raw_closed_minor, raw_commit_minor, raw_best_case_minor, "
     "raw_pipeline_minor, raw_weighted_pipeline_minor, adj_closed_minor, adj_commit_minor, "
     "adj_best_case_minor, adj_pipeline_minor, adj_weighted_pipeline_minor, quota_minor, "
     "taken_at) SELECT f.node_id, f.period_kind, f.period_start, $1::date, f.raw_closed_minor, "
     "f.raw_commit_minor, f.raw_best_case_minor, f.raw_pipeline_minor, "
     "f.raw_weighted_pipeline_minor, f.adj_closed_minor, f.adj_commit_minor, "
     "f.adj_best_case_minor, f.adj_pipeline_minor, f.adj_weighted_pipeline_minor, "
     "f.quota_minor, " CLOCK " FROM forecast f WHERE " PERIOD_END("f") " > $1::date "
     "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM ins"},
    /* Open deals, and those closed since the start of the day before: the
     * snapshot is taken early in its day, so a deal closed late yesterday
     * (after yesterday's snapshot) is still seen with its outcome. */
    {"fscan_snap_opportunity",
     "WITH ins AS (INSERT INTO opportunity_snapshot (snapshot_date, opportunity_id, "
     "owner_rep_id, status, stage_code, amount_minor, expected_close_date) "
     "SELECT $1::date, id, owner_rep_id, status, stage_code, amount_minor, expected_close_date "
     "FROM opportunity WHERE status = 'open' "
     "OR closed_at >= ($1::date - 1)::timestamp AT TIME ZONE 'UTC' "
     "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM ins"},
    /* Every node-period that ended before today and has no accuracy yet: for
     * each lead, the latest snapshot at or before (period end - lead), where
     * the end is the first day after the period; forecast = its adjusted
     * closed + commit; actual = the node's booked revenue in the period's
     * months (actual_rollup). accuracy_bp rounded half up; NULL when the
     * forecast is not positive. A lead without a snapshot is skipped. */
    {"fscan_accuracy",
     "WITH ended AS (SELECT f.node_id, f.period_kind, f.period_start, " PERIOD_END("f")
     " AS period_end FROM forecast f WHERE " PERIOD_END("f") " <= $1::date "
     "AND NOT EXISTS (SELECT 1 FROM forecast_accuracy a WHERE a.node_id = f.node_id "
     "AND a.period_kind = f.period_kind AND a.period_start = f.period_start)), "
     "picked AS (SELECT e.node_id, e.period_kind, e.period_start, e.period_end, l.lead_days, "
     "s.snapshot_date, s.adj_closed_minor + s.adj_commit_minor AS forecast_minor "
     "FROM ended e CROSS JOIN (VALUES (30), (60), (90)) AS l (lead_days) "
     "JOIN LATERAL (SELECT x.snapshot_date, x.adj_closed_minor, x.adj_commit_minor "
     "FROM forecast_snapshot x WHERE x.node_id = e.node_id AND x.period_kind = e.period_kind "
     "AND x.period_start = e.period_start AND x.snapshot_date <= e.period_end - l.lead_days "
     "ORDER BY x.snapshot_date DESC LIMIT 1) s ON true), "
     "act AS (SELECT p.node_id, p.period_kind, p.period_start, "
     "coalesce(sum(r.amount_minor), 0) AS actual_minor FROM (SELECT DISTINCT node_id, "
     "period_kind, period_start, period_end FROM picked) p LEFT JOIN actual_rollup r "
     "ON r.node_id = p.node_id AND r.period_month >= p.period_start "
     "AND r.period_month < p.period_end GROUP BY p.node_id, p.period_kind, p.period_start), "
     "ins AS (INSERT INTO forecast_accuracy (node_id, period_kind, period_start, lead_days, "
     "snapshot_date, forecast_minor, actual_minor, accuracy_bp, computed_at) "
     "SELECT p.node_id, p.period_kind, p.period_start, p.lead_days, p.snapshot_date, "
     "p.forecast_minor, a.actual_minor, CASE WHEN p.forecast_minor > 0 THEN "
     "round(a.actual_minor::numeric * 10000 / p.forecast_minor)::bigint END, " CLOCK " "
     "FROM picked p JOIN act a ON a.node_id = p.node_id AND a.period_kind = p.period_kind "
     "AND a.period_start = p.period_start ON CONFLICT DO NOTHING RETURNING 1) "
     "SELECT count(*) FROM ins"},
    /* Derived baselines valid today: the mean (rounded half up) of the same
     * day of the month in each of the last $2 months; a month without that
     * day uses its last day (date - n months clamps). At least two of those
     * snapshots needed. Only nodes of the org tree and stages still defined
     * (the foreign keys of funnel_baseline). */
    {"fscan_baselines",
     "WITH days AS (SELECT ($1::date - i * interval '1 month')::date AS d "
     "FROM generate_series(1, $2::int) AS i), "
     "m AS (SELECT s.node_id, s.definition_id, s.stage_code, round(avg(s.open_count)) AS cnt, "
     "round(avg(s.amount_minor)) AS amt FROM funnel_snapshot s JOIN days ON s.snapshot_date = "
     "days.d JOIN org_node n ON n.id = s.node_id JOIN funnel_stage st "
     "ON st.definition_id = s.definition_id AND st.code = s.stage_code "
     "GROUP BY s.node_id, s.definition_id, s.stage_code HAVING count(*) >= 2), "
     "v AS (SELECT node_id, definition_id, stage_code, 'count' AS metric, cnt AS value FROM m "
     "UNION ALL SELECT node_id, definition_id, stage_code, 'amount', amt FROM m), "
     "ins AS (INSERT INTO funnel_baseline AS b (node_id, definition_id, stage_code, metric, "
     "value, source, valid_from, valid_to) SELECT node_id, definition_id, stage_code, metric, "
     "value::bigint, 'derived', $1::date, $1::date + 1 FROM v "
     "ON CONFLICT (node_id, definition_id, stage_code, metric, source, valid_from) DO UPDATE "
     "SET value = EXCLUDED.value, valid_to = EXCLUDED.valid_to, updated_at = now() "
     "WHERE b.value <> EXCLUDED.value OR b.valid_to <> EXCLUDED.valid_to RETURNING 1) "
     "SELECT count(*) FROM ins"},
    /* Open deals slipping without a firing alert: the close date passed, or
     * pushed out more than MAX_PUSHES ($3) times in the current quarter ($2).
     * The episode of a passed date starts the day after it, unless the
     * deal's previous episode ended later (a reopened deal): then now. */
    {"fscan_slipping_new",
     "WITH c AS (SELECT o.id, o.owner_rep_id, o.expected_close_date, "
     "CASE WHEN fo.pushes_quarter = $2::date THEN fo.pushes ELSE 0 END AS pushes "
     "FROM opportunity o LEFT JOIN forecast_opportunity fo ON fo.opportunity_id = o.id "
     "WHERE o.status = 'open' AND o.expected_close_date < $1::date "
     "UNION SELECT o.id, o.owner_rep_id, o.expected_close_date, fo.pushes "
     "FROM forecast_opportunity fo JOIN opportunity o ON o.id = fo.opportunity_id "
     "WHERE fo.pushes_quarter = $2::date AND fo.pushes > $3::int AND o.status = 'open') "
     "SELECT c.id, c.owner_rep_id, coalesce(c.expected_close_date::text, ''), c.pushes, "
     "CASE WHEN c.expected_close_date < $1::date THEN 'close_date_passed' ELSE 'pushed_out' END, "
     MS("((c.expected_close_date + 1)::timestamp AT TIME ZONE 'UTC')") ", "
     "(SELECT " MS("max(p.ends_at)") " FROM alert_state p WHERE p.subject_kind = 'opportunity' "
     "AND p.subject_id = c.id AND p.type = 'slipping_deal') "
     "FROM c WHERE NOT EXISTS (SELECT 1 FROM alert_state al WHERE al.subject_kind = "
     "'opportunity' AND al.subject_id = c.id AND al.type = 'slipping_deal' "
     "AND al.status = 'firing') ORDER BY c.id LIMIT $4::int"},
    /* Firing slipping alerts whose deal closed (or is gone), or has a close
     * date today or later and at most MAX_PUSHES pushes this quarter. */
    {"fscan_slipping_over",
     "SELECT al.subject_id, coalesce(o.owner_rep_id, al.details->>'owner_rep_id', ''), "
     "coalesce(o.expected_close_date::text, ''), "
     "coalesce(CASE WHEN fo.pushes_quarter = $2::date THEN fo.pushes END, 0), "
     "coalesce(al.details->>'reason', ''), coalesce(o.status, 'gone'), " MS("al.starts_at") " "
     "FROM alert_state al LEFT JOIN opportunity o ON o.id = al.subject_id "
     "LEFT JOIN forecast_opportunity fo ON fo.opportunity_id = al.subject_id "
     "WHERE al.type = 'slipping_deal' AND al.status = 'firing' AND al.subject_kind = "
     "'opportunity' AND (o.id IS NULL OR o.status <> 'open' OR ((o.expected_close_date IS NULL "
     "OR o.expected_close_date >= $1::date) AND coalesce(CASE WHEN fo.pushes_quarter = $2::date "
     "THEN fo.pushes END, 0) <= $3::int)) ORDER BY al.starts_at, al.subject_id LIMIT $4::int"},
};

/* Also prepares the alert statements (ka_alert_prepare) and the gap rule's
 * (forecast_gap_prepare), which the recompute shares: the worker must not
 * prepare them a second time. */
ka_err_t forecast_scan_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    ka_err_t rc;
    if (pace_error[0]) {
        snprintf(errstr, errlen, "%s", pace_error);
        return KA_ERR_CONFIG;
    }
    if ((rc = ka_alert_prepare(pg, errstr, errlen)) != KA_OK ||
        (rc = forecast_gap_prepare(pg, errstr, errlen)) != KA_OK)
        return rc;
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

/* Runs -------------------------------------------------------------------------- */

typedef struct run {
    forecast_scan_t *s;
    int64_t now_ms;
    char today[16], quarter[16], now[24];
    int locked, fired, resolved, rows;
} run_t;

static void run_init(run_t *r, forecast_scan_t *s)
{
    memset(r, 0, sizeof *r);
    r->s = s;
    r->now_ms = ka_now_ms();
    utc_date(r->now_ms, r->today);
    quarter_start(r->today, r->quarter);
    snprintf(r->now, sizeof r->now, "%lld", (long long)r->now_ms);
}

/* Runs a statement returning one count and adds it to r->rows. */
static ka_err_t count_query(run_t *r, ka_tx_t *tx, const char *stmt, int n,
                            const char *const *params, char *errstr, size_t errlen)
{
    ka_rows_t rows;
    ka_err_t rc = ka_rows_query(tx, stmt, n, params, &rows, errstr, errlen);
    if (rc == KA_OK && rows.nrows == 1)
        r->rows += (int)ka_rows_int(&rows, 0, 0, 0);
    ka_rows_free(&rows);
    return rc;
}

static ka_err_t run_snapshots(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    run_t *r = ud;
    const char *p[] = {r->today, r->now};
    ka_err_t rc;
    if ((rc = ka_scan_lock(tx, SNAPSHOT_LOCK, &r->locked, errstr, errlen)) || !r->locked)
        return rc;
    if ((rc = count_query(r, tx, "fscan_snap_funnel", 2, p, errstr, errlen)) ||
        (rc = count_query(r, tx, "fscan_snap_forecast", 2, p, errstr, errlen)) ||
        (rc = count_query(r, tx, "fscan_snap_opportunity", 1, p, errstr, errlen)))
        return rc;
    return ka_scan_record(tx, "forecast_snapshots", r->now_ms, r->rows, 0, errstr, errlen);
}

static ka_err_t run_accuracy(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    run_t *r = ud;
    const char *p[] = {r->today, r->now};
    ka_err_t rc;
    if ((rc = ka_scan_lock(tx, ACCURACY_LOCK, &r->locked, errstr, errlen)) || !r->locked)
        return rc;
    if ((rc = count_query(r, tx, "fscan_accuracy", 2, p, errstr, errlen)))
        return rc;
    return ka_scan_record(tx, "forecast_accuracy", r->now_ms, r->rows, 0, errstr, errlen);
}

static ka_err_t run_baselines(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    run_t *r = ud;
    char periods[16];
    ka_err_t rc;
    snprintf(periods, sizeof periods, "%d", r->s->baseline_periods);
    const char *p[] = {r->today, periods};
    if ((rc = ka_scan_lock(tx, BASELINE_LOCK, &r->locked, errstr, errlen)) || !r->locked)
        return rc;
    if ((rc = count_query(r, tx, "fscan_baselines", 2, p, errstr, errlen)))
        return rc;
    return ka_scan_record(tx, "funnel_baselines", r->now_ms, r->rows, 0, errstr, errlen);
}

static ka_err_t run_slipping(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    run_t *r = ud;
    char limit[16], maxp[8];
    ka_rows_t rows;
    ka_err_t rc;
    snprintf(limit, sizeof limit, "%d", SCAN_LIMIT);
    snprintf(maxp, sizeof maxp, "%d", MAX_PUSHES);
    const char *p[] = {r->today, r->quarter, maxp, limit};
    if ((rc = ka_scan_lock(tx, SLIPPING_LOCK, &r->locked, errstr, errlen)) || !r->locked)
        return rc;

    if ((rc = ka_rows_query(tx, "fscan_slipping_over", 4, p, &rows, errstr, errlen)))
        return rc;
    for (int i = 0; rc == KA_OK && i < rows.nrows; i++) {
        rc = slipping_alert(tx, ka_rows_str(&rows, i, 0), ka_rows_str(&rows, i, 1),
                            ka_rows_str(&rows, i, 2), ka_rows_str(&rows, i, 3),
                            ka_rows_str(&rows, i, 4), ka_rows_str(&rows, i, 5),
                            ka_rows_int(&rows, i, 6, 0), r->now_ms, 0, errstr, errlen);
        r->resolved++;
    }
    ka_rows_free(&rows);
    if (rc != KA_OK)
        return rc;

    if ((rc = ka_rows_query(tx, "fscan_slipping_new", 4, p, &rows, errstr, errlen)))
        return rc;
    for (int i = 0; rc == KA_OK && i < rows.nrows; i++) {
        const char *reason = ka_rows_str(&rows, i, 4);
        int64_t starts = r->now_ms;
        if (strcmp(reason, "close_date_passed") == 0) {
            /* the day after the close date, unless the last episode ended
             * after that (the deal was reopened): then the rule broke now */
            starts = ka_rows_int(&rows, i, 5, r->now_ms);
            if (!ka_rows_null(&rows, i, 6) && ka_rows_int(&rows, i, 6, 0) >= starts)
                starts = r->now_ms;
        }
        rc = slipping_alert(tx, ka_rows_str(&rows, i, 0), ka_rows_str(&rows, i, 1),
                            ka_rows_str(&rows, i, 2), ka_rows_str(&rows, i, 3), reason, "open",
                            starts, r->now_ms, 1, errstr, errlen);
        r->fired++;
    }
    ka_rows_free(&rows);
    if (rc == KA_OK)
        rc = ka_scan_record(tx, "slipping_deal", r->now_ms, r->fired, r->resolved, errstr,
                            errlen);
    return rc;
}

static ka_err_t run_gap(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    run_t *r = ud;
    ka_err_t rc;
    if ((rc = ka_scan_lock(tx, FORECAST_GAP_LOCK, &r->locked, errstr, errlen)) || !r->locked)
        return rc;
    if ((rc = forecast_gap_judge(tx, r->s->pace, r->today, r->now_ms, NULL, SCAN_LIMIT,
                                 &r->fired, &r->resolved, errstr, errlen)))
        return rc;
    return ka_scan_record(tx, "forecast_gap", r->now_ms, r->fired, r->resolved, errstr, errlen);
}

/* Runs a daily rule unless it completed today (by the worker's clock) in this
 * process; a failure is logged and retried at the next tick. */
static void daily(forecast_scan_t *s, ka_worker_t *w, long long *done_day, const char *what,
                  ka_err_t (*fn)(void *, ka_tx_t *, char *, size_t))
{
    char err[KA_ERRSTR_SIZE];
    run_t r;
    run_init(&r, s);
    long long today = day_of(r.now_ms);
    if (*done_day == today)
        return;
    if (ka_worker_transaction(w, fn, &r, err, sizeof err) != KA_OK) {
        ka_log(KA_LOG_WARN, "forecast daily rule failed", "{s:s,s:s}", "rule", what, "error",
               err);
        return;
    }
    /* Another instance holding the lock runs it; ours tries again next tick
     * and then finds its rows already there. */
    if (!r.locked)
        return;
    *done_day = today;
    ka_log(KA_LOG_INFO, "forecast daily rule done", "{s:s,s:s,s:i}", "rule", what, "date",
           r.today, "rows", r.rows);
}

/* The gap rule over every node-period; a failure is logged and waits for
 * the next interval. Its lock taken (a recompute judging the node-periods it
 * changed, or another instance's scan) leaves it due for the next tick:
 * skipping the interval would leave the pace's daily move unjudged. */
static void scan_gap(forecast_scan_t *s, ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE];
    run_t g;
    run_init(&g, s);
    if (ka_worker_transaction(w, run_gap, &g, err, sizeof err) != KA_OK) {
        ka_log(KA_LOG_WARN, "forecast-gap scan failed", "{s:s}", "error", err);
        s->gap_due = 0;
        return;
    }
    if (!g.locked)
        return;
    s->gap_due = 0;
    if (g.fired || g.resolved)
        ka_log(KA_LOG_INFO, "forecast-gap scan", "{s:i,s:i}", "fired", g.fired, "resolved",
               g.resolved);
}

const char *forecast_scan_pace(const forecast_scan_t *s)
{
    return s->pace;
}

void forecast_scan_tick(forecast_scan_t *s, ka_worker_t *w)
{
    char err[KA_ERRSTR_SIZE];
    int64_t mono = mono_ms();
    if (!s)
        return;
    if (mono < s->next_mono) {
        if (s->gap_due)
            scan_gap(s, w);
        return;
    }
    s->next_mono = mono + s->interval_ms;

    daily(s, w, &s->snapshot_day, "snapshots", run_snapshots);
    daily(s, w, &s->accuracy_day, "accuracy", run_accuracy);
    daily(s, w, &s->baseline_day, "baselines", run_baselines);

    for (int round = 0; round < SLIPPING_ROUNDS; round++) {
        run_t r;
        run_init(&r, s);
        if (ka_worker_transaction(w, run_slipping, &r, err, sizeof err) != KA_OK) {
            ka_log(KA_LOG_WARN, "slipping-deal scan failed", "{s:s}", "error", err);
            break;
        }
        if (r.fired || r.resolved)
            ka_log(KA_LOG_INFO, "slipping-deal scan", "{s:i,s:i}", "fired", r.fired,
                   "resolved", r.resolved);
        if (r.fired < SCAN_LIMIT && r.resolved < SCAN_LIMIT)
            break;
    }

    s->gap_due = 1;
    scan_gap(s, w);
}

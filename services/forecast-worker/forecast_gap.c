/* The forecast-gap rule, judged by the periodic scan and by the recompute
 * (see forecast_gap.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast_gap.h"
#include "ka/v1/alert.pb-c.h"
#include "ka_alert.h"
#include "ka_scan.h"

/* 1234567 minor units -> "12,345.67" (the deployment's currency has cents). */
static void money(const char *minor, char *out, size_t len)
{
    long long v = strtoll(minor, NULL, 10), a = v < 0 ? -v : v;
    char digits[32], grouped[48];
    int n = snprintf(digits, sizeof digits, "%lld", a / 100), g = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            grouped[g++] = ',';
        grouped[g++] = digits[i];
    }
    grouped[g] = '\0';
    snprintf(out, len, "%s%s.%02lld", v < 0 ? "-" : "", grouped, a % 100);
}

/* "2026-03" for a month, "2026-Q1" for a quarter starting "YYYY-MM-01". */
static void period_label(const char *kind, const char *start, char *out, size_t len)
{
    unsigned y = 0, m = 1;
    if (sscanf(start, "%4u-%2u", &y, &m) != 2 || m < 1 || m > 12)
        m = 1;
    if (strcmp(kind, "quarter") == 0)
        snprintf(out, len, "%04u-Q%u", y % 10000, (m - 1) / 3 + 1);
    else
        snprintf(out, len, "%04u-%02u", y % 10000, m);
}

static ka_err_t gap_alert(ka_tx_t *tx, const char *node, const char *kind, const char *start,
                          const char *quota, const char *actual, const char *expected,
                          int64_t starts_ms, int64_t at_ms, int firing, const char *why,
                          char *errstr, size_t errlen)
{
    char fp[KA_FINGERPRINT_LEN], summary[320], period[24], q[64], a_[64], e[64];
    const char *labels[] = {node, kind};
    ka_alert_fingerprint(fp, "forecast_gap", labels, 2);
    period_label(kind, start, period, sizeof period);
    money(quota, q, sizeof q);
    money(actual, a_, sizeof a_);
    money(expected, e, sizeof e);
    if (firing)
        snprintf(summary, sizeof summary, "node %s is behind pace for %s: closed + commit %s, "
                 "%s expected by now (quota %s)", node, period, a_, e, q);
    else
        snprintf(summary, sizeof summary, "node %s %s for %s: closed + commit %s, %s expected "
                 "(quota %s)", node, why, period, a_, e, q);
    const char *keys[] = {"node_id", "period", "period_kind", "period_start", "expected_minor",
                          "actual_minor", "quota_minor"};
    const char *vals[] = {node, period, kind, start, expected, actual, quota};
    ka_alert_t al = {
        .type = "forecast_gap",
        .proto_type = KA__V1__ALERT_TYPE__ALERT_TYPE_FORECAST_GAP,
        .severity = "warning",
        .subject_kind = "node",
        .subject_id = node,
        .fingerprint = fp,
        .summary = summary,
        .detail_keys = keys,
        .detail_values = vals,
        .ndetails = 7,
        .starts_at_ms = starts_ms,
        .at_ms = at_ms,
    };
    return ka_alert_transition(tx, &al, firing, errstr, errlen);
}

/* Statements ---------------------------------------------------------------------- */

#define MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"
#define PERIOD_END(f)                                                                            \
    "(" f ".period_start + CASE " f ".period_kind WHEN 'month' THEN interval '1 month' "         \
    "ELSE interval '3 months' END)::date"

/* Firing gap alerts of a period that is no longer current ($1 is today), or
 * whose row or quota went: the episode is over. `only` narrows the alerts. */
#define GAP_OVER(only)                                                                           \
    "SELECT al.subject_id, al.details->>'period_kind', al.details->>'period_start', "            \
    "coalesce(f.quota_minor::text, al.details->>'quota_minor', '0'), "                           \
    "coalesce((f.adj_closed_minor + f.adj_commit_minor)::text, al.details->>'actual_minor', "    \
    "'0'), coalesce(al.details->>'expected_minor', '0'), " MS("al.starts_at") ", "               \
    "CASE WHEN f.node_id IS NULL THEN 'has no forecast any more' "                               \
    "WHEN f.quota_minor IS NULL THEN 'has no quota any more' "                                   \
    "ELSE 'period ended' END "                                                                   \
    "FROM alert_state al LEFT JOIN forecast f ON f.node_id = al.subject_id "                     \
    "AND f.period_kind = al.details->>'period_kind' "                                            \
    "AND f.period_start::text = al.details->>'period_start' "                                    \
    "WHERE al.type = 'forecast_gap' AND al.status = 'firing' AND al.subject_kind = 'node' "      \
    "AND (f.node_id IS NULL OR f.quota_minor IS NULL "                                           \
    "OR f.period_start <> date_trunc(f.period_kind, $1::date::timestamp)::date) " only           \
    "ORDER BY al.starts_at, al.subject_id"

/* The current month's and quarter's rows with a quota (of `rows`, joined
 * to forecast f): expected = quota x pace(e / n), e = days of the period
 * before today ($1), n = its days; the pace ($2, cumulative % at the end of
 * each tenth) is interpolated linearly within the tenth k = floor(10e / n).
 * Rows whose state must change: behind without a firing alert, or caught up
 * with one; at most $3. */
#define GAP_VERDICT(rows)                                                                        \
    "WITH c AS (SELECT f.node_id, f.period_kind, f.period_start, f.quota_minor, "                \
    "f.adj_closed_minor + f.adj_commit_minor AS actual, $1::date - f.period_start AS e, "        \
    PERIOD_END("f") " - f.period_start AS n FROM forecast f " rows                               \
    "WHERE f.quota_minor IS NOT NULL "                                                           \
    "AND f.period_start = date_trunc(f.period_kind, $1::date::timestamp)::date), "               \
    "k AS (SELECT c.*, (10 * c.e) / c.n AS k FROM c), "                                          \
    "p AS (SELECT k.*, CASE WHEN k.k = 0 THEN 0 ELSE ($2::int[])[k.k] END AS lo, "               \
    "($2::int[])[k.k + 1] AS hi FROM k), "                                                       \
    "x AS (SELECT p.*, round(p.quota_minor::numeric * (p.lo * p.n + (p.hi - p.lo) * "            \
    "(10 * p.e - p.k * p.n)) / (100 * p.n))::bigint AS expected FROM p) "                        \
    "SELECT x.node_id, x.period_kind, x.period_start::text, x.quota_minor, x.actual, "           \
    "x.expected, x.actual < x.expected, " MS("al.starts_at") " FROM x "                          \
    "LEFT JOIN alert_state al ON al.subject_kind = 'node' AND al.subject_id = x.node_id "        \
    "AND al.type = 'forecast_gap' AND al.status = 'firing' "                                     \
    "AND al.details->>'period_kind' = x.period_kind "                                            \
    "AND al.details->>'period_start' = x.period_start::text "                                    \
    "WHERE (x.actual < x.expected) <> (al.fingerprint IS NOT NULL) "                             \
    "ORDER BY x.node_id, x.period_kind LIMIT $3::int"

static const char *statements[][2] = {
    {"fgap_over", GAP_OVER("")},
    /* The alerts of the keys' fingerprints (node, period kind): an episode
     * of an earlier period still firing ends before the current one fires. */
    {"fgap_over_keys",
     GAP_OVER("AND (al.subject_id, al.details->>'period_kind') IN "
              "(SELECT * FROM unnest($2::text[], $3::text[])) ")},
    {"fgap_verdict", GAP_VERDICT("")},
    /* Distinct keys: each row is judged once. */
    {"fgap_verdict_keys",
     GAP_VERDICT("JOIN (SELECT DISTINCT * FROM unnest($4::text[], $5::text[], $6::date[]) "
                 "AS u(node, kind, start)) key ON key.node = f.node_id "
                 "AND key.kind = f.period_kind AND key.start = f.period_start ")},
};

ka_err_t forecast_gap_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

ka_err_t forecast_gap_judge(ka_tx_t *tx, const char *pace, const char *today, int64_t now_ms,
                            const forecast_gap_keys_t *keys, int limit, int *fired,
                            int *resolved, char *errstr, size_t errlen)
{
    char lim[16];
    ka_rows_t rows;
    ka_err_t rc;
    snprintf(lim, sizeof lim, "%d", limit);

    /* Episodes that are over first: the same fingerprint (node, period
     * kind) may fire again for the new period below. */
    const char *op[] = {today, keys ? keys->nodes : NULL, keys ? keys->kinds : NULL};
    if ((rc = ka_rows_query(tx, keys ? "fgap_over_keys" : "fgap_over", keys ? 3 : 1, op, &rows,
                            errstr, errlen)))
        return rc;
    for (int i = 0; rc == KA_OK && i < rows.nrows; i++) {
        rc = gap_alert(tx, ka_rows_str(&rows, i, 0), ka_rows_str(&rows, i, 1),
                       ka_rows_str(&rows, i, 2), ka_rows_str(&rows, i, 3),
                       ka_rows_str(&rows, i, 4), ka_rows_str(&rows, i, 5),
                       ka_rows_int(&rows, i, 6, 0), now_ms, 0, ka_rows_str(&rows, i, 7),
                       errstr, errlen);
        (*resolved)++;
    }
    ka_rows_free(&rows);
    if (rc != KA_OK)
        return rc;

    const char *p[] = {today, pace, lim, keys ? keys->nodes : NULL, keys ? keys->kinds : NULL,
                       keys ? keys->starts : NULL};
    if ((rc = ka_rows_query(tx, keys ? "fgap_verdict_keys" : "fgap_verdict", keys ? 6 : 3, p,
                            &rows, errstr, errlen)))
        return rc;
    for (int i = 0; rc == KA_OK && i < rows.nrows; i++) {
        int behind = ka_rows_str(&rows, i, 6)[0] == 't';
        rc = gap_alert(tx, ka_rows_str(&rows, i, 0), ka_rows_str(&rows, i, 1),
                       ka_rows_str(&rows, i, 2), ka_rows_str(&rows, i, 3),
                       ka_rows_str(&rows, i, 4), ka_rows_str(&rows, i, 5),
                       behind ? now_ms : ka_rows_int(&rows, i, 7, now_ms), now_ms, behind,
                       "caught up", errstr, errlen);
        if (behind)
            (*fired)++;
        else
            (*resolved)++;
    }
    ka_rows_free(&rows);
    return rc;
}

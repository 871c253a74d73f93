#ifndef KA_QUERIES_H
#define KA_QUERIES_H

/* SQL that more than one program runs to compute the same figures (kactl's
 * views and the HTTP API, services/api), so both always show the same
 * numbers. */

/* A funnel's open stages in order ($1 definition): code, name,
 * win_probability_bp, is_closed. */
#define KA_SQL_FUNNEL_STAGES                                                                  \
    "SELECT code, name, win_probability_bp, is_closed FROM funnel_stage "                    \
    "WHERE definition_id = $1 AND NOT is_closed ORDER BY ordinal"

/* A node's open figures per stage ($1 node, $2 definition), rolled up over
 * its subtree by the opportunity worker: stage_code, open_count,
 * amount_minor, weighted_amount_minor, and how long ago the row last changed
 * (ms). */
#define KA_SQL_FUNNEL_FIGURES                                                                 \
    "SELECT stage_code, open_count, amount_minor, weighted_amount_minor, "                   \
    "(extract(epoch FROM now() - updated_at) * 1000)::bigint "                              \
    "FROM funnel_state WHERE node_id = $1 AND definition_id = $2"

/* The stages' health against the baseline ($1 node, $2 definition), judged
 * on the open count: stage_code, status, ratio_bp, baseline_value,
 * evaluated_at (ms since the epoch). */
#define KA_SQL_FUNNEL_HEALTH                                                                  \
    "SELECT stage_code, status, ratio_bp, baseline_value, "                                  \
    "(extract(epoch FROM changed_at) * 1000)::bigint FROM funnel_health_now "                \
    "WHERE node_id = $1 AND definition_id = $2 AND metric = 'count'"

/* The definitions with figures at a node ($1). */
#define KA_SQL_FUNNEL_DEFINITIONS                                                             \
    "SELECT DISTINCT definition_id FROM funnel_state WHERE node_id = $1 ORDER BY 1"

/* The Redis hash of a node's figures of one definition (fields
 * "<stage>:count", ":amount", ":weighted"), and the marker the opportunity
 * worker sets once the cache is built from PostgreSQL: without it the hash
 * may be partial, and readers use PostgreSQL. */
#define KA_REDIS_FUNNEL_KEY_FMT "ka:funnel:%s:%s"
#define KA_REDIS_FUNNEL_READY "ka:cache:ready:ka-opportunity-worker"

/* A forecast period is in force until its last day has passed: the periods
 * of kind k starting s end at s + 1 month (or 3). */
#define KA_SQL_PERIOD_END(kind, start)                                                        \
    "(" start " + CASE " kind " WHEN 'month' THEN interval '1 month' "                       \
    "ELSE interval '3 months' END)::date"

/* An account's trailing-12-month revenue window (the tiers' 80/20 rule):
 * this month (UTC) and the eleven before, for a period_month column. */
#define KA_SQL_LAST_12_MONTHS(col)                                                             \
    col " >= (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '11 months')::date AND " \
    col " <= (now() AT TIME ZONE 'UTC')::date"

/* The org nodes under $1 (its subtree, itself included), for a column naming
 * one; a NULL $1 (kactl's whole company) passes every row. */
#define KA_SQL_UNDER_NODE(col)                                                                  \
    "($1::text IS NULL OR " col " IN (SELECT descendant_id FROM org_closure WHERE "           \
    "ancestor_id = $1))"

/* Follow-ups (table follow_up f) of the reps under $1, only the overdue
 * ones when $2 is true, due earliest first so the longest overdue lead, and
 * how many whole days one is overdue (NULL when it is not). */
#define KA_SQL_FOLLOWUPS_WHERE                                                                  \
    KA_SQL_UNDER_NODE("f.rep_id") " AND (NOT $2::boolean OR f.next_due_at < now())"
#define KA_SQL_FOLLOWUPS_ORDER "f.next_due_at, f.account_id"
#define KA_SQL_FOLLOWUP_DAYS_OVERDUE                                                            \
    "CASE WHEN f.next_due_at < now() THEN floor(extract(epoch FROM now() - f.next_due_at) / "  \
    "86400)::int END"

/* Visit coverage per rep under $1 for the month `month` (an SQL date
 * expression), as CTEs m (the month) and cov: rep_id, rep_name,
 * accounts_followed, within_interval, overdue, within_interval_pct, visits,
 * accounts_visited, planned_visits, on_time_visits (follow-ups now, visits
 * in the month); KA_SQL_COVERAGE_ORDER lists the worst first (most overdue,
 * lowest share within interval, fewest visits on time). */
#define KA_SQL_COVERAGE_CTES(month)                                                             \
    "m AS (SELECT " month " AS month), r AS (SELECT rep_id FROM follow_up_coverage UNION "     \
    "SELECT v.rep_id FROM visit_coverage_rep_month v, m WHERE v.month = m.month), "           \
    "cov AS (SELECT r.rep_id, n.name AS rep_name, coalesce(f.accounts_followed, 0) AS "        \
    "accounts_followed, coalesce(f.within_interval, 0) AS within_interval, "                   \
    "coalesce(f.overdue, 0) AS overdue, f.within_interval_pct::float8 AS within_interval_pct, " \
    "coalesce(v.visits, 0) AS visits, coalesce(v.accounts_visited, 0) AS accounts_visited, "   \
    "coalesce(v.planned_visits, 0) AS planned_visits, coalesce(v.on_time_visits, 0) AS "       \
    "on_time_visits FROM r CROSS JOIN m LEFT JOIN follow_up_coverage f ON f.rep_id = r.rep_id " \
    "LEFT JOIN visit_coverage_rep_month v ON v.rep_id = r.rep_id AND v.month = m.month "       \
    "LEFT JOIN org_node n ON n.id = r.rep_id WHERE " KA_SQL_UNDER_NODE("r.rep_id") ")"
#define KA_SQL_COVERAGE_ORDER(p)                                                                \
    p "overdue DESC, " p "within_interval_pct NULLS LAST, " p "on_time_visits, " p "rep_id"

/* The forecast rows (table forecast f) of node $1 shown by default: those of
 * kind $2 (NULL: both) of the period starting $3 when given, else the
 * periods still in force on $4 (today, by the workers' clock) up to the
 * current one, or every later one too when $5 is true. */
#define KA_SQL_FORECAST_WHERE                                                                   \
    "f.node_id = $1 AND ($2::text IS NULL OR f.period_kind = $2) AND CASE WHEN $3::date IS "   \
    "NOT NULL THEN f.period_start = $3::date ELSE "                                            \
    KA_SQL_PERIOD_END("f.period_kind", "f.period_start") " > $4::date AND ($5::boolean OR "    \
    "f.period_start <= " KA_SQL_PERIOD_END("f.period_kind", "date_trunc(f.period_kind, $4::date)") \
    ") END"
#define KA_SQL_FORECAST_ORDER "f.period_kind, f.period_start"

/* Alerts, what fired or resolved last on top. */
#define KA_SQL_ALERTS_ORDER(p) p "last_transition_at DESC, " p "fingerprint DESC"

/* The planning feed (table planning_feed f) of division $1 (NULL: every
 * division) for the month $2 (a date, NULL: every month). */
#define KA_SQL_PLANNING_WHERE                                                                   \
    "($1::text IS NULL OR f.division_node_id = $1) AND ($2::date IS NULL OR "                  \
    "f.period_month = $2::date)"

/* Dead letters (table dead_letter d) of consumer group $1 and reason $2
 * (NULL: any), only those not re-driven yet when $3 is true, newest first. */
#define KA_SQL_DEADLETTERS_WHERE                                                                \
    "($1::text IS NULL OR d.consumer_group = $1) AND ($2::text IS NULL OR d.reason = $2) AND " \
    "(NOT $3::boolean OR d.redriven_at IS NULL)"
#define KA_SQL_DEADLETTERS_ORDER "d.id DESC"

#endif

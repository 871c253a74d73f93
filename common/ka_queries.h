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
    "(extract(epoch FROM evaluated_at) * 1000)::bigint FROM funnel_health WHERE node_id = $1 " \
    "AND definition_id = $2 AND metric = 'count'"

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

#endif

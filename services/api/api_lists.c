/* Lists under a node: alerts, follow-ups, visit coverage; the planning feed
 * of a division; the dead letters (ops tokens). */
#include <stdio.h>
#include <string.h>

#include "api.h"

/* The subtree of $1, for a column naming an org node. */
#define UNDER(col) col " IN (SELECT descendant_id FROM org_closure WHERE ancestor_id = $1)"

int api_node_alerts(api_req_t *r, const char *node)
{
    const char *status;
    int limit;
    char *k[2], lim[16];
    if (!api_arg_enum(r, "status", "firing|resolved|all", "firing", &status) ||
        !api_page_args(r, 50, 500, &limit, k, 2))
        return 0;
    snprintf(lim, sizeof lim, "%d", limit);
    ka_pg_param_t p[5] = {{node, 0, 0}, {status, 0, 0}, {k[0], 0, 0}, {k[1], 0, 0}, {lim, 0, 0}};
    static const char *const keys[] = {"last_transition_at", "fingerprint"};
    /* Newest transition first: what fired or resolved last is on top. */
    int ok = api_list(
        r,
        "SELECT coalesce(json_agg(json_build_object('fingerprint', a.fingerprint, 'alert_id', "
        "a.alert_id, 'type', a.type, 'severity', a.severity, 'status', a.status, 'subject_kind', "
        "a.subject_kind, 'subject_id', a.subject_id, 'node_id', a.node_id, 'summary', a.summary, "
        "'details', a.details, 'starts_at', a.starts_at, 'ends_at', a.ends_at, "
        "'last_transition_at', a.last_transition_at) ORDER BY a.last_transition_at DESC, "
        "a.fingerprint DESC), '[]') FROM (SELECT * FROM api_alert a WHERE " UNDER("a.node_id")
        " AND ($2 = 'all' OR a.status = $2) AND ($3::timestamptz IS NULL OR "
        "(a.last_transition_at, a.fingerprint) < ($3::timestamptz, $4)) "
        "ORDER BY a.last_transition_at DESC, a.fingerprint DESC LIMIT $5::int + 1) a",
        5, p, limit, keys, 2, NULL);
    api_cursor_free(k, 2);
    r->source = "postgresql";
    return ok;
}

int api_node_followups(api_req_t *r, const char *node)
{
    const char *overdue;
    int limit;
    char *k[2], lim[16];
    if (!api_arg_enum(r, "overdue", "true|false", "false", &overdue) ||
        !api_page_args(r, 50, 500, &limit, k, 2))
        return 0;
    snprintf(lim, sizeof lim, "%d", limit);
    ka_pg_param_t p[5] = {{node, 0, 0},
                          {strcmp(overdue, "true") == 0 ? "t" : "f", 0, 0},
                          {k[0], 0, 0},
                          {k[1], 0, 0},
                          {lim, 0, 0}};
    static const char *const keys[] = {"next_due_at", "account_id"};
    /* Due earliest first, so the longest overdue lead (kactl followups). */
    int ok = api_list(
        r,
        "SELECT coalesce(json_agg(json_build_object('account_id', f.account_id, 'account_name', "
        "a.display_name, 'tier', a.tier, 'man_class', a.man_class, 'rep_id', f.rep_id, "
        "'rep_name', rn.name, 'action', f.action, 'interval_days', f.interval_days, "
        "'next_due_at', f.next_due_at, 'set_at', f.set_at, 'overdue', f.next_due_at < now(), "
        "'days_overdue', CASE WHEN f.next_due_at < now() THEN floor(extract(epoch FROM now() - "
        "f.next_due_at) / 86400)::int END) ORDER BY f.next_due_at, f.account_id), '[]') "
        "FROM (SELECT * FROM follow_up f WHERE " UNDER("f.rep_id")
        " AND (NOT $2::boolean OR f.next_due_at < now()) AND ($3::timestamptz IS NULL OR "
        "(f.next_due_at, f.account_id) > ($3::timestamptz, $4)) ORDER BY f.next_due_at, "
        "f.account_id LIMIT $5::int + 1) f JOIN account a ON a.id = f.account_id "
        "LEFT JOIN org_node rn ON rn.id = f.rep_id",
        5, p, limit, keys, 2, NULL);
    api_cursor_free(k, 2);
    r->source = "postgresql";
    return ok;
}

int api_node_coverage(api_req_t *r, const char *node)
{
    char month[11];
    if (!api_arg_month(r, "month", month))
        return 0;
    ka_pg_param_t p[2] = {{node, 0, 0}, {month[0] ? month : NULL, 0, 0}};
    /* kactl followups' coverage: per rep, worst first (most overdue, lowest
     * share within interval, fewest visits on time). */
    json_t *v = api_pg_json(
        r,
        "WITH m AS (SELECT coalesce($2::date, date_trunc('month', now() AT TIME ZONE 'UTC')::date) "
        "AS month), r AS (SELECT rep_id FROM follow_up_coverage UNION "
        "SELECT v.rep_id FROM visit_coverage_rep_month v, m WHERE v.month = m.month), "
        "x AS (SELECT r.rep_id, n.name AS rep_name, coalesce(f.accounts_followed, 0) AS "
        "accounts_followed, coalesce(f.within_interval, 0) AS within_interval, "
        "coalesce(f.overdue, 0) AS overdue, f.within_interval_pct::float8 AS within_interval_pct, "
        "coalesce(v.visits, 0) AS visits, coalesce(v.accounts_visited, 0) AS accounts_visited, "
        "coalesce(v.planned_visits, 0) AS planned_visits, coalesce(v.on_time_visits, 0) AS "
        "on_time_visits FROM r CROSS JOIN m LEFT JOIN follow_up_coverage f ON f.rep_id = r.rep_id "
        "LEFT JOIN visit_coverage_rep_month v ON v.rep_id = r.rep_id AND v.month = m.month "
        "LEFT JOIN org_node n ON n.id = r.rep_id WHERE " UNDER("r.rep_id") ") "
        "SELECT json_build_object('node', $1::text, 'month', to_char((SELECT month FROM m), "
        "'YYYY-MM'), 'reps', coalesce((SELECT json_agg(x ORDER BY x.overdue DESC, "
        "x.within_interval_pct NULLS LAST, x.on_time_visits, x.rep_id) FROM x), '[]'), "
        "'totals', (SELECT json_build_object('reps', count(*), 'accounts_followed', "
        "coalesce(sum(accounts_followed), 0), 'within_interval', coalesce(sum(within_interval), 0), "
        "'overdue', coalesce(sum(overdue), 0), 'visits', coalesce(sum(visits), 0), "
        "'planned_visits', coalesce(sum(planned_visits), 0), 'on_time_visits', "
        "coalesce(sum(on_time_visits), 0)) FROM x))",
        2, p);
    if (!v)
        return 0;
    json_decref(r->body);
    r->body = v;
    r->source = "postgresql";
    return 1;
}

int api_planning(api_req_t *r, const char *division)
{
    char month[11], lim[16], *k[2];
    int limit;
    if (!api_scope_node(r, division, "division"))
        return 0;
    ka_pg_param_t pd = {division, 0, 0};
    json_t *kind = api_pg_json(r, "SELECT to_json(kind) FROM org_node WHERE id = $1", 1, &pd);
    if (!kind)
        return 0;
    int is_div = json_is_string(kind) && strcmp(json_string_value(kind), "division") == 0;
    json_decref(kind);
    if (!is_div)
        return api_error(r, 400, "bad_parameter", "the planning feed is kept per division: "
                         "give an org node of kind division", "division");
    if (!api_arg_month(r, "month", month) || !api_page_args(r, 100, 1000, &limit, k, 2))
        return 0;
    snprintf(lim, sizeof lim, "%d", limit);
    ka_pg_param_t p[5] = {{division, 0, 0}, {month[0] ? month : NULL, 0, 0}, {k[0], 0, 0},
                          {k[1], 0, 0}, {lim, 0, 0}};
    static const char *const keys[] = {"period_month", "sku"};
    int ok = api_list(
        r,
        "SELECT coalesce(json_agg(json_build_object('sku', f.sku, 'product_name', p.name, 'unit', "
        "p.unit, 'period_month', to_char(f.period_month, 'YYYY-MM'), 'division_id', "
        "f.division_node_id, 'weighted_quantity', f.weighted_quantity::float8, "
        "'committed_quantity', f.committed_quantity::float8, 'revision', f.revision, "
        "'changed_at', f.changed_at) ORDER BY f.period_month, f.sku), '[]') "
        "FROM (SELECT * FROM planning_feed f WHERE f.division_node_id = $1 AND "
        "($2::date IS NULL OR f.period_month = $2::date) AND ($3::text IS NULL OR "
        "(f.period_month, f.sku) > (to_date($3, 'YYYY-MM'), $4)) "
        "ORDER BY f.period_month, f.sku LIMIT $5::int + 1) f LEFT JOIN product p ON p.sku = f.sku",
        5, p, limit, keys, 2, NULL);
    api_cursor_free(k, 2);
    r->source = "postgresql";
    return ok;
}

int api_deadletters(api_req_t *r)
{
    const char *pending, *reason = api_arg(r, "reason"), *group = api_arg(r, "group");
    int limit;
    char *k[1], lim[16];
    if (!r->tok_ops)
        return api_error(r, 403, "forbidden", "dead letters are for ops tokens "
                         "(kactl token create --ops)", NULL);
    if (!api_arg_enum(r, "pending", "true|false", "false", &pending) ||
        (reason && !api_arg_id(r, "reason", reason)) || (group && !api_arg_id(r, "group", group)) ||
        !api_page_args(r, 50, 1000, &limit, k, 1))
        return 0;
    if (k[0] && strspn(k[0], "0123456789") != strlen(k[0])) {
        api_cursor_free(k, 1);
        return api_error(r, 400, "bad_parameter", "cursor is not one this list gave out", "cursor");
    }
    snprintf(lim, sizeof lim, "%d", limit);
    ka_pg_param_t p[5] = {{group, 0, 0}, {reason, 0, 0},
                          {strcmp(pending, "true") == 0 ? "t" : "f", 0, 0}, {k[0], 0, 0},
                          {lim, 0, 0}};
    static const char *const keys[] = {"id"};
    int ok = api_list(
        r,
        "SELECT coalesce(json_agg(json_build_object('id', d.id, 'created_at', d.created_at, "
        "'consumer_group', d.consumer_group, 'source_topic', d.source_topic, 'source_partition', "
        "d.source_partition, 'source_offset', d.source_offset, 'reason', d.reason, 'detail', "
        "d.detail, 'payload_bytes', coalesce(length(d.payload), 0), 'redriven_at', d.redriven_at) "
        "ORDER BY d.id DESC), '[]') FROM (SELECT * FROM dead_letter d WHERE ($1::text IS NULL OR "
        "d.consumer_group = $1) AND ($2::text IS NULL OR d.reason = $2) AND (NOT $3::boolean OR "
        "d.redriven_at IS NULL) AND ($4::bigint IS NULL OR d.id < $4::bigint) ORDER BY d.id DESC "
        "LIMIT $5::int + 1) d",
        5, p, limit, keys, 1, NULL);
    api_cursor_free(k, 1);
    r->source = "postgresql";
    return ok;
}

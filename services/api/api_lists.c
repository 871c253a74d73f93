/* Lists under a node: alerts, follow-ups, visit coverage; the planning feed
 * of a division; the dead letters (ops tokens). */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "ka_queries.h"

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
        "'last_transition_at', a.last_transition_at) ORDER BY " KA_SQL_ALERTS_ORDER("a.") "), '[]') "
        "FROM (SELECT * FROM api_alert a WHERE " KA_SQL_UNDER_NODE("a.node_id")
        " AND ($2 = 'all' OR a.status = $2) AND ($3::timestamptz IS NULL OR "
        "(a.last_transition_at, a.fingerprint) < ($3::timestamptz, $4)) "
        "ORDER BY " KA_SQL_ALERTS_ORDER("a.") " LIMIT $5::int + 1) a",
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
        "'days_overdue', " KA_SQL_FOLLOWUP_DAYS_OVERDUE ") ORDER BY " KA_SQL_FOLLOWUPS_ORDER "), "
        "'[]') FROM (SELECT * FROM follow_up f WHERE " KA_SQL_FOLLOWUPS_WHERE " AND "
        "($3::timestamptz IS NULL OR (f.next_due_at, f.account_id) > ($3::timestamptz, $4)) "
        "ORDER BY " KA_SQL_FOLLOWUPS_ORDER " LIMIT $5::int + 1) f "
        "JOIN account a ON a.id = f.account_id "
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
        "WITH " KA_SQL_COVERAGE_CTES("coalesce($2::date, date_trunc('month', now() AT TIME "
                                     "ZONE 'UTC')::date)") ", x AS (SELECT * FROM cov) "
        "SELECT json_build_object('node', $1::text, 'month', to_char((SELECT month FROM m), "
        "'YYYY-MM'), 'reps', coalesce((SELECT json_agg(x ORDER BY " KA_SQL_COVERAGE_ORDER("x.") ") FROM x), '[]'), "
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
        "FROM (SELECT * FROM planning_feed f WHERE " KA_SQL_PLANNING_WHERE " AND ($3::text IS NULL OR "
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
        "d.detail, 'payload_bytes', coalesce(length(d.payload), 0), 'redriven_at', d.redriven_at, "
        "'source_time', d.source_time, 'content_mode', d.content_mode, 'json_path', d.json_path) "
        "ORDER BY " KA_SQL_DEADLETTERS_ORDER "), '[]') FROM (SELECT * FROM dead_letter d WHERE "
        KA_SQL_DEADLETTERS_WHERE " AND ($4::bigint IS NULL OR d.id < $4::bigint) "
        "ORDER BY " KA_SQL_DEADLETTERS_ORDER " LIMIT $5::int + 1) d",
        5, p, limit, keys, 1, NULL);
    api_cursor_free(k, 1);
    r->source = "postgresql";
    return ok;
}

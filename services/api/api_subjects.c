/* One account, one opportunity: seen by a token whose subtree holds the
 * owning rep. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "ka_queries.h"

/* 404 when `sql` ($1 the id) finds no owner, 403 when the owner is outside
 * the token's subtree ($2). */
static int scope_owner(api_req_t *r, const char *what, const char *id, const char *sql)
{
    if (!api_arg_id(r, what, id))
        return 0;
    ka_pg_param_t p[2] = {{id, 0, 0}, {r->tok_node, 0, 0}};
    json_t *v = api_pg_json(r, sql, 2, p);
    if (!v)
        return 0;
    int exists = json_is_true(json_array_get(v, 0)), under = json_is_true(json_array_get(v, 1));
    json_decref(v);
    char d[256];
    if (!exists) {
        snprintf(d, sizeof d, "no %s \"%s\"", what, id);
        return api_error(r, 404, "not_found", d, what);
    }
    if (!under) {
        snprintf(d, sizeof d, "%s \"%s\" belongs to a rep outside this token's subtree", what, id);
        return api_error(r, 403, "forbidden", d, what);
    }
    return 1;
}

#define OWNER_CHECK(table)                                                                    \
    "SELECT json_build_array(x.owner_rep_id IS NOT NULL, EXISTS (SELECT 1 FROM org_closure c " \
    "WHERE c.ancestor_id = $2 AND c.descendant_id = x.owner_rep_id)) FROM (SELECT "           \
    "(SELECT owner_rep_id FROM " table " WHERE id = $1) AS owner_rep_id) x"

int api_account(api_req_t *r, const char *id)
{
    if (!scope_owner(r, "account", id, OWNER_CHECK("account")))
        return 0;
    ka_pg_param_t p = {id, 0, 0};
    json_t *v = api_pg_json(
        r,
        "WITH opp AS (SELECT id FROM opportunity WHERE account_id = $1) "
        "SELECT json_build_object('id', a.id, 'display_name', a.display_name, 'credit_code', "
        "a.credit_code, 'tier', a.tier, 'tier_changed_at', a.tier_changed_at, 'man_class', "
        "a.man_class, 'owner_rep_id', a.owner_rep_id, 'last_visit_at', a.last_visit_at, "
        "'last_activity_at', a.last_activity_at, "
        "'revenue_12m_minor', (SELECT coalesce(sum(x.amount_minor), 0) FROM actual x WHERE "
        "x.account_id = a.id AND " KA_SQL_LAST_12_MONTHS("x.period_month") "), "
        "'visits', json_build_object('last_90_days', (SELECT count(*) FROM visit v WHERE "
        "v.account_id = a.id AND v.visited_at > now() - interval '90 days'), 'total', "
        "(SELECT count(*) FROM visit v WHERE v.account_id = a.id), 'recent', coalesce((SELECT "
        "json_agg(json_build_object('id', v.id, 'visited_at', v.visited_at, 'rep_id', v.rep_id, "
        "'objective', v.objective, 'man_class', v.man_class, 'satisfaction', v.satisfaction, "
        "'opportunity_id', v.opportunity_id) ORDER BY v.visited_at DESC, v.id) FROM (SELECT * "
        "FROM visit v WHERE v.account_id = a.id ORDER BY v.visited_at DESC, v.id LIMIT 10) v), "
        "'[]')), "
        "'deals', coalesce((SELECT json_agg(json_build_object('id', o.id, 'status', o.status, "
        "'definition_id', o.definition_id, 'stage_code', o.stage_code, 'amount_minor', "
        "o.amount_minor, 'weighted_amount_minor', o.weighted_amount_minor, "
        "'expected_close_date', o.expected_close_date, 'owner_rep_id', o.owner_rep_id) "
        "ORDER BY o.status = 'open' DESC, o.amount_minor DESC, o.id) FROM opportunity o WHERE "
        "o.account_id = a.id), '[]'), "
        "'alerts', coalesce((SELECT json_agg(json_build_object('fingerprint', s.fingerprint, "
        "'type', s.type, 'severity', s.severity, 'status', s.status, 'subject_kind', "
        "s.subject_kind, 'subject_id', s.subject_id, 'summary', s.summary, 'starts_at', "
        "s.starts_at) ORDER BY s.starts_at DESC, s.fingerprint) FROM api_alert s WHERE "
        "s.status = 'firing' AND ((s.subject_kind = 'account' AND s.subject_id = a.id) OR "
        "(s.subject_kind = 'opportunity' AND s.subject_id IN (SELECT id FROM opp)))), '[]'), "
        "'_age_ms', (extract(epoch FROM now() - a.updated_at) * 1000)::bigint) "
        "FROM account a WHERE a.id = $1",
        1, &p);
    if (!v)
        return 0;
    json_decref(r->body);
    r->body = v;
    r->source = "postgresql";
    return 1;
}

int api_opportunity(api_req_t *r, const char *id)
{
    if (!scope_owner(r, "opportunity", id, OWNER_CHECK("opportunity")))
        return 0;
    ka_pg_param_t p = {id, 0, 0};
    /* The timeline, oldest first: every event the worker recorded (applied
     * or not, and why) and each stage move with the dwell before it. */
    json_t *v = api_pg_json(
        r,
        "SELECT json_build_object('id', o.id, 'account_id', o.account_id, 'account_name', "
        "a.display_name, 'owner_rep_id', o.owner_rep_id, 'definition_id', o.definition_id, "
        "'stage_code', o.stage_code, 'status', o.status, 'amount_minor', o.amount_minor, "
        "'win_probability_bp', o.win_probability_bp, 'weighted_amount_minor', "
        "o.weighted_amount_minor, 'expected_close_date', o.expected_close_date, 'sales_mode', "
        "o.sales_mode, 'competitors', to_json(o.competitors), 'relationship_degree', "
        "o.relationship_degree, 'impact', o.impact, 'lost_reason', o.lost_reason, 'closed_at', "
        "o.closed_at, 'stage_entered_at', o.stage_entered_at, 'assessment_score', "
        "o.assessment_score, 'high_value', o.high_value, "
        "'timeline', coalesce((SELECT json_agg(t.j ORDER BY t.at, t.ord, t.event_id) FROM ("
        " SELECT e.occurred_at AS at, 0 AS ord, e.event_id, json_build_object('at', e.occurred_at, "
        " 'kind', e.kind, 'event_id', e.event_id, 'applied', e.applied, 'not_applied_reason', "
        " e.not_applied_reason) AS j FROM opportunity_event e WHERE e.opportunity_id = o.id "
        " UNION ALL SELECT h.occurred_at, 1, h.event_id, json_build_object('at', h.occurred_at, "
        " 'kind', 'stage', 'event_id', h.event_id, 'from_stage', h.from_stage, 'to_stage', "
        " h.to_stage, 'dwell_seconds', h.dwell_seconds) FROM opportunity_stage_history h "
        " WHERE h.opportunity_id = o.id) t), '[]'), "
        "'_age_ms', (extract(epoch FROM now() - o.updated_at) * 1000)::bigint) "
        "FROM opportunity o JOIN account a ON a.id = o.account_id WHERE o.id = $1",
        1, &p);
    if (!v)
        return 0;
    json_decref(r->body);
    r->body = v;
    r->source = "postgresql";
    return 1;
}

#include "opp_internal.h"

/* The opportunity worker's statements, prepared once (handler.prepare). */

static const char *statements[][2] = {
    {"opp_stages", "SELECT definition_id, code, win_probability_bp, is_won, is_lost "
                   "FROM funnel_stage"},
    {"opp_bus", "SELECT id, definition_id FROM business_unit"},
    {"opp_default_def", "SELECT id FROM funnel_definition WHERE is_default"},
    {"opp_load",
     "SELECT id, account_id, owner_rep_id, business_unit_id, definition_id, stage_code, "
     "amount_minor, win_probability_bp, expected_close_date::text, sales_mode, competitors::text, "
     "relationship_degree, impact, status, lost_reason, "
     "(extract(epoch FROM closed_at) * 1000)::bigint, "
     "(extract(epoch FROM stage_entered_at) * 1000)::bigint, assess_exists, assess_compete, "
     "assess_win, assess_worth, (extract(epoch FROM assessed_at) * 1000)::bigint, version, "
     "(extract(epoch FROM last_event_at) * 1000)::bigint, last_event_id "
     "FROM opportunity WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"},
    {"opp_managers",
     "SELECT DISTINCT c.descendant_id, n.manager_user_id FROM org_closure c "
     "JOIN org_node n ON n.id = c.ancestor_id "
     "WHERE c.depth > 0 AND n.manager_user_id IS NOT NULL AND c.descendant_id IN "
     "(SELECT owner_rep_id FROM opportunity WHERE id = ANY($1::text[]) "
     "UNION SELECT unnest($2::text[]))"},
    {"opp_unauthorized_firing",
     "SELECT subject_id, (extract(epoch FROM starts_at) * 1000)::bigint FROM alert_state "
     "WHERE type = 'unauthorized_owner_change' AND status = 'firing' "
     "AND subject_id = ANY($1::text[])"},
    /* The first booked order of each opportunity (an order may come first). */
    {"opp_booked_orders",
     "SELECT DISTINCT ON (opportunity_id) opportunity_id, id, "
     "(extract(epoch FROM booked_at) * 1000)::bigint FROM sales_order "
     "WHERE opportunity_id = ANY($1::text[]) AND status = 'booked' "
     "ORDER BY opportunity_id, booked_at, id"},
    {"opp_upsert",
     "INSERT INTO opportunity (id, account_id, owner_rep_id, business_unit_id, definition_id, "
     "stage_code, amount_minor, win_probability_bp, expected_close_date, sales_mode, competitors, "
     "relationship_degree, impact, status, lost_reason, closed_at, stage_entered_at, "
     "assess_exists, assess_compete, assess_win, assess_worth, assessed_at, version, "
     "last_event_at, last_event_id) "
     "SELECT o.id, o.account, o.owner, o.bu, o.def, o.stage, o.amount, o.prob, o.close::date, "
     "o.mode, o.comp::text[], o.rel, o.impact, o.status, o.lost, "
     "to_timestamp(o.closed / 1000.0), to_timestamp(o.entered / 1000.0), o.a1, o.a2, o.a3, o.a4, "
     "to_timestamp(o.assessed / 1000.0), o.version, to_timestamp(o.last_at / 1000.0), o.last_id "
     "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
     "$7::bigint[], $8::int[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], "
     "$14::text[], $15::text[], $16::bigint[], $17::bigint[], $18::smallint[], $19::smallint[], "
     "$20::smallint[], $21::smallint[], $22::bigint[], $23::bigint[], $24::bigint[], $25::text[]) "
     "AS o(id, account, owner, bu, def, stage, amount, prob, close, mode, comp, rel, impact, "
     "status, lost, closed, entered, a1, a2, a3, a4, assessed, version, last_at, last_id) "
     "ON CONFLICT (id) DO UPDATE SET owner_rep_id = EXCLUDED.owner_rep_id, "
     "stage_code = EXCLUDED.stage_code, amount_minor = EXCLUDED.amount_minor, "
     "win_probability_bp = EXCLUDED.win_probability_bp, "
     "expected_close_date = EXCLUDED.expected_close_date, sales_mode = EXCLUDED.sales_mode, "
     "competitors = EXCLUDED.competitors, relationship_degree = EXCLUDED.relationship_degree, "
     "impact = EXCLUDED.impact, status = EXCLUDED.status, lost_reason = EXCLUDED.lost_reason, "
     "closed_at = EXCLUDED.closed_at, stage_entered_at = EXCLUDED.stage_entered_at, "
     "assess_exists = EXCLUDED.assess_exists, assess_compete = EXCLUDED.assess_compete, "
     "assess_win = EXCLUDED.assess_win, assess_worth = EXCLUDED.assess_worth, "
     "assessed_at = EXCLUDED.assessed_at, version = EXCLUDED.version, "
     "last_event_at = EXCLUDED.last_event_at, last_event_id = EXCLUDED.last_event_id, "
     "updated_at = now()"},
    {"opp_forecast_dirty",
     "INSERT INTO forecast_dirty (opportunity_id) SELECT unnest($1::text[])"},
    /* A semi-join on the array, not `= ANY`: see forecast_old_lines. */
    {"opp_lines_clear",
     "DELETE FROM opportunity_line WHERE opportunity_id IN (SELECT unnest($1::text[]))"},
    {"opp_lines_insert",
     "INSERT INTO opportunity_line (opportunity_id, line_no, sku, requirement, quantity, "
     "unit_price_minor) SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], "
     "$5::numeric[], $6::bigint[])"},
    {"opp_stage_history",
     "INSERT INTO opportunity_stage_history (opportunity_id, definition_id, from_stage, to_stage, "
     "event_id, occurred_at, dwell_seconds) SELECT h.opp, h.def, h.from_stage, h.to_stage, h.ev, "
     "to_timestamp(h.at / 1000.0), h.dwell FROM unnest($1::text[], $2::text[], $3::text[], "
     "$4::text[], $5::text[], $6::bigint[], $7::bigint[]) "
     "AS h(opp, def, from_stage, to_stage, ev, at, dwell) "
     "ON CONFLICT (opportunity_id, event_id) DO NOTHING"},
    {"opp_event_history",
     "INSERT INTO opportunity_event (opportunity_id, event_id, kind, occurred_at, applied, "
     "not_applied_reason, source_topic, source_partition, source_offset) "
     "SELECT e.opp, e.ev, e.kind, to_timestamp(e.at / 1000.0), e.applied, e.reason, e.topic, "
     "e.part, e.off FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], "
     "$5::boolean[], $6::text[], $7::text[], $8::int[], $9::bigint[]) "
     "AS e(opp, ev, kind, at, applied, reason, topic, part, off) "
     "ON CONFLICT (opportunity_id, event_id, occurred_at) DO NOTHING"},
    {"opp_confirm",
     "INSERT INTO forecast_confirmation (opportunity_id, period_kind, period_start, owner_rep_id, "
     "category, event_id, confirmed_at) SELECT DISTINCT ON (c.opp, c.kind, c.start) c.opp, "
     "c.kind, c.start::date, c.owner, c.category, c.ev, to_timestamp(c.at / 1000.0) "
     "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
     "$7::bigint[]) WITH ORDINALITY AS c(opp, kind, start, owner, category, ev, at, i) "
     "ORDER BY c.opp, c.kind, c.start, c.i DESC "
     "ON CONFLICT (opportunity_id, period_kind, period_start) DO UPDATE SET "
     "owner_rep_id = EXCLUDED.owner_rep_id, category = EXCLUDED.category, "
     "event_id = EXCLUDED.event_id, confirmed_at = EXCLUDED.confirmed_at, updated_at = now()"},
    /* Deltas per rep roll up to every ancestor (and to the rep itself even
     * before the org tree knows it). Sorted, so concurrent instances lock the
     * shared ancestor rows in one order. */
    {"opp_funnel_add",
     "INSERT INTO funnel_state AS f (node_id, definition_id, stage_code, open_count, amount_minor, "
     "weighted_amount_minor) "
     "SELECT n.node_id, d.def, d.stage, sum(d.cnt), sum(d.amt), sum(d.w) "
     "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[]) "
     "AS d(rep, def, stage, cnt, amt, w) "
     "CROSS JOIN LATERAL (SELECT ancestor_id AS node_id FROM org_closure "
     "WHERE descendant_id = d.rep UNION SELECT d.rep) n "
     "GROUP BY n.node_id, d.def, d.stage "
     "HAVING (sum(d.cnt), sum(d.amt), sum(d.w)) <> (0, 0, 0) "
     "ORDER BY n.node_id, d.def, d.stage "
     "ON CONFLICT (node_id, definition_id, stage_code) DO UPDATE SET "
     "open_count = f.open_count + EXCLUDED.open_count, "
     "amount_minor = f.amount_minor + EXCLUDED.amount_minor, "
     "weighted_amount_minor = f.weighted_amount_minor + EXCLUDED.weighted_amount_minor, "
     "updated_at = now() "
     "RETURNING node_id, definition_id, stage_code, open_count, amount_minor, "
     "weighted_amount_minor"},
    {"opp_health_inputs",
     "WITH keys AS (SELECT DISTINCT n.node_id, d.def, d.stage "
     "FROM unnest($1::text[], $2::text[], $3::text[]) AS d(rep, def, stage) "
     "CROSS JOIN LATERAL (SELECT ancestor_id AS node_id FROM org_closure "
     "WHERE descendant_id = d.rep UNION SELECT d.rep) n) "
     "SELECT k.node_id, k.def, k.stage, m.metric, "
     "(SELECT b.value FROM funnel_baseline b WHERE b.node_id = k.node_id "
     "AND b.definition_id = k.def AND b.stage_code = k.stage AND b.metric = m.metric "
     "AND b.valid_from <= current_date AND b.valid_to > current_date "
     "ORDER BY (b.source = 'explicit') DESC, b.valid_from DESC LIMIT 1), "
     "h.status, (extract(epoch FROM h.status_since) * 1000)::bigint, h.baseline_value "
     "FROM keys k CROSS JOIN (VALUES ('count'), ('amount')) AS m(metric) "
     "LEFT JOIN funnel_health h ON h.node_id = k.node_id AND h.definition_id = k.def "
     "AND h.stage_code = k.stage AND h.metric = m.metric "
     "ORDER BY 1, 2, 3, 4"},
    {"opp_unknown_reps", "SELECT ka_unknown_reps_seen($1::text[], $2::bigint, 'opportunity')"},
    /* The health of whole nodes after a re-org (opp_health_recheck): their
     * funnel rows locked in the upsert's order, then their inputs. */
    {"opp_recheck_funnel",
     "SELECT node_id, definition_id, stage_code, open_count, amount_minor, weighted_amount_minor "
     "FROM funnel_state WHERE node_id = ANY($1::text[]) ORDER BY 1, 2, 3 FOR UPDATE"},
    {"opp_recheck_inputs",
     "SELECT f.node_id, f.definition_id, f.stage_code, m.metric, "
     "(SELECT b.value FROM funnel_baseline b WHERE b.node_id = f.node_id "
     "AND b.definition_id = f.definition_id AND b.stage_code = f.stage_code "
     "AND b.metric = m.metric AND b.valid_from <= current_date AND b.valid_to > current_date "
     "ORDER BY (b.source = 'explicit') DESC, b.valid_from DESC LIMIT 1), "
     "h.status, (extract(epoch FROM h.status_since) * 1000)::bigint, h.baseline_value "
     "FROM funnel_state f CROSS JOIN (VALUES ('count'), ('amount')) AS m(metric) "
     "LEFT JOIN funnel_health h ON h.node_id = f.node_id AND h.definition_id = f.definition_id "
     "AND h.stage_code = f.stage_code AND h.metric = m.metric "
     "WHERE f.node_id = ANY($1::text[]) ORDER BY 1, 2, 3, 4"},
    {"opp_health_save",
     "INSERT INTO funnel_health (node_id, definition_id, stage_code, metric, current_value, "
     "baseline_value, ratio_bp, status, status_since, evaluated_at) "
     "SELECT h.node, h.def, h.stage, h.metric, h.cur, h.base, h.ratio, h.status, "
     "to_timestamp(h.since / 1000.0), now() FROM unnest($1::text[], $2::text[], $3::text[], "
     "$4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[], $9::bigint[]) "
     "AS h(node, def, stage, metric, cur, base, ratio, status, since) "
     "ON CONFLICT (node_id, definition_id, stage_code, metric) DO UPDATE SET "
     "current_value = EXCLUDED.current_value, baseline_value = EXCLUDED.baseline_value, "
     "ratio_bp = EXCLUDED.ratio_bp, status = EXCLUDED.status, "
     "status_since = EXCLUDED.status_since, evaluated_at = EXCLUDED.evaluated_at"},
};

ka_err_t opp_statements_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

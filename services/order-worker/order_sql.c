#include "order_sql.h"

/* The order worker's statements, prepared once (handler.prepare). */

#define MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"
#define TS(col) "to_timestamp(" col " / 1000.0)"

static const char *statements[][2] = {
    {"order_load",
     "SELECT id, account_id, rep_id, opportunity_id, channel, distributor_id, ship_to_region, "
     "status, " MS("booked_at") ", " MS("cancelled_at") ", " MS("returned_at") ", "
     "total_amount_minor, booked_event_id, " MS("last_event_at") ", last_event_id "
     "FROM sales_order WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"},
    {"order_lines",
     "SELECT order_id, sku, (quantity * 1000)::bigint, unit_price_minor FROM sales_order_line "
     "WHERE order_id IN (SELECT unnest($1::text[])) ORDER BY order_id, line_no"},
    {"order_dists", "SELECT id FROM distributor WHERE id = ANY($1::text[])"},
    {"order_territories",
     "SELECT distributor_id, region_code, 0 FROM distributor_territory "
     "WHERE distributor_id = ANY($1::text[])"},
    {"order_floors",
     "SELECT distributor_id, sku, floor_price_minor FROM distributor_floor_price "
     "WHERE distributor_id = ANY($1::text[])"},
    {"order_channel_firing",
     "SELECT type || '/' || subject_id FROM alert_state WHERE subject_kind = 'distributor' "
     "AND subject_id = ANY($1::text[]) AND status = 'firing' "
     "AND type IN ('channel_diversion', 'price_dumping')"},
    {"order_upsert",
     "INSERT INTO sales_order (id, account_id, rep_id, opportunity_id, channel, distributor_id, "
     "ship_to_region, status, booked_at, cancelled_at, returned_at, total_amount_minor, "
     "booked_event_id, last_event_at, last_event_id) "
     "SELECT o.id, o.account, o.rep, o.opp, o.channel, o.dist, o.region, o.status, "
     TS("o.booked") ", " TS("o.cancelled") ", " TS("o.returned") ", o.total, o.booked_ev, "
     TS("o.last_at") ", o.last_id FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
     "$5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], "
     "$11::bigint[], $12::bigint[], $13::text[], $14::bigint[], $15::text[]) "
     "AS o(id, account, rep, opp, channel, dist, region, status, booked, cancelled, returned, "
     "total, booked_ev, last_at, last_id) "
     "ON CONFLICT (id) DO UPDATE SET account_id = EXCLUDED.account_id, rep_id = EXCLUDED.rep_id, "
     "opportunity_id = EXCLUDED.opportunity_id, channel = EXCLUDED.channel, "
     "distributor_id = EXCLUDED.distributor_id, ship_to_region = EXCLUDED.ship_to_region, "
     "status = EXCLUDED.status, booked_at = EXCLUDED.booked_at, "
     "cancelled_at = EXCLUDED.cancelled_at, returned_at = EXCLUDED.returned_at, "
     "total_amount_minor = EXCLUDED.total_amount_minor, last_event_at = EXCLUDED.last_event_at, "
     "last_event_id = EXCLUDED.last_event_id, updated_at = now()"},
    /* A semi-join, not `= ANY`: see forecast_old_lines. */
    {"order_lines_clear",
     "DELETE FROM sales_order_line WHERE order_id IN (SELECT unnest($1::text[]))"},
    {"order_lines_insert",
     "INSERT INTO sales_order_line (order_id, line_no, sku, quantity, unit_price_minor) "
     "SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::numeric[], $5::bigint[])"},
    {"order_event_history",
     "INSERT INTO sales_order_event (order_id, event_id, kind, occurred_at, applied, "
     "not_applied_reason, source_topic, source_partition, source_offset) "
     "SELECT e.ord, e.ev, e.kind, " TS("e.at") ", e.applied, e.reason, e.topic, e.part, e.off "
     "FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::boolean[], $6::text[], "
     "$7::text[], $8::int[], $9::bigint[]) "
     "AS e(ord, ev, kind, at, applied, reason, topic, part, off) "
     "ON CONFLICT (order_id, event_id) DO NOTHING"},
    /* Sorted, so concurrent instances lock shared rows in one order. */
    {"order_actual_add",
     "INSERT INTO actual AS a (account_id, sku, node_id, period_month, amount_minor, quantity) "
     "SELECT d.account, d.sku, d.rep, d.month::date, d.amt, d.qty "
     "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::numeric[]) "
     "AS d(account, sku, rep, month, amt, qty) ORDER BY 1, 2, 3, 4 "
     "ON CONFLICT (account_id, sku, node_id, period_month) DO UPDATE SET "
     "amount_minor = a.amount_minor + EXCLUDED.amount_minor, "
     "quantity = a.quantity + EXCLUDED.quantity, updated_at = now()"},
    /* Per rep and month, rolled up to every ancestor (and the rep itself even
     * before the org tree knows it). */
    {"order_rollup_add",
     "INSERT INTO actual_rollup AS r (node_id, period_month, amount_minor) "
     "SELECT n.node_id, d.month::date, sum(d.amt) "
     "FROM unnest($1::text[], $2::text[], $3::bigint[]) AS d(rep, month, amt) "
     "CROSS JOIN LATERAL (SELECT ancestor_id AS node_id FROM org_closure "
     "WHERE descendant_id = d.rep UNION SELECT d.rep) n "
     "GROUP BY 1, 2 ORDER BY 1, 2 "
     "ON CONFLICT (node_id, period_month) DO UPDATE SET "
     "amount_minor = r.amount_minor + EXCLUDED.amount_minor, updated_at = now() "
     "RETURNING node_id, period_month::text, amount_minor"},
    {"order_unknown_reps", "SELECT ka_unknown_reps_seen($1::text[], $2::bigint, 'order')"},
    /* The forecast worker recomputes closed revenue of these reps' months
     * and quarters: the booking months the deltas moved, so a cancellation
     * re-publishes the forecast of the period it corrected. */
    {"order_forecast_dirty",
     "INSERT INTO forecast_dirty (node_id, period_kind, period_start) "
     "SELECT DISTINCT d.rep, k.kind, date_trunc(k.kind, d.month::date)::date "
     "FROM unnest($1::text[], $2::text[]) AS d(rep, month) "
     "CROSS JOIN (VALUES ('month'), ('quarter')) AS k(kind)"},
    /* The deals these orders name, now or before this batch: the forecast
     * worker recomputes what of them is still to deliver. */
    {"order_opportunity_dirty",
     "INSERT INTO forecast_dirty (opportunity_id) SELECT DISTINCT x.opp FROM "
     "(SELECT unnest($2::text[]) AS opp UNION ALL SELECT s.opportunity_id FROM sales_order s "
     "WHERE s.id = ANY($1::text[])) x WHERE x.opp IS NOT NULL"},
    {"order_violations",
     "INSERT INTO distributor_violation (order_id, kind, line_no, distributor_id, sku, "
     "ship_to_region, unit_price_minor, floor_price_minor, detected_at) "
     "SELECT v.ord, v.kind, v.line, v.dist, v.sku, v.region, v.price, v.floor, " TS("v.at") " "
     "FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], "
     "$7::bigint[], $8::bigint[], $9::bigint[]) "
     "AS v(ord, kind, line, dist, sku, region, price, floor, at) ON CONFLICT DO NOTHING"},
    {"order_quality_add",
     "INSERT INTO distributor_sales_quality AS q (distributor_id, period_month, order_count, "
     "order_amount_minor, diversion_count, diversion_amount_minor, dumping_count, "
     "dumping_amount_minor) SELECT x.dist, x.month::date, count(*), sum(x.amt), sum(x.div), "
     "sum(x.div_amt), sum(x.dump), sum(x.dump_amt) FROM unnest($1::text[], $2::text[], "
     "$3::bigint[], $4::int[], $5::bigint[], $6::int[], $7::bigint[]) "
     "AS x(dist, month, amt, div, div_amt, dump, dump_amt) GROUP BY 1, 2 ORDER BY 1, 2 "
     "ON CONFLICT (distributor_id, period_month) DO UPDATE SET "
     "order_count = q.order_count + EXCLUDED.order_count, "
     "order_amount_minor = q.order_amount_minor + EXCLUDED.order_amount_minor, "
     "diversion_count = q.diversion_count + EXCLUDED.diversion_count, "
     "diversion_amount_minor = q.diversion_amount_minor + EXCLUDED.diversion_amount_minor, "
     "dumping_count = q.dumping_count + EXCLUDED.dumping_count, "
     "dumping_amount_minor = q.dumping_amount_minor + EXCLUDED.dumping_amount_minor, "
     "updated_at = now()"},
    {"order_rollup_all",
     "SELECT node_id, period_month::text, amount_minor FROM actual_rollup"},
};

ka_err_t order_statements_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

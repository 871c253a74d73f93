-- What the order worker (DOMAIN.md sections 2 and 6) keeps beyond the order
-- tables of 0005.

-- Booked revenue rolled up the org tree per month: actual summed over each
-- node's subtree, kept by the same deltas in the same transaction, so closed
-- revenue of any node and month is one row (the forecast and the cache read it).
CREATE TABLE actual_rollup (
    node_id      text NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    period_month date NOT NULL CHECK (period_month = date_trunc('month', period_month::timestamp)::date),
    amount_minor bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, period_month)
);

-- Churn scan: revenue per account over the last 180 days.
CREATE INDEX sales_order_booked_account ON sales_order (account_id, booked_at) WHERE status = 'booked';
-- Channel alerts resolve after a quiet period: the latest violation per kind.
CREATE INDEX distributor_violation_kind ON distributor_violation (distributor_id, kind, detected_at);
-- The opportunity worker closes a deal whose order came before its created event.
CREATE INDEX sales_order_opportunity_booked ON sales_order (opportunity_id, booked_at)
    WHERE opportunity_id IS NOT NULL AND status = 'booked';

-- Sales quality (销售质量) per org node and month: a distributor order counts
-- for the node of the rep who booked it and every node above.
CREATE VIEW sales_quality_node_month AS
SELECT c.ancestor_id AS node_id,
       date_trunc('month', o.booked_at AT TIME ZONE 'UTC')::date AS period_month,
       count(DISTINCT o.id) AS distributor_orders,
       count(DISTINCT v.order_id) FILTER (WHERE v.kind = 'diversion') AS diversion_orders,
       count(DISTINCT v.order_id) FILTER (WHERE v.kind = 'dumping') AS dumping_orders,
       round(100.0 * (count(DISTINCT o.id) - count(DISTINCT v.order_id)) / count(DISTINCT o.id), 1)
           AS clean_pct
  FROM sales_order o
  JOIN org_closure c ON c.descendant_id = o.rep_id
  LEFT JOIN distributor_violation v ON v.order_id = o.id
 WHERE o.channel = 'distributor'
 GROUP BY 1, 2;

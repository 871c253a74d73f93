-- Two corrections of "numbers a manager can trust".
--
-- 1. Closed revenue is what a period booked and still has booked (DOMAIN.md
-- section 5): a cancellation or a return corrects the month the order was
-- booked in, never the month it happens in. The order worker now posts every
-- delta into the booking month; the actuals written under the old rule (a
-- negative amount in the cancellation's month) are recomputed here from the
-- orders as they stand, the way the worker counts them: per account, product,
-- the order's rep and its booking month (UTC), each line rounded as
-- order_line_amount does. This supersedes 0005's note that a row may go
-- negative: no row does any more.

-- Rows no booked order accounts for any more go to zero rather than away, so
-- the Redis cache the order worker rebuilds at start (HSET per row) and the
-- forecast below see the zero.
UPDATE actual SET amount_minor = 0, quantity = 0, updated_at = now()
 WHERE amount_minor <> 0 OR quantity <> 0;

INSERT INTO actual AS a (account_id, sku, node_id, period_month, amount_minor, quantity)
SELECT o.account_id, l.sku, o.rep_id,
       date_trunc('month', o.booked_at AT TIME ZONE 'UTC')::date,
       sum(trunc(((l.quantity * 1000)::bigint::numeric * l.unit_price_minor + 500) / 1000))::bigint,
       sum((l.quantity * 1000)::bigint) / 1000.0
  FROM sales_order o
  JOIN sales_order_line l ON l.order_id = o.id
 WHERE o.status = 'booked'
 GROUP BY 1, 2, 3, 4
    ON CONFLICT (account_id, sku, node_id, period_month) DO UPDATE SET
       amount_minor = EXCLUDED.amount_minor, quantity = EXCLUDED.quantity, updated_at = now();

-- The roll-up per node and month, as the worker keeps it: each rep's rows
-- summed into the rep and every node above it.
UPDATE actual_rollup SET amount_minor = 0, updated_at = now() WHERE amount_minor <> 0;

INSERT INTO actual_rollup AS r (node_id, period_month, amount_minor)
SELECT n.node_id, x.period_month, sum(x.amount_minor)
  FROM actual x
 CROSS JOIN LATERAL (SELECT c.ancestor_id AS node_id FROM org_closure c
                      WHERE c.descendant_id = x.node_id UNION SELECT x.node_id) n
 WHERE x.amount_minor <> 0
 GROUP BY 1, 2
    ON CONFLICT (node_id, period_month) DO UPDATE SET
       amount_minor = EXCLUDED.amount_minor, updated_at = now();

-- The forecast worker recomputes (and publishes again) closed revenue of
-- every rep's months and quarters that have actuals.
INSERT INTO forecast_dirty (node_id, period_kind, period_start)
SELECT DISTINCT x.node_id, k.kind, date_trunc(k.kind, x.period_month)::date
  FROM actual x
 CROSS JOIN (VALUES ('month'), ('quarter')) AS k(kind);

-- 2. An account that was never ranked has no tier yet (DOMAIN.md section 2:
-- its first ranking is not a change and raises no alert). NULL until the
-- order worker's tier scan ranks it; readers show it as not ranked and treat
-- it like D (no churn watch, info severity).
ALTER TABLE account ALTER COLUMN tier DROP DEFAULT, ALTER COLUMN tier DROP NOT NULL;

-- Accounts still at the old default that no ranking ever moved.
UPDATE account a SET tier = NULL
 WHERE a.tier = 'D' AND a.tier_changed_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM account_tier_history h WHERE h.account_id = a.id);

-- Re-orgs and reps the org tree does not know yet (DOMAIN.md section 1: "a
-- moved node or rep moves its figures to its new ancestors").
--
-- The workers roll figures up by deltas along org_closure. A node that moves
-- (or a rep that joins the tree after its first events) would leave those
-- deltas with its old ancestors (or with nobody), so `kactl load org`
-- recomputes the affected roll-ups from the base rows in the transaction
-- that changes the tree (ka_org_moves, ka_org_reroll_begin, ka_org_reroll
-- below; services/kactl/reorg.c). The recompute is absolute, not a delta: a
-- second run finds nothing to change.

-- ---------------------------------------------------------------------------
-- unknown_rep: an alert type of its own.

ALTER TABLE alert_state DROP CONSTRAINT alert_state_type_check;
ALTER TABLE alert_state ADD CONSTRAINT alert_state_type_check CHECK (type IN (
    'visit_overdue', 'tier_changed', 'unauthorized_owner_change',
    'funnel_health', 'stalled_opportunity', 'decision_maker_gap',
    'forecast_gap', 'churn_risk', 'channel_diversion', 'price_dumping',
    'slipping_deal', 'unknown_rep'));

-- Reps that figures were counted for while the org tree did not know them.
-- The opportunity and order workers insert a row in the batch that counts
-- such a rep (ka_unknown_reps_seen); the opportunity worker's follow-up
-- (opp_reorg.c, one instance at a time) raises one unknown_rep alert per row
-- and, once the rep is an org node, resolves it and deletes the row.
CREATE TABLE unknown_rep (
    rep_id        text PRIMARY KEY CHECK (length(rep_id) BETWEEN 1 AND 64),
    -- The latest event time of the batch that first counted the rep: the
    -- alert's episode start, so its id is the same whoever raises it.
    first_seen_ms bigint NOT NULL,
    source        text NOT NULL CHECK (source IN ('opportunity', 'order')),
    alerted       boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Nodes whose funnel_state a re-org recomputed: the opportunity worker
-- re-evaluates their funnel health (and its alerts) from the new figures.
-- A queue like forecast_dirty: plain inserts never wait on the taker.
CREATE TABLE funnel_health_dirty (
    id        bigserial PRIMARY KEY,
    node_id   text NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now()
);

-- Called by the workers after their roll-up upsert (so the row it may wait
-- for is taken after the roll-up rows: see docs/reliability.md, Re-orgs).
-- Records the reps of p_reps that are not org nodes; a rep already recorded
-- keeps its first sighting.
CREATE FUNCTION ka_unknown_reps_seen(p_reps text[], p_seen_ms bigint, p_source text)
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO unknown_rep (rep_id, first_seen_ms, source)
    SELECT DISTINCT r, p_seen_ms, p_source FROM unnest(p_reps) AS r
    WHERE r IS NOT NULL AND NOT EXISTS (SELECT 1 FROM org_node n WHERE n.id = r)
    ORDER BY 1
    ON CONFLICT (rep_id) DO NOTHING
$$;

-- ---------------------------------------------------------------------------
-- The re-org recompute, in the org load's transaction:
--
--   ka_org_moves(ids, parents)   tree lock; the nodes whose roll-up moves
--   ka_org_reroll_begin(moved)   roll-up locks; their ancestors before
--   (the org_node upsert)
--   ka_org_reroll(old, moved)    recompute, marks; the nodes recomputed
--
-- Lock order, the same in every caller: the tree writers' advisory lock
-- 4242101, then funnel_state and actual_rollup in EXCLUSIVE mode, then the
-- forecast recompute's advisory lock 4242015. EXCLUSIVE lets readers on and
-- waits for every worker batch that has already written a roll-up row (they
-- hold ROW EXCLUSIVE until they commit); a batch that has not is held at its
-- roll-up upsert until the load commits, and that statement reads
-- org_closure after its lock, so it adds its delta to the new ancestors, on
-- top of figures recomputed without its uncommitted base rows. No worker
-- takes 4242101 or waits on the load otherwise, and the forecast worker only
-- tries 4242015, so the order cannot deadlock.

-- The nodes of a loaded org file whose roll-up changes: those that exist
-- and get another parent, and those that are new but already have figures
-- (a rep whose events came first: open deals it owns or actuals it booked).
-- Takes the tree writers' lock first, so the answer holds until commit.
CREATE FUNCTION ka_org_moves(p_ids text[], p_parents text[])
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_moved text[];
BEGIN
    PERFORM pg_advisory_xact_lock(4242101);
    SELECT coalesce(array_agg(f.id ORDER BY f.id), '{}') INTO v_moved
    FROM unnest(p_ids, p_parents) AS f(id, parent)
    LEFT JOIN org_node n ON n.id = f.id
    WHERE (n.id IS NOT NULL AND n.parent_id IS DISTINCT FROM f.parent)
       OR (n.id IS NULL AND (
              EXISTS (SELECT 1 FROM opportunity o WHERE o.owner_rep_id = f.id AND o.status = 'open')
              OR EXISTS (SELECT 1 FROM actual a WHERE a.node_id = f.id)));
    RETURN v_moved;
END
$$;

-- Takes the roll-up locks and returns the moved nodes' ancestors (and
-- themselves) as the tree has them before the load changes it.
CREATE FUNCTION ka_org_reroll_begin(p_moved text[])
RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    v_old text[];
BEGIN
    PERFORM pg_advisory_xact_lock(4242101);
    LOCK TABLE funnel_state, actual_rollup IN EXCLUSIVE MODE;
    PERFORM pg_advisory_xact_lock(4242015);
    SELECT coalesce(array_agg(DISTINCT c.ancestor_id), '{}') INTO v_old
    FROM org_closure c WHERE c.descendant_id = ANY(p_moved);
    RETURN v_old;
END
$$;

-- Recomputes, from the base rows, funnel_state (open opportunities by owner)
-- and actual_rollup (actual by crediting rep) of every node in p_old and of
-- the moved nodes and their ancestors now; a row the subtree no longer
-- feeds goes to zero. Marks the nodes whose funnel changed for a health
-- re-evaluation, and for the forecast worker: those nodes at every period
-- the moved nodes have a forecast for (the only way a subtree reaches an
-- ancestor's forecast is through its root's row), and the moved subtrees'
-- deals (their division, hence the planning feed, may have changed).
-- Returns the recomputed nodes, for the cache. Call under
-- ka_org_reroll_begin's locks.
CREATE FUNCTION ka_org_reroll(p_old text[], p_moved text[])
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    v_nodes text[];
BEGIN
    SELECT coalesce(array_agg(DISTINCT x.n ORDER BY x.n), '{}') INTO v_nodes FROM (
        SELECT unnest(p_old)
        UNION SELECT unnest(p_moved)
        UNION SELECT c.ancestor_id FROM org_closure c WHERE c.descendant_id = ANY(p_moved)
    ) AS x(n);

    WITH sub AS (
        SELECT a.node, d.rep FROM unnest(v_nodes) AS a(node)
        CROSS JOIN LATERAL (SELECT c.descendant_id AS rep FROM org_closure c
                            WHERE c.ancestor_id = a.node UNION SELECT a.node) AS d
    ), fig AS (
        SELECT s.node AS node_id, o.definition_id, o.stage_code, count(*) AS open_count,
               sum(o.amount_minor) AS amount_minor,
               sum(o.weighted_amount_minor) AS weighted_amount_minor
        FROM sub s JOIN opportunity o ON o.owner_rep_id = s.rep AND o.status = 'open'
        GROUP BY 1, 2, 3
    ), cur AS (
        SELECT f.node_id, f.definition_id, f.stage_code FROM funnel_state f
        WHERE f.node_id = ANY(v_nodes)
    ), want AS (
        SELECT node_id, definition_id, stage_code, coalesce(g.open_count, 0) AS open_count,
               coalesce(g.amount_minor, 0) AS amount_minor,
               coalesce(g.weighted_amount_minor, 0) AS weighted_amount_minor
        FROM cur FULL JOIN fig g USING (node_id, definition_id, stage_code)
    ), up AS (
        INSERT INTO funnel_state AS f (node_id, definition_id, stage_code, open_count,
                                       amount_minor, weighted_amount_minor)
        SELECT * FROM want ORDER BY 1, 2, 3
        ON CONFLICT (node_id, definition_id, stage_code) DO UPDATE SET
            open_count = EXCLUDED.open_count, amount_minor = EXCLUDED.amount_minor,
            weighted_amount_minor = EXCLUDED.weighted_amount_minor, updated_at = now()
        WHERE (f.open_count, f.amount_minor, f.weighted_amount_minor) IS DISTINCT FROM
              (EXCLUDED.open_count, EXCLUDED.amount_minor, EXCLUDED.weighted_amount_minor)
        RETURNING f.node_id
    )
    INSERT INTO funnel_health_dirty (node_id) SELECT DISTINCT node_id FROM up;

    WITH sub AS (
        SELECT a.node, d.rep FROM unnest(v_nodes) AS a(node)
        CROSS JOIN LATERAL (SELECT c.descendant_id AS rep FROM org_closure c
                            WHERE c.ancestor_id = a.node UNION SELECT a.node) AS d
    ), fig AS (
        SELECT s.node AS node_id, x.period_month, sum(x.amount_minor) AS amount_minor
        FROM sub s JOIN actual x ON x.node_id = s.rep
        GROUP BY 1, 2
    ), cur AS (
        SELECT r.node_id, r.period_month FROM actual_rollup r WHERE r.node_id = ANY(v_nodes)
    ), want AS (
        SELECT node_id, period_month, coalesce(g.amount_minor, 0) AS amount_minor
        FROM cur FULL JOIN fig g USING (node_id, period_month)
    )
    INSERT INTO actual_rollup AS r (node_id, period_month, amount_minor)
    SELECT * FROM want ORDER BY 1, 2
    ON CONFLICT (node_id, period_month) DO UPDATE SET
        amount_minor = EXCLUDED.amount_minor, updated_at = now()
    WHERE r.amount_minor IS DISTINCT FROM EXCLUDED.amount_minor;

    INSERT INTO forecast_dirty (node_id, period_kind, period_start)
    SELECT a.node, p.period_kind, p.period_start
    FROM unnest(v_nodes) AS a(node)
    CROSS JOIN (SELECT DISTINCT period_kind, period_start FROM forecast
                WHERE node_id = ANY(p_moved)) AS p
    ORDER BY 1, 2, 3;

    INSERT INTO forecast_dirty (opportunity_id)
    SELECT DISTINCT o.id FROM org_closure c
    JOIN opportunity o ON o.owner_rep_id = c.descendant_id AND o.status <> 'lost'
    WHERE c.ancestor_id = ANY(p_moved)
    ORDER BY 1;

    RETURN QUERY SELECT unnest(v_nodes);
END
$$;

-- ---------------------------------------------------------------------------
-- Privileges (0012_worker_roles.sql).

GRANT SELECT, INSERT, UPDATE, DELETE ON unknown_rep TO ka_opportunity_worker;
GRANT SELECT, INSERT ON unknown_rep TO ka_order_worker;
GRANT SELECT, DELETE ON funnel_health_dirty TO ka_opportunity_worker;

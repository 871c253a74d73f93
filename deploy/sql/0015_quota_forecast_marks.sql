-- A quota reaches the forecast by itself (DOMAIN.md sections 1 and 5).
--
-- Every (node, period) with a quota has a forecast row, and a quota loaded,
-- changed or removed reaches its quota, gap and coverage (and so the pace
-- alert) without waiting for an unrelated deal or order: whatever writes the
-- quota table marks the node-period in forecast_dirty in the same
-- transaction, as the opportunity and order workers mark theirs. The forecast
-- worker takes the marks each tick and rolls the node and its ancestors up;
-- a rolled-back load marks nothing, and marks made while the worker is down
-- wait for it.
--
-- Statement-level triggers with transition tables: a bulk load marks in one
-- INSERT per statement, not one per row (PostgreSQL allows transition tables
-- only on single-event triggers, hence three). The loader's upsert skips
-- unchanged rows, so reloading a file marks nothing. The trigger runs with
-- the writer's rights: only the owner (kactl) writes quota, and it may insert
-- into forecast_dirty; no worker role gains a privilege.

CREATE FUNCTION ka_quota_mark_forecast() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Each branch names only the transition tables its trigger has.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO forecast_dirty (node_id, period_kind, period_start)
        SELECT DISTINCT node_id, period_kind, period_start FROM quota_new;
    ELSIF TG_OP = 'UPDATE' THEN
        -- Both keys: an update may move a quota to another node or period.
        INSERT INTO forecast_dirty (node_id, period_kind, period_start)
        SELECT node_id, period_kind, period_start FROM quota_old
        UNION
        SELECT node_id, period_kind, period_start FROM quota_new;
    ELSE
        INSERT INTO forecast_dirty (node_id, period_kind, period_start)
        SELECT DISTINCT node_id, period_kind, period_start FROM quota_old;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER quota_mark_forecast_insert AFTER INSERT ON quota
    REFERENCING NEW TABLE AS quota_new
    FOR EACH STATEMENT EXECUTE FUNCTION ka_quota_mark_forecast();
CREATE TRIGGER quota_mark_forecast_update AFTER UPDATE ON quota
    REFERENCING OLD TABLE AS quota_old NEW TABLE AS quota_new
    FOR EACH STATEMENT EXECUTE FUNCTION ka_quota_mark_forecast();
CREATE TRIGGER quota_mark_forecast_delete AFTER DELETE ON quota
    REFERENCING OLD TABLE AS quota_old
    FOR EACH STATEMENT EXECUTE FUNCTION ka_quota_mark_forecast();

-- Quotas loaded before this migration: each node-period whose forecast row
-- is missing or carries another quota (a quota changed or removed since the
-- row was last computed) is marked once; rows already right are not.
INSERT INTO forecast_dirty (node_id, period_kind, period_start)
SELECT coalesce(q.node_id, f.node_id), coalesce(q.period_kind, f.period_kind),
       coalesce(q.period_start, f.period_start)
FROM quota q
FULL JOIN forecast f
  ON f.node_id = q.node_id AND f.period_kind = q.period_kind AND f.period_start = q.period_start
WHERE f.node_id IS NULL OR f.quota_minor IS DISTINCT FROM q.amount_minor;

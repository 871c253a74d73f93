-- The alert bridge (services/alert-bridge): delivers alerts to Prometheus
-- Alertmanager, routed by the org tree (kactl alertmanager-config).
--
-- alert_delivery is every alert as the bridge posts it: the state row with
-- its subject's org path (division, region, team, rep: the ancestors of the
-- subject's node, or of the owning rep of an account or opportunity), the
-- account and opportunity it concerns, and the responsible manager (the
-- nearest manager up the tree from the subject's node). Distributors' alerts
-- have no org path.
--
-- The bridge's role reads that view and nothing else of the schema (a view
-- reads its tables with its owner's rights), and inserts the dead letters of
-- the malformed alert events it rejects. It never writes alert state: the
-- workers own it.

CREATE VIEW alert_delivery AS
SELECT a.fingerprint, a.alert_id, a.type, a.severity, a.status, a.subject_kind, a.subject_id,
       a.summary, a.details::text AS details,
       (extract(epoch FROM a.starts_at) * 1000)::bigint AS starts_at_ms,
       (extract(epoch FROM a.ends_at) * 1000)::bigint AS ends_at_ms,
       a.ends_at,
       p.division, p.region, p.team, p.rep, s.account_id, s.opportunity_id, p.manager
FROM alert_state a
CROSS JOIN LATERAL (
    SELECT CASE a.subject_kind
               WHEN 'node' THEN a.subject_id
               WHEN 'account' THEN (SELECT ac.owner_rep_id FROM account ac WHERE ac.id = a.subject_id)
               WHEN 'opportunity' THEN (SELECT o.owner_rep_id FROM opportunity o WHERE o.id = a.subject_id)
           END AS node_id,
           CASE a.subject_kind
               WHEN 'account' THEN a.subject_id
               WHEN 'opportunity' THEN (SELECT o.account_id FROM opportunity o WHERE o.id = a.subject_id)
           END AS account_id,
           CASE WHEN a.subject_kind = 'opportunity' THEN a.subject_id END AS opportunity_id
) s
LEFT JOIN LATERAL (
    SELECT max(n.id) FILTER (WHERE n.kind = 'division') AS division,
           max(n.id) FILTER (WHERE n.kind = 'region') AS region,
           max(n.id) FILTER (WHERE n.kind = 'team') AS team,
           max(n.id) FILTER (WHERE n.kind = 'rep') AS rep,
           (array_agg(n.manager_user_id ORDER BY c.depth)
               FILTER (WHERE n.manager_user_id IS NOT NULL))[1] AS manager
    FROM org_closure c
    JOIN org_node n ON n.id = c.ancestor_id
    WHERE c.descendant_id = s.node_id
) p ON true;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ka_alert_bridge') THEN
        BEGIN
            CREATE ROLE ka_alert_bridge LOGIN;
        EXCEPTION WHEN duplicate_object THEN
            NULL; -- another database's migration created it meanwhile
        END;
    END IF;
END
$$;

GRANT SELECT ON alert_delivery TO ka_alert_bridge;
GRANT INSERT ON dead_letter TO ka_alert_bridge;
GRANT USAGE ON SEQUENCE dead_letter_id_seq TO ka_alert_bridge;

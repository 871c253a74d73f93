-- Distributors' alerts (窜货, 压价) under the company node in the HTTP API.
--
-- A distributor has no place in the org tree (its territories are ship-to
-- region codes, not sales nodes), so 0021's api_alert left its alerts with
-- no node and no scoped token saw them. Channel discipline is the company's
-- concern: they fall under the root, seen by a company-level token and by
-- nobody below it.
CREATE OR REPLACE VIEW api_alert AS
SELECT a.fingerprint, a.alert_id, a.type, a.severity, a.status, a.subject_kind, a.subject_id,
       a.summary, a.details, a.starts_at, a.ends_at, a.last_transition_at, a.updated_at,
       CASE a.subject_kind
           WHEN 'node' THEN a.subject_id
           WHEN 'account' THEN (SELECT ac.owner_rep_id FROM account ac WHERE ac.id = a.subject_id)
           WHEN 'opportunity' THEN (SELECT o.owner_rep_id FROM opportunity o WHERE o.id = a.subject_id)
           WHEN 'distributor' THEN (SELECT n.id FROM org_node n WHERE n.parent_id IS NULL
                                    ORDER BY n.id LIMIT 1)
       END AS node_id
FROM alert_state a;

-- The HTTP API (services/api, binary ka-api): bearer tokens and the
-- least-privilege role the service reads as.
--
-- api_token keeps only the SHA-256 of each token (kactl token create prints
-- the token once). A token sees the subtree of its node; an ops token
-- (kactl token create --ops) also sees the dead letters. id is the first 12
-- hex digits of the hash: enough to name a token in kactl token list and
-- revoke, and nothing that lets anyone rebuild it.
CREATE TABLE api_token (
    id         text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{12}$'),
    hash       text NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$'),
    node_id    text NOT NULL REFERENCES org_node (id),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    ops        boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    CONSTRAINT api_token_expires_after_created CHECK (expires_at IS NULL OR expires_at > created_at)
);

-- Alerts with the org node they fall under: a node's own, or the owning
-- rep of an account or an opportunity (as alert_delivery finds them).
-- Distributors' alerts have no node and are seen by no scoped token.
CREATE VIEW api_alert AS
SELECT a.fingerprint, a.alert_id, a.type, a.severity, a.status, a.subject_kind, a.subject_id,
       a.summary, a.details, a.starts_at, a.ends_at, a.last_transition_at, a.updated_at,
       CASE a.subject_kind
           WHEN 'node' THEN a.subject_id
           WHEN 'account' THEN (SELECT ac.owner_rep_id FROM account ac WHERE ac.id = a.subject_id)
           WHEN 'opportunity' THEN (SELECT o.owner_rep_id FROM opportunity o WHERE o.id = a.subject_id)
       END AS node_id
FROM alert_state a;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ka_api') THEN
        BEGIN
            CREATE ROLE ka_api LOGIN;
        EXCEPTION WHEN duplicate_object THEN
            NULL; -- another database's migration created it meanwhile
        END;
    END IF;
END
$$;

-- SELECT only, on what the API serves and what its scoping reads.
GRANT SELECT ON api_token, org_node, org_closure, funnel_definition, funnel_stage, funnel_state,
                funnel_health, forecast, forecast_adjustment, forecast_submission, quota,
                api_alert, follow_up, follow_up_coverage, visit_coverage_rep_month, visit,
                account, actual, opportunity, opportunity_event, opportunity_stage_history,
                planning_feed, product, dead_letter
   TO ka_api;

-- Funnel health is written when a band changes, not at every evaluation.
--
-- The opportunity worker used to rewrite every funnel_health row its batch
-- touched (the current value and ratio move with every deal), about 1.6 rows
-- per event, the most written table after the event log (issue 17). It now
-- writes a row only when the status (band) or the baseline changes, or the
-- row is new: the transitions that alerts follow. funnel_health's
-- current_value, ratio_bp and evaluated_at are therefore as of the last such
-- change; the live figures come from funnel_state, and this view joins them:
-- the ratio with the same integer rule as opp_health_eval (current x 10,000
-- / baseline, none without a positive baseline).
CREATE VIEW funnel_health_now AS
SELECT h.node_id, h.definition_id, h.stage_code, h.metric,
       coalesce(CASE h.metric WHEN 'count' THEN f.open_count ELSE f.amount_minor END, 0)
           AS current_value,
       h.baseline_value,
       CASE WHEN h.baseline_value > 0 THEN
           coalesce(CASE h.metric WHEN 'count' THEN f.open_count ELSE f.amount_minor END, 0)
           * 10000 / h.baseline_value END AS ratio_bp,
       h.status, h.status_since, h.evaluated_at AS changed_at
FROM funnel_health h
LEFT JOIN funnel_state f ON f.node_id = h.node_id AND f.definition_id = h.definition_id
     AND f.stage_code = h.stage_code;

GRANT SELECT ON funnel_health_now TO ka_opportunity_worker;

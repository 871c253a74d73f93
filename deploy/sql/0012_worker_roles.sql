-- Least-privilege PostgreSQL roles of the workers (docs/security.md).
--
-- Each worker connects as its own role and can write only its own tables and
-- the shared runtime ones it needs; it reads what its statements read. The
-- owner (the migrating user, also used by kactl and kagen) keeps everything.
--
-- Roles are cluster-wide while grants are per database, and one cluster may
-- host several databases of this schema (e.g. ka and ka_test): creating a
-- role that exists is not an error here, and the grants below are applied in
-- every database the migration runs in.
--
-- The worker roles are LOGIN roles without a password: a deployment either
-- sets one (ALTER ROLE ka_visit_worker PASSWORD '...', or \password in psql)
-- or authenticates them otherwise (certificates, peer); a deployment that
-- prefers its own user names grants the worker role to them
-- (GRANT ka_visit_worker TO visit_svc) and they inherit its privileges.
-- The migrating user needs CREATEROLE (or to be superuser).

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['ka_worker'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object THEN
                NULL; -- another database's migration created it meanwhile
            END;
        END IF;
    END LOOP;
    FOREACH r IN ARRAY ARRAY['ka_opportunity_worker', 'ka_visit_worker', 'ka_order_worker',
                             'ka_forecast_worker'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', r);
            EXCEPTION WHEN duplicate_object THEN
                NULL;
            END;
        END IF;
        EXECUTE format('GRANT ka_worker TO %I', r);
    END LOOP;
END
$$;

-- What every worker does: the exactly-once loop (stored offsets, processed
-- events, outbox, dead letters), alerts, scan records, and reading the
-- reference data and the subjects alerts name.
GRANT SELECT, INSERT, UPDATE ON consumer_offset TO ka_worker;
GRANT SELECT, INSERT, DELETE ON processed_event TO ka_worker;
GRANT SELECT, INSERT, UPDATE ON outbox TO ka_worker;
GRANT SELECT, INSERT ON dead_letter TO ka_worker;
GRANT SELECT, INSERT, UPDATE ON alert_state TO ka_worker;
GRANT SELECT, INSERT ON alert_history TO ka_worker;
GRANT SELECT, INSERT, UPDATE ON scan_run TO ka_worker;
GRANT USAGE ON SEQUENCE outbox_id_seq, dead_letter_id_seq, alert_history_id_seq TO ka_worker;
GRANT SELECT ON app_user, funnel_definition, funnel_stage, business_unit, org_node, org_closure,
                funnel_baseline, quota, product, distributor, distributor_territory,
                distributor_floor_price, account, opportunity
   TO ka_worker;

-- Opportunity worker: opportunities, the funnel, forecast confirmations;
-- creates accounts it first hears of; marks forecast work.
GRANT SELECT, INSERT, UPDATE, DELETE
   ON opportunity, opportunity_line, opportunity_stage_history, opportunity_event,
      forecast_confirmation, funnel_state, funnel_health
   TO ka_opportunity_worker;
GRANT USAGE ON SEQUENCE opportunity_stage_history_id_seq TO ka_opportunity_worker;
GRANT INSERT, UPDATE ON account TO ka_opportunity_worker;
GRANT INSERT ON forecast_dirty TO ka_opportunity_worker;
GRANT USAGE ON SEQUENCE forecast_dirty_id_seq TO ka_opportunity_worker;
GRANT SELECT ON visit, sales_order TO ka_opportunity_worker;

-- Visit worker: visits, contacts, follow-up plans, MAN history; keeps the
-- account's visit facts.
GRANT SELECT, INSERT, UPDATE, DELETE
   ON visit, visit_contact, contact, follow_up, account_man_history
   TO ka_visit_worker;
GRANT USAGE ON SEQUENCE account_man_history_id_seq TO ka_visit_worker;
GRANT INSERT, UPDATE ON account TO ka_visit_worker;

-- Order worker: orders, actuals, distributor channel checks, tiers; keeps
-- the account's revenue facts; marks forecast work.
GRANT SELECT, INSERT, UPDATE, DELETE
   ON sales_order, sales_order_line, sales_order_event, actual, actual_rollup,
      distributor_sales_quality, distributor_violation, account_tier_history
   TO ka_order_worker;
GRANT USAGE ON SEQUENCE account_tier_history_id_seq TO ka_order_worker;
GRANT INSERT, UPDATE ON account TO ka_order_worker;
GRANT INSERT ON forecast_dirty TO ka_order_worker;
GRANT USAGE ON SEQUENCE forecast_dirty_id_seq TO ka_order_worker;
GRANT SELECT ON visit, follow_up TO ka_order_worker;

-- Forecast worker: forecasts, adjustments, submissions, snapshots, accuracy,
-- the planning feed, derived baselines and funnel snapshots; takes the work
-- queue.
GRANT SELECT, INSERT, UPDATE, DELETE
   ON forecast, forecast_adjustment, forecast_submission, forecast_snapshot, forecast_accuracy,
      planning_feed, forecast_dirty, forecast_opportunity, forecast_line, planning_line,
      opportunity_snapshot, funnel_snapshot
   TO ka_forecast_worker;
GRANT INSERT, UPDATE ON funnel_baseline TO ka_forecast_worker;
GRANT USAGE ON SEQUENCE forecast_adjustment_id_seq, forecast_submission_id_seq,
                        forecast_dirty_id_seq
   TO ka_forecast_worker;
GRANT SELECT ON actual, actual_rollup, forecast_confirmation, funnel_state, opportunity_line
   TO ka_forecast_worker;

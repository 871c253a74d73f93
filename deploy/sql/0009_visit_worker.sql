-- What the visit worker (DOMAIN.md sections 2 and 3) keeps beyond the visit
-- tables of 0003: how each visit stood against the follow-up plan in force,
-- the coverage views the reports read, and a record of every periodic scan.

-- The plan in force when the visit came: its due date, and whether the visit
-- came by then. NULL on both: no plan was in force (first visit, give-up).
ALTER TABLE visit ADD COLUMN plan_due_at timestamptz;
ALTER TABLE visit ADD COLUMN on_time boolean;
-- A visit older than the account's latest one arrived late: it is kept and
-- counted, but it does not replace the plan or the MAN class in force.
ALTER TABLE visit ADD COLUMN superseded boolean NOT NULL DEFAULT false;

-- Decision-maker-gap scan: open deals of accounts without a recent
-- decision-maker visit.
CREATE INDEX account_last_dm_visit ON account (last_decision_maker_visit_at);
CREATE INDEX opportunity_open_account ON opportunity (account_id) WHERE status = 'open';

-- Visit coverage per rep and calendar month (UTC): visits, distinct accounts,
-- visits that had a plan to meet, and those that met it.
CREATE VIEW visit_coverage_rep_month AS
SELECT rep_id,
       date_trunc('month', visited_at AT TIME ZONE 'UTC')::date AS month,
       count(*) AS visits,
       count(DISTINCT account_id) AS accounts_visited,
       count(*) FILTER (WHERE on_time IS NOT NULL) AS planned_visits,
       count(*) FILTER (WHERE on_time) AS on_time_visits
  FROM visit
 GROUP BY 1, 2;

-- The same per account.
CREATE VIEW visit_coverage_account_month AS
SELECT account_id,
       date_trunc('month', visited_at AT TIME ZONE 'UTC')::date AS month,
       count(*) AS visits,
       count(DISTINCT rep_id) AS reps,
       count(*) FILTER (WHERE on_time IS NOT NULL) AS planned_visits,
       count(*) FILTER (WHERE on_time) AS on_time_visits
  FROM visit
 GROUP BY 1, 2;

-- Right now, per rep: accounts with a follow-up plan, and the share of them
-- still within their interval (not overdue).
CREATE VIEW follow_up_coverage AS
SELECT f.rep_id,
       count(*) AS accounts_followed,
       count(*) FILTER (WHERE f.next_due_at >= now()) AS within_interval,
       count(*) FILTER (WHERE f.next_due_at < now()) AS overdue,
       round(100.0 * count(*) FILTER (WHERE f.next_due_at >= now()) / count(*), 1)
           AS within_interval_pct
  FROM follow_up f
 GROUP BY f.rep_id;

-- One row per periodic scan (overdue follow-ups, decision-maker gaps, stalled
-- deals): when it last ran, by the worker's clock, and what it changed. For
-- operators ("is the scan running?") and for tests that move the clock.
CREATE TABLE scan_run (
    name           text PRIMARY KEY,
    consumer_group text NOT NULL,
    clock_at       timestamptz NOT NULL,
    fired          integer NOT NULL,
    resolved       integer NOT NULL,
    finished_at    timestamptz NOT NULL DEFAULT now()
);

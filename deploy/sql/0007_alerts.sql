-- Alerts (DOMAIN.md section 7), the Alertmanager model: one state row per
-- fingerprint (type + subject), events only on transitions. The outbox event
-- id of a transition derives from (fingerprint, transition, starts_at), so a
-- replay after a crash inserts the same outbox row and is dropped there.
--
-- Alert types, one per rule:
--   visit_overdue              follow-up due date passed (section 3)
--   tier_changed               account moved between A/B/C/D (info)
--   unauthorized_owner_change  owner change by a non-superior (section 4)
--   funnel_health              a funnel ratio fell under the warning threshold
--   stalled_opportunity        dwell over the stage limit, or no recent visit
--   decision_maker_gap         stage 05+ without a decision-maker visit in 90 days
--   forecast_gap               closed + commit behind quota's pace
--   churn_risk                 大客户叛离 signals on a tier A/B account
--   channel_diversion          窜货: shipped outside the distributor's territory
--   price_dumping              压价: sold under the floor price
--   slipping_deal              expected close date passed, or pushed out repeatedly
-- Subjects are those of section 7 (node, account, opportunity) plus
-- distributor, the natural subject of the two channel rules.

CREATE TABLE alert_state (
    fingerprint        text PRIMARY KEY CHECK (length(fingerprint) BETWEEN 1 AND 128),
    -- Deterministic per firing episode: changes when a resolved alert fires again.
    alert_id           text NOT NULL UNIQUE CHECK (length(alert_id) BETWEEN 1 AND 128),
    type               text NOT NULL CHECK (type IN (
                           'visit_overdue', 'tier_changed', 'unauthorized_owner_change',
                           'funnel_health', 'stalled_opportunity', 'decision_maker_gap',
                           'forecast_gap', 'churn_risk', 'channel_diversion', 'price_dumping',
                           'slipping_deal')),
    severity           text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status             text NOT NULL CHECK (status IN ('firing', 'resolved')),
    subject_kind       text NOT NULL
        CHECK (subject_kind IN ('node', 'account', 'opportunity', 'distributor')),
    subject_id         text NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 64),
    summary            text NOT NULL,
    details            jsonb NOT NULL DEFAULT '{}',
    starts_at          timestamptz NOT NULL,
    ends_at            timestamptz,
    cause_event_ids    text[] NOT NULL DEFAULT '{}',
    last_transition_at timestamptz NOT NULL,
    -- For an optional repeat interval while firing.
    last_sent_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alert_state_ends_at_iff_resolved CHECK ((status = 'resolved') = (ends_at IS NOT NULL)),
    CONSTRAINT alert_state_ends_after_start CHECK (ends_at IS NULL OR ends_at >= starts_at)
);

CREATE INDEX alert_state_firing ON alert_state (type, severity) WHERE status = 'firing';
CREATE INDEX alert_state_subject ON alert_state (subject_kind, subject_id);

-- One row per transition sent (firing, resolved, repeat).
CREATE TABLE alert_history (
    id              bigserial PRIMARY KEY,
    fingerprint     text NOT NULL REFERENCES alert_state (fingerprint),
    alert_id        text NOT NULL,
    transition      text NOT NULL CHECK (transition IN ('firing', 'resolved', 'repeat')),
    type            text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    summary         text NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}',
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz,
    cause_event_ids text[] NOT NULL DEFAULT '{}',
    -- The outbox event that carried this transition.
    event_id        text NOT NULL UNIQUE,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX alert_history_fingerprint ON alert_history (fingerprint, occurred_at);
CREATE INDEX alert_history_time ON alert_history (occurred_at);

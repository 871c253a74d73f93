-- Opportunities (商机) and the funnel (DOMAIN.md section 4).
--
-- Foreign keys left out on purpose: owner/rep ids and business unit ids (the
-- event may precede the admin CLI's load), and opportunity_event.opportunity_id
-- (an event for an opportunity not created yet is still recorded). Stage codes
-- do reference funnel_stage: a stage must be known to validate the event at
-- all, and the reference stops a stage in use from being deleted.

CREATE TABLE opportunity (
    id                    text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    account_id            text NOT NULL REFERENCES account (id),
    -- 主要负责人: one primary owner, a rep node id.
    owner_rep_id          text NOT NULL CHECK (length(owner_rep_id) BETWEEN 1 AND 64),
    business_unit_id      text,
    -- Copied at creation so remapping a business unit leaves it in place.
    definition_id         text NOT NULL,
    stage_code            text NOT NULL,
    amount_minor          bigint NOT NULL DEFAULT 0 CHECK (amount_minor >= 0),
    -- The stage's probability when it was entered, so the weighted amount
    -- already counted in funnel_state stays reproducible if the definition
    -- is edited later.
    win_probability_bp    integer NOT NULL CHECK (win_probability_bp BETWEEN 0 AND 10000),
    -- Rounded half up. Validated amounts are <= 10^14, so the product fits.
    weighted_amount_minor bigint GENERATED ALWAYS AS
        ((amount_minor * win_probability_bp + 5000) / 10000) STORED,
    expected_close_date   date,
    sales_mode            text CHECK (sales_mode IN ('bid', 'direct', 'distribution')),
    competitors           text[] NOT NULL DEFAULT '{}',
    -- 控制程度: >80%, >60%, <30%, unknown.
    relationship_degree   text NOT NULL DEFAULT 'unknown'
        CHECK (relationship_degree IN ('over_80', 'over_60', 'under_30', 'unknown')),
    -- 特大, 大, 中等, 一般.
    impact                text CHECK (impact IN ('very_large', 'large', 'medium', 'ordinary')),
    status                text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
    lost_reason           text,
    closed_at             timestamptz,
    -- Dwell in the current stage is measured from here.
    stage_entered_at      timestamptz NOT NULL,
    -- Value assessment (商机价值评估): yes-counts of the four dimensions of
    -- five questions each (is there an opportunity, can we compete, can we
    -- win, is it worth winning). NULL until assessed.
    assess_exists         smallint CHECK (assess_exists BETWEEN 0 AND 5),
    assess_compete        smallint CHECK (assess_compete BETWEEN 0 AND 5),
    assess_win            smallint CHECK (assess_win BETWEEN 0 AND 5),
    assess_worth          smallint CHECK (assess_worth BETWEEN 0 AND 5),
    assessment_score      smallint GENERATED ALWAYS AS
        (assess_exists + assess_compete + assess_win + assess_worth) STORED,
    high_value            boolean GENERATED ALWAYS AS
        (COALESCE(assess_exists + assess_compete + assess_win + assess_worth > 10, false)) STORED,
    assessed_at           timestamptz,
    -- Ordering guard: an event whose occurred_at is older than
    -- last_event_at is recorded in opportunity_event but not applied.
    version               bigint NOT NULL DEFAULT 0,
    last_event_at         timestamptz,
    last_event_id         text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (definition_id, stage_code) REFERENCES funnel_stage (definition_id, code),
    CONSTRAINT opportunity_closed_at_iff_closed CHECK ((status = 'open') = (closed_at IS NULL))
);

CREATE INDEX opportunity_account ON opportunity (account_id);
CREATE INDEX opportunity_open_owner_stage ON opportunity (owner_rep_id, definition_id, stage_code)
    WHERE status = 'open';
CREATE INDEX opportunity_open_stage ON opportunity (definition_id, stage_code, stage_entered_at)
    WHERE status = 'open';
CREATE INDEX opportunity_open_close_date ON opportunity (expected_close_date)
    WHERE status = 'open';

CREATE TABLE opportunity_line (
    opportunity_id   text NOT NULL REFERENCES opportunity (id) ON DELETE CASCADE,
    line_no          integer NOT NULL CHECK (line_no > 0),
    -- No reference to product: the SKU may be loaded after the event.
    sku              text NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    -- 配置需求: the configuration the customer asked for.
    requirement      text,
    quantity         numeric(20, 4) NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    amount_minor     bigint GENERATED ALWAYS AS (round(quantity * unit_price_minor)::bigint) STORED,
    PRIMARY KEY (opportunity_id, line_no)
);

CREATE INDEX opportunity_line_sku ON opportunity_line (sku);

-- Every stage transition, including the one into the first stage (from_stage
-- NULL) and into won/lost.
CREATE TABLE opportunity_stage_history (
    id             bigserial PRIMARY KEY,
    opportunity_id text NOT NULL REFERENCES opportunity (id),
    definition_id  text NOT NULL,
    from_stage     text,
    to_stage       text NOT NULL,
    event_id       text NOT NULL,
    occurred_at    timestamptz NOT NULL,
    -- Time spent in from_stage; NULL for the first entry.
    dwell_seconds  bigint CHECK (dwell_seconds >= 0),
    UNIQUE (opportunity_id, event_id)
);

CREATE INDEX opportunity_stage_history_opp ON opportunity_stage_history (opportunity_id, occurred_at);

-- Every event that reached an opportunity, applied or not (stale events are
-- kept for audit, DOMAIN.md section 8). payload is the input's protobuf bytes.
CREATE TABLE opportunity_event (
    opportunity_id     text NOT NULL CHECK (length(opportunity_id) BETWEEN 1 AND 64),
    event_id           text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 64),
    kind               text NOT NULL CHECK (kind IN ('created', 'updated', 'stage_changed', 'assessed',
                                                     'owner_changed', 'forecast_confirmed', 'won',
                                                     'lost', 'reopened')),
    occurred_at        timestamptz NOT NULL,
    applied            boolean NOT NULL,
    -- Why it was not applied, e.g. 'stale'.
    not_applied_reason text,
    source_topic       text,
    source_partition   integer,
    source_offset      bigint,
    payload            bytea,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (opportunity_id, event_id),
    CONSTRAINT opportunity_event_reason_if_not_applied CHECK (applied OR not_applied_reason IS NOT NULL)
);

CREATE INDEX opportunity_event_time ON opportunity_event (opportunity_id, occurred_at);

-- 商机确认: an opportunity counts in a forecast period only once its primary
-- owner confirmed it. category NULL follows the current stage's default;
-- a value is the owner's explicit choice.
CREATE TABLE forecast_confirmation (
    opportunity_id text NOT NULL REFERENCES opportunity (id),
    period_kind    text NOT NULL CHECK (period_kind IN ('month', 'quarter')),
    period_start   date NOT NULL,
    owner_rep_id   text NOT NULL CHECK (length(owner_rep_id) BETWEEN 1 AND 64),
    category       text CHECK (category IN ('pipeline', 'best_case', 'commit', 'closed', 'omitted')),
    event_id       text NOT NULL,
    confirmed_at   timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (opportunity_id, period_kind, period_start),
    CONSTRAINT forecast_confirmation_period_start CHECK (period_start = date_trunc(period_kind, period_start::timestamp)::date)
);

CREATE INDEX forecast_confirmation_owner ON forecast_confirmation (owner_rep_id, period_kind, period_start);

-- ---------------------------------------------------------------------------
-- Funnel state, health and snapshots. node_id is not a foreign key: state is
-- kept for a rep the org tree does not know yet, and history must survive a
-- node's removal.

-- Rolled up: a node's row covers its whole subtree.
CREATE TABLE funnel_state (
    node_id               text NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    definition_id         text NOT NULL,
    stage_code            text NOT NULL,
    -- No ">= 0" checks: the worker adds signed deltas with INSERT .. ON
    -- CONFLICT DO UPDATE, and PostgreSQL checks the proposed (delta) row
    -- before it finds the conflict. The integration tests compare the
    -- table with a recomputation from the opportunities instead.
    open_count            bigint NOT NULL DEFAULT 0,
    amount_minor          bigint NOT NULL DEFAULT 0,
    weighted_amount_minor bigint NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, definition_id, stage_code),
    FOREIGN KEY (definition_id, stage_code)
        REFERENCES funnel_stage (definition_id, code) ON DELETE CASCADE
);

-- 漏斗健康: ratio = current / baseline. The status only leaves 'warning'
-- once the ratio clears the threshold plus the hysteresis margin, so the
-- stored status (not the ratio) decides whether an alert is firing.
CREATE TABLE funnel_health (
    node_id        text NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    definition_id  text NOT NULL,
    stage_code     text NOT NULL,
    metric         text NOT NULL CHECK (metric IN ('count', 'amount')),
    current_value  bigint NOT NULL,
    baseline_value bigint,
    -- NULL when there is no baseline (or it is zero).
    ratio_bp       bigint,
    status         text NOT NULL CHECK (status IN ('excellent', 'good', 'warning', 'no_baseline')),
    status_since   timestamptz NOT NULL,
    evaluated_at   timestamptz NOT NULL,
    PRIMARY KEY (node_id, definition_id, stage_code, metric),
    FOREIGN KEY (definition_id, stage_code)
        REFERENCES funnel_stage (definition_id, code) ON DELETE CASCADE
);

CREATE INDEX funnel_health_warning ON funnel_health (node_id) WHERE status = 'warning';

-- Daily copies of funnel_state: the source of derived baselines (same day of
-- the last N periods). No stage reference, so history outlives a stage.
CREATE TABLE funnel_snapshot (
    node_id               text NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    definition_id         text NOT NULL,
    stage_code            text NOT NULL,
    snapshot_date         date NOT NULL,
    open_count            bigint NOT NULL CHECK (open_count >= 0),
    amount_minor          bigint NOT NULL CHECK (amount_minor >= 0),
    weighted_amount_minor bigint NOT NULL CHECK (weighted_amount_minor >= 0),
    taken_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, definition_id, stage_code, snapshot_date)
);

-- Retention and "was today's snapshot taken" checks.
CREATE INDEX funnel_snapshot_date ON funnel_snapshot (snapshot_date);

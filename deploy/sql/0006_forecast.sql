-- Forecast (销售预测) and the planning feed (DOMAIN.md section 5).
--
-- node_id is not a foreign key anywhere here: these rows are derived from
-- events and must not block, or vanish with, an org tree edit.
--
-- Categories: closed (booked orders), commit, best_case, pipeline, and the
-- weighted pipeline. raw_* is the sum of the children's submitted (adjusted)
-- figures, or the rep's own confirmed opportunities; adj_* is what goes up
-- the tree, equal to raw_* unless a manager adjusted it (修订销售预测).
-- Coverage and gap are stored, not generated, so the rule that computes them
-- (what counts as open pipeline) lives in one place in the code.

CREATE TABLE forecast (
    node_id                     text NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    period_kind                 text NOT NULL CHECK (period_kind IN ('month', 'quarter')),
    period_start                date NOT NULL,
    raw_closed_minor            bigint NOT NULL DEFAULT 0,
    raw_commit_minor            bigint NOT NULL DEFAULT 0 CHECK (raw_commit_minor >= 0),
    raw_best_case_minor         bigint NOT NULL DEFAULT 0 CHECK (raw_best_case_minor >= 0),
    raw_pipeline_minor          bigint NOT NULL DEFAULT 0 CHECK (raw_pipeline_minor >= 0),
    raw_weighted_pipeline_minor bigint NOT NULL DEFAULT 0 CHECK (raw_weighted_pipeline_minor >= 0),
    adj_closed_minor            bigint NOT NULL DEFAULT 0,
    adj_commit_minor            bigint NOT NULL DEFAULT 0 CHECK (adj_commit_minor >= 0),
    adj_best_case_minor         bigint NOT NULL DEFAULT 0 CHECK (adj_best_case_minor >= 0),
    adj_pipeline_minor          bigint NOT NULL DEFAULT 0 CHECK (adj_pipeline_minor >= 0),
    adj_weighted_pipeline_minor bigint NOT NULL DEFAULT 0 CHECK (adj_weighted_pipeline_minor >= 0),
    -- NULL when no quota is loaded for the node and period.
    quota_minor                 bigint CHECK (quota_minor >= 0),
    -- open pipeline / (quota - closed), in basis points; NULL when the
    -- denominator is not positive. bigint: a tiny remainder makes it huge.
    raw_coverage_bp             bigint,
    adj_coverage_bp             bigint,
    -- quota - (closed + commit); negative means ahead of quota.
    raw_gap_minor               bigint,
    adj_gap_minor               bigint,
    submitted_at                timestamptz,
    submitted_by                text,
    -- Debounced publishing: every change bumps revision; the publisher emits
    -- rows with revision > emitted_revision once changed_at is old enough.
    revision                    bigint NOT NULL DEFAULT 0,
    emitted_revision            bigint NOT NULL DEFAULT 0,
    changed_at                  timestamptz NOT NULL DEFAULT now(),
    emitted_at                  timestamptz,
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, period_kind, period_start),
    CONSTRAINT forecast_period_start CHECK (period_start = date_trunc(period_kind, period_start::timestamp)::date),
    CONSTRAINT forecast_emitted_not_ahead CHECK (emitted_revision <= revision)
);

CREATE INDEX forecast_unemitted ON forecast (changed_at) WHERE revision > emitted_revision;

-- Every manager adjustment, with its reason. adjusted_minor NULL withdraws the
-- adjustment (back to raw). The latest row per (node, period, category) is
-- the one in force.
CREATE TABLE forecast_adjustment (
    id             bigserial PRIMARY KEY,
    node_id        text NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    period_kind    text NOT NULL CHECK (period_kind IN ('month', 'quarter')),
    period_start   date NOT NULL,
    category       text NOT NULL
        CHECK (category IN ('closed', 'commit', 'best_case', 'pipeline', 'weighted_pipeline')),
    raw_minor      bigint NOT NULL,
    adjusted_minor bigint CHECK (adjusted_minor >= 0),
    reason         text NOT NULL CHECK (length(btrim(reason)) > 0),
    adjusted_by    text NOT NULL CHECK (length(adjusted_by) BETWEEN 1 AND 64),
    adjusted_at    timestamptz NOT NULL,
    -- Set when the adjustment arrived as an event; dedupes replays.
    event_id       text UNIQUE,
    CONSTRAINT forecast_adjustment_period_start CHECK (period_start = date_trunc(period_kind, period_start::timestamp)::date)
);

CREATE INDEX forecast_adjustment_current
    ON forecast_adjustment (node_id, period_kind, period_start, category, adjusted_at DESC, id DESC);

-- A copy of the figures each time a node's forecast is submitted upward.
CREATE TABLE forecast_submission (
    id                          bigserial PRIMARY KEY,
    node_id                     text NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    period_kind                 text NOT NULL CHECK (period_kind IN ('month', 'quarter')),
    period_start                date NOT NULL,
    revision                    bigint NOT NULL,
    -- NULL for an automatic roll-up.
    submitted_by                text,
    submitted_at                timestamptz NOT NULL,
    raw_closed_minor            bigint NOT NULL,
    raw_commit_minor            bigint NOT NULL,
    raw_best_case_minor         bigint NOT NULL,
    raw_pipeline_minor          bigint NOT NULL,
    raw_weighted_pipeline_minor bigint NOT NULL,
    adj_closed_minor            bigint NOT NULL,
    adj_commit_minor            bigint NOT NULL,
    adj_best_case_minor         bigint NOT NULL,
    adj_pipeline_minor          bigint NOT NULL,
    adj_weighted_pipeline_minor bigint NOT NULL,
    quota_minor                 bigint,
    UNIQUE (node_id, period_kind, period_start, revision)
);

CREATE INDEX forecast_submission_time ON forecast_submission (node_id, period_kind, period_start, submitted_at);

-- Daily copy of forecast; the accuracy computation reads it at fixed lead
-- times before period end.
CREATE TABLE forecast_snapshot (
    node_id                     text NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    period_kind                 text NOT NULL CHECK (period_kind IN ('month', 'quarter')),
    period_start                date NOT NULL,
    snapshot_date               date NOT NULL,
    raw_closed_minor            bigint NOT NULL,
    raw_commit_minor            bigint NOT NULL,
    raw_best_case_minor         bigint NOT NULL,
    raw_pipeline_minor          bigint NOT NULL,
    raw_weighted_pipeline_minor bigint NOT NULL,
    adj_closed_minor            bigint NOT NULL,
    adj_commit_minor            bigint NOT NULL,
    adj_best_case_minor         bigint NOT NULL,
    adj_pipeline_minor          bigint NOT NULL,
    adj_weighted_pipeline_minor bigint NOT NULL,
    quota_minor                 bigint,
    taken_at                    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, period_kind, period_start, snapshot_date)
);

CREATE INDEX forecast_snapshot_date ON forecast_snapshot (snapshot_date);

-- actual / forecast at 30, 60 and 90 days before period end. forecast_minor
-- is the adjusted closed + commit of the snapshot taken lead_days before the
-- period end (snapshot_date says which one was used).
CREATE TABLE forecast_accuracy (
    node_id        text NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    period_kind    text NOT NULL CHECK (period_kind IN ('month', 'quarter')),
    period_start   date NOT NULL,
    lead_days      integer NOT NULL CHECK (lead_days IN (30, 60, 90)),
    snapshot_date  date NOT NULL,
    forecast_minor bigint NOT NULL,
    actual_minor   bigint NOT NULL,
    -- NULL when the forecast was zero.
    accuracy_bp    bigint,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, period_kind, period_start, lead_days)
);

-- 提供给生产计划: demand per SKU, month and division, published like the
-- forecast (revision / emitted_revision). Quantities are in the product's unit.
-- division_node_id is the owner's division from the org tree.
CREATE TABLE planning_feed (
    sku                text NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    period_month       date NOT NULL CHECK (period_month = date_trunc('month', period_month::timestamp)::date),
    division_node_id   text NOT NULL CHECK (length(division_node_id) BETWEEN 1 AND 64),
    -- Σ qty × probability of confirmed open opportunities.
    weighted_quantity  numeric(24, 4) NOT NULL DEFAULT 0 CHECK (weighted_quantity >= 0),
    -- commit + won not yet delivered.
    committed_quantity numeric(24, 4) NOT NULL DEFAULT 0 CHECK (committed_quantity >= 0),
    revision           bigint NOT NULL DEFAULT 0,
    emitted_revision   bigint NOT NULL DEFAULT 0,
    changed_at         timestamptz NOT NULL DEFAULT now(),
    emitted_at         timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sku, period_month, division_node_id),
    CONSTRAINT planning_feed_emitted_not_ahead CHECK (emitted_revision <= revision)
);

CREATE INDEX planning_feed_unemitted ON planning_feed (changed_at) WHERE revision > emitted_revision;
CREATE INDEX planning_feed_division_month ON planning_feed (division_node_id, period_month);

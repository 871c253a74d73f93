-- What the forecast worker (DOMAIN.md section 5) keeps beyond the forecast
-- tables of 0006.

-- Work queue: what changed since the forecast worker last looked. The
-- opportunity worker marks the opportunities a batch touched, the order worker
-- the (rep, month) whose closed revenue moved, the forecast worker the node a
-- manager adjusted; each in the transaction of the change, so nothing is
-- missed and a rolled-back change marks nothing. The forecast worker takes
-- rows and recomputes in one transaction of its own.
CREATE TABLE forecast_dirty (
    id             bigserial PRIMARY KEY,
    opportunity_id text,
    node_id        text,
    period_kind    text CHECK (period_kind IN ('month', 'quarter')),
    period_start   date,
    marked_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT forecast_dirty_one_subject CHECK (
        (opportunity_id IS NOT NULL AND node_id IS NULL AND period_kind IS NULL AND period_start IS NULL)
        OR (opportunity_id IS NULL AND node_id IS NOT NULL AND period_kind IS NOT NULL AND period_start IS NOT NULL))
);

-- The forecast worker's view of each opportunity it has seen: the owner its
-- lines count for, and how often the expected close date moved later within
-- a quarter (slipping deals).
CREATE TABLE forecast_opportunity (
    opportunity_id      text PRIMARY KEY CHECK (length(opportunity_id) BETWEEN 1 AND 64),
    owner_rep_id        text NOT NULL,
    status              text NOT NULL CHECK (status IN ('open', 'won', 'lost')),
    expected_close_date date,
    pushes              integer NOT NULL DEFAULT 0 CHECK (pushes >= 0),
    pushes_quarter      date,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- What each confirmed open opportunity contributes to its owner's forecast:
-- at most one month and one quarter (the latest confirmation of each kind),
-- so a deal confirmed again for a later period is never counted twice.
CREATE TABLE forecast_line (
    opportunity_id text NOT NULL,
    period_kind    text NOT NULL CHECK (period_kind IN ('month', 'quarter')),
    period_start   date NOT NULL,
    owner_rep_id   text NOT NULL,
    category       text NOT NULL CHECK (category IN ('commit', 'best_case', 'pipeline')),
    amount_minor   bigint NOT NULL CHECK (amount_minor >= 0),
    weighted_minor bigint NOT NULL CHECK (weighted_minor >= 0),
    PRIMARY KEY (opportunity_id, period_kind, period_start)
);

CREATE INDEX forecast_line_owner ON forecast_line (owner_rep_id, period_kind, period_start);

-- What each opportunity contributes to the planning feed.
CREATE TABLE planning_line (
    opportunity_id     text NOT NULL,
    sku                text NOT NULL,
    period_month       date NOT NULL,
    division_node_id   text NOT NULL,
    weighted_quantity  numeric(24, 4) NOT NULL,
    committed_quantity numeric(24, 4) NOT NULL,
    PRIMARY KEY (opportunity_id, sku, period_month, division_node_id)
);

CREATE INDEX planning_line_key ON planning_line (sku, period_month, division_node_id);

-- Daily copy of every open opportunity (and those closed that day), for the
-- flow view between two days: new, pulled in, pushed out, increased,
-- decreased, won, lost.
CREATE TABLE opportunity_snapshot (
    snapshot_date       date NOT NULL,
    opportunity_id      text NOT NULL,
    owner_rep_id        text NOT NULL,
    status              text NOT NULL CHECK (status IN ('open', 'won', 'lost')),
    stage_code          text NOT NULL,
    amount_minor        bigint NOT NULL,
    expected_close_date date,
    PRIMARY KEY (snapshot_date, opportunity_id)
);

CREATE INDEX opportunity_snapshot_owner ON opportunity_snapshot (owner_rep_id, snapshot_date);

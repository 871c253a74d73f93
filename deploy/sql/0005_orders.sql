-- Orders (订单), actuals and distributor sales quality (DOMAIN.md section 6).
--
-- Foreign keys left out on purpose: rep_id, distributor_id and sku (reference
-- data may be loaded after the order arrives) and opportunity_id (the order
-- topic and the opportunity topic are consumed independently, so an order may
-- name an opportunity that is not created yet). account_id does reference
-- account: the order's own transaction resolves or creates it.
--
-- "order" is reserved, hence sales_order.

CREATE TABLE sales_order (
    id                 text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    account_id         text NOT NULL REFERENCES account (id),
    rep_id             text NOT NULL CHECK (length(rep_id) BETWEEN 1 AND 64),
    opportunity_id     text,
    channel            text NOT NULL CHECK (channel IN ('direct', 'distributor')),
    distributor_id     text,
    ship_to_region     text,
    status             text NOT NULL CHECK (status IN ('booked', 'cancelled', 'returned')),
    booked_at          timestamptz NOT NULL,
    cancelled_at       timestamptz,
    returned_at        timestamptz,
    total_amount_minor bigint NOT NULL DEFAULT 0 CHECK (total_amount_minor >= 0),
    booked_event_id    text NOT NULL UNIQUE,
    -- Ordering guard, as for opportunities.
    last_event_at      timestamptz NOT NULL,
    last_event_id      text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sales_order_distributor_iff_channel CHECK ((channel = 'distributor') = (distributor_id IS NOT NULL)),
    CONSTRAINT sales_order_cancelled_at CHECK (status <> 'cancelled' OR cancelled_at IS NOT NULL),
    CONSTRAINT sales_order_returned_at CHECK (status <> 'returned' OR returned_at IS NOT NULL)
);

CREATE INDEX sales_order_account_time ON sales_order (account_id, booked_at);
CREATE INDEX sales_order_rep_time ON sales_order (rep_id, booked_at);
CREATE INDEX sales_order_opportunity ON sales_order (opportunity_id) WHERE opportunity_id IS NOT NULL;
CREATE INDEX sales_order_distributor_time ON sales_order (distributor_id, booked_at)
    WHERE distributor_id IS NOT NULL;

CREATE TABLE sales_order_line (
    order_id         text NOT NULL REFERENCES sales_order (id) ON DELETE CASCADE,
    line_no          integer NOT NULL CHECK (line_no > 0),
    sku              text NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    quantity         numeric(20, 4) NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    amount_minor     bigint GENERATED ALWAYS AS (round(quantity * unit_price_minor)::bigint) STORED,
    PRIMARY KEY (order_id, line_no)
);

CREATE INDEX sales_order_line_sku ON sales_order_line (sku);

-- Every order event, applied or not, like opportunity_event.
CREATE TABLE sales_order_event (
    order_id           text NOT NULL CHECK (length(order_id) BETWEEN 1 AND 64),
    event_id           text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 64),
    kind               text NOT NULL CHECK (kind IN ('booked', 'cancelled', 'returned')),
    occurred_at        timestamptz NOT NULL,
    applied            boolean NOT NULL,
    not_applied_reason text,
    source_topic       text,
    source_partition   integer,
    source_offset      bigint,
    payload            bytea,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, event_id),
    CONSTRAINT sales_order_event_reason_if_not_applied CHECK (applied OR not_applied_reason IS NOT NULL)
);

-- Booked revenue per account, product, crediting node (the order's rep) and
-- month; quarters and subtrees are sums (join org_closure on node_id).
-- Cancellations and returns post negative deltas into the month they happen
-- in, so a row may go negative.
CREATE TABLE actual (
    account_id   text NOT NULL REFERENCES account (id),
    sku          text NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    node_id      text NOT NULL CHECK (length(node_id) BETWEEN 1 AND 64),
    period_month date NOT NULL CHECK (period_month = date_trunc('month', period_month::timestamp)::date),
    amount_minor bigint NOT NULL DEFAULT 0,
    quantity     numeric(24, 4) NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, sku, node_id, period_month)
);

CREATE INDEX actual_node_month ON actual (node_id, period_month);
-- Trailing 12-month (tiers) and 90-day (churn) revenue per account.
CREATE INDEX actual_account_month ON actual (account_id, period_month);
CREATE INDEX actual_sku_month ON actual (sku, period_month);

-- 销售质量 counters per distributor and month.
CREATE TABLE distributor_sales_quality (
    distributor_id         text NOT NULL CHECK (length(distributor_id) BETWEEN 1 AND 64),
    period_month           date NOT NULL CHECK (period_month = date_trunc('month', period_month::timestamp)::date),
    order_count            bigint NOT NULL DEFAULT 0 CHECK (order_count >= 0),
    order_amount_minor     bigint NOT NULL DEFAULT 0,
    diversion_count        bigint NOT NULL DEFAULT 0 CHECK (diversion_count >= 0),
    diversion_amount_minor bigint NOT NULL DEFAULT 0,
    dumping_count          bigint NOT NULL DEFAULT 0 CHECK (dumping_count >= 0),
    dumping_amount_minor   bigint NOT NULL DEFAULT 0,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (distributor_id, period_month)
);

-- The individual findings behind the counters: 窜货 (shipped outside the
-- territory, a whole-order finding, line_no 0) and 压价 (a line under floor).
CREATE TABLE distributor_violation (
    order_id          text NOT NULL REFERENCES sales_order (id),
    kind              text NOT NULL CHECK (kind IN ('diversion', 'dumping')),
    line_no           integer NOT NULL DEFAULT 0 CHECK (line_no >= 0),
    distributor_id    text NOT NULL,
    sku               text,
    ship_to_region    text,
    unit_price_minor  bigint,
    floor_price_minor bigint,
    detected_at       timestamptz NOT NULL,
    PRIMARY KEY (order_id, kind, line_no),
    CONSTRAINT distributor_violation_diversion_is_order_level CHECK ((kind = 'diversion') = (line_no = 0))
);

CREATE INDEX distributor_violation_distributor ON distributor_violation (distributor_id, detected_at);

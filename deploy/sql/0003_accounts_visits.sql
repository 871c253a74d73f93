-- Accounts (DOMAIN.md section 2) and visits (section 3).
--
-- These tables are fed by events. Rep ids and opportunity ids are stored
-- without foreign keys: a visit may name a rep the admin CLI has not loaded
-- yet, or an opportunity whose created event sits on another topic and has
-- not been consumed yet. Rows created in the same transaction (account,
-- contact, visit) do reference each other.

-- MAN class notation of seed 004: upper case = yes, lower case = no, in the
-- order Money, Authority, Need ('MAN' ideal prospect ... 'man' not a prospect).

CREATE TABLE account (
    id                  text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    -- 'uscc:<code>' or 'name:<normalized name>' (ka_account_key).
    canonical_key       text NOT NULL UNIQUE CHECK (length(canonical_key) BETWEEN 1 AND 512),
    credit_code         text CHECK (length(credit_code) = 18),
    display_name        text NOT NULL,
    -- The rep the first naming event assigned it to (分配客户).
    owner_rep_id        text NOT NULL CHECK (length(owner_rep_id) BETWEEN 1 AND 64),
    tier                text NOT NULL DEFAULT 'D' CHECK (tier IN ('A', 'B', 'C', 'D')),
    tier_changed_at     timestamptz,
    man_class           text CHECK (man_class IN ('MAN', 'MAn', 'MaN', 'mAN', 'Man', 'mAn', 'maN', 'man')),
    man_class_at        timestamptz,
    -- Any event naming the account; drives "no activity" rules.
    last_activity_at    timestamptz,
    -- Denormalised from visits so stalled / churn / decision-maker-gap scans
    -- need not aggregate visit history.
    last_visit_at       timestamptz,
    last_decision_maker_visit_at timestamptz,
    created_event_id    text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX account_credit_code ON account (credit_code) WHERE credit_code IS NOT NULL;
CREATE INDEX account_owner ON account (owner_rep_id);
-- Churn checks look at tier A/B only.
CREATE INDEX account_tier ON account (tier);
CREATE INDEX account_last_visit ON account (last_visit_at);

CREATE TABLE account_tier_history (
    id                bigserial PRIMARY KEY,
    account_id        text NOT NULL REFERENCES account (id),
    previous_tier     text CHECK (previous_tier IN ('A', 'B', 'C', 'D')),
    tier              text NOT NULL CHECK (tier IN ('A', 'B', 'C', 'D')),
    -- Trailing-12-month booked revenue the ranking used.
    revenue_12m_minor bigint,
    changed_at        timestamptz NOT NULL
);

CREATE INDEX account_tier_history_account ON account_tier_history (account_id, changed_at);

CREATE TABLE account_man_history (
    id                 bigserial PRIMARY KEY,
    account_id         text NOT NULL REFERENCES account (id),
    previous_man_class text CHECK (previous_man_class IN ('MAN', 'MAn', 'MaN', 'mAN', 'Man', 'mAn', 'maN', 'man')),
    man_class          text NOT NULL CHECK (man_class IN ('MAN', 'MAn', 'MaN', 'mAN', 'Man', 'mAn', 'maN', 'man')),
    visit_id           text NOT NULL,
    changed_at         timestamptz NOT NULL,
    -- A replayed visit cannot add a second row.
    UNIQUE (account_id, visit_id)
);

CREATE TABLE contact (
    id            text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    account_id    text NOT NULL REFERENCES account (id),
    name          text NOT NULL,
    title         text,
    -- Latest role/function seen on a visit; per-visit values live in visit_contact.
    buying_role   text CHECK (buying_role IN ('decision_maker', 'influencer', 'manager_in_charge', 'bystander', 'coach')),
    buying_function text CHECK (buying_function IN ('economic', 'technical', 'user', 'financial', 'coach')),
    last_visit_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX contact_account ON contact (account_id);

CREATE TABLE visit (
    id                      text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    event_id                text NOT NULL UNIQUE CHECK (length(event_id) BETWEEN 1 AND 64),
    account_id              text NOT NULL REFERENCES account (id),
    rep_id                  text NOT NULL CHECK (length(rep_id) BETWEEN 1 AND 64),
    visited_at              timestamptz NOT NULL,
    objective               text NOT NULL
        CHECK (objective IN ('sell', 'maintain', 'relationship', 'intelligence', 'consult')),
    opportunity_id          text,
    satisfaction            text CHECK (satisfaction IN
        ('very_satisfied', 'satisfied', 'neutral', 'dissatisfied', 'very_dissatisfied')),
    -- NULL: not assessed on this visit.
    man_money               boolean,
    man_authority           boolean,
    man_need                boolean,
    -- Only a complete reading has a class.
    man_class               text GENERATED ALWAYS AS (
        CASE WHEN man_money IS NOT NULL AND man_authority IS NOT NULL AND man_need IS NOT NULL
             THEN (CASE WHEN man_money THEN 'M' ELSE 'm' END)
               || (CASE WHEN man_authority THEN 'A' ELSE 'a' END)
               || (CASE WHEN man_need THEN 'N' ELSE 'n' END)
        END) STORED,
    follow_up_action        text CHECK (follow_up_action IN ('continue', 'pause', 'give_up')),
    follow_up_interval_days integer CHECK (follow_up_interval_days IN (20, 40, 60, 80)),
    follow_up_date          date,
    -- visited_at + interval, or the explicit date; computed by the worker.
    next_due_at             timestamptz,
    notes                   text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT visit_give_up_has_no_due CHECK (follow_up_action IS DISTINCT FROM 'give_up' OR next_due_at IS NULL)
);

CREATE INDEX visit_account_time ON visit (account_id, visited_at DESC);
CREATE INDEX visit_rep_time ON visit (rep_id, visited_at DESC);
CREATE INDEX visit_opportunity ON visit (opportunity_id) WHERE opportunity_id IS NOT NULL;

CREATE TABLE visit_contact (
    visit_id    text NOT NULL REFERENCES visit (id) ON DELETE CASCADE,
    contact_id  text NOT NULL REFERENCES contact (id),
    buying_role text CHECK (buying_role IN ('decision_maker', 'influencer', 'manager_in_charge', 'bystander', 'coach')),
    buying_function text CHECK (buying_function IN ('economic', 'technical', 'user', 'financial', 'coach')),
    PRIMARY KEY (visit_id, contact_id)
);

CREATE INDEX visit_contact_contact ON visit_contact (contact_id);

-- The follow-up plan in force per account: the latest visit's continue/pause
-- plan. A give-up plan, or an account classed 'man', has no row (no overdue
-- alerts for it).
CREATE TABLE follow_up (
    account_id    text PRIMARY KEY REFERENCES account (id),
    visit_id      text NOT NULL REFERENCES visit (id),
    rep_id        text NOT NULL CHECK (length(rep_id) BETWEEN 1 AND 64),
    action        text NOT NULL CHECK (action IN ('continue', 'pause')),
    interval_days integer CHECK (interval_days IN (20, 40, 60, 80)),
    next_due_at   timestamptz NOT NULL,
    set_at        timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The overdue scan: WHERE next_due_at < now().
CREATE INDEX follow_up_due ON follow_up (next_due_at);

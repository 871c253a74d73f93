-- Reference data (DOMAIN.md section 1): loaded by the admin CLI, never by
-- events. Tables here may reference each other; event-fed tables in later
-- migrations deliberately do not reference these (an event may arrive before
-- the reference row it names).
--
-- Conventions used by every migration: ids are text of 1..64 bytes, money is
-- bigint minor units (*_minor), probabilities and ratios are basis points
-- (*_bp, 10000 = 100%), enums are text with CHECK so a value can be added by a
-- later migration without ALTER TYPE, periods are (period_kind, period_start)
-- with period_start the first day of the month or quarter.

-- People who manage org nodes (and reps who log in). Named app_user because
-- "user" is reserved.
CREATE TABLE app_user (
    id           text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    display_name text NOT NULL,
    email        text,
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------
-- Funnel definitions (销售漏斗): stages are data, not code.

CREATE TABLE funnel_definition (
    id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    name        text NOT NULL,
    description text,
    -- Used for opportunities whose business unit has no mapping (yet).
    is_default  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX funnel_definition_one_default ON funnel_definition ((true)) WHERE is_default;

CREATE TABLE funnel_stage (
    definition_id      text NOT NULL REFERENCES funnel_definition (id) ON DELETE CASCADE,
    code               text NOT NULL CHECK (code ~ '^[0-9A-Za-z_]{1,16}$'),
    ordinal            smallint NOT NULL CHECK (ordinal > 0),
    name               text NOT NULL,
    win_probability_bp integer NOT NULL CHECK (win_probability_bp BETWEEN 0 AND 10000),
    -- 'omitted' is for the lost terminal: it counts in no forecast category.
    default_category   text NOT NULL
        CHECK (default_category IN ('pipeline', 'best_case', 'commit', 'closed', 'omitted')),
    -- NULL: no dwell limit (terminal stages).
    max_dwell_days     integer CHECK (max_dwell_days > 0),
    is_won             boolean NOT NULL DEFAULT false,
    is_lost            boolean NOT NULL DEFAULT false,
    -- Derived so it can never disagree with the two flags.
    is_closed          boolean GENERATED ALWAYS AS (is_won OR is_lost) STORED,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (definition_id, code),
    UNIQUE (definition_id, ordinal),
    CONSTRAINT funnel_stage_won_xor_lost CHECK (NOT (is_won AND is_lost)),
    CONSTRAINT funnel_stage_won_is_certain CHECK (NOT is_won OR (win_probability_bp = 10000 AND default_category = 'closed')),
    CONSTRAINT funnel_stage_lost_is_zero CHECK (NOT is_lost OR (win_probability_bp = 0 AND default_category = 'omitted')),
    CONSTRAINT funnel_stage_terminal_no_dwell CHECK (NOT (is_won OR is_lost) OR max_dwell_days IS NULL)
);

-- Exactly one won and at most one lost terminal per definition, so "close as
-- won" / "close as lost" resolve to a single stage.
CREATE UNIQUE INDEX funnel_stage_one_won ON funnel_stage (definition_id) WHERE is_won;
CREATE UNIQUE INDEX funnel_stage_one_lost ON funnel_stage (definition_id) WHERE is_lost;

-- Business unit -> funnel definition. Opportunities copy the definition id
-- when created, so remapping a unit does not move existing opportunities.
CREATE TABLE business_unit (
    id            text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    name          text NOT NULL,
    definition_id text NOT NULL REFERENCES funnel_definition (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------
-- Org tree: company -> division -> region -> team -> rep.

CREATE TABLE org_node (
    id               text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    parent_id        text REFERENCES org_node (id),
    kind             text NOT NULL CHECK (kind IN ('company', 'division', 'region', 'team', 'rep')),
    name             text NOT NULL,
    manager_user_id  text REFERENCES app_user (id),
    -- The rep's own login, when reps are users too (rep nodes only).
    rep_user_id      text REFERENCES app_user (id),
    business_unit_id text REFERENCES business_unit (id),
    -- Nodes are deactivated rather than deleted: history keeps naming them.
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT org_node_root_is_company CHECK ((kind = 'company') = (parent_id IS NULL)),
    CONSTRAINT org_node_not_own_parent CHECK (parent_id IS NULL OR parent_id <> id),
    CONSTRAINT org_node_rep_has_no_manager CHECK (kind <> 'rep' OR manager_user_id IS NULL),
    CONSTRAINT org_node_rep_user_on_reps CHECK (kind = 'rep' OR rep_user_id IS NULL),
    CONSTRAINT org_node_business_unit_on_divisions CHECK (kind = 'division' OR business_unit_id IS NULL)
);

-- One company: every roll-up ends at a single root.
CREATE UNIQUE INDEX org_node_single_root ON org_node ((true)) WHERE parent_id IS NULL;
CREATE INDEX org_node_parent ON org_node (parent_id);
CREATE INDEX org_node_manager ON org_node (manager_user_id) WHERE manager_user_id IS NOT NULL;
CREATE UNIQUE INDEX org_node_rep_user ON org_node (rep_user_id) WHERE rep_user_id IS NOT NULL;

-- Every (ancestor, descendant) pair including (n, n, 0). Roll-ups walk
-- ancestors of a rep (WHERE descendant_id = $rep) and subtree reads walk
-- descendants (WHERE ancestor_id = $node); both are one index probe, with no
-- recursion and no extension. Maintained by the triggers below.
CREATE TABLE org_closure (
    ancestor_id   text NOT NULL REFERENCES org_node (id) ON DELETE CASCADE,
    descendant_id text NOT NULL REFERENCES org_node (id) ON DELETE CASCADE,
    depth         integer NOT NULL CHECK (depth >= 0),
    PRIMARY KEY (ancestor_id, descendant_id),
    CONSTRAINT org_closure_depth_zero_is_self CHECK ((depth = 0) = (ancestor_id = descendant_id))
);

CREATE INDEX org_closure_descendant ON org_closure (descendant_id, depth);

CREATE FUNCTION ka_org_kind_level(p_kind text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE p_kind
        WHEN 'company' THEN 1 WHEN 'division' THEN 2 WHEN 'region' THEN 3
        WHEN 'team' THEN 4 WHEN 'rep' THEN 5 END
$$;

-- Keeps the tree a tree: no id changes (closure rows would dangle), a parent
-- sits at a higher level than its child (levels may be skipped, never
-- inverted). Cycles are caught in the closure trigger, which runs after the
-- whole statement's moves are visible.
CREATE FUNCTION ka_org_node_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_parent_kind text;
BEGIN
    -- Serialises tree writers so a move and an insert below it cannot each
    -- read the other's stale ancestors. Key 4242101 sits beside the outbox
    -- relay's 4242001 and the migration runner's 4242002.
    PERFORM pg_advisory_xact_lock(4242101);

    IF TG_OP = 'UPDATE' AND NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'org node id cannot change (% -> %)', OLD.id, NEW.id
            USING ERRCODE = 'check_violation';
    END IF;

    IF NEW.parent_id IS NOT NULL THEN
        SELECT kind INTO v_parent_kind FROM org_node WHERE id = NEW.parent_id;
        -- A missing parent is left to the foreign key to report.
        IF FOUND AND ka_org_kind_level(v_parent_kind) >= ka_org_kind_level(NEW.kind) THEN
            RAISE EXCEPTION 'org node % (%) cannot sit under % (%)',
                NEW.id, NEW.kind, NEW.parent_id, v_parent_kind
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;

    IF TG_OP = 'UPDATE' THEN
        IF NEW.kind <> OLD.kind AND EXISTS (
                SELECT 1 FROM org_node c
                WHERE c.parent_id = NEW.id
                  AND ka_org_kind_level(c.kind) <= ka_org_kind_level(NEW.kind)) THEN
            RAISE EXCEPTION 'org node % cannot become % while it has children at that level or above',
                NEW.id, NEW.kind
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER org_node_check BEFORE INSERT OR UPDATE ON org_node
    FOR EACH ROW EXECUTE FUNCTION ka_org_node_check();

-- Incremental closure maintenance: O(depth) per inserted node, O(subtree x
-- depth) per move. Parents must be inserted before children (the foreign key
-- is not deferrable for that reason).
CREATE FUNCTION ka_org_closure_maintain() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO org_closure (ancestor_id, descendant_id, depth)
        SELECT NEW.id, NEW.id, 0
        UNION ALL
        SELECT c.ancestor_id, NEW.id, c.depth + 1
        FROM org_closure c WHERE c.descendant_id = NEW.parent_id;
    ELSIF NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN
        IF EXISTS (SELECT 1 FROM org_closure
                   WHERE ancestor_id = NEW.id AND descendant_id = NEW.parent_id) THEN
            RAISE EXCEPTION 'moving org node % under % would make a cycle', NEW.id, NEW.parent_id
                USING ERRCODE = 'check_violation';
        END IF;
        -- Cut the subtree loose from its old strict ancestors ...
        DELETE FROM org_closure c
        USING org_closure anc, org_closure sub
        WHERE anc.descendant_id = NEW.id AND anc.depth > 0
          AND sub.ancestor_id = NEW.id
          AND c.ancestor_id = anc.ancestor_id
          AND c.descendant_id = sub.descendant_id;
        -- ... and hang it under the new parent's ancestors.
        INSERT INTO org_closure (ancestor_id, descendant_id, depth)
        SELECT anc.ancestor_id, sub.descendant_id, anc.depth + sub.depth + 1
        FROM org_closure anc, org_closure sub
        WHERE anc.descendant_id = NEW.parent_id AND sub.ancestor_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER org_closure_maintain AFTER INSERT OR UPDATE OF parent_id ON org_node
    FOR EACH ROW EXECUTE FUNCTION ka_org_closure_maintain();

-- Rebuilds the closure from parent links: a repair tool for the admin CLI
-- (e.g. after a bulk load with triggers disabled). Returns the row count.
CREATE FUNCTION ka_org_closure_rebuild() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_rows bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(4242101);
    DELETE FROM org_closure;
    WITH RECURSIVE walk (ancestor_id, descendant_id, depth) AS (
        SELECT id, id, 0 FROM org_node
        UNION ALL
        SELECT w.ancestor_id, n.id, w.depth + 1
        FROM walk w JOIN org_node n ON n.parent_id = w.descendant_id
    )
    INSERT INTO org_closure (ancestor_id, descendant_id, depth)
    SELECT ancestor_id, descendant_id, depth FROM walk;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$$;

-- ---------------------------------------------------------------------------
-- Baselines (历史经验数据) and quotas (销售指标).

-- value is a count or an amount in minor units, per metric. Explicit rows
-- win over derived ones for the same day; overlapping validity is not
-- prevented here (that needs btree_gist), so the loader keeps ranges disjoint.
CREATE TABLE funnel_baseline (
    node_id       text NOT NULL REFERENCES org_node (id),
    definition_id text NOT NULL,
    stage_code    text NOT NULL,
    metric        text NOT NULL CHECK (metric IN ('count', 'amount')),
    value         bigint NOT NULL CHECK (value >= 0),
    source        text NOT NULL CHECK (source IN ('explicit', 'derived')),
    valid_from    date NOT NULL,
    valid_to      date NOT NULL,  -- exclusive
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, definition_id, stage_code, metric, source, valid_from),
    FOREIGN KEY (definition_id, stage_code)
        REFERENCES funnel_stage (definition_id, code) ON DELETE CASCADE,
    CONSTRAINT funnel_baseline_valid_range CHECK (valid_to > valid_from)
);

CREATE TABLE quota (
    node_id      text NOT NULL REFERENCES org_node (id),
    period_kind  text NOT NULL CHECK (period_kind IN ('month', 'quarter')),
    period_start date NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node_id, period_kind, period_start),
    CONSTRAINT quota_period_start CHECK (period_start = date_trunc(period_kind, period_start::timestamp)::date)
);

-- ---------------------------------------------------------------------------
-- Products and distributors.

CREATE TABLE product (
    sku        text PRIMARY KEY CHECK (length(sku) BETWEEN 1 AND 64),
    name       text NOT NULL,
    unit       text NOT NULL CHECK (length(unit) BETWEEN 1 AND 32),
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE distributor (
    id         text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    name       text NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Region codes are the ship-to region codes carried by orders (geography),
-- not org_node ids: sales regions and delivery territories need not match.
CREATE TABLE distributor_territory (
    distributor_id text NOT NULL REFERENCES distributor (id) ON DELETE CASCADE,
    region_code    text NOT NULL CHECK (length(region_code) BETWEEN 1 AND 64),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (distributor_id, region_code)
);

-- Selling under the floor is price dumping (压价).
CREATE TABLE distributor_floor_price (
    distributor_id    text NOT NULL REFERENCES distributor (id) ON DELETE CASCADE,
    sku               text NOT NULL REFERENCES product (sku),
    floor_price_minor bigint NOT NULL CHECK (floor_price_minor >= 0),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (distributor_id, sku)
);

CREATE INDEX distributor_floor_price_sku ON distributor_floor_price (sku);

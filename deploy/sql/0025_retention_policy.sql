-- Retention of the growing logs (docs/retention.md): every table that grows
-- with the event rate is range-partitioned by a time that is the same for the
-- same fact (so a replayed row lands in the partition that already holds it
-- and its unique key still rejects it), and a partition is dropped whole once
-- its range is older than the table's retention. Dropping a partition frees
-- its files at once; deleting rows would leave bloat for vacuum.
--
-- ka_retention_apply(now) creates the partitions ahead of time and drops the
-- old ones (`kactl retention apply`, run daily by cron or a timer); every
-- partitioned table also has a DEFAULT partition, so an insert never fails
-- for want of a partition (a late or far-future row lands there, and apply
-- moves it into its own partition once that is created, and prunes it by row
-- when it is older than the retention).

CREATE TABLE retention_policy (
    table_name  text PRIMARY KEY,
    -- The partition key: a time that a replay of the same fact repeats.
    time_column text NOT NULL,
    -- The width of one partition.
    every       text NOT NULL CHECK (every IN ('day', 'month')),
    -- Partitions whose whole range is older than now - keep are dropped.
    keep        interval NOT NULL CHECK (keep >= interval '1 day'),
    -- How many partitions past the current one exist ahead of time.
    ahead       integer NOT NULL DEFAULT 2 CHECK (ahead BETWEEN 1 AND 400),
    why         text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Facts about the surroundings the policies depend on.
CREATE TABLE retention_setting (
    name       text PRIMARY KEY CHECK (name IN ('kafka_input_retention')),
    value      interval NOT NULL CHECK (value >= interval '1 hour'),
    why        text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO retention_setting (name, value, why) VALUES
 ('kafka_input_retention', '7 days',
  'retention.ms of the input topics (deploy/local/topics; Kafka''s default log.retention.hours=168): how long a record can be read, and so replayed, after it was written');

INSERT INTO retention_policy (table_name, time_column, every, keep, ahead, why) VALUES
 ('processed_event', 'occurred_at', 'month', '400 days', 2,
  'the dedupe window: must outlive kafka_input_retention; events older than keep - kafka_input_retention are dead-lettered (outside_dedupe_window)'),
 ('opportunity_event', 'occurred_at', 'month', '400 days', 2,
  'audit of every opportunity event, applied or not: a year and a month'),
 ('outbox', 'ce_time', 'day', '7 days', 3,
  'published rows only (a partition holding an unpublished row is never dropped)'),
 ('alert_history', 'occurred_at', 'month', '400 days', 2,
  'every alert transition sent: a year and a month'),
 ('dead_letter', 'source_time', 'month', '90 days', 2,
  'time to inspect and re-drive a dead letter'),
 ('funnel_snapshot', 'snapshot_date', 'month', '400 days', 2,
  'derived baselines read the same day of the last periods (months and quarters)'),
 ('forecast_snapshot', 'snapshot_date', 'month', '400 days', 2,
  'forecast accuracy reads the snapshot 30, 60 and 90 days before a period end'),
 ('opportunity_snapshot', 'snapshot_date', 'month', '400 days', 2,
  'the flow view between two days, a year back');

-- Every worker reads the dedupe window when it starts.
GRANT SELECT ON retention_policy, retention_setting TO ka_worker;

-- The oldest event time a worker may still take (ms before now): a dedupe row
-- of an event at time t lives until at least t + keep(processed_event), and a
-- record taken at processing time p can be replayed until p +
-- kafka_input_retention at the latest, so taking only t >= p - (keep - kafka)
-- keeps every possible replay inside the window. Raises when the policy
-- leaves no window at all.
CREATE FUNCTION ka_retention_max_event_age_ms() RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_keep  interval;
    v_kafka interval;
BEGIN
    SELECT keep INTO v_keep FROM retention_policy WHERE table_name = 'processed_event';
    SELECT value INTO v_kafka FROM retention_setting WHERE name = 'kafka_input_retention';
    IF v_keep IS NULL OR v_kafka IS NULL THEN
        RAISE EXCEPTION 'retention of processed_event or kafka_input_retention is not set'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_keep <= v_kafka THEN
        RAISE EXCEPTION 'the dedupe window (processed_event keeps %) must outlive the input topics'' retention (%)',
            v_keep, v_kafka
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'a replay of a record still in Kafka would no longer be recognised as a duplicate';
    END IF;
    RETURN (extract(epoch FROM v_keep - v_kafka) * 1000)::bigint;
END
$$;

-- The partitions of a table with their ranges (NULL for the DEFAULT one),
-- oldest first. Bounds are midnight UTC.
CREATE FUNCTION ka_partitions(p_table text)
RETURNS TABLE (part regclass, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE SET TimeZone = 'UTC' AS $$
    SELECT c.oid::regclass, m[1]::timestamptz, m[2]::timestamptz
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                     'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') AS m ON true
     WHERE i.inhparent = p_table::regclass
     ORDER BY 2 NULLS LAST
$$;

-- Start of the partition of width `every` holding p_at.
CREATE FUNCTION ka_partition_start(p_every text, p_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE SET TimeZone = 'UTC' AS $$
    SELECT date_trunc(p_every, p_at)
$$;

-- Creates the missing partitions of p_table that cover [p_from, p_to), moving
-- the DEFAULT partition's rows of each new range into it (a partition whose
-- range the DEFAULT one holds rows of cannot be attached otherwise). A range
-- an existing partition overlaps (the width was changed) is left alone.
-- Returns the partitions created.
CREATE FUNCTION ka_partition_ensure(p_table text, p_from timestamptz, p_to timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    r       retention_policy;
    v_lo    timestamptz;
    v_hi    timestamptz;
    v_name  text;
    v_def   regclass;
    v_step  interval;
BEGIN
    SELECT * INTO r FROM retention_policy WHERE table_name = p_table;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no retention policy for table %', p_table USING ERRCODE = 'undefined_object';
    END IF;
    v_step := ('1 ' || r.every)::interval;
    SELECT part INTO v_def FROM ka_partitions(p_table) WHERE lo IS NULL;
    v_lo := ka_partition_start(r.every, p_from);
    WHILE v_lo < p_to LOOP
        v_hi := v_lo + v_step;
        IF NOT EXISTS (SELECT 1 FROM ka_partitions(p_table) p
                        WHERE p.lo IS NOT NULL AND p.lo < v_hi AND p.hi > v_lo) THEN
            v_name := p_table || '_p' || to_char(v_lo, 'YYYYMMDD');
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                           v_name, p_table);
            IF v_def IS NOT NULL THEN
                EXECUTE format('WITH m AS (DELETE FROM %s WHERE %I >= $1 AND %I < $2 RETURNING *) '
                               'INSERT INTO %I SELECT * FROM m',
                               v_def, r.time_column, r.time_column, v_name)
                    USING v_lo, v_hi;
            END IF;
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           p_table, v_name, to_char(v_lo, 'YYYY-MM-DD'), to_char(v_hi, 'YYYY-MM-DD'));
            RETURN NEXT v_name;
        END IF;
        v_lo := v_hi;
    END LOOP;
END
$$;

-- One retention round at p_now: partitions created from now - keep to `ahead`
-- partitions past now, partitions wholly older than now - keep dropped, the
-- DEFAULT partition's rows older than that deleted, and the pre-partitioning
-- inbox emptied once all of it is older. The outbox keeps every unpublished
-- row: a partition holding one is reported and kept. One round at a time.
CREATE FUNCTION ka_retention_apply(p_now timestamptz)
RETURNS TABLE (table_name text, action text, partition_name text, detail text)
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    r        retention_policy;
    p        record;
    v_cut    timestamptz;
    v_n      bigint;
    v_pub    text;
BEGIN
    PERFORM ka_retention_max_event_age_ms(); -- refuses a policy without a dedupe window
    PERFORM pg_advisory_xact_lock(4242025);
    FOR r IN SELECT * FROM retention_policy ORDER BY retention_policy.table_name LOOP
        v_cut := p_now - r.keep;
        v_pub := CASE WHEN r.table_name = 'outbox' THEN ' AND published_at IS NOT NULL' ELSE '' END;
        FOR partition_name IN
            SELECT * FROM ka_partition_ensure(r.table_name, v_cut,
                                              ka_partition_start(r.every, p_now)
                                              + ((r.ahead + 1) || ' ' || r.every)::interval)
        LOOP
            table_name := r.table_name; action := 'created'; detail := NULL;
            RETURN NEXT;
        END LOOP;
        FOR p IN SELECT * FROM ka_partitions(r.table_name) WHERE hi <= v_cut LOOP
            IF r.table_name = 'outbox' THEN
                EXECUTE format('SELECT count(*) FROM %s WHERE published_at IS NULL', p.part) INTO v_n;
                IF v_n > 0 THEN
                    table_name := r.table_name; action := 'kept'; partition_name := p.part::text;
                    detail := v_n || ' unpublished rows';
                    RETURN NEXT;
                    CONTINUE;
                END IF;
            END IF;
            table_name := r.table_name; action := 'dropped'; partition_name := p.part::text;
            EXECUTE format('DROP TABLE %s', p.part);
            detail := 'range ' || to_char(p.lo, 'YYYY-MM-DD') || ' .. ' || to_char(p.hi, 'YYYY-MM-DD');
            RETURN NEXT;
        END LOOP;
        FOR p IN SELECT * FROM ka_partitions(r.table_name) WHERE lo IS NULL LOOP
            EXECUTE format('DELETE FROM %s WHERE %I < $1%s', p.part, r.time_column, v_pub) USING v_cut;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            IF v_n > 0 THEN
                table_name := r.table_name; action := 'pruned'; partition_name := p.part::text;
                detail := v_n || ' rows older than ' || to_char(v_cut, 'YYYY-MM-DD HH24:MI');
                RETURN NEXT;
            END IF;
        END LOOP;
        IF r.table_name = 'processed_event' AND to_regclass('processed_event_legacy') IS NOT NULL THEN
            IF EXISTS (SELECT 1 FROM processed_event_legacy)
               AND NOT EXISTS (SELECT 1 FROM processed_event_legacy WHERE processed_at >= v_cut) THEN
                TRUNCATE processed_event_legacy;
                table_name := r.table_name; action := 'dropped';
                partition_name := 'processed_event_legacy'; detail := 'the inbox of before partitioning';
                RETURN NEXT;
            END IF;
        END IF;
    END LOOP;
END
$$;

-- What `kactl retention` shows, one row per table. rows is the planner's
-- count where a partition was analysed, an exact count otherwise; bytes
-- include indexes and TOAST (and, for processed_event, the legacy inbox).
CREATE FUNCTION ka_retention_status()
RETURNS TABLE (table_name text, time_column text, every text, keep interval, ahead integer,
               partitions integer, in_default bigint, rows bigint, bytes bigint,
               oldest timestamptz, newest_partition_end timestamptz)
LANGUAGE plpgsql STABLE SET TimeZone = 'UTC' AS $$
DECLARE
    r    retention_policy;
    p    record;
    v_n  bigint;
    v_t  timestamptz;
BEGIN
    FOR r IN SELECT * FROM retention_policy ORDER BY retention_policy.table_name LOOP
        table_name := r.table_name; time_column := r.time_column; every := r.every;
        keep := r.keep; ahead := r.ahead;
        partitions := 0; in_default := 0; rows := 0; bytes := 0; oldest := NULL;
        newest_partition_end := NULL;
        FOR p IN SELECT * FROM ka_partitions(r.table_name) LOOP
            bytes := bytes + pg_total_relation_size(p.part);
            SELECT CASE WHEN c.reltuples >= 0 AND c.relpages > 0 THEN c.reltuples::bigint END
              INTO v_n FROM pg_class c WHERE c.oid = p.part;
            IF v_n IS NULL THEN
                EXECUTE format('SELECT count(*) FROM %s', p.part) INTO v_n;
            END IF;
            rows := rows + v_n;
            IF p.lo IS NULL THEN
                EXECUTE format('SELECT count(*) FROM %s', p.part) INTO in_default;
            ELSE
                partitions := partitions + 1;
                newest_partition_end := greatest(newest_partition_end, p.hi);
            END IF;
            IF (oldest IS NULL OR p.lo IS NULL OR p.lo < oldest) AND v_n > 0 THEN
                EXECUTE format('SELECT min(%I)::timestamptz FROM %s', r.time_column, p.part) INTO v_t;
                oldest := least(oldest, v_t);
            END IF;
        END LOOP;
        IF r.table_name = 'processed_event' AND to_regclass('processed_event_legacy') IS NOT NULL THEN
            bytes := bytes + pg_total_relation_size('processed_event_legacy');
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Used by the next migration: turns an existing table into a partitioned one
-- of the same name and columns, keeping its rows, privileges and sequences.
-- p_keys are the unique constraints (each must hold the partition key);
-- other indexes and foreign keys are the caller's. The old table is renamed
-- to p_old and dropped unless p_keep_old.
CREATE FUNCTION ka_partition_convert(p_table text, p_keys text, p_old text, p_keep_old boolean)
RETURNS void
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    r      retention_policy;
    v_ix   record;
    v_g    record;
    v_s    record;
    v_min  timestamptz;
BEGIN
    SELECT * INTO r FROM retention_policy WHERE table_name = p_table;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', p_table, p_old);
    -- Index names are per schema: the old ones make way for the new.
    FOR v_ix IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 WHERE i.indrelid = p_old::regclass LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', v_ix.relname,
                       left(p_old || substr(v_ix.relname, length(p_table) + 1), 63));
    END LOOP;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS, %s) '
                   'PARTITION BY RANGE (%I)', p_table, p_old, p_keys, r.time_column);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', p_table || '_default', p_table);
    IF NOT p_keep_old THEN
        EXECUTE format('SELECT min(%I)::timestamptz FROM %I', r.time_column, p_old) INTO v_min;
        PERFORM ka_partition_ensure(p_table, least(v_min, now() - r.keep),
                                    ka_partition_start(r.every, now())
                                    + ((r.ahead + 1) || ' ' || r.every)::interval);
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', p_table, p_old);
    ELSE
        PERFORM ka_partition_ensure(p_table, now() - r.keep,
                                    ka_partition_start(r.every, now())
                                    + ((r.ahead + 1) || ' ' || r.every)::interval);
    END IF;
    FOR v_g IN SELECT a.grantee::regrole AS grantee, a.privilege_type
                 FROM pg_class c, aclexplode(c.relacl) a
                WHERE c.oid = p_old::regclass AND a.grantee <> c.relowner AND a.grantee <> 0 LOOP
        EXECUTE format('GRANT %s ON %I TO %s', v_g.privilege_type, p_table, v_g.grantee);
    END LOOP;
    -- A serial column's sequence would go with the old table.
    FOR v_s IN SELECT d.objid::regclass AS seq, a.attname
                 FROM pg_depend d
                 JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                 JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                WHERE d.refobjid = p_old::regclass AND d.classid = 'pg_class'::regclass
                  AND d.deptype = 'a' LOOP
        EXECUTE format('ALTER SEQUENCE %s OWNED BY %I.%I', v_s.seq, p_table, v_s.attname);
    END LOOP;
    IF NOT p_keep_old THEN
        EXECUTE format('DROP TABLE %I', p_old);
    END IF;
END
$$;

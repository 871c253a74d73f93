-- Runtime infrastructure the C library (common/ka_worker.c, ka_outbox.c,
-- ka_pg.c) depends on by name: stored consumer offsets, the inbox of
-- processed event ids, the transactional outbox and dead letters
-- (EXACTLY-ONCE.md).

-- Kafka offsets live here, written in the same transaction as the state, so
-- state and position can never disagree.
CREATE TABLE consumer_offset (
  consumer_group text NOT NULL, topic text NOT NULL, partition integer NOT NULL,
  next_offset bigint NOT NULL CHECK (next_offset >= 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition));

-- Compare-and-set of one stored offset. A failed CAS must raise, not just
-- touch zero rows: in a libpq pipeline the queued COMMIT runs regardless of
-- row counts, and only an error aborts it. That is what fences a zombie
-- instance still writing for partitions it lost.
--   expected NULL: no row yet -> INSERT; a concurrent instance that got there
--     first makes it fail with unique_violation on consumer_offset_pkey
--     (ka_pg.c classifies that constraint as "fenced").
--   otherwise: UPDATE ... WHERE next_offset = expected, or SQLSTATE KA001.
CREATE FUNCTION ka_advance_offset(p_group text, p_topic text, p_partition integer,
                                  p_expected bigint, p_next bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_current bigint;
BEGIN
    IF p_expected IS NULL THEN
        INSERT INTO consumer_offset (consumer_group, topic, partition, next_offset)
        VALUES (p_group, p_topic, p_partition, p_next);
        RETURN;
    END IF;

    UPDATE consumer_offset
       SET next_offset = p_next, updated_at = now()
     WHERE consumer_group = p_group AND topic = p_topic AND partition = p_partition
       AND next_offset = p_expected;
    IF FOUND THEN
        RETURN;
    END IF;

    SELECT next_offset INTO v_current FROM consumer_offset
     WHERE consumer_group = p_group AND topic = p_topic AND partition = p_partition;
    RAISE EXCEPTION 'stored offset of group % topic % partition % is not the expected %',
        p_group, p_topic, p_partition, p_expected
        USING ERRCODE = 'KA001',
              DETAIL = CASE WHEN v_current IS NULL THEN 'no stored offset'
                            ELSE 'stored next offset is ' || v_current END,
              HINT = 'another instance owns this partition; rewind and reload offsets';
END
$$;

-- Batched form, one call per batch: element i of each array describes one
-- partition; a NULL element of p_expected means "no row yet". Stops at the
-- first failed CAS, which aborts the whole transaction.
CREATE FUNCTION ka_advance_offsets(p_group text, p_topics text[], p_partitions integer[],
                                   p_expected bigint[], p_next bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer := coalesce(cardinality(p_topics), 0);
BEGIN
    IF coalesce(cardinality(p_partitions), 0) <> v_n
       OR coalesce(cardinality(p_expected), 0) <> v_n
       OR coalesce(cardinality(p_next), 0) <> v_n THEN
        RAISE EXCEPTION 'ka_advance_offsets: arrays differ in length (% topics, % partitions, % expected, % next)',
            v_n, cardinality(p_partitions), cardinality(p_expected), cardinality(p_next)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 1 .. v_n LOOP
        PERFORM ka_advance_offset(p_group, p_topics[i], p_partitions[i], p_expected[i], p_next[i]);
    END LOOP;
END
$$;

-- Inbox: an event id already here for the group changes nothing (duplicates).
CREATE TABLE processed_event (
  consumer_group text NOT NULL, event_id text NOT NULL,
  topic text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, event_id));

-- For a retention job that prunes old inbox rows.
CREATE INDEX processed_event_processed_at ON processed_event (processed_at);

CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  event_id text NOT NULL UNIQUE,          -- CloudEvents ce_id, deterministic
  topic text NOT NULL,
  kafka_key bytea,
  ce_type text,                            -- NULL for dead letters (raw bytes, no CloudEvent)
  ce_source text NOT NULL,
  ce_time timestamptz NOT NULL,
  payload bytea NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}',     -- extra string headers, e.g. dead-letter reason and source coordinates
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz,
  attempts integer NOT NULL DEFAULT 0);

-- The relay selects unpublished rows (never "id > last seen": sequence order
-- is not commit order).
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE dead_letter (   -- a queryable copy for the admin CLI (list, re-drive)
  id bigserial PRIMARY KEY, consumer_group text NOT NULL, source_topic text NOT NULL, source_partition integer NOT NULL, source_offset bigint NOT NULL,
  reason text NOT NULL, detail text, payload bytea, created_at timestamptz NOT NULL DEFAULT now(), redriven_at timestamptz,
  UNIQUE (consumer_group, source_topic, source_partition, source_offset));

-- The admin CLI lists what still awaits a re-drive, newest first.
CREATE INDEX dead_letter_pending ON dead_letter (created_at) WHERE redriven_at IS NULL;

CREATE TABLE ingest_probe (  -- written by the foundation's integration test pipeline: one row per applied event
  consumer_group text NOT NULL, event_id text NOT NULL, topic text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL,
  payload_kind text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer_group, event_id));

-- Called by the admin CLI in the transaction that changes reference data.
-- NOTIFY is delivered on commit only, so workers never reload a half-applied
-- change; they LISTEN ka_reference and reload the named kind (e.g. 'org',
-- 'funnel', 'quota', 'product', 'distributor'). No trigger: a bulk load
-- should notify once, not once per row.
CREATE FUNCTION ka_notify_reference_changed(kind text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('ka_reference', kind)
$$;

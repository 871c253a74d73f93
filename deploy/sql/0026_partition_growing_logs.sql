-- The growing logs become range-partitioned tables (docs/retention.md), rows
-- kept. Each partition key is a time the same fact always carries, and is
-- part of every unique key, so a replay still meets its own row:
--   processed_event   occurred_at: the event's own time (header.occurred_at_ms)
--   opportunity_event occurred_at: the event's own time
--   outbox            ce_time: the output event's time (a dead letter's is the
--                     time of the Kafka record it carries)
--   alert_history     occurred_at: the transition's time
--   dead_letter       source_time: the Kafka record's timestamp
--   the snapshots     snapshot_date
--
-- The inbox of before this migration has no event time: it stays, read-only,
-- as processed_event_legacy, consulted by the dedupe statement with the old
-- key (consumer_group, event_id), and emptied by `kactl retention apply` once
-- all of it is older than the dedupe window.

ALTER TABLE processed_event RENAME TO processed_event_legacy;
ALTER INDEX processed_event_pkey RENAME TO processed_event_legacy_pkey;
ALTER INDEX processed_event_processed_at RENAME TO processed_event_legacy_processed_at;

CREATE TABLE processed_event (
  consumer_group text NOT NULL, event_id text NOT NULL,
  topic text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL,
  -- The event's own time: the same for every copy of the event.
  occurred_at timestamptz NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE processed_event_default PARTITION OF processed_event DEFAULT;
SELECT ka_partition_ensure('processed_event', now() - interval '400 days',
                           ka_partition_start('month', now()) + interval '3 months');
GRANT SELECT, INSERT, DELETE ON processed_event TO ka_worker;
GRANT SELECT ON processed_event_legacy TO ka_worker;
REVOKE INSERT, DELETE ON processed_event_legacy FROM ka_worker;

SELECT ka_partition_convert('opportunity_event',
                            'PRIMARY KEY (opportunity_id, event_id, occurred_at)',
                            'opportunity_event_unpartitioned', false);
CREATE INDEX opportunity_event_time ON opportunity_event (opportunity_id, occurred_at);

SELECT ka_partition_convert('outbox', 'PRIMARY KEY (id, ce_time), UNIQUE (event_id, ce_time)',
                            'outbox_unpartitioned', false);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

SELECT ka_partition_convert('alert_history', 'PRIMARY KEY (id, occurred_at), UNIQUE (event_id, occurred_at)',
                            'alert_history_unpartitioned', false);
ALTER TABLE alert_history ADD FOREIGN KEY (fingerprint) REFERENCES alert_state (fingerprint);
CREATE INDEX alert_history_fingerprint ON alert_history (fingerprint, occurred_at);
CREATE INDEX alert_history_time ON alert_history (occurred_at);

-- The time of the Kafka record a dead letter holds: the same when a replay
-- judges the record again. Rows of before have their creation time.
ALTER TABLE dead_letter ADD COLUMN source_time timestamptz;
UPDATE dead_letter SET source_time = created_at;
ALTER TABLE dead_letter ALTER COLUMN source_time SET NOT NULL,
                        ALTER COLUMN source_time SET DEFAULT now();
SELECT ka_partition_convert('dead_letter',
                            'PRIMARY KEY (id, source_time), '
                            'UNIQUE (consumer_group, source_topic, source_partition, source_offset, source_time)',
                            'dead_letter_unpartitioned', false);
CREATE INDEX dead_letter_pending ON dead_letter (created_at) WHERE redriven_at IS NULL;

SELECT ka_partition_convert('funnel_snapshot',
                            'PRIMARY KEY (node_id, definition_id, stage_code, snapshot_date)',
                            'funnel_snapshot_unpartitioned', false);
CREATE INDEX funnel_snapshot_date ON funnel_snapshot (snapshot_date);

SELECT ka_partition_convert('forecast_snapshot',
                            'PRIMARY KEY (node_id, period_kind, period_start, snapshot_date)',
                            'forecast_snapshot_unpartitioned', false);
CREATE INDEX forecast_snapshot_date ON forecast_snapshot (snapshot_date);

SELECT ka_partition_convert('opportunity_snapshot', 'PRIMARY KEY (snapshot_date, opportunity_id)',
                            'opportunity_snapshot_unpartitioned', false);
CREATE INDEX opportunity_snapshot_owner ON opportunity_snapshot (owner_rep_id, snapshot_date);

-- The statistics of the copied tables, so the first batches are not planned
-- as against empty tables.
ANALYZE processed_event, opportunity_event, outbox, alert_history, dead_letter,
        funnel_snapshot, forecast_snapshot, opportunity_snapshot;

#include "ka_worker_internal.h"

/* The loop's own statements; the handlers prepare theirs (handler.prepare). */


static const char *runtime_statements[][2] = {
    {"ka_load_offsets",
     "SELECT t.i - 1, o.next_offset FROM unnest($2::text[], $3::int[]) WITH ORDINALITY "
     "AS t(topic, partition, i) LEFT JOIN consumer_offset o ON o.consumer_group = $1 "
     "AND o.topic = t.topic AND o.partition = t.partition"},
    {"ka_record_events",
     "INSERT INTO processed_event (consumer_group, event_id, topic, partition, \"offset\", "
     "occurred_at) SELECT $1, e.id, e.topic, e.partition, e.off, "
     "timestamptz 'epoch' + e.at * interval '1 millisecond' FROM unnest($2::text[], $3::text[], "
     "$4::int[], $5::bigint[], $6::bigint[]) AS e(id, topic, partition, off, at) "
     /* The id alone is the idempotency key: a re-send under another time is
      * a duplicate too (one probe per partition), as is an id of the inbox of
      * before partitioning (0026). The unique key catches a concurrent copy. */
     "WHERE NOT EXISTS (SELECT 1 FROM processed_event p "
     "WHERE p.consumer_group = $1 AND p.event_id = e.id) "
     "AND NOT EXISTS (SELECT 1 FROM processed_event_legacy l "
     "WHERE l.consumer_group = $1 AND l.event_id = e.id) "
     "ON CONFLICT (consumer_group, event_id, occurred_at) DO NOTHING RETURNING event_id"},
    {"ka_forget_events",
     "DELETE FROM processed_event WHERE consumer_group = $1 AND event_id = ANY($2::text[])"},
    {"ka_advance_offsets", "SELECT ka_advance_offsets($1, $2::text[], $3::int[], $4::bigint[], "
                           "$5::bigint[])"},
    {"ka_dead_letter_insert",
     "INSERT INTO dead_letter (consumer_group, source_topic, source_partition, source_offset, "
     "reason, detail, payload, source_time, content_mode, json_path) "
     "VALUES ($1, $2, $3, $4, $5, $6, $7, timestamptz 'epoch' + $8::bigint * interval '1 millisecond', "
     "NULLIF($9, ''), NULLIF($10, '')) "
     "ON CONFLICT (consumer_group, source_topic, source_partition, source_offset, source_time) "
     "DO NOTHING"},
};

ka_err_t ka_worker_prepare_statements(ka_pg_t *pg, char *errstr, size_t errlen)
{
    ka_err_t rc = KA_OK;
    for (size_t i = 0; rc == KA_OK && i < sizeof runtime_statements / sizeof runtime_statements[0];
         i++)
        rc = ka_pg_prepare(pg, runtime_statements[i][0], runtime_statements[i][1], errstr, errlen);
    return rc;
}

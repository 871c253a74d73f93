#ifndef KA_EVENT_TIME_H
#define KA_EVENT_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "ka_err.h"
#include "ka_kafka.h"
#include "ka_pg.h"
#include "ka_validate.h"

/* The time the dedupe record of an event is partitioned by (docs/retention.md):
 * one that every copy of the event carries, so a replay meets its own row.
 *
 * Every input message of ka.v1 starts with `EventHeader header = 1`, whose
 * `occurred_at_ms` is field 2: read from the encoded bytes, so the loop needs
 * no handler's help. Protobuf semantics: the last occurrence of a scalar wins,
 * and repeated header fields merge. Returns -1 when the bytes hold no such
 * field (or are not a message). */
int64_t ka_wire_occurred_at_ms(const void *payload, size_t len);

/* 10000-01-01T00:00:00Z: times from here on are not taken as an event's own. */
#define KA_EVENT_TIME_LIMIT_MS 253402300800000LL

/* ka_wire_occurred_at_ms when it is before KA_EVENT_TIME_LIMIT_MS, or else the
 * Kafka record's timestamp (the same for a replay of the record), or else
 * now_ms. */
int64_t ka_event_time_ms(const ka_msg_t *m, int64_t now_ms);

/* The reason of an event older than the dedupe window can keep safe. */
#define KA_REASON_DEDUPE_WINDOW "outside_dedupe_window"

/* Reads the oldest event age a worker may take (ka_retention_max_event_age_ms(),
 * set by the retention policy: keep(processed_event) - the input topics'
 * retention). Fails when the schema has no retention policy or the policy
 * leaves no window. */
ka_err_t ka_dedupe_window_load(ka_pg_t *pg, int64_t *max_age_ms, char *errstr, size_t errlen);

/* KA_OK for an event at at_ms that a dedupe row can still guard; otherwise
 * KA_ERR_INVALID with rej set to KA_REASON_DEDUPE_WINDOW. */
ka_err_t ka_check_dedupe_window(ka_reject_t *rej, int64_t at_ms, int64_t now_ms,
                                int64_t max_age_ms);

#endif

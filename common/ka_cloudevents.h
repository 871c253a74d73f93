#ifndef KA_CLOUDEVENTS_H
#define KA_CLOUDEVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ka/v1/common.pb-c.h"
#include "ka_json_pb.h"

/* CloudEvents 1.0 envelopes of our events: the structured mode (the whole
 * CloudEvent as one JSON document, content-type
 * application/cloudevents+json, the event in the proto3 JSON mapping as its
 * `data`) and the attributes of the binary mode (ce_* Kafka headers, the
 * event as the payload). The attributes must agree with the event's own
 * header:
 *   id      = header.event_id (the idempotency key: a second, different id
 *             would let a re-sent event through deduplication);
 *   source  names header.producer: equal to it, or its last segment after
 *           '/' or ':' is ("/crm", "urn:acme:crm" for producer "crm");
 *   type    = the protobuf full name of the topic's message
 *             ("ka.v1.OrderEvent");
 *   time    (optional) = header.occurred_at_ms, to the millisecond. */

#define KA_REASON_CE_INVALID "invalid_cloudevent"   /* not a CloudEvent 1.0 we can read */
#define KA_REASON_CE_MISMATCH "cloudevent_mismatch" /* an attribute against the header */

/* A borrowed text: ptr NULL when absent; not terminated. */
typedef struct ka_ce_text {
    const char *ptr;
    size_t len;
} ka_ce_text_t;

/* The attributes, borrowed from the parsed document or from the headers:
 * valid while they are. */
typedef struct ka_cloudevent {
    int structured; /* 1: from a structured document; 0: from ce_* headers */
    ka_ce_text_t specversion, id, source, type, subject, datacontenttype, time;
    int has_time;
    int64_t time_ms;    /* time, in ms since the epoch, rounded down */
    const json_t *data; /* structured mode: the event (an object is expected) */
} ka_cloudevent_t;

/* Reads a structured CloudEvent from its parsed document (ka_json_load).
 * Returns KA_OK with *ce set (data borrowed from root), or KA_ERR_INVALID
 * with err set to invalid_cloudevent and the attribute's path ("$.id"): not
 * an object, specversion other than "1.0", id / source / type missing,
 * empty or not strings, a time that is not RFC 3339, a datacontenttype that
 * is not JSON, data_base64 (the event must be JSON data), no data. A null
 * attribute counts as absent. Extension attributes are ignored. Convert
 * ce->data with ka_json_pb_from_value(desc, ce->data, "$.data", ...). */
ka_err_t ka_ce_parse_structured(const json_t *root, ka_cloudevent_t *ce, ka_json_reject_t *err);

struct cJSON;

/* ka_ce_parse_structured on a document of the fast path (ka_json_fast.h):
 * returns 1 with *ce set (texts borrowed from root, ce->data NULL) and *data
 * the event, or 0 to decline (anything ka_ce_parse_structured refuses, a key
 * given twice in the envelope or an extension's value): the caller then
 * reads the document with jansson and ka_ce_parse_structured, which give
 * the verdict. */
int ka_ce_fast_structured(const struct cJSON *root, ka_cloudevent_t *ce,
                          const struct cJSON **data);

/* Looks a Kafka header up by name: returns 1 with its value (len bytes,
 * borrowed) when present, 0 when absent. */
typedef int (*ka_ce_header_fn)(void *ctx, const char *name, const void **value, size_t *len);

/* The binary mode's attributes from the ce_specversion, ce_id, ce_source,
 * ce_type, ce_time and ce_subject headers. Returns KA_OK with
 * ce->specversion.ptr NULL when there is no ce_specversion header (not a
 * CloudEvent: nothing to check), KA_OK with *ce set, or KA_ERR_INVALID with
 * err set to invalid_cloudevent (the rules of the structured mode; err->path
 * is ""). */
ka_err_t ka_ce_from_headers(ka_ce_header_fn get, void *ctx, ka_cloudevent_t *ce,
                            ka_json_reject_t *err);

/* Checks the attributes against the decoded event's header (see above);
 * expected_type NULL skips the type. Call it after the event's own
 * validation, so an event without a header gets the reason it gets in
 * every mode (a NULL h passes here). Returns KA_OK or KA_ERR_INVALID with
 * err set to cloudevent_mismatch and, for a structured event, the
 * attribute's path. */
ka_err_t ka_ce_check_header(const ka_cloudevent_t *ce, const Ka__V1__EventHeader *h,
                            const char *expected_type, ka_json_reject_t *err);

/* A structured CloudEvent of an event (for producers of our own, kagen
 * --format cloudevents, and tests): specversion 1.0, id = the header's
 * event_id, source "/<producer>", type, time = occurred_at_ms in RFC 3339
 * UTC with milliseconds, datacontenttype application/json, and data (the
 * reference is taken). NULL when out of memory. */
json_t *ka_ce_structured_new(const Ka__V1__EventHeader *h, const char *type, json_t *data);

/* Non-zero when source[0..len) names producer (the rule above). */
int ka_ce_source_names(const char *source, size_t len, const char *producer);

#endif

#ifndef KA_INPUT_H
#define KA_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "ka_cloudevents.h"
#include "ka_config.h"
#include "ka_framing.h"
#include "ka_json_pb.h"
#include "ka_kafka.h"
#include "ka_validate.h"

/* One input event in any content mode (ka_framing.h) into the protobuf-c
 * message its type's validation reads, so a JSON, CloudEvents or Confluent
 * event passes the very rules a bare protobuf one does and gets the same
 * reasons:
 *
 *   mode from content-type and the first byte (ka_content_detect), refused
 *     unless the topic accepts it              content_mode_not_accepted
 *   protobuf      unpack + wire NUL check
 *   confluent     framing + message index, then as protobuf
 *   json          ka_json_pb_parse
 *   cloudevents   ka_json_load + ka_ce_parse_structured + data converted
 *   then the type's validation; then, for a structured CloudEvent or one
 *   with ce_* headers (binary mode), its attributes against the event's
 *   header (ka_ce_check_header).
 *
 * rej->mode is set on every return (so an apply-time rejection records the
 * mode too) and rej->path for a JSON value's fault. */

/* An input type: its message and its validation (the checks after decode,
 * which set event_id once the header has passed). The message's `header`
 * field (an EventHeader) is found through the descriptor. */
typedef struct ka_input_type {
    const ProtobufCMessageDescriptor *desc;
    ka_err_t (*validate)(const ProtobufCMessage *m, int64_t now_ms, char *event_id, size_t idlen,
                         ka_reject_t *rej);
} ka_input_type_t;

/* What a topic accepts. All zero is the default: every mode, unknown JSON
 * members refused. */
typedef struct ka_input_opts {
    unsigned modes; /* KA_CONTENT_* bits; 0: KA_CONTENT_ALL */
    ka_json_opts_t json;
} ka_input_opts_t;

/* The event as it came: payload and a header lookup (content-type, ce_*). */
typedef struct ka_input_src {
    const void *payload;
    size_t len;
    ka_ce_header_fn get; /* NULL: no headers */
    void *ctx;
} ka_input_src_t;

/* Decodes and validates one event. Returns KA_OK with *out set (free with
 * protobuf_c_message_free_unpacked(*out, NULL)) and event_id set, or
 * KA_ERR_INVALID with rej set (*out may be set too and must be freed). */
ka_err_t ka_input_decode(const ka_input_type_t *t, const ka_input_src_t *src,
                         const ka_input_opts_t *opts, int64_t now_ms, ProtobufCMessage **out,
                         char *event_id, size_t idlen, ka_reject_t *rej);

/* A bare protobuf message (the binary decoders' path, no detection):
 * unpack, wire NUL check, validation. */
ka_err_t ka_input_decode_protobuf(const ka_input_type_t *t, const void *buf, size_t len,
                                  int64_t now_ms, ProtobufCMessage **out, char *event_id,
                                  size_t idlen, ka_reject_t *rej);

/* The same for a consumed Kafka message, with the options of its topic
 * (ka_input_configure). */
ka_err_t ka_input_decode_msg(const ka_input_type_t *t, const ka_msg_t *msg, int64_t now_ms,
                             ProtobufCMessage **out, char *event_id, size_t idlen,
                             ka_reject_t *rej);

/* One input type's typed entry points over the generic decoder, so each
 * type's file holds only its validation: the type `input` (ka_input_visit),
 * prefix_decode (bare protobuf) and prefix_decode_msg (a consumed message,
 * any content mode), both over prefix_decode_validate. */
#define KA_INPUT_DEFINE(input, prefix, Type, descriptor)                                       \
    static ka_err_t prefix##_validate_msg(const ProtobufCMessage *m, int64_t now_ms,           \
                                          char *event_id, size_t idlen, ka_reject_t *rej)       \
    {                                                                                          \
        return prefix##_decode_validate((const Type *)m, now_ms, event_id, idlen, rej);        \
    }                                                                                          \
    const ka_input_type_t input = {&descriptor, prefix##_validate_msg};                        \
    ka_err_t prefix##_decode(const void *payload, size_t len, int64_t now_ms, Type **out,      \
                             char *event_id, size_t idlen, ka_reject_t *rej)                   \
    {                                                                                          \
        *out = NULL;                                                                           \
        if (idlen)                                                                             \
            event_id[0] = '\0';                                                                \
        return ka_input_decode_protobuf(&input, payload, len, now_ms, (ProtobufCMessage **)out, \
                                        event_id, idlen, rej);                                 \
    }                                                                                          \
    ka_err_t prefix##_decode_msg(const ka_msg_t *msg, int64_t now_ms, Type **out,              \
                                 char *event_id, size_t idlen, ka_reject_t *rej)               \
    {                                                                                          \
        return ka_input_decode_msg(&input, msg, now_ms, (ProtobufCMessage **)out, event_id,    \
                                   idlen, rej);                                                \
    }

/* Reads the input topics' options from configuration once per process (the
 * worker loop calls it at start): KA_CONTENT_MODES_VISIT, _OPPORTUNITY and
 * _ORDER for the topics KA_TOPIC_VISIT, ... name, and
 * KA_JSON_UNKNOWN_FIELDS. Returns KA_OK, or KA_ERR_CONFIG with a message
 * (a mode list that does not parse). */
ka_err_t ka_input_configure(const ka_config_t *cfg, char *errstr, size_t errlen);

/* The options of a topic: those configured, or the defaults. */
const ka_input_opts_t *ka_input_opts_for(const char *topic);

#endif

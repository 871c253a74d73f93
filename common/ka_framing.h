#ifndef KA_FRAMING_H
#define KA_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "ka_validate.h"

/* How an input event is framed on the bus, told apart per event from its
 * content-type header and its first byte, and the Confluent Schema Registry
 * wire format, decoded without a registry (the schema is ours).
 *
 *   mode         content-type                      payload
 *   protobuf     absent, or a protobuf type        the bare message (today)
 *   json         application/json, type/x+json,    the event in the proto3
 *                or absent with first byte '{'     JSON mapping (ka_json_pb.h)
 *   cloudevents  application/cloudevents+json      a structured CloudEvent whose
 *                                                  data is the event in JSON
 *                                                  (ka_cloudevents.h)
 *   confluent    absent or a protobuf type, with   0, schema id, message
 *                first byte 0                      indexes, the message
 *
 * A bare protobuf message never starts with 0 (field number 0 does not
 * exist) nor with '{' (0x7b: field 15 with the group wire type, which proto3
 * refuses), so the first byte decides when there is no content-type. A JSON
 * document with leading blanks needs its content-type: a newline is also
 * the first byte of a protobuf message whose field 1 is length-delimited.
 * Structured CloudEvents need theirs (the Kafka protocol binding requires
 * it). Binary-mode CloudEvents (ce_* headers, the data as the payload) are
 * protobuf or json by their content-type; their attributes are read by
 * ka_ce_from_headers. */

typedef enum ka_content_mode {
    KA_CONTENT_PROTOBUF = 1 << 0,
    KA_CONTENT_JSON = 1 << 1,
    KA_CONTENT_CLOUDEVENTS = 1 << 2,
    KA_CONTENT_CONFLUENT = 1 << 3,
} ka_content_mode_t;

#define KA_CONTENT_ALL 0xfu

/* Reasons, for the dead-letter header. */
#define KA_REASON_CONTENT_TYPE "unsupported_content_type" /* not one of the modes */
#define KA_REASON_MODE_REFUSED "content_mode_not_accepted" /* a mode the topic refuses */
#define KA_REASON_FRAMING "bad_framing"                    /* a broken Confluent header */
#define KA_REASON_MESSAGE_INDEX "wrong_message_index"      /* not the topic's message type */

/* "protobuf", "json", "cloudevents", "confluent"; "?" for anything else. */
const char *ka_content_mode_name(ka_content_mode_t mode);

/* A topic's accepted modes from configuration text: "all", or names
 * separated by commas (blanks around them allowed). Returns 0 with *mask
 * set, or -1 with a message in err (an unknown name, an empty list). */
int ka_content_modes_parse(const char *text, unsigned *mask, char *err, size_t errlen);

/* The mode of one event: content_type is the content-type header's value
 * (ct_len bytes, not terminated; NULL when the header is absent), matched
 * case-insensitively with its parameters (";charset=utf-8") ignored.
 * Returns KA_OK with *mode set, or KA_ERR_INVALID with rej set:
 * unsupported_content_type for another type (a CloudEvents batch, XML,
 * Avro), content_mode_not_accepted for a mode outside `accepted`. */
ka_err_t ka_content_detect(const char *content_type, size_t ct_len, const void *payload,
                           size_t len, unsigned accepted, ka_content_mode_t *mode,
                           ka_reject_t *rej);

/* ----------------------------------------------------------------------------
 * Confluent wire format
 * ------------------------------------------------------------------------- */

/* Message indexes beyond this depth are refused (ours are one deep). */
#define KA_CONFLUENT_MAX_INDEXES 8

/* A parsed header: borrowed from the buffer given to ka_confluent_parse. */
typedef struct ka_confluent {
    uint32_t schema_id;
    size_t n_indexes;                          /* 1.. KA_CONFLUENT_MAX_INDEXES */
    int32_t indexes[KA_CONFLUENT_MAX_INDEXES]; /* the path to the message type */
    const uint8_t *payload;                    /* the protobuf message */
    size_t payload_len;
} ka_confluent_t;

/* Splits buf[0..len) (Confluent's protobuf serializer output): magic byte
 * 0, the schema id (4 bytes, big-endian), the message-index array (a count
 * then that many indexes, each a zig-zag varint of at most 5 bytes, as
 * Kafka's ByteUtils writes them; a count of 0, the single byte 0, is the
 * common [0]), then the message. Returns KA_OK with *out set, or
 * KA_ERR_INVALID with rej set to bad_framing (truncated, another magic
 * byte, a varint too long, a negative or too large count). The schema id is
 * not looked up: no registry is needed. */
ka_err_t ka_confluent_parse(const void *buf, size_t len, ka_confluent_t *out, ka_reject_t *rej);

/* The index path of desc within its .proto file: [i] for the i-th
 * top-level message. protobuf-c generates no file descriptors, so the
 * positions come from a table in ka_framing.c of every message of
 * proto/ka/v1 in file order (a unit test reads the .proto files and checks
 * it). Returns the number of indexes written to path (at most max), or 0
 * for a message the table does not know. */
size_t ka_proto_message_index(const ProtobufCMessageDescriptor *desc, int32_t *path, size_t max);

/* The full name of the message at the index path in the file that holds
 * `in_file_of` ("ka.v1.StageChanged"), or NULL when the path names none
 * (nested paths are not tabled: none of our input types is nested). */
const char *ka_proto_message_at(const ProtobufCMessageDescriptor *in_file_of,
                                const int32_t *path, size_t n);

/* KA_OK when f's indexes name `expected`; else KA_ERR_INVALID with rej set
 * to wrong_message_index, saying which type the index names and which was
 * expected (also for a type the table does not know). */
ka_err_t ka_confluent_check_index(const ka_confluent_t *f,
                                  const ProtobufCMessageDescriptor *expected, ka_reject_t *rej);

/* Writes the Confluent header of a desc message (magic byte 0, schema_id
 * big-endian, desc's message indexes, [0] as the single byte 0) into out,
 * which needs 6 + 5 * KA_CONFLUENT_MAX_INDEXES bytes; the message follows
 * it. Returns the header's length, or 0 for a type the table does not
 * know. For producers of our own (kagen --format confluent) and tests. */
size_t ka_confluent_header(const ProtobufCMessageDescriptor *desc, uint32_t schema_id,
                           uint8_t *out);

#endif

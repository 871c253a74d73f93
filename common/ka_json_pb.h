#ifndef KA_JSON_PB_H
#define KA_JSON_PB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#include "ka_validate.h"

/* An event in the proto3 JSON mapping (what Kafka Connect, integration tools
 * and webhook bridges write) converted into the protobuf-c message the
 * binary decoders unpack, driven only by the message's descriptor: no code
 * per message. jansson parses; this file maps.
 *
 * The mapping (https://protobuf.dev/programming-guides/json/):
 * - a field by its lowerCamelCase JSON name or its original name
 *   ("quantityMilli", "quantity_milli"); both in one object, or two members
 *   of one oneof, is a duplicate_field;
 * - null is the field's default (a oneof member given as null stays unset);
 * - integers as JSON numbers (integral reals such as 1.0 or 1e3 too) or as
 *   decimal strings ("-42"); 64-bit values beyond 2^53 need the string form
 *   only in JavaScript, both forms are exact here; out of the type's range
 *   is number_out_of_range, a fraction or "12x" is wrong_type;
 * - float and double as numbers, numeric strings, "NaN", "Infinity",
 *   "-Infinity";
 * - bool as true / false; string as a JSON string; bytes as base64
 *   (standard or URL-safe alphabet, padding optional);
 * - enums by value name ("CHANNEL_DIRECT") or by number; an unknown name is
 *   unknown_enum_value, an unknown number passes through as in the binary
 *   path (proto3 enums are open) and the event's validation refuses it with
 *   the same reason;
 * - repeated fields as arrays (null elements refused), maps as objects with
 *   the keys in their string form, nested messages as objects;
 * - google.protobuf.Timestamp as an RFC 3339 string (our own schemas carry
 *   int64 *_ms fields instead; the rule is there for any schema). The other
 *   well-known types (Duration, wrappers, Struct, Any) are not special-cased:
 *   no schema of ours uses them;
 * - members that name no field: unknown_field with their path, or skipped
 *   when the options say so.
 *
 * Bounds, like the binary path's: the document at most KA_JSON_MAX_BYTES
 * (Kafka's default message limit), messages nested at most
 * KA_JSON_MAX_DEPTH deep (ka_wire.c's limit), lists and maps at most
 * KA_MAX_LIST_LEN entries (every input list has that bound or a lower one;
 * refusing here, before building the list, gives list_too_long as the
 * event's validation would). Strings are checked for NUL bytes (a JSON
 * "\u0000" would cut a protobuf-c C string short unseen, as on the wire:
 * nul_in_string) and are valid UTF-8 (jansson refuses anything else:
 * invalid_utf8).
 *
 * Allocation: the message is built in place with malloc, each string, byte
 * array, list and sub-message in its own block, exactly as protobuf-c's
 * unpacker lays it out with its default allocator. The caller frees it with
 * protobuf_c_message_free_unpacked(msg, NULL) (or the generated
 * *__free_unpacked), as after *__unpack. There is no pack and unpack round
 * trip: a worker that validates bytes may still pack the result
 * (protobuf_c_message_pack) and hand it to its binary decoder. */

/* Reasons beyond ka_validate.h's, for the dead-letter header. The ones that
 * also apply here are reused: decode_failed (not JSON, nested too deep),
 * invalid_utf8, nul_in_string, unknown_enum_value, list_too_long,
 * missing_field (a proto2 required field). */
#define KA_REASON_WRONG_TYPE "wrong_type"            /* a value not of the field's type */
#define KA_REASON_OUT_OF_RANGE "number_out_of_range" /* a number the field's type cannot hold */
#define KA_REASON_UNKNOWN_FIELD "unknown_field"      /* a member that names no field */
#define KA_REASON_DUPLICATE_FIELD "duplicate_field"  /* a field (or a oneof) given twice */
#define KA_REASON_TOO_LARGE "payload_too_large"      /* the document past the size bound */

#define KA_JSON_MAX_BYTES (1u << 20)
#define KA_JSON_MAX_DEPTH 32
#define KA_JSON_PATH_MAX 160

/* All zero (or a NULL pointer to it) is the default. */
typedef struct ka_json_opts {
    int ignore_unknown_fields; /* non-zero: skip members that name no field */
    size_t max_bytes;          /* 0: KA_JSON_MAX_BYTES */
    size_t max_list;           /* 0: KA_MAX_LIST_LEN */
    unsigned max_depth;        /* 0: KA_JSON_MAX_DEPTH */
} ka_json_opts_t;

/* A rejection: the reason and detail the dead-letter topic carries, and the
 * JSON path of the offending value ("$.lines[2].quantityMilli", the names as
 * the producer wrote them; "" when the fault is not one value's, such as a
 * syntax error, whose position is in the detail). Fixed size, no
 * allocation. */
typedef struct ka_json_reject {
    ka_reject_t rej;
    char path[KA_JSON_PATH_MAX];
} ka_json_reject_t;

/* Parses buf[0..len) (UTF-8 JSON, any top-level value) with the bounds of
 * opts. Returns the document (free with json_decref) or NULL with err set:
 * payload_too_large, invalid_utf8, nul_in_string (a NUL in a key),
 * duplicate_field (a key given twice), number_out_of_range (a number beyond
 * int64 or double), decode_failed (anything else, with line and column). */
json_t *ka_json_load(const void *buf, size_t len, const ka_json_opts_t *opts,
                     ka_json_reject_t *err);

/* Converts a JSON value into a new message of type desc. root names the
 * value in paths ("$" for a whole document, "$.data" for a CloudEvent's
 * data). Returns KA_OK with *out set (the caller frees it, see above) or
 * KA_ERR_INVALID with err set and *out NULL. value is only read. */
ka_err_t ka_json_pb_from_value(const ProtobufCMessageDescriptor *desc, const json_t *value,
                               const char *root, const ka_json_opts_t *opts,
                               ProtobufCMessage **out, ka_json_reject_t *err);

/* ka_json_load then ka_json_pb_from_value with root "$". */
ka_err_t ka_json_pb_parse(const ProtobufCMessageDescriptor *desc, const void *buf, size_t len,
                          const ka_json_opts_t *opts, ProtobufCMessage **out,
                          ka_json_reject_t *err);

/* The field's JSON name (protoc's rule: each '_' dropped and the letter
 * after it upper-cased, "unit_price_minor" -> "unitPriceMinor") into out.
 * Returns its length, or the length it needed when out is too small (out is
 * then truncated and terminated). */
size_t ka_json_name(const char *field_name, char *out, size_t outlen);


#endif

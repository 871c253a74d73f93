#ifndef KA_JSON_FAST_H
#define KA_JSON_FAST_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "ka_json_pb.h"

/* The accepting fast path of the JSON decoders: cJSON parses (about four
 * times faster than jansson on our events) and the descriptor-driven rules
 * of ka_json_pb.c convert. It only ever ACCEPTS: any document it would
 * refuse, or cannot prove it reads exactly as jansson does, it DECLINES,
 * and the caller runs the jansson path (ka_json_load + ka_json_pb_from_value),
 * which stays the reference and gives every rejection its reason and JSON
 * path exactly as before. The fuzz target tests/fuzz/fuzz_json_fast.c holds
 * the two paths to the same verdict and the same packed bytes.
 *
 * Declined before cJSON sees the document (a single pass over its bytes):
 * more than max_bytes; a UTF-8 byte order mark; invalid UTF-8 (jansson's
 * rule: no overlong forms, surrogates or code points past U+10FFFF); a
 * control byte in a string or outside one other than JSON's whitespace; a
 * \u escape that is not 4 hex digits or is \u0000 (cJSON's strings end at
 * a NUL; it reads a bad hex digit as 0); a number outside JSON's grammar
 * (cJSON's strtod takes "01", "1." and "-.5"), with more than 15 digits
 * before its fraction or exponent, or an exponent of more than 2 digits (so
 * every number is one double, the same strtod value as jansson's, and an
 * integer's text is exact in it: |n| < 10^15 < 2^53; nothing can overflow).
 * Declined after: cJSON's own syntax errors, anything past the top-level
 * value but whitespace, a top-level value that is not an object, a key
 * given twice in any object (jansson refuses it: JSON_REJECT_DUPLICATES), a
 * -0 for a float or double field (jansson reads the integer -0 as +0.0),
 * map and google.protobuf.Timestamp fields (no input schema has them), and
 * whatever the mapping itself would refuse.
 *
 * cJSON's allocations come from ka_json_arena.c's per-thread arena inside a
 * scope (malloc and free outside one); its hooks are set once, before main.
 * cJSON_GetErrorPtr's global is never read (cJSON writes it on every parse:
 * the workers decode on one thread). */

struct cJSON;

/* Returns 1 with *out set (free it as after ka_json_pb_parse) when the fast
 * path accepts buf[0..len) as a message of type desc, 0 when it declines
 * (*out NULL: run the jansson path). */
int ka_json_fast_parse(const ProtobufCMessageDescriptor *desc, const void *buf, size_t len,
                       const ka_json_opts_t *opts, ProtobufCMessage **out);

/* The document parsed by cJSON after the checks above (not the converter's:
 * any top-level value), or NULL to decline. Free with cJSON_Delete. */
struct cJSON *ka_json_fast_load(const void *buf, size_t len, const ka_json_opts_t *opts);

/* Converts an object of a ka_json_fast_load document into a new message:
 * 1 with *out set, or 0 (declined, *out NULL). */
int ka_json_fast_from_value(const ProtobufCMessageDescriptor *desc, const struct cJSON *value,
                            const ka_json_opts_t *opts, ProtobufCMessage **out);

/* 1 when no object within v (v included) gives a key twice: the check for
 * values the converter skips (ignored members, CloudEvents extensions). */
int ka_json_fast_unique_keys(const struct cJSON *v);
/* 1 when no member of obj before member has member's key. */
int ka_json_fast_key_unseen(const struct cJSON *obj, const struct cJSON *member);

/* For tests and the benchmark: on by default; off sends every document to
 * the jansson path. Process-wide, set it before decoding starts. */
void ka_json_fast_set_enabled(int on);

/* Documents the fast path accepted and declined on this thread. */
typedef struct ka_json_fast_stats {
    unsigned long accepted, declined;
} ka_json_fast_stats_t;
void ka_json_fast_stats(ka_json_fast_stats_t *out);
/* Counts a verdict (the CloudEvents path, which drives its own parse). */
void ka_json_fast_count(int accepted);

#endif

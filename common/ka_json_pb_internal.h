#ifndef KA_JSON_PB_INTERNAL_H
#define KA_JSON_PB_INTERNAL_H

/* The proto3 JSON mapping's rules of ka_json_pb.c that the fast path
 * (ka_json_fast.c) applies to cJSON values: one implementation of each
 * rule, so the two paths cannot drift apart. Not for other callers. */

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Results of the number rules. */
#define KA_JPB_NUM_OK 0
#define KA_JPB_NUM_TYPE 1
#define KA_JPB_NUM_RANGE 2

/* The field a member's key names (its proto or its JSON name), or NULL. */
const ProtobufCFieldDescriptor *ka_jpb_find_field(const ProtobufCMessageDescriptor *d,
                                                  const char *key, size_t keylen);
/* Non-zero for a map<K, V> field. */
int ka_jpb_is_map(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f);
/* A decimal integer string ("-42") as sign and magnitude. */
int ka_jpb_int_from_text(const char *s, size_t n, int *neg, uint64_t *mag);
/* Sign and magnitude into an integer field's slot of type t, range checked. */
int ka_jpb_put_int(ProtobufCType t, int neg, uint64_t mag, void *slot);
/* A float or double field's string form (s terminated at s[n]). */
int ka_jpb_double_from_text(const char *s, size_t n, double *d);
/* base64 (standard or URL-safe, padding optional): 0 with *out malloc'd, or -1. */
int ka_jpb_base64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen);
/* Bytes per element of a repeated field of type t. */
size_t ka_jpb_elem_size(ProtobufCType t);
/* A message allocated as protobuf-c's unpacker does (free_unpacked frees it). */
ProtobufCMessage *ka_jpb_new_message(const ProtobufCMessageDescriptor *d);
/* Sets a proto2 optional scalar's has_ flag. */
void ka_jpb_mark_present(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

#endif

#ifndef KA_WIRE_H
#define KA_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "ka_validate.h"

/* Checks on the encoded bytes of a message that the unpacked form cannot
 * show. protobuf-c hands string fields out as C strings, so a string
 * "e-1\0xx" reads as "e-1": an event id with an embedded NUL would be taken
 * for (and deduplicated against) the real "e-1". Only the wire lengths tell
 * the two apart. */

/* The wire types of our schemas (groups, 3 and 4, are not used). */
enum { KA_WIRE_VARINT = 0, KA_WIRE_FIXED64 = 1, KA_WIRE_LEN = 2, KA_WIRE_FIXED32 = 5 };

/* One field as encoded: its number and wire type, a varint's value, a
 * length-delimited field's body. */
typedef struct ka_wire_field {
    uint64_t tag;
    unsigned wire;
    uint64_t value;      /* KA_WIRE_VARINT */
    const uint8_t *body; /* KA_WIRE_LEN, else NULL */
    size_t body_len;
} ka_wire_field_t;

/* Reads the field at buf[*pos..len) into *f and moves *pos past it. Returns
 * 1 for a field, 0 at the end, -1 for bytes that are not one (a truncated
 * key, value or body, a length past the end, a group or an unused wire type). */
int ka_wire_next(const uint8_t *buf, size_t len, size_t *pos, ka_wire_field_t *f);

/* Walks the encoded message `buf[0..len)` with its descriptor, into every
 * sub-message (and map entry), and looks for a NUL byte inside a string
 * field. Returns 1 and writes the field's path to `field` ("header.event_id",
 * "contacts[2].name") when one is found, 0 when there is none, -1 when the
 * bytes are not a well-formed encoding (truncated, a length past the end, a
 * group wire type, field number 0, nesting deeper than 32). Unknown fields
 * are skipped. */
int ka_wire_find_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                     char *field, size_t fieldlen);

/* ka_wire_find_nul as a validation check, for a decoder to call right after
 * a successful unpack (before it copies any string out): KA_OK when no
 * string field holds a NUL; KA_ERR_INVALID with rej set to KA_REASON_NUL and
 * the field otherwise (KA_REASON_DECODE for bytes that are not a message). */
ka_err_t ka_check_wire_strings(ka_reject_t *rej, const ProtobufCMessageDescriptor *desc,
                               const void *payload, size_t len);

#endif

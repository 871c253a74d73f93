#include <stdio.h>
#include <string.h>

#include "ka_wire.h"

/* Deeper than any of our schemas nests; bounds the recursion on hostile
 * input. */
#define WIRE_MAX_DEPTH 32

/* Occurrence counters per field, for the index of a repeated field in the
 * path; fields past this many are named without an index. */
#define WIRE_MAX_COUNTED_FIELDS 64

/* A base-128 varint of at most 10 bytes. Returns the bytes read, 0 when
 * truncated or too long. */
static size_t read_varint(const uint8_t *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

int ka_wire_next(const uint8_t *buf, size_t len, size_t *pos, ka_wire_field_t *f)
{
    uint64_t key;
    size_t p = *pos, k;
    if (p >= len)
        return 0;
    if ((k = read_varint(buf + p, len - p, &key)) == 0)
        return -1;
    p += k;
    f->tag = key >> 3;
    f->wire = (unsigned)(key & 7);
    f->value = 0;
    f->body = NULL;
    f->body_len = 0;
    switch (f->wire) {
    case KA_WIRE_VARINT:
        if ((k = read_varint(buf + p, len - p, &f->value)) == 0)
            return -1;
        p += k;
        break;
    case KA_WIRE_FIXED64:
        if (len - p < 8)
            return -1;
        p += 8;
        break;
    case KA_WIRE_FIXED32:
        if (len - p < 4)
            return -1;
        p += 4;
        break;
    case KA_WIRE_LEN: {
        uint64_t n;
        if ((k = read_varint(buf + p, len - p, &n)) == 0)
            return -1;
        p += k;
        if (n > len - p)
            return -1;
        f->body = buf + p;
        f->body_len = (size_t)n;
        p += (size_t)n;
        break;
    }
    default: /* groups (3, 4) and the unused 6, 7: protobuf-c refuses them too */
        return -1;
    }
    *pos = p;
    return 1;
}

/* Appends ".name" (or "name" at the top) and "[index]" for a repeated field
 * to path[0..at). Returns the new length (capped to the buffer). */
static size_t path_push(char *path, size_t pathlen, size_t at, const ProtobufCFieldDescriptor *f,
                        long index)
{
    if (pathlen == 0)
        return 0;
    int n = index >= 0 ? snprintf(path + at, pathlen - at, "%s%s[%ld]", at ? "." : "", f->name, index)
                       : snprintf(path + at, pathlen - at, "%s%s", at ? "." : "", f->name);
    if (n < 0)
        return at;
    return at + (size_t)n < pathlen ? at + (size_t)n : pathlen - 1;
}

static int find_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                    char *path, size_t pathlen, size_t at, int depth)
{
    unsigned counts[WIRE_MAX_COUNTED_FIELDS] = {0};
    size_t pos = 0;

    if (depth > WIRE_MAX_DEPTH)
        return -1;
    ka_wire_field_t fld;
    int got;
    while ((got = ka_wire_next(buf, len, &pos, &fld)) > 0) {
        /* Field number 0 does not exist. protobuf-c refuses it only when the
         * key's first byte shows it: an overlong key of 0 would be kept as an
         * unknown field and packed again as 0x00, which it cannot read. */
        if (fld.tag == 0)
            return -1;
        if (!fld.body || fld.tag > UINT32_MAX)
            continue;
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field(desc, (unsigned)fld.tag);
        if (!f)
            continue; /* unknown field: protobuf-c keeps it aside, nobody reads it as text */
        size_t fi = (size_t)(f - desc->fields);
        long index = -1;
        if (f->label == PROTOBUF_C_LABEL_REPEATED && fi < WIRE_MAX_COUNTED_FIELDS)
            index = (long)counts[fi]++;
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            if (memchr(fld.body, '\0', fld.body_len)) {
                path_push(path, pathlen, at, f, index);
                return 1;
            }
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            size_t end = path_push(path, pathlen, at, f, index);
            int rc = find_nul(f->descriptor, fld.body, fld.body_len, path, pathlen, end,
                              depth + 1);
            if (rc != 0)
                return rc;
            if (pathlen)
                path[at] = '\0';
        }
    }
    return got; /* 0 at the end, -1 for bytes that are not a field */
}

int ka_wire_find_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
                     char *field, size_t fieldlen)
{
    if (fieldlen)
        field[0] = '\0';
    return find_nul(desc, buf, len, field, fieldlen, 0, 0);
}

ka_err_t ka_check_wire_strings(ka_reject_t *rej, const ProtobufCMessageDescriptor *desc,
                               const void *payload, size_t len)
{
    char field[160];
    int rc = ka_wire_find_nul(desc, payload, len, field, sizeof field);
    if (rc == 0)
        return KA_OK;
    if (rc < 0)
        return ka_reject(rej, KA_REASON_DECODE, "not a well-formed %s (%zu bytes)", desc->name,
                         len);
    return ka_reject(rej, KA_REASON_NUL, "%s holds a NUL byte", field);
}

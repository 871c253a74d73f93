#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_json_arena.h"
#include "ka_json_fast.h"
#include "ka_json_pb.h"
#include "ka_json_pb_internal.h"
#include "ka_rfc3339.h"

/* ----------------------------------------------------------------------------
 * Paths and rejections
 * ------------------------------------------------------------------------- */

/* One step from the root to the value being converted, on the C stack: the
 * path costs nothing until a rejection renders it. */
typedef struct path_frame {
    const struct path_frame *up; /* NULL at the root */
    const char *key;             /* member name; NULL for a list index */
    size_t keylen;
    size_t index;
} path_frame_t;

typedef struct conv {
    int ignore_unknown;
    size_t max_list;
    unsigned max_depth;
    ka_json_reject_t *err;
} conv_t;

typedef struct outbuf {
    char *p;
    size_t cap, len; /* len < cap; output past cap - 1 is dropped */
} outbuf_t;

static void out_bytes(outbuf_t *o, const char *s, size_t n)
{
    size_t room = o->cap - 1 - o->len;
    if (n > room)
        n = room;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static int is_ident(const char *k, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k[i];
        int alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
        if (!alpha && !(i > 0 && ch >= '0' && ch <= '9'))
            return 0;
    }
    return 1;
}

/* $.a.b[2]["odd key"]: names as written, other keys quoted with '"', '\\'
 * and control bytes escaped. */
static void render_path(const path_frame_t *f, outbuf_t *o)
{
    char num[32];

    if (!f)
        return;
    render_path(f->up, o);
    if (!f->up) {
        out_bytes(o, f->key, f->keylen);
    } else if (!f->key) {
        int n = snprintf(num, sizeof num, "[%zu]", f->index);
        out_bytes(o, num, (size_t)n);
    } else if (is_ident(f->key, f->keylen)) {
        out_bytes(o, ".", 1);
        out_bytes(o, f->key, f->keylen);
    } else {
        out_bytes(o, "[\"", 2);
        for (size_t i = 0; i < f->keylen; i++) {
            unsigned char ch = (unsigned char)f->key[i];
            if (ch == '"' || ch == '\\') {
                char esc[2] = {'\\', (char)ch};
                out_bytes(o, esc, 2);
            } else if (ch < 0x20 || ch == 0x7f) {
                int n = snprintf(num, sizeof num, "\\u%04x", ch);
                out_bytes(o, num, (size_t)n);
            } else {
                out_bytes(o, (const char *)&ch, 1);
            }
        }
        out_bytes(o, "\"]", 2);
    }
}

static ka_err_t fail(conv_t *c, const path_frame_t *at, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sets the path and the rejection "<path>: <text>"; returns KA_ERR_INVALID. */
static ka_err_t fail(conv_t *c, const path_frame_t *at, const char *reason, const char *fmt, ...)
{
    char text[224];
    outbuf_t o = {c->err->path, sizeof c->err->path, 0};
    va_list ap;

    c->err->path[0] = '\0';
    render_path(at, &o);
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return ka_reject(&c->err->rej, reason, "%s: %s", c->err->path, text);
}

/* At most ~40 bytes of a string for a detail text, cut at a character
 * boundary, control bytes and quotes replaced, so the detail stays valid
 * UTF-8 for the dead-letter header. */
static void snippet(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0, i = 0, limit = cap - 4 < 40 ? cap - 4 : 40;

    while (i < len && n < limit) {
        unsigned char ch = (unsigned char)s[i];
        size_t clen = ch < 0x80 ? 1 : ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
        if (i + clen > len || n + clen > limit)
            break;
        if (ch < 0x20 || ch == '"' || ch == '\\' || ch == 0x7f)
            out[n++] = '?';
        else
            for (size_t k = 0; k < clen; k++)
                out[n++] = s[i + k];
        i += clen;
    }
    if (i < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* The value as a short text for a detail. */
static void value_text(const json_t *v, char *out, size_t cap)
{
    char s[64];

    switch (json_typeof(v)) {
    case JSON_OBJECT: snprintf(out, cap, "an object"); break;
    case JSON_ARRAY: snprintf(out, cap, "an array"); break;
    case JSON_STRING:
        snippet(json_string_value(v), json_string_length(v), s, sizeof s);
        snprintf(out, cap, "\"%s\"", s);
        break;
    case JSON_INTEGER: snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: snprintf(out, cap, "%.17g", json_real_value(v)); break;
    case JSON_TRUE: snprintf(out, cap, "true"); break;
    case JSON_FALSE: snprintf(out, cap, "false"); break;
    default: snprintf(out, cap, "null"); break;
    }
}

static const char *type_name(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32: return "int32";
    case PROTOBUF_C_TYPE_SINT32: return "sint32";
    case PROTOBUF_C_TYPE_SFIXED32: return "sfixed32";
    case PROTOBUF_C_TYPE_INT64: return "int64";
    case PROTOBUF_C_TYPE_SINT64: return "sint64";
    case PROTOBUF_C_TYPE_SFIXED64: return "sfixed64";
    case PROTOBUF_C_TYPE_UINT32: return "uint32";
    case PROTOBUF_C_TYPE_FIXED32: return "fixed32";
    case PROTOBUF_C_TYPE_UINT64: return "uint64";
    case PROTOBUF_C_TYPE_FIXED64: return "fixed64";
    case PROTOBUF_C_TYPE_FLOAT: return "float";
    case PROTOBUF_C_TYPE_DOUBLE: return "double";
    case PROTOBUF_C_TYPE_BOOL: return "bool";
    case PROTOBUF_C_TYPE_ENUM: return "enum";
    case PROTOBUF_C_TYPE_STRING: return "string";
    case PROTOBUF_C_TYPE_BYTES: return "bytes";
    case PROTOBUF_C_TYPE_MESSAGE: return "message";
    }
    return "?";
}

static ka_err_t fail_type(conv_t *c, const path_frame_t *at, const char *expected,
                          const json_t *v)
{
    char got[80];
    value_text(v, got, sizeof got);
    return fail(c, at, KA_REASON_WRONG_TYPE, "expected %s, got %s", expected, got);
}

/* ----------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------- */

size_t ka_json_name(const char *field_name, char *out, size_t outlen)
{
    size_t n = 0;
    int up = 0;

    for (const char *p = field_name; *p; p++) {
        if (*p == '_') {
            up = 1;
            continue;
        }
        char ch = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        up = 0;
        if (n + 1 < outlen)
            out[n] = ch;
        n++;
    }
    if (outlen)
        out[n < outlen ? n : outlen - 1] = '\0';
    return n;
}

/* key[0..keylen) is name's JSON name (protoc's ToJsonName) or, with
 * first_up, name in UpperCamelCase (protoc's map entry names). */
static int camel_eq(const char *name, const char *key, size_t keylen, int first_up)
{
    size_t i = 0;
    int up = first_up;

    for (const char *p = name; *p; p++) {
        if (*p == '_') {
            up = 1;
            continue;
        }
        char ch = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        up = 0;
        if (i >= keylen || key[i] != ch)
            return 0;
        i++;
    }
    return i == keylen;
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d,
                                                  const char *key, size_t keylen)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const char *name = d->fields[i].name;
        /* both names start with the same character unless the proto name
         * starts with '_' */
        if (keylen == 0 || (name[0] != key[0] && name[0] != '_'))
            continue;
        if ((strncmp(name, key, keylen) == 0 && name[keylen] == '\0') ||
            camel_eq(name, key, keylen, 0))
            return &d->fields[i];
    }
    return NULL;
}

/* A map<K, V> field: protoc makes it a repeated message <Parent>.<Name>Entry
 * of key = 1 and value = 2; protobuf-c keeps no flag for it. */
static int is_map(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return 0;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
        strcmp(e->fields[0].name, "key") != 0 || strcmp(e->fields[1].name, "value") != 0)
        return 0;
    size_t pl = strlen(parent->name);
    if (strncmp(e->name, parent->name, pl) != 0 || e->name[pl] != '.')
        return 0;
    const char *entry = e->name + pl + 1;
    size_t el = strlen(entry);
    return el > 5 && strcmp(entry + el - 5, "Entry") == 0 &&
           camel_eq(f->name, entry, el - 5, 1);
}

/* ----------------------------------------------------------------------------
 * Scalars
 * ------------------------------------------------------------------------- */

typedef struct intval {
    int neg;
    uint64_t mag;
} intval_t;

enum { NUM_OK = KA_JPB_NUM_OK, NUM_TYPE = KA_JPB_NUM_TYPE, NUM_RANGE = KA_JPB_NUM_RANGE };

/* A decimal integer, optionally negative, nothing else. */
static int int_from_text(const char *s, size_t n, intval_t *v)
{
    size_t i = 0;
    int over = 0;

    v->neg = 0;
    v->mag = 0;
    if (i < n && s[i] == '-') {
        v->neg = 1;
        i++;
    }
    if (i == n)
        return NUM_TYPE;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return NUM_TYPE;
        unsigned d = (unsigned)(s[i] - '0');
        if (v->mag > (UINT64_MAX - d) / 10)
            over = 1;
        else
            v->mag = v->mag * 10 + d;
    }
    return over ? NUM_RANGE : NUM_OK;
}

/* A JSON integer, an integral real (1.0, 1e3) or a decimal string. */
static int int_from_json(const json_t *j, intval_t *v)
{
    if (json_is_integer(j)) {
        json_int_t x = json_integer_value(j);
        v->neg = x < 0;
        v->mag = v->neg ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        return NUM_OK;
    }
    if (json_is_real(j)) {
        double d = json_real_value(j);
        if (!(d > -18446744073709551616.0 && d < 18446744073709551616.0))
            return NUM_RANGE;
        v->neg = d < 0;
        double a = v->neg ? -d : d;
        v->mag = (uint64_t)a;
        return (double)v->mag == a ? NUM_OK : NUM_TYPE;
    }
    if (json_is_string(j))
        return int_from_text(json_string_value(j), json_string_length(j), v);
    return NUM_TYPE;
}

static int fits_signed(const intval_t *v, int64_t min, int64_t max)
{
    return v->neg ? v->mag <= (uint64_t)(-(min + 1)) + 1 : v->mag <= (uint64_t)max;
}

static int64_t to_signed(const intval_t *v)
{
    return v->neg && v->mag ? -(int64_t)(v->mag - 1) - 1 : (int64_t)v->mag;
}

/* Writes an integer of type t into slot; NUM_* for what went wrong. */
static int put_int(ProtobufCType t, const intval_t *v, void *slot)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        if (!fits_signed(v, INT32_MIN, INT32_MAX))
            return NUM_RANGE;
        *(int32_t *)slot = (int32_t)to_signed(v);
        return NUM_OK;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (!fits_signed(v, INT64_MIN, INT64_MAX))
            return NUM_RANGE;
        *(int64_t *)slot = to_signed(v);
        return NUM_OK;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((v->neg && v->mag) || v->mag > UINT32_MAX)
            return NUM_RANGE;
        *(uint32_t *)slot = (uint32_t)v->mag;
        return NUM_OK;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (v->neg && v->mag)
            return NUM_RANGE;
        *(uint64_t *)slot = v->mag;
        return NUM_OK;
    default:
        return NUM_TYPE;
    }
}

static int double_from_text(const char *s, size_t n, double *d);

/* A JSON number, "NaN", "Infinity", "-Infinity" or a numeric string. */
static int double_from_json(const json_t *j, double *d)
{
    if (json_is_integer(j)) {
        *d = (double)json_integer_value(j);
        return NUM_OK;
    }
    if (json_is_real(j)) {
        *d = json_real_value(j);
        return NUM_OK;
    }
    if (!json_is_string(j))
        return NUM_TYPE;
    return double_from_text(json_string_value(j), json_string_length(j), d);
}

/* A float or double field's string form: "NaN", "Infinity", "-Infinity"
 * or a number; s is terminated at s[n]. */
static int double_from_text(const char *s, size_t n, double *d)
{
    if (strcmp(s, "NaN") == 0 && n == 3) {
        *d = NAN;
        return NUM_OK;
    }
    if (strcmp(s, "Infinity") == 0 && n == 8) {
        *d = INFINITY;
        return NUM_OK;
    }
    if (strcmp(s, "-Infinity") == 0 && n == 9) {
        *d = -INFINITY;
        return NUM_OK;
    }
    /* strtod also reads hex, "inf" and leading blanks: only JSON's characters */
    if (n == 0 || n > 64 || strspn(s, "0123456789+-.eE") != n)
        return NUM_TYPE;
    char *end;
    errno = 0;
    *d = strtod(s, &end);
    if (end != s + n)
        return NUM_TYPE;
    if (errno == ERANGE && (*d > 1 || *d < -1))
        return NUM_RANGE;
    return NUM_OK;
}

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

/* Standard or URL-safe base64, padded or not. Returns 0 with *out malloc'd
 * (NULL for no bytes), or -1. */
static int base64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    size_t pad = 0;

    while (n > 0 && s[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if ((pad && (n + pad) % 4 != 0) || n % 4 == 1)
        return -1;
    *out = NULL;
    *outlen = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (*outlen == 0)
        return n == 0 ? 0 : -1;
    uint8_t *p = ka_malloc(*outlen);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) {
            free(p);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            p[o++] = (uint8_t)(acc >> bits);
        }
    }
    *out = p;
    return 0;
}

/* ----------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------- */

static ka_err_t convert_message(conv_t *c, const ProtobufCMessageDescriptor *d, const json_t *obj,
                                ProtobufCMessage *m, const path_frame_t *at, unsigned depth);

/* Bytes per element of a repeated field, as protobuf-c lays them out. */
static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    default: return 4;
    }
}

/* Allocated as protobuf-c's unpacker does with its default allocator, so
 * protobuf_c_message_free_unpacked(m, NULL) frees it. */
static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = ka_malloc(d->sizeof_message);
    protobuf_c_message_init(d, m);
    return m;
}

/* proto2 `optional` scalars and bytes carry a has_ flag. */
static void mark_present(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
        f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE &&
        !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
}

static ka_err_t convert_timestamp(conv_t *c, const json_t *v, ProtobufCMessage *ts,
                                  const path_frame_t *at)
{
    const ProtobufCMessageDescriptor *d = ts->descriptor;
    const ProtobufCFieldDescriptor *fs = protobuf_c_message_descriptor_get_field_by_name(d, "seconds");
    const ProtobufCFieldDescriptor *fn = protobuf_c_message_descriptor_get_field_by_name(d, "nanos");
    int64_t seconds;
    int32_t nanos;

    if (!json_is_string(v))
        return fail_type(c, at, "an RFC 3339 time string", v);
    if (ka_rfc3339_parse(json_string_value(v), json_string_length(v), &seconds, &nanos) != 0) {
        char got[80];
        value_text(v, got, sizeof got);
        return fail(c, at, KA_REASON_WRONG_TYPE,
                    "expected an RFC 3339 time (years 0001-9999), got %s", got);
    }
    if (fs && fs->type == PROTOBUF_C_TYPE_INT64) {
        *(int64_t *)((char *)ts + fs->offset) = seconds;
        mark_present(ts, fs);
    }
    if (fn && fn->type == PROTOBUF_C_TYPE_INT32) {
        *(int32_t *)((char *)ts + fn->offset) = nanos;
        mark_present(ts, fn);
    }
    return KA_OK;
}

/* One value of field f (an element, for a repeated field) into slot. */
static ka_err_t convert_single(conv_t *c, const ProtobufCFieldDescriptor *f, const json_t *v,
                               void *slot, const path_frame_t *at, unsigned depth)
{
    char got[80];
    intval_t iv;
    double dv;
    int rc;

    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        rc = int_from_json(v, &iv);
        if (rc == NUM_OK)
            rc = put_int(f->type, &iv, slot);
        if (rc == NUM_OK)
            return KA_OK;
        value_text(v, got, sizeof got);
        if (rc == NUM_RANGE)
            return fail(c, at, KA_REASON_OUT_OF_RANGE, "%s is out of range for %s", got,
                        type_name(f->type));
        return fail(c, at, KA_REASON_WRONG_TYPE, "expected an integer (%s), got %s",
                    type_name(f->type), got);

    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        rc = double_from_json(v, &dv);
        if (rc == NUM_OK && f->type == PROTOBUF_C_TYPE_FLOAT && isfinite(dv) &&
            (dv > FLT_MAX || dv < -FLT_MAX))
            rc = NUM_RANGE;
        if (rc != NUM_OK) {
            value_text(v, got, sizeof got);
            if (rc == NUM_RANGE)
                return fail(c, at, KA_REASON_OUT_OF_RANGE, "%s is out of range for %s", got,
                            type_name(f->type));
            return fail(c, at, KA_REASON_WRONG_TYPE, "expected a number (%s), got %s",
                        type_name(f->type), got);
        }
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            *(float *)slot = (float)dv;
        else
            *(double *)slot = dv;
        return KA_OK;

    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return fail_type(c, at, "true or false", v);
        *(protobuf_c_boolean *)slot = json_is_true(v);
        return KA_OK;

    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            const ProtobufCEnumValue *ev = strlen(s) == json_string_length(v)
                                               ? protobuf_c_enum_descriptor_get_value_by_name(ed, s)
                                               : NULL;
            if (!ev) {
                value_text(v, got, sizeof got);
                return fail(c, at, KA_REASON_ENUM, "%s is not a value of %s", got, ed->name);
            }
            *(int32_t *)slot = ev->value;
            return KA_OK;
        }
        if (!json_is_number(v))
            return fail_type(c, at, "an enum value name or number", v);
        rc = int_from_json(v, &iv);
        if (rc == NUM_OK)
            rc = put_int(PROTOBUF_C_TYPE_ENUM, &iv, slot);
        if (rc == NUM_OK)
            return KA_OK;
        value_text(v, got, sizeof got);
        return fail(c, at, rc == NUM_RANGE ? KA_REASON_OUT_OF_RANGE : KA_REASON_WRONG_TYPE,
                    "%s is not an enum number (int32)", got);
    }

    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v))
            return fail_type(c, at, "a string", v);
        size_t n = json_string_length(v);
        const char *s = json_string_value(v);
        /* a protobuf-c string is a C string: a NUL would end it unseen */
        if (memchr(s, '\0', n))
            return fail(c, at, KA_REASON_NUL, "the string holds a NUL character");
        *(char **)slot = ka_strndup(s, n);
        return KA_OK;
    }

    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *bd = slot;
        uint8_t *data;
        size_t n;
        if (!json_is_string(v))
            return fail_type(c, at, "a base64 string", v);
        if (base64_decode(json_string_value(v), json_string_length(v), &data, &n) != 0) {
            value_text(v, got, sizeof got);
            return fail(c, at, KA_REASON_WRONG_TYPE, "expected base64 bytes, got %s", got);
        }
        bd->data = data;
        bd->len = n;
        return KA_OK;
    }

    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *md = f->descriptor;
        ProtobufCMessage **sp = slot;
        int ts = strcmp(md->name, "google.protobuf.Timestamp") == 0;
        if (!ts && !json_is_object(v)) {
            char want[160];
            snprintf(want, sizeof want, "an object (%s)", md->name);
            return fail_type(c, at, want, v);
        }
        if (depth + 1 > c->max_depth)
            return fail(c, at, KA_REASON_DECODE, "messages nested deeper than %u", c->max_depth);
        /* in the slot before it is filled, so a rejection frees it */
        *sp = new_message(md);
        if (ts)
            return convert_timestamp(c, v, *sp, at);
        return convert_message(c, md, v, *sp, at, depth + 1);
    }
    }
    return fail(c, at, KA_REASON_WRONG_TYPE, "field type %d is not supported", (int)f->type);
}

/* A map key, in its string form, into slot. */
static ka_err_t convert_key(conv_t *c, const ProtobufCFieldDescriptor *kf, const char *key,
                            size_t keylen, void *slot, const path_frame_t *at)
{
    char got[64];
    intval_t iv;
    int rc;

    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING:
        *(char **)slot = ka_strndup(key, keylen); /* jansson refuses NUL in keys */
        return KA_OK;
    case PROTOBUF_C_TYPE_BOOL:
        if (keylen == 4 && memcmp(key, "true", 4) == 0)
            *(protobuf_c_boolean *)slot = 1;
        else if (keylen == 5 && memcmp(key, "false", 5) == 0)
            *(protobuf_c_boolean *)slot = 0;
        else
            return fail(c, at, KA_REASON_WRONG_TYPE, "a bool map key is \"true\" or \"false\"");
        return KA_OK;
    default:
        rc = int_from_text(key, keylen, &iv);
        if (rc == NUM_OK)
            rc = put_int(kf->type, &iv, slot);
        if (rc == NUM_OK)
            return KA_OK;
        snippet(key, keylen, got, sizeof got);
        if (rc == NUM_RANGE)
            return fail(c, at, KA_REASON_OUT_OF_RANGE, "map key \"%s\" is out of range for %s",
                        got, type_name(kf->type));
        return fail(c, at, KA_REASON_WRONG_TYPE, "map key \"%s\" is not an integer (%s)", got,
                    type_name(kf->type));
    }
}

static ka_err_t convert_map(conv_t *c, const ProtobufCFieldDescriptor *f, const json_t *v,
                            ProtobufCMessage *m, const path_frame_t *at, unsigned depth)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    const char *key;
    size_t keylen, i = 0;
    json_t *val;

    if (!json_is_object(v))
        return fail_type(c, at, "an object (a map)", v);
    size_t n = json_object_size(v);
    if (n > c->max_list)
        return fail(c, at, KA_REASON_LIST, "the map has %zu entries (max %zu)", n, c->max_list);
    if (n == 0)
        return KA_OK;
    if (depth + 1 > c->max_depth)
        return fail(c, at, KA_REASON_DECODE, "messages nested deeper than %u", c->max_depth);
    ProtobufCMessage **arr = ka_calloc(n, sizeof *arr);
    *(ProtobufCMessage ***)((char *)m + f->offset) = arr;
    *(size_t *)((char *)m + f->quantifier_offset) = n;
    json_object_keylen_foreach((json_t *)v, key, keylen, val) {
        path_frame_t fr = {at, key, keylen, 0};
        if (i == n)
            break;
        if (json_is_null(val))
            return fail(c, &fr, KA_REASON_WRONG_TYPE, "a map value cannot be null");
        ProtobufCMessage *e = arr[i++] = new_message(ed);
        if (convert_key(c, kf, key, keylen, (char *)e + kf->offset, &fr) != KA_OK)
            return KA_ERR_INVALID;
        mark_present(e, kf);
        if (convert_single(c, vf, val, (char *)e + vf->offset, &fr, depth + 1) != KA_OK)
            return KA_ERR_INVALID;
        mark_present(e, vf);
    }
    return KA_OK;
}

static ka_err_t convert_repeated(conv_t *c, const ProtobufCFieldDescriptor *f, const json_t *v,
                                 ProtobufCMessage *m, const path_frame_t *at, unsigned depth)
{
    if (!json_is_array(v))
        return fail_type(c, at, "an array", v);
    size_t n = json_array_size(v);
    if (n > c->max_list)
        return fail(c, at, KA_REASON_LIST, "the list has %zu entries (max %zu)", n, c->max_list);
    if (n == 0)
        return KA_OK;
    size_t es = elem_size(f->type);
    /* zeroed and counted at once: free_unpacked of a half-filled list frees
     * NULL strings and messages, which is harmless */
    char *arr = ka_calloc(n, es);
    *(void **)((char *)m + f->offset) = arr;
    *(size_t *)((char *)m + f->quantifier_offset) = n;
    for (size_t i = 0; i < n; i++) {
        path_frame_t fr = {at, NULL, 0, i};
        const json_t *e = json_array_get(v, i);
        if (json_is_null(e))
            return fail(c, &fr, KA_REASON_WRONG_TYPE, "a list element cannot be null");
        if (convert_single(c, f, e, arr + i * es, &fr, depth) != KA_OK)
            return KA_ERR_INVALID;
    }
    return KA_OK;
}

static ka_err_t convert_field(conv_t *c, const ProtobufCMessageDescriptor *d,
                              const ProtobufCFieldDescriptor *f, const json_t *v,
                              ProtobufCMessage *m, const path_frame_t *at, unsigned depth)
{
    if (json_is_null(v))
        return KA_OK; /* the default; a oneof member stays unset */
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return is_map(d, f) ? convert_map(c, f, v, m, at, depth)
                            : convert_repeated(c, f, v, m, at, depth);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *which = (uint32_t *)((char *)m + f->quantifier_offset);
        if (*which != 0) {
            const ProtobufCFieldDescriptor *other = protobuf_c_message_descriptor_get_field(d, *which);
            return fail(c, at, KA_REASON_DUPLICATE_FIELD,
                        "%s and %s are members of one oneof: give one", other ? other->name : "?",
                        f->name);
        }
        /* set first: free_unpacked frees a oneof member only when selected */
        *which = f->id;
    }
    if (convert_single(c, f, v, (char *)m + f->offset, at, depth) != KA_OK)
        return KA_ERR_INVALID;
    mark_present(m, f);
    return KA_OK;
}

#define SEEN_SMALL 64

static ka_err_t convert_message(conv_t *c, const ProtobufCMessageDescriptor *d, const json_t *obj,
                                ProtobufCMessage *m, const path_frame_t *at, unsigned depth)
{
    unsigned char seen_small[SEEN_SMALL];
    unsigned char *seen = d->n_fields <= SEEN_SMALL ? seen_small : ka_calloc(d->n_fields, 1);
    ka_err_t rc = KA_OK;
    const char *key;
    size_t keylen;
    json_t *v;

    memset(seen, 0, d->n_fields <= SEEN_SMALL ? sizeof seen_small : d->n_fields);
    json_object_keylen_foreach((json_t *)obj, key, keylen, v) {
        path_frame_t fr = {at, key, keylen, 0};
        const ProtobufCFieldDescriptor *f = find_field(d, key, keylen);
        if (!f) {
            if (c->ignore_unknown)
                continue;
            char name[64];
            snippet(key, keylen, name, sizeof name);
            rc = fail(c, &fr, KA_REASON_UNKNOWN_FIELD, "%s has no field \"%s\"", d->name, name);
            break;
        }
        size_t fi = (size_t)(f - d->fields);
        if (seen[fi]) {
            rc = fail(c, &fr, KA_REASON_DUPLICATE_FIELD,
                      "field %s is given twice (as its proto and its JSON name)", f->name);
            break;
        }
        seen[fi] = json_is_null(v) ? 1 : 2;
        if ((rc = convert_field(c, d, f, v, m, &fr, depth)) != KA_OK)
            break;
    }
    for (unsigned i = 0; rc == KA_OK && i < d->n_fields; i++)
        if (d->fields[i].label == PROTOBUF_C_LABEL_REQUIRED && seen[i] != 2)
            rc = fail(c, at, KA_REASON_MISSING, "required field %s is missing", d->fields[i].name);
    if (seen != seen_small)
        free(seen);
    return rc;
}

/* ----------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------- */

json_t *ka_json_load(const void *buf, size_t len, const ka_json_opts_t *opts,
                     ka_json_reject_t *err)
{
    size_t max = opts && opts->max_bytes ? opts->max_bytes : KA_JSON_MAX_BYTES;
    json_error_t je;
    const char *reason;

    err->path[0] = '\0';
    if (len > max) {
        ka_reject(&err->rej, KA_REASON_TOO_LARGE, "the JSON document has %zu bytes (max %zu)",
                  len, max);
        return NULL;
    }
    if (!buf || len == 0) {
        ka_reject(&err->rej, KA_REASON_DECODE, "not JSON (empty payload)");
        return NULL;
    }
    /* NUL is let in so it is refused per field, with its path, as on the
     * wire; a key given twice is refused, not silently overwritten */
    json_t *root =
        json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (root)
        return root;
    switch (json_error_code(&je)) {
    case json_error_invalid_utf8: reason = KA_REASON_UTF8; break;
    case json_error_null_byte_in_key:
    case json_error_null_character: reason = KA_REASON_NUL; break;
    case json_error_duplicate_key: reason = KA_REASON_DUPLICATE_FIELD; break;
    case json_error_numeric_overflow: reason = KA_REASON_OUT_OF_RANGE; break;
    default: reason = KA_REASON_DECODE; break;
    }
    ka_reject(&err->rej, reason, "not JSON: %.160s (line %d, column %d)", je.text, je.line,
              je.column);
    return NULL;
}

ka_err_t ka_json_pb_from_value(const ProtobufCMessageDescriptor *desc, const json_t *value,
                               const char *root, const ka_json_opts_t *opts,
                               ProtobufCMessage **out, ka_json_reject_t *err)
{
    conv_t c = {
        .ignore_unknown = opts ? opts->ignore_unknown_fields : 0,
        .max_list = opts && opts->max_list ? opts->max_list : KA_MAX_LIST_LEN,
        .max_depth = opts && opts->max_depth ? opts->max_depth : KA_JSON_MAX_DEPTH,
        .err = err,
    };
    path_frame_t top = {NULL, root ? root : "$", strlen(root ? root : "$"), 0};

    *out = NULL;
    err->path[0] = '\0';
    if (!value || !json_is_object(value)) {
        char want[160];
        snprintf(want, sizeof want, "an object (%s)", desc->name);
        return value ? fail_type(&c, &top, want, value)
                     : fail(&c, &top, KA_REASON_MISSING, "expected an object (%s)", desc->name);
    }
    ProtobufCMessage *m = new_message(desc);
    if (convert_message(&c, desc, value, m, &top, 1) != KA_OK) {
        protobuf_c_message_free_unpacked(m, NULL);
        return KA_ERR_INVALID;
    }
    *out = m;
    return KA_OK;
}

ka_err_t ka_json_pb_parse(const ProtobufCMessageDescriptor *desc, const void *buf, size_t len,
                          const ka_json_opts_t *opts, ProtobufCMessage **out,
                          ka_json_reject_t *err)
{
    *out = NULL;
    ka_json_arena_begin(); /* the document lives within this call */
    /* cJSON's accepting fast path first; jansson, the reference, decides
     * every document it declines (ka_json_fast.h) */
    if (ka_json_fast_parse(desc, buf, len, opts, out)) {
        ka_json_arena_end();
        err->path[0] = '\0';
        return KA_OK;
    }
    json_t *root = ka_json_load(buf, len, opts, err);
    ka_err_t rc = root ? ka_json_pb_from_value(desc, root, "$", opts, out, err) : KA_ERR_INVALID;
    json_decref(root);
    ka_json_arena_end();
    return rc;
}

/* ----------------------------------------------------------------------------
 * The mapping's rules for the fast path (ka_json_fast.c), which converts
 * cJSON values with them; see ka_json_pb_internal.h
 * ------------------------------------------------------------------------- */

const ProtobufCFieldDescriptor *ka_jpb_find_field(const ProtobufCMessageDescriptor *d,
                                                  const char *key, size_t keylen)
{
    return find_field(d, key, keylen);
}

int ka_jpb_is_map(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f)
{
    return is_map(parent, f);
}

int ka_jpb_int_from_text(const char *s, size_t n, int *neg, uint64_t *mag)
{
    intval_t v;
    int rc = int_from_text(s, n, &v);
    *neg = v.neg;
    *mag = v.mag;
    return rc;
}

int ka_jpb_put_int(ProtobufCType t, int neg, uint64_t mag, void *slot)
{
    intval_t v = {neg, mag};
    return put_int(t, &v, slot);
}

int ka_jpb_double_from_text(const char *s, size_t n, double *d)
{
    return double_from_text(s, n, d);
}

int ka_jpb_base64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    return base64_decode(s, n, out, outlen);
}

size_t ka_jpb_elem_size(ProtobufCType t)
{
    return elem_size(t);
}

ProtobufCMessage *ka_jpb_new_message(const ProtobufCMessageDescriptor *d)
{
    return new_message(d);
}

void ka_jpb_mark_present(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    mark_present(m, f);
}

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ka_err.h"
#include "ka_json_fast.h"
#include "ka_json_pb_internal.h"

/* See ka_json_fast.h for what is declined and why. Every function here
 * returns 1 (go on) or 0 (decline); a decline is never a verdict. */

static int enabled = 1;
static _Thread_local ka_json_fast_stats_t stats;

void ka_json_fast_set_enabled(int on)
{
    enabled = on != 0;
}

void ka_json_fast_stats(ka_json_fast_stats_t *out)
{
    *out = stats;
}

void ka_json_fast_count(int accepted)
{
    if (accepted)
        stats.accepted++;
    else
        stats.declined++;
}

/* ----------------------------------------------------------------------------
 * The admission pass over the raw bytes: what jansson refuses and cJSON
 * would let through, or would read differently. It reads no value.
 * ------------------------------------------------------------------------- */

/* Length of the UTF-8 sequence at p (jansson's utf8_check_first/full), 0
 * when invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t v;

    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) || (len == 3 && v < 0x800) ||
        (len == 4 && v < 0x10000))
        return 0;
    return len;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* A character cJSON's number reader takes into the token. */
static int number_char(unsigned char c)
{
    return is_digit(c) || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E';
}

/* Length of the JSON number at p, 0 to decline: outside the grammar
 * -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, more than 15 integer
 * digits or 2 exponent digits, or followed by a character cJSON would read
 * on with. */
static size_t number_len(const unsigned char *p, size_t n)
{
    size_t i = 0, start;

    if (i < n && p[i] == '-')
        i++;
    start = i;
    if (i < n && p[i] == '0')
        i++;
    else
        while (i < n && is_digit(p[i]))
            i++;
    if (i == start || i - start > 15)
        return 0;
    if (i < n && p[i] == '.') {
        start = ++i;
        while (i < n && is_digit(p[i]))
            i++;
        if (i == start)
            return 0;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        start = i;
        while (i < n && is_digit(p[i]))
            i++;
        if (i == start || i - start > 2)
            return 0;
    }
    if (i < n && number_char(p[i]))
        return 0;
    return i;
}

static int hex_value(unsigned char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Index past the string whose opening quote is at p[i - 1], 0 to decline. */
static size_t string_end(const unsigned char *p, size_t n, size_t i)
{
    while (i < n) {
        unsigned char c = p[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (i + 1 >= n)
                return 0;
            if (p[i + 1] == 'u') {
                unsigned v = 0;
                if (i + 6 > n)
                    return 0;
                for (size_t k = 2; k < 6; k++) {
                    int h = hex_value(p[i + k]);
                    if (h < 0)
                        return 0;
                    v = v << 4 | (unsigned)h;
                }
                if (v == 0)
                    return 0;
                i += 6;
            } else {
                i += 2;
            }
        } else if (c < 0x20) {
            return 0;
        } else if (c < 0x80) {
            i++;
        } else {
            size_t l = utf8_seq(p + i, n - i);
            if (l == 0)
                return 0;
            i += l;
        }
    }
    return 0;
}

static int admissible(const unsigned char *p, size_t n)
{
    size_t i = 0;

    if (n >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
        return 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c == '"') {
            if ((i = string_end(p, n, i + 1)) == 0)
                return 0;
        } else if (c == '-' || is_digit(c)) {
            size_t l = number_len(p + i, n - i);
            if (l == 0)
                return 0;
            i += l;
        } else if (c >= 0x80 || (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r')) {
            return 0;
        } else {
            i++;
        }
    }
    return 1;
}

cJSON *ka_json_fast_load(const void *buf, size_t len, const ka_json_opts_t *opts)
{
    size_t max = opts && opts->max_bytes ? opts->max_bytes : KA_JSON_MAX_BYTES;
    const char *end = NULL;

    if (!enabled || !buf || len == 0 || len > max || !admissible(buf, len))
        return NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root)
        return NULL;
    /* the rest is whitespace, as jansson wants it (no trailing garbage) */
    for (const char *p = end, *stop = (const char *)buf + len; p < stop; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return NULL;
        }
    return root;
}

/* ----------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------- */

int ka_json_fast_key_unseen(const cJSON *obj, const cJSON *member)
{
    for (const cJSON *k = obj->child; k && k != member; k = k->next)
        if (strcmp(k->string, member->string) == 0)
            return 0;
    return 1;
}

int ka_json_fast_unique_keys(const cJSON *v)
{
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v))
        return 1;
    for (const cJSON *k = v->child; k; k = k->next) {
        if (cJSON_IsObject(v) && !ka_json_fast_key_unseen(v, k))
            return 0;
        if (!ka_json_fast_unique_keys(k))
            return 0;
    }
    return 1;
}

/* ----------------------------------------------------------------------------
 * Conversion: ka_json_pb.c's convert_* on cJSON values, declining where
 * those refuse (and on maps and Timestamps)
 * ------------------------------------------------------------------------- */

typedef struct fconv {
    int ignore_unknown;
    size_t max_list;
    unsigned max_depth;
} fconv_t;

static int f_message(const fconv_t *c, const ProtobufCMessageDescriptor *d, const cJSON *obj,
                     ProtobufCMessage *m, unsigned depth);

/* ka_json_pb.c's int_from_json on a number or a decimal string. A number is
 * a double here; jansson's integer or real gives the same sign and
 * magnitude for every number the admission pass lets in (an integer's text
 * is exact below 10^15; a real is the same strtod value). */
static int f_int(const cJSON *v, ProtobufCType t, void *slot)
{
    int neg;
    uint64_t mag;

    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (!(d > -9007199254740992.0 && d < 9007199254740992.0))
            return 0;
        neg = d < 0;
        double a = neg ? -d : d;
        mag = (uint64_t)a;
        if ((double)mag != a)
            return 0;
    } else if (cJSON_IsString(v)) {
        if (ka_jpb_int_from_text(v->valuestring, strlen(v->valuestring), &neg, &mag) !=
            KA_JPB_NUM_OK)
            return 0;
    } else {
        return 0;
    }
    return ka_jpb_put_int(t, neg, mag, slot) == KA_JPB_NUM_OK;
}

static int f_single(const fconv_t *c, const ProtobufCFieldDescriptor *f, const cJSON *v,
                    void *slot, unsigned depth)
{
    double dv;

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
        return f_int(v, f->type, slot);

    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (cJSON_IsNumber(v)) {
            dv = v->valuedouble;
            /* jansson reads the integer -0 as +0.0, the real -0.0 as -0.0 */
            if (dv == 0 && signbit(dv))
                return 0;
        } else if (cJSON_IsString(v)) {
            if (ka_jpb_double_from_text(v->valuestring, strlen(v->valuestring), &dv) !=
                KA_JPB_NUM_OK)
                return 0;
        } else {
            return 0;
        }
        if (f->type == PROTOBUF_C_TYPE_FLOAT) {
            if (isfinite(dv) && (dv > FLT_MAX || dv < -FLT_MAX))
                return 0;
            *(float *)slot = (float)dv;
        } else {
            *(double *)slot = dv;
        }
        return 1;

    case PROTOBUF_C_TYPE_BOOL:
        if (!cJSON_IsBool(v))
            return 0;
        *(protobuf_c_boolean *)slot = cJSON_IsTrue(v) ? 1 : 0;
        return 1;

    case PROTOBUF_C_TYPE_ENUM: {
        if (cJSON_IsString(v)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, v->valuestring);
            if (!ev)
                return 0;
            *(int32_t *)slot = ev->value;
            return 1;
        }
        if (!cJSON_IsNumber(v))
            return 0;
        return f_int(v, PROTOBUF_C_TYPE_ENUM, slot);
    }

    case PROTOBUF_C_TYPE_STRING:
        if (!cJSON_IsString(v))
            return 0;
        *(char **)slot = ka_strndup(v->valuestring, strlen(v->valuestring));
        return 1;

    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *bd = slot;
        uint8_t *data;
        size_t n;
        if (!cJSON_IsString(v) ||
            ka_jpb_base64_decode(v->valuestring, strlen(v->valuestring), &data, &n) != 0)
            return 0;
        bd->data = data;
        bd->len = n;
        return 1;
    }

    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *md = f->descriptor;
        ProtobufCMessage **sp = slot;
        if (!cJSON_IsObject(v) || depth + 1 > c->max_depth ||
            strcmp(md->name, "google.protobuf.Timestamp") == 0)
            return 0;
        *sp = ka_jpb_new_message(md); /* in the slot first: a decline frees it */
        return f_message(c, md, v, *sp, depth + 1);
    }
    }
    return 0;
}

static int f_repeated(const fconv_t *c, const ProtobufCFieldDescriptor *f, const cJSON *v,
                      ProtobufCMessage *m, unsigned depth)
{
    size_t n = 0;

    if (!cJSON_IsArray(v))
        return 0;
    for (const cJSON *e = v->child; e; e = e->next)
        if (++n > c->max_list)
            return 0;
    if (n == 0)
        return 1;
    size_t es = ka_jpb_elem_size(f->type);
    /* zeroed and counted at once, as ka_json_pb.c does */
    char *arr = ka_calloc(n, es);
    *(void **)((char *)m + f->offset) = arr;
    *(size_t *)((char *)m + f->quantifier_offset) = n;
    size_t i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++)
        if (cJSON_IsNull(e) || !f_single(c, f, e, arr + i * es, depth))
            return 0;
    return 1;
}

static int f_field(const fconv_t *c, const ProtobufCMessageDescriptor *d,
                   const ProtobufCFieldDescriptor *f, const cJSON *v, ProtobufCMessage *m,
                   unsigned depth)
{
    if (cJSON_IsNull(v))
        return 1;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return !ka_jpb_is_map(d, f) && f_repeated(c, f, v, m, depth);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *which = (uint32_t *)((char *)m + f->quantifier_offset);
        if (*which != 0)
            return 0;
        *which = f->id; /* first: free_unpacked frees a oneof member only when selected */
    }
    if (!f_single(c, f, v, (char *)m + f->offset, depth))
        return 0;
    ka_jpb_mark_present(m, f);
    return 1;
}

#define SEEN_SMALL 64

static int f_message(const fconv_t *c, const ProtobufCMessageDescriptor *d, const cJSON *obj,
                     ProtobufCMessage *m, unsigned depth)
{
    unsigned char seen[SEEN_SMALL];
    int ok = 1;

    if (d->n_fields > SEEN_SMALL)
        return 0; /* no input message is that wide */
    memset(seen, 0, d->n_fields);
    for (const cJSON *k = obj->child; ok && k; k = k->next) {
        const ProtobufCFieldDescriptor *f = ka_jpb_find_field(d, k->string, strlen(k->string));
        if (!f) {
            /* an ignored member: still a key given once, its value's too */
            ok = c->ignore_unknown && ka_json_fast_key_unseen(obj, k) &&
                 ka_json_fast_unique_keys(k);
            continue;
        }
        size_t fi = (size_t)(f - d->fields);
        /* the same key twice, or the proto and the JSON name of one field */
        if (seen[fi])
            return 0;
        seen[fi] = cJSON_IsNull(k) ? 1 : 2;
        ok = f_field(c, d, f, k, m, depth);
    }
    for (unsigned i = 0; ok && i < d->n_fields; i++)
        if (d->fields[i].label == PROTOBUF_C_LABEL_REQUIRED && seen[i] != 2)
            ok = 0;
    return ok;
}

int ka_json_fast_from_value(const ProtobufCMessageDescriptor *desc, const cJSON *value,
                            const ka_json_opts_t *opts, ProtobufCMessage **out)
{
    fconv_t c = {
        .ignore_unknown = opts ? opts->ignore_unknown_fields : 0,
        .max_list = opts && opts->max_list ? opts->max_list : KA_MAX_LIST_LEN,
        .max_depth = opts && opts->max_depth ? opts->max_depth : KA_JSON_MAX_DEPTH,
    };

    *out = NULL;
    if (!cJSON_IsObject(value))
        return 0;
    ProtobufCMessage *m = ka_jpb_new_message(desc);
    if (!f_message(&c, desc, value, m, 1)) {
        protobuf_c_message_free_unpacked(m, NULL);
        return 0;
    }
    *out = m;
    return 1;
}

int ka_json_fast_parse(const ProtobufCMessageDescriptor *desc, const void *buf, size_t len,
                       const ka_json_opts_t *opts, ProtobufCMessage **out)
{
    *out = NULL;
    cJSON *root = ka_json_fast_load(buf, len, opts);
    int ok = root && ka_json_fast_from_value(desc, root, opts, out);
    cJSON_Delete(root);
    ka_json_fast_count(ok);
    return ok;
}

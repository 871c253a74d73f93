#include <stdio.h>
#include <string.h>

#include "ka_framing.h"

/* ----------------------------------------------------------------------------
 * Content modes
 * ------------------------------------------------------------------------- */

static const struct {
    ka_content_mode_t mode;
    const char *name;
} mode_names[] = {
    {KA_CONTENT_PROTOBUF, "protobuf"},
    {KA_CONTENT_JSON, "json"},
    {KA_CONTENT_CLOUDEVENTS, "cloudevents"},
    {KA_CONTENT_CONFLUENT, "confluent"},
};

#define N_MODES (sizeof mode_names / sizeof mode_names[0])

const char *ka_content_mode_name(ka_content_mode_t mode)
{
    for (size_t i = 0; i < N_MODES; i++)
        if (mode_names[i].mode == mode)
            return mode_names[i].name;
    return "?";
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

int ka_content_modes_parse(const char *text, unsigned *mask, char *err, size_t errlen)
{
    unsigned m = 0;
    const char *p = text ? text : "";

    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (n > 0 && is_blank(*s)) {
            s++;
            n--;
        }
        while (n > 0 && is_blank(s[n - 1]))
            n--;
        unsigned bit = 0;
        if (n == 3 && memcmp(s, "all", 3) == 0)
            bit = KA_CONTENT_ALL;
        for (size_t i = 0; i < N_MODES && !bit; i++)
            if (strlen(mode_names[i].name) == n && memcmp(s, mode_names[i].name, n) == 0)
                bit = (unsigned)mode_names[i].mode;
        if (!bit) {
            snprintf(err, errlen,
                     "content mode \"%.*s\" is none of all, protobuf, json, cloudevents, "
                     "confluent",
                     (int)(n > 40 ? 40 : n), s);
            return -1;
        }
        m |= bit;
        if (!end)
            break;
        p = end + 1;
    }
    *mask = m;
    return 0;
}

/* A header value for a detail text: printable ASCII, at most 60 bytes. */
static void printable(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap && i < 60; i++)
        out[k++] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' ? s[i] : '?';
    if (n > 60 && k + 4 < cap) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
}

/* s[0..n) equals the lower-case word w, ignoring ASCII case. */
static int ieq(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    if (n != wl)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        if (ch != w[i])
            return 0;
    }
    return 1;
}

static int iends(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    return n > wl && ieq(s + n - wl, wl, w);
}

enum { CT_NONE, CT_PROTOBUF, CT_JSON, CT_CLOUDEVENTS, CT_BATCH, CT_OTHER };

/* The media type without parameters, classified. */
static int classify(const char *ct, size_t n)
{
    if (!ct)
        return CT_NONE;
    const char *semi = memchr(ct, ';', n);
    if (semi)
        n = (size_t)(semi - ct);
    while (n > 0 && is_blank(*ct)) {
        ct++;
        n--;
    }
    while (n > 0 && is_blank(ct[n - 1]))
        n--;
    if (n == 0)
        return CT_NONE;
    if (ieq(ct, n, "application/cloudevents+json"))
        return CT_CLOUDEVENTS;
    if (ieq(ct, n, "application/cloudevents-batch+json"))
        return CT_BATCH;
    if (ieq(ct, n, "application/json") || ieq(ct, n, "text/json") || iends(ct, n, "+json"))
        return CT_JSON;
    if (ieq(ct, n, "application/protobuf") || ieq(ct, n, "application/x-protobuf") ||
        ieq(ct, n, "application/vnd.google.protobuf") || ieq(ct, n, "application/octet-stream"))
        return CT_PROTOBUF;
    return CT_OTHER;
}

ka_err_t ka_content_detect(const char *content_type, size_t ct_len, const void *payload,
                           size_t len, unsigned accepted, ka_content_mode_t *mode,
                           ka_reject_t *rej)
{
    const uint8_t *p = payload;
    char ct[80];
    int kind = classify(content_type, ct_len);

    printable(content_type ? content_type : "", content_type ? ct_len : 0, ct, sizeof ct);
    switch (kind) {
    case CT_CLOUDEVENTS: *mode = KA_CONTENT_CLOUDEVENTS; break;
    case CT_JSON: *mode = KA_CONTENT_JSON; break;
    case CT_BATCH:
        return ka_reject(rej, KA_REASON_CONTENT_TYPE,
                         "content-type \"%s\": CloudEvents batches are not accepted, one event "
                         "per message",
                         ct);
    case CT_OTHER:
        return ka_reject(rej, KA_REASON_CONTENT_TYPE,
                         "content-type \"%s\" is neither protobuf, JSON nor a structured "
                         "CloudEvent",
                         ct);
    default:
        /* no content-type, or a protobuf one: the first byte tells */
        if (p && len > 0 && p[0] == 0)
            *mode = KA_CONTENT_CONFLUENT;
        else if (kind == CT_NONE && p && len > 0 && p[0] == '{')
            *mode = KA_CONTENT_JSON;
        else
            *mode = KA_CONTENT_PROTOBUF;
        break;
    }
    if (!(accepted & (unsigned)*mode))
        return ka_reject(rej, KA_REASON_MODE_REFUSED,
                         "the event is %s (content-type \"%s\"), which this topic does not "
                         "accept",
                         ka_content_mode_name(*mode), content_type ? ct : "(none)");
    return KA_OK;
}

/* ----------------------------------------------------------------------------
 * Confluent wire format
 * ------------------------------------------------------------------------- */

/* A zig-zag varint of at most 5 bytes (Kafka's ByteUtils.readVarint, which
 * refuses a longer one; bits past 32 are refused here too). Returns the
 * bytes read, 0 when truncated or too long. */
static size_t read_zigzag32(const uint8_t *p, size_t len, int32_t *out)
{
    uint32_t raw = 0;
    for (size_t i = 0; i < len && i < 5; i++) {
        if (i == 4 && p[i] > 0x0f)
            return 0;
        raw |= (uint32_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = (int32_t)((raw >> 1) ^ (0u - (raw & 1)));
            return i + 1;
        }
    }
    return 0;
}

ka_err_t ka_confluent_parse(const void *buf, size_t len, ka_confluent_t *out, ka_reject_t *rej)
{
    const uint8_t *p = buf;
    size_t pos = 5, k;
    int32_t count;

    memset(out, 0, sizeof *out);
    if (!p || len < 5)
        return ka_reject(rej, KA_REASON_FRAMING,
                         "Confluent framing truncated: %zu bytes, the header needs 5", len);
    if (p[0] != 0)
        return ka_reject(rej, KA_REASON_FRAMING,
                         "Confluent framing: magic byte %u, only 0 is defined", p[0]);
    out->schema_id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (pos == len)
        return ka_reject(rej, KA_REASON_FRAMING,
                         "Confluent framing truncated: no message-index array after schema id "
                         "%u",
                         out->schema_id);
    if ((k = read_zigzag32(p + pos, len - pos, &count)) == 0)
        return ka_reject(rej, KA_REASON_FRAMING,
                         "Confluent framing: the message-index count is truncated or longer "
                         "than 5 bytes");
    pos += k;
    if (count < 0 || count > KA_CONFLUENT_MAX_INDEXES)
        return ka_reject(rej, KA_REASON_FRAMING,
                         "Confluent framing: %d message indexes (0..%d expected)", (int)count,
                         KA_CONFLUENT_MAX_INDEXES);
    if (count == 0) {
        out->n_indexes = 1; /* the single byte 0 stands for [0] */
        out->indexes[0] = 0;
    } else {
        for (int32_t i = 0; i < count; i++) {
            if ((k = read_zigzag32(p + pos, len - pos, &out->indexes[i])) == 0)
                return ka_reject(rej, KA_REASON_FRAMING,
                                 "Confluent framing: message index %d of %d is truncated or "
                                 "longer than 5 bytes",
                                 (int)i + 1, (int)count);
            pos += k;
        }
        out->n_indexes = (size_t)count;
    }
    out->payload = p + pos;
    out->payload_len = len - pos;
    return KA_OK;
}

/* ----------------------------------------------------------------------------
 * Message positions in their .proto files
 * ------------------------------------------------------------------------- */

/* Every top-level message of proto/ka/v1, per file, in the order the file
 * defines them: the Confluent message index of a type is its position here.
 * tests/unit/test_framing.c reads the .proto files and fails when this
 * table and they disagree (a message added, moved or renamed). */
static const char *const alert_proto[] = {"ka.v1.AlertEvent", NULL};
static const char *const common_proto[] = {"ka.v1.EventHeader", "ka.v1.AccountRef",
                                           "ka.v1.LineItem", "ka.v1.Period", NULL};
static const char *const forecast_proto[] = {"ka.v1.ForecastFigures", "ka.v1.ForecastEvent",
                                             NULL};
static const char *const opportunity_proto[] = {
    "ka.v1.OpportunityEvent", "ka.v1.OpportunityCreated", "ka.v1.OpportunityUpdated",
    "ka.v1.StageChanged",     "ka.v1.ValueAssessed",      "ka.v1.OwnerChanged",
    "ka.v1.ForecastConfirmed", "ka.v1.ForecastAdjusted",  "ka.v1.OpportunityWon",
    "ka.v1.OpportunityLost",  "ka.v1.OpportunityReopened", NULL};
static const char *const order_proto[] = {"ka.v1.OrderEvent", NULL};
static const char *const planning_proto[] = {"ka.v1.PlanningEvent", NULL};
static const char *const visit_proto[] = {"ka.v1.VisitEvent", "ka.v1.ContactMet",
                                          "ka.v1.ManQualification", "ka.v1.FollowUpPlan", NULL};

static const char *const *const proto_files[] = {
    alert_proto, common_proto, forecast_proto, opportunity_proto,
    order_proto, planning_proto, visit_proto,
};

#define N_FILES (sizeof proto_files / sizeof proto_files[0])

/* The file table holding name and its position there; NULL when unknown. */
static const char *const *file_of(const char *name, int32_t *pos)
{
    for (size_t f = 0; f < N_FILES; f++)
        for (int32_t i = 0; proto_files[f][i]; i++)
            if (strcmp(proto_files[f][i], name) == 0) {
                *pos = i;
                return proto_files[f];
            }
    return NULL;
}

size_t ka_proto_message_index(const ProtobufCMessageDescriptor *desc, int32_t *path, size_t max)
{
    int32_t pos;
    if (!desc || max == 0 || !file_of(desc->name, &pos))
        return 0;
    path[0] = pos;
    return 1;
}

const char *ka_proto_message_at(const ProtobufCMessageDescriptor *in_file_of,
                                const int32_t *path, size_t n)
{
    int32_t pos;
    const char *const *file = in_file_of ? file_of(in_file_of->name, &pos) : NULL;
    if (!file || n != 1 || path[0] < 0)
        return NULL;
    for (int32_t i = 0; file[i]; i++)
        if (i == path[0])
            return file[i];
    return NULL;
}

/* "[0, 2]" */
static void format_path(const int32_t *path, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    int w = snprintf(out, cap, "[");
    k = w > 0 ? (size_t)w : 0;
    for (size_t i = 0; i < n && k < cap; i++) {
        w = snprintf(out + k, cap - k, "%s%d", i ? ", " : "", (int)path[i]);
        if (w > 0)
            k += (size_t)w;
    }
    if (k < cap)
        snprintf(out + k, cap - k, "]");
}

ka_err_t ka_confluent_check_index(const ka_confluent_t *f,
                                  const ProtobufCMessageDescriptor *expected, ka_reject_t *rej)
{
    int32_t want[KA_CONFLUENT_MAX_INDEXES];
    char got_s[96], want_s[96];
    size_t n = ka_proto_message_index(expected, want, KA_CONFLUENT_MAX_INDEXES);

    format_path(f->indexes, f->n_indexes, got_s, sizeof got_s);
    if (n == 0)
        return ka_reject(rej, KA_REASON_MESSAGE_INDEX,
                         "message index %s: no index is known for %s", got_s, expected->name);
    if (n == f->n_indexes && memcmp(want, f->indexes, n * sizeof want[0]) == 0)
        return KA_OK;
    format_path(want, n, want_s, sizeof want_s);
    const char *named = ka_proto_message_at(expected, f->indexes, f->n_indexes);
    return ka_reject(rej, KA_REASON_MESSAGE_INDEX,
                     "Confluent message index %s names %s, this topic takes %s (index %s)",
                     got_s, named ? named : "no message of its file", expected->name, want_s);
}

static size_t write_zigzag32(int32_t v, uint8_t *out)
{
    uint32_t z = ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
    size_t n = 0;
    while (z >= 0x80) {
        out[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    out[n++] = (uint8_t)z;
    return n;
}

size_t ka_confluent_header(const ProtobufCMessageDescriptor *desc, uint32_t schema_id,
                           uint8_t *out)
{
    int32_t path[KA_CONFLUENT_MAX_INDEXES];
    size_t n = ka_proto_message_index(desc, path, KA_CONFLUENT_MAX_INDEXES);
    if (n == 0)
        return 0;
    out[0] = 0;
    out[1] = (uint8_t)(schema_id >> 24);
    out[2] = (uint8_t)(schema_id >> 16);
    out[3] = (uint8_t)(schema_id >> 8);
    out[4] = (uint8_t)schema_id;
    size_t len = 5;
    if (n == 1 && path[0] == 0) {
        out[len++] = 0; /* the common [0]: a count of 0 */
        return len;
    }
    len += write_zigzag32((int32_t)n, out + len);
    for (size_t i = 0; i < n; i++)
        len += write_zigzag32(path[i], out + len);
    return len;
}

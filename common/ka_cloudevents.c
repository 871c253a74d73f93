#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "ka_cloudevents.h"
#include "ka_json_fast.h"
#include "ka_rfc3339.h"

static ka_err_t ce_fail(ka_json_reject_t *err, const char *reason, const char *path,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* "<path>: <text>" (just the text without a path); returns KA_ERR_INVALID. */
static ka_err_t ce_fail(ka_json_reject_t *err, const char *reason, const char *path,
                        const char *fmt, ...)
{
    char text[224];
    va_list ap;

    snprintf(err->path, sizeof err->path, "%s", path ? path : "");
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (err->path[0])
        return ka_reject(&err->rej, reason, "%s: %s", err->path, text);
    return ka_reject(&err->rej, reason, "%s", text);
}

/* A value for a detail text: printable ASCII, at most 40 bytes. */
static void show(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; s && i < n && i < 40 && k + 4 < cap; i++)
        out[k++] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' ? s[i] : '?';
    if (s && n > 40 && k + 4 < cap) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
}

static int text_eq(const ka_ce_text_t *t, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return t->ptr && t->len == n && memcmp(t->ptr, s ? s : "", n) == 0;
}

/* A JSON media type: application/json, text/json or any +json type, with
 * or without parameters. */
static int json_media_type(const char *s, size_t n)
{
    const char *semi = memchr(s, ';', n);
    if (semi)
        n = (size_t)(semi - s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    char low[128];
    if (n == 0 || n >= sizeof low)
        return 0;
    for (size_t i = 0; i < n; i++)
        low[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    low[n] = '\0';
    return strcmp(low, "application/json") == 0 || strcmp(low, "text/json") == 0 ||
           (n > 5 && strcmp(low + n - 5, "+json") == 0);
}

int ka_ce_source_names(const char *source, size_t len, const char *producer)
{
    size_t pl = producer ? strlen(producer) : 0;
    if (!source || pl == 0 || len < pl)
        return 0;
    if (memcmp(source + len - pl, producer, pl) != 0)
        return 0;
    return len == pl || source[len - pl - 1] == '/' || source[len - pl - 1] == ':';
}

/* The attribute rules shared by both modes, on texts already read. */
static ka_err_t check_attributes(ka_cloudevent_t *ce, ka_json_reject_t *err)
{
    static const struct {
        size_t off;
        const char *name;
    } required[] = {
        {offsetof(ka_cloudevent_t, id), "id"},
        {offsetof(ka_cloudevent_t, source), "source"},
        {offsetof(ka_cloudevent_t, type), "type"},
    };
    char path[32], shown[64];
    const char *pre = ce->structured ? "$." : "";
    const char *hdr = ce->structured ? "" : "ce_";

    snprintf(path, sizeof path, "%sspecversion", ce->structured ? "$." : "");
    if (!ce->specversion.ptr)
        return ce_fail(err, KA_REASON_CE_INVALID, ce->structured ? path : "",
                       "%sspecversion is required", hdr);
    if (!text_eq(&ce->specversion, "1.0")) {
        show(ce->specversion.ptr, ce->specversion.len, shown, sizeof shown);
        return ce_fail(err, KA_REASON_CE_INVALID, ce->structured ? path : "",
                       "%sspecversion \"%s\": only CloudEvents 1.0 is read", hdr, shown);
    }
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const ka_ce_text_t *t = (const ka_ce_text_t *)((const char *)ce + required[i].off);
        snprintf(path, sizeof path, "%s%s", pre, required[i].name);
        if (!t->ptr || t->len == 0)
            return ce_fail(err, KA_REASON_CE_INVALID, ce->structured ? path : "",
                           "%s%s is required (a non-empty string)", hdr, required[i].name);
    }
    if (ce->time.ptr) {
        int64_t s;
        int32_t ns;
        snprintf(path, sizeof path, "%stime", pre);
        if (ka_rfc3339_parse(ce->time.ptr, ce->time.len, &s, &ns) != 0) {
            show(ce->time.ptr, ce->time.len, shown, sizeof shown);
            return ce_fail(err, KA_REASON_CE_INVALID, ce->structured ? path : "",
                           "%stime \"%s\" is not an RFC 3339 time", hdr, shown);
        }
        ce->has_time = 1;
        ce->time_ms = s * 1000 + ns / 1000000;
    }
    return KA_OK;
}

/* A string attribute of the document, absent when missing or null. */
static ka_err_t attr(const json_t *root, const char *name, ka_ce_text_t *t, ka_json_reject_t *err)
{
    const json_t *v = json_object_get(root, name);
    t->ptr = NULL;
    t->len = 0;
    if (!v || json_is_null(v))
        return KA_OK;
    if (!json_is_string(v)) {
        char path[48];
        snprintf(path, sizeof path, "$.%s", name);
        return ce_fail(err, KA_REASON_CE_INVALID, path, "the %s attribute must be a string", name);
    }
    t->ptr = json_string_value(v);
    t->len = json_string_length(v);
    return KA_OK;
}

ka_err_t ka_ce_parse_structured(const json_t *root, ka_cloudevent_t *ce, ka_json_reject_t *err)
{
    memset(ce, 0, sizeof *ce);
    ce->structured = 1;
    err->path[0] = '\0';
    if (!root || !json_is_object(root))
        return ce_fail(err, KA_REASON_CE_INVALID, "$", "a structured CloudEvent is a JSON object");
    if (attr(root, "specversion", &ce->specversion, err) || attr(root, "id", &ce->id, err) ||
        attr(root, "source", &ce->source, err) || attr(root, "type", &ce->type, err) ||
        attr(root, "subject", &ce->subject, err) ||
        attr(root, "datacontenttype", &ce->datacontenttype, err) ||
        attr(root, "time", &ce->time, err))
        return KA_ERR_INVALID;
    if (check_attributes(ce, err) != KA_OK)
        return KA_ERR_INVALID;
    if (ce->datacontenttype.ptr &&
        !json_media_type(ce->datacontenttype.ptr, ce->datacontenttype.len)) {
        char shown[64];
        show(ce->datacontenttype.ptr, ce->datacontenttype.len, shown, sizeof shown);
        return ce_fail(err, KA_REASON_CE_INVALID, "$.datacontenttype",
                       "datacontenttype \"%s\": the data must be the event as JSON", shown);
    }
    const json_t *b64 = json_object_get(root, "data_base64");
    if (b64 && !json_is_null(b64))
        return ce_fail(err, KA_REASON_CE_INVALID, "$.data_base64",
                       "data_base64 is not read: the data must be the event as JSON");
    ce->data = json_object_get(root, "data");
    if (!ce->data || json_is_null(ce->data)) {
        ce->data = NULL;
        return ce_fail(err, KA_REASON_CE_INVALID, "$.data", "data (the event) is required");
    }
    return KA_OK;
}

int ka_ce_fast_structured(const cJSON *root, ka_cloudevent_t *ce, const cJSON **data)
{
    static const struct {
        const char *name;
        size_t off;
    } attrs[] = {
        {"specversion", offsetof(ka_cloudevent_t, specversion)},
        {"id", offsetof(ka_cloudevent_t, id)},
        {"source", offsetof(ka_cloudevent_t, source)},
        {"type", offsetof(ka_cloudevent_t, type)},
        {"subject", offsetof(ka_cloudevent_t, subject)},
        {"datacontenttype", offsetof(ka_cloudevent_t, datacontenttype)},
        {"time", offsetof(ka_cloudevent_t, time)},
    };
    ka_json_reject_t scratch;

    memset(ce, 0, sizeof *ce);
    ce->structured = 1;
    *data = NULL;
    if (!cJSON_IsObject(root))
        return 0;
    for (const cJSON *k = root->child; k; k = k->next) {
        size_t i;
        if (!ka_json_fast_key_unseen(root, k))
            return 0;
        for (i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
            if (strcmp(k->string, attrs[i].name) == 0)
                break;
        if (i < sizeof attrs / sizeof attrs[0]) {
            ka_ce_text_t *t = (ka_ce_text_t *)((char *)ce + attrs[i].off);
            if (cJSON_IsNull(k))
                continue; /* absent */
            if (!cJSON_IsString(k))
                return 0;
            t->ptr = k->valuestring;
            t->len = strlen(k->valuestring);
        } else if (strcmp(k->string, "data") == 0) {
            *data = k; /* its keys are the converter's to check */
        } else if (strcmp(k->string, "data_base64") == 0) {
            if (!cJSON_IsNull(k))
                return 0;
        } else if (!ka_json_fast_unique_keys(k)) {
            return 0; /* an extension jansson would refuse */
        }
    }
    if (check_attributes(ce, &scratch) != KA_OK)
        return 0;
    if (ce->datacontenttype.ptr &&
        !json_media_type(ce->datacontenttype.ptr, ce->datacontenttype.len))
        return 0;
    if (!*data || cJSON_IsNull(*data))
        return 0;
    return 1;
}

ka_err_t ka_ce_from_headers(ka_ce_header_fn get, void *ctx, ka_cloudevent_t *ce,
                            ka_json_reject_t *err)
{
    static const struct {
        const char *name;
        size_t off;
    } headers[] = {
        {"ce_specversion", offsetof(ka_cloudevent_t, specversion)},
        {"ce_id", offsetof(ka_cloudevent_t, id)},
        {"ce_source", offsetof(ka_cloudevent_t, source)},
        {"ce_type", offsetof(ka_cloudevent_t, type)},
        {"ce_subject", offsetof(ka_cloudevent_t, subject)},
        {"ce_time", offsetof(ka_cloudevent_t, time)},
    };

    memset(ce, 0, sizeof *ce);
    err->path[0] = '\0';
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        ka_ce_text_t *t = (ka_ce_text_t *)((char *)ce + headers[i].off);
        const void *v = NULL;
        size_t n = 0;
        if (get(ctx, headers[i].name, &v, &n) && v) {
            t->ptr = v;
            t->len = n;
        }
    }
    if (!ce->specversion.ptr)
        return KA_OK; /* not a CloudEvent */
    return check_attributes(ce, err);
}

ka_err_t ka_ce_check_header(const ka_cloudevent_t *ce, const Ka__V1__EventHeader *h,
                            const char *expected_type, ka_json_reject_t *err)
{
    char a[64], b[64];
    const char *hdr = ce->structured ? "" : "ce_";

    err->path[0] = '\0';
    if (!h || !ce->specversion.ptr)
        return KA_OK;
    if (!text_eq(&ce->id, h->event_id)) {
        show(ce->id.ptr, ce->id.len, a, sizeof a);
        show(h->event_id, h->event_id ? strlen(h->event_id) : 0, b, sizeof b);
        return ce_fail(err, KA_REASON_CE_MISMATCH, ce->structured ? "$.id" : "",
                       "CloudEvent %sid \"%s\" is not the event's header.event_id \"%s\"", hdr,
                       a, b);
    }
    if (!ka_ce_source_names(ce->source.ptr, ce->source.len, h->producer)) {
        show(ce->source.ptr, ce->source.len, a, sizeof a);
        show(h->producer, h->producer ? strlen(h->producer) : 0, b, sizeof b);
        return ce_fail(err, KA_REASON_CE_MISMATCH, ce->structured ? "$.source" : "",
                       "CloudEvent %ssource \"%s\" does not name the event's header.producer "
                       "\"%s\"",
                       hdr, a, b);
    }
    if (expected_type && !text_eq(&ce->type, expected_type)) {
        show(ce->type.ptr, ce->type.len, a, sizeof a);
        return ce_fail(err, KA_REASON_CE_MISMATCH, ce->structured ? "$.type" : "",
                       "CloudEvent %stype \"%s\" is not %s", hdr, a, expected_type);
    }
    if (ce->has_time && ce->time_ms != h->occurred_at_ms) {
        show(ce->time.ptr, ce->time.len, a, sizeof a);
        return ce_fail(err, KA_REASON_CE_MISMATCH, ce->structured ? "$.time" : "",
                       "CloudEvent %stime \"%s\" (%lld ms) is not the event's "
                       "header.occurred_at_ms %lld",
                       hdr, a, (long long)ce->time_ms, (long long)h->occurred_at_ms);
    }
    return KA_OK;
}

json_t *ka_ce_structured_new(const Ka__V1__EventHeader *h, const char *type, json_t *data)
{
    char source[160], when[40];
    int64_t ms = h->occurred_at_ms;
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03dZ", (int)(ms - (int64_t)secs * 1000));
    snprintf(source, sizeof source, "/%s", h->producer ? h->producer : "");
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "specversion", "1.0", "id",
                     h->event_id ? h->event_id : "", "source", source, "type", type, "time", when,
                     "datacontenttype", "application/json", "data", data);
}

/* ka.alert.v1 events as the bridge reads them: decoded, checked, and the
 * alert as Alertmanager's JSON. No servers: unit tested. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridge.h"
#include "ka/v1/alert.pb-c.h"
#include "ka_wire.h"

#define BRIDGE_MAX_FINGERPRINT 128 /* alert_state's bound */
#define BRIDGE_MAX_ALERT_ID 128
#define BRIDGE_MAX_FUTURE_MS 86400000LL

static int known_enum(const ProtobufCEnumDescriptor *desc, int value)
{
    return value != 0 && protobuf_c_enum_descriptor_get_value(desc, value) != NULL;
}

static ka_err_t check_enum(ka_reject_t *rej, const char *field,
                           const ProtobufCEnumDescriptor *desc, int value)
{
    if (known_enum(desc, value))
        return KA_OK;
    if (value == 0)
        return ka_reject(rej, KA_REASON_MISSING, "%s is required", field);
    return ka_reject(rej, KA_REASON_ENUM, "%s has unknown value %d", field, value);
}

static ka_err_t check(const Ka__V1__AlertEvent *ev, int64_t now_ms, ka_reject_t *rej)
{
    if (!ev->header || !ev->header->event_id || !ev->header->event_id[0])
        return ka_reject(rej, KA_REASON_MISSING, "header.event_id is required");
    if (ka_check_id(rej, "fingerprint", ev->fingerprint, BRIDGE_MAX_FINGERPRINT) ||
        ka_check_id(rej, "alert_id", ev->alert_id, BRIDGE_MAX_ALERT_ID) ||
        ka_check_id(rej, "subject_id", ev->subject_id, KA_MAX_ID_LEN) ||
        check_enum(rej, "type", &ka__v1__alert_type__descriptor, ev->type) ||
        check_enum(rej, "severity", &ka__v1__severity__descriptor, ev->severity) ||
        check_enum(rej, "status", &ka__v1__alert_status__descriptor, ev->status) ||
        check_enum(rej, "subject_kind", &ka__v1__subject_kind__descriptor, ev->subject_kind) ||
        ka_check_text(rej, "summary", ev->summary, KA_MAX_TEXT_LEN) ||
        ka_check_time(rej, "starts_at_ms", ev->starts_at_ms, now_ms, BRIDGE_MAX_FUTURE_MS))
        return KA_ERR_INVALID;
    int firing = ev->status == KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING;
    if (firing && ev->ends_at_ms != 0)
        return ka_reject(rej, KA_REASON_TIME, "a firing alert has no ends_at_ms");
    if (!firing) {
        if (ka_check_time(rej, "ends_at_ms", ev->ends_at_ms, now_ms, BRIDGE_MAX_FUTURE_MS))
            return KA_ERR_INVALID;
        if (ev->ends_at_ms < ev->starts_at_ms)
            return ka_reject(rej, KA_REASON_TIME, "ends_at_ms %lld is before starts_at_ms %lld",
                             (long long)ev->ends_at_ms, (long long)ev->starts_at_ms);
    }
    return KA_OK;
}

ka_err_t bridge_decode(const void *payload, size_t len, int64_t now_ms, bridge_event_t *out,
                       ka_reject_t *rej)
{
    memset(out, 0, sizeof *out);
    /* protobuf-c unpacks zero bytes into an all-default message: that is
     * "missing fields", reported by the checks. */
    Ka__V1__AlertEvent *ev = ka__v1__alert_event__unpack(NULL, len, payload);
    if (!ev)
        return ka_reject(rej, KA_REASON_DECODE, "not a ka.v1.AlertEvent (%zu bytes)", len);
    ka_err_t rc = ka_check_wire_strings(rej, &ka__v1__alert_event__descriptor, payload, len);
    if (rc == KA_OK)
        rc = check(ev, now_ms, rej);
    if (rc == KA_OK) {
        out->fingerprint = ka_strdup(ev->fingerprint);
        out->alert_id = ka_strdup(ev->alert_id);
        out->firing = ev->status == KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING;
    }
    ka__v1__alert_event__free_unpacked(ev, NULL);
    return rc;
}

void bridge_event_free(bridge_event_t *ev)
{
    free(ev->fingerprint);
    free(ev->alert_id);
    memset(ev, 0, sizeof *ev);
}

void bridge_time(char out[32], int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}

static void set_label(json_t *obj, const char *name, const char *value)
{
    if (value && value[0])
        json_object_set_new(obj, name, json_string(value));
}

/* The web view's address of a subject: <base>/<kind>/<id>, the id
 * percent-encoded (ids are printable ASCII, but may hold '/' or '?'). */
static char *subject_link(const char *base, const char *kind, const char *id)
{
    ka_buf_t b = KA_BUF_INIT;
    size_t blen = strlen(base);
    ka_buf_append(&b, base, blen);
    if (blen == 0 || base[blen - 1] != '/')
        ka_buf_append(&b, "/", 1);
    ka_buf_append(&b, kind, strlen(kind));
    ka_buf_append(&b, "/", 1);
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        char enc[4];
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            ka_buf_append(&b, (const char *)p, 1);
        } else {
            snprintf(enc, sizeof enc, "%%%02X", *p);
            ka_buf_append(&b, enc, 3);
        }
    }
    char *s = ka_strdup(ka_buf_str(&b));
    ka_buf_free(&b);
    return s;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The details object as "key: value" lines, keys in order. */
static char *describe(const char *details)
{
    json_t *d = details ? json_loads(details, 0, NULL) : NULL;
    ka_buf_t b = KA_BUF_INIT;
    const char *key;
    json_t *v;
    if (json_is_object(d)) {
        size_t n = json_object_size(d), i = 0;
        const char **keys = ka_calloc(n + 1, sizeof *keys);
        json_object_foreach(d, key, v) keys[i++] = key;
        qsort(keys, n, sizeof *keys, cmp_keys);
        for (i = 0; i < n; i++) {
            json_t *val = json_object_get(d, keys[i]);
            const char *s = json_is_string(val) ? json_string_value(val) : NULL;
            char *dumped = s ? NULL : json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
            if (b.len)
                ka_buf_append(&b, "\n", 1);
            ka_buf_append(&b, keys[i], strlen(keys[i]));
            ka_buf_append(&b, ": ", 2);
            const char *text = s ? s : dumped ? dumped : "";
            ka_buf_append(&b, text, strlen(text));
            free(dumped);
        }
        free(keys);
    }
    json_decref(d);
    char *s = ka_strdup(ka_buf_str(&b));
    ka_buf_free(&b);
    return s;
}

void bridge_alert_json(ka_buf_t *out, const bridge_alert_t *a, const char *link_base, int first)
{
    json_t *alert = json_object(), *labels = json_object(), *ann = json_object();
    char starts[32], ends[32];

    set_label(labels, "alertname", a->type);
    set_label(labels, "severity", a->severity);
    set_label(labels, "fingerprint", a->fingerprint);
    set_label(labels, "division", a->division);
    set_label(labels, "region", a->region);
    set_label(labels, "team", a->team);
    set_label(labels, "rep", a->rep);
    set_label(labels, "account", a->account);
    set_label(labels, "opportunity", a->opportunity);
    if (a->subject_kind && strcmp(a->subject_kind, "distributor") == 0)
        set_label(labels, "distributor", a->subject_id);
    set_label(labels, "manager", a->manager);

    char *desc = describe(a->details);
    set_label(ann, "summary", a->summary);
    set_label(ann, "description", desc);
    set_label(ann, "alert_id", a->alert_id);
    if (link_base && link_base[0] && a->subject_kind && a->subject_id) {
        char *link = subject_link(link_base, a->subject_kind, a->subject_id);
        set_label(ann, "link", link);
        free(link);
    }
    free(desc);

    json_object_set_new(alert, "labels", labels);
    json_object_set_new(alert, "annotations", ann);
    bridge_time(starts, a->starts_at_ms);
    json_object_set_new(alert, "startsAt", json_string(starts));
    if (a->status && strcmp(a->status, "resolved") == 0) {
        bridge_time(ends, a->ends_at_ms > 0 ? a->ends_at_ms : a->starts_at_ms);
        json_object_set_new(alert, "endsAt", json_string(ends));
    }
    char *text = json_dumps(alert, JSON_COMPACT | JSON_SORT_KEYS);
    if (!first)
        ka_buf_append(out, ",", 1);
    ka_buf_append(out, text, strlen(text));
    free(text);
    json_decref(alert);
}

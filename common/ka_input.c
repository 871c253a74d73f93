#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ka_input.h"
#include "ka_json_fast.h"
#include "ka_json_arena.h"
#include "ka_wire.h"

_Static_assert(KA_REJECT_PATH_MAX == KA_JSON_PATH_MAX, "a JSON path fits the dead letter's");

static void take(ka_reject_t *rej, const ka_json_reject_t *err)
{
    memcpy(rej->reason, err->rej.reason, sizeof rej->reason);
    memcpy(rej->detail, err->rej.detail, sizeof rej->detail);
    snprintf(rej->path, sizeof rej->path, "%s", err->path);
}

/* The message's EventHeader, through its descriptor: every input type has
 * one as its `header` field. */
static const Ka__V1__EventHeader *header_of(const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "header");
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return NULL;
    return *(const Ka__V1__EventHeader *const *)((const char *)m + f->offset);
}

static ka_err_t unpack(const ka_input_type_t *t, const void *buf, size_t len,
                       ProtobufCMessage **out, ka_reject_t *rej)
{
    /* protobuf-c unpacks zero bytes into an all-default message */
    if (!buf || len == 0)
        return ka_reject(rej, KA_REASON_DECODE, "not a %s (empty payload)", t->desc->name);
    *out = protobuf_c_message_unpack(t->desc, NULL, len, buf);
    if (!*out)
        return ka_reject(rej, KA_REASON_DECODE, "not a %s (%zu bytes)", t->desc->name, len);
    /* before any string is read: a NUL would cut it short unseen */
    return ka_check_wire_strings(rej, t->desc, buf, len);
}

static ka_err_t decode_mode(const ka_input_type_t *t, const ka_input_src_t *src,
                            const ka_json_opts_t *jo, ka_content_mode_t mode, int64_t now_ms,
                            ProtobufCMessage **out, char *event_id, size_t idlen,
                            ka_reject_t *rej)
{
    ka_json_reject_t jerr;
    ka_cloudevent_t ce;
    json_t *root = NULL;
    cJSON *froot = NULL;
    ka_err_t rc;

    memset(&ce, 0, sizeof ce);
    /* binary-mode CloudEvents: the attributes ride in ce_* headers */
    if (mode != KA_CONTENT_CLOUDEVENTS && src->get &&
        ka_ce_from_headers(src->get, src->ctx, &ce, &jerr) != KA_OK) {
        take(rej, &jerr);
        return KA_ERR_INVALID;
    }
    switch (mode) {
    case KA_CONTENT_PROTOBUF:
        rc = unpack(t, src->payload, src->len, out, rej);
        break;
    case KA_CONTENT_CONFLUENT: {
        ka_confluent_t f;
        rc = ka_confluent_parse(src->payload, src->len, &f, rej);
        if (rc == KA_OK)
            rc = ka_confluent_check_index(&f, t->desc, rej);
        if (rc == KA_OK)
            rc = unpack(t, f.payload, f.payload_len, out, rej);
        break;
    }
    case KA_CONTENT_JSON:
        rc = ka_json_pb_parse(t->desc, src->payload, src->len, jo, out, &jerr);
        if (rc != KA_OK)
            take(rej, &jerr);
        break;
    case KA_CONTENT_CLOUDEVENTS: {
        const cJSON *data = NULL;
        ka_json_arena_begin(); /* ended after the documents are released below */
        /* cJSON's accepting fast path first (ka_json_fast.h): the texts of ce
         * then point into froot; jansson decides what it declines */
        froot = ka_json_fast_load(src->payload, src->len, jo);
        if (froot && ka_ce_fast_structured(froot, &ce, &data) &&
            ka_json_fast_from_value(t->desc, data, jo, out)) {
            ka_json_fast_count(1);
            rc = KA_OK;
            break;
        }
        ka_json_fast_count(0);
        cJSON_Delete(froot);
        froot = NULL;
        root = ka_json_load(src->payload, src->len, jo, &jerr);
        rc = root ? ka_ce_parse_structured(root, &ce, &jerr) : KA_ERR_INVALID;
        if (rc == KA_OK)
            rc = ka_json_pb_from_value(t->desc, ce.data, "$.data", jo, out, &jerr);
        if (rc != KA_OK)
            take(rej, &jerr);
        break;
    }
    default:
        rc = ka_reject(rej, KA_REASON_CONTENT_TYPE, "content mode %d", (int)mode);
        break;
    }
    if (rc == KA_OK)
        rc = t->validate(*out, now_ms, event_id, idlen, rej);
    /* after the event's own checks, so a missing header gets the reason it
     * gets in every mode */
    if (rc == KA_OK && ce.specversion.ptr &&
        ka_ce_check_header(&ce, header_of(*out), t->desc->name, &jerr) != KA_OK) {
        take(rej, &jerr);
        rc = KA_ERR_INVALID;
    }
    if (mode == KA_CONTENT_CLOUDEVENTS) {
        cJSON_Delete(froot);
        json_decref(root);
        ka_json_arena_end();
    }
    return rc;
}

ka_err_t ka_input_decode(const ka_input_type_t *t, const ka_input_src_t *src,
                         const ka_input_opts_t *opts, int64_t now_ms, ProtobufCMessage **out,
                         char *event_id, size_t idlen, ka_reject_t *rej)
{
    static const ka_input_opts_t defaults;
    const void *ct = NULL;
    size_t ct_len = 0;
    ka_content_mode_t mode;

    if (!opts)
        opts = &defaults;
    *out = NULL;
    if (idlen)
        event_id[0] = '\0';
    rej->mode[0] = '\0';
    rej->path[0] = '\0';
    if (src->get && !src->get(src->ctx, "content-type", &ct, &ct_len))
        ct = NULL;
    if (ka_content_detect(ct, ct_len, src->payload, src->len, KA_CONTENT_ALL, &mode, rej) !=
        KA_OK)
        return KA_ERR_INVALID;
    snprintf(rej->mode, sizeof rej->mode, "%s", ka_content_mode_name(mode));
    unsigned accepted = opts->modes ? opts->modes : KA_CONTENT_ALL;
    if (!(accepted & mode))
        return ka_reject(rej, KA_REASON_MODE_REFUSED, "%s events are not accepted on this topic",
                         ka_content_mode_name(mode));
    return decode_mode(t, src, &opts->json, mode, now_ms, out, event_id, idlen, rej);
}

ka_err_t ka_input_decode_protobuf(const ka_input_type_t *t, const void *buf, size_t len,
                                  int64_t now_ms, ProtobufCMessage **out, char *event_id,
                                  size_t idlen, ka_reject_t *rej)
{
    *out = NULL;
    if (idlen)
        event_id[0] = '\0';
    snprintf(rej->mode, sizeof rej->mode, "%s", ka_content_mode_name(KA_CONTENT_PROTOBUF));
    rej->path[0] = '\0';
    if (unpack(t, buf, len, out, rej) != KA_OK)
        return KA_ERR_INVALID;
    return t->validate(*out, now_ms, event_id, idlen, rej);
}

static int msg_header(void *ctx, const char *name, const void **value, size_t *len)
{
    return ka_msg_header(ctx, name, value, len) == KA_OK;
}

ka_err_t ka_input_decode_msg(const ka_input_type_t *t, const ka_msg_t *msg, int64_t now_ms,
                             ProtobufCMessage **out, char *event_id, size_t idlen,
                             ka_reject_t *rej)
{
    ka_input_src_t src = {msg->payload, msg->len, msg->internal_ ? msg_header : NULL,
                          (void *)msg};
    return ka_input_decode(t, &src, ka_input_opts_for(msg->topic), now_ms, out, event_id, idlen,
                           rej);
}

/* Configuration ------------------------------------------------------------ */

/* The three input topics; one worker process, configured once at start. */
static struct {
    char *topic;
    ka_input_opts_t opts;
} topics[3];

ka_err_t ka_input_configure(const ka_config_t *cfg, char *errstr, size_t errlen)
{
    static const char *const keys[][2] = {{"KA_TOPIC_VISIT", "KA_CONTENT_MODES_VISIT"},
                                          {"KA_TOPIC_OPPORTUNITY", "KA_CONTENT_MODES_OPPORTUNITY"},
                                          {"KA_TOPIC_ORDER", "KA_CONTENT_MODES_ORDER"}};
    int ignore = strcmp(ka_config_str(cfg, "KA_JSON_UNKNOWN_FIELDS"), "ignore") == 0;
    for (size_t i = 0; i < 3; i++) {
        char err[128];
        unsigned mask;
        if (ka_content_modes_parse(ka_config_str(cfg, keys[i][1]), &mask, err, sizeof err) != 0) {
            snprintf(errstr, errlen, "%s: %s", keys[i][1], err);
            return KA_ERR_CONFIG;
        }
        free(topics[i].topic);
        topics[i].topic = strdup(ka_config_str(cfg, keys[i][0]));
        memset(&topics[i].opts, 0, sizeof topics[i].opts);
        topics[i].opts.modes = mask;
        topics[i].opts.json.ignore_unknown_fields = ignore;
    }
    return KA_OK;
}

const ka_input_opts_t *ka_input_opts_for(const char *topic)
{
    static const ka_input_opts_t defaults;
    for (size_t i = 0; i < 3; i++)
        if (topics[i].topic && topic && strcmp(topics[i].topic, topic) == 0)
            return &topics[i].opts;
    return &defaults;
}

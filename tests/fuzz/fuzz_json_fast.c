/* Fuzz target: the cJSON fast path against the jansson reference
 * (common/ka_json_fast.c, ka_json_pb.c, ka_cloudevents.c). See
 * tests/fuzz/README.md. For each input, each message type (the three input
 * events and the test schemas' Scalars and proto2 Legacy, which have every
 * field type) and both unknown-field options: when the fast path accepts,
 * the jansson path accepts too and both messages pack to the same bytes;
 * when it declines, the caller's verdict is the jansson path's by
 * construction. A document read as a structured CloudEvent by the fast path
 * must be read by ka_ce_parse_structured with the same attributes and the
 * same data. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_content_contract.h"
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_json_arena.h"
#include "ka_json_fast.h"
#include "kat/v1/legacy.pb-c.h"
#include "kat/v1/mapping.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const types[] = {
    &ka__v1__opportunity_event__descriptor,
    &ka__v1__visit_event__descriptor,
    &ka__v1__order_event__descriptor,
    &kat__v1__scalars__descriptor,
    &kat__v1__legacy__descriptor,
};

static uint8_t *packed(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    FUZZ_REQUIRE(buf != NULL);
    FUZZ_REQUIRE(protobuf_c_message_pack(m, buf) == *len);
    return buf;
}

/* The fast message m (may be NULL: declined) against the reference's. */
static void same(const ProtobufCMessage *fast, const ProtobufCMessage *ref, ka_err_t ref_rc,
                 const ka_json_reject_t *err)
{
    if (!fast)
        return;
    if (ref_rc != KA_OK) {
        fprintf(stderr, "fast path accepted, jansson refused: %s %s\n", err->rej.reason,
                err->rej.detail);
        abort();
    }
    size_t fl, rl;
    uint8_t *fb = packed(fast, &fl), *rb = packed(ref, &rl);
    FUZZ_REQUIRE(fl == rl && memcmp(fb, rb, fl) == 0);
    free(fb);
    free(rb);
}

static int text_same(const ka_ce_text_t *a, const ka_ce_text_t *b)
{
    if (!a->ptr || !b->ptr)
        return !a->ptr && !b->ptr;
    return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

/* ka_input's CloudEvents path takes the fast reading only when the envelope
 * and the data both pass; then jansson must read the same. */
static void check_cloudevent(const cJSON *froot, const uint8_t *data, size_t size)
{
    ka_cloudevent_t fce, rce;
    const cJSON *fdata;
    ka_json_reject_t err;

    if (!ka_ce_fast_structured(froot, &fce, &fdata))
        return;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        ProtobufCMessage *fm = NULL, *rm = NULL;
        if (!ka_json_fast_from_value(types[i], fdata, NULL, &fm))
            continue;
        json_t *root = ka_json_load(data, size, NULL, &err);
        if (!root) {
            fprintf(stderr, "fast path accepted, jansson refused: %s %s\n", err.rej.reason,
                    err.rej.detail);
            abort();
        }
        FUZZ_REQUIRE(ka_ce_parse_structured(root, &rce, &err) == KA_OK);
        FUZZ_REQUIRE(text_same(&fce.specversion, &rce.specversion) &&
                     text_same(&fce.id, &rce.id) && text_same(&fce.source, &rce.source) &&
                     text_same(&fce.type, &rce.type) && text_same(&fce.subject, &rce.subject) &&
                     text_same(&fce.datacontenttype, &rce.datacontenttype) &&
                     text_same(&fce.time, &rce.time));
        FUZZ_REQUIRE(fce.has_time == rce.has_time && fce.time_ms == rce.time_ms);
        ka_err_t rc = ka_json_pb_from_value(types[i], rce.data, "$.data", NULL, &rm, &err);
        same(fm, rm, rc, &err);
        protobuf_c_message_free_unpacked(fm, NULL);
        if (rm)
            protobuf_c_message_free_unpacked(rm, NULL);
        json_decref(root);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int ignore = 0; ignore < 2; ignore++) {
        ka_json_opts_t opts = {.ignore_unknown_fields = ignore};
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            ProtobufCMessage *fm = NULL, *rm = NULL;
            ka_json_reject_t err;
            memset(&err, 0x5a, sizeof err);
            int accepted = ka_json_fast_parse(types[i], data, size, &opts, &fm);
            FUZZ_REQUIRE(accepted ? fm != NULL : fm == NULL);
            ka_json_fast_set_enabled(0);
            ka_err_t rc = ka_json_pb_parse(types[i], data, size, &opts, &rm, &err);
            ka_json_fast_set_enabled(1);
            FUZZ_REQUIRE(rc == KA_OK || rc == KA_ERR_INVALID);
            same(fm, rm, rc, &err);
            if (fm)
                protobuf_c_message_free_unpacked(fm, NULL);
            if (rm)
                protobuf_c_message_free_unpacked(rm, NULL);
        }
    }
    ka_json_arena_begin(); /* as ka_input's CloudEvents path */
    cJSON *froot = ka_json_fast_load(data, size, NULL);
    if (froot)
        check_cloudevent(froot, data, size);
    cJSON_Delete(froot);
    ka_json_arena_end();
    return 0;
}

/* Fuzz target: events in the proto3 JSON mapping and structured
 * CloudEvents (common/ka_json_pb.c, ka_cloudevents.c). See
 * tests/fuzz/README.md. Each input is parsed once and converted into each
 * input event type, strict and with unknown fields ignored; a document with
 * a CloudEvents envelope is read as one too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_content_contract.h"
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const types[] = {
    &ka__v1__opportunity_event__descriptor,
    &ka__v1__visit_event__descriptor,
    &ka__v1__order_event__descriptor,
};

/* An accepted message is what protobuf-c would have unpacked: it packs, the
 * bytes unpack again to the same bytes, and no string holds a NUL. Returns
 * the packed bytes (the caller frees them). */
static uint8_t *check_message(const ProtobufCMessage *m, size_t *len)
{
    char field[160];
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    FUZZ_REQUIRE(buf != NULL);
    FUZZ_REQUIRE(protobuf_c_message_pack(m, buf) == *len);
    FUZZ_REQUIRE(ka_wire_find_nul(m->descriptor, buf, *len, field, sizeof field) == 0);
    ProtobufCMessage *again = protobuf_c_message_unpack(m->descriptor, NULL, *len, buf);
    FUZZ_REQUIRE(again != NULL);
    size_t len2 = protobuf_c_message_get_packed_size(again);
    uint8_t *buf2 = malloc(len2 ? len2 : 1);
    FUZZ_REQUIRE(buf2 != NULL);
    protobuf_c_message_pack(again, buf2);
    FUZZ_REQUIRE(len2 == *len && memcmp(buf, buf2, len2) == 0);
    free(buf2);
    protobuf_c_message_free_unpacked(again, NULL);
    return buf;
}

/* Converts v into type d; returns the packed result or NULL when refused. */
static uint8_t *convert(const ProtobufCMessageDescriptor *d, const json_t *v, const char *root,
                        int ignore_unknown, size_t *len, ProtobufCMessage **keep)
{
    ka_json_opts_t opts = {.ignore_unknown_fields = ignore_unknown};
    ProtobufCMessage *m = (ProtobufCMessage *)(uintptr_t)1;
    ka_json_reject_t err;

    memset(&err, 0x5a, sizeof err);
    ka_err_t rc = ka_json_pb_from_value(d, v, root, &opts, &m, &err);
    FUZZ_REQUIRE(rc == KA_OK || rc == KA_ERR_INVALID);
    if (rc != KA_OK) {
        FUZZ_REQUIRE(m == NULL);
        fuzz_check_json_reject(&err);
        FUZZ_REQUIRE(err.path[0] == '$');
        FUZZ_REQUIRE(strncmp(err.path, root, strlen(root)) == 0);
        return NULL;
    }
    FUZZ_REQUIRE(m != NULL && m->descriptor == d);
    uint8_t *buf = check_message(m, len);
    if (keep)
        *keep = m;
    else
        protobuf_c_message_free_unpacked(m, NULL);
    return buf;
}

static void check_cloudevent(const json_t *root)
{
    ka_cloudevent_t ce;
    ka_json_reject_t err;
    ProtobufCMessage *m = NULL;
    size_t len;

    memset(&err, 0x5a, sizeof err);
    ka_err_t rc = ka_ce_parse_structured(root, &ce, &err);
    FUZZ_REQUIRE(rc == KA_OK || rc == KA_ERR_INVALID);
    if (rc != KA_OK) {
        fuzz_check_json_reject(&err);
        FUZZ_REQUIRE(strcmp(err.rej.reason, KA_REASON_CE_INVALID) == 0);
        return;
    }
    FUZZ_REQUIRE(ce.structured && ce.data != NULL);
    FUZZ_REQUIRE(ce.id.ptr && ce.id.len > 0 && ce.source.ptr && ce.type.ptr);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        m = NULL;
        uint8_t *buf = convert(types[i], ce.data, "$.data", 0, &len, &m);
        if (!buf)
            continue;
        free(buf);
        /* every input event's header is field 1 */
        const ProtobufCFieldDescriptor *hf = protobuf_c_message_descriptor_get_field(types[i], 1);
        FUZZ_REQUIRE(hf && hf->type == PROTOBUF_C_TYPE_MESSAGE);
        const Ka__V1__EventHeader *h =
            *(const Ka__V1__EventHeader *const *)((const char *)m + hf->offset);
        memset(&err, 0x5a, sizeof err);
        rc = ka_ce_check_header(&ce, h, types[i]->name, &err);
        FUZZ_REQUIRE(rc == KA_OK || rc == KA_ERR_INVALID);
        if (rc == KA_OK) {
            FUZZ_REQUIRE(!h || (h->event_id && ce.id.len == strlen(h->event_id) &&
                                memcmp(ce.id.ptr, h->event_id, ce.id.len) == 0));
        } else {
            fuzz_check_json_reject(&err);
            FUZZ_REQUIRE(strcmp(err.rej.reason, KA_REASON_CE_MISMATCH) == 0);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ka_json_reject_t err;

    memset(&err, 0x5a, sizeof err);
    json_t *root = ka_json_load(data, size, NULL, &err);
    if (!root) {
        fuzz_check_json_reject(&err);
        FUZZ_REQUIRE(err.path[0] == '\0');
        return 0;
    }
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        size_t strict_len = 0, lenient_len = 0;
        uint8_t *strict = convert(types[i], root, "$", 0, &strict_len, NULL);
        uint8_t *lenient = convert(types[i], root, "$", 1, &lenient_len, NULL);
        /* ignoring unknown fields never refuses what strict mode accepts,
         * nor changes it */
        if (strict)
            FUZZ_REQUIRE(lenient && lenient_len == strict_len &&
                         memcmp(strict, lenient, strict_len) == 0);
        free(strict);
        free(lenient);
    }
    if (json_is_object(root) && json_object_get(root, "specversion"))
        check_cloudevent(root);
    json_decref(root);
    return 0;
}

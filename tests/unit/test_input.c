/* ka_input: one order event in every content mode decodes to the message
 * the binary path gives; each mode's rejections carry the reason the dead
 * letter gets, the mode, and the JSON path; kagen's encoders (ka_pb_to_json,
 * ka_ce_structured_new, ka_confluent_header) round-trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka_order_decode.h"
#include "ka_pb_json.h"

#define NOW 1795000000000LL /* the events are an hour old */

static const char order_json[] =
    "{\"header\": {\"eventId\": \"o-1\", \"occurredAtMs\": \"1794996400000\", \"producer\": \"erp\"},"
    " \"orderId\": \"ord-1\", \"account\": {\"name\": \"Acme Ltd\"},"
    " \"rep_id\": \"rep-1\", \"channel\": \"CHANNEL_DIRECT\", \"shipToRegion\": \"CN-31\","
    " \"lines\": [{\"sku\": \"SKU-1\", \"quantityMilli\": 2000, \"unitPriceMinor\": \"150000\"},"
    " {\"sku\": \"SKU-2\", \"quantityMilli\": \"500\", \"unitPriceMinor\": 99}],"
    " \"status\": \"ORDER_STATUS_BOOKED\", \"bookedAtMs\": 1794996400000}";

/* Headers of one event: content-type and ce_* pairs. */
typedef struct hdrs {
    const char *names[4], *values[4];
} hdrs_t;

static int get(void *ctx, const char *name, const void **value, size_t *len)
{
    const hdrs_t *h = ctx;
    for (int i = 0; i < 4 && h->names[i]; i++)
        if (strcmp(h->names[i], name) == 0) {
            *value = h->values[i];
            *len = strlen(h->values[i]);
            return 1;
        }
    return 0;
}

static ka_err_t run(const void *p, size_t len, hdrs_t *h, const ka_input_opts_t *o,
                    ProtobufCMessage **m, ka_reject_t *rej)
{
    char id[65];
    ka_input_src_t src = {p, len, get, h};
    return ka_input_decode(&ka_input_order, &src, o, NOW, m, id, sizeof id, rej);
}

static uint8_t *binary(size_t *len)
{
    ProtobufCMessage *m = NULL;
    ka_json_reject_t err;
    assert_int_equal(ka_json_pb_parse(&ka__v1__order_event__descriptor, order_json,
                                      strlen(order_json), NULL, &m, &err), KA_OK);
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len);
    protobuf_c_message_pack(m, b);
    protobuf_c_message_free_unpacked(m, NULL);
    return b;
}

/* The decoded message packs to the binary stream's bytes. */
static void assert_same(ProtobufCMessage *m)
{
    size_t len, n = protobuf_c_message_get_packed_size(m);
    uint8_t *want = binary(&len), *got = malloc(n);
    protobuf_c_message_pack(m, got);
    assert_int_equal(n, len);
    assert_memory_equal(got, want, len);
    free(want);
    free(got);
}

static void expect(const char *payload, hdrs_t *h, const char *reason, const char *mode,
                   const char *path)
{
    ProtobufCMessage *m = NULL;
    ka_reject_t rej;
    assert_int_equal(run(payload, strlen(payload), h, NULL, &m, &rej), KA_ERR_INVALID);
    protobuf_c_message_free_unpacked(m, NULL);
    assert_string_equal(rej.reason, reason);
    assert_string_equal(rej.mode, mode);
    assert_string_equal(rej.path, path);
}

static char *replaced(const char *from, const char *to)
{
    static char buf[2048];
    const char *at = strstr(order_json, from);
    assert_non_null(at);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - order_json), order_json, to,
             at + strlen(from));
    return buf;
}

static void every_mode_decodes_to_the_binary_message(void **state)
{
    (void)state;
    ProtobufCMessage *m = NULL;
    ka_reject_t rej;
    size_t len;
    uint8_t *pb = binary(&len);

    hdrs_t none = {{NULL}, {NULL}};
    assert_int_equal(run(pb, len, &none, NULL, &m, &rej), KA_OK);
    assert_string_equal(rej.mode, "protobuf");
    assert_same(m);
    protobuf_c_message_free_unpacked(m, NULL);

    hdrs_t json = {{"content-type"}, {"application/json; charset=utf-8"}};
    assert_int_equal(run(order_json, strlen(order_json), &json, NULL, &m, &rej), KA_OK);
    assert_string_equal(rej.mode, "json");
    assert_same(m);
    protobuf_c_message_free_unpacked(m, NULL);

    /* no content-type: '{' says JSON */
    assert_int_equal(run(order_json, strlen(order_json), &none, NULL, &m, &rej), KA_OK);
    assert_string_equal(rej.mode, "json");
    protobuf_c_message_free_unpacked(m, NULL);

    uint8_t frame[64 + 512];
    size_t n = ka_confluent_header(&ka__v1__order_event__descriptor, 7, frame);
    assert_int_equal(n, 6); /* OrderEvent is message [0] of order.proto: the single 0 */
    memcpy(frame + n, pb, len);
    assert_int_equal(run(frame, n + len, &none, NULL, &m, &rej), KA_OK);
    assert_string_equal(rej.mode, "confluent");
    assert_same(m);

    /* kagen's structured CloudEvent of the decoded event */
    json_t *ce = ka_ce_structured_new(((Ka__V1__OrderEvent *)m)->header, "ka.v1.OrderEvent",
                                      ka_pb_to_json(m));
    protobuf_c_message_free_unpacked(m, NULL);
    char *text = json_dumps(ce, JSON_COMPACT);
    json_decref(ce);
    hdrs_t sce = {{"content-type"}, {"application/cloudevents+json"}};
    assert_int_equal(run(text, strlen(text), &sce, NULL, &m, &rej), KA_OK);
    assert_string_equal(rej.mode, "cloudevents");
    assert_same(m);
    protobuf_c_message_free_unpacked(m, NULL);
    free(text);
    free(pb);
}

static void pb_to_json_round_trips(void **state)
{
    (void)state;
    size_t len;
    uint8_t *pb = binary(&len);
    ProtobufCMessage *m = protobuf_c_message_unpack(&ka__v1__order_event__descriptor, NULL, len,
                                                    pb);
    json_t *doc = ka_pb_to_json(m);
    /* the official mapping: camelCase, int64 as strings, enums by name */
    assert_string_equal(json_string_value(json_object_get(doc, "bookedAtMs")), "1794996400000");
    assert_string_equal(json_string_value(json_object_get(doc, "channel")), "CHANNEL_DIRECT");
    assert_non_null(json_object_get(doc, "repId"));
    ProtobufCMessage *back = NULL;
    ka_json_reject_t err;
    assert_int_equal(ka_json_pb_from_value(&ka__v1__order_event__descriptor, doc, "$", NULL,
                                           &back, &err), KA_OK);
    assert_same(back);
    json_decref(doc);
    protobuf_c_message_free_unpacked(back, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    free(pb);
}

static void json_rejections_carry_reason_mode_and_path(void **state)
{
    (void)state;
    hdrs_t json = {{"content-type"}, {"application/json"}};
    expect(replaced("\"CHANNEL_DIRECT\"", "\"CHANNEL_TELEPATHY\""), &json, "unknown_enum_value",
           "json", "$.channel");
    expect(replaced("\"150000\"", "\"9223372036854775808\""), &json, "number_out_of_range",
           "json", "$.lines[0].unitPriceMinor");
    expect(replaced("\"SKU-1\"", "42"), &json, "wrong_type", "json", "$.lines[0].sku");
    expect(replaced("\"shipToRegion\"", "\"shipToPlanet\""), &json, "unknown_field", "json",
           "$.shipToPlanet");
    expect("{\"header\": ", &json, "decode_failed", "json", "");
    /* the type's own validation, as in the binary path */
    expect(replaced("\"quantityMilli\": 2000", "\"quantityMilli\": 0"), &json,
           "amount_out_of_range", "json", "");
}

static void unknown_fields_are_skipped_when_configured(void **state)
{
    (void)state;
    hdrs_t json = {{"content-type"}, {"application/json"}};
    ka_input_opts_t o = {0, {.ignore_unknown_fields = 1}};
    ProtobufCMessage *m = NULL;
    ka_reject_t rej;
    const char *p = replaced("\"shipToRegion\": \"CN-31\",", "\"crmExtra\": {\"x\": 1},"
                                                             " \"shipToRegion\": \"CN-31\",");
    assert_int_equal(run(p, strlen(p), &json, &o, &m, &rej), KA_OK);
    assert_same(m);
    protobuf_c_message_free_unpacked(m, NULL);
}

static void cloudevent_attributes_must_match_the_header(void **state)
{
    (void)state;
    char doc[2048];
    hdrs_t sce = {{"content-type"}, {"application/cloudevents+json"}};
    snprintf(doc, sizeof doc, "{\"specversion\": \"1.0\", \"id\": \"o-2\", \"source\": \"/erp\","
             " \"type\": \"ka.v1.OrderEvent\", \"data\": %s}", order_json);
    expect(doc, &sce, "cloudevent_mismatch", "cloudevents", "$.id");
    snprintf(doc, sizeof doc, "{\"specversion\": \"1.0\", \"id\": \"o-1\", \"source\": \"/erp\","
             " \"type\": \"ka.v1.VisitEvent\", \"data\": %s}", order_json);
    expect(doc, &sce, "cloudevent_mismatch", "cloudevents", "$.type");
    snprintf(doc, sizeof doc, "{\"specversion\": \"0.3\", \"id\": \"o-1\", \"source\": \"/erp\","
             " \"type\": \"ka.v1.OrderEvent\", \"data\": %s}", order_json);
    expect(doc, &sce, "invalid_cloudevent", "cloudevents", "$.specversion");
    /* a JSON fault inside data: its path under $.data */
    snprintf(doc, sizeof doc, "{\"specversion\": \"1.0\", \"id\": \"o-1\", \"source\": \"/erp\","
             " \"type\": \"ka.v1.OrderEvent\", \"data\": %s}",
             replaced("\"CHANNEL_DIRECT\"", "\"NOPE\""));
    expect(doc, &sce, "unknown_enum_value", "cloudevents", "$.data.channel");

    /* binary mode: the ce_* headers are checked the same way */
    size_t len;
    uint8_t *pb = binary(&len);
    hdrs_t bin = {{"ce_specversion", "ce_id", "ce_source", "ce_type"},
                  {"1.0", "o-9", "/erp", "ka.v1.OrderEvent"}};
    ProtobufCMessage *m = NULL;
    ka_reject_t rej;
    assert_int_equal(run(pb, len, &bin, NULL, &m, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, "cloudevent_mismatch");
    assert_string_equal(rej.mode, "protobuf");
    protobuf_c_message_free_unpacked(m, NULL);
    bin.values[1] = "o-1";
    assert_int_equal(run(pb, len, &bin, NULL, &m, &rej), KA_OK);
    protobuf_c_message_free_unpacked(m, NULL);
    free(pb);
}

static void framing_rejections(void **state)
{
    (void)state;
    size_t len;
    uint8_t *pb = binary(&len), frame[600];
    hdrs_t none = {{NULL}, {NULL}};
    ProtobufCMessage *m = NULL;
    ka_reject_t rej;
    /* index [1] of order.proto names no message: not an OrderEvent */
    memcpy(frame, "\x00\x00\x00\x00\x07\x02\x02", 7);
    memcpy(frame + 7, pb, len);
    assert_int_equal(run(frame, 7 + len, &none, NULL, &m, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, "wrong_message_index");
    assert_string_equal(rej.mode, "confluent");
    /* truncated: the schema id cut short */
    assert_int_equal(run("\x00\x00\x01", 3, &none, NULL, &m, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, "bad_framing");
    assert_null(m);
    free(pb);
}

static void refused_modes_and_types(void **state)
{
    (void)state;
    hdrs_t json = {{"content-type"}, {"application/json"}};
    ka_input_opts_t pb_only = {KA_CONTENT_PROTOBUF, {0}};
    ProtobufCMessage *m = NULL;
    ka_reject_t rej;
    assert_int_equal(run(order_json, strlen(order_json), &json, &pb_only, &m, &rej),
                     KA_ERR_INVALID);
    assert_string_equal(rej.reason, "content_mode_not_accepted");
    assert_string_equal(rej.mode, "json");
    assert_null(m);
    hdrs_t xml = {{"content-type"}, {"application/xml"}};
    assert_int_equal(run("<order/>", 8, &xml, NULL, &m, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, "unsupported_content_type");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_mode_decodes_to_the_binary_message),
        cmocka_unit_test(pb_to_json_round_trips),
        cmocka_unit_test(json_rejections_carry_reason_mode_and_path),
        cmocka_unit_test(unknown_fields_are_skipped_when_configured),
        cmocka_unit_test(cloudevent_attributes_must_match_the_header),
        cmocka_unit_test(framing_rejections),
        cmocka_unit_test(refused_modes_and_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

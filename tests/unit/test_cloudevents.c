/* CloudEvents envelopes (common/ka_cloudevents.c): a structured event's
 * attributes and data, the binary mode's ce_* headers, and each attribute
 * checked against the event's header, with the dead-letter reason and
 * path of every rejection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka/v1/order.pb-c.h"
#include "ka_cloudevents.h"

/* 2026-11-18T01:30:00.125Z */
#define T_MS 1794965400125LL

#define DATA                                                                              \
    "{\"header\": {\"eventId\": \"o-1\", \"occurredAtMs\": \"1794965400125\","              \
    " \"producer\": \"erp\"}, \"orderId\": \"ord-1\"}"

/* The structured document with one attribute (or the data) replaced. */
static char *doc(const char *specversion, const char *id, const char *source, const char *type,
                 const char *time, const char *extra, const char *data)
{
    static char buf[2048];
    size_t n = (size_t)snprintf(buf, sizeof buf, "{");
#define ADD(name, v)                                                                          \
    if (v)                                                                                    \
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"%s\": %s", n > 1 ? ", " : "", name, v)
    ADD("specversion", specversion);
    ADD("id", id);
    ADD("source", source);
    ADD("type", type);
    ADD("time", time);
    if (extra)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", n > 1 ? ", " : "", extra);
    ADD("data", data);
#undef ADD
    snprintf(buf + n, sizeof buf - n, "}");
    return buf;
}

#define OK_DOC(extra)                                                                         \
    doc("\"1.0\"", "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"",                            \
        "\"2026-11-18T09:30:00.125+08:00\"", extra, DATA)

typedef struct decoded {
    json_t *root;
    ka_cloudevent_t ce;
    Ka__V1__OrderEvent *ev;
    ka_json_reject_t err;
} decoded_t;

/* What a worker does with a structured event: parse, read the envelope,
 * convert the data, check the attributes. Returns the first failure. */
static ka_err_t decode(const char *json, decoded_t *d)
{
    ProtobufCMessage *m = NULL;

    memset(d, 0, sizeof *d);
    d->root = ka_json_load(json, strlen(json), NULL, &d->err);
    if (!d->root)
        return KA_ERR_INVALID;
    if (ka_ce_parse_structured(d->root, &d->ce, &d->err) != KA_OK)
        return KA_ERR_INVALID;
    if (ka_json_pb_from_value(&ka__v1__order_event__descriptor, d->ce.data, "$.data", NULL, &m,
                              &d->err) != KA_OK)
        return KA_ERR_INVALID;
    d->ev = (Ka__V1__OrderEvent *)m;
    return ka_ce_check_header(&d->ce, d->ev->header, ka__v1__order_event__descriptor.name,
                              &d->err);
}

static void done(decoded_t *d)
{
    if (d->ev)
        ka__v1__order_event__free_unpacked(d->ev, NULL);
    json_decref(d->root);
}

static void refused(const char *json, const char *reason, const char *path)
{
    decoded_t d;
    ka_err_t rc = decode(json, &d);
    if (rc != KA_ERR_INVALID)
        fail_msg("accepted: %s", json);
    if (strcmp(d.err.rej.reason, reason) != 0 || strcmp(d.err.path, path) != 0)
        fail_msg("%s at %s (%s), expected %s at %s\n%s", d.err.rej.reason, d.err.path,
                 d.err.rej.detail, reason, path, json);
    assert_non_null(memchr(d.err.rej.detail, '\0', sizeof d.err.rej.detail));
    done(&d);
}

static void accepted(const char *json)
{
    decoded_t d;
    if (decode(json, &d) != KA_OK)
        fail_msg("refused: %s %s %s\n%s", d.err.rej.reason, d.err.path, d.err.rej.detail, json);
    assert_string_equal(d.ev->order_id, "ord-1");
    done(&d);
}

static void test_structured_valid(void **state)
{
    (void)state;
    decoded_t d;
    assert_int_equal(decode(OK_DOC("\"subject\": \"ord-1\", \"datacontenttype\": "
                                   "\"application/json\", \"traceparent\": \"00-ab\""),
                            &d),
                     KA_OK);
    assert_true(d.ce.structured);
    assert_true(d.ce.has_time);
    assert_true(d.ce.time_ms == T_MS);
    assert_int_equal(d.ce.subject.len, 5);
    assert_string_equal(d.ev->header->event_id, "o-1");
    done(&d);
    /* time is optional; sub-millisecond digits round down */
    accepted(doc("\"1.0\"", "\"o-1\"", "\"erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA));
    accepted(doc("\"1.0\"", "\"o-1\"", "\"urn:acme:erp\"", "\"ka.v1.OrderEvent\"",
                 "\"2026-11-18T01:30:00.125999Z\"", NULL, DATA));
    accepted(doc("\"1.0\"", "\"o-1\"", "\"//erp.acme.com/systems/erp\"", "\"ka.v1.OrderEvent\"",
                 "null", "\"datacontenttype\": \"application/vnd.acme+json; charset=utf-8\"",
                 DATA));
}

static void test_structured_mismatches(void **state)
{
    (void)state;
    /* the id is the idempotency key: a different one is a dead letter */
    refused(doc("\"1.0\"", "\"o-2\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA),
            KA_REASON_CE_MISMATCH, "$.id");
    refused(doc("\"1.0\"", "\"o-1\\u0000x\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL,
                DATA),
            KA_REASON_CE_MISMATCH, "$.id");
    refused(doc("\"1.0\"", "\"o-1\"", "\"/crm\"", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA),
            KA_REASON_CE_MISMATCH, "$.source");
    refused(doc("\"1.0\"", "\"o-1\"", "\"/xerp\"", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA),
            KA_REASON_CE_MISMATCH, "$.source");
    refused(doc("\"1.0\"", "\"o-1\"", "\"erp/\"", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA),
            KA_REASON_CE_MISMATCH, "$.source");
    refused(doc("\"1.0\"", "\"o-1\"", "\"/erp\"", "\"com.acme.order.created\"", NULL, NULL, DATA),
            KA_REASON_CE_MISMATCH, "$.type");
    refused(doc("\"1.0\"", "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"",
                "\"2026-11-18T01:30:00.126Z\"", NULL, DATA),
            KA_REASON_CE_MISMATCH, "$.time");
}

static void test_structured_invalid(void **state)
{
    (void)state;
    refused("[]", KA_REASON_CE_INVALID, "$");
    refused(doc(NULL, "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA),
            KA_REASON_CE_INVALID, "$.specversion");
    refused(doc("\"0.3\"", "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA),
            KA_REASON_CE_INVALID, "$.specversion");
    refused(doc("1.0", "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA),
            KA_REASON_CE_INVALID, "$.specversion");
    refused(doc("\"1.0\"", NULL, "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA),
            KA_REASON_CE_INVALID, "$.id");
    refused(doc("\"1.0\"", "\"\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA),
            KA_REASON_CE_INVALID, "$.id");
    refused(doc("\"1.0\"", "7", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA),
            KA_REASON_CE_INVALID, "$.id");
    refused(doc("\"1.0\"", "\"o-1\"", "null", "\"ka.v1.OrderEvent\"", NULL, NULL, DATA),
            KA_REASON_CE_INVALID, "$.source");
    refused(doc("\"1.0\"", "\"o-1\"", "\"/erp\"", NULL, NULL, NULL, DATA), KA_REASON_CE_INVALID,
            "$.type");
    refused(doc("\"1.0\"", "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", "\"yesterday\"", NULL,
                DATA),
            KA_REASON_CE_INVALID, "$.time");
    refused(doc("\"1.0\"", "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", "1794965400", NULL,
                DATA),
            KA_REASON_CE_INVALID, "$.time");
    refused(OK_DOC("\"datacontenttype\": \"application/xml\""), KA_REASON_CE_INVALID,
            "$.datacontenttype");
    refused(OK_DOC("\"datacontenttype\": \"application/protobuf\""), KA_REASON_CE_INVALID,
            "$.datacontenttype");
    refused(doc("\"1.0\"", "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL,
                "\"data_base64\": \"CgA=\"", NULL),
            KA_REASON_CE_INVALID, "$.data_base64");
    refused(doc("\"1.0\"", "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL, NULL),
            KA_REASON_CE_INVALID, "$.data");
    refused(doc("\"1.0\"", "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL, "null"),
            KA_REASON_CE_INVALID, "$.data");
    /* the data's own faults, under $.data */
    refused(doc("\"1.0\"", "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL,
                "\"{\\\"orderId\\\": \\\"x\\\"}\""),
            KA_REASON_WRONG_TYPE, "$.data");
    refused(doc("\"1.0\"", "\"o-1\"", "\"/erp\"", "\"ka.v1.OrderEvent\"", NULL, NULL,
                "{\"orderId\": \"ord-1\", \"header\": {\"evntId\": \"o-1\"}}"),
            KA_REASON_UNKNOWN_FIELD, "$.data.header.evntId");
}

/* ----------------------------------------------------------------------------
 * Binary mode
 * ------------------------------------------------------------------------- */

typedef struct headers {
    const char *names[8];
    const char *values[8];
} headers_t;

static int get_header(void *ctx, const char *name, const void **value, size_t *len)
{
    const headers_t *h = ctx;
    for (size_t i = 0; i < 8 && h->names[i]; i++)
        if (strcmp(h->names[i], name) == 0) {
            *value = h->values[i];
            *len = strlen(h->values[i]);
            return 1;
        }
    return 0;
}

static void test_binary_mode_headers(void **state)
{
    (void)state;
    Ka__V1__EventHeader eh = KA__V1__EVENT_HEADER__INIT;
    ka_cloudevent_t ce;
    ka_json_reject_t err;
    eh.event_id = "o-1";
    eh.occurred_at_ms = T_MS;
    eh.producer = "erp";

    /* no ce_specversion: not a CloudEvent, nothing to check */
    headers_t none = {{"content-type"}, {"application/json"}};
    assert_int_equal(ka_ce_from_headers(get_header, &none, &ce, &err), KA_OK);
    assert_null(ce.specversion.ptr);
    assert_int_equal(ka_ce_check_header(&ce, &eh, "ka.v1.OrderEvent", &err), KA_OK);

    headers_t ok = {{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"},
                    {"1.0", "o-1", "/erp", "ka.v1.OrderEvent", "2026-11-18T01:30:00.125Z"}};
    assert_int_equal(ka_ce_from_headers(get_header, &ok, &ce, &err), KA_OK);
    assert_false(ce.structured);
    assert_true(ce.has_time && ce.time_ms == T_MS);
    assert_int_equal(ka_ce_check_header(&ce, &eh, "ka.v1.OrderEvent", &err), KA_OK);
    /* an event without a header is left to the event's validation */
    assert_int_equal(ka_ce_check_header(&ce, NULL, "ka.v1.OrderEvent", &err), KA_OK);

    eh.event_id = "o-2";
    assert_int_equal(ka_ce_check_header(&ce, &eh, "ka.v1.OrderEvent", &err), KA_ERR_INVALID);
    assert_string_equal(err.rej.reason, KA_REASON_CE_MISMATCH);
    assert_string_equal(err.path, "");
    assert_non_null(strstr(err.rej.detail, "ce_id \"o-1\""));
    eh.event_id = "o-1";
    eh.occurred_at_ms = T_MS + 1;
    assert_int_equal(ka_ce_check_header(&ce, &eh, NULL, &err), KA_ERR_INVALID);
    assert_non_null(strstr(err.rej.detail, "ce_time"));

    headers_t bad_time = {{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"},
                          {"1.0", "o-1", "/erp", "ka.v1.OrderEvent", "2026-11-18"}};
    assert_int_equal(ka_ce_from_headers(get_header, &bad_time, &ce, &err), KA_ERR_INVALID);
    assert_string_equal(err.rej.reason, KA_REASON_CE_INVALID);
    headers_t no_id = {{"ce_specversion", "ce_source", "ce_type"}, {"1.0", "/erp", "t"}};
    assert_int_equal(ka_ce_from_headers(get_header, &no_id, &ce, &err), KA_ERR_INVALID);
    assert_non_null(strstr(err.rej.detail, "ce_id is required"));
    headers_t v03 = {{"ce_specversion", "ce_id", "ce_source", "ce_type"},
                     {"0.3", "o-1", "/erp", "t"}};
    assert_int_equal(ka_ce_from_headers(get_header, &v03, &ce, &err), KA_ERR_INVALID);
    assert_string_equal(err.rej.reason, KA_REASON_CE_INVALID);
}

static void test_source_rule(void **state)
{
    (void)state;
#define S(src, prod) ka_ce_source_names(src, strlen(src), prod)
    assert_true(S("erp", "erp"));
    assert_true(S("/erp", "erp"));
    assert_true(S("urn:acme:erp", "erp"));
    assert_true(S("https://acme.com/erp", "erp"));
    assert_false(S("xerp", "erp"));
    assert_false(S("erp/", "erp"));
    assert_false(S("er", "erp"));
    assert_false(S("erp", ""));
    assert_false(S("erp", NULL));
#undef S
    assert_false(ka_ce_source_names(NULL, 0, "erp"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structured_valid),
        cmocka_unit_test(test_structured_mismatches),
        cmocka_unit_test(test_structured_invalid),
        cmocka_unit_test(test_binary_mode_headers),
        cmocka_unit_test(test_source_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

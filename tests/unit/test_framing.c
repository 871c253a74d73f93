/* Content modes and the Confluent wire format (common/ka_framing.c): the
 * mode of each header and first byte, the framing's edge cases with their
 * dead-letter reasons, and the message-index table checked against the
 * .proto files it describes. */
#include <ctype.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_framing.h"
#include "kat/v1/mapping.pb-c.h"

/* ----------------------------------------------------------------------------
 * Content modes
 * ------------------------------------------------------------------------- */

static ka_content_mode_t detect_ok(const char *ct, const char *payload, size_t len)
{
    ka_content_mode_t mode = 0;
    ka_reject_t rej;
    if (ka_content_detect(ct, ct ? strlen(ct) : 0, payload, len, KA_CONTENT_ALL, &mode, &rej) !=
        KA_OK)
        fail_msg("content-type %s refused: %s %s", ct ? ct : "(none)", rej.reason, rej.detail);
    return mode;
}

static void test_detect_modes(void **state)
{
    (void)state;
    const char pb[] = "\x0a\x05\x0a\x03" "e-1";
    const char cf[] = "\x00\x00\x00\x00\x07\x00\x0a\x00";
    /* no content-type: the first byte */
    assert_int_equal(detect_ok(NULL, pb, sizeof pb - 1), KA_CONTENT_PROTOBUF);
    assert_int_equal(detect_ok(NULL, cf, sizeof cf - 1), KA_CONTENT_CONFLUENT);
    assert_int_equal(detect_ok(NULL, "{}", 2), KA_CONTENT_JSON);
    assert_int_equal(detect_ok(NULL, "\n{}", 3), KA_CONTENT_PROTOBUF); /* blanks need the header */
    assert_int_equal(detect_ok(NULL, "", 0), KA_CONTENT_PROTOBUF);     /* refused by the decoder */
    assert_int_equal(detect_ok("", "{}", 2), KA_CONTENT_JSON);         /* empty = absent */
    assert_int_equal(detect_ok(" ; x", "{}", 2), KA_CONTENT_JSON);
    /* JSON types, parameters and case ignored */
    assert_int_equal(detect_ok("application/json", "\n {}", 4), KA_CONTENT_JSON);
    assert_int_equal(detect_ok("Application/JSON; charset=utf-8", "{}", 2), KA_CONTENT_JSON);
    assert_int_equal(detect_ok("application/vnd.acme.order+json", "{}", 2), KA_CONTENT_JSON);
    assert_int_equal(detect_ok("text/json", "{}", 2), KA_CONTENT_JSON);
    /* a JSON header wins over a zero first byte: the JSON parser refuses it */
    assert_int_equal(detect_ok("application/json", cf, sizeof cf - 1), KA_CONTENT_JSON);
    assert_int_equal(detect_ok("application/cloudevents+json; charset=UTF-8", "{}", 2),
                     KA_CONTENT_CLOUDEVENTS);
    assert_int_equal(detect_ok("APPLICATION/CLOUDEVENTS+JSON", " {}", 3), KA_CONTENT_CLOUDEVENTS);
    /* protobuf types: the first byte still tells Confluent framing apart */
    assert_int_equal(detect_ok("application/protobuf", pb, sizeof pb - 1), KA_CONTENT_PROTOBUF);
    assert_int_equal(detect_ok("application/x-protobuf", cf, sizeof cf - 1), KA_CONTENT_CONFLUENT);
    assert_int_equal(detect_ok("application/vnd.google.protobuf", pb, 1), KA_CONTENT_PROTOBUF);
    assert_int_equal(detect_ok("application/octet-stream", cf, 1), KA_CONTENT_CONFLUENT);
    /* a protobuf header with '{' first: protobuf, the decoder refuses it */
    assert_int_equal(detect_ok("application/protobuf", "{}", 2), KA_CONTENT_PROTOBUF);
}

static void detect_refused(const char *ct, const char *payload, size_t len, unsigned accepted,
                           const char *reason)
{
    ka_content_mode_t mode;
    ka_reject_t rej;
    assert_int_equal(ka_content_detect(ct, ct ? strlen(ct) : 0, payload, len, accepted, &mode,
                                       &rej),
                     KA_ERR_INVALID);
    if (strcmp(rej.reason, reason) != 0)
        fail_msg("%s: %s (%s), expected %s", ct ? ct : "(none)", rej.reason, rej.detail, reason);
}

static void test_detect_refusals(void **state)
{
    (void)state;
    detect_refused("application/cloudevents-batch+json", "[]", 2, KA_CONTENT_ALL,
                   KA_REASON_CONTENT_TYPE);
    detect_refused("text/xml", "<a/>", 4, KA_CONTENT_ALL, KA_REASON_CONTENT_TYPE);
    detect_refused("application/avro", "\x02", 1, KA_CONTENT_ALL, KA_REASON_CONTENT_TYPE);
    detect_refused("application/json\x01\xff", "{}", 2, KA_CONTENT_ALL, KA_REASON_CONTENT_TYPE);
    /* modes a topic does not take */
    detect_refused("application/json", "{}", 2, KA_CONTENT_PROTOBUF, KA_REASON_MODE_REFUSED);
    detect_refused(NULL, "{}", 2, KA_CONTENT_PROTOBUF | KA_CONTENT_CONFLUENT,
                   KA_REASON_MODE_REFUSED);
    detect_refused(NULL, "\x00", 1, KA_CONTENT_PROTOBUF, KA_REASON_MODE_REFUSED);
    detect_refused(NULL, "\x0a", 1, KA_CONTENT_JSON, KA_REASON_MODE_REFUSED);
    detect_refused("application/cloudevents+json", "{}", 2,
                   KA_CONTENT_ALL & ~(unsigned)KA_CONTENT_CLOUDEVENTS, KA_REASON_MODE_REFUSED);
}

static void test_modes_config(void **state)
{
    (void)state;
    unsigned m = 0;
    char err[160];
    assert_int_equal(ka_content_modes_parse("all", &m, err, sizeof err), 0);
    assert_int_equal(m, KA_CONTENT_ALL);
    assert_int_equal(ka_content_modes_parse("protobuf,json", &m, err, sizeof err), 0);
    assert_int_equal(m, KA_CONTENT_PROTOBUF | KA_CONTENT_JSON);
    assert_int_equal(ka_content_modes_parse(" confluent , cloudevents ", &m, err, sizeof err), 0);
    assert_int_equal(m, KA_CONTENT_CONFLUENT | KA_CONTENT_CLOUDEVENTS);
    m = 99;
    assert_int_equal(ka_content_modes_parse("json,xml", &m, err, sizeof err), -1);
    assert_int_equal(m, 99);
    assert_non_null(strstr(err, "xml"));
    assert_int_equal(ka_content_modes_parse("", &m, err, sizeof err), -1);
    assert_int_equal(ka_content_modes_parse("json,,protobuf", &m, err, sizeof err), -1);
    assert_int_equal(ka_content_modes_parse(NULL, &m, err, sizeof err), -1);
    assert_string_equal(ka_content_mode_name(KA_CONTENT_CONFLUENT), "confluent");
    assert_string_equal(ka_content_mode_name(KA_CONTENT_CLOUDEVENTS), "cloudevents");
    assert_string_equal(ka_content_mode_name((ka_content_mode_t)3), "?");
}

/* ----------------------------------------------------------------------------
 * Confluent framing
 * ------------------------------------------------------------------------- */

static void parse_ok(const char *buf, size_t len, ka_confluent_t *c)
{
    ka_reject_t rej;
    if (ka_confluent_parse(buf, len, c, &rej) != KA_OK)
        fail_msg("framing refused: %s", rej.detail);
}

static void parse_bad(const char *buf, size_t len, const char *reason)
{
    ka_confluent_t c;
    ka_reject_t rej;
    assert_int_equal(ka_confluent_parse(buf, len, &c, &rej), KA_ERR_INVALID);
    if (strcmp(rej.reason, reason) != 0)
        fail_msg("%s (%s), expected %s", rej.reason, rej.detail, reason);
}

static void test_confluent_parse(void **state)
{
    (void)state;
    ka_confluent_t c;
    /* the single 0 byte: [0] */
    parse_ok("\x00\x00\x01\x86\xa1\x00\x0a\x00", 8, &c);
    assert_int_equal(c.schema_id, 100001);
    assert_int_equal(c.n_indexes, 1);
    assert_int_equal(c.indexes[0], 0);
    assert_int_equal(c.payload_len, 2);
    assert_memory_equal(c.payload, "\x0a\x00", 2);
    /* [0] written out in full (count 1 = zig-zag 2) */
    parse_ok("\x00\x00\x00\x00\x01\x02\x00\x0a", 8, &c);
    assert_int_equal(c.n_indexes, 1);
    assert_int_equal(c.indexes[0], 0);
    assert_int_equal(c.payload_len, 1);
    /* [3] and the nested [1, 2] */
    parse_ok("\x00\x00\x00\x00\x01\x02\x06", 7, &c);
    assert_int_equal(c.n_indexes, 1);
    assert_int_equal(c.indexes[0], 3);
    parse_ok("\x00\xff\xff\xff\xff\x04\x02\x04\x0a\x00", 10, &c);
    assert_true(c.schema_id == 0xffffffffu);
    assert_int_equal(c.n_indexes, 2);
    assert_int_equal(c.indexes[0], 1);
    assert_int_equal(c.indexes[1], 2);
    assert_int_equal(c.payload_len, 2);
    /* an index of 5 varint bytes: 2^31 - 1 */
    parse_ok("\x00\x00\x00\x00\x01\x02\xfe\xff\xff\xff\x0f", 11, &c);
    assert_int_equal(c.indexes[0], INT32_MAX);
    /* a negative index is well framed; it names no message */
    parse_ok("\x00\x00\x00\x00\x01\x02\x01", 7, &c);
    assert_int_equal(c.indexes[0], -1);
    /* eight indexes, the most taken */
    parse_ok("\x00\x00\x00\x00\x01\x10\x00\x00\x00\x00\x00\x00\x00\x00", 14, &c);
    assert_int_equal(c.n_indexes, 8);
    /* an empty message after the header: framing holds, the decoder refuses */
    parse_ok("\x00\x00\x00\x00\x01\x00", 6, &c);
    assert_int_equal(c.payload_len, 0);

    /* truncated framing */
    parse_bad(NULL, 0, KA_REASON_FRAMING);
    parse_bad("", 0, KA_REASON_FRAMING);
    parse_bad("\x00", 1, KA_REASON_FRAMING);
    parse_bad("\x00\x00\x00\x01", 4, KA_REASON_FRAMING);
    parse_bad("\x00\x00\x00\x00\x01", 5, KA_REASON_FRAMING);              /* no index array */
    parse_bad("\x00\x00\x00\x00\x01\x80", 6, KA_REASON_FRAMING);          /* count cut */
    parse_bad("\x00\x00\x00\x00\x01\x04\x02", 7, KA_REASON_FRAMING);      /* 2 indexes, 1 given */
    parse_bad("\x00\x00\x00\x00\x01\x02\x82", 7, KA_REASON_FRAMING);      /* index cut */
    /* malformed */
    parse_bad("\x01\x00\x00\x00\x01\x00", 6, KA_REASON_FRAMING);          /* magic byte */
    parse_bad("\x00\x00\x00\x00\x01\x01\x00", 7, KA_REASON_FRAMING);      /* count -1 */
    parse_bad("\x00\x00\x00\x00\x01\x12\x00", 7, KA_REASON_FRAMING);      /* count 9 */
    parse_bad("\x00\x00\x00\x00\x01\xff\xff\xff\xff\x7f", 10, KA_REASON_FRAMING); /* 5th byte */
    parse_bad("\x00\x00\x00\x00\x01\x80\x80\x80\x80\x80\x00", 11, KA_REASON_FRAMING); /* 6 bytes */
}

static void check_index(const char *frame, size_t len, const ProtobufCMessageDescriptor *d,
                        const char *reason, const char *names)
{
    ka_confluent_t c;
    ka_reject_t rej;
    parse_ok(frame, len, &c);
    ka_err_t rc = ka_confluent_check_index(&c, d, &rej);
    if (!reason) {
        if (rc != KA_OK)
            fail_msg("index refused for %s: %s", d->name, rej.detail);
        return;
    }
    assert_int_equal(rc, KA_ERR_INVALID);
    assert_string_equal(rej.reason, reason);
    if (names && !strstr(rej.detail, names))
        fail_msg("detail \"%s\" does not say %s", rej.detail, names);
}

static void test_confluent_index(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *opp = &ka__v1__opportunity_event__descriptor;
    const ProtobufCMessageDescriptor *order = &ka__v1__order_event__descriptor;
    const ProtobufCMessageDescriptor *visit = &ka__v1__visit_event__descriptor;
    /* every input event is the first message of its file */
    check_index("\x00\x00\x00\x00\x01\x00", 6, opp, NULL, NULL);
    check_index("\x00\x00\x00\x00\x01\x02\x00", 7, order, NULL, NULL);
    check_index("\x00\x00\x00\x00\x01\x00", 6, visit, NULL, NULL);
    /* another type of the same file: a dead letter naming it */
    check_index("\x00\x00\x00\x00\x01\x02\x02", 7, opp, KA_REASON_MESSAGE_INDEX,
                "ka.v1.OpportunityCreated");
    check_index("\x00\x00\x00\x00\x01\x02\x02", 7, visit, KA_REASON_MESSAGE_INDEX,
                "ka.v1.ContactMet");
    check_index("\x00\x00\x00\x00\x01\x02\x02", 7, order, KA_REASON_MESSAGE_INDEX,
                "no message of its file");
    check_index("\x00\x00\x00\x00\x01\x02\x01", 7, order, KA_REASON_MESSAGE_INDEX, "[-1]");
    /* nested [0, 0]: not the top-level event */
    check_index("\x00\x00\x00\x00\x01\x04\x00\x00", 8, order, KA_REASON_MESSAGE_INDEX, "[0, 0]");
    /* a type outside the table */
    check_index("\x00\x00\x00\x00\x01\x00", 6, &kat__v1__scalars__descriptor,
                KA_REASON_MESSAGE_INDEX, "no index is known");

    int32_t path[4];
    assert_int_equal(ka_proto_message_index(&ka__v1__stage_changed__descriptor, path, 4), 1);
    assert_int_equal(path[0], 3);
    assert_int_equal(ka_proto_message_index(&kat__v1__scalars__descriptor, path, 4), 0);
    assert_int_equal(ka_proto_message_index(opp, path, 0), 0);
    int32_t p10 = 10, p11 = 11;
    assert_string_equal(ka_proto_message_at(opp, &p10, 1), "ka.v1.OpportunityReopened");
    assert_null(ka_proto_message_at(opp, &p11, 1));
}

/* ----------------------------------------------------------------------------
 * The index table against the .proto files of proto/ka/v1
 * ------------------------------------------------------------------------- */

/* Top-level `message X` names of a .proto file, in order ("ka.v1.X"):
 * comments dropped, braces counted. Returns their number. */
static size_t proto_messages(const char *path, char names[][160], size_t max)
{
    FILE *f = fopen(path, "r");
    char line[1024], package[64] = "";
    size_t n = 0;
    int depth = 0;

    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        char *c = strstr(line, "//");
        if (c)
            *c = '\0';
        char word[64];
        if (depth == 0 && sscanf(line, " package %63[A-Za-z0-9_.]", package) == 1)
            continue;
        if (depth == 0 && sscanf(line, " message %63[A-Za-z0-9_]", word) == 1) {
            assert_true(n < max);
            snprintf(names[n++], 160, "%s.%s", package, word);
        }
        for (char *p = line; *p; p++)
            depth += *p == '{' ? 1 : *p == '}' ? -1 : 0;
    }
    fclose(f);
    return n;
}

static void test_index_table_matches_protos(void **state)
{
    (void)state;
    char dir[512], path[1024], names[64][160];
    size_t files = 0;
    snprintf(dir, sizeof dir, "%s/proto/ka/v1", KA_SOURCE_DIR);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 7 || strcmp(de->d_name + l - 6, ".proto") != 0)
            continue;
        files++;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t n = proto_messages(path, names, 64);
        assert_true(n > 0);
        ProtobufCMessageDescriptor first = {0};
        first.name = names[0];
        for (size_t i = 0; i < n; i++) {
            ProtobufCMessageDescriptor fake = {0};
            int32_t idx[2];
            fake.name = names[i];
            if (ka_proto_message_index(&fake, idx, 2) != 1)
                fail_msg("%s (%s) is not in ka_framing.c's table", names[i], de->d_name);
            if (idx[0] != (int32_t)i)
                fail_msg("%s is message %zu of %s, the table says %d", names[i], i, de->d_name,
                         (int)idx[0]);
            /* and the table's file is this file: same neighbours */
            int32_t at = (int32_t)i;
            assert_string_equal(ka_proto_message_at(&first, &at, 1), names[i]);
        }
        int32_t past = (int32_t)n;
        if (ka_proto_message_at(&first, &past, 1))
            fail_msg("the table lists more messages for %s than its %zu", de->d_name, n);
    }
    closedir(d);
    assert_int_equal(files, 7);
}

/* A real event through the framing: the payload unpacks. */
static void test_framed_event_unpacks(void **state)
{
    (void)state;
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OrderEvent e = KA__V1__ORDER_EVENT__INIT;
    h.event_id = "o-1";
    e.header = &h;
    e.order_id = "ord-1";
    uint8_t buf[128] = {0, 0, 0, 0, 42, 0};
    size_t n = ka__v1__order_event__pack(&e, buf + 6);
    ka_confluent_t c;
    ka_reject_t rej;
    assert_int_equal(ka_confluent_parse(buf, n + 6, &c, &rej), KA_OK);
    assert_int_equal(c.schema_id, 42);
    assert_int_equal(ka_confluent_check_index(&c, &ka__v1__order_event__descriptor, &rej), KA_OK);
    Ka__V1__OrderEvent *got = ka__v1__order_event__unpack(NULL, c.payload_len, c.payload);
    assert_non_null(got);
    assert_string_equal(got->header->event_id, "o-1");
    assert_string_equal(got->order_id, "ord-1");
    ka__v1__order_event__free_unpacked(got, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_modes),
        cmocka_unit_test(test_detect_refusals),
        cmocka_unit_test(test_modes_config),
        cmocka_unit_test(test_confluent_parse),
        cmocka_unit_test(test_confluent_index),
        cmocka_unit_test(test_index_table_matches_protos),
        cmocka_unit_test(test_framed_event_unpacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

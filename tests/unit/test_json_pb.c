/* The proto3 JSON mapping into protobuf-c messages (common/ka_json_pb.c):
 * every mapping rule and every rejection, with its dead-letter reason and
 * the JSON path it names; our own events convert to the message the binary
 * path unpacks, byte for byte once packed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka/v1/alert.pb-c.h"
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka_json_pb.h"
#include "ka_rfc3339.h"
#include "ka_wire.h"
#include "kat/v1/legacy.pb-c.h"
#include "kat/v1/mapping.pb-c.h"

#define SC (&kat__v1__scalars__descriptor)

static ProtobufCMessage *convert_ok_opts(const ProtobufCMessageDescriptor *d, const char *json,
                                         const ka_json_opts_t *opts)
{
    ProtobufCMessage *m = (ProtobufCMessage *)0x1;
    ka_json_reject_t err;
    ka_err_t rc = ka_json_pb_parse(d, json, strlen(json), opts, &m, &err);
    if (rc != KA_OK)
        fail_msg("%s rejected: %s %s", json, err.rej.reason, err.rej.detail);
    assert_non_null(m);
    return m;
}

static Kat__V1__Scalars *sc_ok(const char *json)
{
    return (Kat__V1__Scalars *)convert_ok_opts(SC, json, NULL);
}

static void sc_free(Kat__V1__Scalars *m)
{
    kat__v1__scalars__free_unpacked(m, NULL);
}

/* Refused with the reason and path (NULL: any path); *out stays NULL. */
static void rejects_opts(const ProtobufCMessageDescriptor *d, const char *json, size_t len,
                         const ka_json_opts_t *opts, const char *reason, const char *path)
{
    ProtobufCMessage *m = (ProtobufCMessage *)0x1;
    ka_json_reject_t err;
    memset(&err, 0x5a, sizeof err);
    ka_err_t rc = ka_json_pb_parse(d, json, len, opts, &m, &err);
    if (rc != KA_ERR_INVALID) {
        if (m && m != (ProtobufCMessage *)0x1)
            protobuf_c_message_free_unpacked(m, NULL);
        fail_msg("%s accepted, expected %s", json, reason);
    }
    assert_null(m);
    if (strcmp(err.rej.reason, reason) != 0)
        fail_msg("%s: reason %s (%s), expected %s", json, err.rej.reason, err.rej.detail, reason);
    assert_non_null(memchr(err.rej.detail, '\0', sizeof err.rej.detail));
    assert_non_null(memchr(err.path, '\0', sizeof err.path));
    if (path && strcmp(err.path, path) != 0)
        fail_msg("%s: path %s (%s), expected %s", json, err.path, err.rej.detail, path);
    if (err.path[0])
        assert_true(strncmp(err.rej.detail, err.path, strlen(err.path)) == 0);
}

static void rejects(const char *json, const char *reason, const char *path)
{
    rejects_opts(SC, json, strlen(json), NULL, reason, path);
}

/* ----------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------- */

static void test_json_names(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(ka_json_name("unit_price_minor", out, sizeof out), 14);
    assert_string_equal(out, "unitPriceMinor");
    ka_json_name("relationship_degree_over_80", out, sizeof out);
    assert_string_equal(out, "relationshipDegreeOver80");
    ka_json_name("id", out, sizeof out);
    assert_string_equal(out, "id");
    assert_int_equal(ka_json_name("quantity_milli", out, 5), 13); /* truncated, length needed */
    assert_string_equal(out, "quan");
}

static void test_camel_and_original_names(void **state)
{
    (void)state;
    Kat__V1__Scalars *m = sc_ok("{\"multiWordFieldName\": \"a\"}");
    assert_string_equal(m->multi_word_field_name, "a");
    sc_free(m);
    m = sc_ok("{\"multi_word_field_name\": \"b\"}");
    assert_string_equal(m->multi_word_field_name, "b");
    sc_free(m);
    /* both names of one field: given twice */
    rejects("{\"multiWordFieldName\": \"a\", \"multi_word_field_name\": \"b\"}",
            KA_REASON_DUPLICATE_FIELD, "$.multi_word_field_name");
    /* a key given twice is refused by the parser, not silently overwritten */
    rejects("{\"i32\": 1, \"i32\": 2}", KA_REASON_DUPLICATE_FIELD, "");
    /* neither name: unknown (case matters) */
    rejects("{\"MultiWordFieldName\": \"a\"}", KA_REASON_UNKNOWN_FIELD, "$.MultiWordFieldName");
}

/* ----------------------------------------------------------------------------
 * Integers
 * ------------------------------------------------------------------------- */

static void test_int32_forms(void **state)
{
    (void)state;
    Kat__V1__Scalars *m = sc_ok("{\"i32\": -2147483648, \"s32\": \"2147483647\", \"sf32\": 1e3,"
                                " \"u32\": 4294967295, \"f32\": \"7\"}");
    assert_int_equal(m->i32, INT32_MIN);
    assert_int_equal(m->s32, INT32_MAX);
    assert_int_equal(m->sf32, 1000);
    assert_true(m->u32 == UINT32_MAX);
    assert_int_equal(m->f32, 7);
    sc_free(m);
    m = sc_ok("{\"i32\": 5.0, \"u32\": \"-0\"}");
    assert_int_equal(m->i32, 5);
    assert_int_equal(m->u32, 0);
    sc_free(m);
    rejects("{\"i32\": 2147483648}", KA_REASON_OUT_OF_RANGE, "$.i32");
    rejects("{\"i32\": \"-2147483649\"}", KA_REASON_OUT_OF_RANGE, "$.i32");
    rejects("{\"u32\": -1}", KA_REASON_OUT_OF_RANGE, "$.u32");
    rejects("{\"f32\": 4294967296}", KA_REASON_OUT_OF_RANGE, "$.f32");
    rejects("{\"i32\": 1.5}", KA_REASON_WRONG_TYPE, "$.i32");
    rejects("{\"i32\": \"12x\"}", KA_REASON_WRONG_TYPE, "$.i32");
    rejects("{\"i32\": \"+1\"}", KA_REASON_WRONG_TYPE, "$.i32");
    rejects("{\"i32\": \" 1\"}", KA_REASON_WRONG_TYPE, "$.i32");
    rejects("{\"i32\": \"\"}", KA_REASON_WRONG_TYPE, "$.i32");
    rejects("{\"i32\": \"1.0\"}", KA_REASON_WRONG_TYPE, "$.i32");
    rejects("{\"i32\": true}", KA_REASON_WRONG_TYPE, "$.i32");
    rejects("{\"i32\": [1]}", KA_REASON_WRONG_TYPE, "$.i32");
    rejects("{\"i32\": {}}", KA_REASON_WRONG_TYPE, "$.i32");
}

static void test_int64_strings_and_numbers(void **state)
{
    (void)state;
    Kat__V1__Scalars *m = sc_ok("{\"i64\": \"9223372036854775807\", \"s64\": -9223372036854775808,"
                                " \"sf64\": 9007199254740993, \"u64\": \"18446744073709551615\","
                                " \"f64\": 1e19}");
    assert_true(m->i64 == INT64_MAX);
    assert_true(m->s64 == INT64_MIN);
    assert_true(m->sf64 == 9007199254740993LL); /* exact past 2^53: jansson keeps integers */
    assert_true(m->u64 == UINT64_MAX);
    assert_true(m->f64 == 10000000000000000000ULL);
    sc_free(m);
    m = sc_ok("{\"i64\": \"-9223372036854775808\"}");
    assert_true(m->i64 == INT64_MIN);
    sc_free(m);
    /* int64 out of range, as a string: with its path */
    rejects("{\"i64\": \"9223372036854775808\"}", KA_REASON_OUT_OF_RANGE, "$.i64");
    rejects("{\"i64\": \"-9223372036854775809\"}", KA_REASON_OUT_OF_RANGE, "$.i64");
    rejects("{\"i64\": \"99999999999999999999999\"}", KA_REASON_OUT_OF_RANGE, "$.i64");
    rejects("{\"i64\": 1e19}", KA_REASON_OUT_OF_RANGE, "$.i64");
    rejects("{\"u64\": \"18446744073709551616\"}", KA_REASON_OUT_OF_RANGE, "$.u64");
    rejects("{\"u64\": \"-1\"}", KA_REASON_OUT_OF_RANGE, "$.u64");
    rejects("{\"u64\": 1e20}", KA_REASON_OUT_OF_RANGE, "$.u64");
    /* as a bare number past int64 the parser itself refuses it: same reason,
     * the position in the detail instead of a path */
    rejects("{\"i64\": 9223372036854775808}", KA_REASON_OUT_OF_RANGE, "");
    rejects("{\"i64\": 1.25}", KA_REASON_WRONG_TYPE, "$.i64");
}

/* ----------------------------------------------------------------------------
 * Other scalars
 * ------------------------------------------------------------------------- */

static void test_floats(void **state)
{
    (void)state;
    Kat__V1__Scalars *m = sc_ok("{\"fl\": 1.5, \"db\": \"-2.25e2\"}");
    assert_true(m->fl == 1.5f);
    assert_true(m->db == -225.0);
    sc_free(m);
    m = sc_ok("{\"fl\": \"NaN\", \"db\": \"-Infinity\", \"reals\": [\"Infinity\", 3, 1e308]}");
    assert_true(m->fl != m->fl);
    assert_true(m->db < -1e308 && m->db * 0 != 0);
    assert_int_equal(m->n_reals, 3);
    assert_true(m->reals[1] == 3.0 && m->reals[2] == 1e308);
    sc_free(m);
    rejects("{\"fl\": 1e39}", KA_REASON_OUT_OF_RANGE, "$.fl");
    rejects("{\"db\": \"1e999\"}", KA_REASON_OUT_OF_RANGE, "$.db");
    rejects("{\"db\": 1e999}", KA_REASON_OUT_OF_RANGE, ""); /* refused by the parser */
    rejects("{\"db\": \"abc\"}", KA_REASON_WRONG_TYPE, "$.db");
    rejects("{\"db\": \"0x10\"}", KA_REASON_WRONG_TYPE, "$.db");
    rejects("{\"db\": \"inf\"}", KA_REASON_WRONG_TYPE, "$.db");
    rejects("{\"db\": \" 1\"}", KA_REASON_WRONG_TYPE, "$.db");
    rejects("{\"db\": false}", KA_REASON_WRONG_TYPE, "$.db");
}

static void test_bool_and_string(void **state)
{
    (void)state;
    Kat__V1__Scalars *m = sc_ok("{\"flag\": true, \"text\": \"Zhang \\u5f20 \xe4\xb8\x89\","
                                " \"bits\": [true, false, true]}");
    assert_true(m->flag);
    assert_string_equal(m->text, "Zhang \xe5\xbc\xa0 \xe4\xb8\x89");
    assert_int_equal(m->n_bits, 3);
    assert_true(m->bits[0] && !m->bits[1] && m->bits[2]);
    sc_free(m);
    m = sc_ok("{\"text\": \"\"}");
    assert_string_equal(m->text, "");
    sc_free(m);
    rejects("{\"flag\": \"true\"}", KA_REASON_WRONG_TYPE, "$.flag");
    rejects("{\"flag\": 1}", KA_REASON_WRONG_TYPE, "$.flag");
    rejects("{\"text\": 5}", KA_REASON_WRONG_TYPE, "$.text");
    /* a NUL would cut the C string short: refused as on the wire */
    rejects("{\"text\": \"e-1\\u0000x\"}", KA_REASON_NUL, "$.text");
    rejects("{\"words\": [\"a\", \"\\u0000\"]}", KA_REASON_NUL, "$.words[1]");
    /* invalid UTF-8 and lone surrogates never get past the parser */
    rejects("{\"text\": \"\xff\xfe\"}", KA_REASON_UTF8, "");
    rejects("{\"text\": \"\xed\xa0\x80\"}", KA_REASON_UTF8, "");
    rejects("{\"text\": \"\\ud800\"}", KA_REASON_DECODE, "");
}

static void test_bytes_base64(void **state)
{
    (void)state;
    Kat__V1__Scalars *m = sc_ok("{\"blob\": \"aGVsbG8=\", \"blobs\": [\"aGVsbG8\", \"-_8\", \"\","
                                " \"+/8=\"]}");
    assert_int_equal(m->blob.len, 5);
    assert_memory_equal(m->blob.data, "hello", 5);
    assert_int_equal(m->n_blobs, 4);
    assert_int_equal(m->blobs[0].len, 5);
    assert_memory_equal(m->blobs[0].data, "hello", 5);
    assert_int_equal(m->blobs[1].len, 2);
    assert_memory_equal(m->blobs[1].data, "\xfb\xff", 2);
    assert_int_equal(m->blobs[2].len, 0);
    assert_memory_equal(m->blobs[3].data, "\xfb\xff", 2);
    sc_free(m);
    rejects("{\"blob\": \"!!\"}", KA_REASON_WRONG_TYPE, "$.blob");
    rejects("{\"blob\": \"a\"}", KA_REASON_WRONG_TYPE, "$.blob");
    rejects("{\"blob\": \"aGVsbG8==\"}", KA_REASON_WRONG_TYPE, "$.blob");
    rejects("{\"blob\": \"a===\"}", KA_REASON_WRONG_TYPE, "$.blob");
    rejects("{\"blobs\": [\"AA==\", 5]}", KA_REASON_WRONG_TYPE, "$.blobs[1]");
}

static void test_enums(void **state)
{
    (void)state;
    Kat__V1__Scalars *m = sc_ok("{\"color\": \"COLOR_GREEN\", \"colors\": [\"COLOR_RED\", 2, 7]}");
    assert_int_equal(m->color, KAT__V1__COLOR__COLOR_GREEN);
    assert_int_equal(m->n_colors, 3);
    assert_int_equal(m->colors[0], KAT__V1__COLOR__COLOR_RED);
    assert_int_equal(m->colors[1], KAT__V1__COLOR__COLOR_GREEN);
    /* an unknown number passes, as proto3 enums are open on the wire too:
     * the event's validation refuses it with the same reason in every mode */
    assert_int_equal(m->colors[2], 7);
    sc_free(m);
    rejects("{\"color\": \"COLOR_BLUE\"}", KA_REASON_ENUM, "$.color");
    rejects("{\"color\": \"color_red\"}", KA_REASON_ENUM, "$.color");
    rejects("{\"color\": \"COLOR_RED\\u0000\"}", KA_REASON_ENUM, "$.color");
    rejects("{\"colors\": [\"COLOR_RED\", \"RED\"]}", KA_REASON_ENUM, "$.colors[1]");
    rejects("{\"color\": \"1\"}", KA_REASON_ENUM, "$.color");
    rejects("{\"color\": 1.5}", KA_REASON_WRONG_TYPE, "$.color");
    rejects("{\"color\": 4294967296}", KA_REASON_OUT_OF_RANGE, "$.color");
    rejects("{\"color\": true}", KA_REASON_WRONG_TYPE, "$.color");
}

static void test_null_is_default(void **state)
{
    (void)state;
    Kat__V1__Scalars *m = sc_ok("{\"i32\": null, \"text\": null, \"inner\": null, \"nums\": null,"
                                " \"counts\": null, \"choiceText\": null, \"at\": null,"
                                " \"color\": null}");
    assert_int_equal(m->i32, 0);
    assert_string_equal(m->text, "");
    assert_null(m->inner);
    assert_int_equal(m->n_nums, 0);
    assert_int_equal(m->n_counts, 0);
    assert_null(m->at);
    assert_int_equal(m->choice_case, KAT__V1__SCALARS__CHOICE__NOT_SET);
    sc_free(m);
    rejects("{\"nums\": [1, null]}", KA_REASON_WRONG_TYPE, "$.nums[1]");
}

/* ----------------------------------------------------------------------------
 * Messages, lists, maps, oneofs
 * ------------------------------------------------------------------------- */

static void test_nested_and_repeated(void **state)
{
    (void)state;
    Kat__V1__Scalars *m =
        sc_ok("{\"inner\": {\"name\": \"x\", \"count\": \"5\", \"children\": [{\"name\": \"y\"}]},"
              " \"nums\": [1, \"2\", 3.0], \"words\": [\"a\", \"b\"],"
              " \"inners\": [{}, {\"count\": 1}]}");
    assert_string_equal(m->inner->name, "x");
    assert_true(m->inner->count == 5);
    assert_int_equal(m->inner->n_children, 1);
    assert_string_equal(m->inner->children[0]->name, "y");
    assert_int_equal(m->n_nums, 3);
    assert_true(m->nums[0] == 1 && m->nums[1] == 2 && m->nums[2] == 3);
    assert_int_equal(m->n_words, 2);
    assert_string_equal(m->words[1], "b");
    assert_int_equal(m->n_inners, 2);
    assert_string_equal(m->inners[0]->name, "");
    assert_true(m->inners[1]->count == 1);
    sc_free(m);
    rejects("{\"inners\": [{}, {}, {\"count\": \"x\"}]}", KA_REASON_WRONG_TYPE, "$.inners[2].count");
    rejects("{\"inner\": {\"children\": [{}, {\"nope\": 1}]}}", KA_REASON_UNKNOWN_FIELD,
            "$.inner.children[1].nope");
    rejects("{\"inner\": [1]}", KA_REASON_WRONG_TYPE, "$.inner");
    rejects("{\"inner\": \"x\"}", KA_REASON_WRONG_TYPE, "$.inner");
    rejects("{\"nums\": 1}", KA_REASON_WRONG_TYPE, "$.nums");
    rejects("{\"nums\": [[1]]}", KA_REASON_WRONG_TYPE, "$.nums[0]");
    rejects("{\"inners\": [1]}", KA_REASON_WRONG_TYPE, "$.inners[0]");
}

static void test_list_bound(void **state)
{
    (void)state;
    char json[4096];
    size_t n = (size_t)snprintf(json, sizeof json, "{\"nums\": [");
    for (int i = 0; i < KA_MAX_LIST_LEN; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "%s%d", i ? "," : "", i);
    snprintf(json + n, sizeof json - n, "]}");
    Kat__V1__Scalars *m = sc_ok(json); /* 200: the bound itself */
    assert_int_equal(m->n_nums, KA_MAX_LIST_LEN);
    sc_free(m);
    snprintf(json + n, sizeof json - n, ",7]}");
    rejects(json, KA_REASON_LIST, "$.nums");
    ka_json_opts_t opts = {.max_list = 2};
    rejects_opts(SC, "{\"words\": [\"a\", \"b\", \"c\"]}", 26, &opts, KA_REASON_LIST, "$.words");
    rejects_opts(SC, "{\"counts\": {\"a\": 1, \"b\": 2, \"c\": 3}}", 36, &opts, KA_REASON_LIST,
                 "$.counts");
}

static void test_maps(void **state)
{
    (void)state;
    Kat__V1__Scalars *m = sc_ok("{\"counts\": {\"a\": 1, \"b\": \"2\"}, \"names\": {\"-2\": \"m\"},"
                                " \"flags\": {\"true\": {\"name\": \"t\"}, \"false\": {}},"
                                " \"codes\": {\"18446744073709551615\": \"COLOR_RED\"}}");
    assert_int_equal(m->n_counts, 2);
    assert_string_equal(m->counts[0]->key, "a"); /* document order */
    assert_true(m->counts[0]->value == 1);
    assert_string_equal(m->counts[1]->key, "b");
    assert_true(m->counts[1]->value == 2);
    assert_int_equal(m->n_names, 1);
    assert_int_equal(m->names[0]->key, -2);
    assert_string_equal(m->names[0]->value, "m");
    assert_int_equal(m->n_flags, 2);
    assert_true(m->flags[0]->key && !m->flags[1]->key);
    assert_string_equal(m->flags[0]->value->name, "t");
    assert_true(m->codes[0]->key == UINT64_MAX);
    assert_int_equal(m->codes[0]->value, KAT__V1__COLOR__COLOR_RED);
    sc_free(m);
    rejects("{\"names\": {\"x\": \"one\"}}", KA_REASON_WRONG_TYPE, "$.names.x");
    rejects("{\"names\": {\"2147483648\": \"one\"}}", KA_REASON_OUT_OF_RANGE,
            "$.names[\"2147483648\"]");
    rejects("{\"flags\": {\"yes\": {}}}", KA_REASON_WRONG_TYPE, "$.flags.yes");
    rejects("{\"counts\": {\"a b\": \"x\"}}", KA_REASON_WRONG_TYPE, "$.counts[\"a b\"]");
    rejects("{\"counts\": {\"a\": null}}", KA_REASON_WRONG_TYPE, "$.counts.a");
    rejects("{\"counts\": [1]}", KA_REASON_WRONG_TYPE, "$.counts");
    rejects("{\"flags\": {\"true\": {\"nope\": 1}}}", KA_REASON_UNKNOWN_FIELD,
            "$.flags.true.nope");

    /* the map of our own alert schema */
    Ka__V1__AlertEvent *a = (Ka__V1__AlertEvent *)convert_ok_opts(
        &ka__v1__alert_event__descriptor, "{\"details\": {\"node\": \"n-1\", \"gap\": \"5\"}}",
        NULL);
    assert_int_equal(a->n_details, 2);
    assert_string_equal(a->details[1]->key, "gap");
    assert_string_equal(a->details[1]->value, "5");
    ka__v1__alert_event__free_unpacked(a, NULL);
}

static void test_oneof(void **state)
{
    (void)state;
    Kat__V1__Scalars *m = sc_ok("{\"choiceText\": \"t\"}");
    assert_int_equal(m->choice_case, KAT__V1__SCALARS__CHOICE_CHOICE_TEXT);
    assert_string_equal(m->choice_text, "t");
    sc_free(m);
    m = sc_ok("{\"choice_inner\": {\"name\": \"i\"}, \"choiceText\": null}");
    assert_int_equal(m->choice_case, KAT__V1__SCALARS__CHOICE_CHOICE_INNER);
    assert_string_equal(m->choice_inner->name, "i");
    sc_free(m);
    /* a member set to its default is still present: proto3 presence */
    m = sc_ok("{\"choiceNum\": 0}");
    assert_int_equal(m->choice_case, KAT__V1__SCALARS__CHOICE_CHOICE_NUM);
    sc_free(m);
    rejects("{\"choiceText\": \"t\", \"choiceNum\": 1}", KA_REASON_DUPLICATE_FIELD, "$.choiceNum");
    /* the second member fails after the first was built: freed on the way out */
    rejects("{\"choiceInner\": {\"name\": \"i\"}, \"choiceText\": \"t\"}", KA_REASON_DUPLICATE_FIELD,
            "$.choiceText");
    rejects("{\"choiceInner\": {\"name\": 5}}", KA_REASON_WRONG_TYPE, "$.choiceInner.name");
    rejects("{\"choiceText\": 5}", KA_REASON_WRONG_TYPE, "$.choiceText");
}

static void test_timestamp(void **state)
{
    (void)state;
    Kat__V1__Scalars *m = sc_ok("{\"at\": \"2026-11-18T09:30:00.125+08:00\"}");
    assert_non_null(m->at);
    assert_true(m->at->seconds == 1794965400LL); /* 2026-11-18T01:30:00Z */
    assert_int_equal(m->at->nanos, 125000000);
    sc_free(m);
    m = sc_ok("{\"at\": \"1970-01-01T00:00:00Z\"}");
    assert_true(m->at->seconds == 0 && m->at->nanos == 0);
    sc_free(m);
    rejects("{\"at\": \"2026-02-30T00:00:00Z\"}", KA_REASON_WRONG_TYPE, "$.at");
    rejects("{\"at\": 1795000000}", KA_REASON_WRONG_TYPE, "$.at");
    rejects("{\"at\": {\"seconds\": 1}}", KA_REASON_WRONG_TYPE, "$.at");
}

static void test_rfc3339(void **state)
{
    (void)state;
    int64_t s;
    int32_t ns;
#define P(text) ka_rfc3339_parse(text, strlen(text), &s, &ns)
    assert_int_equal(P("2026-11-18T00:00:00Z"), 0);
    assert_true(s == 1794960000LL && ns == 0);
    assert_int_equal(P("2026-11-18T08:00:00.5+08:00"), 0);
    assert_true(s == 1794960000LL && ns == 500000000);
    assert_int_equal(P("2026-11-17t19:30:00.123456789-04:30"), 0);
    assert_true(s == 1794960000LL && ns == 123456789);
    assert_int_equal(P("2024-02-29 00:00:00z"), 0);
    assert_int_equal(P("0001-01-01T00:00:00Z"), 0);
    assert_true(s == -62135596800LL);
    assert_int_equal(P("9999-12-31T23:59:59.999999999Z"), 0);
    assert_int_equal(P("2023-02-29T00:00:00Z"), -1);
    assert_int_equal(P("1900-02-29T00:00:00Z"), -1);
    assert_int_equal(P("2026-13-01T00:00:00Z"), -1);
    assert_int_equal(P("2026-11-18T24:00:00Z"), -1);
    assert_int_equal(P("2026-11-18T23:59:60Z"), -1);
    assert_int_equal(P("2026-11-18T00:00:00"), -1);
    assert_int_equal(P("2026-11-18T00:00:00.Z"), -1);
    assert_int_equal(P("2026-11-18T00:00:00.1234567890Z"), -1);
    assert_int_equal(P("2026-11-18T00:00:00+0800"), -1);
    assert_int_equal(P("2026-11-18T00:00:00+24:00"), -1);
    assert_int_equal(P("2026-11-18T00:00:00Zx"), -1);
    assert_int_equal(P("0000-12-31T23:59:59Z"), -1);
    assert_int_equal(P("0001-01-01T00:00:00+00:01"), -1); /* before year 1 in UTC */
    assert_int_equal(P("2026-1-18T00:00:00Z"), -1);
    assert_int_equal(P(""), -1);
#undef P
}

static void test_unknown_fields(void **state)
{
    (void)state;
    rejects("{\"i32\": 1, \"nope\": 2}", KA_REASON_UNKNOWN_FIELD, "$.nope");
    rejects("{\"inner\": {\"nope\": {}}}", KA_REASON_UNKNOWN_FIELD, "$.inner.nope");
    rejects("{\"a\\\"b\": 1}", KA_REASON_UNKNOWN_FIELD, "$[\"a\\\"b\"]");
    rejects("{\"\": 1}", KA_REASON_UNKNOWN_FIELD, "$[\"\"]");
    ka_json_opts_t opts = {.ignore_unknown_fields = 1};
    Kat__V1__Scalars *m = (Kat__V1__Scalars *)convert_ok_opts(
        SC, "{\"nope\": [1, {\"x\": null}], \"i32\": 3, \"inner\": {\"what\": 1, \"name\": \"n\"}}",
        &opts);
    assert_int_equal(m->i32, 3);
    assert_string_equal(m->inner->name, "n");
    sc_free(m);
}

static void test_document_and_bounds(void **state)
{
    (void)state;
    rejects("[]", KA_REASON_WRONG_TYPE, "$");
    rejects("\"x\"", KA_REASON_WRONG_TYPE, "$");
    rejects("null", KA_REASON_WRONG_TYPE, "$");
    rejects("", KA_REASON_DECODE, "");
    rejects("   ", KA_REASON_DECODE, "");
    rejects("{", KA_REASON_DECODE, "");
    rejects("{} x", KA_REASON_DECODE, "");
    rejects("{\"i32\": 01}", KA_REASON_DECODE, "");
    rejects("{\"i\\u0000\": 1}", KA_REASON_NUL, "");
    rejects_opts(SC, "{\"i32\": 1}", 10, &(ka_json_opts_t){.max_bytes = 9}, KA_REASON_TOO_LARGE,
                 "");
    rejects_opts(SC, NULL, 0, NULL, KA_REASON_DECODE, "");

    /* messages nested past the bound: Scalars, inner, then children */
    char json[2048];
    size_t n = (size_t)snprintf(json, sizeof json, "{\"inner\": ");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "{\"children\": [");
    n += (size_t)snprintf(json + n, sizeof json - n, "{}");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "]}");
    snprintf(json + n, sizeof json - n, "}");
    rejects(json, KA_REASON_DECODE, NULL);
    /* 30 deep fits in 32 */
    n = (size_t)snprintf(json, sizeof json, "{\"inner\": ");
    for (int i = 0; i < 29; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "{\"children\": [");
    n += (size_t)snprintf(json + n, sizeof json - n, "{}");
    for (int i = 0; i < 29; i++)
        n += (size_t)snprintf(json + n, sizeof json - n, "]}");
    snprintf(json + n, sizeof json - n, "}");
    sc_free(sc_ok(json));
    rejects_opts(SC, "{\"inner\": {\"children\": [{}]}}", 29, &(ka_json_opts_t){.max_depth = 2},
                 KA_REASON_DECODE, "$.inner.children[0]");
}

static void test_proto2_required_and_defaults(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = &kat__v1__legacy__descriptor;
    Kat__V1__Legacy *m = (Kat__V1__Legacy *)convert_ok_opts(d, "{\"id\": \"x\"}", NULL);
    assert_string_equal(m->id, "x");
    assert_false(m->has_n);
    assert_string_equal(m->s, "dflt"); /* the default, not freed by free_unpacked */
    assert_false(m->has_b);
    kat__v1__legacy__free_unpacked(m, NULL);
    m = (Kat__V1__Legacy *)convert_ok_opts(d, "{\"id\": \"x\", \"n\": 5, \"s\": \"y\", \"b\": \"AA==\","
                                              " \"r\": [1, 2]}",
                                           NULL);
    assert_true(m->has_n && m->n == 5);
    assert_string_equal(m->s, "y");
    assert_true(m->has_b && m->b.len == 1);
    assert_int_equal(m->n_r, 2);
    kat__v1__legacy__free_unpacked(m, NULL);
    rejects_opts(d, "{\"n\": 5}", 8, NULL, KA_REASON_MISSING, "$");
    rejects_opts(d, "{\"id\": null}", 12, NULL, KA_REASON_MISSING, "$");
}

/* ----------------------------------------------------------------------------
 * Our events: the same message as the binary path
 * ------------------------------------------------------------------------- */

/* Packs m and compares with the packing of want. */
static void assert_same_wire(const ProtobufCMessage *got, const ProtobufCMessage *want)
{
    size_t gl = protobuf_c_message_get_packed_size(got);
    size_t wl = protobuf_c_message_get_packed_size(want);
    uint8_t *g = malloc(gl + 1), *w = malloc(wl + 1);
    protobuf_c_message_pack(got, g);
    protobuf_c_message_pack(want, w);
    assert_int_equal(gl, wl);
    assert_memory_equal(g, w, gl);
    char field[64];
    assert_int_equal(ka_wire_find_nul(got->descriptor, g, gl, field, sizeof field), 0);
    free(g);
    free(w);
}

static void test_order_event_matches_binary(void **state)
{
    (void)state;
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__LineItem l1 = KA__V1__LINE_ITEM__INIT, l2 = KA__V1__LINE_ITEM__INIT;
    Ka__V1__LineItem *lines[2] = {&l1, &l2};
    Ka__V1__OrderEvent e = KA__V1__ORDER_EVENT__INIT;
    h.event_id = "o-1";
    h.occurred_at_ms = 1794996400000LL;
    h.producer = "erp";
    a.name = "Acme \xe6\x9c\x89\xe9\x99\x90\xe5\x85\xac\xe5\x8f\xb8";
    l1.sku = "SKU-1";
    l1.quantity_milli = 2000;
    l1.unit_price_minor = 150000;
    l2.sku = "SKU-2";
    l2.quantity_milli = 1;
    l2.unit_price_minor = 99;
    l2.requirement = "rack mount";
    e.header = &h;
    e.order_id = "ord-1";
    e.account = &a;
    e.rep_id = "rep-1";
    e.channel = KA__V1__CHANNEL__CHANNEL_DIRECT;
    e.n_lines = 2;
    e.lines = lines;
    e.status = KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED;
    e.booked_at_ms = 1794996400000LL;

    const char *json =
        "{\"header\": {\"eventId\": \"o-1\", \"occurredAtMs\": \"1794996400000\", \"producer\": \"erp\"},"
        " \"orderId\": \"ord-1\", \"account\": {\"name\": \"Acme \\u6709\\u9650\\u516c\\u53f8\"},"
        " \"rep_id\": \"rep-1\", \"channel\": \"CHANNEL_DIRECT\","
        " \"lines\": [{\"sku\": \"SKU-1\", \"quantityMilli\": 2000, \"unitPriceMinor\": \"150000\"},"
        "            {\"sku\": \"SKU-2\", \"quantity_milli\": 1, \"unitPriceMinor\": 99,"
        "             \"requirement\": \"rack mount\"}],"
        " \"status\": 1, \"bookedAtMs\": 1794996400000, \"distributorId\": \"\"}";
    ProtobufCMessage *m = convert_ok_opts(&ka__v1__order_event__descriptor, json, NULL);
    assert_same_wire(m, &e.base);
    protobuf_c_message_free_unpacked(m, NULL);

    /* the rejections name the value as the producer wrote it */
    const char *bad =
        "{\"lines\": [{}, {}, {\"quantityMilli\": \"9223372036854775808\"}]}";
    rejects_opts(&ka__v1__order_event__descriptor, bad, strlen(bad), NULL, KA_REASON_OUT_OF_RANGE,
                 "$.lines[2].quantityMilli");
    bad = "{\"status\": \"BOOKED\"}";
    rejects_opts(&ka__v1__order_event__descriptor, bad, strlen(bad), NULL, KA_REASON_ENUM,
                 "$.status");
}

static void test_opportunity_oneofs_match_binary(void **state)
{
    (void)state;
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OpportunityUpdated u = KA__V1__OPPORTUNITY_UPDATED__INIT;
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    h.event_id = "e-1";
    h.occurred_at_ms = 1794996400000LL;
    h.producer = "crm";
    /* amount 0 given: present, the update sets the amount to zero */
    u.amount_minor_present_case = KA__V1__OPPORTUNITY_UPDATED__AMOUNT_MINOR_PRESENT_AMOUNT_MINOR;
    u.amount_minor = 0;
    u.name_present_case = KA__V1__OPPORTUNITY_UPDATED__NAME_PRESENT_NAME;
    u.name = "";
    u.sales_mode = KA__V1__SALES_MODE__SALES_MODE_BID;
    e.header = &h;
    e.opportunity_id = "opp-1";
    e.actor_id = "rep-1";
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED;
    e.updated = &u;

    const char *json = "{\"header\": {\"event_id\": \"e-1\", \"occurredAtMs\": 1794996400000,"
                       " \"producer\": \"crm\"}, \"opportunityId\": \"opp-1\", \"actorId\": \"rep-1\","
                       " \"updated\": {\"amountMinor\": 0, \"name\": \"\", \"salesMode\": \"SALES_MODE_BID\","
                       " \"expectedCloseDate\": null}}";
    ProtobufCMessage *m = convert_ok_opts(&ka__v1__opportunity_event__descriptor, json, NULL);
    Ka__V1__OpportunityEvent *got = (Ka__V1__OpportunityEvent *)m;
    assert_int_equal(got->updated->expected_close_date_present_case,
                     KA__V1__OPPORTUNITY_UPDATED__EXPECTED_CLOSE_DATE_PRESENT__NOT_SET);
    assert_same_wire(m, &e.base);
    protobuf_c_message_free_unpacked(m, NULL);

    /* two kinds in one event */
    const char *two = "{\"created\": {}, \"won\": {}}";
    rejects_opts(&ka__v1__opportunity_event__descriptor, two, strlen(two), NULL,
                 KA_REASON_DUPLICATE_FIELD, "$.won");
    const char *wrong = "{\"assessed\": {\"canWeWin\": [true, 1]}}";
    rejects_opts(&ka__v1__opportunity_event__descriptor, wrong, strlen(wrong), NULL,
                 KA_REASON_WRONG_TYPE, "$.assessed.canWeWin[1]");
}

static void test_from_value_root(void **state)
{
    (void)state;
    ka_json_reject_t err;
    ProtobufCMessage *m = (ProtobufCMessage *)0x1;
    json_t *v = json_pack("{s:{s:s}}", "data", "nope", "x");
    assert_int_equal(ka_json_pb_from_value(SC, json_object_get(v, "data"), "$.data", NULL, &m, &err),
                     KA_ERR_INVALID);
    assert_null(m);
    assert_string_equal(err.rej.reason, KA_REASON_UNKNOWN_FIELD);
    assert_string_equal(err.path, "$.data.nope");
    assert_int_equal(ka_json_pb_from_value(SC, NULL, "$.data", NULL, &m, &err), KA_ERR_INVALID);
    assert_string_equal(err.rej.reason, KA_REASON_MISSING);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_names),
        cmocka_unit_test(test_camel_and_original_names),
        cmocka_unit_test(test_int32_forms),
        cmocka_unit_test(test_int64_strings_and_numbers),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_bool_and_string),
        cmocka_unit_test(test_bytes_base64),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_null_is_default),
        cmocka_unit_test(test_nested_and_repeated),
        cmocka_unit_test(test_list_bound),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_oneof),
        cmocka_unit_test(test_timestamp),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_document_and_bounds),
        cmocka_unit_test(test_proto2_required_and_defaults),
        cmocka_unit_test(test_order_event_matches_binary),
        cmocka_unit_test(test_opportunity_oneofs_match_binary),
        cmocka_unit_test(test_from_value_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

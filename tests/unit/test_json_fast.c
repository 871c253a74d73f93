/* The cJSON fast path of the JSON decoders (common/ka_json_fast.c): the
 * common case takes it; every case cJSON cannot read exactly as jansson does
 * is declined and gets the jansson path's verdict, reason and path, the same
 * as with the fast path switched off (the decoder before it). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ka_json_fast.h"
#include "ka_json_pb.h"
#include "kat/v1/mapping.pb-c.h"

#define SC (&kat__v1__scalars__descriptor)

typedef struct outcome {
    ka_err_t rc;
    ka_json_reject_t err;
    Kat__V1__Scalars *m;
    int fast; /* 1: the fast path decided */
} outcome_t;

static outcome_t decode(const char *json, size_t len, int fast_on)
{
    outcome_t o;
    ka_json_fast_stats_t before, after;
    ProtobufCMessage *m = NULL;

    memset(&o.err, 0x5a, sizeof o.err);
    ka_json_fast_set_enabled(fast_on);
    ka_json_fast_stats(&before);
    o.rc = ka_json_pb_parse(SC, json, len, NULL, &m, &o.err);
    ka_json_fast_stats(&after);
    ka_json_fast_set_enabled(1);
    o.fast = after.accepted == before.accepted + 1;
    assert_int_equal(after.accepted + after.declined, before.accepted + before.declined + 1);
    o.m = (Kat__V1__Scalars *)m;
    return o;
}

/* The verdict with the fast path on, checked against the jansson path
 * alone (the decoder as it was); returns the former. */
static outcome_t both(const char *json, size_t len)
{
    outcome_t on = decode(json, len, 1), off = decode(json, len, 0);
    assert_false(off.fast);
    assert_int_equal(on.rc, off.rc);
    if (on.rc != KA_OK) {
        assert_string_equal(on.err.rej.reason, off.err.rej.reason);
        assert_string_equal(on.err.rej.detail, off.err.rej.detail);
        assert_string_equal(on.err.path, off.err.path);
    } else {
        uint8_t a[512], b[512];
        size_t la = kat__v1__scalars__pack(on.m, a), lb = kat__v1__scalars__pack(off.m, b);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
    }
    if (off.m)
        kat__v1__scalars__free_unpacked(off.m, NULL);
    return on;
}

static void rejected(const char *json, size_t len, const char *reason, const char *path)
{
    outcome_t o = both(json, len);
    assert_int_equal(o.rc, KA_ERR_INVALID);
    assert_false(o.fast);
    assert_null(o.m);
    assert_string_equal(o.err.rej.reason, reason);
    assert_string_equal(o.err.path, path);
}

static void test_common_case_is_fast(void **state)
{
    (void)state;
    const char *j = "{\"i32\": -5, \"i64\": \"1794996400000\", \"u32\": 7, \"text\": \"t\\u00e9 \xe7\x8e\x8b\","
                    " \"flag\": true, \"colors\": [\"COLOR_RED\", 2], \"nums\": [1, 2e0],"
                    " \"inners\": [{\"name\": \"x\", \"count\": 3}], \"db\": 0.25}";
    outcome_t o = both(j, strlen(j));
    assert_int_equal(o.rc, KA_OK);
    assert_true(o.fast);
    assert_int_equal(o.m->i32, -5);
    assert_int_equal(o.m->i64, 1794996400000LL);
    assert_string_equal(o.m->text, "t\xc3\xa9 \xe7\x8e\x8b");
    assert_int_equal(o.m->n_nums, 2);
    assert_int_equal(o.m->nums[1], 2);
    kat__v1__scalars__free_unpacked(o.m, NULL);
}

/* cJSON keeps a double: past 2^53 only jansson reads the integer exactly */
static void test_beyond_2_53_goes_to_jansson(void **state)
{
    (void)state;
    const char *j = "{\"i64\": 9007199254740993, \"s64\": -9223372036854775808}";
    outcome_t o = both(j, strlen(j));
    assert_int_equal(o.rc, KA_OK);
    assert_false(o.fast);
    assert_int_equal(o.m->i64, 9007199254740993LL);
    assert_true(o.m->s64 == INT64_MIN);
    kat__v1__scalars__free_unpacked(o.m, NULL);
    rejected("{\"i64\": 9223372036854775808}", 28, "number_out_of_range", "");
}

/* an integral real for an integer field is accepted, as before (1.0, 1e0);
 * a fraction is wrong_type */
static void test_reals_for_int_fields(void **state)
{
    (void)state;
    const char *j = "{\"i32\": 1.0, \"i64\": 1e0, \"u32\": 1E2}";
    outcome_t o = both(j, strlen(j));
    assert_int_equal(o.rc, KA_OK);
    assert_int_equal(o.m->i32, 1);
    assert_int_equal(o.m->i64, 1);
    assert_int_equal(o.m->u32, 100);
    kat__v1__scalars__free_unpacked(o.m, NULL);
    rejected("{\"i32\": 1.5}", 12, "wrong_type", "$.i32");
}

/* jansson reads the integer -0 as +0.0 for a double; cJSON as -0.0 */
static void test_minus_zero_double(void **state)
{
    (void)state;
    outcome_t o = both("{\"db\": -0}", 10);
    assert_int_equal(o.rc, KA_OK);
    assert_false(o.fast);
    assert_false(signbit(o.m->db));
    kat__v1__scalars__free_unpacked(o.m, NULL);
}

static void test_nul_escape(void **state)
{
    (void)state;
    rejected("{\"text\": \"a\\u0000b\"}", 20, "nul_in_string", "$.text");
    /* cJSON reads a bad hex digit as 0: jansson refuses the escape */
    rejected("{\"text\": \"a\\u00zzb\"}", 20, "decode_failed", "");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    rejected("{\"text\": \"a\", \"text\": \"b\"}", 26, "duplicate_field", "");
    rejected("{\"multiWordFieldName\": \"a\", \"multi_word_field_name\": \"b\"}", 57,
             "duplicate_field", "$.multi_word_field_name");
    rejected("{\"text\": null, \"text\": \"b\"}", 27, "duplicate_field", "");
}

static void test_utf8_and_control_bytes(void **state)
{
    (void)state;
    rejected("{\"text\": \"\xc0\xaf\"}", 14, "invalid_utf8", "");
    rejected("{\"text\": \"\xed\xa0\x80\"}", 15, "invalid_utf8", "");
    rejected("{\"text\": \"a\x01\"}", 14, "decode_failed", "");
    rejected("\xef\xbb\xbf{}", 5, "decode_failed", "");
}

/* numbers cJSON's strtod reads and JSON does not have */
static void test_number_grammar(void **state)
{
    (void)state;
    rejected("{\"i32\": 01}", 11, "decode_failed", "");
    rejected("{\"db\": 1.}", 10, "decode_failed", "");
    rejected("{\"db\": -.5}", 11, "decode_failed", "");
    rejected("{\"db\": 1e400}", 13, "number_out_of_range", "");
}

static void test_trailing_and_top_level(void **state)
{
    (void)state;
    rejected("{} x", 4, "decode_failed", "");
    rejected("{}\0", 3, "decode_failed", "");
    rejected("[1]", 3, "wrong_type", "$");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_case_is_fast),
        cmocka_unit_test(test_beyond_2_53_goes_to_jansson),
        cmocka_unit_test(test_reals_for_int_fields),
        cmocka_unit_test(test_minus_zero_double),
        cmocka_unit_test(test_nul_escape),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_utf8_and_control_bytes),
        cmocka_unit_test(test_number_grammar),
        cmocka_unit_test(test_trailing_and_top_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ka_validate.h"

static void utf8_accepts_ascii_and_chinese(void **state)
{
    (void)state;
    const char *s = "华为技术有限公司 Huawei";
    assert_true(ka_utf8_valid(s, strlen(s)));
    assert_true(ka_utf8_valid("", 0));
    assert_true(ka_utf8_valid("\xF0\x9F\x98\x80", 4)); /* U+1F600 */
}

static void utf8_rejects_malformed_sequences(void **state)
{
    (void)state;
    assert_false(ka_utf8_valid("\xC0\xAF", 2));         /* overlong '/' */
    assert_false(ka_utf8_valid("\xE0\x80\xAF", 3));     /* overlong */
    assert_false(ka_utf8_valid("\xED\xA0\x80", 3));     /* surrogate */
    assert_false(ka_utf8_valid("\xF4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(ka_utf8_valid("\xE5\x8D", 2));         /* truncated */
    assert_false(ka_utf8_valid("\xFF", 1));
    assert_false(ka_utf8_valid("a\0b", 3)); /* embedded NUL */
}

static void ids_must_be_present_bounded_and_printable(void **state)
{
    (void)state;
    ka_reject_t rej;
    char long_id[80];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';

    assert_int_equal(ka_check_id(&rej, "event_id", "evt-1", 64), KA_OK);
    assert_int_equal(ka_check_id(&rej, "event_id", "", 64), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_MISSING);
    assert_int_equal(ka_check_id(&rej, "event_id", NULL, 64), KA_ERR_INVALID);
    assert_int_equal(ka_check_id(&rej, "event_id", long_id, 64), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_TOO_LONG);
    assert_non_null(strstr(rej.detail, "event_id"));
    assert_int_equal(ka_check_id(&rej, "rep_id", "rep 7", 64), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_BAD_ID);
    assert_int_equal(ka_check_optional_id(&rej, "opportunity_id", "", 64), KA_OK);
    assert_int_equal(ka_check_optional_id(&rej, "opportunity_id", "o\x01", 64), KA_ERR_INVALID);
}

static void text_must_be_utf8_and_bounded(void **state)
{
    (void)state;
    ka_reject_t rej;
    assert_int_equal(ka_check_text(&rej, "summary", NULL, 10), KA_OK);
    assert_int_equal(ka_check_text(&rej, "summary", "客户", 10), KA_OK);
    assert_int_equal(ka_check_text(&rej, "summary", "\xC3\x28", 10), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_UTF8);
    assert_int_equal(ka_check_text(&rej, "summary", "0123456789A", 10), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_TOO_LONG);
}

static void times_must_be_sane(void **state)
{
    (void)state;
    ka_reject_t rej;
    int64_t now = 1795000000000LL; /* late 2026 */
    assert_int_equal(ka_check_time(&rej, "occurred_at_ms", now - 1000, now, 0), KA_OK);
    assert_int_equal(ka_check_time(&rej, "occurred_at_ms", 0, now, 0), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_MISSING);
    /* seconds instead of milliseconds land in 1970 */
    assert_int_equal(ka_check_time(&rej, "occurred_at_ms", now / 1000, now, 0), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_TIME);
    assert_int_equal(ka_check_time(&rej, "occurred_at_ms", now + 86400000LL, now, 0),
                     KA_ERR_INVALID);
    assert_int_equal(ka_check_time(&rej, "next_visit_ms", now + 86400000LL, now,
                                   KA_MAX_FUTURE_MS),
                     KA_OK);
}

static void amounts_and_lists_are_bounded(void **state)
{
    (void)state;
    ka_reject_t rej;
    assert_int_equal(ka_check_amount(&rej, "amount_minor", 0, KA_MAX_AMOUNT_MINOR), KA_OK);
    assert_int_equal(ka_check_amount(&rej, "amount_minor", -1, KA_MAX_AMOUNT_MINOR),
                     KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_AMOUNT);
    assert_int_equal(ka_check_amount(&rej, "amount_minor", KA_MAX_AMOUNT_MINOR + 1,
                                     KA_MAX_AMOUNT_MINOR),
                     KA_ERR_INVALID);
    assert_int_equal(ka_check_count(&rej, "lines", 200, KA_MAX_LIST_LEN), KA_OK);
    assert_int_equal(ka_check_count(&rej, "lines", 201, KA_MAX_LIST_LEN), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_LIST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8_accepts_ascii_and_chinese),
        cmocka_unit_test(utf8_rejects_malformed_sequences),
        cmocka_unit_test(ids_must_be_present_bounded_and_printable),
        cmocka_unit_test(text_must_be_utf8_and_bounded),
        cmocka_unit_test(times_must_be_sane),
        cmocka_unit_test(amounts_and_lists_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

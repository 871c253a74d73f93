#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ka_account_key.h"

/* A published sample code; its check character was recomputed by hand from
 * GB 32100's weights. */
static const char *valid_code = "91350100M000100Y43";

static void credit_code_check_character_is_verified(void **state)
{
    (void)state;
    assert_true(ka_uscc_valid(valid_code));
    assert_true(ka_uscc_valid("91350100m000100y43")); /* case folded */
    assert_false(ka_uscc_valid("91350100M000100Y44")); /* wrong check character */
    assert_false(ka_uscc_valid("91350100M000100Y4"));  /* 17 characters */
    assert_false(ka_uscc_valid("91350100I000100Y43")); /* I is not in the alphabet */
    assert_false(ka_uscc_valid(NULL));
}

static void names_fold_width_case_and_spaces(void **state)
{
    (void)state;
    char out[256];
    assert_true(ka_account_normalize_name("  ＡＢＣ　Ｔｅｃｈ （上海）  有限公司 ", out,
                                          sizeof out) > 0);
    assert_string_equal(out, "abc tech (上海) 有限公司");
    assert_true(ka_account_normalize_name("ABC\tTech\n(上海)   有限公司", out, sizeof out) > 0);
    assert_string_equal(out, "abc tech (上海) 有限公司");
    assert_int_equal(ka_account_normalize_name("\xC3\x28", out, sizeof out), -1);
    assert_int_equal(ka_account_normalize_name("abcdef", out, 4), -1);
}

static void two_spellings_give_one_key(void **state)
{
    (void)state;
    char a[KA_ACCOUNT_KEY_MAX], b[KA_ACCOUNT_KEY_MAX];
    ka_reject_t rej;
    assert_int_equal(ka_account_key(NULL, "Acme　Ｍａｃｈｉｎｅｒｙ", a, sizeof a, &rej), KA_OK);
    assert_int_equal(ka_account_key("", " acme  machinery ", b, sizeof b, &rej), KA_OK);
    assert_string_equal(a, b);
    assert_string_equal(a, "name:acme machinery");
}

static void credit_code_wins_over_name(void **state)
{
    (void)state;
    char a[KA_ACCOUNT_KEY_MAX], b[KA_ACCOUNT_KEY_MAX];
    ka_reject_t rej;
    assert_int_equal(ka_account_key(valid_code, "Acme", a, sizeof a, &rej), KA_OK);
    assert_int_equal(ka_account_key("91350100m000100y43", "ACME Ltd", b, sizeof b, &rej), KA_OK);
    assert_string_equal(a, "uscc:91350100M000100Y43");
    assert_string_equal(a, b);
}

static void unusable_accounts_are_rejected(void **state)
{
    (void)state;
    char out[KA_ACCOUNT_KEY_MAX];
    ka_reject_t rej;
    assert_int_equal(ka_account_key(NULL, NULL, out, sizeof out, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_ACCOUNT);
    assert_int_equal(ka_account_key(NULL, " 　 ", out, sizeof out, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_ACCOUNT);
    assert_int_equal(ka_account_key("123", "Acme", out, sizeof out, &rej), KA_ERR_INVALID);
    assert_string_equal(rej.reason, KA_REASON_CREDIT_CODE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(credit_code_check_character_is_verified),
        cmocka_unit_test(names_fold_width_case_and_spaces),
        cmocka_unit_test(two_spellings_give_one_key),
        cmocka_unit_test(credit_code_wins_over_name),
        cmocka_unit_test(unusable_accounts_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

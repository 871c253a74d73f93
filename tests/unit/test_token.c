/* API tokens: their form, their hash (the SHA-256 test vectors) and id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ka_token.h"

static void new_tokens_are_well_formed_and_differ(void **state)
{
    (void)state;
    char a[KA_TOKEN_LEN + 1], b[KA_TOKEN_LEN + 1], err[128];
    assert_int_equal(ka_token_new(a, err, sizeof err), KA_OK);
    assert_int_equal(ka_token_new(b, err, sizeof err), KA_OK);
    assert_int_equal(strlen(a), KA_TOKEN_LEN);
    assert_true(ka_token_well_formed(a, strlen(a)));
    assert_string_not_equal(a, b);
}

static void malformed_tokens_are_refused(void **state)
{
    (void)state;
    const char *good = "ka_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_true(ka_token_well_formed(good, strlen(good)));
    assert_false(ka_token_well_formed(good, strlen(good) - 1));
    assert_false(ka_token_well_formed("", 0));
    assert_false(ka_token_well_formed(NULL, 0));
    char bad[KA_TOKEN_LEN + 1];
    memcpy(bad, good, sizeof bad);
    bad[10] = 'G'; /* upper case is not the form */
    assert_false(ka_token_well_formed(bad, strlen(bad)));
    memcpy(bad, good, sizeof bad);
    bad[0] = 'k', bad[1] = 'b';
    assert_false(ka_token_well_formed(bad, strlen(bad)));
    memcpy(bad, good, sizeof bad);
    bad[20] = '\0'; /* an embedded NUL */
    assert_false(ka_token_well_formed(bad, KA_TOKEN_LEN));
}

static void hash_is_sha256(void **state)
{
    (void)state;
    char h[KA_TOKEN_HASH_LEN], id[KA_TOKEN_ID_LEN];
    ka_token_hash("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ka_token_hash("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ka_token_id(h, id);
    assert_string_equal(id, "e3b0c44298fc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_tokens_are_well_formed_and_differ),
        cmocka_unit_test(malformed_tokens_are_refused),
        cmocka_unit_test(hash_is_sha256),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

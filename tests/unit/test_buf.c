#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ka_buf.h"

static void printf_appends_and_grows(void **state)
{
    (void)state;
    ka_buf_t b = KA_BUF_INIT;
    assert_string_equal(ka_buf_str(&b), "");
    for (int i = 0; i < 1000; i++)
        ka_buf_printf(&b, "%d,", i % 10);
    assert_int_equal(b.len, 2000);
    assert_memory_equal(b.data, "0,1,2,", 6);
    ka_buf_reset(&b);
    assert_string_equal(ka_buf_str(&b), "");
    ka_buf_free(&b);
    ka_buf_free(&b); /* twice is harmless */
}

static void array_literal_quotes_and_escapes(void **state)
{
    (void)state;
    ka_buf_t b = KA_BUF_INIT;
    ka_buf_array_begin(&b);
    ka_buf_array_end(&b);
    assert_string_equal(ka_buf_str(&b), "{}");
    ka_buf_array_begin(&b);
    ka_buf_array_add(&b, "plain");
    ka_buf_array_add(&b, "with \"quote\" and \\ and ,{}");
    ka_buf_array_add(&b, NULL);
    ka_buf_array_add_int(&b, -42);
    ka_buf_array_end(&b);
    assert_string_equal(ka_buf_str(&b),
                        "{\"plain\",\"with \\\"quote\\\" and \\\\ and ,{}\",NULL,\"-42\"}");
    ka_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(printf_appends_and_grows),
        cmocka_unit_test(array_literal_quotes_and_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

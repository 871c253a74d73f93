#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ka_fault.h"

static void well_formed_points_parse(void **state)
{
    (void)state;
    char point[32], why[160];
    unsigned long nth = 0;
    assert_true(ka_fault_parse("commit_sent:3", point, &nth, why, sizeof why));
    assert_string_equal(point, "commit_sent");
    assert_int_equal(nth, 3);
    assert_true(ka_fault_parse("relay_marked:12", point, &nth, why, sizeof why));
    assert_string_equal(point, "relay_marked");
    assert_int_equal(nth, 12);
}

static void malformed_specs_say_why(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *why;
    } bad[] = {
        {"commit_sent", "expected <point>:<n>"},
        {":3", "expected <point>:<n>"},
        {"commit_now:1", "unknown point \"commit_now\""},
        {"commit_sent:0", "positive count"},
        {"commit_sent:", "positive count"},
        {"commit_sent:2x", "positive count"},
        {"a_point_name_far_longer_than_any_real_one:1", "expected <point>:<n>"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char point[32], why[160] = "";
        unsigned long nth = 0;
        assert_false(ka_fault_parse(bad[i].spec, point, &nth, why, sizeof why));
        if (!strstr(why, bad[i].why))
            fail_msg("\"%s\": said \"%s\", expected \"%s\"", bad[i].spec, why, bad[i].why);
    }
}

static void an_unarmed_process_passes_every_point(void **state)
{
    (void)state;
    /* KA_FAULT_CRASH_AT is not set here: reaching a point is a no-op. */
    for (int i = 0; i < 1000; i++)
        ka_fault_point("commit_sent");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(well_formed_points_parse),
        cmocka_unit_test(malformed_specs_say_why),
        cmocka_unit_test(an_unarmed_process_passes_every_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

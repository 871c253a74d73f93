/* Funnel health bands and the hysteresis that keeps a hovering ratio from
 * flapping (DOMAIN.md section 4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "opp_health.h"

#define WARN 7000
#define MARGIN 500

static opp_health_t eval(int64_t cur, int64_t base, opp_health_t prev, int64_t *ratio)
{
    return opp_health_eval(cur, base, prev, WARN, MARGIN, ratio);
}

static void bands_follow_the_ratio(void **state)
{
    (void)state;
    int64_t ratio;
    assert_int_equal(eval(11, 10, OPP_HEALTH_GOOD, &ratio), OPP_HEALTH_EXCELLENT);
    assert_int_equal(ratio, 11000);
    assert_int_equal(eval(10, 10, OPP_HEALTH_GOOD, &ratio), OPP_HEALTH_GOOD); /* 100% is good */
    assert_int_equal(eval(7, 10, OPP_HEALTH_GOOD, &ratio), OPP_HEALTH_GOOD);  /* 70% is good */
    assert_int_equal(eval(69, 100, OPP_HEALTH_GOOD, &ratio), OPP_HEALTH_WARNING);
    assert_int_equal(ratio, 6900);
}

static void a_warning_needs_the_margin_to_clear(void **state)
{
    (void)state;
    int64_t ratio;
    assert_int_equal(eval(70, 100, OPP_HEALTH_WARNING, &ratio), OPP_HEALTH_WARNING);
    assert_int_equal(eval(749, 1000, OPP_HEALTH_WARNING, &ratio), OPP_HEALTH_WARNING);
    assert_int_equal(eval(75, 100, OPP_HEALTH_WARNING, &ratio), OPP_HEALTH_GOOD);
    assert_int_equal(eval(12, 10, OPP_HEALTH_WARNING, &ratio), OPP_HEALTH_EXCELLENT);
}

static void no_baseline_means_no_verdict(void **state)
{
    (void)state;
    int64_t ratio = 0;
    assert_int_equal(eval(5, 0, OPP_HEALTH_WARNING, &ratio), OPP_HEALTH_NO_BASELINE);
    assert_int_equal(ratio, -1);
    assert_int_equal(eval(5, -1, OPP_HEALTH_GOOD, &ratio), OPP_HEALTH_NO_BASELINE);
}

static void names_round_trip(void **state)
{
    (void)state;
    for (int h = OPP_HEALTH_NO_BASELINE; h <= OPP_HEALTH_WARNING; h++)
        assert_int_equal(opp_health_parse(opp_health_name((opp_health_t)h)), h);
    assert_int_equal(opp_health_parse(NULL), OPP_HEALTH_NO_BASELINE);
    assert_string_equal(opp_health_name(OPP_HEALTH_WARNING), "warning");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bands_follow_the_ratio),
        cmocka_unit_test(a_warning_needs_the_margin_to_clear),
        cmocka_unit_test(no_baseline_means_no_verdict),
        cmocka_unit_test(names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

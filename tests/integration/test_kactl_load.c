/* kactl load against the real database: the sample loads and loads again
 * without changes; a bad file is reported as FILE:LINE: field NAME and
 * writes nothing; quoted fields, embedded newlines, CRLF and a BOM load; a
 * territory file is each named distributor's whole territory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "it_util.h"

static const char *kactl, *fixtures;
static ka_config_t *cfg;
static ka_pg_t *pg;

/* Runs kactl with args; returns its exit code, its output in out. */
static int run(const char *args, char *out, size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", kactl, args);
    return it_sh(cmd, out, len);
}

static void sample_loads_and_reloads_without_changes(void **state)
{
    char out[8192];
    (void)state;
    assert_int_equal(run("load sample", out, sizeof out), 0);
    assert_true(it_pg_int(pg, "SELECT count(*) FROM org_node WHERE kind = 'rep' "
                              "AND id LIKE 'rep-%'", NULL) >= 200);
    /* every rep rolls up to the company */
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM org_node r WHERE r.kind = 'rep' "
                                   "AND r.id LIKE 'rep-%' AND NOT EXISTS (SELECT 1 FROM "
                                   "org_closure c WHERE c.descendant_id = r.id AND "
                                   "c.ancestor_id = 'hs')", NULL), 0);
    assert_int_equal(run("load sample", out, sizeof out), 0);
    assert_non_null(strstr(out, "org"));
    assert_null(strstr(out, "rows, 1")); /* "N rows, 0 new or changed" for every kind */
    assert_non_null(strstr(out, "0 new or changed"));
}

static void bad_rows_are_named_and_nothing_is_written(void **state)
{
    char out[8192], args[1024];
    (void)state;
    snprintf(args, sizeof args, "load org %s/org_bad.csv", fixtures);
    assert_int_equal(run(args, out, sizeof out), 1);
    assert_non_null(strstr(out, "org_bad.csv:3: field id"));
    assert_non_null(strstr(out, "org_bad.csv:4: field kind"));
    assert_non_null(strstr(out, "org_bad.csv:5: field name"));
    assert_non_null(strstr(out, "nothing was written"));
    /* the good first row was not written either */
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM org_node WHERE id = 'fx-div'", NULL), 0);

    snprintf(args, sizeof args, "load quotas %s/quotas_bad_header.csv", fixtures);
    assert_int_equal(run(args, out, sizeof out), 1);
    assert_non_null(strstr(out, "field period: is not a column"));
    assert_non_null(strstr(out, "field period_kind: column is missing"));

    assert_int_equal(run("load nonsense x.csv", out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown kind"));
    assert_int_equal(run("load org /nonexistent/org.csv", out, sizeof out), 1);
    assert_non_null(strstr(out, "/nonexistent/org.csv"));
}

static void quoted_fields_bom_and_crlf_load(void **state)
{
    char out[8192], args[1024];
    (void)state;
    snprintf(args, sizeof args, "load users %s/users_quoted.csv", fixtures);
    assert_int_equal(run(args, out, sizeof out), 0);
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM app_user WHERE id = 'fx-user-1' AND "
                                   "display_name = E'Wang, \"the boss\"\\r\\nsecond line'",
                               NULL),
                     1);
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM app_user WHERE id = 'fx-user-2' "
                                   "AND display_name = '李四' AND email IS NULL", NULL), 1);
}

static void funnel_definitions_load_and_reload(void **state)
{
    char out[8192], args[1024];
    (void)state;
    snprintf(args, sizeof args, "load funnels %s/funnels_service.csv", fixtures);
    assert_int_equal(run(args, out, sizeof out), 0);
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM funnel_definition WHERE id = "
                                   "'fx-service-4' AND name = 'Service contract funnel "
                                   "(4 stages)' AND NOT is_default", NULL), 1);
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM funnel_stage WHERE definition_id = "
                                   "'fx-service-4'", NULL), 4);
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM funnel_stage WHERE definition_id = "
                                   "'fx-service-4' AND code = 'S3' AND is_won AND is_closed "
                                   "AND max_dwell_days IS NULL", NULL), 1);
    assert_int_equal(it_pg_int(pg, "SELECT max_dwell_days FROM funnel_stage WHERE "
                                   "definition_id = 'fx-service-4' AND code = 'S2'", NULL), 30);
    assert_int_equal(run(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "4 rows, 0 new or changed"));

    snprintf(args, sizeof args, "load funnels %s/funnels_bad.csv", fixtures);
    assert_int_equal(run(args, out, sizeof out), 1);
    assert_non_null(strstr(out, "funnels_bad.csv:3: field default_category"));
    assert_non_null(strstr(out, "funnels_bad.csv:4: field is_won"));
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM funnel_definition WHERE id = "
                                   "'fx-bad-3'", NULL), 0);
}

static long long territories_of(const char *dist)
{
    return it_pg_int(pg, "SELECT count(*) FROM distributor_territory WHERE distributor_id = $1",
                     dist);
}

static void distributor_territories_load_replace_and_reject(void **state)
{
    char out[8192], args[1024], path[] = "/tmp/kactl-territories-XXXXXX";
    (void)state;
    snprintf(args, sizeof args, "load distributors %s/distributors_fx.csv", fixtures);
    assert_int_equal(run(args, out, sizeof out), 0);
    snprintf(args, sizeof args, "load territories %s/territories_fx.csv", fixtures);
    assert_int_equal(run(args, out, sizeof out), 0);
    assert_int_equal(territories_of("fx-dist-a"), 2);
    assert_int_equal(territories_of("fx-dist-b"), 1);
    assert_int_equal(run(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "3 rows, 0 new or changed"));

    /* a file naming fx-dist-a alone: its CN-JS is withdrawn, fx-dist-b keeps CN-GD */
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("distributor_id,region_code\nfx-dist-a,CN-SH\nfx-dist-a,CN-ZJ\n", f);
    fclose(f);
    snprintf(args, sizeof args, "load territories %s", path);
    assert_int_equal(run(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "2 rows, 2 new or changed")); /* CN-JS out, CN-ZJ in */
    remove(path);
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM distributor_territory WHERE "
                                   "distributor_id = 'fx-dist-a' AND region_code IN "
                                   "('CN-SH', 'CN-ZJ')", NULL), 2);
    assert_int_equal(territories_of("fx-dist-a"), 2);
    assert_int_equal(territories_of("fx-dist-b"), 1);

    snprintf(args, sizeof args, "load territories %s/territories_bad.csv", fixtures);
    assert_int_equal(run(args, out, sizeof out), 1);
    assert_non_null(strstr(out, "territories_bad.csv:3: field region_code: \"SH\" is not a "
                               "region code"));
    assert_non_null(strstr(out, "territories_bad.csv:4: field region_code: repeats line 2"));
    assert_non_null(strstr(out, "territories_bad.csv:5: field distributor_id: is empty"));
    assert_non_null(strstr(out, "nothing was written"));
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM distributor_territory WHERE "
                                   "distributor_id = 'fx-dist-b' AND region_code = 'CN-GX'",
                               NULL), 0);

    /* well-formed, but naming a distributor and a product the database lacks */
    snprintf(args, sizeof args, "load floor-prices %s/floor_prices_bad.csv", fixtures);
    assert_int_equal(run(args, out, sizeof out), 1);
    assert_non_null(strstr(out, "floor_prices_bad.csv:2: field distributor_id: no distributor "
                               "\"fx-dist-nobody\""));
    assert_non_null(strstr(out, "floor_prices_bad.csv:3: field sku: no product \"SKU-NOPE\""));
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM distributor_floor_price WHERE "
                                   "distributor_id = 'fx-dist-a'", NULL), 0);
}

static int setup(void **state)
{
    (void)state;
    cfg = it_config("it-kactl");
    pg = it_pg(cfg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ka_pg_free(pg);
    ka_config_free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_kactl_load KACTL FIXTURES_DIR\n");
        return 2;
    }
    kactl = argv[1];
    fixtures = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sample_loads_and_reloads_without_changes),
        cmocka_unit_test(bad_rows_are_named_and_nothing_is_written),
        cmocka_unit_test(quoted_fields_bom_and_crlf_load),
        cmocka_unit_test(funnel_definitions_load_and_reload),
        cmocka_unit_test(distributor_territories_load_replace_and_reject),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Least-privilege worker roles (deploy/sql/0012_worker_roles.sql): each
 * worker's PostgreSQL role can insert, update and delete in its own tables and
 * is refused (permission denied, SQLSTATE 42501) on every other worker's
 * tables and on the reference data kactl loads. The table lists here are the
 * specification, written independently of the grants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "it_util.h"

typedef struct worker {
    const char *binary; /* file name, as it_worker_role knows it */
    const char *tables[16];
} worker_t;

static const worker_t workers[] = {
    {"opportunity-worker",
     {"opportunity", "opportunity_line", "opportunity_stage_history", "opportunity_event",
      "forecast_confirmation", "funnel_state", "funnel_health", NULL}},
    {"visit-worker",
     {"visit", "visit_contact", "contact", "follow_up", "account_man_history", NULL}},
    {"order-worker",
     {"sales_order", "sales_order_line", "sales_order_event", "actual", "actual_rollup",
      "distributor_sales_quality", "distributor_violation", "account_tier_history", NULL}},
    {"forecast-worker",
     {"forecast", "forecast_adjustment", "forecast_submission", "forecast_snapshot",
      "forecast_accuracy", "planning_feed", "forecast_opportunity", "forecast_line",
      "planning_line", "opportunity_snapshot", "funnel_snapshot", NULL}},
};
#define NWORKERS (sizeof workers / sizeof workers[0])

/* Written by kactl (the owner) only. */
static const char *const reference[] = {
    "app_user", "funnel_definition", "funnel_stage", "business_unit", "org_node", "org_closure",
    "quota",    "product",           "distributor",  "distributor_territory",
    "distributor_floor_price",       "schema_migration", NULL};

/* The three write probes of one table, built by the server with %I so no
 * identifier is pasted by hand; WHERE false: they change nothing even when
 * allowed, yet the privilege check runs. The column is the table's first
 * non-generated one. */
static const char PROBES_SQL[] =
    "SELECT format('INSERT INTO %1$I (%2$I) SELECT %2$I FROM %1$I WHERE false', $1::text, c),"
    "       format('UPDATE %1$I SET %2$I = %2$I WHERE false', $1::text, c),"
    "       format('DELETE FROM %1$I WHERE false', $1::text)"
    "  FROM (SELECT column_name AS c FROM information_schema.columns"
    "         WHERE table_schema = current_schema() AND table_name = $1 AND is_generated = 'NEVER'"
    "         ORDER BY ordinal_position LIMIT 1) first_col";

typedef struct probes {
    char sql[3][512];
    int found;
} probes_t;

static int read_probes(void *ud, const ka_pgres_t *res)
{
    probes_t *p = ud;
    if (ka_pgres_rows(res) != 1)
        return 0;
    for (int i = 0; i < 3; i++)
        snprintf(p->sql[i], sizeof p->sql[i], "%s", ka_pgres_value(res, 0, i));
    p->found = 1;
    return 0;
}

static probes_t probes_of(ka_pg_t *owner, const char *table)
{
    char err[KA_ERRSTR_SIZE];
    probes_t p = {{{0}}, 0};
    ka_pg_param_t param = {table, 0, 0};
    if (ka_pg_query(owner, PROBES_SQL, 1, &param, read_probes, &p, err, sizeof err) != KA_OK)
        fail_msg("probes of %s: %s", table, err);
    if (!p.found)
        fail_msg("table %s does not exist: the specification here is out of date", table);
    return p;
}

static int owns(const worker_t *w, const char *table)
{
    for (size_t i = 0; w->tables[i]; i++)
        if (strcmp(w->tables[i], table) == 0)
            return 1;
    return 0;
}

/* Runs the probes of `table` as the role behind `pg`: all must pass when
 * `allowed`, all must be refused with 42501 otherwise. Returns how many
 * statements ran. */
static int check_table(ka_pg_t *owner, ka_pg_t *pg, const char *role, const char *table,
                       int allowed)
{
    char err[KA_ERRSTR_SIZE];
    probes_t p = probes_of(owner, table);
    for (int i = 0; i < 3; i++) {
        ka_err_t rc = ka_pg_query(pg, p.sql[i], 0, NULL, NULL, NULL, err, sizeof err);
        if (allowed && rc != KA_OK)
            fail_msg("%s should be allowed \"%s\": %s", role, p.sql[i], err);
        if (!allowed) {
            if (rc == KA_OK)
                fail_msg("%s was allowed \"%s\"", role, p.sql[i]);
            if (strcmp(ka_pg_sqlstate(pg), "42501") != 0)
                fail_msg("%s: \"%s\" failed with %s instead of permission denied: %s", role,
                         p.sql[i], ka_pg_sqlstate(pg), err);
        }
    }
    return 3;
}

static void test_each_role_writes_only_its_own_tables(void **state)
{
    (void)state;
    ka_config_t *cfg = it_config("test-roles");
    ka_pg_t *owner = it_pg(cfg);
    char err[KA_ERRSTR_SIZE];
    int allowed = 0, refused = 0;

    for (size_t w = 0; w < NWORKERS; w++) {
        const char *role = it_worker_role(workers[w].binary);
        assert_non_null(role);
        char *dsn = it_role_dsn(ka_config_str(cfg, "KA_PG_DSN"), role);
        ka_pg_t *pg = ka_pg_connect(dsn, err, sizeof err);
        free(dsn);
        if (!pg)
            fail_msg("%s cannot connect (run kactl migrate): %s", role, err);
        for (size_t o = 0; o < NWORKERS; o++)
            for (size_t t = 0; workers[o].tables[t]; t++) {
                int mine = owns(&workers[w], workers[o].tables[t]);
                int n = check_table(owner, pg, role, workers[o].tables[t], mine);
                if (mine)
                    allowed += n;
                else
                    refused += n;
            }
        for (size_t t = 0; reference[t]; t++)
            refused += check_table(owner, pg, role, reference[t], 0);
        ka_pg_free(pg);
    }
    printf("roles: %zu worker roles, %d writes allowed on own tables, %d refused elsewhere\n",
           NWORKERS, allowed, refused);
    assert_true(allowed > 0 && refused > allowed);
    ka_pg_free(owner);
    ka_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_role_writes_only_its_own_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

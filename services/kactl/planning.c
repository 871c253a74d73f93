/* kactl planning: the production-planning feed (提供给生产计划), biggest
 * demand lines first. */
#include <stdio.h>
#include <string.h>

#include "ka_pg.h"
#include "ka_queries.h"
#include "kactl.h"
#include "ui.h"

static void help(FILE *out)
{
    fprintf(out,
            "usage: kactl planning [DIVISION] [--month YYYY-MM] [--limit N]\n\n"
            "Lists the planning feed the forecast worker keeps per SKU, month and division:\n"
            "the weighted quantity (quantity x probability of the confirmed open deals\n"
            "expected to close that month) and the committed quantity (commit deals and\n"
            "deals won that month), in the product's unit, with the line's revision;\n"
            "biggest first. DIVISION limits it to one division (an org node of kind\n"
            "division), --month to one month; --limit N rows (default 20).\n");
}

static int print_rows(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < *n; i++) {
        const char *v[8];
        for (int c = 0; c < 8; c++)
            v[c] = kactl_val(res, i, c);
        printf("%-12s ", v[0]);
        kactl_put_cell(v[1], 16);
        printf(" %-7s %-10s %12s %12s ", v[2], v[3], v[4], v[5]);
        kactl_put_cell(v[6], 6);
        printf(" %5s\n", v[7]);
    }
    return 0;
}

static int read_kind(void *ud, const ka_pgres_t *res)
{
    char *kind = ud;
    if (ka_pgres_rows(res) == 1)
        snprintf(kind, 32, "%s", ka_pgres_value(res, 0, 0));
    return 0;
}

static int valid_month(const char *s)
{
    if (strlen(s) != 7 || s[4] != '-')
        return 0;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (s[i] < '0' || s[i] > '9'))
            return 0;
    int month = (s[5] - '0') * 10 + (s[6] - '0');
    return month >= 1 && month <= 12;
}

int kactl_planning(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], limit[16] = "20", month[16] = "", kind[32] = "";
    const char *division = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            return 0;
        } else if (strcmp(argv[i], "--month") == 0) {
            if (i + 1 >= argc || !valid_month(argv[i + 1])) {
                fprintf(stderr, "kactl planning: --month expects a month as YYYY-MM, e.g. "
                                "--month 2026-11, got \"%s\"\n", i + 1 < argc ? argv[i + 1] : "");
                return 2;
            }
            snprintf(month, sizeof month, "%s-01", argv[++i]);
        } else if (strcmp(argv[i], "--limit") == 0) {
            int n = 0;
            char extra;
            if (i + 1 >= argc || sscanf(argv[i + 1], "%d%c", &n, &extra) != 1 || n < 1 ||
                n > 100000) {
                fprintf(stderr, "kactl planning: --limit expects a number from 1 to 100000, "
                                "got \"%s\"\n", i + 1 < argc ? argv[i + 1] : "");
                return 2;
            }
            snprintf(limit, sizeof limit, "%d", n);
            i++;
        } else if (argv[i][0] != '-' && !division) {
            division = argv[i];
        } else {
            fprintf(stderr, "kactl planning: unexpected argument \"%s\"; usage: kactl planning "
                            "[DIVISION] [--month YYYY-MM] [--limit N] (see --help)\n", argv[i]);
            return 2;
        }
    }
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl planning: %s\n", err);
        return 1;
    }
    ka_err_t rc = KA_OK;
    if (division) {
        ka_pg_param_t d = {division, 0, 0};
        rc = ka_pg_query(pg, "SELECT kind FROM org_node WHERE id = $1", 1, &d, read_kind, kind,
                         err, sizeof err);
        if (rc == KA_OK && strcmp(kind, "division") != 0) {
            fprintf(stderr, "kactl planning: \"%s\" is %s; give a division's id (SELECT id FROM "
                            "org_node WHERE kind = 'division')\n", division,
                    kind[0] ? "not a division" : "no org node");
            ka_pg_free(pg);
            return 2;
        }
    }
    int n = 0;
    if (rc == KA_OK) {
        ka_pg_param_t p[3] = {{division, 0, 0}, {month[0] ? month : NULL, 0, 0}, {limit, 0, 0}};
        printf("%-12s %-16s %-7s %-10s %12s %12s %-6s %5s\n", "sku", "product", "month",
               "division", "weighted", "committed", "unit", "rev");
        rc = ka_pg_query(
            pg,
            "SELECT f.sku, coalesce(p.name, ''), to_char(f.period_month, 'YYYY-MM'), "
            "f.division_node_id, to_char(f.weighted_quantity, 'FM999,999,990.0'), "
            "to_char(f.committed_quantity, 'FM999,999,990.0'), coalesce(p.unit, ''), f.revision "
            "FROM planning_feed f LEFT JOIN product p ON p.sku = f.sku "
            "WHERE " KA_SQL_PLANNING_WHERE " "
            "AND (f.weighted_quantity > 0 OR f.committed_quantity > 0) "
            "ORDER BY f.weighted_quantity + f.committed_quantity DESC, f.sku, f.period_month, "
            "f.division_node_id LIMIT $3::int",
            3, p, print_rows, &n, err, sizeof err);
    }
    ka_pg_free(pg);
    if (rc != KA_OK) {
        fprintf(stderr, "kactl planning: %s\n", err);
        return 1;
    }
    printf("%d demand line%s\n", n, n == 1 ? "" : "s");
    return 0;
}

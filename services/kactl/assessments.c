/* kactl assessments: the value assessments (商机价值评估) of the deals under a
 * node, highest score first: the yes-count of each of the four dimensions of
 * five questions, the score out of 20 (over 10: a high-value deal), and how
 * the assessed deals ended, high-value or not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_pg.h"
#include "kactl.h"
#include "ui.h"

#define UNDER_NODE(col)                                                                           \
    "($1::text IS NULL OR " col " IN (SELECT descendant_id FROM org_closure WHERE ancestor_id = " \
    "$1))"

static void usage(FILE *out)
{
    fprintf(out,
        "usage: kactl assessments [NODE] [--limit N]\n\n"
        "Lists the assessed opportunities owned under NODE (default: the whole company),\n"
        "highest score first, with the yes-count of each dimension of the 20-question value\n"
        "assessment (is there an opportunity, can we compete, can we win, is it worth\n"
        "winning: five questions each), the score out of 20 (over 10: high value), the\n"
        "stage, amount and status; then how many deals were assessed and how the closed\n"
        "ones ended, high-value against the rest.\n"
        "  --limit N    at most N deals (1..100000, default 20)\n");
}

static int print_rows(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        char amount[48];
        kactl_money(strtoll(kactl_val(res, i, 3), NULL, 10), 0, amount, sizeof amount);
        printf("%-14s ", kactl_val(res, i, 0));
        kactl_put_cell(kactl_val(res, i, 1), 18);
        printf(" %-20s %-5s %13s %-4s   %s/5     %s/5   %s/5  %s/5  %2s/20 %-4s %s\n",
               kactl_val(res, i, 2), kactl_val(res, i, 4), amount, kactl_val(res, i, 5),
               kactl_val(res, i, 6), kactl_val(res, i, 7), kactl_val(res, i, 8),
               kactl_val(res, i, 9), kactl_val(res, i, 10),
               kactl_val(res, i, 11)[0] == 't' ? "high" : "", kactl_val(res, i, 12));
    }
    return 0;
}

static int print_summary(void *ud, const ka_pgres_t *res)
{
    (void)ud;
    if (ka_pgres_rows(res) != 1)
        return 0;
    printf("\n%s of %s deals assessed, %s of them high value (score over 10).\n",
           kactl_val(res, 0, 0), kactl_val(res, 0, 1), kactl_val(res, 0, 2));
    printf("Closed: high value %s won of %s (%s%%), the others %s won of %s (%s%%).\n",
           kactl_val(res, 0, 3), kactl_val(res, 0, 4),
           kactl_val(res, 0, 5)[0] ? kactl_val(res, 0, 5) : "-", kactl_val(res, 0, 6),
           kactl_val(res, 0, 7), kactl_val(res, 0, 8)[0] ? kactl_val(res, 0, 8) : "-");
    return 0;
}

int kactl_assessments(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], limit[16] = "20";
    const char *node = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--limit") == 0) {
            int n = 0;
            char extra;
            if (i + 1 >= argc || sscanf(argv[++i], "%d%c", &n, &extra) != 1 || n < 1 ||
                n > 100000) {
                fprintf(stderr, "kactl assessments: --limit expects a number from 1 to 100000\n");
                return 2;
            }
            snprintf(limit, sizeof limit, "%d", n);
        } else if (argv[i][0] == '-' || node) {
            fprintf(stderr, "kactl assessments: unexpected argument \"%s\" (see kactl "
                            "assessments --help)\n", argv[i]);
            return 2;
        } else {
            node = argv[i];
        }
    }
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl assessments: %s\n", err);
        return 1;
    }
    kactl_node_t nd = {.found = 0};
    if (node) {
        int found = kactl_find_node(pg, "assessments", node, 1, &nd);
        if (found != 0) {
            ka_pg_free(pg);
            return found;
        }
        printf("Value assessments (商机价值评估) of the deals under %s %s, highest score first\n",
               node, nd.name);
    } else {
        printf("Value assessments (商机价值评估) of the whole company's deals, highest score "
               "first\n");
    }
    printf("%-14s %-18s %-20s %-5s %13s %-4s  exists compete win worth score\n",
           "opportunity", "account", "owner", "stage", "amount", "");
    ka_pg_param_t p[2] = {{node, 0, 0}, {limit, 0, 0}};
    int n = 0;
    ka_err_t rc = ka_pg_query(
        pg,
        "SELECT o.id, a.display_name, o.owner_rep_id, o.amount_minor, o.stage_code, o.status, "
        "o.assess_exists, o.assess_compete, o.assess_win, o.assess_worth, o.assessment_score, "
        "o.high_value, to_char(o.assessed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') "
        "FROM opportunity o JOIN account a ON a.id = o.account_id "
        "WHERE o.assessed_at IS NOT NULL AND " UNDER_NODE("o.owner_rep_id") " "
        "ORDER BY o.assessment_score DESC, o.amount_minor DESC, o.id LIMIT $2::int",
        2, p, print_rows, &n, err, sizeof err);
    if (rc == KA_OK)
        rc = ka_pg_query(
            pg,
            "SELECT count(*) FILTER (WHERE assessed_at IS NOT NULL), count(*), "
            "count(*) FILTER (WHERE high_value), "
            "count(*) FILTER (WHERE high_value AND status = 'won'), "
            "count(*) FILTER (WHERE high_value AND status <> 'open'), "
            "round(100.0 * count(*) FILTER (WHERE high_value AND status = 'won') "
            "/ nullif(count(*) FILTER (WHERE high_value AND status <> 'open'), 0)), "
            "count(*) FILTER (WHERE assessed_at IS NOT NULL AND NOT high_value "
            "AND status = 'won'), count(*) FILTER (WHERE assessed_at IS NOT NULL "
            "AND NOT high_value AND status <> 'open'), "
            "round(100.0 * count(*) FILTER (WHERE assessed_at IS NOT NULL AND NOT high_value "
            "AND status = 'won') / nullif(count(*) FILTER (WHERE assessed_at IS NOT NULL "
            "AND NOT high_value AND status <> 'open'), 0)) "
            "FROM opportunity o WHERE " UNDER_NODE("o.owner_rep_id"),
            1, p, print_summary, NULL, err, sizeof err);
    ka_pg_free(pg);
    if (rc != KA_OK) {
        fprintf(stderr, "kactl assessments: %s\n", err);
        return 1;
    }
    if (n == 0)
        printf("(no assessed deals)\n");
    return 0;
}

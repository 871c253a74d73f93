/* kactl accuracy: how close a node's forecast came to what it booked. The
 * forecast worker computes it once a period has ended (docs/domain-choices.md,
 * "Forecast accuracy"): for each lead (30, 60, 90 days), the adjusted closed +
 * commit of the latest snapshot at or before the period's end less the lead,
 * against the booked revenue of the node's subtree in the period. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_pg.h"
#include "kactl.h"
#include "ui.h"

static int print_rows(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        char forecast[48], actual[48];
        kactl_money(strtoll(kactl_val(res, i, 4), NULL, 10), 0, forecast, sizeof forecast);
        kactl_money(strtoll(kactl_val(res, i, 5), NULL, 10), 0, actual, sizeof actual);
        printf("%-8s %-8s %4s days  %-10s  %15s  %15s  %8s\n", kactl_val(res, i, 0),
               kactl_val(res, i, 1), kactl_val(res, i, 2), kactl_val(res, i, 3), forecast,
               actual, kactl_val(res, i, 6)[0] ? kactl_val(res, i, 6) : "-");
    }
    return 0;
}

int kactl_accuracy(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE];
    const char *node = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: kactl accuracy NODE\n\n"
                   "The forecast accuracy of NODE for each ended month and quarter and each\n"
                   "lead (30, 60, 90 days before the period's end): the forecast then (adjusted\n"
                   "closed + commit of that day's snapshot), what the subtree booked, and\n"
                   "booked / forecast in per cent (\"-\" when the forecast was zero).\n");
            return 0;
        } else if (argv[i][0] == '-' || node) {
            fprintf(stderr, "kactl accuracy: unexpected argument \"%s\" (see kactl accuracy "
                            "--help)\n", argv[i]);
            return 2;
        } else {
            node = argv[i];
        }
    }
    if (!node) {
        fprintf(stderr, "kactl accuracy: which node? (see kactl accuracy --help)\n");
        return 2;
    }
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl accuracy: %s\n", err);
        return 1;
    }
    kactl_node_t nd;
    int found = kactl_find_node(pg, "accuracy", node, 0, &nd);
    if (found != 0) {
        ka_pg_free(pg);
        return found;
    }
    printf("Forecast accuracy of %s %s (booked / forecast)\n", node, nd.name);
    printf("%-8s %-8s %9s  %-10s  %15s  %15s  %8s\n", "period", "kind", "lead", "snapshot",
           "forecast", "booked", "accuracy");
    ka_pg_param_t p[1] = {{node, 0, 0}};
    int n = 0;
    ka_err_t rc = ka_pg_query(
        pg,
        "SELECT CASE period_kind WHEN 'month' THEN to_char(period_start, 'YYYY-MM') "
        "ELSE to_char(period_start, 'YYYY-\"Q\"Q') END, period_kind, lead_days, "
        "snapshot_date::text, forecast_minor, actual_minor, "
        "to_char(accuracy_bp / 100.0, 'FM9999990.0') || '%' "
        "FROM forecast_accuracy WHERE node_id = $1 "
        "ORDER BY period_kind DESC, period_start, lead_days",
        1, p, print_rows, &n, err, sizeof err);
    ka_pg_free(pg);
    if (rc != KA_OK) {
        fprintf(stderr, "kactl accuracy: %s\n", err);
        return 1;
    }
    if (n == 0)
        printf("(none yet: a period's accuracy comes the day after it ends, from snapshots "
               "taken 30 to 90 days before)\n");
    return 0;
}

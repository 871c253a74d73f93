/* kactl alerts: the alerts firing now (or all, most recent first). */
#include <stdio.h>
#include <string.h>

#include "ka_pg.h"
#include "ka_queries.h"
#include "kactl.h"

static int print_rows(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        const char *v[6];
        for (int c = 0; c < 6; c++)
            v[c] = ka_pgres_value(res, i, c) ? ka_pgres_value(res, i, c) : "";
        printf("%-9s %-8s %-20s %-12s %s\n          %s\n", v[0], v[1], v[2], v[3], v[4], v[5]);
    }
    return 0;
}

int kactl_alerts(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], limit[16] = "50";
    int all = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: kactl alerts [--all] [--limit N]\n\n"
                   "Lists the alerts firing now, most recent first; --all adds resolved ones.\n");
            return 0;
        } else if (strcmp(argv[i], "--all") == 0) {
            all = 1;
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            int n = 0;
            if (sscanf(argv[++i], "%d", &n) != 1 || n < 1 || n > 100000) {
                fprintf(stderr, "kactl alerts: --limit expects a number from 1 to 100000\n");
                return 2;
            }
            snprintf(limit, sizeof limit, "%d", n);
        } else {
            fprintf(stderr, "kactl alerts: unexpected argument \"%s\" (see kactl alerts --help)\n",
                    argv[i]);
            return 2;
        }
    }
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl alerts: %s\n", err);
        return 1;
    }
    ka_pg_param_t p[2] = {{all ? "t" : "f", 0, 0}, {limit, 0, 0}};
    int n = 0;
    printf("%-9s %-8s %-20s %-12s %s\n", "status", "severity", "type", "subject", "since (UTC)");
    ka_err_t rc = ka_pg_query(
        pg,
        "SELECT status, severity, type, subject_id, "
        "to_char(CASE WHEN status = 'firing' THEN starts_at ELSE ends_at END AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD HH24:MI'), summary FROM alert_state "
        "WHERE $1::boolean OR status = 'firing' ORDER BY " KA_SQL_ALERTS_ORDER("") " LIMIT $2::int",
        2, p, print_rows, &n, err, sizeof err);
    ka_pg_free(pg);
    if (rc != KA_OK) {
        fprintf(stderr, "kactl alerts: %s\n", err);
        return 1;
    }
    printf("%d alert%s\n", n, n == 1 ? "" : "s");
    return 0;
}

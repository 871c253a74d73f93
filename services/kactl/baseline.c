/* kactl baseline-from-funnel: makes today's funnel the explicit baseline of
 * every node and stage (count and amount), for a deployment that has no
 * history yet, or to reset expectations after a reorganisation. */
#include <stdio.h>
#include <string.h>

#include "ka_pg.h"
#include "kactl.h"

static int read_count(void *ud, const ka_pgres_t *res)
{
    *(long long *)ud = ka_pgres_rows(res) ? ka_pgres_int(res, 0, 0, 0) : 0;
    return 0;
}

int kactl_baseline_from_funnel(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], days[16] = "90";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: kactl baseline-from-funnel [--days N]\n\n"
                   "Sets, for every org node above the reps and every stage with at least\n"
                   "5 open opportunities, an explicit baseline equal to the current open count\n"
                   "and amount, valid from today for N days (default 90).\n");
            return 0;
        } else if (strcmp(argv[i], "--days") == 0 && i + 1 < argc) {
            int n = 0;
            if (sscanf(argv[++i], "%d", &n) != 1 || n < 1 || n > 3660) {
                fprintf(stderr, "kactl baseline-from-funnel: --days expects 1 to 3660\n");
                return 2;
            }
            snprintf(days, sizeof days, "%d", n);
        } else {
            fprintf(stderr, "kactl baseline-from-funnel: unexpected argument \"%s\"\n", argv[i]);
            return 2;
        }
    }
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl baseline-from-funnel: %s\n", err);
        return 1;
    }
    long long n = 0;
    ka_pg_param_t p = {days, 0, 0};
    ka_err_t rc = ka_pg_exec(pg, "BEGIN", err, sizeof err);
    if (rc == KA_OK)
        rc = ka_pg_query(
            pg,
            "WITH rows AS (INSERT INTO funnel_baseline (node_id, definition_id, stage_code, "
            "metric, value, source, valid_from, valid_to) "
            "SELECT f.node_id, f.definition_id, f.stage_code, m.metric, "
            "CASE m.metric WHEN 'count' THEN f.open_count ELSE f.amount_minor END, 'explicit', "
            "current_date, current_date + $1::int FROM funnel_state f "
            "JOIN org_node n ON n.id = f.node_id "
            "CROSS JOIN (VALUES ('count'), ('amount')) AS m(metric) "
            /* A rep's handful of deals moves too much for a ratio to mean
             * anything; baselines start at team level, on stages with a few
             * deals at least. */
            "WHERE n.kind <> 'rep' AND f.open_count >= 5 "
            "ON CONFLICT (node_id, definition_id, stage_code, metric, source, valid_from) "
            "DO UPDATE SET value = EXCLUDED.value, valid_to = EXCLUDED.valid_to, updated_at = now() "
            "RETURNING 1) SELECT count(*) FROM rows",
            1, &p, read_count, &n, err, sizeof err);
    if (rc == KA_OK)
        rc = ka_pg_exec(pg, "SELECT ka_notify_reference_changed('baseline'); COMMIT", err,
                        sizeof err);
    if (rc != KA_OK) {
        ka_pg_rollback(pg);
        fprintf(stderr, "kactl baseline-from-funnel: %s\n", err);
    } else {
        printf("baselines: %lld set from the current funnel, valid %s days\n", n, days);
    }
    ka_pg_free(pg);
    return rc == KA_OK ? 0 : 1;
}

/* kactl baselines: the funnel baselines of a node in force on a day, by
 * stage: the explicit ones (kactl load baselines, baseline-from-funnel) and
 * the ones the forecast worker derives from the daily funnel snapshots (the
 * same day of the month in each of the last KA_BASELINE_PERIODS months; see
 * docs/domain-choices.md, "Derived baselines"). An explicit baseline wins. */
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
        char ea[48] = "-", da[48] = "-";
        if (kactl_val(res, i, 4)[0])
            kactl_money(strtoll(kactl_val(res, i, 4), NULL, 10), 0, ea, sizeof ea);
        if (kactl_val(res, i, 6)[0])
            kactl_money(strtoll(kactl_val(res, i, 6), NULL, 10), 0, da, sizeof da);
        printf("%-12s %-6s  %8s %15s  %8s %15s  %s\n", kactl_val(res, i, 0),
               kactl_val(res, i, 1), kactl_val(res, i, 3)[0] ? kactl_val(res, i, 3) : "-", ea,
               kactl_val(res, i, 5)[0] ? kactl_val(res, i, 5) : "-", da, kactl_val(res, i, 7));
    }
    return 0;
}

int kactl_baselines(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE];
    const char *node = NULL, *date = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: kactl baselines NODE [--date YYYY-MM-DD]\n\n"
                   "The funnel baselines of NODE in force on the date (default: today, UTC),\n"
                   "stage by stage: explicit and derived (from the daily funnel snapshots of\n"
                   "the same day in past months), open count and amount, and the snapshot\n"
                   "days a derived one averages. An explicit baseline wins.\n");
            return 0;
        } else if (strcmp(argv[i], "--date") == 0 && i + 1 < argc) {
            date = argv[++i];
        } else if (argv[i][0] == '-' || node) {
            fprintf(stderr, "kactl baselines: unexpected argument \"%s\" (see kactl baselines "
                            "--help)\n", argv[i]);
            return 2;
        } else {
            node = argv[i];
        }
    }
    if (!node) {
        fprintf(stderr, "kactl baselines: which node? (see kactl baselines --help)\n");
        return 2;
    }
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl baselines: %s\n", err);
        return 1;
    }
    kactl_node_t nd;
    int found = kactl_find_node(pg, "baselines", node, 0, &nd);
    if (found != 0) {
        ka_pg_free(pg);
        return found;
    }
    printf("Funnel baselines of %s %s on %s\n", node, nd.name, date ? date : "today (UTC)");
    printf("%-12s %-6s  %8s %15s  %8s %15s  %s\n", "definition", "stage", "explicit", "amount",
           "derived", "amount", "derived from the snapshots of");
    ka_pg_param_t p[2] = {{node, 0, 0}, {date, 0, 0}};
    int n = 0;
    ka_err_t rc = ka_pg_query(
        pg,
        "WITH d AS (SELECT coalesce($2::date, (now() AT TIME ZONE 'UTC')::date) AS day), "
        "b AS (SELECT b.definition_id, b.stage_code, b.source, b.metric, b.value "
        "FROM funnel_baseline b, d WHERE b.node_id = $1 AND b.valid_from <= d.day "
        "AND b.valid_to > d.day) "
        "SELECT st.definition_id, st.code, st.ordinal, "
        "(SELECT max(value) FROM b WHERE b.definition_id = st.definition_id AND b.stage_code = "
        "st.code AND source = 'explicit' AND metric = 'count'), "
        "(SELECT max(value) FROM b WHERE b.definition_id = st.definition_id AND b.stage_code = "
        "st.code AND source = 'explicit' AND metric = 'amount'), "
        "(SELECT max(value) FROM b WHERE b.definition_id = st.definition_id AND b.stage_code = "
        "st.code AND source = 'derived' AND metric = 'count'), "
        "(SELECT max(value) FROM b WHERE b.definition_id = st.definition_id AND b.stage_code = "
        "st.code AND source = 'derived' AND metric = 'amount'), "
        "coalesce((SELECT string_agg(s.snapshot_date::text, ' ' ORDER BY s.snapshot_date) "
        "FROM funnel_snapshot s, d WHERE s.node_id = $1 AND s.definition_id = st.definition_id "
        "AND s.stage_code = st.code AND s.snapshot_date < d.day AND EXISTS (SELECT 1 FROM b "
        "WHERE b.definition_id = st.definition_id AND b.stage_code = st.code "
        "AND b.source = 'derived') AND s.snapshot_date IN (SELECT (d.day - i * interval "
        "'1 month')::date FROM generate_series(1, 24) AS i)), '') "
        "FROM funnel_stage st WHERE st.definition_id IN (SELECT definition_id FROM b) "
        "ORDER BY st.definition_id, st.ordinal",
        2, p, print_rows, &n, err, sizeof err);
    ka_pg_free(pg);
    if (rc != KA_OK) {
        fprintf(stderr, "kactl baselines: %s\n", err);
        return 1;
    }
    if (n == 0)
        printf("(none in force)\n");
    return 0;
}

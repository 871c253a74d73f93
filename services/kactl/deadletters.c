/* kactl deadletters: the dead letters kept in PostgreSQL, newest first. */
#include <stdio.h>
#include <string.h>

#include "ka_pg.h"
#include "ka_queries.h"
#include "kactl.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kactl deadletters [--group G] [--reason R] [--pending] [--limit N]\n\n"
            "Lists the dead letters kept in PostgreSQL (table dead_letter), newest first:\n"
            "id, time (UTC), consumer group, source topic [partition] @ offset, reason,\n"
            "payload size, content mode (protobuf, json, cloudevents, confluent; \"-\" for\n"
            "one recorded before modes were) and re-drive state, then the detail on its own\n"
            "line, with the JSON path of the value a JSON rejection is about (\"at $.lines[2]\n"
            ".quantityMilli\").\n\n"
            "  --group G    only dead letters of consumer group G (e.g. ka-visit-worker)\n"
            "  --reason R   only reason R (decode_failed, missing_field, apply_failed, ...)\n"
            "  --pending    only those not re-driven yet\n"
            "  --limit N    at most N rows (1..100000, default 50)\n\n"
            "Re-drive them after a fix with `kactl redrive ID...` or\n"
            "`kactl redrive --reason R`.\n");
}

static int print_rows(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        const char *v[12];
        for (int c = 0; c < 12; c++)
            v[c] = ka_pgres_value(res, i, c) ? ka_pgres_value(res, i, c) : "";
        printf("%-7s %-19s %-22s %s [%s] @ %s  %s  %s bytes  %s  %s\n        %s%s%s\n", v[0],
               v[1], v[2], v[3], v[4], v[5], v[6], v[8], v[10][0] ? v[10] : "-",
               v[9][0] ? v[9] : "pending", v[7], v[11][0] ? "  at " : "", v[11]);
    }
    return 0;
}

int kactl_deadletters(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], limit[16] = "50";
    const char *group = NULL, *reason = NULL;
    int pending = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--pending") == 0) {
            pending = 1;
        } else if (strcmp(argv[i], "--group") == 0 && i + 1 < argc && argv[i + 1][0]) {
            group = argv[++i];
        } else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc && argv[i + 1][0]) {
            reason = argv[++i];
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            int n = 0;
            char extra;
            if (sscanf(argv[++i], "%d%c", &n, &extra) != 1 || n < 1 || n > 100000) {
                fprintf(stderr, "kactl deadletters: --limit expects a number from 1 to 100000, "
                                "not \"%s\"\n", argv[i]);
                return 2;
            }
            snprintf(limit, sizeof limit, "%d", n);
        } else if (strcmp(argv[i], "--group") == 0 || strcmp(argv[i], "--reason") == 0 ||
                   strcmp(argv[i], "--limit") == 0) {
            fprintf(stderr, "kactl deadletters: %s needs a value (see kactl deadletters --help)\n",
                    argv[i]);
            return 2;
        } else {
            fprintf(stderr, "kactl deadletters: unexpected argument \"%s\" "
                            "(see kactl deadletters --help)\n", argv[i]);
            return 2;
        }
    }
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl deadletters: %s\n", err);
        return 1;
    }
    ka_pg_param_t p[4] = {{group, 0, 0}, {reason, 0, 0}, {pending ? "t" : "f", 0, 0},
                          {limit, 0, 0}};
    int n = 0;
    printf("%-7s %-19s %-22s %s\n", "id", "time (UTC)", "group",
           "source topic [partition] @ offset  reason  size  re-driven");
    ka_err_t rc = ka_pg_query(
        pg,
        "SELECT id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), "
        "consumer_group, source_topic, source_partition, source_offset, reason, "
        "coalesce(detail, ''), coalesce(length(payload), 0), "
        "coalesce('re-driven ' || to_char(redriven_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD HH24:MI:SS'), ''), coalesce(content_mode, ''), coalesce(json_path, '') "
        "FROM dead_letter d WHERE " KA_SQL_DEADLETTERS_WHERE " ORDER BY "
        KA_SQL_DEADLETTERS_ORDER " LIMIT $4::int",
        4, p, print_rows, &n, err, sizeof err);
    ka_pg_free(pg);
    if (rc != KA_OK) {
        fprintf(stderr, "kactl deadletters: %s\n", err);
        return 1;
    }
    printf("%d dead letter%s\n", n, n == 1 ? "" : "s");
    return 0;
}

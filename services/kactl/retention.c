/* kactl retention: the partitions of the growing logs, their retention, and
 * the round that creates partitions ahead and drops the old ones
 * (docs/retention.md; the work is ka_retention_apply() in 0025). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_pg.h"
#include "ka_validate.h"
#include "kactl.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kactl retention                  show each table's partitions and retention\n"
            "       kactl retention apply [--dry-run] create partitions ahead, drop old ones\n"
            "       kactl retention set TABLE KEEP [--every day|month] [--ahead N]\n"
            "       kactl retention set kafka_input_retention KEEP\n\n"
            "The growing logs (processed_event, opportunity_event, outbox, alert_history,\n"
            "dead_letter and the snapshots) are range-partitioned by time. `apply` creates\n"
            "the partitions from now - KEEP to AHEAD partitions past the current one, drops\n"
            "every partition whose whole range is older than now - KEEP (an outbox partition\n"
            "holding an unpublished row is kept), and deletes the DEFAULT partition's rows\n"
            "older than that. Run it daily (cron, a systemd timer, a Kubernetes CronJob);\n"
            "an insert never waits for it: a row without its partition lands in DEFAULT.\n"
            "--dry-run prints what it would do and changes nothing.\n\n"
            "KEEP is a number of days (400d) or hours (36h). processed_event's KEEP is the\n"
            "dedupe window: it must be longer than kafka_input_retention, the retention of\n"
            "the input topics in Kafka, and events older than the difference are\n"
            "dead-lettered (outside_dedupe_window). Workers read it when they start.\n"
            "The clock honours KA_CLOCK_OFFSET_MS, as the workers' does.\n");
}

static int fail(ka_pg_t *pg, const char *what, const char *err)
{
    fprintf(stderr, "kactl retention%s%s: %s\n", what[0] ? " " : "", what, err);
    ka_pg_free(pg);
    return 1;
}

static int print_status(void *ud, const ka_pgres_t *res)
{
    (void)ud;
    printf("%-21s %10s %9s %12s %10s  %-16s %-9s %-5s %s\n", "table", "partitions", "default",
           "rows (est.)", "MB", "oldest (UTC)", "keep", "every", "ahead");
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        const char *v[10];
        for (int c = 0; c < 10; c++)
            v[c] = ka_pgres_value(res, i, c) ? ka_pgres_value(res, i, c) : "";
        printf("%-21s %10s %9s %12s %10s  %-16s %-9s %-5s %s\n", v[0], v[1], v[2], v[3], v[4],
               v[5][0] ? v[5] : "-", v[6], v[7], v[8]);
    }
    return 0;
}

static int print_window(void *ud, const ka_pgres_t *res)
{
    (void)ud;
    if (ka_pgres_rows(res) == 1)
        printf("\ndedupe window: processed_event keeps %s, the input topics keep %s in Kafka;\n"
               "an event older than %s days is dead-lettered (outside_dedupe_window).\n",
               ka_pgres_value(res, 0, 0), ka_pgres_value(res, 0, 1), ka_pgres_value(res, 0, 2));
    return 0;
}

static int show(ka_pg_t *pg)
{
    char err[KA_ERRSTR_SIZE];
    if (ka_pg_query(pg,
                    "SELECT table_name, partitions, in_default, rows, "
                    "round(bytes / 1048576.0, 1), to_char(oldest AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD HH24:MI'), keep, every, ahead FROM ka_retention_status()",
                    0, NULL, print_status, NULL, err, sizeof err) != KA_OK)
        return fail(pg, "", err);
    if (ka_pg_query(pg,
                    "SELECT p.keep, s.value, ka_retention_max_event_age_ms() / 86400000 "
                    "FROM retention_policy p, retention_setting s "
                    "WHERE p.table_name = 'processed_event' AND s.name = 'kafka_input_retention'",
                    0, NULL, print_window, NULL, err, sizeof err) != KA_OK)
        return fail(pg, "", err);
    ka_pg_free(pg);
    return 0;
}

static int print_actions(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < *n; i++)
        printf("%-21s %-8s %-32s %s\n", ka_pgres_value(res, i, 0), ka_pgres_value(res, i, 1),
               ka_pgres_value(res, i, 2),
               ka_pgres_value(res, i, 3) ? ka_pgres_value(res, i, 3) : "");
    return 0;
}

static int apply(ka_pg_t *pg, int dry_run)
{
    char err[KA_ERRSTR_SIZE], now[24];
    int n = 0;
    snprintf(now, sizeof now, "%lld", (long long)ka_now_ms());
    ka_pg_param_t p = {now, 0, 0};
    if (ka_pg_exec(pg, "BEGIN", err, sizeof err) != KA_OK)
        return fail(pg, "apply", err);
    if (ka_pg_query(pg,
                    "SELECT * FROM ka_retention_apply(timestamptz 'epoch' + "
                    "$1::bigint * interval '1 millisecond')",
                    1, &p, print_actions, &n, err, sizeof err) != KA_OK) {
        char ignore[KA_ERRSTR_SIZE];
        (void)ka_pg_exec(pg, "ROLLBACK", ignore, sizeof ignore);
        return fail(pg, "apply", err);
    }
    if (ka_pg_exec(pg, dry_run ? "ROLLBACK" : "COMMIT", err, sizeof err) != KA_OK)
        return fail(pg, "apply", err);
    printf("%d change%s%s\n", n, n == 1 ? "" : "s", dry_run ? " (dry run: none made)" : "");
    ka_pg_free(pg);
    return 0;
}

/* "400d" or "36h" as a PostgreSQL interval; -1 when it is neither. */
static int parse_keep(const char *s, char *out, size_t len)
{
    long n = 0;
    char unit = 0, extra;
    if (sscanf(s, "%ld%c%c", &n, &unit, &extra) != 2 || n < 1 || n > 36600 ||
        (unit != 'd' && unit != 'h'))
        return -1;
    snprintf(out, len, "%ld %s", n, unit == 'd' ? "days" : "hours");
    return 0;
}

static int count_rows(void *ud, const ka_pgres_t *res)
{
    *(int *)ud = ka_pgres_rows(res);
    return 0;
}

static int set(ka_pg_t *pg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], keep[48], ahead[16] = "";
    const char *every = NULL;
    if (argc < 4) {
        fprintf(stderr, "kactl retention set: needs TABLE and KEEP (see kactl retention --help)\n");
        ka_pg_free(pg);
        return 2;
    }
    const char *table = argv[2];
    if (parse_keep(argv[3], keep, sizeof keep) != 0) {
        fprintf(stderr, "kactl retention set: KEEP is days (400d) or hours (36h), not \"%s\"\n",
                argv[3]);
        ka_pg_free(pg);
        return 2;
    }
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--every") == 0 && i + 1 < argc &&
            (strcmp(argv[i + 1], "day") == 0 || strcmp(argv[i + 1], "month") == 0)) {
            every = argv[++i];
        } else if (strcmp(argv[i], "--ahead") == 0 && i + 1 < argc) {
            int a = 0;
            char extra;
            if (sscanf(argv[++i], "%d%c", &a, &extra) != 1 || a < 1 || a > 400) {
                fprintf(stderr, "kactl retention set: --ahead expects 1 to 400 partitions, "
                                "not \"%s\"\n", argv[i]);
                ka_pg_free(pg);
                return 2;
            }
            snprintf(ahead, sizeof ahead, "%d", a);
        } else {
            fprintf(stderr, "kactl retention set: unexpected argument \"%s\" (--every day|month, "
                            "--ahead N; see kactl retention --help)\n", argv[i]);
            ka_pg_free(pg);
            return 2;
        }
    }
    int is_setting = strcmp(table, "kafka_input_retention") == 0;
    if (is_setting && (every || ahead[0])) {
        fprintf(stderr, "kactl retention set: kafka_input_retention takes only KEEP\n");
        ka_pg_free(pg);
        return 2;
    }
    ka_pg_param_t p[4] = {{table, 0, 0}, {keep, 0, 0}, {every, 0, 0},
                          {ahead[0] ? ahead : NULL, 0, 0}};
    int n = 0;
    char ignore[KA_ERRSTR_SIZE];
    if (ka_pg_exec(pg, "BEGIN", err, sizeof err) != KA_OK)
        return fail(pg, "set", err);
    ka_err_t rc = ka_pg_query(
        pg,
        is_setting ? "UPDATE retention_setting SET value = $2::interval, updated_at = now() "
                     "WHERE name = $1 RETURNING name"
                   : "UPDATE retention_policy SET keep = $2::interval, "
                     "every = coalesce($3, every), ahead = coalesce($4::int, ahead), "
                     "updated_at = now() WHERE table_name = $1 RETURNING table_name",
        is_setting ? 2 : 4, p, count_rows, &n, err, sizeof err);
    /* The dedupe window must outlive Kafka's retention whatever was changed. */
    if (rc == KA_OK && n == 1)
        rc = ka_pg_query(pg, "SELECT ka_retention_max_event_age_ms()", 0, NULL, NULL, NULL, err,
                         sizeof err);
    if (rc != KA_OK || n != 1) {
        (void)ka_pg_exec(pg, "ROLLBACK", ignore, sizeof ignore);
        if (rc == KA_OK)
            snprintf(err, sizeof err,
                     "no table \"%s\" has a retention policy (see kactl retention for the "
                     "list, or kafka_input_retention)", table);
        return fail(pg, "set", err);
    }
    if (ka_pg_exec(pg, "COMMIT", err, sizeof err) != KA_OK)
        return fail(pg, "set", err);
    printf("%s keeps %s; `kactl retention apply` acts on it%s\n", table, keep,
           strcmp(table, "processed_event") == 0 || is_setting
               ? ", workers read the dedupe window when they start" : "");
    ka_pg_free(pg);
    return 0;
}

int kactl_retention(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE];
    int dry_run = 0;
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    const char *sub = argc > 1 ? argv[1] : "show";
    if (strcmp(sub, "show") == 0 || strcmp(sub, "apply") == 0) {
        for (int i = 2; i < argc; i++) {
            if (strcmp(sub, "apply") == 0 && strcmp(argv[i], "--dry-run") == 0) {
                dry_run = 1;
            } else {
                fprintf(stderr, "kactl retention %s: unexpected argument \"%s\" "
                                "(see kactl retention --help)\n", sub, argv[i]);
                return 2;
            }
        }
    } else if (strcmp(sub, "set") != 0) {
        fprintf(stderr, "kactl retention: unknown subcommand \"%s\" (show, apply, set; see "
                        "kactl retention --help)\n", sub);
        return 2;
    }
    ka_clock_set_offset_ms(ka_config_int(cfg, "KA_CLOCK_OFFSET_MS"));
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl retention: %s\n", err);
        return 1;
    }
    if (strcmp(sub, "apply") == 0)
        return apply(pg, dry_run);
    if (strcmp(sub, "set") == 0)
        return set(pg, argc, argv);
    return show(pg);
}

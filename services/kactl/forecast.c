/* kactl forecast NODE [--period P] [--history]: a node's forecast (DOMAIN.md
 * section 5), raw and adjusted side by side with quota, coverage and gap,
 * the adjustments in force, and the submissions over time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka_pg.h"
#include "ka_queries.h"
#include "ka_validate.h"
#include "kactl.h"
#include "ui.h"

/* The forecast rows' categories, in the column order of the queries below
 * (raw_* then adj_* of each). */
/* A stored amount (text, NULL for none) as money. */
static void forecast_money(const char *minor, char *out, size_t len)
{
    if (!minor || !minor[0])
        snprintf(out, len, "-");
    else
        kactl_money(strtoll(minor, NULL, 10), 1, out, len);
}

static const char *const category_labels[] = {"closed", "commit", "best case", "pipeline",
                                              "weighted pipeline"};
#define NCATEGORIES 5

/* Coverage in basis points -> "1.85x". It is stored NULL in two cases the
 * reader must tell apart: no quota ("-", the quota line says "no quota"), and
 * quota - closed <= 0, nothing left to close ("met"). */
static void coverage(const char *bp, const char *quota, const char *closed, char *out,
                     size_t len)
{
    if (!quota || !quota[0]) {
        snprintf(out, len, "-");
        return;
    }
    if (strtoll(quota, NULL, 10) - strtoll(closed, NULL, 10) <= 0) {
        snprintf(out, len, "met");
        return;
    }
    if (!bp || !bp[0]) {
        snprintf(out, len, "-");
        return;
    }
    long long v = strtoll(bp, NULL, 10);
    snprintf(out, len, "%lld.%02lldx", v / 10000, (v % 10000) / 100);
}

/* "2026-03" or "2026-Q1" for a period starting "YYYY-MM-01". */
static void period_label(const char *kind, const char *start, char *out, size_t len)
{
    unsigned y = 0, m = 1;
    if (sscanf(start, "%4u-%2u", &y, &m) != 2 || m < 1 || m > 12)
        m = 1;
    if (strcmp(kind, "quarter") == 0)
        snprintf(out, len, "%04u-Q%u", y % 10000, (m - 1) / 3 + 1);
    else
        snprintf(out, len, "%04u-%02u", y % 10000, m);
}

/* Columns of forecast_cols: 0 kind, 1 start, 2 last day, 3..7 raw, 8..12
 * adjusted, 13 quota, 14 raw coverage, 15 adjusted coverage, 16 raw gap, 17
 * adjusted gap, 18 revision, 19 submitted at, 20 submitted by, 21 updated. */
#define FORECAST_COLS                                                                            \
    "f.period_kind, f.period_start::text, "                                                    \
    "(" KA_SQL_PERIOD_END("f.period_kind", "f.period_start") " - 1)::text, "                   \
    "f.raw_closed_minor, f.raw_commit_minor, f.raw_best_case_minor, f.raw_pipeline_minor, "      \
    "f.raw_weighted_pipeline_minor, f.adj_closed_minor, f.adj_commit_minor, "                    \
    "f.adj_best_case_minor, f.adj_pipeline_minor, f.adj_weighted_pipeline_minor, "              \
    "f.quota_minor, f.raw_coverage_bp, f.adj_coverage_bp, f.raw_gap_minor, f.adj_gap_minor, "    \
    "f.revision, to_char(f.submitted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "           \
    "f.submitted_by, to_char(f.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') "

typedef struct period {
    char kind[8], start[16];
} period_t;

typedef struct shown {
    period_t p[64];
    int n;
} shown_t;

static void row2(const char *label, const char *raw, const char *adj)
{
    printf("  %-18s %18s %18s%s\n", label, raw, adj, strcmp(raw, adj) != 0 ? "  (adjusted)" : "");
}

static int print_forecasts(void *ud, const ka_pgres_t *res)
{
    shown_t *sh = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        char label[24], a[64], b[64];
        period_label(kactl_val(res, i, 0), kactl_val(res, i, 1), label, sizeof label);
        if (sh->n < (int)(sizeof sh->p / sizeof sh->p[0])) {
            snprintf(sh->p[sh->n].kind, sizeof sh->p[sh->n].kind, "%s", kactl_val(res, i, 0));
            snprintf(sh->p[sh->n].start, sizeof sh->p[sh->n].start, "%s", kactl_val(res, i, 1));
            sh->n++;
        }
        printf("\n%s (%s %s .. %s), revision %s", label, kactl_val(res, i, 0), kactl_val(res, i, 1),
               kactl_val(res, i, 2), kactl_val(res, i, 18));
        if (ka_pgres_value(res, i, 19))
            printf(", submitted %s UTC by %s", kactl_val(res, i, 19),
                   ka_pgres_value(res, i, 20) ? kactl_val(res, i, 20) : "the roll-up");
        printf(", updated %s UTC\n", kactl_val(res, i, 21));
        printf("  %-18s %18s %18s\n", "", "raw", "adjusted");
        for (int c = 0; c < NCATEGORIES; c++) {
            forecast_money(kactl_val(res, i, 3 + c), a, sizeof a);
            forecast_money(kactl_val(res, i, 8 + c), b, sizeof b);
            row2(category_labels[c], a, b);
        }
        const char *quota = kactl_val(res, i, 13);
        if (quota[0])
            forecast_money(quota, a, sizeof a);
        else
            snprintf(a, sizeof a, "no quota");
        printf("  %-18s %18s\n", "quota", a);
        coverage(kactl_val(res, i, 14), quota, kactl_val(res, i, 3), a, sizeof a);
        coverage(kactl_val(res, i, 15), quota, kactl_val(res, i, 8), b, sizeof b);
        row2("coverage", a, b);
        forecast_money(kactl_val(res, i, 16), a, sizeof a);
        forecast_money(kactl_val(res, i, 17), b, sizeof b);
        row2("gap", a, b);
    }
    return 0;
}

static int print_adjustments(void *ud, const ka_pgres_t *res)
{
    (void)ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        char label[24], a[64], b[64];
        period_label(kactl_val(res, i, 0), kactl_val(res, i, 1), label, sizeof label);
        forecast_money(kactl_val(res, i, 3), a, sizeof a);
        forecast_money(kactl_val(res, i, 4), b, sizeof b);
        printf("  %-8s %-18s %s -> %s by %s at %s UTC: %s\n", label, kactl_val(res, i, 2), a, b,
               kactl_val(res, i, 5), kactl_val(res, i, 6), kactl_val(res, i, 7));
    }
    if (ka_pgres_rows(res) == 0)
        printf("  none\n");
    return 0;
}

static int print_history(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        char label[24], m[5][64];
        period_label(kactl_val(res, i, 0), kactl_val(res, i, 1), label, sizeof label);
        for (int c = 0; c < 5; c++)
            forecast_money(ka_pgres_value(res, i, 5 + c), m[c], sizeof m[c]);
        if (!ka_pgres_value(res, i, 9))
            snprintf(m[4], sizeof m[4], "no quota");
        printf("%-8s %-16s %8s %-16s %15s %15s %15s %15s %15s%s\n", label, kactl_val(res, i, 2),
               kactl_val(res, i, 3), ka_pgres_value(res, i, 4) ? kactl_val(res, i, 4) : "(roll-up)", m[0],
               m[1], m[2], m[3], m[4], kactl_val(res, i, 10)[0] == 't' ? "  *" : "");
    }
    return 0;
}

typedef struct node {
    int found, has_rows;
    char kind[16], name[256];
} node_t;

static int read_node(void *ud, const ka_pgres_t *res)
{
    node_t *n = ud;
    if (ka_pgres_rows(res) == 1) {
        n->found = ka_pgres_value(res, 0, 0) != NULL;
        snprintf(n->kind, sizeof n->kind, "%s", kactl_val(res, 0, 0));
        snprintf(n->name, sizeof n->name, "%s", kactl_val(res, 0, 1));
        n->has_rows = kactl_val(res, 0, 2)[0] == 't';
    }
    return 0;
}

static int read_text(void *ud, const ka_pgres_t *res)
{
    snprintf(ud, 256, "%s", ka_pgres_rows(res) == 1 ? kactl_val(res, 0, 0) : "");
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kactl forecast NODE [--period YYYY-MM|YYYY-Qn | --all] [--history [--limit N]]\n\n"
            "A node's forecast (its subtree's, rolled up: each node's figures are its\n"
            "children's submitted ones, or a rep's own confirmed deals): closed (booked\n"
            "revenue), commit, best case, pipeline and weighted pipeline, raw and adjusted\n"
            "side by side (adjusted = what a manager revised, with the reason, and what goes\n"
            "up the tree), the quota, coverage (open pipeline / (quota - closed)) and gap\n"
            "(quota - (closed + commit)); \"no quota\" for a period without one, coverage\n"
            "\"met\" once closed revenue reached the quota.\n\n"
            "  --period P   one month (2026-03) or quarter (2026-Q1); without it, this\n"
            "               month and quarter and the next (by the workers' clock, UTC)\n"
            "  --all        every period not ended yet (quotas may reach two years ahead)\n"
            "  --history    also every submission of those periods over time, oldest\n"
            "               first (adjusted figures; * marks a manager's adjustment)\n"
            "  --limit N    the latest N submissions (default 50)\n");
}

/* "2026-03" -> month 2026-03-01; "2026-Q1" -> quarter 2026-01-01. */
static int parse_period(const char *v, period_t *p)
{
    unsigned y = 0, n = 0;
    char tail;
    if (strlen(v) == 7 && v[4] == '-' && sscanf(v, "%4u-%2u%c", &y, &n, &tail) == 2 &&
        v[5] >= '0' && v[5] <= '9' && y >= 2000 && y <= 2200 && n >= 1 && n <= 12) {
        snprintf(p->kind, sizeof p->kind, "month");
        snprintf(p->start, sizeof p->start, "%04u-%02u-01", y, n);
        return 0;
    }
    if (strlen(v) == 7 && v[4] == '-' && (v[5] == 'Q' || v[5] == 'q') &&
        sscanf(v, "%4u-%*c%1u%c", &y, &n, &tail) == 2 && y >= 2000 && y <= 2200 && n >= 1 &&
        n <= 4) {
        snprintf(p->kind, sizeof p->kind, "quarter");
        snprintf(p->start, sizeof p->start, "%04u-%02u-01", y, (n - 1) * 3 + 1);
        return 0;
    }
    return -1;
}

int kactl_forecast(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], limit[16] = "50", today[16], latest[256] = "";
    const char *node = NULL;
    period_t period = {"", ""};
    int all = 0;
    int history = 0, rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--period") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "kactl forecast: --period needs a month or quarter, e.g. "
                                "--period 2026-03 or --period 2026-Q1\n");
                return 2;
            }
            if (parse_period(argv[++i], &period) != 0) {
                fprintf(stderr, "kactl forecast: --period expects a month as YYYY-MM or a "
                                "quarter as YYYY-Qn (e.g. 2026-03, 2026-Q1), got \"%s\"\n",
                        argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--all") == 0) {
            all = 1;
        } else if (strcmp(argv[i], "--history") == 0) {
            history = 1;
        } else if (strcmp(argv[i], "--limit") == 0) {
            char *end = NULL;
            long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || !argv[i + 1][0] || *end || n < 1 || n > 100000) {
                fprintf(stderr, "kactl forecast: --limit expects a number from 1 to 100000%s%s%s"
                                "\n", i + 1 < argc ? ", got \"" : "",
                        i + 1 < argc ? argv[i + 1] : "", i + 1 < argc ? "\"" : "");
                return 2;
            }
            snprintf(limit, sizeof limit, "%ld", n);
            i++;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kactl forecast: unknown option \"%s\" (see kactl forecast --help)\n",
                    argv[i]);
            return 2;
        } else if (node) {
            fprintf(stderr, "kactl forecast: one node only, got \"%s\" and \"%s\" (see kactl "
                            "forecast --help)\n", node, argv[i]);
            return 2;
        } else {
            node = argv[i];
        }
    }
    if (!node) {
        fprintf(stderr, "kactl forecast: which node? e.g. kactl forecast bld-east-t2 (see kactl "
                        "forecast --help)\n");
        return 2;
    }

    /* The workers' clock, so a drill with KA_CLOCK_OFFSET_MS sees its periods. */
    ka_clock_set_offset_ms(ka_config_int(cfg, "KA_CLOCK_OFFSET_MS"));
    time_t now_s = (time_t)(ka_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&now_s, &tm);
    strftime(today, sizeof today, "%Y-%m-%d", &tm);

    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl forecast: %s\n", err);
        return 1;
    }
    node_t nd;
    memset(&nd, 0, sizeof nd);
    ka_pg_param_t pn = {node, 0, 0};
    if (ka_pg_query(pg,
                    "SELECT n.kind, n.name, EXISTS (SELECT 1 FROM forecast f WHERE f.node_id = "
                    "$1) FROM (SELECT 1) x LEFT JOIN org_node n ON n.id = $1",
                    1, &pn, read_node, &nd, err, sizeof err) != KA_OK)
        goto out;
    if (!nd.found && !nd.has_rows) {
        fprintf(stderr, "kactl forecast: no org node and no forecast \"%s\"; give a company, "
                        "division, region, team or rep id\n", node);
        rc = 2;
        goto out;
    }
    if (strcmp(nd.kind, "rep") == 0)
        printf("Forecast of %s %s", node, nd.name);
    else if (nd.found)
        printf("Forecast of %s %s (%s, rolled up over its subtree)", node, nd.name, nd.kind);
    else
        printf("Forecast of %s (not in the org tree)", node);
    printf("\n");

    /* $2/$3: one period, or (NULL) the periods not ended by day $4: this and
     * the next month and quarter, or with $5 (--all) every one, quotas reach
     * two years ahead. */
    ka_pg_param_t pf[5] = {{node, 0, 0},
                           {period.kind[0] ? period.kind : NULL, 0, 0},
                           {period.start[0] ? period.start : NULL, 0, 0},
                           {today, 0, 0},
                           {all ? "t" : "f", 0, 0}};
    shown_t sh;
    memset(&sh, 0, sizeof sh);
    if (ka_pg_query(pg,
                    "SELECT " FORECAST_COLS "FROM forecast f WHERE " KA_SQL_FORECAST_WHERE
                    " ORDER BY " KA_SQL_FORECAST_ORDER " LIMIT 64",
                    5, pf, print_forecasts, &sh, err, sizeof err) != KA_OK)
        goto out;
    if (sh.n == 0) {
        if (ka_pg_query(pg,
                        "SELECT string_agg(l, ', ') FROM (SELECT CASE period_kind WHEN 'month' "
                        "THEN to_char(period_start, 'YYYY-MM') ELSE to_char(period_start, "
                        "'YYYY-\"Q\"Q') END AS l FROM forecast WHERE node_id = $1 "
                        "ORDER BY period_start DESC, period_kind LIMIT 6) x",
                        1, &pn, read_text, latest, err, sizeof err) != KA_OK)
            goto out;
        if (period.kind[0])
            printf("no forecast for %s in %s %s", node, period.kind, period.start);
        else
            printf("no forecast for %s in a period that has not ended", node);
        if (latest[0])
            printf(" (it has some for %s: use --period)", latest);
        printf("\n");
        rc = 0;
        goto out;
    }

    /* The adjustment in force per period and category: the latest one, when
     * it sets a figure (NULL withdraws it). */
    ka_pg_param_t pa[4] = {pf[0], pf[1], pf[2], pf[3]};
    printf("\nadjustments in force\n");
    if (ka_pg_query(pg,
                    "SELECT a.period_kind, a.period_start::text, replace(a.category, '_', ' '), "
                    "a.raw_minor, a.adjusted_minor, a.adjusted_by, "
                    "to_char(a.adjusted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), a.reason "
                    "FROM (SELECT DISTINCT ON (period_kind, period_start, category) * "
                    "FROM forecast_adjustment WHERE node_id = $1 AND "
                    "CASE WHEN $2::text IS NOT NULL THEN period_kind = $2 AND "
                    "period_start = $3::date ELSE (period_start + CASE period_kind WHEN "
                    "'month' THEN interval '1 month' ELSE interval '3 months' END)::date > "
                    "$4::date END "
                    "ORDER BY period_kind, period_start, category, adjusted_at DESC, id DESC) a "
                    "WHERE a.adjusted_minor IS NOT NULL "
                    "ORDER BY a.period_kind, a.period_start, a.category",
                    4, pa, print_adjustments, NULL, err, sizeof err) != KA_OK)
        goto out;

    if (history) {
        ka_pg_param_t ph[5] = {pf[0], pf[1], pf[2], pf[3], {limit, 0, 0}};
        int n = 0;
        printf("\nsubmissions, oldest first (adjusted figures)\n");
        printf("%-8s %-16s %8s %-16s %15s %15s %15s %15s %15s\n", "period", "submitted (UTC)",
               "revision", "by", "closed", "commit", "best case", "pipeline", "quota");
        if (ka_pg_query(
                pg,
                "SELECT * FROM (SELECT s.period_kind, s.period_start::text, "
                "to_char(s.submitted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), s.revision, "
                "s.submitted_by, s.adj_closed_minor, s.adj_commit_minor, s.adj_best_case_minor, "
                "s.adj_pipeline_minor, s.quota_minor, "
                "(s.raw_closed_minor, s.raw_commit_minor, s.raw_best_case_minor, "
                "s.raw_pipeline_minor, s.raw_weighted_pipeline_minor) IS DISTINCT FROM "
                "(s.adj_closed_minor, s.adj_commit_minor, s.adj_best_case_minor, "
                "s.adj_pipeline_minor, s.adj_weighted_pipeline_minor), s.submitted_at, s.id "
                "FROM forecast_submission s WHERE s.node_id = $1 AND "
                "CASE WHEN $2::text IS NOT NULL THEN s.period_kind = $2 AND "
                "s.period_start = $3::date ELSE (s.period_start + CASE s.period_kind WHEN "
                "'month' THEN interval '1 month' ELSE interval '3 months' END)::date > "
                "$4::date END "
                "ORDER BY s.submitted_at DESC, s.id DESC LIMIT $5::int) x "
                "ORDER BY x.submitted_at, x.id",
                5, ph, print_history, &n, err, sizeof err) != KA_OK)
            goto out;
        if (n == 0)
            printf("no submissions yet\n");
    }
    rc = 0;
out:
    if (rc == 1)
        fprintf(stderr, "kactl forecast: %s\n", err);
    ka_pg_free(pg);
    return rc;
}

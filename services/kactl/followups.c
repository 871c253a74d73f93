/* kactl followups [NODE]: the follow-up plans in force under an org node
 * (DOMAIN.md section 3), overdue first, with each account's MAN class and
 * its recommended action, and each rep's visit coverage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_pg.h"
#include "ka_queries.h"
#include "kactl.h"
#include "ui.h"

/* Seed 004: what to do with an account of each MAN class (upper case = yes,
 * in the order Money, Authority, Need). */
static const struct man_action {
    const char *man_class;
    const char *action;
} man_actions[] = {
    {"MAN", "ideal prospect"},
    {"MAn", "pursue with selling skill"},
    {"MaN", "find the person with authority"},
    {"mAN", "check credit, offer financing"},
    {"maN", "nurture long-term"},
    {"mAn", "nurture long-term"},
    {"Man", "nurture long-term"},
    {"man", "not a prospect"},
};

static const char *man_action(const char *man_class)
{
    for (size_t i = 0; i < sizeof man_actions / sizeof man_actions[0]; i++)
        if (strcmp(man_actions[i].man_class, man_class) == 0)
            return man_actions[i].action;
    return "not assessed yet";
}

typedef struct totals {
    long long followed, overdue;
    char now[32], month[16];
} totals_t;

static int read_totals(void *ud, const ka_pgres_t *res)
{
    totals_t *t = ud;
    if (ka_pgres_rows(res) != 1)
        return 0;
    t->followed = ka_pgres_int(res, 0, 0, 0);
    t->overdue = ka_pgres_int(res, 0, 1, 0);
    snprintf(t->now, sizeof t->now, "%s", ka_pgres_value(res, 0, 2));
    snprintf(t->month, sizeof t->month, "%s", ka_pgres_value(res, 0, 3));
    return 0;
}

static int print_follow_ups(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        char over[16] = "", plan[32], rep[160];
        const char *man = kactl_val(res, i, 4);
        if (ka_pgres_value(res, i, 1))
            snprintf(over, sizeof over, "%lld d", ka_pgres_int(res, i, 1, 0));
        if (ka_pgres_value(res, i, 8))
            snprintf(plan, sizeof plan, "%s %s d", kactl_val(res, i, 7), kactl_val(res, i, 8));
        else
            snprintf(plan, sizeof plan, "%s to a date", kactl_val(res, i, 7));
        snprintf(rep, sizeof rep, "%s %s", kactl_val(res, i, 5), kactl_val(res, i, 6));
        printf("%-10s %8s  ", kactl_val(res, i, 0), over);
        kactl_put_cell(kactl_val(res, i, 2), 24);
        printf(" %-4s %-3s  %-31s ", kactl_val(res, i, 3), man[0] ? man : "-", man_action(man));
        kactl_put_cell(rep, 28);
        printf(" %s\n", plan);
    }
    return 0;
}

typedef struct coverage {
    int rows;
    long long reps, followed, within, overdue, visits, planned, on_time;
} coverage_t;

static int print_coverage(void *ud, const ka_pgres_t *res)
{
    coverage_t *c = ud;
    c->rows = ka_pgres_rows(res);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        char rep[160], pct[16] = "-";
        snprintf(rep, sizeof rep, "%s %s", kactl_val(res, i, 0), kactl_val(res, i, 1));
        if (ka_pgres_value(res, i, 5))
            snprintf(pct, sizeof pct, "%s%%", kactl_val(res, i, 5));
        kactl_put_cell(rep, 28);
        printf(" %8s %7s %8s %9s %8s %9s %8s %8s\n", kactl_val(res, i, 2), kactl_val(res, i, 3),
               kactl_val(res, i, 4), pct, kactl_val(res, i, 6), kactl_val(res, i, 7), kactl_val(res, i, 8),
               kactl_val(res, i, 9));
        if (i == 0) {
            c->reps = ka_pgres_int(res, i, 10, 0);
            c->followed = ka_pgres_int(res, i, 11, 0);
            c->within = ka_pgres_int(res, i, 12, 0);
            c->overdue = ka_pgres_int(res, i, 13, 0);
            c->visits = ka_pgres_int(res, i, 14, 0);
            c->planned = ka_pgres_int(res, i, 15, 0);
            c->on_time = ka_pgres_int(res, i, 16, 0);
        }
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kactl followups [NODE] [--overdue] [--limit N]\n\n"
            "Lists the follow-up plans in force for the accounts of the reps under an org\n"
            "node (rolled up over its subtree; without NODE the whole company), overdue\n"
            "ones first, the longest overdue on top: due date (UTC), days overdue,\n"
            "account, tier, MAN class with its recommended action, the rep who set the\n"
            "plan and the plan. Then each rep's coverage, worst first: accounts followed,\n"
            "how many are within their revisit interval or overdue, and this month's\n"
            "visits, accounts visited, visits that had a plan to meet and those on time.\n\n"
            "  --overdue   only the overdue follow-ups\n"
            "  --limit N   at most N rows in each list (default 50)\n\n"
            "MAN (Money, Authority, Need; upper case = yes): MAN ideal prospect; MAn pursue\n"
            "with selling skill; MaN find the person with authority; mAN check credit,\n"
            "offer financing; maN, mAn, Man nurture long-term; man not a prospect (no\n"
            "follow-up is kept for it).\n");
}

int kactl_followups(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], limit[16] = "50";
    const char *node = NULL;
    int overdue_only = 0, rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--overdue") == 0) {
            overdue_only = 1;
        } else if (strcmp(argv[i], "--limit") == 0) {
            char *end = NULL;
            long n = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc) {
                fprintf(stderr, "kactl followups: --limit needs a number, e.g. --limit 20\n");
                return 2;
            }
            if (!argv[i + 1][0] || *end || n < 1 || n > 100000) {
                fprintf(stderr, "kactl followups: --limit expects a number from 1 to 100000, "
                                "got \"%s\"\n", argv[i + 1]);
                return 2;
            }
            snprintf(limit, sizeof limit, "%ld", n);
            i++;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kactl followups: unknown option \"%s\" (see kactl followups "
                            "--help)\n", argv[i]);
            return 2;
        } else if (node) {
            fprintf(stderr, "kactl followups: one node at most, got \"%s\" and \"%s\" (see "
                            "kactl followups --help)\n", node, argv[i]);
            return 2;
        } else {
            node = argv[i];
        }
    }

    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl followups: %s\n", err);
        return 1;
    }
    kactl_node_t nd = {.found = 0};
    if (node) {
        int found = kactl_find_node(pg, "followups", node, 1, &nd);
        if (found != 0) {
            ka_pg_free(pg);
            return found;
        }
    }

    ka_pg_param_t p1 = {node, 0, 0};
    totals_t t;
    memset(&t, 0, sizeof t);
    if (ka_pg_query(pg,
                    "SELECT count(*), count(*) FILTER (WHERE f.next_due_at < now()), "
                    "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), "
                    "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM') "
                    "FROM follow_up f WHERE " KA_SQL_UNDER_NODE("f.rep_id"),
                    1, &p1, read_totals, &t, err, sizeof err) != KA_OK)
        goto fail;

    if (node && strcmp(nd.kind, "rep") == 0)
        printf("Follow-ups of %s %s", node, nd.name);
    else if (node)
        printf("Follow-ups under %s %s (%s, rolled up over its subtree)", node, nd.name, nd.kind);
    else
        printf("Follow-ups of the whole company");
    printf(", %s, at %s UTC\n",
           overdue_only ? "overdue ones only, the longest overdue first" : "overdue first", t.now);
    printf("%-10s %8s  %-24s %-4s %-3s  %-31s %-28s %s\n", "due", "overdue", "account", "tier",
           "MAN", "recommended action", "rep", "plan");
    ka_pg_param_t p2[3] = {{node, 0, 0}, {overdue_only ? "t" : "f", 0, 0}, {limit, 0, 0}};
    int shown = 0;
    if (ka_pg_query(pg,
                    "SELECT to_char(f.next_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), "
                    KA_SQL_FOLLOWUP_DAYS_OVERDUE ", "
                    "a.display_name, coalesce(a.tier, '-'), coalesce(a.man_class, ''), f.rep_id, "
                    "coalesce(r.name, ''), f.action, f.interval_days "
                    "FROM follow_up f JOIN account a ON a.id = f.account_id "
                    "LEFT JOIN org_node r ON r.id = f.rep_id "
                    "WHERE " KA_SQL_FOLLOWUPS_WHERE " ORDER BY " KA_SQL_FOLLOWUPS_ORDER
                    " LIMIT $3::int",
                    3, p2, print_follow_ups, &shown, err, sizeof err) != KA_OK)
        goto fail;
    printf("%d of %lld follow-up%s shown; %lld overdue\n", shown,
           overdue_only ? t.overdue : t.followed, (overdue_only ? t.overdue : t.followed) == 1
                                                      ? ""
                                                      : "s",
           t.overdue);

    printf("\nCoverage per rep, worst first (follow-ups now; visits in %s, UTC)\n", t.month);
    printf("%-28s %8s %7s %8s %9s %8s %9s %8s %8s\n", "rep", "followed", "within", "overdue",
           "within %", "visits", "accounts", "planned", "on time");
    ka_pg_param_t p3[2] = {{node, 0, 0}, {limit, 0, 0}};
    coverage_t c;
    memset(&c, 0, sizeof c);
    if (ka_pg_query(
            pg,
            "WITH " KA_SQL_COVERAGE_CTES("date_trunc('month', now() AT TIME ZONE 'UTC')::date")
            " SELECT c.rep_id, coalesce(c.rep_name, ''), c.accounts_followed, c.within_interval, "
            "c.overdue, c.within_interval_pct, c.visits, c.accounts_visited, c.planned_visits, "
            "c.on_time_visits, count(*) OVER (), sum(c.accounts_followed) OVER (), "
            "sum(c.within_interval) OVER (), sum(c.overdue) OVER (), sum(c.visits) OVER (), "
            "sum(c.planned_visits) OVER (), sum(c.on_time_visits) OVER () FROM cov c "
            "ORDER BY " KA_SQL_COVERAGE_ORDER("c.") " LIMIT $2::int",
            2, p3, print_coverage, &c, err, sizeof err) != KA_OK)
        goto fail;
    if (c.rows == 0) {
        printf("no follow-ups and no visits this month\n");
    } else {
        printf("%d of %lld rep%s shown. All of them: %lld accounts followed, %lld within "
               "their interval", c.rows, c.reps, c.reps == 1 ? "" : "s", c.followed, c.within);
        if (c.followed)
            printf(" (%.1f%%)", 100.0 * (double)c.within / (double)c.followed);
        printf(", %lld overdue; %lld visit%s this month, %lld with a plan to meet, %lld on "
               "time", c.overdue, c.visits, c.visits == 1 ? "" : "s", c.planned, c.on_time);
        if (c.planned)
            printf(" (%.1f%%)", 100.0 * (double)c.on_time / (double)c.planned);
        printf("\n");
    }
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "kactl followups: %s\n", err);
    ka_pg_free(pg);
    return rc;
}

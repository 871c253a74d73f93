/* kactl flow NODE --from DATE --to DATE [--details]: how the open pipeline
 * of a node's subtree moved between two daily opportunity snapshots (taken
 * by the forecast worker): new, moved in, increased, decreased, won, lost,
 * moved out; and close dates pulled in or pushed out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_pg.h"
#include "ka_validate.h"
#include "kactl.h"
#include "ui.h"

/* Categories of the waterfall, in the order printed: each deal open in the
 * subtree on either day falls in at most one (none: open on both days with
 * the same amount), so opening + the signed sums = closing. */
enum {
    CAT_NEW,
    CAT_MOVED_IN,
    CAT_INCREASED,
    CAT_DECREASED,
    CAT_WON,
    CAT_LOST,
    CAT_MOVED_OUT,
    CAT_GONE,
    CAT_PULLED_IN,
    CAT_PUSHED_OUT,
    NCATS
};

static const struct category {
    const char *code; /* as the query names it */
    const char *label;
    int sign; /* on the pipeline: +1, -1; 0 for the close-date moves */
} cats[NCATS] = {
    {"new", "+ new", 1},
    {"moved_in", "+ moved in", 1},
    {"increased", "+ increased", 1},
    {"decreased", "- decreased", -1},
    {"won", "- won", -1},
    {"lost", "- lost", -1},
    {"moved_out", "- moved out", -1},
    {"gone", "- left, outcome unknown", -1},
    {"pulled_in", "pulled in", 0},
    {"pushed_out", "pushed out", 0},
};

/* The deals open in the subtree ($1) on either day ($2 from, $3 to), each
 * with its amount category (NULL: unchanged) and its close-date category.
 * A deal open on the first day and not in the second day's snapshot is
 * classified by its latest snapshot in between (a closed deal is in the
 * snapshot of the day after it closed), else by the opportunity itself. */
static const char *flow_sql =
    "WITH sub AS (SELECT descendant_id AS rep FROM org_closure WHERE ancestor_id = $1), "
    "j AS (SELECT coalesce(f.opportunity_id, t.opportunity_id) AS id, f.owner_rep_id AS f_owner, "
    "f.status AS f_status, f.stage_code AS f_stage, f.amount_minor AS f_amount, "
    "f.expected_close_date AS f_close, coalesce(f.status = 'open' AND f.owner_rep_id IN "
    "(SELECT rep FROM sub), false) AS f_in, t.owner_rep_id AS t_owner, t.status AS t_status, "
    "t.stage_code AS t_stage, t.amount_minor AS t_amount, t.expected_close_date AS t_close, "
    "coalesce(t.owner_rep_id IN (SELECT rep FROM sub), false) AS t_sub "
    "FROM (SELECT * FROM opportunity_snapshot WHERE snapshot_date = $2::date) f "
    "FULL JOIN (SELECT * FROM opportunity_snapshot WHERE snapshot_date = $3::date) t "
    "ON t.opportunity_id = f.opportunity_id), "
    "rel AS (SELECT * FROM j WHERE f_in OR (t_status = 'open' AND t_sub)), "
    "last AS (SELECT DISTINCT ON (s.opportunity_id) s.opportunity_id, s.status, "
    "s.owner_rep_id IN (SELECT rep FROM sub) AS inside FROM opportunity_snapshot s "
    "WHERE s.snapshot_date > $2::date AND s.snapshot_date < $3::date AND s.opportunity_id IN "
    "(SELECT id FROM rel WHERE f_in AND t_status IS NULL) "
    "ORDER BY s.opportunity_id, s.snapshot_date DESC) "
    "SELECT r.id, CASE "
    "WHEN r.f_in AND r.t_status IS NOT NULL THEN CASE WHEN NOT r.t_sub THEN 'moved_out' "
    "WHEN r.t_status <> 'open' THEN r.t_status WHEN r.t_amount > r.f_amount THEN 'increased' "
    "WHEN r.t_amount < r.f_amount THEN 'decreased' END "
    "WHEN r.f_in THEN CASE WHEN l.status IN ('won', 'lost') AND l.inside THEN l.status "
    "WHEN l.status IS NOT NULL AND NOT l.inside THEN 'moved_out' "
    "WHEN o.status IN ('won', 'lost') THEN o.status ELSE 'gone' END "
    "WHEN r.f_status = 'open' THEN 'moved_in' ELSE 'new' END, "
    "CASE WHEN r.f_in AND r.t_sub AND r.t_status = 'open' AND r.t_close < r.f_close "
    "THEN 'pulled_in' WHEN r.f_in AND r.t_sub AND r.t_status = 'open' AND r.t_close > r.f_close "
    "THEN 'pushed_out' END, "
    "coalesce(r.t_owner, r.f_owner), coalesce(r.f_stage, ''), "
    "coalesce(r.t_stage, l.status, o.status, ''), r.f_amount, r.t_amount, "
    "coalesce(r.f_close::text, ''), coalesce(r.t_close::text, ''), r.f_in, "
    "(r.t_status = 'open' AND r.t_sub) "
    "FROM rel r LEFT JOIN last l ON l.opportunity_id = r.id "
    "LEFT JOIN opportunity o ON o.id = r.id AND r.f_in AND r.t_status IS NULL ORDER BY r.id";

typedef struct deal {
    char id[72], owner[72], f_stage[24], t_stage[24], f_close[16], t_close[16];
    long long f_amount, t_amount;
    int has_f, has_t;
    int cat, date_cat; /* -1: none */
} deal_t;

typedef struct flow {
    deal_t *d;
    int n;
    long long open_count[2], open_amount[2]; /* opening, closing */
    long long count[NCATS], amount[NCATS];
} flow_t;

static int cat_of(const char *code)
{
    for (int c = 0; c < NCATS; c++)
        if (strcmp(cats[c].code, code) == 0)
            return c;
    return -1;
}

static int read_flow(void *ud, const ka_pgres_t *res)
{
    flow_t *fl = ud;
    fl->n = ka_pgres_rows(res);
    fl->d = ka_calloc((size_t)fl->n + 1, sizeof *fl->d);
    for (int i = 0; i < fl->n; i++) {
        deal_t *d = &fl->d[i];
        snprintf(d->id, sizeof d->id, "%s", kactl_val(res, i, 0));
        d->cat = cat_of(kactl_val(res, i, 1));
        d->date_cat = cat_of(kactl_val(res, i, 2));
        snprintf(d->owner, sizeof d->owner, "%s", kactl_val(res, i, 3));
        snprintf(d->f_stage, sizeof d->f_stage, "%s", kactl_val(res, i, 4));
        snprintf(d->t_stage, sizeof d->t_stage, "%s", kactl_val(res, i, 5));
        d->has_f = ka_pgres_value(res, i, 6) != NULL;
        d->has_t = ka_pgres_value(res, i, 7) != NULL;
        d->f_amount = ka_pgres_int(res, i, 6, 0);
        d->t_amount = ka_pgres_int(res, i, 7, 0);
        snprintf(d->f_close, sizeof d->f_close, "%s", kactl_val(res, i, 8));
        snprintf(d->t_close, sizeof d->t_close, "%s", kactl_val(res, i, 9));
        if (kactl_val(res, i, 10)[0] == 't') {
            fl->open_count[0]++;
            fl->open_amount[0] += d->f_amount;
        }
        if (kactl_val(res, i, 11)[0] == 't') {
            fl->open_count[1]++;
            fl->open_amount[1] += d->t_amount;
        }
        /* What the deal moved the pipeline by (always counted positive). */
        if (d->cat >= 0) {
            long long a = d->cat == CAT_NEW || d->cat == CAT_MOVED_IN ? d->t_amount
                          : d->cat == CAT_INCREASED                   ? d->t_amount - d->f_amount
                          : d->cat == CAT_DECREASED                   ? d->f_amount - d->t_amount
                                                                      : d->f_amount;
            fl->count[d->cat]++;
            fl->amount[d->cat] += a;
        }
        if (d->date_cat >= 0) {
            fl->count[d->date_cat]++;
            fl->amount[d->date_cat] += d->t_amount;
        }
    }
    return 0;
}

static void line(const char *label, long long count, long long amount)
{
    char m[64];
    kactl_money(amount, 1, m, sizeof m);
    printf("%-24s %7lld %18s\n", label, count, m);
}

static void details(const flow_t *fl, int c)
{
    char a[64], b[64];
    printf("\n%s: %lld\n", cats[c].label, fl->count[c]);
    printf("  %-28s %-20s %-15s %18s %18s  %s\n", "opportunity", "owner", "stage",
           "amount before", "amount after", "close date");
    for (int i = 0; i < fl->n; i++) {
        const deal_t *d = &fl->d[i];
        if (d->cat != c && d->date_cat != c)
            continue;
        char stage[64], close[40];
        if (d->has_f)
            kactl_money(d->f_amount, 1, a, sizeof a);
        else
            snprintf(a, sizeof a, "-");
        if (d->has_t)
            kactl_money(d->t_amount, 1, b, sizeof b);
        else
            snprintf(b, sizeof b, "-");
        snprintf(stage, sizeof stage, "%s > %s", d->f_stage[0] ? d->f_stage : "-",
                 d->t_stage[0] ? d->t_stage : "-");
        snprintf(close, sizeof close, "%s > %s", d->f_close[0] ? d->f_close : "-",
                 d->t_close[0] ? d->t_close : "-");
        printf("  %-28s %-20s %-15s %18s %18s  %s\n", d->id, d->owner, stage, a, b, close);
    }
}

typedef struct days {
    int from, to;
    char first[16], last[16];
} days_t;

static int read_days(void *ud, const ka_pgres_t *res)
{
    days_t *d = ud;
    if (ka_pgres_rows(res) == 1) {
        d->from = kactl_val(res, 0, 0)[0] == 't';
        d->to = kactl_val(res, 0, 1)[0] == 't';
        snprintf(d->first, sizeof d->first, "%s", kactl_val(res, 0, 2));
        snprintf(d->last, sizeof d->last, "%s", kactl_val(res, 0, 3));
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kactl flow NODE --from YYYY-MM-DD --to YYYY-MM-DD [--details]\n\n"
            "How the open pipeline of the reps under an org node (its whole subtree) moved\n"
            "between two days, from the daily opportunity snapshots the forecast worker\n"
            "takes (UTC dates). Deals and amounts per category:\n"
            "  opening pipeline  open on the first day\n"
            "  + new             open on the second day, not open anywhere on the first\n"
            "                    (created or reopened)\n"
            "  + moved in        open on both days, owned outside the node on the first\n"
            "  + increased       open on both days, amount up (by the difference)\n"
            "  - decreased       open on both days, amount down (by the difference)\n"
            "  - won, - lost     open on the first day, closed by the second (at the\n"
            "                    amount they had on the first day)\n"
            "  - moved out       open on the first day, owned outside the node later\n"
            "  - left, outcome unknown  open on the first day, then in no snapshot and\n"
            "                    not closed either (shown only when there are some)\n"
            "  = closing pipeline open on the second day\n"
            "so opening + the categories = closing. Then, for deals open on both days, the\n"
            "close dates pulled in (earlier) and pushed out (later), at their amount on the\n"
            "second day.\n\n"
            "  --from DATE, --to DATE  the two snapshot days, --from before --to\n"
            "  --details               list the deals of each category\n");
}

static int parse_day(const char *opt, const char *v, char out[16])
{
    int y, m, d;
    if (!v) {
        fprintf(stderr, "kactl flow: %s needs a date, e.g. %s 2026-03-01\n", opt, opt);
        return -1;
    }
    if (ka_parse_date(v, &y, &m, &d) != 0) {
        fprintf(stderr, "kactl flow: %s expects a date as YYYY-MM-DD (a real calendar day), "
                        "got \"%s\"\n", opt, v);
        return -1;
    }
    snprintf(out, 16, "%s", v);
    return 0;
}

int kactl_flow(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], from[16] = "", to[16] = "";
    const char *node = NULL;
    int show_details = 0, rc = 1;
    flow_t fl;
    memset(&fl, 0, sizeof fl);

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--from") == 0 || strcmp(argv[i], "--to") == 0) {
            int is_from = argv[i][2] == 'f';
            if (parse_day(argv[i], i + 1 < argc ? argv[i + 1] : NULL, is_from ? from : to))
                return 2;
            i++;
        } else if (strcmp(argv[i], "--details") == 0) {
            show_details = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kactl flow: unknown option \"%s\" (see kactl flow --help)\n",
                    argv[i]);
            return 2;
        } else if (node) {
            fprintf(stderr, "kactl flow: one node only, got \"%s\" and \"%s\" (see kactl flow "
                            "--help)\n", node, argv[i]);
            return 2;
        } else {
            node = argv[i];
        }
    }
    if (!node || !from[0] || !to[0]) {
        fprintf(stderr, "kactl flow: %s is missing, e.g. kactl flow bld-east-t2 --from "
                        "2026-03-01 --to 2026-04-01\n",
                !node ? "the node" : !from[0] ? "--from" : "--to");
        return 2;
    }
    if (strcmp(from, to) >= 0) {
        fprintf(stderr, "kactl flow: --from (%s) must be before --to (%s)\n", from, to);
        return 2;
    }

    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl flow: %s\n", err);
        return 1;
    }
    kactl_node_t nd;
    if ((rc = kactl_find_node(pg, "flow", node, 0, &nd)) != 0)
        goto out;
    days_t dy;
    memset(&dy, 0, sizeof dy);
    ka_pg_param_t pd[2] = {{from, 0, 0}, {to, 0, 0}};
    if (ka_pg_query(pg,
                    "SELECT EXISTS (SELECT 1 FROM opportunity_snapshot WHERE snapshot_date = "
                    "$1::date), EXISTS (SELECT 1 FROM opportunity_snapshot WHERE snapshot_date = "
                    "$2::date), (SELECT min(snapshot_date)::text FROM opportunity_snapshot), "
                    "(SELECT max(snapshot_date)::text FROM opportunity_snapshot)",
                    2, pd, read_days, &dy, err, sizeof err) != KA_OK)
        goto out;
    if (!dy.from || !dy.to) {
        if (dy.first[0])
            fprintf(stderr, "kactl flow: no opportunity snapshot on %s; snapshots exist from %s "
                            "to %s (the forecast worker takes one a day)\n",
                    !dy.from ? from : to, dy.first, dy.last);
        else
            fprintf(stderr, "kactl flow: no opportunity snapshots yet; the forecast worker "
                            "takes one a day\n");
        rc = 2;
        goto out;
    }
    ka_pg_param_t p[3] = {{node, 0, 0}, {from, 0, 0}, {to, 0, 0}};
    if (ka_pg_query(pg, flow_sql, 3, p, read_flow, &fl, err, sizeof err) != KA_OK)
        goto out;

    if (strcmp(nd.kind, "rep") == 0)
        printf("Pipeline flow of %s %s", node, nd.name);
    else
        printf("Pipeline flow under %s %s (%s, rolled up over its subtree)", node, nd.name,
               nd.kind);
    printf(", %s -> %s\n", from, to);
    printf("%-24s %7s %18s\n", "", "deals", "amount");
    line("opening pipeline", fl.open_count[0], fl.open_amount[0]);
    for (int c = 0; c < CAT_PULLED_IN; c++)
        if (c != CAT_GONE || fl.count[c])
            line(cats[c].label, fl.count[c], fl.amount[c]);
    line("= closing pipeline", fl.open_count[1], fl.open_amount[1]);
    printf("\nclose dates of deals open on both days\n");
    line(cats[CAT_PULLED_IN].label, fl.count[CAT_PULLED_IN], fl.amount[CAT_PULLED_IN]);
    line(cats[CAT_PUSHED_OUT].label, fl.count[CAT_PUSHED_OUT], fl.amount[CAT_PUSHED_OUT]);
    if (show_details)
        for (int c = 0; c < NCATS; c++)
            if (fl.count[c])
                details(&fl, c);
    rc = 0;
out:
    if (rc == 1)
        fprintf(stderr, "kactl flow: %s\n", err);
    free(fl.d);
    ka_pg_free(pg);
    return rc;
}

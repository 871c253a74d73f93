/* kactl accounts [NODE] and kactl channel: the order side of the funnel
 * (DOMAIN.md sections 2 and 6). accounts lists the accounts under an org node
 * with their tier (the 80/20 rule on trailing-12-month revenue), that
 * revenue, MAN class, last visit, open deals and firing alerts; channel lists
 * each distributor's sales quality (销售质量: orders, 窜货, 压价) and the
 * channel alerts firing for it. Both read PostgreSQL, the store of record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account_conflicts.h"
#include "ka_pg.h"
#include "ka_queries.h"
#include "kactl.h"
#include "ui.h"

/* Accounts owned by the reps under $1 (rolled up over its subtree); NULL $1:
 * every account. */
#define UNDER_NODE(col)                                                                           \
    "($1::text IS NULL OR " col " IN (SELECT descendant_id FROM org_closure WHERE ancestor_id = " \
    "$1))"

/* Trailing 12 months as the tier scan counts them: this month (UTC) and the
 * eleven before. */
#define LAST_12_MONTHS(col) KA_SQL_LAST_12_MONTHS(col)

/* Text tables ------------------------------------------------------------------ */

#define MONEY_LEN 48

/* Parses --limit's value; returns 0, or 2 with the message printed. */
static int parse_limit(const char *cmd, int argc, char **argv, int i, char *limit, size_t len)
{
    char *end = NULL;
    if (i + 1 >= argc) {
        fprintf(stderr, "kactl %s: --limit needs a number, e.g. --limit 20\n", cmd);
        return 2;
    }
    long n = strtol(argv[i + 1], &end, 10);
    if (!argv[i + 1][0] || *end || n < 1 || n > 100000) {
        fprintf(stderr, "kactl %s: --limit expects a number from 1 to 100000, got \"%s\"\n", cmd,
                argv[i + 1]);
        return 2;
    }
    snprintf(limit, len, "%ld", n);
    return 0;
}

/* kactl accounts ------------------------------------------------------------------ */

static int read_text(void *ud, const ka_pgres_t *res)
{
    char *out = ud;
    if (ka_pgres_rows(res) == 1)
        snprintf(out, 512, "%s", kactl_val(res, 0, 0));
    return 0;
}

static int print_accounts(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        char rev[MONEY_LEN], open[80] = "-", rep[160], alerts[160] = "-";
        kactl_money(ka_pgres_int(res, i, 2, 0), 0, rev, sizeof rev);
        if (ka_pgres_int(res, i, 5, 0) > 0) {
            char amt[MONEY_LEN];
            kactl_money(ka_pgres_int(res, i, 6, 0), 0, amt, sizeof amt);
            snprintf(open, sizeof open, "%lld, %s", ka_pgres_int(res, i, 5, 0), amt);
        }
        if (ka_pgres_int(res, i, 7, 0) > 0)
            snprintf(alerts, sizeof alerts, "%lld %s", ka_pgres_int(res, i, 7, 0),
                     kactl_val(res, i, 8));
        snprintf(rep, sizeof rep, "%s %s", kactl_val(res, i, 9), kactl_val(res, i, 10));
        kactl_put_cell(kactl_val(res, i, 0), 24);
        printf(" %-4s %15s  %-3s %-10s  %-18s ",
               ka_pgres_value(res, i, 1) ? kactl_val(res, i, 1) : "-", rev,
               ka_pgres_value(res, i, 3) ? kactl_val(res, i, 3) : "-",
               ka_pgres_value(res, i, 4) ? kactl_val(res, i, 4) : "never", open);
        kactl_put_cell(rep, 26);
        printf(" %s\n", alerts);
    }
    return 0;
}

/* Tiers A..D, and [4]: accounts not ranked yet (no tier until the order
 * worker's first ranking). */
typedef struct split {
    long long count[5], revenue[5], total_count, total_revenue;
} split_t;

static int read_split(void *ud, const ka_pgres_t *res)
{
    split_t *s = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        const char *tier = kactl_val(res, i, 0);
        int t = !ka_pgres_value(res, i, 0) ? 4 : tier[0] - 'A';
        if (t < 0 || t > 4)
            continue;
        s->count[t] = ka_pgres_int(res, i, 1, 0);
        s->revenue[t] = ka_pgres_int(res, i, 2, 0);
        s->total_count += ka_pgres_int(res, i, 1, 0);
        s->total_revenue += ka_pgres_int(res, i, 2, 0);
    }
    return 0;
}

static void accounts_usage(FILE *out)
{
    fprintf(out,
            "usage: kactl accounts [NODE] [--tier A|B|C|D] [--limit N]\n"
            "       kactl accounts [NODE] --conflicts [--limit N]\n\n"
            "Lists the accounts owned by the reps under an org node (rolled up over its\n"
            "subtree; without NODE the whole company), the biggest first: tier, trailing-\n"
            "12-month booked revenue (this month and the eleven before, UTC; whole units of\n"
            "the currency), MAN class, last visit (UTC), open deals (count, amount), the\n"
            "owner rep, and the alerts firing on the account or its deals. Then the tier\n"
            "split under the node.\n\n"
            "  --tier T     only tier T accounts (A, B, C or D)\n"
            "  --limit N    at most N accounts (default 50)\n"
            "  --conflicts  instead, the company names split over accounts with different\n"
            "               credit codes (or a code and none), the newest first: the\n"
            "               name's account (keyed by the name, else the first) and the one\n"
            "               kept apart, each with its code, owner and name as first given,\n"
            "               and when (and by which event) the conflict was first seen;\n"
            "               with NODE, those where either owner is under it\n\n"
            "One customer, one account: a credit code that arrives for a company first\n"
            "known by name attaches to that account; a code for a name whose account\n"
            "already holds another code gets an account of its own (a conflict).\n\n"
            "Tiers (the 80/20 rule, recomputed by the order worker): A the smallest set of\n"
            "top accounts covering 80%% of revenue, B the next 15%%, C the rest with\n"
            "revenue, D none (prospects). Tier A and B accounts are watched for churn.\n"
            "An account the order worker has not ranked yet shows tier \"-\".\n");
}

int kactl_accounts(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], limit[16] = "50", tier[2] = "";
    const char *node = NULL;
    int rc = 1, conflicts = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            accounts_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--tier") == 0) {
            const char *t = i + 1 < argc ? argv[i + 1] : NULL;
            if (!t) {
                fprintf(stderr, "kactl accounts: --tier needs a tier, e.g. --tier A\n");
                return 2;
            }
            if (strlen(t) != 1 || !strchr("ABCDabcd", t[0])) {
                fprintf(stderr, "kactl accounts: --tier expects one of A, B, C, D, got \"%s\" "
                                "(e.g. --tier A)\n", t);
                return 2;
            }
            tier[0] = (char)(t[0] & ~0x20); /* upper case */
            i++;
        } else if (strcmp(argv[i], "--limit") == 0) {
            if (parse_limit("accounts", argc, argv, i, limit, sizeof limit))
                return 2;
            i++;
        } else if (strcmp(argv[i], "--conflicts") == 0) {
            conflicts = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "kactl accounts: unknown option \"%s\" (see kactl accounts --help)\n",
                    argv[i]);
            return 2;
        } else if (node) {
            fprintf(stderr, "kactl accounts: one node at most, got \"%s\" and \"%s\" (see kactl "
                            "accounts --help)\n", node, argv[i]);
            return 2;
        } else {
            node = argv[i];
        }
    }
    if (conflicts && tier[0]) {
        fprintf(stderr, "kactl accounts: --conflicts lists accounts of every tier; drop --tier "
                        "(see kactl accounts --help)\n");
        return 2;
    }

    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl accounts: %s\n", err);
        return 1;
    }
    kactl_node_t nd = {.found = 0};
    if (node) {
        int found = kactl_find_node(pg, "accounts", node, 1, &nd);
        if (found != 0) {
            ka_pg_free(pg);
            return found;
        }
    }
    if (conflicts) {
        rc = kactl_account_conflicts(pg, node, limit, err, sizeof err);
        goto fail;
    }

    if (node && strcmp(nd.kind, "rep") == 0)
        printf("Accounts of %s %s", node, nd.name);
    else if (node)
        printf("Accounts under %s %s (%s, rolled up over its subtree)", node, nd.name, nd.kind);
    else
        printf("Accounts of the whole company");
    if (tier[0])
        printf(", tier %s only", tier);
    printf(", by trailing-12-month revenue\n");
    printf("%-24s %-4s %15s  %-3s %-10s  %-18s %-26s %s\n", "account", "tier", "revenue 12m",
           "MAN", "last visit", "open deals", "owner", "alerts firing");

    /* The biggest first; open deals and alerts only for the rows shown. */
    ka_pg_param_t p[3] = {{node, 0, 0}, {tier[0] ? tier : NULL, 0, 0}, {limit, 0, 0}};
    int shown = 0;
    if (ka_pg_query(
            pg,
            "WITH acc AS (SELECT a.id, a.display_name, a.tier, a.man_class, a.last_visit_at, "
            "a.owner_rep_id FROM account a WHERE " UNDER_NODE("a.owner_rep_id") " "
            "AND ($2::text IS NULL OR a.tier = $2)), "
            "rev AS (SELECT x.account_id, sum(x.amount_minor) AS revenue FROM actual x "
            "JOIN acc ON acc.id = x.account_id WHERE " LAST_12_MONTHS("x.period_month") " "
            "GROUP BY x.account_id), "
            "top AS (SELECT acc.*, coalesce(rev.revenue, 0) AS revenue FROM acc "
            "LEFT JOIN rev ON rev.account_id = acc.id "
            "ORDER BY coalesce(rev.revenue, 0) DESC, acc.id LIMIT $3::int) "
            "SELECT t.display_name, t.tier, t.revenue, t.man_class, "
            "to_char(t.last_visit_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), "
            "o.n, o.amount, al.n, al.types, t.owner_rep_id, coalesce(r.name, '') "
            "FROM top t "
            "LEFT JOIN org_node r ON r.id = t.owner_rep_id "
            "CROSS JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(amount_minor), 0) AS amount "
            "FROM opportunity WHERE account_id = t.id AND status = 'open') o "
            "CROSS JOIN LATERAL (SELECT count(*) AS n, string_agg(DISTINCT s.type, ',') AS types "
            "FROM alert_state s WHERE s.status = 'firing' AND ((s.subject_kind = 'account' "
            "AND s.subject_id = t.id) OR (s.subject_kind = 'opportunity' AND s.subject_id IN "
            "(SELECT id FROM opportunity WHERE account_id = t.id)))) al "
            "ORDER BY t.revenue DESC, t.id",
            3, p, print_accounts, &shown, err, sizeof err) != KA_OK)
        goto fail;

    split_t s;
    memset(&s, 0, sizeof s);
    if (ka_pg_query(pg,
                    "WITH acc AS (SELECT a.id, a.tier FROM account a WHERE "
                    UNDER_NODE("a.owner_rep_id") "), "
                    "rev AS (SELECT x.account_id, sum(x.amount_minor) AS revenue FROM actual x "
                    "JOIN acc ON acc.id = x.account_id WHERE " LAST_12_MONTHS("x.period_month")
                    " GROUP BY x.account_id) "
                    "SELECT acc.tier, count(*), coalesce(sum(rev.revenue), 0) FROM acc "
                    "LEFT JOIN rev ON rev.account_id = acc.id GROUP BY acc.tier",
                    1, p, read_split, &s, err, sizeof err) != KA_OK)
        goto fail;
    long long of = tier[0] ? s.count[tier[0] - 'A'] : s.total_count;
    printf("%d of %lld account%s shown\n", shown, of, of == 1 ? "" : "s");
    printf("Tiers %s (ranked company-wide): ", node ? "here" : "of the company");
    for (int t = 0; t < 4; t++) {
        char rev[MONEY_LEN];
        kactl_money(s.revenue[t], 0, rev, sizeof rev);
        printf("%s%c %lld account%s", t ? "; " : "", 'A' + t, s.count[t],
               s.count[t] == 1 ? "" : "s");
        if (s.total_revenue > 0 && t < 3)
            printf(" (%s, %.1f%%)", rev, 100.0 * (double)s.revenue[t] / (double)s.total_revenue);
    }
    if (s.count[4])
        printf("; not ranked yet %lld", s.count[4]);
    printf("\n");
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "kactl accounts: %s\n", err);
    ka_pg_free(pg);
    return rc;
}

/* kactl channel ------------------------------------------------------------------- */

/* The period: one month ($1 = 'YYYY-MM'), or NULL $1 for the last 12. */
#define PERIOD                                                                                    \
    "p AS (SELECT coalesce(($1::text || '-01')::date, (date_trunc('month', now() AT TIME ZONE " \
    "'UTC') - interval '11 months')::date) AS first, coalesce(($1::text || '-01')::date, "      \
    "date_trunc('month', now() AT TIME ZONE 'UTC')::date) AS last)"

typedef struct totals {
    long long orders, diverted, dumped, amount;
} totals_t;

static void pct(long long part, long long whole, char *out, size_t len)
{
    if (whole > 0)
        snprintf(out, len, "%.1f%%", 100.0 * (double)part / (double)whole);
    else
        snprintf(out, len, "-");
}

static int print_distributors(void *ud, const ka_pgres_t *res)
{
    totals_t *t = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        long long orders = ka_pgres_int(res, i, 3, 0), div = ka_pgres_int(res, i, 5, 0),
                  dump = ka_pgres_int(res, i, 7, 0);
        char amount[MONEY_LEN], div_amt[MONEY_LEN], dump_amt[MONEY_LEN], div_pct[16], dump_pct[16];
        kactl_money(ka_pgres_int(res, i, 4, 0), 0, amount, sizeof amount);
        kactl_money(ka_pgres_int(res, i, 6, 0), 0, div_amt, sizeof div_amt);
        kactl_money(ka_pgres_int(res, i, 8, 0), 0, dump_amt, sizeof dump_amt);
        pct(div, orders, div_pct, sizeof div_pct);
        pct(dump, orders, dump_pct, sizeof dump_pct);
        printf("%-18s ", kactl_val(res, i, 0));
        kactl_put_cell(kactl_val(res, i, 1), 26);
        printf(" ");
        kactl_put_cell(kactl_val(res, i, 2), 18);
        printf(" %6lld %15s %5lld %6s %13s %5lld %6s %13s  %s\n", orders, amount, div, div_pct,
               div_amt, dump, dump_pct, dump_amt, ka_pgres_value(res, i, 9) ? kactl_val(res, i, 9) : "-");
        t->orders += orders;
        t->amount += ka_pgres_int(res, i, 4, 0);
        t->diverted += div;
        t->dumped += dump;
    }
    return 0;
}

static int print_unlisted(void *ud, const ka_pgres_t *res)
{
    (void)ud;
    for (int i = 0; i < ka_pgres_rows(res); i++)
        printf("%s%s (%s orders)", i ? ", " : "Orders through distributors not on file (not "
                                               "checked; kactl load distributors): ",
               kactl_val(res, i, 0), kactl_val(res, i, 1));
    if (ka_pgres_rows(res))
        printf("\n");
    return 0;
}

static int print_alerts(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < ka_pgres_rows(res); i++)
        printf("  %-17s %-18s since %s  %s\n", kactl_val(res, i, 0), kactl_val(res, i, 1), kactl_val(res, i, 2),
               kactl_val(res, i, 3));
    return 0;
}

static int print_divisions(void *ud, const ka_pgres_t *res)
{
    (void)ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        long long orders = ka_pgres_int(res, i, 2, 0), clean = ka_pgres_int(res, i, 5, 0);
        char clean_pct[16];
        pct(clean, orders, clean_pct, sizeof clean_pct);
        printf("%-10s ", kactl_val(res, i, 0));
        kactl_put_cell(kactl_val(res, i, 1), 22);
        printf(" %7lld %9s %9s %8s\n", orders, kactl_val(res, i, 3), kactl_val(res, i, 4), clean_pct);
    }
    return 0;
}

static void channel_usage(FILE *out)
{
    fprintf(out,
            "usage: kactl channel [--month YYYY-MM]\n\n"
            "Sales quality (销售质量) of the distribution channel. Per distributor, the worst\n"
            "first: its territory (ship-to region codes), the orders booked through it and\n"
            "their amount, those shipped outside its territory (窜货, channel diversion) and\n"
            "those with a line under its floor price (压价, price dumping), each with its\n"
            "share of the orders and its amount, and the channel alerts firing for it. Then\n"
            "every firing channel alert, and sales quality per division (orders counted for\n"
            "the division of the rep who booked them; clean = no finding).\n\n"
            "  --month M   one month, YYYY-MM (default: the last 12 months, this one\n"
            "              included, UTC)\n\n"
            "Amounts are whole units of the currency. An order counts in the month it was\n"
            "booked; a distributor that is not on file is not checked.\n");
}

/* A month as YYYY-MM, 2000-01 .. 2200-12. */
static int valid_month(const char *s)
{
    int y, m, n = 0;
    return strlen(s) == 7 && sscanf(s, "%4d-%2d%n", &y, &m, &n) == 2 && n == 7 && s[4] == '-' &&
           y >= 2000 && y <= 2200 && m >= 1 && m <= 12;
}

int kactl_channel(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], period[64] = "";
    const char *month = NULL;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            channel_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--month") == 0) {
            const char *m = i + 1 < argc ? argv[i + 1] : NULL;
            if (!m) {
                fprintf(stderr, "kactl channel: --month needs a month, e.g. --month 2026-03\n");
                return 2;
            }
            if (!valid_month(m)) {
                fprintf(stderr, "kactl channel: --month expects a month as YYYY-MM, e.g. "
                                "--month 2026-03, got \"%s\"\n", m);
                return 2;
            }
            month = m;
            i++;
        } else {
            fprintf(stderr, "kactl channel: unexpected argument \"%s\" (see kactl channel "
                            "--help)\n", argv[i]);
            return 2;
        }
    }

    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl channel: %s\n", err);
        return 1;
    }
    ka_pg_param_t p = {month, 0, 0};
    if (ka_pg_query(pg,
                    "WITH " PERIOD " SELECT CASE WHEN first = last THEN to_char(first, 'YYYY-MM') "
                    "ELSE to_char(first, 'YYYY-MM') || ' to ' || to_char(last, 'YYYY-MM') END "
                    "FROM p",
                    1, &p, read_text, period, err, sizeof err) != KA_OK)
        goto fail;
    printf("Distributors' sales quality (销售质量), %s (UTC), the worst first: orders shipped\n"
           "outside the territory (窜货) and orders with a line under the floor price (压价)\n",
           period);
    printf("%-18s %-26s %-18s %6s %15s %5s %6s %13s %5s %6s %13s  %s\n", "distributor", "name",
           "territory", "orders", "amount", "out", "share", "amount", "under", "share",
           "amount", "alerts firing");
    totals_t t;
    memset(&t, 0, sizeof t);
    if (ka_pg_query(
            pg,
            "WITH " PERIOD ", q AS (SELECT q.distributor_id, sum(q.order_count) AS orders, "
            "sum(q.order_amount_minor) AS amount, sum(q.diversion_count) AS div, "
            "sum(q.diversion_amount_minor) AS div_amount, sum(q.dumping_count) AS dump, "
            "sum(q.dumping_amount_minor) AS dump_amount FROM distributor_sales_quality q, p "
            "WHERE q.period_month BETWEEN p.first AND p.last GROUP BY q.distributor_id) "
            "SELECT d.id, d.name, coalesce((SELECT string_agg(t.region_code, ' ' ORDER BY "
            "t.region_code) FROM distributor_territory t WHERE t.distributor_id = d.id), "
            "'(none: not checked)'), coalesce(q.orders, 0), coalesce(q.amount, 0), "
            "coalesce(q.div, 0), coalesce(q.div_amount, 0), coalesce(q.dump, 0), "
            "coalesce(q.dump_amount, 0), (SELECT string_agg(CASE s.type WHEN "
            "'channel_diversion' THEN '窜货' ELSE '压价' END || ' since ' || "
            "to_char(s.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), ', ' ORDER BY s.type) "
            "FROM alert_state s WHERE s.subject_kind = 'distributor' AND s.subject_id = d.id "
            "AND s.status = 'firing' AND s.type IN ('channel_diversion', 'price_dumping')) "
            "FROM distributor d LEFT JOIN q ON q.distributor_id = d.id "
            "ORDER BY coalesce(q.div, 0) + coalesce(q.dump, 0) DESC, d.id",
            1, &p, print_distributors, &t, err, sizeof err) != KA_OK)
        goto fail;
    char amount[MONEY_LEN], div_pct[16], dump_pct[16];
    kactl_money(t.amount, 0, amount, sizeof amount);
    pct(t.diverted, t.orders, div_pct, sizeof div_pct);
    pct(t.dumped, t.orders, dump_pct, sizeof dump_pct);
    printf("All distributors: %lld orders, %s; %lld shipped outside the territory (%s), %lld "
           "under the floor price (%s)\n", t.orders, amount, t.diverted, div_pct, t.dumped,
           dump_pct);
    if (ka_pg_query(pg,
                    "WITH " PERIOD " SELECT o.distributor_id, count(*) FROM sales_order o, p "
                    "WHERE o.channel = 'distributor' AND o.booked_at >= p.first AND "
                    "o.booked_at < p.last + interval '1 month' AND NOT EXISTS (SELECT 1 FROM "
                    "distributor d WHERE d.id = o.distributor_id) GROUP BY 1 ORDER BY 2 DESC, 1 "
                    "LIMIT 10",
                    1, &p, print_unlisted, NULL, err, sizeof err) != KA_OK)
        goto fail;

    int firing = 0;
    printf("\nChannel alerts firing (they resolve after KA_CHANNEL_QUIET_DAYS without a new "
           "finding)\n");
    if (ka_pg_query(pg,
                    "SELECT type, subject_id, to_char(starts_at AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD HH24:MI'), summary FROM alert_state WHERE status = 'firing' "
                    "AND type IN ('channel_diversion', 'price_dumping') "
                    "ORDER BY starts_at DESC, subject_id",
                    0, NULL, print_alerts, &firing, err, sizeof err) != KA_OK)
        goto fail;
    if (!firing)
        printf("  none\n");

    printf("\nSales quality per division, %s\n", period);
    printf("%-10s %-22s %7s %9s %9s %8s\n", "node", "name", "orders", "outside", "under",
           "clean");
    if (ka_pg_query(
            pg,
            "WITH " PERIOD " SELECT n.id, n.name, coalesce(sum(v.distributor_orders), 0), "
            "coalesce(sum(v.diversion_orders), 0), coalesce(sum(v.dumping_orders), 0), "
            "coalesce(sum(round(v.distributor_orders * v.clean_pct / 100)), 0)::bigint "
            "FROM org_node n CROSS JOIN p LEFT JOIN sales_quality_node_month v "
            "ON v.node_id = n.id AND v.period_month BETWEEN p.first AND p.last "
            "WHERE n.kind IN ('company', 'division') GROUP BY n.id, n.name, n.kind "
            "ORDER BY n.kind <> 'company', n.id",
            1, &p, print_divisions, NULL, err, sizeof err) != KA_OK)
        goto fail;
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "kactl channel: %s\n", err);
    ka_pg_free(pg);
    return rc;
}

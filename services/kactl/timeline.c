/* kactl timeline: one account's history, newest first: visits (contacts met,
 * MAN class), its opportunities' events, its orders' events and the alerts on
 * the account or its opportunities. */
#include <stdio.h>
#include <string.h>

#include "ka_pg.h"
#include "kactl.h"

static void usage(FILE *out)
{
    fprintf(out,
        "usage: kactl timeline ACCOUNT [--limit N]\n\n"
        "Prints an account's timeline, newest first (times in UTC):\n"
        "  visit        rep, objective, MAN class (M/A/N upper case when present, '-' when not\n"
        "               assessed), satisfaction, and the contacts met with their buying roles\n"
        "  opportunity  each event of the account's opportunities (created, stage_changed,\n"
        "               won, ...; \"not applied: stale\" when the worker ignored it)\n"
        "  order        each event of the account's orders (booked, cancelled, returned)\n"
        "               with the order's channel and total\n"
        "  alert        alerts on the account or its opportunities: when each fired and,\n"
        "               if so, when it resolved\n\n"
        "ACCOUNT is the account id (see kactl accounts).\n"
        "  --limit N    at most N entries (1..100000, default 100)\n");
}

static int print_rows(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        const char *v[4];
        for (int c = 0; c < 4; c++)
            v[c] = ka_pgres_value(res, i, c) ? ka_pgres_value(res, i, c) : "";
        printf("%-16s  %-11s %-20s %s\n", v[0], v[1], v[2], v[3]);
    }
    return 0;
}

static int read_name(void *ud, const ka_pgres_t *res)
{
    char *name = ud;
    if (ka_pgres_rows(res) == 1)
        snprintf(name, 256, "%s", ka_pgres_value(res, 0, 0));
    return 0;
}

int kactl_timeline(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE], limit[16] = "100", name[256] = "";
    const char *account = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--limit") == 0) {
            int n = 0;
            char extra;
            if (i + 1 >= argc || sscanf(argv[++i], "%d%c", &n, &extra) != 1 || n < 1 ||
                n > 100000) {
                fprintf(stderr, "kactl timeline: --limit expects a number from 1 to 100000\n");
                return 2;
            }
            snprintf(limit, sizeof limit, "%d", n);
        } else if (argv[i][0] != '-' && !account) {
            account = argv[i];
        } else {
            fprintf(stderr, "kactl timeline: unexpected argument \"%s\" (usage: kactl timeline "
                            "ACCOUNT [--limit N])\n", argv[i]);
            return 2;
        }
    }
    if (!account || !account[0]) {
        fprintf(stderr, "kactl timeline: which account? usage: kactl timeline ACCOUNT "
                        "[--limit N] (account ids: kactl accounts)\n");
        return 2;
    }
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    if (!pg) {
        fprintf(stderr, "kactl timeline: %s\n", err);
        return 1;
    }
    ka_pg_param_t p[2] = {{account, 0, 0}, {limit, 0, 0}};
    int n = 0;
    ka_err_t rc = ka_pg_query(
        pg,
        "SELECT display_name || ' (' || coalesce('tier ' || tier, 'not ranked yet') "
        "|| coalesce(', MAN class ' || man_class, '') || ')' FROM account WHERE id = $1",
        1, p, read_name, name, err, sizeof err);
    if (rc == KA_OK && !name[0]) {
        fprintf(stderr, "kactl timeline: no account \"%s\" (account ids: kactl accounts)\n",
                account);
        ka_pg_free(pg);
        return 1;
    }
    if (rc == KA_OK) {
        printf("%s %s\n%-16s  %-11s %-20s %s\n", account, name, "time (UTC)", "kind", "subject",
               "what");
        rc = ka_pg_query(
            pg,
            "WITH opp AS (SELECT id FROM opportunity WHERE account_id = $1), "
            "t AS ("
            " SELECT v.visited_at AS at, 'visit' AS kind, v.id AS subject, "
            "  'by ' || v.rep_id || ', ' || v.objective || ', MAN ' || "
            "  coalesce(v.man_class, '-') || coalesce(', ' || v.satisfaction, '') || "
            "  coalesce('; met ' || (SELECT string_agg(c.name || coalesce(' (' || "
            "  vc.buying_role || ')', ''), ', ' ORDER BY c.name) FROM visit_contact vc "
            "  JOIN contact c ON c.id = vc.contact_id WHERE vc.visit_id = v.id), '') "
            "  || coalesce('; opportunity ' || v.opportunity_id, '') AS what "
            " FROM visit v WHERE v.account_id = $1 "
            " UNION ALL "
            " SELECT e.occurred_at, 'opportunity', e.opportunity_id, e.kind || "
            "  CASE WHEN e.applied THEN '' ELSE ' (not applied: ' || "
            "  coalesce(e.not_applied_reason, '?') || ')' END "
            " FROM opportunity_event e WHERE e.opportunity_id IN (SELECT id FROM opp) "
            " UNION ALL "
            " SELECT e.occurred_at, 'order', e.order_id, e.kind || "
            "  CASE WHEN e.applied THEN '' ELSE ' (not applied: ' || "
            "  coalesce(e.not_applied_reason, '?') || ')' END || ', ' || s.channel || "
            "  coalesce(' via ' || s.distributor_id, '') || ', total ' || "
            "  to_char(round(s.total_amount_minor / 100.0), 'FM999,999,999,999,990') "
            " FROM sales_order_event e JOIN sales_order s ON s.id = e.order_id "
            " WHERE s.account_id = $1 "
            " UNION ALL "
            " SELECT a.starts_at, 'alert', a.type, a.severity || ' fired: ' || a.summary || "
            "  CASE WHEN a.subject_kind = 'opportunity' THEN ' (opportunity ' || a.subject_id "
            "  || ')' ELSE '' END "
            " FROM alert_state a WHERE (a.subject_kind = 'account' AND a.subject_id = $1) "
            "  OR (a.subject_kind = 'opportunity' AND a.subject_id IN (SELECT id FROM opp)) "
            " UNION ALL "
            " SELECT a.ends_at, 'alert', a.type, 'resolved: ' || a.summary "
            " FROM alert_state a WHERE a.ends_at IS NOT NULL AND "
            "  ((a.subject_kind = 'account' AND a.subject_id = $1) "
            "  OR (a.subject_kind = 'opportunity' AND a.subject_id IN (SELECT id FROM opp)))) "
            "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), kind, subject, what "
            "FROM t ORDER BY at DESC, kind, subject LIMIT $2::int",
            2, p, print_rows, &n, err, sizeof err);
    }
    ka_pg_free(pg);
    if (rc != KA_OK) {
        fprintf(stderr, "kactl timeline: %s\n", err);
        return 1;
    }
    printf("%d entr%s\n", n, n == 1 ? "y" : "ies");
    return 0;
}

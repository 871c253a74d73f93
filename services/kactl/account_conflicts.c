/* kactl accounts --conflicts: the accounts one company name is split over
 * (DOMAIN.md section 2, one customer one account). A credit code that comes
 * for a name whose account already holds another code is kept apart as an
 * account of its own; the view account_conflict (0017) pairs each such
 * account with the name's account. Reads PostgreSQL, the store of record. */
#include <stdio.h>

#include "account_conflicts.h"
#include "ui.h"

static const char *code_or_none(const ka_pgres_t *res, int row, int col)
{
    return ka_pgres_value(res, row, col) ? kactl_val(res, row, col) : "(none)";
}

static int print_conflicts(void *ud, const ka_pgres_t *res)
{
    int *n = ud;
    *n = ka_pgres_rows(res);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        printf("name \"%s\": kept apart since %s (event %s)\n", kactl_val(res, i, 0),
               kactl_val(res, i, 9), kactl_val(res, i, 10));
        printf("  the name's account  %-38s code %-18s owner %-20s %s\n", kactl_val(res, i, 1),
               code_or_none(res, i, 2), kactl_val(res, i, 4), kactl_val(res, i, 3));
        printf("  kept apart          %-38s code %-18s owner %-20s %s\n", kactl_val(res, i, 5),
               code_or_none(res, i, 6), kactl_val(res, i, 8), kactl_val(res, i, 7));
    }
    return 0;
}

int kactl_account_conflicts(ka_pg_t *pg, const char *node, const char *limit, char *err,
                            size_t errlen)
{
    ka_pg_param_t p[2] = {{node, 0, 0}, {limit, 0, 0}};
    int shown = 0;

    printf("Accounts kept apart: one company name over accounts with different credit codes "
           "(or a code and none), the newest first\n");
    if (ka_pg_query(
            pg,
            "SELECT substr(c.name_key, 6), c.account_id, c.credit_code, c.display_name, "
            "c.owner_rep_id, c.other_account_id, c.other_credit_code, c.other_display_name, "
            "c.other_owner_rep_id, to_char(c.seen_at AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD HH24:MI UTC'), coalesce(c.seen_event_id, '-') "
            "FROM account_conflict c WHERE $1::text IS NULL OR EXISTS (SELECT 1 FROM "
            "org_closure o WHERE o.ancestor_id = $1 AND o.descendant_id IN "
            "(c.owner_rep_id, c.other_owner_rep_id)) "
            "ORDER BY c.seen_at DESC, c.other_account_id LIMIT $2::int",
            2, p, print_conflicts, &shown, err, errlen) != KA_OK)
        return 1;
    if (!shown)
        printf("none: every company name has one account\n");
    else
        printf("%d conflict%s shown. Each code keeps its own account; correct the code at its "
               "source.\n", shown, shown == 1 ? "" : "s");
    return 0;
}

#ifndef KACTL_UI_H
#define KACTL_UI_H

#include <stddef.h>

#include "ka_pg.h"

/* What every kactl view prints with. */

/* A value of a row; "" for SQL NULL. */
const char *kactl_val(const ka_pgres_t *res, int row, int col);

/* Minor units as money with thousands separators: "1,234,567.89", or with
 * cents = 0 rounded to whole units, "1,234,568". */
void kactl_money(long long minor, int cents, char *out, size_t len);

/* Prints s left-aligned in `cols` terminal columns (CJK characters take
 * two), cut with "~" when it does not fit. */
void kactl_put_cell(const char *s, int cols);

/* An org node, looked up by id. */
typedef struct kactl_node {
    int found;
    char kind[16], name[256];
} kactl_node_t;

/* Looks up org node `id` for command `cmd`. Returns 0 when found (out
 * filled); 2 when there is no such node, after printing what to give instead
 * (with `optional`, that none means the whole company); 1 after printing a
 * database error. */
int kactl_find_node(ka_pg_t *pg, const char *cmd, const char *id, int optional,
                    kactl_node_t *out);

#endif

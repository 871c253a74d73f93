#ifndef KACTL_ACCOUNT_CONFLICTS_H
#define KACTL_ACCOUNT_CONFLICTS_H

#include <stddef.h>

#include "ka_pg.h"

/* Prints the account conflicts (one name, different credit codes) where
 * either account's owner is under org node `node` (NULL: everywhere), at
 * most `limit`. Returns 0, or 1 with err set. */
int kactl_account_conflicts(ka_pg_t *pg, const char *node, const char *limit, char *err,
                            size_t errlen);

#endif

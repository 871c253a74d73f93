#ifndef OPP_STALLED_H
#define OPP_STALLED_H

#include "ka_worker.h"

/* Prepares the scan's statements (once, on the worker's connection). */
ka_err_t opp_stalled_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* One scan in its own transaction: fires an alert for every open opportunity
 * past its stage's max dwell that has none firing, resolves those that moved
 * on. *fired and *resolved receive the counts. */
ka_err_t opp_stalled_scan(ka_worker_t *w, int *fired, int *resolved, char *errstr, size_t errlen);

#endif

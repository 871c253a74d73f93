#ifndef OPP_STALLED_H
#define OPP_STALLED_H

#include <stdint.h>

#include "ka_worker.h"

/* Prepares the scan's statements (once, on the worker's connection). */
ka_err_t opp_stalled_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

/* One scan in its own transaction at the worker's clock now_ms: fires an
 * alert for every open opportunity past its stage's max dwell, or whose
 * account had no visit for no_visit_days, that has none firing for that
 * cause; resolves those that moved on, were visited or closed. *fired and
 * *resolved receive the counts. */
ka_err_t opp_stalled_scan(ka_worker_t *w, int64_t now_ms, int no_visit_days, int *fired,
                          int *resolved, char *errstr, size_t errlen);

#endif

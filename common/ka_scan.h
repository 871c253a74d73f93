#ifndef KA_SCAN_H
#define KA_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "ka_worker.h"

/* What every periodic scan (stalls, overdue follow-ups, tiers, churn...)
 * needs inside its transaction (ka_worker_transaction): one instance at a
 * time, the rows of a query held past its callback, and a record of the run
 * in scan_run for operators and for tests that move the clock. */

/* Tries the transaction-level advisory lock `lock_id`; *locked is 0 when
 * another instance holds it (then skip the scan). */
ka_err_t ka_scan_lock(ka_tx_t *tx, long long lock_id, int *locked, char *errstr, size_t errlen);

/* Records a finished run of scan `name` at the worker's clock now_ms. */
ka_err_t ka_scan_record(ka_tx_t *tx, const char *name, int64_t now_ms, int fired, int resolved,
                        char *errstr, size_t errlen);

/* A query's rows copied out of its callback, so statements can be queued
 * for each (callbacks may not queue). */
typedef struct ka_rows {
    int nrows, ncols;
    char **v; /* nrows x ncols; NULL for SQL NULL */
} ka_rows_t;

/* Runs stmt (registered name or SQL) with text parameters in tx and keeps
 * its rows in *rows (free with ka_rows_free). */
ka_err_t ka_rows_query(ka_tx_t *tx, const char *stmt, int nparams, const char *const *params,
                       ka_rows_t *rows, char *errstr, size_t errlen);

/* The value at (row, col): "" for SQL NULL. */
const char *ka_rows_str(const ka_rows_t *rows, int row, int col);
int ka_rows_null(const ka_rows_t *rows, int row, int col);
long long ka_rows_int(const ka_rows_t *rows, int row, int col, long long def);

/* No operation is performed on an empty set. */
void ka_rows_free(ka_rows_t *rows);

#endif

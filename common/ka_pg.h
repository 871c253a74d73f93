#ifndef KA_PG_H
#define KA_PG_H

#include <stddef.h>

#include "ka_err.h"

/* PostgreSQL access. Only ka_pg.c includes libpq. A ka_pg_t is one
 * connection; it is not thread-safe. Statements registered with
 * ka_pg_prepare() are prepared again after every reconnect, so callers name
 * them and never re-prepare by hand. */
typedef struct ka_pg ka_pg_t;

/* A read-only view of one statement's result, valid only during the callback
 * that receives it. */
typedef struct ka_pgres ka_pgres_t;

/* Called with a statement's rows. Returning non-zero marks the whole call (or
 * pipeline) failed with KA_ERR; the callback fills nothing else. */
typedef int (*ka_pg_rows_fn)(void *ud, const ka_pgres_t *res);

/* Parameters of a statement: text unless `binary` is set (bytea payloads).
 * value NULL is SQL NULL. `len` is used for binary values only. */
typedef struct ka_pg_param {
    const char *value;
    int len;
    int binary;
} ka_pg_param_t;

/* Connects once. Returns NULL and fills errstr on failure. */
ka_pg_t *ka_pg_connect(const char *dsn, char *errstr, size_t errlen);

/* For every session this process opens from now on (re-connects included):
 * PostgreSQL ends one that stays idle inside a transaction longer than ms
 * (0: never). Set before connecting. */
void ka_pg_set_idle_in_transaction_timeout(int ms);

/* Connects, retrying with exponential back-off (capped at max_backoff_ms)
 * until it succeeds or should_stop() returns non-zero (then NULL). Each
 * failed attempt is reported through on_retry when given. */
ka_pg_t *ka_pg_connect_retry(const char *dsn, int max_backoff_ms, int (*should_stop)(void),
                             void (*on_retry)(const char *err, int next_ms));

/* No operation is performed if pg is NULL. */
void ka_pg_free(ka_pg_t *pg);

/* Non-zero when the connection is usable. */
int ka_pg_ok(const ka_pg_t *pg);

/* Re-establishes a broken connection with back-off (see connect_retry) and
 * prepares every registered statement again. Returns KA_OK, or KA_ERR_RETRY
 * when should_stop() asked to give up. */
ka_err_t ka_pg_reconnect(ka_pg_t *pg, int max_backoff_ms, int (*should_stop)(void),
                         void (*on_retry)(const char *err, int next_ms));

/* Registers and prepares a named statement. Returns KA_OK or an error. */
ka_err_t ka_pg_prepare(ka_pg_t *pg, const char *name, const char *sql, char *errstr,
                       size_t errlen);

/* Registers and prepares n statements given as {name, sql} pairs; stops at
 * the first error. */
ka_err_t ka_pg_prepare_all(ka_pg_t *pg, const char *statements[][2], size_t n, char *errstr,
                           size_t errlen);

/* Runs one or more SQL commands without parameters or results (DDL, BEGIN,
 * a migration file). */
ka_err_t ka_pg_exec(ka_pg_t *pg, const char *sql, char *errstr, size_t errlen);

/* Runs one statement: `stmt` is a registered statement name, or else SQL
 * text. `cb` (may be NULL) sees the rows. Returns KA_OK, KA_ERR_RETRY when the
 * connection broke or the server asked to retry, KA_ERR_FENCED for a stored
 * offset compare-and-set that failed, KA_ERR otherwise (errstr filled). */
ka_err_t ka_pg_query(ka_pg_t *pg, const char *stmt, int nparams, const ka_pg_param_t *params,
                     ka_pg_rows_fn cb, void *ud, char *errstr, size_t errlen);

/* Pipelines: queue statements with ka_pg_pipe_push (parameters are copied at
 * push time, so the caller's buffers may go), then ka_pg_pipe_run sends one
 * sync and reads every result in order, calling each statement's callback.
 * An error aborts the rest of the pipeline on the server; run returns the
 * first error (codes as ka_pg_query) and leaves no transaction open.
 * Callbacks must not queue statements (push fails with KA_ERR): copy what
 * they need and queue after run returns. */
ka_err_t ka_pg_pipe_begin(ka_pg_t *pg, char *errstr, size_t errlen);
ka_err_t ka_pg_pipe_push(ka_pg_t *pg, const char *stmt, int nparams, const ka_pg_param_t *params,
                         ka_pg_rows_fn cb, void *ud, char *errstr, size_t errlen);
ka_err_t ka_pg_pipe_run(ka_pg_t *pg, char *errstr, size_t errlen);

/* Rolls back an open transaction, if any; harmless otherwise. */
void ka_pg_rollback(ka_pg_t *pg);

/* The SQLSTATE of the last failed statement ("" when none). */
const char *ka_pg_sqlstate(const ka_pg_t *pg);

/* Result access: rows and columns count from 0; value is NULL for SQL NULL
 * and lives as long as the view. */
int ka_pgres_rows(const ka_pgres_t *res);
int ka_pgres_cols(const ka_pgres_t *res);
const char *ka_pgres_value(const ka_pgres_t *res, int row, int col);
int ka_pgres_length(const ka_pgres_t *res, int row, int col);
/* The value parsed as an integer; `def` for NULL or a non-number. */
long long ka_pgres_int(const ka_pgres_t *res, int row, int col, long long def);

#endif

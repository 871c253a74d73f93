#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_scan.h"

static int read_lock(void *ud, const ka_pgres_t *res)
{
    const char *v = ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : NULL;
    *(int *)ud = v && v[0] == 't';
    return 0;
}

ka_err_t ka_scan_lock(ka_tx_t *tx, long long lock_id, int *locked, char *errstr, size_t errlen)
{
    char id[24];
    snprintf(id, sizeof id, "%lld", lock_id);
    ka_pg_param_t p = {id, 0, 0};
    *locked = 0;
    ka_err_t rc = ka_pg_pipe_push(ka_tx_pg(tx), "SELECT pg_try_advisory_xact_lock($1::bigint)", 1,
                                  &p, read_lock, locked, errstr, errlen);
    return rc == KA_OK ? ka_tx_flush(tx, errstr, errlen) : rc;
}

ka_err_t ka_scan_record(ka_tx_t *tx, const char *name, int64_t now_ms, int fired, int resolved,
                        char *errstr, size_t errlen)
{
    char now[24], f[16], r[16];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(f, sizeof f, "%d", fired);
    snprintf(r, sizeof r, "%d", resolved);
    ka_pg_param_t p[5] = {{name, 0, 0}, {ka_tx_group(tx), 0, 0}, {now, 0, 0}, {f, 0, 0},
                          {r, 0, 0}};
    return ka_pg_pipe_push(
        ka_tx_pg(tx),
        "INSERT INTO scan_run (name, consumer_group, clock_at, fired, resolved, finished_at) "
        "VALUES ($1, $2, to_timestamp($3::bigint / 1000.0), $4::int, $5::int, now()) "
        "ON CONFLICT (name) DO UPDATE SET consumer_group = EXCLUDED.consumer_group, "
        "clock_at = EXCLUDED.clock_at, fired = EXCLUDED.fired, resolved = EXCLUDED.resolved, "
        "finished_at = EXCLUDED.finished_at",
        5, p, NULL, NULL, errstr, errlen);
}

static int collect(void *ud, const ka_pgres_t *res)
{
    ka_rows_t *rows = ud;
    rows->nrows = ka_pgres_rows(res);
    rows->ncols = ka_pgres_cols(res);
    rows->v = ka_calloc((size_t)rows->nrows * (size_t)rows->ncols + 1, sizeof *rows->v);
    for (int i = 0; i < rows->nrows; i++)
        for (int c = 0; c < rows->ncols; c++) {
            const char *v = ka_pgres_value(res, i, c);
            rows->v[i * rows->ncols + c] = v ? ka_strdup(v) : NULL;
        }
    return 0;
}

ka_err_t ka_rows_query(ka_tx_t *tx, const char *stmt, int nparams, const char *const *params,
                       ka_rows_t *rows, char *errstr, size_t errlen)
{
    ka_pg_param_t p[16];
    memset(rows, 0, sizeof *rows);
    if (nparams > 16) {
        snprintf(errstr, errlen, "%s: more than 16 parameters", stmt);
        return KA_ERR;
    }
    for (int i = 0; i < nparams; i++)
        p[i] = (ka_pg_param_t){params[i], 0, 0};
    ka_err_t rc = ka_pg_pipe_push(ka_tx_pg(tx), stmt, nparams, p, collect, rows, errstr, errlen);
    return rc == KA_OK ? ka_tx_flush(tx, errstr, errlen) : rc;
}

const char *ka_rows_str(const ka_rows_t *rows, int row, int col)
{
    const char *v = rows->v[row * rows->ncols + col];
    return v ? v : "";
}

int ka_rows_null(const ka_rows_t *rows, int row, int col)
{
    return rows->v[row * rows->ncols + col] == NULL;
}

long long ka_rows_int(const ka_rows_t *rows, int row, int col, long long def)
{
    const char *v = rows->v[row * rows->ncols + col];
    char *end = NULL;
    if (!v)
        return def;
    long long n = strtoll(v, &end, 10);
    return end && *end == '\0' ? n : def;
}

void ka_rows_free(ka_rows_t *rows)
{
    for (int i = 0; rows->v && i < rows->nrows * rows->ncols; i++)
        free(rows->v[i]);
    free(rows->v);
    memset(rows, 0, sizeof *rows);
}

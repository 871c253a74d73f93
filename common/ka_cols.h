#ifndef KA_COLS_H
#define KA_COLS_H

#include <stdint.h>

#include "ka_buf.h"
#include "ka_pg.h"

/* The columns of one batched statement, each a PostgreSQL array literal, so
 * a whole batch travels as one parameter per column (unnest on the server):
 * ka_cols_begin, ka_buf_array_add* on c->b[i] per row (and c->rows++), then
 * ka_cols_end once, which points the statement's parameters at them. */

#define KA_COLS_MAX 32

typedef struct ka_cols {
    ka_buf_t b[KA_COLS_MAX];
    int n, rows;
} ka_cols_t;

void ka_cols_begin(ka_cols_t *c, int ncols);

/* Ends the arrays and fills params[0..n); they live until ka_cols_free. */
void ka_cols_end(ka_cols_t *c, ka_pg_param_t *params);

void ka_cols_free(ka_cols_t *c);

/* A time in ms, or SQL NULL for 0. */
void ka_buf_array_add_ms(ka_buf_t *b, int64_t ms);

#endif

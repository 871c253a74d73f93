#include <string.h>

#include "ka_cols.h"

void ka_cols_begin(ka_cols_t *c, int ncols)
{
    memset(c, 0, sizeof *c);
    c->n = ncols;
    for (int i = 0; i < ncols; i++)
        ka_buf_array_begin(&c->b[i]);
}

void ka_cols_end(ka_cols_t *c, ka_pg_param_t *params)
{
    for (int i = 0; i < c->n; i++) {
        ka_buf_array_end(&c->b[i]);
        params[i] = (ka_pg_param_t){ka_buf_str(&c->b[i]), 0, 0};
    }
}

void ka_cols_free(ka_cols_t *c)
{
    for (int i = 0; i < c->n; i++)
        ka_buf_free(&c->b[i]);
}

void ka_buf_array_add_ms(ka_buf_t *b, int64_t ms)
{
    if (ms)
        ka_buf_array_add_int(b, ms);
    else
        ka_buf_array_add(b, NULL);
}

#ifndef ORDER_SQL_H
#define ORDER_SQL_H

#include "ka_pg.h"

/* Prepares the order worker's statements (order_sql.c). */
ka_err_t order_statements_prepare(ka_pg_t *pg, char *errstr, size_t errlen);

#endif

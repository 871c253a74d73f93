#ifndef API_POOL_H
#define API_POOL_H

#include "api.h"

/* n connection slots, one per request thread: a request takes one and gives
 * it back, so each ka_pg_t / ka_redis_t is used by one thread at a time.
 * Connections open lazily and re-open after a failure, one attempt per
 * request, so the API answers 503 while PostgreSQL is down and recovers by
 * itself when it is back. */
api_pool_t *api_pool_new(const ka_config_t *cfg, int n);
void api_pool_free(api_pool_t *p);

/* Blocks until a slot is free. */
api_conn_t *api_pool_take(api_pool_t *p);
void api_pool_give(api_pool_t *p, api_conn_t *c);

/* Opens c's PostgreSQL connection when it has none or a broken one; 0 when
 * PostgreSQL cannot be reached (errstr filled). */
int api_pool_pg(api_pool_t *p, api_conn_t *c, char *errstr, size_t errlen);

/* The same for Redis (a failed attempt is retried after a pause). */
ka_redis_t *api_pool_redis(api_pool_t *p, api_conn_t *c);

/* Non-zero when the last PostgreSQL attempt of any slot succeeded. */
int api_pool_pg_up(api_pool_t *p);
void api_pool_note_pg(api_pool_t *p, int up);

#endif

#ifndef API_H
#define API_H

#include <jansson.h>
#include <stddef.h>

#include "ka_config.h"
#include "ka_hash.h"
#include "ka_pg.h"
#include "ka_redis.h"

/* ka-api: the HTTP API. One request is served whole on one of the daemon's
 * threads, with one pooled PostgreSQL (and Redis) connection; the resource
 * handlers (api_org.c, api_lists.c, api_subjects.c) see only api_req_t. */

typedef struct api_pool api_pool_t;

/* One pooled slot: a thread's connections while it serves a request. */
#define API_PREPARED_MAX 64

typedef struct api_conn {
    ka_pg_t *pg;
    ka_redis_t *rds;
    int busy;
    /* Statements prepared on pg ("api_" and the hash of their text): a
     * request's statements are planned once per connection, not at every
     * call (planning cost more than running them). Emptied with a new pg. */
    char prepared[API_PREPARED_MAX][KA_HASH_HEX_LEN + 4];
    int nprepared;
} api_conn_t;

typedef struct api_req {
    const ka_config_t *cfg;
    void *mhd;          /* the MHD connection, for api_arg() */
    api_pool_t *pool;
    api_conn_t *conn;   /* taken on first use (api_pg) */
    /* The caller, once authenticated. */
    char tok_id[16];
    char tok_node[72];
    int tok_ops;
    /* The path's node as the token lookup saw it (one round trip for both):
     * whether it exists and is in the token's subtree; scope_node "" when
     * the path names none. */
    char scope_node[72];
    int scope_exists, scope_under;
    /* The answer. */
    int status;
    json_t *body;       /* an object; NULL until set */
    const char *source; /* "postgresql" or "redis": where the figures came from */
    long long age_ms;   /* how old they are (newest change), -1 unknown */
} api_req_t;

/* A query parameter ("limit"), NULL when absent. */
const char *api_arg(const api_req_t *r, const char *name);

/* Sets the error answer {error, detail, parameter} and returns 0. */
int api_error(api_req_t *r, int status, const char *error, const char *detail,
              const char *parameter);

/* The request's PostgreSQL connection (taken from the pool on first use, a
 * broken one re-opened once): NULL after setting a 503 when PostgreSQL
 * cannot be reached. */
ka_pg_t *api_pg(api_req_t *r);

/* The request's Redis connection, NULL when Redis is unreachable (callers
 * then read PostgreSQL). */
ka_redis_t *api_redis(api_req_t *r);

/* Runs `sql` with the rows to cb: 1, or 0 after setting 503 or 500. */
int api_pg_rows(api_req_t *r, const char *sql, int n, const ka_pg_param_t *p, ka_pg_rows_fn cb,
                void *ud);

/* Runs `sql`, whose one row's one column is JSON text, and returns it
 * parsed (new reference); NULL after setting 503 (PostgreSQL down) or 500.
 * A NULL value is returned as JSON null. A key "_age_ms" of a returned
 * object becomes r->age_ms and leaves the object. */
json_t *api_pg_json(api_req_t *r, const char *sql, int n, const ka_pg_param_t *p);

/* Allows the request on `node` for the token: 1 when the node is in the
 * token's subtree; 0 after setting 404 (no such node) or 403. */
int api_scope_node(api_req_t *r, const char *node, const char *parameter);

/* Lists: reads ?limit (1..max, default def) and ?cursor (an opaque cursor of
 * nkeys values, from a previous page's next_cursor) into *limit and keys[]
 * (NULL each without a cursor; free with api_cursor_free). 0 after a 400. */
int api_page_args(api_req_t *r, int def, int max, int *limit, char **keys, int nkeys);
void api_cursor_free(char **keys, int nkeys);

/* Runs `sql`, whose one value is a JSON array of up to limit + 1 items in
 * the list's order, and answers {items, next_cursor}: with limit + 1 items
 * there is a next page, whose cursor holds the key fields of the last item
 * shown. `extra` (stolen, may be NULL) adds its members to the answer. */
int api_list(api_req_t *r, const char *sql, int n, const ka_pg_param_t *p, int limit,
             const char *const *key_fields, int nkeys, json_t *extra);

/* Parameter checks: 1 when fine, else 0 after a 400 naming it. */
int api_arg_enum(api_req_t *r, const char *name, const char *choices, const char *def,
                 const char **out);
int api_arg_month(api_req_t *r, const char *name, char out[11]); /* YYYY-MM -> YYYY-MM-01 */
int api_arg_id(api_req_t *r, const char *name, const char *value);

/* Resources (return 1 when the answer is set, as every path does). */
int api_me(api_req_t *r);
int api_node(api_req_t *r, const char *node);
int api_node_children(api_req_t *r, const char *node);
int api_node_tree(api_req_t *r, const char *node);
int api_node_funnel(api_req_t *r, const char *node);
int api_node_forecast(api_req_t *r, const char *node);
int api_node_alerts(api_req_t *r, const char *node);
int api_node_followups(api_req_t *r, const char *node);
int api_node_coverage(api_req_t *r, const char *node);
int api_account(api_req_t *r, const char *id);
int api_opportunity(api_req_t *r, const char *id);
int api_planning(api_req_t *r, const char *division);
int api_deadletters(api_req_t *r);

#endif

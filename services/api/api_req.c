/* What every resource handler uses: parameters, the error shape, pooled
 * connections, JSON out of PostgreSQL, scoping and cursor pagination. */
#include <ctype.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "api_pool.h"
#include "ka_log.h"

const char *api_arg(const api_req_t *r, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)r->mhd, MHD_GET_ARGUMENT_KIND,
                                       name);
}

int api_error(api_req_t *r, int status, const char *error, const char *detail,
              const char *parameter)
{
    json_decref(r->body);
    r->status = status;
    r->body = json_pack("{s:s,s:s,s:o}", "error", error, "detail", detail, "parameter",
                        parameter ? json_string(parameter) : json_null());
    return 0;
}

static int pg_down(api_req_t *r, const char *err)
{
    api_pool_note_pg(r->pool, 0);
    ka_log(KA_LOG_DEBUG, "PostgreSQL unreachable", "{s:s}", "error", err);
    return api_error(r, 503, "unavailable",
                     "PostgreSQL, the store of record, cannot be reached; retry shortly", NULL);
}

ka_pg_t *api_pg(api_req_t *r)
{
    char err[KA_ERRSTR_SIZE] = "";
    if (!r->conn)
        r->conn = api_pool_take(r->pool);
    if (!api_pool_pg(r->pool, r->conn, err, sizeof err)) {
        pg_down(r, err);
        return NULL;
    }
    return r->conn->pg;
}

ka_redis_t *api_redis(api_req_t *r)
{
    if (!r->conn)
        r->conn = api_pool_take(r->pool);
    return api_pool_redis(r->pool, r->conn);
}

/* The name of sql prepared on r's connection (prepared now if it is not
 * yet), or sql itself when it cannot be (too many, or the prepare failed:
 * then the query reports the error). */
static const char *prepared(api_req_t *r, ka_pg_t *pg, const char *sql)
{
    api_conn_t *c = r->conn;
    char name[KA_HASH_HEX_LEN + 4], err[KA_ERRSTR_SIZE];
    memcpy(name, "api_", 4);
    ka_hash128_hex(sql, strlen(sql), name + 4);
    for (int i = 0; i < c->nprepared; i++)
        if (strcmp(c->prepared[i], name) == 0)
            return c->prepared[i];
    if (c->nprepared == API_PREPARED_MAX || ka_pg_prepare(pg, name, sql, err, sizeof err) != KA_OK)
        return sql;
    memcpy(c->prepared[c->nprepared], name, sizeof name);
    return c->prepared[c->nprepared++];
}

/* After a failed statement: a prepared one that a schema change outdated
 * ("cached plan must not change result type", 0A000) or that the server
 * lost (26000) did not run; its connection is replaced (every statement
 * prepared on it is as outdated) and the caller runs it once more, so a
 * migration under a running ka-api costs no failed answer. Returns whether
 * that happened. */
static int forget_stale(api_req_t *r, ka_pg_t *pg)
{
    const char *st = ka_pg_sqlstate(pg);
    if (!st || (strcmp(st, "0A000") != 0 && strcmp(st, "26000") != 0))
        return 0;
    ka_log(KA_LOG_INFO, "prepared statements outdated, reconnecting", "{s:s}", "sqlstate", st);
    ka_pg_free(r->conn->pg);
    r->conn->pg = NULL;
    r->conn->nprepared = 0;
    return 1;
}

int api_pg_rows(api_req_t *r, const char *sql, int n, const ka_pg_param_t *p, ka_pg_rows_fn cb,
                void *ud)
{
    char err[KA_ERRSTR_SIZE] = "";
    for (int attempt = 0;; attempt++) {
        ka_pg_t *pg = api_pg(r);
        if (!pg)
            return 0;
        ka_err_t rc = ka_pg_query(pg, prepared(r, pg, sql), n, p, cb, ud, err, sizeof err);
        if (rc == KA_OK) {
            api_pool_note_pg(r->pool, 1);
            return 1;
        }
        if (rc == KA_ERR_RETRY || !ka_pg_ok(pg))
            return pg_down(r, err);
        if (attempt == 0 && forget_stale(r, pg))
            continue; /* the statement did not run: rows were not delivered */
        ka_log(KA_LOG_ERROR, "query failed", "{s:s,s:s}", "error", err, "sqlstate",
               ka_pg_sqlstate(pg));
        return api_error(r, 500, "internal", "the query failed; see the service's log", NULL);
    }
}

typedef struct json_out {
    json_t *v;
    int bad;
} json_out_t;

static int read_json(void *ud, const ka_pgres_t *res)
{
    json_out_t *o = ud;
    if (ka_pgres_rows(res) < 1 || !ka_pgres_value(res, 0, 0)) {
        o->v = json_null();
        return 0;
    }
    json_error_t e;
    o->v = json_loads(ka_pgres_value(res, 0, 0), JSON_DECODE_ANY, &e);
    o->bad = o->v == NULL;
    return 0;
}

json_t *api_pg_json(api_req_t *r, const char *sql, int n, const ka_pg_param_t *p)
{
    char err[KA_ERRSTR_SIZE] = "";
    json_out_t o = {NULL, 0};
    for (int attempt = 0;; attempt++) {
        ka_pg_t *pg = api_pg(r);
        if (!pg)
            return NULL;
        ka_err_t rc = ka_pg_query(pg, prepared(r, pg, sql), n, p, read_json, &o, err, sizeof err);
        if (rc == KA_OK)
            break;
        json_decref(o.v);
        o.v = NULL;
        if (rc == KA_ERR_RETRY || !ka_pg_ok(pg)) {
            pg_down(r, err);
            return NULL;
        }
        if (attempt == 0 && forget_stale(r, pg))
            continue;
        ka_log(KA_LOG_ERROR, "query failed", "{s:s,s:s}", "error", err, "sqlstate",
               ka_pg_sqlstate(pg));
        api_error(r, 500, "internal", "the query failed; see the service's log", NULL);
        return NULL;
    }
    api_pool_note_pg(r->pool, 1);
    if (o.bad) {
        api_error(r, 500, "internal", "the database returned bad JSON", NULL);
        return NULL;
    }
    json_t *age = json_is_object(o.v) ? json_object_get(o.v, "_age_ms") : NULL;
    if (age) {
        r->age_ms = json_is_number(age) ? (long long)json_number_value(age) : -1;
        if (r->age_ms < 0 && json_is_number(age))
            r->age_ms = 0;
        json_object_del(o.v, "_age_ms");
    }
    return o.v;
}

int api_scope_node(api_req_t *r, const char *node, const char *parameter)
{
    if (!api_arg_id(r, parameter, node))
        return 0;
    int exists, under;
    if (r->scope_node[0] && strcmp(r->scope_node, node) == 0) {
        exists = r->scope_exists; /* asked along with the token */
        under = r->scope_under;
    } else {
        ka_pg_param_t p[2] = {{r->tok_node, 0, 0}, {node, 0, 0}};
        json_t *v = api_pg_json(r,
                                "SELECT json_build_array(EXISTS (SELECT 1 FROM org_node WHERE id = "
                                "$2), EXISTS (SELECT 1 FROM org_closure WHERE ancestor_id = $1 AND "
                                "descendant_id = $2))",
                                2, p);
        if (!v)
            return 0;
        exists = json_is_true(json_array_get(v, 0));
        under = json_is_true(json_array_get(v, 1));
        json_decref(v);
    }
    char detail[256];
    if (!exists) {
        snprintf(detail, sizeof detail, "no org node \"%s\"", node);
        return api_error(r, 404, "not_found", detail, parameter);
    }
    if (!under) {
        snprintf(detail, sizeof detail, "node \"%s\" is outside the subtree of this token's node",
                 node);
        return api_error(r, 403, "forbidden", detail, parameter);
    }
    return 1;
}

int api_arg_id(api_req_t *r, const char *name, const char *value)
{
    size_t n = value ? strlen(value) : 0;
    if (n < 1 || n > 64) {
        char d[128];
        snprintf(d, sizeof d, "%s must be an id of 1 to 64 characters", name);
        return api_error(r, 400, "bad_parameter", d, name);
    }
    return 1;
}

int api_arg_enum(api_req_t *r, const char *name, const char *choices, const char *def,
                 const char **out)
{
    const char *v = api_arg(r, name);
    if (!v) {
        *out = def;
        return 1;
    }
    size_t n = strlen(v);
    for (const char *c = choices; *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, v, n) == 0) {
            *out = v;
            return 1;
        }
        c += len + (bar ? 1 : 0);
    }
    char d[256];
    snprintf(d, sizeof d, "%s must be one of %s", name, choices);
    return api_error(r, 400, "bad_parameter", d, name);
}

int api_arg_month(api_req_t *r, const char *name, char out[11])
{
    const char *v = api_arg(r, name);
    out[0] = '\0';
    if (!v)
        return 1;
    int ok = strlen(v) == 7 && v[4] == '-';
    for (int i = 0; ok && i < 7; i++)
        if (i != 4 && !isdigit((unsigned char)v[i]))
            ok = 0;
    int m = ok ? atoi(v + 5) : 0;
    if (!ok || m < 1 || m > 12) {
        char d[128];
        snprintf(d, sizeof d, "%s must be a month, YYYY-MM", name);
        return api_error(r, 400, "bad_parameter", d, name);
    }
    snprintf(out, 11, "%.7s-01", v);
    return 1;
}

/* Cursors: the hex of a JSON array of the last item's key values (text or
 * null), opaque to clients. */
static char *cursor_encode(json_t *keys)
{
    char *s = json_dumps(keys, JSON_COMPACT);
    size_t n = strlen(s);
    char *hex = ka_malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)s[i]);
    free(s);
    return hex;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int api_page_args(api_req_t *r, int def, int max, int *limit, char **keys, int nkeys)
{
    for (int i = 0; i < nkeys; i++)
        keys[i] = NULL;
    const char *l = api_arg(r, "limit");
    *limit = def;
    if (l) {
        char *end;
        long v = strtol(l, &end, 10);
        if (!l[0] || *end || v < 1 || v > max) {
            char d[128];
            snprintf(d, sizeof d, "limit must be a whole number from 1 to %d", max);
            return api_error(r, 400, "bad_parameter", d, "limit");
        }
        *limit = (int)v;
    }
    const char *c = api_arg(r, "cursor");
    if (!c)
        return 1;
    size_t n = strlen(c);
    char *text = NULL;
    json_t *arr = NULL;
    if (n == 0 || n % 2 || n > 4096)
        goto bad;
    text = ka_malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(c[2 * i]), lo = hexval(c[2 * i + 1]);
        if (hi < 0 || lo < 0)
            goto bad;
        text[i] = (char)(hi * 16 + lo);
    }
    text[n / 2] = '\0';
    arr = json_loads(text, 0, NULL);
    if (!json_is_array(arr) || (int)json_array_size(arr) != nkeys)
        goto bad;
    for (int i = 0; i < nkeys; i++) {
        json_t *k = json_array_get(arr, (size_t)i);
        if (!json_is_string(k))
            goto bad;
        keys[i] = ka_strdup(json_string_value(k));
    }
    free(text);
    json_decref(arr);
    return 1;
bad:
    free(text);
    json_decref(arr);
    api_cursor_free(keys, nkeys);
    return api_error(r, 400, "bad_parameter", "cursor is not one this list gave out", "cursor");
}

void api_cursor_free(char **keys, int nkeys)
{
    for (int i = 0; i < nkeys; i++) {
        free(keys[i]);
        keys[i] = NULL;
    }
}

int api_list(api_req_t *r, const char *sql, int n, const ka_pg_param_t *p, int limit,
             const char *const *key_fields, int nkeys, json_t *extra)
{
    json_t *items = api_pg_json(r, sql, n, p);
    if (!items) {
        json_decref(extra);
        return 0;
    }
    if (json_is_null(items)) {
        json_decref(items);
        items = json_array();
    }
    json_t *next = json_null();
    if ((int)json_array_size(items) > limit) {
        json_array_remove(items, (size_t)limit);
        json_t *last = json_array_get(items, (size_t)limit - 1);
        json_t *keys = json_array();
        for (int i = 0; i < nkeys; i++) {
            json_t *v = json_object_get(last, key_fields[i]);
            char num[32];
            if (json_is_string(v)) {
                json_array_append_new(keys, json_string(json_string_value(v)));
            } else if (json_is_integer(v)) {
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
                json_array_append_new(keys, json_string(num));
            } else {
                json_array_append_new(keys, json_string(""));
            }
        }
        char *c = cursor_encode(keys);
        json_decref(keys);
        json_decref(next);
        next = json_string(c);
        free(c);
    }
    json_t *body = extra ? extra : json_object();
    json_object_set_new(body, "items", items);
    json_object_set_new(body, "next_cursor", next);
    json_decref(r->body);
    r->body = body;
    r->status = 200;
    return 1;
}

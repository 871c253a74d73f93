/* /v1/me, the org tree, and a node's funnel and forecast. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "ka_queries.h"
#include "ka_validate.h"

#define NODE_JSON "json_build_object('id', n.id, 'parent_id', n.parent_id, 'kind', n.kind, " \
                  "'name', n.name, 'active', n.active)"

int api_me(api_req_t *r)
{
    ka_pg_param_t p = {r->tok_node, 0, 0};
    json_t *node = api_pg_json(r, "SELECT " NODE_JSON " FROM org_node n WHERE n.id = $1", 1, &p);
    if (!node)
        return 0;
    json_decref(r->body);
    r->body = json_pack("{s:s,s:o,s:b}", "token_id", r->tok_id, "node", node, "ops", r->tok_ops);
    r->source = "postgresql";
    return 1;
}

int api_node(api_req_t *r, const char *node)
{
    /* Its ancestors down from the token's node, not above it: a token sees
     * its subtree only. */
    ka_pg_param_t p[2] = {{node, 0, 0}, {r->tok_node, 0, 0}};
    json_t *v = api_pg_json(
        r,
        "SELECT json_build_object('node', " NODE_JSON ", "
        "'path', (SELECT json_agg(a.id ORDER BY c.depth DESC) FROM org_closure c "
        "JOIN org_node a ON a.id = c.ancestor_id WHERE c.descendant_id = n.id AND c.depth > 0 "
        "AND a.id IN (SELECT descendant_id FROM org_closure WHERE ancestor_id = $2)), "
        "'children', (SELECT count(*) FROM org_node k WHERE k.parent_id = n.id), "
        "'descendants', (SELECT count(*) - 1 FROM org_closure d WHERE d.ancestor_id = n.id), "
        "'_age_ms', (extract(epoch FROM now() - n.updated_at) * 1000)::bigint) "
        "FROM org_node n WHERE n.id = $1",
        2, p);
    if (!v)
        return 0;
    if (!json_is_array(json_object_get(v, "path")))
        json_object_set_new(v, "path", json_array());
    json_decref(r->body);
    r->body = v;
    r->source = "postgresql";
    return 1;
}

int api_node_children(api_req_t *r, const char *node)
{
    int limit;
    char *k[1];
    if (!api_page_args(r, 100, 1000, &limit, k, 1))
        return 0;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    ka_pg_param_t p[3] = {{node, 0, 0}, {k[0], 0, 0}, {lim, 0, 0}};
    static const char *const keys[] = {"id"};
    int ok = api_list(r,
                      "SELECT coalesce(json_agg(y.j ORDER BY y.id), '[]') FROM (SELECT " NODE_JSON
                      "::jsonb || jsonb_build_object('children', (SELECT count(*) FROM org_node k "
                      "WHERE k.parent_id = n.id)) AS j, n.id FROM org_node n WHERE n.parent_id = $1 "
                      "AND ($2::text IS NULL OR n.id > $2) ORDER BY n.id LIMIT $3::int + 1) y",
                      3, p, limit, keys, 1, NULL);
    api_cursor_free(k, 1);
    r->source = "postgresql";
    return ok;
}

int api_node_tree(api_req_t *r, const char *node)
{
    int limit;
    char *k[2];
    if (!api_page_args(r, 500, 5000, &limit, k, 2))
        return 0;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    ka_pg_param_t p[4] = {{node, 0, 0}, {k[0], 0, 0}, {k[1], 0, 0}, {lim, 0, 0}};
    static const char *const keys[] = {"depth", "id"};
    int ok = api_list(r,
                      "SELECT coalesce(json_agg(y.j ORDER BY y.depth, y.id), '[]') FROM ("
                      "SELECT " NODE_JSON "::jsonb || jsonb_build_object('depth', c.depth) AS j, "
                      "c.depth, n.id FROM org_closure c JOIN org_node n ON n.id = c.descendant_id "
                      "WHERE c.ancestor_id = $1 AND ($2::int IS NULL OR (c.depth, n.id) > "
                      "($2::int, $3)) ORDER BY c.depth, n.id LIMIT $4::int + 1) y",
                      4, p, limit, keys, 2, NULL);
    api_cursor_free(k, 2);
    r->source = "postgresql";
    return ok;
}

/* The funnel ---------------------------------------------------------------- */

/* A node's funnel in one statement ($1 node, $2 one definition or NULL for
 * those with figures at the node), a row per definition and open stage in
 * order: definition_id, code, name, win_probability_bp, the figures from
 * funnel_state, ms since the definition's newest change there, and the
 * stage's health on the open count (status, ratio_bp, baseline). A
 * definition without open stages is a row with code NULL. One round trip
 * instead of the three of KA_SQL_FUNNEL_DEFINITIONS, _STAGES, _FIGURES and
 * _HEALTH per definition, which kactl still uses one by one. */
#define SQL_FUNNEL_AT_NODE                                                                     \
    "SELECT d.definition_id, s.code, s.name, s.win_probability_bp, f.open_count, "            \
    "f.amount_minor, f.weighted_amount_minor, "                                                \
    "(extract(epoch FROM now() - d.changed) * 1000)::bigint, h.status, h.ratio_bp, "          \
    "h.baseline_value FROM (SELECT x.definition_id, (SELECT max(a.updated_at) FROM "          \
    "funnel_state a WHERE a.node_id = $1 AND a.definition_id = x.definition_id) AS changed "  \
    "FROM (SELECT DISTINCT definition_id FROM funnel_state WHERE node_id = $1 AND $2::text "  \
    "IS NULL UNION SELECT $2::text WHERE $2::text IS NOT NULL) x) d "                         \
    "LEFT JOIN funnel_stage s ON s.definition_id = d.definition_id AND NOT s.is_closed "      \
    "LEFT JOIN funnel_state f ON f.node_id = $1 AND f.definition_id = d.definition_id "       \
    "AND f.stage_code = s.code "                                                               \
    "LEFT JOIN funnel_health_now h ON h.node_id = $1 AND h.definition_id = d.definition_id "  \
    "AND h.stage_code = s.code AND h.metric = 'count' ORDER BY d.definition_id, s.ordinal"

typedef struct funnel_def {
    char *id;
    json_t *stages;
    long long age; /* ms since the newest change; -1 none */
} funnel_def_t;

typedef struct funnel_rows {
    funnel_def_t *d;
    int n;
} funnel_rows_t;

static json_t *opt_int(const ka_pgres_t *res, int row, int col)
{
    return ka_pgres_value(res, row, col) ? json_integer(ka_pgres_int(res, row, col, 0))
                                         : json_null();
}

static int read_funnel(void *ud, const ka_pgres_t *res)
{
    funnel_rows_t *f = ud;
    int rows = ka_pgres_rows(res);
    f->d = ka_calloc((size_t)rows + 1, sizeof *f->d);
    for (int i = 0; i < rows; i++) {
        const char *def = ka_pgres_value(res, i, 0);
        if (!f->n || strcmp(f->d[f->n - 1].id, def) != 0) {
            funnel_def_t *d = &f->d[f->n++];
            d->id = ka_strdup(def);
            d->stages = json_array();
            d->age = -1;
            if (ka_pgres_value(res, i, 7)) {
                long long age = ka_pgres_int(res, i, 7, 0);
                d->age = age < 0 ? 0 : age;
            }
        }
        if (!ka_pgres_value(res, i, 1))
            continue; /* no open stage */
        json_t *health = ka_pgres_value(res, i, 8)
                             ? json_pack("{s:s,s:o,s:o}", "status", ka_pgres_value(res, i, 8),
                                         "ratio_bp", opt_int(res, i, 9), "baseline",
                                         opt_int(res, i, 10))
                             : json_null();
        json_array_append_new(
            f->d[f->n - 1].stages,
            json_pack("{s:s,s:s,s:i,s:I,s:I,s:I,s:o}", "code", ka_pgres_value(res, i, 1), "name",
                      ka_pgres_value(res, i, 2), "win_probability_bp",
                      (int)ka_pgres_int(res, i, 3, 0), "count",
                      (json_int_t)ka_pgres_int(res, i, 4, 0), "amount_minor",
                      (json_int_t)ka_pgres_int(res, i, 5, 0), "weighted_amount_minor",
                      (json_int_t)ka_pgres_int(res, i, 6, 0), "health", health));
    }
    return 0;
}

static json_t *find_stage(json_t *arr, const char *code)
{
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s) if (strcmp(json_string_value(json_object_get(s, "code")), code)
                                      == 0) return s;
    return NULL;
}

static void from_redis(void *ud, const char *field, const char *value)
{
    json_t *arr = ud;
    char code[32];
    const char *colon = strchr(field, ':');
    if (!colon || (size_t)(colon - field) >= sizeof code)
        return;
    memcpy(code, field, (size_t)(colon - field));
    code[colon - field] = '\0';
    json_t *s = find_stage(arr, code);
    if (!s)
        return;
    const char *what = strcmp(colon + 1, "count") == 0      ? "count"
                       : strcmp(colon + 1, "amount") == 0   ? "amount_minor"
                       : strcmp(colon + 1, "weighted") == 0 ? "weighted_amount_minor"
                                                            : NULL;
    if (what)
        json_object_set_new(s, what, json_integer(strtoll(value, NULL, 10)));
}

/* The cache is used only once a worker built it from PostgreSQL. */
static int redis_warm(api_req_t *r)
{
    char err[KA_ERRSTR_SIZE], *marker = NULL;
    ka_redis_t *rds = api_redis(r);
    if (!rds || ka_redis_get(rds, KA_REDIS_FUNNEL_READY, &marker, NULL, err, sizeof err) != KA_OK)
        return 0;
    int warm = marker != NULL;
    free(marker);
    return warm;
}

/* The stages' figures from the cache's hash alone (a field it lacks is 0).
 * NULL when Redis fails. */
static json_t *cached_stages(api_req_t *r, const char *node, const funnel_def_t *d)
{
    char err[KA_ERRSTR_SIZE], key[256];
    json_t *arr = json_deep_copy(d->stages);
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s)
    {
        json_object_set_new(s, "count", json_integer(0));
        json_object_set_new(s, "amount_minor", json_integer(0));
        json_object_set_new(s, "weighted_amount_minor", json_integer(0));
    }
    snprintf(key, sizeof key, KA_REDIS_FUNNEL_KEY_FMT, node, d->id);
    ka_redis_t *rds = api_redis(r);
    if (rds && ka_redis_hgetall(rds, key, from_redis, arr, err, sizeof err) == KA_OK)
        return arr;
    json_decref(arr);
    return NULL;
}

int api_node_funnel(api_req_t *r, const char *node)
{
    const char *def = api_arg(r, "definition");
    if (def) {
        if (!api_arg_id(r, "definition", def))
            return 0;
        ka_pg_param_t p = {def, 0, 0};
        json_t *v = api_pg_json(r, "SELECT to_json(EXISTS (SELECT 1 FROM funnel_definition "
                                   "WHERE id = $1))", 1, &p);
        if (!v)
            return 0;
        int exists = json_is_true(v);
        json_decref(v);
        if (!exists)
            return api_error(r, 404, "not_found", "no such funnel definition", "definition");
    }
    funnel_rows_t f = {NULL, 0};
    ka_pg_param_t p[2] = {{node, 0, 0}, {def, 0, 0}};
    if (!api_pg_rows(r, SQL_FUNNEL_AT_NODE, 2, p, read_funnel, &f)) {
        free(f.d);
        return 0;
    }
    int warm = f.n && redis_warm(r);
    json_t **cached = ka_calloc((size_t)f.n + 1, sizeof *cached);
    for (int d = 0; d < f.n && warm; d++)
        if (!(cached[d] = cached_stages(r, node, &f.d[d])))
            warm = 0; /* all from PostgreSQL then, one source per answer */
    json_t *list = json_array();
    long long age = -1;
    for (int d = 0; d < f.n; d++) {
        json_t *stages = warm ? json_incref(cached[d]) : json_incref(f.d[d].stages);
        if (!warm && f.d[d].age >= 0 && (age < 0 || f.d[d].age < age))
            age = f.d[d].age;
        long long tc = 0, ta = 0, tw = 0;
        size_t i;
        json_t *s;
        json_array_foreach(stages, i, s)
        {
            tc += json_integer_value(json_object_get(s, "count"));
            ta += json_integer_value(json_object_get(s, "amount_minor"));
            tw += json_integer_value(json_object_get(s, "weighted_amount_minor"));
        }
        json_array_append_new(
            list, json_pack("{s:s,s:o,s:{s:I,s:I,s:I}}", "definition_id", f.d[d].id, "stages",
                            stages, "open", "count", (json_int_t)tc, "amount_minor",
                            (json_int_t)ta, "weighted_amount_minor", (json_int_t)tw));
    }
    for (int d = 0; d < f.n; d++) {
        json_decref(cached[d]);
        json_decref(f.d[d].stages);
        free(f.d[d].id);
    }
    free(cached);
    free(f.d);
    json_decref(r->body);
    r->body = json_pack("{s:s,s:o}", "node", node, "definitions", list);
    /* Redis holds what the workers wrote after their last commit: live. */
    r->source = warm ? "redis" : "postgresql";
    r->age_ms = warm ? 0 : age;
    return 1;
}

/* The forecast -------------------------------------------------------------- */

#define MONEY_SET(p)                                                                           \
    "json_build_object('closed', " p "closed_minor, 'commit', " p "commit_minor, "             \
    "'best_case', " p "best_case_minor, 'pipeline', " p "pipeline_minor, "                     \
    "'weighted_pipeline', " p "weighted_pipeline_minor)"

int api_node_forecast(api_req_t *r, const char *node)
{
    const char *kind, *period = api_arg(r, "period"), *all;
    char start[16] = "", today[16];
    if (!api_arg_enum(r, "period_kind", "month|quarter", NULL, &kind) ||
        !api_arg_enum(r, "all", "true|false", "false", &all))
        return 0;
    if (period) {
        unsigned y = 0, m = 0, q = 0;
        char tail;
        if (strlen(period) == 7 && sscanf(period, "%4u-%2u%c", &y, &m, &tail) == 2 && m >= 1 &&
            m <= 12 && period[4] == '-') {
            if (kind && strcmp(kind, "month") != 0)
                return api_error(r, 400, "bad_parameter", "period YYYY-MM is a month",
                                 "period_kind");
            kind = "month";
            snprintf(start, sizeof start, "%04u-%02u-01", y, m);
        } else if (strlen(period) == 7 && sscanf(period, "%4u-Q%1u%c", &y, &q, &tail) == 2 &&
                   q >= 1 && q <= 4) {
            if (kind && strcmp(kind, "quarter") != 0)
                return api_error(r, 400, "bad_parameter", "period YYYY-Qn is a quarter",
                                 "period_kind");
            kind = "quarter";
            snprintf(start, sizeof start, "%04u-%02u-01", y, (q - 1) * 3 + 1);
        } else {
            return api_error(r, 400, "bad_parameter", "period must be YYYY-MM or YYYY-Qn",
                             "period");
        }
    }
    /* The workers' clock, so a drill with KA_CLOCK_OFFSET_MS sees its periods. */
    time_t now_s = (time_t)(ka_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&now_s, &tm);
    strftime(today, sizeof today, "%Y-%m-%d", &tm);
    ka_pg_param_t p[5] = {{node, 0, 0},
                          {kind, 0, 0},
                          {start[0] ? start : NULL, 0, 0},
                          {today, 0, 0},
                          {strcmp(all, "true") == 0 ? "t" : "f", 0, 0}};
    json_t *v = api_pg_json(
        r,
        "SELECT json_build_object('node', $1::text, 'periods', coalesce(json_agg(json_build_object("
        "'period_kind', f.period_kind, 'period_start', f.period_start, 'period_end', "
        "(" KA_SQL_PERIOD_END("f.period_kind", "f.period_start") " - 1), "
        "'label', CASE f.period_kind WHEN 'month' THEN to_char(f.period_start, 'YYYY-MM') "
        "ELSE to_char(f.period_start, 'YYYY-\"Q\"Q') END, "
        "'raw', " MONEY_SET("f.raw_") ", 'adjusted', " MONEY_SET("f.adj_") ", "
        "'quota_minor', f.quota_minor, "
        "'coverage_bp', json_build_object('raw', f.raw_coverage_bp, 'adjusted', f.adj_coverage_bp), "
        "'gap_minor', json_build_object('raw', f.raw_gap_minor, 'adjusted', f.adj_gap_minor), "
        "'revision', f.revision, 'submitted_at', f.submitted_at, 'submitted_by', f.submitted_by, "
        "'updated_at', f.updated_at, "
        "'adjustments', coalesce((SELECT json_agg(json_build_object('category', a.category, "
        "'raw_minor', a.raw_minor, 'adjusted_minor', a.adjusted_minor, 'reason', a.reason, "
        "'adjusted_by', a.adjusted_by, 'adjusted_at', a.adjusted_at) ORDER BY a.adjusted_at, a.id) "
        "FROM forecast_adjustment a WHERE a.node_id = f.node_id AND a.period_kind = f.period_kind "
        "AND a.period_start = f.period_start), '[]')) ORDER BY " KA_SQL_FORECAST_ORDER "), "
        "'[]'), '_age_ms', (extract(epoch FROM now() - max(f.updated_at)) * 1000)::bigint) "
        "FROM forecast f WHERE " KA_SQL_FORECAST_WHERE,
        5, p);
    if (!v)
        return 0;
    json_decref(r->body);
    r->body = v;
    r->source = "postgresql";
    return 1;
}

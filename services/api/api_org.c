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

typedef struct defs {
    char **ids;
    int n;
} defs_t;

static int read_defs(void *ud, const ka_pgres_t *res)
{
    defs_t *d = ud;
    d->ids = ka_calloc((size_t)ka_pgres_rows(res) + 1, sizeof *d->ids);
    for (int i = 0; i < ka_pgres_rows(res); i++)
        d->ids[d->n++] = ka_strdup(ka_pgres_value(res, i, 0));
    return 0;
}

typedef struct stages {
    json_t *arr;
    long long min_age; /* ms since the newest change; -1 none */
} stages_t;

static json_t *find_stage(json_t *arr, const char *code)
{
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s) if (strcmp(json_string_value(json_object_get(s, "code")), code)
                                      == 0) return s;
    return NULL;
}

static int read_stages(void *ud, const ka_pgres_t *res)
{
    stages_t *st = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++)
        json_array_append_new(
            st->arr, json_pack("{s:s,s:s,s:i,s:I,s:I,s:I,s:n}", "code", ka_pgres_value(res, i, 0),
                               "name", ka_pgres_value(res, i, 1), "win_probability_bp",
                               (int)ka_pgres_int(res, i, 2, 0), "count", (json_int_t)0,
                               "amount_minor", (json_int_t)0, "weighted_amount_minor",
                               (json_int_t)0, "health"));
    return 0;
}

static int read_figures(void *ud, const ka_pgres_t *res)
{
    stages_t *st = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        json_t *s = find_stage(st->arr, ka_pgres_value(res, i, 0));
        long long age = ka_pgres_int(res, i, 4, 0);
        if (st->min_age < 0 || age < st->min_age)
            st->min_age = age < 0 ? 0 : age;
        if (!s)
            continue;
        json_object_set_new(s, "count", json_integer(ka_pgres_int(res, i, 1, 0)));
        json_object_set_new(s, "amount_minor", json_integer(ka_pgres_int(res, i, 2, 0)));
        json_object_set_new(s, "weighted_amount_minor", json_integer(ka_pgres_int(res, i, 3, 0)));
    }
    return 0;
}

static int read_health(void *ud, const ka_pgres_t *res)
{
    stages_t *st = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        json_t *s = find_stage(st->arr, ka_pgres_value(res, i, 0));
        if (!s)
            continue;
        json_t *h = json_pack("{s:s,s:o,s:o}", "status", ka_pgres_value(res, i, 1), "ratio_bp",
                              ka_pgres_value(res, i, 2) ? json_integer(ka_pgres_int(res, i, 2, 0))
                                                        : json_null(),
                              "baseline", ka_pgres_value(res, i, 3)
                                              ? json_integer(ka_pgres_int(res, i, 3, 0))
                                              : json_null());
        json_object_set_new(s, "health", h);
    }
    return 0;
}

static void from_redis(void *ud, const char *field, const char *value)
{
    stages_t *st = ud;
    char code[32];
    const char *colon = strchr(field, ':');
    if (!colon || (size_t)(colon - field) >= sizeof code)
        return;
    memcpy(code, field, (size_t)(colon - field));
    code[colon - field] = '\0';
    json_t *s = find_stage(st->arr, code);
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

int api_node_funnel(api_req_t *r, const char *node)
{
    char err[KA_ERRSTR_SIZE];
    const char *def = api_arg(r, "definition");
    defs_t defs = {NULL, 0};
    int ok = 0;
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
        defs.ids = ka_calloc(1, sizeof *defs.ids);
        defs.ids[defs.n++] = ka_strdup(def);
    } else {
        ka_pg_param_t p = {node, 0, 0};
        if (!api_pg_rows(r, KA_SQL_FUNNEL_DEFINITIONS, 1, &p, read_defs, &defs))
            goto out;
    }
    int warm = redis_warm(r);
    json_t *list = json_array();
    long long age = -1;
    for (int d = 0; d < defs.n; d++) {
        stages_t st = {json_array(), -1};
        ka_pg_param_t p1 = {defs.ids[d], 0, 0};
        ka_pg_param_t p2[2] = {{node, 0, 0}, {defs.ids[d], 0, 0}};
        int got = api_pg_rows(r, KA_SQL_FUNNEL_STAGES, 1, &p1, read_stages, &st);
        int cached = 0;
        if (got && warm) {
            char key[256];
            snprintf(key, sizeof key, KA_REDIS_FUNNEL_KEY_FMT, node, defs.ids[d]);
            ka_redis_t *rds = api_redis(r);
            cached = rds && ka_redis_hgetall(rds, key, from_redis, &st, err, sizeof err) == KA_OK;
            if (!cached)
                warm = 0;
        }
        if (got && !cached)
            got = api_pg_rows(r, KA_SQL_FUNNEL_FIGURES, 2, p2, read_figures, &st);
        if (got)
            got = api_pg_rows(r, KA_SQL_FUNNEL_HEALTH, 2, p2, read_health, &st);
        if (!got) {
            json_decref(st.arr);
            json_decref(list);
            goto out;
        }
        if (!cached && st.min_age >= 0 && (age < 0 || st.min_age < age))
            age = st.min_age;
        long long tc = 0, ta = 0, tw = 0;
        size_t i;
        json_t *s;
        json_array_foreach(st.arr, i, s)
        {
            tc += json_integer_value(json_object_get(s, "count"));
            ta += json_integer_value(json_object_get(s, "amount_minor"));
            tw += json_integer_value(json_object_get(s, "weighted_amount_minor"));
        }
        json_array_append_new(
            list, json_pack("{s:s,s:o,s:{s:I,s:I,s:I}}", "definition_id", defs.ids[d], "stages",
                            st.arr, "open", "count", (json_int_t)tc, "amount_minor",
                            (json_int_t)ta, "weighted_amount_minor", (json_int_t)tw));
    }
    json_decref(r->body);
    r->body = json_pack("{s:s,s:o}", "node", node, "definitions", list);
    /* Redis holds what the workers wrote after their last commit: live. */
    r->source = warm && defs.n ? "redis" : "postgresql";
    r->age_ms = warm && defs.n ? 0 : (age < 0 ? -1 : age);
    ok = 1;
out:
    for (int i = 0; i < defs.n; i++)
        free(defs.ids[i]);
    free(defs.ids);
    return ok;
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

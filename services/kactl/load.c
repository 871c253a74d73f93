/* kactl load KIND FILE.csv: reference data into PostgreSQL (DOMAIN.md
 * section 1). The whole file is checked first and every problem is reported
 * as FILE:LINE: field NAME: what is wrong (a bad value, a row that repeats
 * another's key, an id the database does not know); nothing is written
 * unless all rows are good. A good file is written in one transaction, as
 * one upsert of array parameters (no round trip per row), so loading a file
 * twice changes nothing, and running workers are told with NOTIFY. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csvfile.h"
#include "ka_buf.h"
#include "ka_pg.h"
#include "ka_validate.h"
#include "kactl.h"
#include "reorg.h"

#define MAX_COLS 10
#define MAX_PROBLEMS 20

typedef enum { COL_ID, COL_TEXT, COL_INT, COL_DATE, COL_ENUM, COL_BOOL, COL_REGION } col_type_t;

/* A column naming a row of another table, checked before anything is
 * written so the problem is reported by line rather than as a foreign key
 * violation. */
typedef struct ref {
    const char *sql;  /* $1 text[]: returns the values the table does not have */
    const char *what; /* for the message: no <what> "X" */
    const char *fix;  /* how to get it there */
} ref_t;

static const ref_t ref_distributor = {
    "SELECT DISTINCT v FROM unnest($1::text[]) AS v "
    "WHERE NOT EXISTS (SELECT 1 FROM distributor d WHERE d.id = v)",
    "distributor", "load it first: kactl load distributors FILE.csv"};

static const ref_t ref_product = {
    "SELECT DISTINCT v FROM unnest($1::text[]) AS v "
    "WHERE NOT EXISTS (SELECT 1 FROM product p WHERE p.sku = v)",
    "product", "load it first: kactl load products FILE.csv"};

typedef struct col {
    const char *name;
    col_type_t type;
    int required;
    const char *choices; /* COL_ENUM: space-separated */
    const char *cast;    /* SQL type of its array */
    const ref_t *ref;    /* NULL: a value of its own */
} col_t;

typedef struct kind {
    const char *name;
    const char *file; /* in the sample folder */
    const char *notify;
    col_t cols[MAX_COLS];
    /* Optional data-modifying CTE run in the same statement as the upsert
     * (a parent table, or rows the file no longer lists); it must be named
     * "pre" and return one row per changed row. */
    const char *pre;
    const char *upsert; /* $1.. are the columns' arrays, in order */
    const char *doc;
    const char *key; /* space-separated columns no two rows may share */
} kind_t;

/* Ship-to region codes (orders' ship_to_region, distributors' territories):
 * the province-level codes of ISO 3166-2:CN, listed by area as a sales
 * organisation in China groups them. */
static const struct region {
    const char *area, *code, *name;
} regions[] = {
    {"华北", "CN-BJ", "北京"},   {"华北", "CN-TJ", "天津"}, {"华北", "CN-HE", "河北"},
    {"华北", "CN-SX", "山西"},   {"华北", "CN-NM", "内蒙古"}, {"东北", "CN-LN", "辽宁"},
    {"东北", "CN-JL", "吉林"},   {"东北", "CN-HL", "黑龙江"}, {"华东", "CN-SH", "上海"},
    {"华东", "CN-JS", "江苏"},   {"华东", "CN-ZJ", "浙江"}, {"华东", "CN-AH", "安徽"},
    {"华东", "CN-FJ", "福建"},   {"华东", "CN-JX", "江西"}, {"华东", "CN-SD", "山东"},
    {"华东", "CN-TW", "台湾"},
    {"华中", "CN-HA", "河南"},   {"华中", "CN-HB", "湖北"}, {"华中", "CN-HN", "湖南"},
    {"华南", "CN-GD", "广东"},   {"华南", "CN-GX", "广西"}, {"华南", "CN-HI", "海南"},
    {"华南", "CN-HK", "香港"},   {"华南", "CN-MO", "澳门"}, {"西南", "CN-CQ", "重庆"},
    {"西南", "CN-SC", "四川"},   {"西南", "CN-GZ", "贵州"}, {"西南", "CN-YN", "云南"},
    {"西南", "CN-XZ", "西藏"},   {"西北", "CN-SN", "陕西"}, {"西北", "CN-GS", "甘肃"},
    {"西北", "CN-QH", "青海"},   {"西北", "CN-NX", "宁夏"}, {"西北", "CN-XJ", "新疆"},
};

#define NREGIONS (sizeof regions / sizeof regions[0])

static int is_region(const char *v)
{
    for (size_t i = 0; i < NREGIONS; i++)
        if (strcmp(regions[i].code, v) == 0)
            return 1;
    return 0;
}

/* Two lines per area: "  华东  CN-SH 上海, CN-JS 江苏, ..." */
static void print_regions(FILE *out)
{
    fprintf(out, "region codes (ISO 3166-2:CN, province level):\n");
    for (size_t i = 0; i < NREGIONS; i++) {
        int first = i == 0 || strcmp(regions[i - 1].area, regions[i].area) != 0;
        int last = i + 1 == NREGIONS || strcmp(regions[i + 1].area, regions[i].area) != 0;
        if (first)
            fprintf(out, "  %s  ", regions[i].area);
        fprintf(out, "%s %s%s", regions[i].code, regions[i].name, last ? "\n" : ", ");
    }
}

static const kind_t kinds[] = {
    {"users", "users.csv", "user",
     {{"id", COL_ID, 1, NULL, "text", NULL},
      {"display_name", COL_TEXT, 1, NULL, "text", NULL},
      {"email", COL_TEXT, 0, NULL, "text", NULL}},
     NULL,
     "INSERT INTO app_user (id, display_name, email) SELECT * FROM unnest($1::text[], "
     "$2::text[], $3::text[]) ON CONFLICT (id) DO UPDATE SET display_name = "
     "EXCLUDED.display_name, email = EXCLUDED.email, updated_at = now() "
     "WHERE (app_user.display_name, app_user.email) IS DISTINCT FROM "
     "(EXCLUDED.display_name, EXCLUDED.email)",
     "managers and other users: id,display_name,email", "id"},
    {"funnels", "funnels.csv", "funnel",
     {{"definition_id", COL_ID, 1, NULL, "text", NULL},
      {"definition_name", COL_TEXT, 1, NULL, "text", NULL},
      {"code", COL_ID, 1, NULL, "text", NULL},
      {"ordinal", COL_INT, 1, NULL, "smallint", NULL},
      {"name", COL_TEXT, 1, NULL, "text", NULL},
      {"win_probability_bp", COL_INT, 1, NULL, "integer", NULL},
      {"default_category", COL_ENUM, 1, "pipeline best_case commit closed omitted", "text", NULL},
      {"max_dwell_days", COL_INT, 0, NULL, "integer", NULL},
      {"is_won", COL_BOOL, 1, NULL, "boolean", NULL},
      {"is_lost", COL_BOOL, 1, NULL, "boolean", NULL}},
     /* A definition's name comes from its first row; the stages follow. */
     "pre AS (INSERT INTO funnel_definition (id, name) SELECT DISTINCT ON (d) d, n FROM "
     "unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(d, n, i) ORDER BY d, i "
     "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, updated_at = now() "
     "WHERE funnel_definition.name <> EXCLUDED.name RETURNING 1)",
     "INSERT INTO funnel_stage (definition_id, code, ordinal, name, win_probability_bp, "
     "default_category, max_dwell_days, is_won, is_lost) SELECT * FROM unnest($1::text[], "
     "$3::text[], $4::smallint[], $5::text[], $6::integer[], $7::text[], $8::integer[], "
     "$9::boolean[], $10::boolean[]) ON CONFLICT (definition_id, code) DO UPDATE SET "
     "ordinal = EXCLUDED.ordinal, name = EXCLUDED.name, win_probability_bp = "
     "EXCLUDED.win_probability_bp, default_category = EXCLUDED.default_category, "
     "max_dwell_days = EXCLUDED.max_dwell_days, is_won = EXCLUDED.is_won, is_lost = "
     "EXCLUDED.is_lost, updated_at = now() WHERE (funnel_stage.ordinal, funnel_stage.name, "
     "funnel_stage.win_probability_bp, funnel_stage.default_category, "
     "funnel_stage.max_dwell_days, funnel_stage.is_won, funnel_stage.is_lost) IS DISTINCT "
     "FROM (EXCLUDED.ordinal, EXCLUDED.name, EXCLUDED.win_probability_bp, "
     "EXCLUDED.default_category, EXCLUDED.max_dwell_days, EXCLUDED.is_won, EXCLUDED.is_lost)",
     "funnel definitions, a row per stage: definition_id,definition_name,code,ordinal,name,"
     "win_probability_bp (0-10000),default_category (pipeline|best_case|commit|closed|"
     "omitted),max_dwell_days (empty: no limit),is_won,is_lost (true|false); stages are "
     "added or changed, never removed", "definition_id code"},
    {"business-units", "business_units.csv", "business_unit",
     {{"id", COL_ID, 1, NULL, "text", NULL},
      {"name", COL_TEXT, 1, NULL, "text", NULL},
      {"definition_id", COL_ID, 1, NULL, "text", NULL}},
     NULL,
     "INSERT INTO business_unit (id, name, definition_id) SELECT * FROM unnest($1::text[], "
     "$2::text[], $3::text[]) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
     "definition_id = EXCLUDED.definition_id, updated_at = now() "
     "WHERE (business_unit.name, business_unit.definition_id) IS DISTINCT FROM "
     "(EXCLUDED.name, EXCLUDED.definition_id)",
     "business units and their funnel: id,name,definition_id (default-8, project-6, ...)",
     "id"},
    {"org", "org.csv", "org",
     {{"id", COL_ID, 1, NULL, "text", NULL},
      {"parent_id", COL_ID, 0, NULL, "text", NULL},
      {"kind", COL_ENUM, 1, "company division region team rep", "text", NULL},
      {"name", COL_TEXT, 1, NULL, "text", NULL},
      {"manager_user_id", COL_ID, 0, NULL, "text", NULL},
      {"business_unit_id", COL_ID, 0, NULL, "text", NULL}},
     NULL,
     "INSERT INTO org_node (id, parent_id, kind, name, manager_user_id, business_unit_id) "
     "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
     "$6::text[]) ON CONFLICT (id) DO UPDATE SET parent_id = EXCLUDED.parent_id, "
     "kind = EXCLUDED.kind, name = EXCLUDED.name, manager_user_id = EXCLUDED.manager_user_id, "
     "business_unit_id = EXCLUDED.business_unit_id, updated_at = now() "
     "WHERE (org_node.parent_id, org_node.kind, org_node.name, org_node.manager_user_id, "
     "org_node.business_unit_id) IS DISTINCT FROM (EXCLUDED.parent_id, EXCLUDED.kind, "
     "EXCLUDED.name, EXCLUDED.manager_user_id, EXCLUDED.business_unit_id)",
     "the org tree: id,parent_id,kind (company|division|region|team|rep),name,"
     "manager_user_id,business_unit_id (divisions only); rows in any order", "id"},
    {"products", "products.csv", "product",
     {{"sku", COL_ID, 1, NULL, "text", NULL},
      {"name", COL_TEXT, 1, NULL, "text", NULL},
      {"unit", COL_TEXT, 1, NULL, "text", NULL}},
     NULL,
     "INSERT INTO product (sku, name, unit) SELECT * FROM unnest($1::text[], $2::text[], "
     "$3::text[]) ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, unit = EXCLUDED.unit, "
     "updated_at = now() WHERE (product.name, product.unit) IS DISTINCT FROM "
     "(EXCLUDED.name, EXCLUDED.unit)",
     "products: sku,name,unit", "sku"},
    {"quotas", "quotas.csv", "quota",
     {{"node_id", COL_ID, 1, NULL, "text", NULL},
      {"period_kind", COL_ENUM, 1, "month quarter", "text", NULL},
      {"period_start", COL_DATE, 1, NULL, "date", NULL},
      {"amount_minor", COL_INT, 1, NULL, "bigint", NULL}},
     NULL,
     "INSERT INTO quota (node_id, period_kind, period_start, amount_minor) SELECT * FROM "
     "unnest($1::text[], $2::text[], $3::date[], $4::bigint[]) ON CONFLICT (node_id, "
     "period_kind, period_start) DO UPDATE SET amount_minor = EXCLUDED.amount_minor, "
     "updated_at = now() WHERE quota.amount_minor <> EXCLUDED.amount_minor",
     "quotas: node_id,period_kind (month|quarter),period_start (first day),amount_minor; "
     "a new or changed quota reaches the running forecast worker's figures within seconds",
     "node_id period_kind period_start"},
    {"baselines", "baselines.csv", "baseline",
     {{"node_id", COL_ID, 1, NULL, "text", NULL},
      {"definition_id", COL_ID, 1, NULL, "text", NULL},
      {"stage_code", COL_ID, 1, NULL, "text", NULL},
      {"metric", COL_ENUM, 1, "count amount", "text", NULL},
      {"value", COL_INT, 1, NULL, "bigint", NULL},
      {"valid_from", COL_DATE, 1, NULL, "date", NULL},
      {"valid_to", COL_DATE, 1, NULL, "date", NULL}},
     NULL,
     "INSERT INTO funnel_baseline (node_id, definition_id, stage_code, metric, value, source, "
     "valid_from, valid_to) SELECT b.n, b.d, b.s, b.m, b.v, 'explicit', b.f, b.t FROM "
     "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::date[], "
     "$7::date[]) AS b(n, d, s, m, v, f, t) ON CONFLICT (node_id, definition_id, stage_code, "
     "metric, source, valid_from) DO UPDATE SET value = EXCLUDED.value, "
     "valid_to = EXCLUDED.valid_to, updated_at = now() WHERE (funnel_baseline.value, "
     "funnel_baseline.valid_to) IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.valid_to)",
     "explicit funnel baselines: node_id,definition_id,stage_code,metric (count|amount),"
     "value,valid_from,valid_to (exclusive)", "node_id definition_id stage_code metric valid_from"},
    {"distributors", "distributors.csv", "distributor",
     {{"id", COL_ID, 1, NULL, "text", NULL}, {"name", COL_TEXT, 1, NULL, "text", NULL}},
     NULL,
     "INSERT INTO distributor (id, name) SELECT * FROM unnest($1::text[], $2::text[]) "
     "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, updated_at = now() "
     "WHERE distributor.name <> EXCLUDED.name",
     "distributors (经销商): id,name; orders of a distributor not loaded are not checked "
     "for 窜货 or 压价",
     "id"},
    /* A file is the whole territory of each distributor it names: the
     * regions it no longer lists are withdrawn in the same statement. */
    {"territories", "territories.csv", "distributor_territory",
     {{"distributor_id", COL_ID, 1, NULL, "text", &ref_distributor},
      {"region_code", COL_REGION, 1, NULL, "text", NULL}},
     "pre AS (DELETE FROM distributor_territory t WHERE t.distributor_id = ANY($1::text[]) "
     "AND NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS f(d, r) "
     "WHERE f.d = t.distributor_id AND f.r = t.region_code) RETURNING 1)",
     "INSERT INTO distributor_territory (distributor_id, region_code) SELECT * FROM "
     "unnest($1::text[], $2::text[]) ON CONFLICT (distributor_id, region_code) DO NOTHING",
     "the ship-to regions each distributor is authorized for: distributor_id,region_code "
     "(codes below); an order shipped elsewhere is 窜货 (channel diversion). A file is the "
     "whole territory of every distributor it names: a region it no longer lists is "
     "withdrawn; a distributor with no territory on file is not checked",
     "distributor_id region_code"},
    /* Likewise the whole price list of each distributor it names. */
    {"floor-prices", "floor_prices.csv", "distributor_floor_price",
     {{"distributor_id", COL_ID, 1, NULL, "text", &ref_distributor},
      {"sku", COL_ID, 1, NULL, "text", &ref_product},
      {"floor_price_minor", COL_INT, 1, NULL, "bigint", NULL}},
     "pre AS (DELETE FROM distributor_floor_price p WHERE p.distributor_id = ANY($1::text[]) "
     "AND NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[]) AS f(d, s) "
     "WHERE f.d = p.distributor_id AND f.s = p.sku) RETURNING 1)",
     "INSERT INTO distributor_floor_price (distributor_id, sku, floor_price_minor) "
     "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) "
     "ON CONFLICT (distributor_id, sku) DO UPDATE SET floor_price_minor = "
     "EXCLUDED.floor_price_minor, updated_at = now() "
     "WHERE distributor_floor_price.floor_price_minor <> EXCLUDED.floor_price_minor",
     "the lowest unit price (最低限价, minor units) each distributor may sell a product at: "
     "distributor_id,sku,floor_price_minor; a line priced under it is 压价 (price dumping). "
     "A file is the whole price list of every distributor it names: a sku it no longer "
     "lists has no floor any more",
     "distributor_id sku"},
};

#define NKINDS (sizeof kinds / sizeof kinds[0])

typedef struct problems {
    int n;
    const char *path;
} problems_t;

static void problem(problems_t *p, int line, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(problems_t *p, int line, const char *field, const char *fmt, ...)
{
    va_list ap;
    if (p->n++ >= MAX_PROBLEMS)
        return;
    if (field)
        fprintf(stderr, "%s:%d: field %s: ", p->path, line, field);
    else
        fprintf(stderr, "%s:%d: ", p->path, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int has_choice(const char *choices, const char *v)
{
    size_t len = strlen(v);
    for (const char *c = choices; *c;) {
        const char *sp = strchr(c, ' ');
        size_t n = sp ? (size_t)(sp - c) : strlen(c);
        if (n == len && strncmp(c, v, n) == 0)
            return 1;
        c += n + (sp ? 1 : 0);
    }
    return 0;
}

static void check_value(problems_t *p, int line, const col_t *c, const char *v)
{
    ka_reject_t rej;
    if (!*v) {
        if (c->required)
            problem(p, line, c->name, "is empty (it is required)");
        return;
    }
    switch (c->type) {
    case COL_ID:
        if (ka_check_id(&rej, c->name, v, KA_MAX_ID_LEN) != KA_OK)
            problem(p, line, c->name, "%s", rej.detail);
        break;
    case COL_TEXT:
        if (ka_check_text(&rej, c->name, v, 500) != KA_OK)
            problem(p, line, c->name, "%s", rej.detail);
        break;
    case COL_INT: {
        char *end;
        long long n = strtoll(v, &end, 10);
        if (*end || n < 0 || n > KA_MAX_AMOUNT_MINOR)
            problem(p, line, c->name, "\"%s\" is not a whole number from 0 to %lld", v,
                    KA_MAX_AMOUNT_MINOR);
        break;
    }
    case COL_DATE: {
        int y, m, d, used = 0;
        if (strlen(v) != 10 || sscanf(v, "%4d-%2d-%2d%n", &y, &m, &d, &used) != 3 || used != 10 ||
            m < 1 || m > 12 || d < 1 || d > 31)
            problem(p, line, c->name, "\"%s\" is not a YYYY-MM-DD date", v);
        break;
    }
    case COL_BOOL:
        if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0)
            problem(p, line, c->name, "\"%s\" is not true or false", v);
        break;
    case COL_ENUM:
        if (!has_choice(c->choices, v))
            problem(p, line, c->name, "\"%s\" is not one of: %s", v, c->choices);
        break;
    case COL_REGION:
        if (!is_region(v))
            problem(p, line, c->name, "\"%s\" is not a region code; use a province code of "
                    "ISO 3166-2:CN in upper case, such as CN-SH or CN-GD (kactl load territories "
                    "--help lists them)", v);
        break;
    }
}

/* Rows that repeat another row's key (k->key): the first one stands, each
 * repeat is a problem naming the line it repeats. */
typedef struct keyed {
    char *key;
    int line;
} keyed_t;

static int by_key(const void *a, const void *b)
{
    const keyed_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->line - y->line;
}

static void check_keys(problems_t *p, const kind_t *k, const csvfile_t *f, const int *map,
                       int ncols)
{
    int key[MAX_COLS], nkey = 0;
    char names[256] = "";
    for (const char *c = k->key; c && *c;) {
        size_t n = strcspn(c, " ");
        for (int i = 0; i < ncols; i++)
            if (strlen(k->cols[i].name) == n && strncmp(k->cols[i].name, c, n) == 0 &&
                nkey < MAX_COLS)
                key[nkey++] = i;
        c += n + (c[n] ? 1 : 0);
    }
    if (nkey == 0 || f->n < 3)
        return;
    for (int i = 0; i < nkey; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? "," : "",
                 k->cols[key[i]].name);
    int nrows = f->n - 1;
    keyed_t *rows = ka_calloc((size_t)nrows, sizeof *rows);
    for (int r = 0; r < nrows; r++) {
        ka_buf_t b = KA_BUF_INIT;
        for (int i = 0; i < nkey; i++) {
            int h = map[key[i]];
            ka_buf_printf(&b, "%s\x1f", h >= 0 ? f->records[r + 1].fields[h] : "");
        }
        rows[r].key = ka_strdup(ka_buf_str(&b));
        rows[r].line = f->records[r + 1].line;
        ka_buf_free(&b);
    }
    qsort(rows, (size_t)nrows, sizeof *rows, by_key);
    for (int r = 1, first = 0; r < nrows; r++) {
        if (strcmp(rows[r].key, rows[first].key) != 0) {
            first = r;
            continue;
        }
        problem(p, rows[r].line, k->cols[key[nkey - 1]].name, "repeats line %d (the same %s); "
                "keep one of the two rows", rows[first].line, names);
    }
    for (int r = 0; r < nrows; r++)
        free(rows[r].key);
    free(rows);
}

typedef struct missing {
    char **v;
    int n;
} missing_t;

static int read_missing(void *ud, const ka_pgres_t *res)
{
    missing_t *m = ud;
    m->n = ka_pgres_rows(res);
    m->v = ka_calloc((size_t)m->n + 1, sizeof *m->v);
    for (int i = 0; i < m->n; i++)
        m->v[i] = ka_strdup(ka_pgres_value(res, i, 0));
    return 0;
}

/* Values of reference columns the database does not have, by line. Returns
 * -1 with errstr when the database could not be asked. */
static int check_refs(problems_t *p, ka_pg_t *pg, const kind_t *k, const csvfile_t *f,
                      const int *map, int ncols, char *errstr, size_t errlen)
{
    for (int c = 0; c < ncols; c++) {
        if (!k->cols[c].ref || map[c] < 0)
            continue;
        ka_buf_t arr = KA_BUF_INIT;
        missing_t m = {NULL, 0};
        ka_buf_array_begin(&arr);
        for (int r = 1; r < f->n; r++)
            ka_buf_array_add(&arr, f->records[r].fields[map[c]]);
        ka_buf_array_end(&arr);
        ka_pg_param_t param = {ka_buf_str(&arr), 0, 0};
        ka_err_t rc = ka_pg_query(pg, k->cols[c].ref->sql, 1, &param, read_missing, &m, errstr,
                                  errlen);
        ka_buf_free(&arr);
        for (int r = 1; rc == KA_OK && m.n && r < f->n; r++) {
            const char *v = f->records[r].fields[map[c]];
            for (int i = 0; i < m.n; i++) {
                if (strcmp(m.v[i], v) == 0) {
                    problem(p, f->records[r].line, k->cols[c].name, "no %s \"%s\" in the "
                            "database; %s", k->cols[c].ref->what, v, k->cols[c].ref->fix);
                    break;
                }
            }
        }
        for (int i = 0; i < m.n; i++)
            free(m.v[i]);
        free(m.v);
        if (rc != KA_OK)
            return -1;
    }
    return 0;
}

static int org_rank(const char *kind)
{
    static const char *order[] = {"company", "division", "region", "team", "rep"};
    for (int i = 0; i < 5; i++)
        if (strcmp(order[i], kind) == 0)
            return i;
    return 5;
}

static int count_rows(void *ud, const ka_pgres_t *res)
{
    *(long long *)ud = ka_pgres_rows(res) ? ka_pgres_int(res, 0, 0, 0) : 0;
    return 0;
}

/* Loads one file of one kind; returns the exit code. */
static int load_file(const ka_config_t *cfg, const kind_t *k, const char *path)
{
    char err[KA_ERRSTR_SIZE];
    csvfile_t f;
    problems_t probs = {0, path};
    int map[MAX_COLS], ncols = 0, rc = 1;
    ka_buf_t arrays[MAX_COLS];
    int *order = NULL;
    ka_pg_t *pg = NULL;

    memset(arrays, 0, sizeof arrays);
    if (csvfile_read(path, &f, err, sizeof err) != 0) {
        fprintf(stderr, "kactl load %s: %s\n", k->name, err);
        return 1;
    }
    while (ncols < MAX_COLS && k->cols[ncols].name)
        ncols++;
    if (f.n == 0) {
        fprintf(stderr, "%s:1: the file is empty; expected a header line: ", path);
        for (int c = 0; c < ncols; c++)
            fprintf(stderr, "%s%s", c ? "," : "", k->cols[c].name);
        fputc('\n', stderr);
        csvfile_free(&f);
        return 1;
    }
    /* Columns by name, in any order. */
    for (int c = 0; c < ncols; c++)
        map[c] = -1;
    for (int h = 0; h < f.records[0].n; h++) {
        const char *name = f.records[0].fields[h];
        int found = 0;
        for (int c = 0; c < ncols; c++) {
            if (strcmp(k->cols[c].name, name) == 0) {
                map[c] = h;
                found = 1;
            }
        }
        if (!found)
            problem(&probs, f.records[0].line, name, "is not a column of %s (columns: see "
                    "kactl load %s --help)", k->name, k->name);
    }
    for (int c = 0; c < ncols; c++)
        if (map[c] < 0 && k->cols[c].required)
            problem(&probs, f.records[0].line, k->cols[c].name, "column is missing from the "
                    "header");
    int header_ok = probs.n == 0; /* rows are only checked against a good header */
    int shape_ok = header_ok;       /* and keys only when every row has every field */
    for (int r = 1; header_ok && r < f.n; r++) {
        csv_record_t *rec = &f.records[r];
        if (rec->n != f.records[0].n) {
            problem(&probs, rec->line, NULL, "has %d fields, the header has %d", rec->n,
                    f.records[0].n);
            shape_ok = 0;
        }
        for (int c = 0; c < ncols && rec->n == f.records[0].n; c++)
            check_value(&probs, rec->line, &k->cols[c], map[c] >= 0 ? rec->fields[map[c]] : "");
    }
    if (shape_ok)
        check_keys(&probs, k, &f, map, ncols);
    if (probs.n == 0) { /* ids of other tables, once every value is well-formed */
        pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
        if (!pg) {
            fprintf(stderr, "kactl load %s: %s\n", k->name, err);
            goto out;
        }
        if (check_refs(&probs, pg, k, &f, map, ncols, err, sizeof err) != 0) {
            fprintf(stderr, "kactl load %s: %s: nothing was written: %s\n", k->name, path, err);
            goto out;
        }
    }
    if (probs.n) {
        if (probs.n > MAX_PROBLEMS)
            fprintf(stderr, "%s: and %d more problems\n", path, probs.n - MAX_PROBLEMS);
        fprintf(stderr, "kactl load %s: nothing was written; fix the file and load it again\n",
                k->name);
        goto out;
    }
    /* The org tree goes in parents first, whatever the file's order. */
    int nrows = f.n - 1;
    order = ka_calloc((size_t)nrows + 1, sizeof *order);
    for (int i = 0; i < nrows; i++)
        order[i] = i + 1;
    if (strcmp(k->name, "org") == 0) {
        for (int i = 1; i < nrows; i++) { /* insertion sort: stable, small files */
            int v = order[i], j = i - 1;
            int rv = org_rank(f.records[v].fields[map[2]]);
            while (j >= 0 && org_rank(f.records[order[j]].fields[map[2]]) > rv) {
                order[j + 1] = order[j];
                j--;
            }
            order[j + 1] = v;
        }
    }
    ka_pg_param_t params[MAX_COLS];
    for (int c = 0; c < ncols; c++) {
        ka_buf_array_begin(&arrays[c]);
        for (int i = 0; i < nrows; i++) {
            const char *v = map[c] >= 0 ? f.records[order[i]].fields[map[c]] : "";
            ka_buf_array_add(&arrays[c], *v ? v : NULL);
        }
        ka_buf_array_end(&arrays[c]);
        params[c] = (ka_pg_param_t){ka_buf_str(&arrays[c]), 0, 0};
    }
    ka_buf_t sql = KA_BUF_INIT;
    if (k->pre)
        ka_buf_printf(&sql, "WITH %s, changed AS (%s RETURNING 1) SELECT (SELECT count(*) FROM "
                      "pre) + (SELECT count(*) FROM changed)", k->pre, k->upsert);
    else
        ka_buf_printf(&sql, "WITH changed AS (%s RETURNING 1) SELECT count(*) FROM changed",
                      k->upsert);
    long long changed = 0;
    ka_pg_param_t note = {k->notify, 0, 0};
    /* A moved node takes its figures to its new ancestors in this same
     * transaction (reorg.h); columns 0 and 1 of the org kind: id, parent_id. */
    int is_org = strcmp(k->name, "org") == 0;
    reorg_t ro = {0};
    if (ka_pg_exec(pg, "BEGIN", err, sizeof err) != KA_OK ||
        (is_org && reorg_begin(pg, params[0].value, params[1].value, &ro, err, sizeof err)) ||
        ka_pg_query(pg, ka_buf_str(&sql), ncols, params, count_rows, &changed, err,
                    sizeof err) != KA_OK ||
        (is_org && reorg_apply(pg, &ro, err, sizeof err)) ||
        ka_pg_query(pg, "SELECT ka_notify_reference_changed($1)", 1, &note, NULL, NULL, err,
                    sizeof err) != KA_OK ||
        ka_pg_exec(pg, "COMMIT", err, sizeof err) != KA_OK) {
        ka_pg_rollback(pg);
        fprintf(stderr, "kactl load %s: %s: nothing was written: %s\n", k->name, path, err);
    } else {
        printf("%-15s %6d rows, %lld new or changed (%s)\n", k->name, nrows, changed, path);
        reorg_cache(cfg, pg, &ro);
        rc = 0;
    }
    reorg_free(&ro);
    ka_buf_free(&sql);
out:
    for (int c = 0; c < ncols; c++)
        ka_buf_free(&arrays[c]);
    free(order);
    ka_pg_free(pg);
    csvfile_free(&f);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: kactl load KIND FILE.csv\n       kactl load sample [--dir DIR]\n\n"
                 "Loads reference data; the first line of a file names its columns (any order).\n"
                 "Every problem is reported as FILE:LINE: field NAME: ...; nothing is written\n"
                 "unless the whole file is good. Loading a file twice changes nothing.\n\n"
                 "kinds:\n");
    for (size_t i = 0; i < NKINDS; i++)
        fprintf(out, "  %-15s %s\n", kinds[i].name, kinds[i].doc);
    fprintf(out, "  %-15s the shipped sample company, all kinds in order (default DIR: %s)\n\n",
            "sample", KA_SAMPLE_DIR);
    print_regions(out);
}

int kactl_load(const ka_config_t *cfg, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "sample") == 0) {
        const char *dir = KA_SAMPLE_DIR;
        if (argc == 4 && strcmp(argv[2], "--dir") == 0)
            dir = argv[3];
        else if (argc != 2) {
            fprintf(stderr, "kactl load sample: takes only [--dir DIR]\n");
            return 2;
        }
        for (size_t i = 0; i < NKINDS; i++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, kinds[i].file);
            FILE *probe = fopen(path, "r");
            if (!probe)
                continue; /* a sample may leave a kind out */
            fclose(probe);
            int rc = load_file(cfg, &kinds[i], path);
            if (rc)
                return rc;
        }
        return 0;
    }
    for (size_t i = 0; i < NKINDS; i++) {
        if (strcmp(kinds[i].name, argv[1]) != 0)
            continue;
        if (argc == 3 && strcmp(argv[2], "--help") == 0) {
            printf("usage: kactl load %s FILE.csv\n\ncolumns: %s\n", kinds[i].name, kinds[i].doc);
            for (int c = 0; c < MAX_COLS && kinds[i].cols[c].name; c++)
                if (kinds[i].cols[c].type == COL_REGION) {
                    putchar('\n');
                    print_regions(stdout);
                    break;
                }
            return 0;
        }
        if (argc != 3) {
            fprintf(stderr, "kactl load %s: expects one file, e.g. kactl load %s %s\n",
                    kinds[i].name, kinds[i].name, kinds[i].file);
            return 2;
        }
        return load_file(cfg, &kinds[i], argv[2]);
    }
    fprintf(stderr, "kactl load: unknown kind \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}

/* The incremental forecast: marks in, projections and roll-ups out (see
 * forecast_recompute.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka_buf.h"
#include "ka_cols.h"
#include "ka_scan.h"
#include "forecast_gap.h"
#include "forecast_index.h"
#include "forecast_recompute.h"

#define RECOMPUTE_LOCK 4242015
#define ID_LEN (KA_MAX_ID_LEN + 1)
#define MAX_LEVEL 6 /* ka_org_kind_level: company 1 .. rep 5; 6: not in the org tree */

typedef struct conf {
    char kind[8], start[11], category[12];
    int64_t at_ms;
} conf_t;

typedef struct sku_qty {
    char sku[ID_LEN];
    int64_t qty_milli;
} sku_qty_t;

typedef struct fopp {
    char id[ID_LEN], owner[ID_LEN], status[8], close[11], stage_category[12], division[ID_LEN],
        closed_month[11];
    int exists;
    int64_t amount;
    int prob_bp;
    conf_t *confs;
    size_t nconfs;
    sku_qty_t *lines;
    size_t nlines;
    sku_qty_t *delivered; /* per sku, by booked orders naming it */
    size_t ndelivered;
    int had_projection, pushes;
    char old_close[11], pushes_quarter[11];
} fopp_t;

typedef struct fkey {
    char node[ID_LEN], kind[8], start[11];
    int level;
} fkey_t;

typedef struct pkey {
    char sku[ID_LEN], month[11], division[ID_LEN];
} pkey_t;

typedef struct work {
    fopp_t *opps;
    size_t nopps;
    fkey_t *keys;
    size_t nkeys;
    pkey_t *pkeys;
    size_t npkeys;
    char month_now[11], quarter_now[11];
    /* the rows of the current month and quarter the roll-ups changed, for
     * the gap rule (level unused) */
    fkey_t *changed;
    size_t nchanged;
    forecast_index_t opp_at, key_at, pkey_at; /* id / joined key -> index */
} work_t;

static void copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

void forecast_quarter_of(const char *month, char out[11])
{
    int y = 0, m = 1;
    if (sscanf(month, "%4d-%2d", &y, &m) != 2 || m < 1 || m > 12)
        m = 1;
    snprintf(out, 11, "%04d-%02d-01", y, (m - 1) / 3 * 3 + 1);
}

/* "a\x1fb\x1fc": the index's key of a triple (ids hold no control characters). */
static void join3(char *out, size_t len, const char *a, const char *b, const char *c)
{
    snprintf(out, len, "%s\x1f%s\x1f%s", a ? a : "", b ? b : "", c ? c : "");
}

static void add_key(work_t *w, const char *node, const char *kind, const char *start)
{
    char jk[3 * ID_LEN + 8];
    join3(jk, sizeof jk, node, kind, start);
    if (forecast_index_get(&w->key_at, jk) >= 0)
        return;
    forecast_index_put(&w->key_at, jk, (int)w->nkeys);
    w->keys = ka_realloc(w->keys, (w->nkeys + 1) * sizeof *w->keys);
    fkey_t *k = &w->keys[w->nkeys++];
    copy(k->node, sizeof k->node, node);
    copy(k->kind, sizeof k->kind, kind);
    copy(k->start, sizeof k->start, start);
    k->level = MAX_LEVEL;
}

static void add_pkey(work_t *w, const char *sku, const char *month, const char *division)
{
    char jk[3 * ID_LEN + 8];
    join3(jk, sizeof jk, sku, month, division);
    if (forecast_index_get(&w->pkey_at, jk) >= 0)
        return;
    forecast_index_put(&w->pkey_at, jk, (int)w->npkeys);
    w->pkeys = ka_realloc(w->pkeys, (w->npkeys + 1) * sizeof *w->pkeys);
    pkey_t *k = &w->pkeys[w->npkeys++];
    copy(k->sku, sizeof k->sku, sku);
    copy(k->month, sizeof k->month, month);
    copy(k->division, sizeof k->division, division);
}

static fopp_t *find_opp(work_t *w, const char *id)
{
    int i = forecast_index_get(&w->opp_at, id ? id : "");
    return i >= 0 ? &w->opps[i] : NULL;
}

static void free_work(work_t *w)
{
    for (size_t i = 0; i < w->nopps; i++) {
        free(w->opps[i].confs);
        free(w->opps[i].lines);
        free(w->opps[i].delivered);
    }
    free(w->opps);
    free(w->keys);
    free(w->pkeys);
    free(w->changed);
    forecast_index_free(&w->opp_at);
    forecast_index_free(&w->key_at);
    forecast_index_free(&w->pkey_at);
    memset(w, 0, sizeof *w);
}

/* Statements ---------------------------------------------------------------- */

#define MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"
#define CATEGORY_ADJ(cat, raw)                                                                   \
    "coalesce((SELECT a.adjusted_minor FROM forecast_adjustment a WHERE a.node_id = r.node "   \
    "AND a.period_kind = r.kind AND a.period_start = r.start AND a.category = '" cat "' "        \
    "ORDER BY a.adjusted_at DESC, a.id DESC LIMIT 1), r." raw ")"

static const char *statements[][2] = {
    {"forecast_take",
     "DELETE FROM forecast_dirty WHERE id IN (SELECT id FROM forecast_dirty ORDER BY id "
     "LIMIT $1::int) RETURNING opportunity_id, node_id, period_kind, period_start::text"},
    {"forecast_opps",
     "SELECT o.id, o.owner_rep_id, o.status, o.expected_close_date::text, o.amount_minor, "
     "o.win_probability_bp, s.default_category, "
     "(SELECT c.ancestor_id FROM org_closure c JOIN org_node n ON n.id = c.ancestor_id "
     "WHERE c.descendant_id = o.owner_rep_id AND n.kind = 'division' LIMIT 1), "
     "to_char(date_trunc('month', o.closed_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') "
     "FROM opportunity o LEFT JOIN funnel_stage s ON s.definition_id = o.definition_id "
     "AND s.code = o.stage_code WHERE o.id = ANY($1::text[])"},
    /* 商机确认 counts for the owner who confirmed, while they own the deal:
     * after a reassignment, only the new owner's confirmations. */
    {"forecast_confirmations",
     "SELECT c.opportunity_id, c.period_kind, c.period_start::text, c.category, "
     MS("c.confirmed_at") " FROM forecast_confirmation c JOIN opportunity o "
     "ON o.id = c.opportunity_id AND o.owner_rep_id = c.owner_rep_id "
     "WHERE c.opportunity_id = ANY($1::text[])"},
    /* What booked orders naming a deal delivered of it, per sku. */
    {"forecast_delivered",
     "SELECT s.opportunity_id, l.sku, round(sum(l.quantity) * 1000)::bigint FROM sales_order s "
     "JOIN sales_order_line l ON l.order_id = s.id WHERE s.opportunity_id = ANY($1::text[]) "
     "AND s.status = 'booked' GROUP BY 1, 2"},
    /* The month rolled over: deals with demand in a month now past (open
     * overdue, won not delivered) are projected again, into this month. */
    {"forecast_remark_past",
     "INSERT INTO forecast_dirty (opportunity_id) SELECT DISTINCT opportunity_id "
     "FROM planning_line WHERE period_month < $1::date"},
    {"forecast_opp_lines",
     "SELECT opportunity_id, sku, (quantity * 1000)::bigint FROM opportunity_line "
     "WHERE opportunity_id IN (SELECT unnest($1::text[])) ORDER BY opportunity_id, line_no"},
    {"forecast_old_projection",
     "SELECT opportunity_id, expected_close_date::text, pushes, pushes_quarter::text "
     "FROM forecast_opportunity WHERE opportunity_id IN (SELECT unnest($1::text[]))"},
    /* Semi-joins on the id array, not `= ANY`: these tables start empty and
     * autovacuum analyzes them about once a minute, so the cached generic plan
     * of `= ANY` (costed for 10 ids) was a sequential scan comparing every row
     * with every id of the batch, ~0.1 s a call in a backlog (issue 17). A
     * join on unnest is a hash join there and index probes once analyzed. */
    {"forecast_old_lines",
     "SELECT owner_rep_id, period_kind, period_start::text FROM forecast_line "
     "WHERE opportunity_id IN (SELECT unnest($1::text[]))"},
    {"forecast_old_planning",
     "SELECT sku, period_month::text, division_node_id FROM planning_line "
     "WHERE opportunity_id IN (SELECT unnest($1::text[]))"},
    {"forecast_lines_clear",
     "DELETE FROM forecast_line WHERE opportunity_id IN (SELECT unnest($1::text[]))"},
    {"forecast_lines_insert",
     "INSERT INTO forecast_line (opportunity_id, period_kind, period_start, owner_rep_id, "
     "category, amount_minor, weighted_minor) SELECT * FROM unnest($1::text[], $2::text[], "
     "$3::date[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])"},
    {"forecast_planning_clear",
     "DELETE FROM planning_line WHERE opportunity_id IN (SELECT unnest($1::text[]))"},
    /* Quantities in thousandths; probabilities in basis points. */
    {"forecast_planning_insert",
     "INSERT INTO planning_line (opportunity_id, sku, period_month, division_node_id, "
     "weighted_quantity, committed_quantity) SELECT p.opp, p.sku, p.month, p.division, "
     "sum(round(p.qty * p.prob / 10000000.0, 4)), sum(p.committed / 1000.0) "
     "FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::bigint[], $6::int[], "
     "$7::bigint[]) AS p(opp, sku, month, division, qty, prob, committed) GROUP BY 1, 2, 3, 4"},
    {"forecast_projection_upsert",
     "INSERT INTO forecast_opportunity AS f (opportunity_id, owner_rep_id, status, "
     "expected_close_date, pushes, pushes_quarter) SELECT * FROM unnest($1::text[], $2::text[], "
     "$3::text[], $4::date[], $5::int[], $6::date[]) "
     "ON CONFLICT (opportunity_id) DO UPDATE SET owner_rep_id = EXCLUDED.owner_rep_id, "
     "status = EXCLUDED.status, expected_close_date = EXCLUDED.expected_close_date, "
     "pushes = EXCLUDED.pushes, pushes_quarter = EXCLUDED.pushes_quarter, updated_at = now()"},
    {"forecast_levels",
     "SELECT c.descendant_id, c.ancestor_id, ka_org_kind_level(n.kind) FROM org_closure c "
     "JOIN org_node n ON n.id = c.ancestor_id WHERE c.descendant_id = ANY($1::text[])"},
    /* One level of the tree: every key's figures from its own lines, its own
     * closed revenue and its children's adjusted figures (recomputed just
     * before, one level down). Unchanged rows are left alone. */
    {"forecast_rollup",
     "WITH k AS (SELECT DISTINCT node, kind, start, start + CASE kind WHEN 'month' THEN "
     "interval '1 month' ELSE interval '3 months' END AS stop "
     "FROM unnest($1::text[], $2::text[], $3::date[]) AS k(node, kind, start)), "
     "own AS (SELECT k.node, k.kind, k.start, "
     "coalesce(sum(l.amount_minor) FILTER (WHERE l.category = 'commit'), 0) AS com, "
     "coalesce(sum(l.amount_minor) FILTER (WHERE l.category = 'best_case'), 0) AS bc, "
     "coalesce(sum(l.amount_minor) FILTER (WHERE l.category = 'pipeline'), 0) AS pip, "
     "coalesce(sum(l.weighted_minor), 0) AS w FROM k LEFT JOIN forecast_line l "
     "ON l.owner_rep_id = k.node AND l.period_kind = k.kind AND l.period_start = k.start "
     "GROUP BY 1, 2, 3), "
     "cl AS (SELECT k.node, k.kind, k.start, coalesce(sum(a.amount_minor), 0) AS cl FROM k "
     "LEFT JOIN actual a ON a.node_id = k.node AND a.period_month >= k.start "
     "AND a.period_month < k.stop GROUP BY 1, 2, 3), "
     "kids AS (SELECT k.node, k.kind, k.start, coalesce(sum(f.adj_closed_minor), 0) AS cl, "
     "coalesce(sum(f.adj_commit_minor), 0) AS com, coalesce(sum(f.adj_best_case_minor), 0) AS bc, "
     "coalesce(sum(f.adj_pipeline_minor), 0) AS pip, "
     "coalesce(sum(f.adj_weighted_pipeline_minor), 0) AS w FROM k "
     "LEFT JOIN org_node n ON n.parent_id = k.node LEFT JOIN forecast f ON f.node_id = n.id "
     "AND f.period_kind = k.kind AND f.period_start = k.start GROUP BY 1, 2, 3), "
     "r AS (SELECT o.node, o.kind, o.start, (cl.cl + kids.cl)::bigint AS cl, "
     "(o.com + kids.com)::bigint AS com, (o.bc + kids.bc)::bigint AS bc, "
     "(o.pip + kids.pip)::bigint AS pip, (o.w + kids.w)::bigint AS w "
     "FROM own o JOIN cl USING (node, kind, start) JOIN kids USING (node, kind, start)), "
     "adj AS (SELECT r.*, " CATEGORY_ADJ("closed", "cl") " AS acl, "
     CATEGORY_ADJ("commit", "com") " AS acom, " CATEGORY_ADJ("best_case", "bc") " AS abc, "
     CATEGORY_ADJ("pipeline", "pip") " AS apip, " CATEGORY_ADJ("weighted_pipeline", "w") " AS aw, "
     "(SELECT q.amount_minor FROM quota q WHERE q.node_id = r.node AND q.period_kind = r.kind "
     "AND q.period_start = r.start) AS quota FROM r), "
     "up AS (INSERT INTO forecast AS f (node_id, period_kind, period_start, raw_closed_minor, "
     "raw_commit_minor, raw_best_case_minor, raw_pipeline_minor, raw_weighted_pipeline_minor, "
     "adj_closed_minor, adj_commit_minor, adj_best_case_minor, adj_pipeline_minor, "
     "adj_weighted_pipeline_minor, quota_minor, raw_coverage_bp, adj_coverage_bp, raw_gap_minor, "
     "adj_gap_minor, revision, changed_at) "
     "SELECT node, kind, start, cl, com, bc, pip, w, acl, acom, abc, apip, aw, quota, "
     "CASE WHEN quota - cl > 0 THEN (com + bc + pip) * 10000 / (quota - cl) END, "
     "CASE WHEN quota - acl > 0 THEN (acom + abc + apip) * 10000 / (quota - acl) END, "
     "quota - (cl + com), quota - (acl + acom), 1, now() FROM adj "
     "ON CONFLICT (node_id, period_kind, period_start) DO UPDATE SET "
     "raw_closed_minor = EXCLUDED.raw_closed_minor, raw_commit_minor = EXCLUDED.raw_commit_minor, "
     "raw_best_case_minor = EXCLUDED.raw_best_case_minor, "
     "raw_pipeline_minor = EXCLUDED.raw_pipeline_minor, "
     "raw_weighted_pipeline_minor = EXCLUDED.raw_weighted_pipeline_minor, "
     "adj_closed_minor = EXCLUDED.adj_closed_minor, adj_commit_minor = EXCLUDED.adj_commit_minor, "
     "adj_best_case_minor = EXCLUDED.adj_best_case_minor, "
     "adj_pipeline_minor = EXCLUDED.adj_pipeline_minor, "
     "adj_weighted_pipeline_minor = EXCLUDED.adj_weighted_pipeline_minor, "
     "quota_minor = EXCLUDED.quota_minor, raw_coverage_bp = EXCLUDED.raw_coverage_bp, "
     "adj_coverage_bp = EXCLUDED.adj_coverage_bp, raw_gap_minor = EXCLUDED.raw_gap_minor, "
     "adj_gap_minor = EXCLUDED.adj_gap_minor, revision = f.revision + 1, "
     /* debounce: the first change since the last event starts the window */
     "changed_at = CASE WHEN f.revision = f.emitted_revision THEN now() ELSE f.changed_at END, "
     "updated_at = now() WHERE (f.raw_closed_minor, f.raw_commit_minor, f.raw_best_case_minor, "
     "f.raw_pipeline_minor, f.raw_weighted_pipeline_minor, f.adj_closed_minor, "
     "f.adj_commit_minor, f.adj_best_case_minor, f.adj_pipeline_minor, "
     "f.adj_weighted_pipeline_minor, f.quota_minor) IS DISTINCT FROM "
     "(EXCLUDED.raw_closed_minor, EXCLUDED.raw_commit_minor, EXCLUDED.raw_best_case_minor, "
     "EXCLUDED.raw_pipeline_minor, EXCLUDED.raw_weighted_pipeline_minor, "
     "EXCLUDED.adj_closed_minor, EXCLUDED.adj_commit_minor, EXCLUDED.adj_best_case_minor, "
     "EXCLUDED.adj_pipeline_minor, EXCLUDED.adj_weighted_pipeline_minor, EXCLUDED.quota_minor) "
     "RETURNING f.*) "
     "INSERT INTO forecast_submission (node_id, period_kind, period_start, revision, "
     "submitted_by, submitted_at, raw_closed_minor, raw_commit_minor, raw_best_case_minor, "
     "raw_pipeline_minor, raw_weighted_pipeline_minor, adj_closed_minor, adj_commit_minor, "
     "adj_best_case_minor, adj_pipeline_minor, adj_weighted_pipeline_minor, quota_minor) "
     "SELECT node_id, period_kind, period_start, revision, NULL, now(), raw_closed_minor, "
     "raw_commit_minor, raw_best_case_minor, raw_pipeline_minor, raw_weighted_pipeline_minor, "
     "adj_closed_minor, adj_commit_minor, adj_best_case_minor, adj_pipeline_minor, "
     "adj_weighted_pipeline_minor, quota_minor FROM up "
     "RETURNING node_id, period_kind, period_start::text"},
    {"forecast_planning_rollup",
     "WITH k AS (SELECT DISTINCT * FROM unnest($1::text[], $2::date[], $3::text[]) "
     "AS k(sku, month, division)), "
     "s AS (SELECT k.sku, k.month, k.division, coalesce(sum(l.weighted_quantity), 0) AS wq, "
     "coalesce(sum(l.committed_quantity), 0) AS cq FROM k LEFT JOIN planning_line l "
     "ON l.sku = k.sku AND l.period_month = k.month AND l.division_node_id = k.division "
     "GROUP BY 1, 2, 3) "
     "INSERT INTO planning_feed AS p (sku, period_month, division_node_id, weighted_quantity, "
     "committed_quantity, revision, changed_at) SELECT sku, month, division, wq, cq, 1, now() "
     "FROM s ON CONFLICT (sku, period_month, division_node_id) DO UPDATE SET "
     "weighted_quantity = EXCLUDED.weighted_quantity, "
     "committed_quantity = EXCLUDED.committed_quantity, revision = p.revision + 1, "
     "changed_at = CASE WHEN p.revision = p.emitted_revision THEN now() ELSE p.changed_at END, "
     "updated_at = now() WHERE (p.weighted_quantity, p.committed_quantity) IS DISTINCT FROM "
     "(EXCLUDED.weighted_quantity, EXCLUDED.committed_quantity)"},
};

ka_err_t forecast_recompute_prepare(ka_pg_t *pg, char *errstr, size_t errlen)
{
    return ka_pg_prepare_all(pg, statements, sizeof statements / sizeof statements[0], errstr,
                             errlen);
}

/* Projection ----------------------------------------------------------------- */

/* The latest confirmation of a kind (quarters also take months' quarters). */
static const conf_t *latest(const fopp_t *o, const char *kind)
{
    const conf_t *best = NULL;
    int quarter = strcmp(kind, "quarter") == 0;
    for (size_t i = 0; i < o->nconfs; i++) {
        const conf_t *c = &o->confs[i];
        if (!quarter && strcmp(c->kind, "month") != 0)
            continue;
        if (!best || c->at_ms > best->at_ms ||
            (c->at_ms == best->at_ms && strcmp(c->start, best->start) > 0))
            best = c;
    }
    return best;
}

static const char *category_of(const fopp_t *o, const conf_t *c)
{
    const char *cat = c->category[0] ? c->category : o->stage_category;
    if (!strcmp(cat, "commit") || !strcmp(cat, "best_case") || !strcmp(cat, "pipeline"))
        return cat;
    return NULL; /* omitted; closed comes from orders */
}

static int64_t weighted(int64_t amount, int prob_bp)
{
    return (amount * prob_bp + 5000) / 10000;
}

/* The projection writes. */
typedef struct proj {
    ka_buf_t ids; /* every marked opportunity */
    ka_cols_t fl; /* forecast_line */
    ka_cols_t pl; /* planning_line */
    ka_cols_t pr; /* forecast_opportunity */
} proj_t;

static void add_line(work_t *w, proj_t *p, const fopp_t *o, const conf_t *c, const char *kind)
{
    char start[11];
    const char *cat = category_of(o, c);
    if (!cat)
        return;
    if (strcmp(kind, "quarter") == 0)
        forecast_quarter_of(c->start, start);
    else
        copy(start, sizeof start, c->start);
    ka_buf_array_add(&p->fl.b[0], o->id);
    ka_buf_array_add(&p->fl.b[1], kind);
    ka_buf_array_add(&p->fl.b[2], start);
    ka_buf_array_add(&p->fl.b[3], o->owner);
    ka_buf_array_add(&p->fl.b[4], cat);
    ka_buf_array_add_int(&p->fl.b[5], o->amount);
    ka_buf_array_add_int(&p->fl.b[6], weighted(o->amount, o->prob_bp));
    p->fl.rows++;
    add_key(w, o->owner, kind, start);
}

static void add_planning_row(work_t *w, proj_t *p, const fopp_t *o, const char *sku,
                             const char *month, int64_t qty, int prob_bp, int64_t committed)
{
    ka_buf_array_add(&p->pl.b[0], o->id);
    ka_buf_array_add(&p->pl.b[1], sku);
    ka_buf_array_add(&p->pl.b[2], month);
    ka_buf_array_add(&p->pl.b[3], o->division);
    ka_buf_array_add_int(&p->pl.b[4], qty);
    ka_buf_array_add_int(&p->pl.b[5], prob_bp);
    ka_buf_array_add_int(&p->pl.b[6], committed);
    p->pl.rows++;
    add_pkey(w, sku, month, o->division);
}

static void add_planning(work_t *w, proj_t *p, const fopp_t *o, const char *month, int prob_bp,
                         int committed)
{
    for (size_t i = 0; i < o->nlines; i++)
        add_planning_row(w, p, o, o->lines[i].sku, month, o->lines[i].qty_milli, prob_bp,
                         committed ? o->lines[i].qty_milli : 0);
}

/* A won deal is committed demand until delivered: per sku, its quantity
 * less what booked orders naming it carry. Nothing for a delivered sku, so
 * no line is left to move at the next month. */
static void add_undelivered(work_t *w, proj_t *p, const fopp_t *o, const char *month)
{
    for (size_t i = 0; i < o->nlines; i++) {
        int64_t qty = 0, left;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(o->lines[j].sku, o->lines[i].sku) == 0;
        if (seen)
            continue; /* counted with the sku's first line */
        for (size_t j = i; j < o->nlines; j++)
            if (strcmp(o->lines[j].sku, o->lines[i].sku) == 0)
                qty += o->lines[j].qty_milli;
        left = qty;
        for (size_t d = 0; d < o->ndelivered; d++)
            if (strcmp(o->delivered[d].sku, o->lines[i].sku) == 0)
                left -= o->delivered[d].qty_milli;
        if (left > 0)
            add_planning_row(w, p, o, o->lines[i].sku, month, left, 0, left);
    }
}

/* The later of two "YYYY-MM-01" months: demand is never in a month over. */
static const char *not_before(const char *month, const char *now)
{
    return strcmp(month, now) < 0 ? now : month;
}

/* What one opportunity contributes now. An open deal counts only once
 * confirmed by its owner: in its owner's forecast for its latest confirmed
 * month and quarter, and in the planning feed in the month it is expected
 * to close, or this month when that is over (weighted by its probability;
 * committed when its category is commit). A won deal is committed demand,
 * in the month it was won or this month when that is over, for what booked
 * orders naming it have not delivered yet. */
static void project(work_t *w, proj_t *p, fopp_t *o)
{
    if (!o->exists)
        return;
    const conf_t *m = latest(o, "month"), *q = latest(o, "quarter");
    if (strcmp(o->status, "open") == 0) {
        if (m)
            add_line(w, p, o, m, "month");
        if (q)
            add_line(w, p, o, q, "quarter");
        const conf_t *last = m && q ? (m->at_ms >= q->at_ms ? m : q) : m ? m : q;
        if (last && o->division[0]) {
            char month[11];
            const char *cat = category_of(o, last);
            if (o->close[0])
                snprintf(month, sizeof month, "%.7s-01", o->close);
            else
                copy(month, sizeof month, last->start);
            if (cat)
                add_planning(w, p, o, not_before(month, w->month_now), o->prob_bp,
                             strcmp(cat, "commit") == 0);
        }
    } else if (strcmp(o->status, "won") == 0 && o->division[0]) {
        add_undelivered(w, p, o,
                        o->closed_month[0] ? not_before(o->closed_month, w->month_now)
                                           : w->month_now);
    }
    /* 推迟: the expected close date moved later; counted per quarter. */
    int pushes = o->pushes;
    const char *quarter = o->pushes_quarter[0] ? o->pushes_quarter : w->quarter_now;
    if (strcmp(quarter, w->quarter_now) != 0) {
        pushes = 0;
        quarter = w->quarter_now;
    }
    if (o->had_projection && o->old_close[0] && o->close[0] && strcmp(o->close, o->old_close) > 0)
        pushes++;
    ka_buf_array_add(&p->pr.b[0], o->id);
    ka_buf_array_add(&p->pr.b[1], o->owner);
    ka_buf_array_add(&p->pr.b[2], o->status);
    ka_buf_array_add(&p->pr.b[3], o->close[0] ? o->close : NULL);
    ka_buf_array_add_int(&p->pr.b[4], pushes);
    ka_buf_array_add(&p->pr.b[5], quarter);
    p->pr.rows++;
}

/* Reading ----------------------------------------------------------------------- */

static ka_err_t read_opps(work_t *w, ka_tx_t *tx, const char *ids, char *errstr, size_t errlen)
{
    ka_rows_t r;
    const char *p[] = {ids};
    ka_err_t rc = ka_rows_query(tx, "forecast_opps", 1, p, &r, errstr, errlen);
    for (int i = 0; rc == KA_OK && i < r.nrows; i++) {
        fopp_t *o = find_opp(w, ka_rows_str(&r, i, 0));
        if (!o)
            continue;
        o->exists = 1;
        copy(o->owner, sizeof o->owner, ka_rows_str(&r, i, 1));
        copy(o->status, sizeof o->status, ka_rows_str(&r, i, 2));
        copy(o->close, sizeof o->close, ka_rows_str(&r, i, 3));
        o->amount = ka_rows_int(&r, i, 4, 0);
        o->prob_bp = (int)ka_rows_int(&r, i, 5, 0);
        copy(o->stage_category, sizeof o->stage_category, ka_rows_str(&r, i, 6));
        copy(o->division, sizeof o->division, ka_rows_str(&r, i, 7));
        copy(o->closed_month, sizeof o->closed_month, ka_rows_str(&r, i, 8));
    }
    ka_rows_free(&r);
    if (rc == KA_OK)
        rc = ka_rows_query(tx, "forecast_confirmations", 1, p, &r, errstr, errlen);
    for (int i = 0; rc == KA_OK && i < r.nrows; i++) {
        fopp_t *o = find_opp(w, ka_rows_str(&r, i, 0));
        if (!o)
            continue;
        o->confs = ka_realloc(o->confs, (o->nconfs + 1) * sizeof *o->confs);
        conf_t *c = &o->confs[o->nconfs++];
        copy(c->kind, sizeof c->kind, ka_rows_str(&r, i, 1));
        copy(c->start, sizeof c->start, ka_rows_str(&r, i, 2));
        copy(c->category, sizeof c->category, ka_rows_str(&r, i, 3));
        c->at_ms = ka_rows_int(&r, i, 4, 0);
    }
    ka_rows_free(&r);
    if (rc == KA_OK)
        rc = ka_rows_query(tx, "forecast_opp_lines", 1, p, &r, errstr, errlen);
    for (int i = 0; rc == KA_OK && i < r.nrows; i++) {
        fopp_t *o = find_opp(w, ka_rows_str(&r, i, 0));
        if (!o)
            continue;
        o->lines = ka_realloc(o->lines, (o->nlines + 1) * sizeof *o->lines);
        copy(o->lines[o->nlines].sku, sizeof o->lines[0].sku, ka_rows_str(&r, i, 1));
        o->lines[o->nlines++].qty_milli = ka_rows_int(&r, i, 2, 0);
    }
    ka_rows_free(&r);
    if (rc == KA_OK)
        rc = ka_rows_query(tx, "forecast_delivered", 1, p, &r, errstr, errlen);
    for (int i = 0; rc == KA_OK && i < r.nrows; i++) {
        fopp_t *o = find_opp(w, ka_rows_str(&r, i, 0));
        if (!o)
            continue;
        o->delivered = ka_realloc(o->delivered, (o->ndelivered + 1) * sizeof *o->delivered);
        copy(o->delivered[o->ndelivered].sku, sizeof o->delivered[0].sku, ka_rows_str(&r, i, 1));
        o->delivered[o->ndelivered++].qty_milli = ka_rows_int(&r, i, 2, 0);
    }
    ka_rows_free(&r);
    if (rc == KA_OK)
        rc = ka_rows_query(tx, "forecast_old_projection", 1, p, &r, errstr, errlen);
    for (int i = 0; rc == KA_OK && i < r.nrows; i++) {
        fopp_t *o = find_opp(w, ka_rows_str(&r, i, 0));
        if (!o)
            continue;
        o->had_projection = 1;
        copy(o->old_close, sizeof o->old_close, ka_rows_str(&r, i, 1));
        o->pushes = (int)ka_rows_int(&r, i, 2, 0);
        copy(o->pushes_quarter, sizeof o->pushes_quarter, ka_rows_str(&r, i, 3));
    }
    ka_rows_free(&r);
    /* What they contributed before: those rows must be recomputed too. */
    if (rc == KA_OK)
        rc = ka_rows_query(tx, "forecast_old_lines", 1, p, &r, errstr, errlen);
    for (int i = 0; rc == KA_OK && i < r.nrows; i++)
        add_key(w, ka_rows_str(&r, i, 0), ka_rows_str(&r, i, 1), ka_rows_str(&r, i, 2));
    ka_rows_free(&r);
    if (rc == KA_OK)
        rc = ka_rows_query(tx, "forecast_old_planning", 1, p, &r, errstr, errlen);
    for (int i = 0; rc == KA_OK && i < r.nrows; i++)
        add_pkey(w, ka_rows_str(&r, i, 0), ka_rows_str(&r, i, 1), ka_rows_str(&r, i, 2));
    ka_rows_free(&r);
    return rc;
}

/* Every key's ancestors at the same period, each with its level. */
static ka_err_t expand_ancestors(work_t *w, ka_tx_t *tx, char *errstr, size_t errlen)
{
    ka_buf_t nodes = KA_BUF_INIT;
    ka_rows_t r;
    ka_buf_array_begin(&nodes);
    for (size_t i = 0; i < w->nkeys; i++)
        ka_buf_array_add(&nodes, w->keys[i].node);
    ka_buf_array_end(&nodes);
    const char *p[] = {ka_buf_str(&nodes)};
    ka_err_t rc = ka_rows_query(tx, "forecast_levels", 1, p, &r, errstr, errlen);
    ka_buf_free(&nodes);
    size_t n = w->nkeys; /* the keys marked; ancestors are appended */
    /* The marked keys of each node (a chain through next), and each
     * ancestor's level: a key's level is its node's. */
    forecast_index_t first = {0}, level_of = {0};
    int *next = ka_calloc(n + 1, sizeof *next);
    for (size_t k = n; k-- > 0;) {
        next[k] = forecast_index_get(&first, w->keys[k].node);
        forecast_index_put(&first, w->keys[k].node, (int)k);
    }
    for (int i = 0; rc == KA_OK && i < r.nrows; i++) {
        const char *node = ka_rows_str(&r, i, 0), *anc = ka_rows_str(&r, i, 1);
        int level = (int)ka_rows_int(&r, i, 2, MAX_LEVEL);
        for (int k = forecast_index_get(&first, node); k >= 0; k = next[k]) {
            char kind[8], start[11];
            copy(kind, sizeof kind, w->keys[k].kind);
            copy(start, sizeof start, w->keys[k].start);
            add_key(w, anc, kind, start);
        }
        forecast_index_put(&level_of, anc, level);
    }
    for (size_t j = 0; rc == KA_OK && j < w->nkeys; j++) {
        int level = forecast_index_get(&level_of, w->keys[j].node);
        if (level >= 0)
            w->keys[j].level = level;
    }
    forecast_index_free(&first);
    forecast_index_free(&level_of);
    free(next);
    ka_rows_free(&r);
    return rc;
}

/* The run ---------------------------------------------------------------------- */

typedef struct run {
    int limit, taken;
    char *month_checked; /* the caller's; set once this month's re-mark committed */
    char month_now[11];
    const char *pace; /* KA_FORECAST_PACE as an int[] literal */
    int64_t now_ms;   /* the worker's clock */
    char today[11];   /* its UTC date */
    int fired, resolved, busy;
} run_t;

static ka_err_t queue_projection(work_t *w, ka_tx_t *tx, proj_t *p, char *errstr, size_t errlen)
{
    ka_pg_t *pg = ka_tx_pg(tx);
    ka_pg_param_t ids, fl[7], pl[7], pr[6];
    ids = (ka_pg_param_t){ka_buf_str(&p->ids), 0, 0};
    ka_cols_end(&p->fl, fl);
    ka_cols_end(&p->pl, pl);
    ka_cols_end(&p->pr, pr);
    ka_err_t rc;
    if ((rc = ka_pg_pipe_push(pg, "forecast_lines_clear", 1, &ids, NULL, NULL, errstr, errlen)) ||
        (rc = ka_pg_pipe_push(pg, "forecast_planning_clear", 1, &ids, NULL, NULL, errstr,
                              errlen)))
        return rc;
    if (p->fl.rows &&
        (rc = ka_pg_pipe_push(pg, "forecast_lines_insert", 7, fl, NULL, NULL, errstr, errlen)))
        return rc;
    if (p->pl.rows &&
        (rc = ka_pg_pipe_push(pg, "forecast_planning_insert", 7, pl, NULL, NULL, errstr, errlen)))
        return rc;
    if (p->pr.rows && (rc = ka_pg_pipe_push(pg, "forecast_projection_upsert", 6, pr, NULL, NULL,
                                        errstr, errlen)))
        return rc;
    (void)w;
    return KA_OK;
}

/* The rows a roll-up changed (one submission each): those of the current
 * month and quarter are kept for the gap rule. */
static int collect_changed(void *ud, const ka_pgres_t *res)
{
    work_t *w = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        const char *kind = ka_pgres_value(res, i, 1), *start = ka_pgres_value(res, i, 2);
        if (!kind || !start ||
            strcmp(start, strcmp(kind, "month") == 0 ? w->month_now : w->quarter_now) != 0)
            continue;
        w->changed = ka_realloc(w->changed, (w->nchanged + 1) * sizeof *w->changed);
        fkey_t *k = &w->changed[w->nchanged++];
        copy(k->node, sizeof k->node, ka_pgres_value(res, i, 0));
        copy(k->kind, sizeof k->kind, kind);
        copy(k->start, sizeof k->start, start);
        k->level = MAX_LEVEL;
    }
    return 0;
}

static ka_err_t queue_rollups(work_t *w, ka_tx_t *tx, char *errstr, size_t errlen)
{
    ka_err_t rc = KA_OK;
    /* Deepest level first: a parent reads its children's new figures. */
    for (int level = MAX_LEVEL; level >= 1 && rc == KA_OK; level--) {
        ka_cols_t c;
        ka_pg_param_t p[3];
        ka_cols_begin(&c, 3);
        for (size_t i = 0; i < w->nkeys; i++) {
            if (w->keys[i].level != level)
                continue;
            ka_buf_array_add(&c.b[0], w->keys[i].node);
            ka_buf_array_add(&c.b[1], w->keys[i].kind);
            ka_buf_array_add(&c.b[2], w->keys[i].start);
            c.rows++;
        }
        ka_cols_end(&c, p);
        if (c.rows)
            rc = ka_pg_pipe_push(ka_tx_pg(tx), "forecast_rollup", 3, p, collect_changed, w,
                                 errstr, errlen);
        ka_cols_free(&c);
    }
    if (rc != KA_OK || !w->npkeys)
        return rc;
    ka_cols_t c;
    ka_pg_param_t p[3];
    ka_cols_begin(&c, 3);
    for (size_t i = 0; i < w->npkeys; i++) {
        ka_buf_array_add(&c.b[0], w->pkeys[i].sku);
        ka_buf_array_add(&c.b[1], w->pkeys[i].month);
        ka_buf_array_add(&c.b[2], w->pkeys[i].division);
    }
    ka_cols_end(&c, p);
    rc = ka_pg_pipe_push(ka_tx_pg(tx), "forecast_planning_rollup", 3, p, NULL, NULL, errstr,
                         errlen);
    ka_cols_free(&c);
    return rc;
}

/* The gap rule for the current rows the roll-ups changed, in their
 * transaction: the alert moves with the figures, and a rolled-back
 * recompute moves neither. Another instance's gap scan holding the lock
 * makes the whole recompute roll back (rn->busy): its marks wait for the
 * next tick, so no change of figures is left unjudged. */
static ka_err_t judge_gaps(work_t *w, run_t *rn, ka_tx_t *tx, char *errstr, size_t errlen)
{
    ka_err_t rc;
    int locked;
    if ((rc = ka_tx_flush(tx, errstr, errlen)) || !w->nchanged)
        return rc;
    if ((rc = ka_scan_lock(tx, FORECAST_GAP_LOCK, &locked, errstr, errlen)))
        return rc;
    if (!locked) {
        rn->busy = 1;
        snprintf(errstr, errlen, "the forecast-gap lock is taken");
        return KA_ERR_RETRY;
    }
    ka_cols_t c;
    ka_pg_param_t p[3];
    ka_cols_begin(&c, 3);
    for (size_t i = 0; i < w->nchanged; i++) {
        ka_buf_array_add(&c.b[0], w->changed[i].node);
        ka_buf_array_add(&c.b[1], w->changed[i].kind);
        ka_buf_array_add(&c.b[2], w->changed[i].start);
        c.rows++;
    }
    ka_cols_end(&c, p);
    forecast_gap_keys_t keys = {p[0].value, p[1].value, p[2].value, (int)w->nchanged};
    rc = forecast_gap_judge(tx, rn->pace, rn->today, rn->now_ms, &keys, keys.n, &rn->fired,
                            &rn->resolved, errstr, errlen);
    ka_cols_free(&c);
    return rc;
}

static ka_err_t run(void *ud, ka_tx_t *tx, char *errstr, size_t errlen)
{
    run_t *rn = ud;
    work_t w;
    proj_t p;
    ka_rows_t marks;
    char limit[16], month_now[11];
    int locked;
    ka_err_t rc;

    memset(&w, 0, sizeof w);
    if ((rc = ka_scan_lock(tx, RECOMPUTE_LOCK, &locked, errstr, errlen)) || !locked)
        return rc;
    /* The worker's clock, once per run: today, this month and quarter. */
    rn->now_ms = ka_now_ms();
    time_t now = (time_t)(rn->now_ms / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(rn->today, sizeof rn->today, "%Y-%m-%d", &tm);
    strftime(month_now, sizeof month_now, "%Y-%m-01", &tm);
    copy(w.month_now, sizeof w.month_now, month_now);
    forecast_quarter_of(month_now, w.quarter_now);
    /* Once per month (and process): under the lock, so every line written
     * before is seen, and taken below in this same transaction. */
    if (strcmp(rn->month_checked, month_now) != 0) {
        ka_pg_param_t mp = {month_now, 0, 0};
        if ((rc = ka_pg_pipe_push(ka_tx_pg(tx), "forecast_remark_past", 1, &mp, NULL, NULL,
                                  errstr, errlen)))
            return rc;
        copy(rn->month_now, sizeof rn->month_now, month_now);
    }
    snprintf(limit, sizeof limit, "%d", rn->limit);
    const char *lp[] = {limit};
    if ((rc = ka_rows_query(tx, "forecast_take", 1, lp, &marks, errstr, errlen)))
        return rc;
    rn->taken = marks.nrows;
    if (!marks.nrows) {
        ka_rows_free(&marks);
        return KA_OK;
    }

    memset(&p, 0, sizeof p);
    ka_buf_array_begin(&p.ids);
    ka_cols_begin(&p.fl, 7);
    ka_cols_begin(&p.pl, 7);
    ka_cols_begin(&p.pr, 6);
    for (int i = 0; i < marks.nrows; i++) {
        if (!ka_rows_null(&marks, i, 0)) {
            const char *id = ka_rows_str(&marks, i, 0);
            if (find_opp(&w, id))
                continue;
            w.opps = ka_realloc(w.opps, (w.nopps + 1) * sizeof *w.opps);
            memset(&w.opps[w.nopps], 0, sizeof w.opps[0]);
            forecast_index_put(&w.opp_at, id, (int)w.nopps);
            copy(w.opps[w.nopps++].id, ID_LEN, id);
            ka_buf_array_add(&p.ids, id);
        } else {
            add_key(&w, ka_rows_str(&marks, i, 1), ka_rows_str(&marks, i, 2),
                    ka_rows_str(&marks, i, 3));
        }
    }
    ka_rows_free(&marks);
    ka_buf_array_end(&p.ids);
    if (w.nopps) {
        rc = read_opps(&w, tx, ka_buf_str(&p.ids), errstr, errlen);
        for (size_t i = 0; rc == KA_OK && i < w.nopps; i++)
            project(&w, &p, &w.opps[i]);
        if (rc == KA_OK)
            rc = queue_projection(&w, tx, &p, errstr, errlen);
    }
    if (rc == KA_OK && w.nkeys)
        rc = expand_ancestors(&w, tx, errstr, errlen);
    if (rc == KA_OK)
        rc = queue_rollups(&w, tx, errstr, errlen);
    if (rc == KA_OK)
        rc = judge_gaps(&w, rn, tx, errstr, errlen);
    ka_buf_free(&p.ids);
    ka_cols_free(&p.fl);
    ka_cols_free(&p.pl);
    ka_cols_free(&p.pr);
    free_work(&w);
    return rc;
}

ka_err_t forecast_recompute_run(ka_worker_t *w, int limit, char month_checked[11],
                                const char *pace, int *taken, char *errstr, size_t errlen)
{
    run_t rn = {.limit = limit, .month_checked = month_checked, .pace = pace};
    ka_err_t rc = ka_worker_transaction(w, run, &rn, errstr, errlen);
    if (rn.busy)
        rc = KA_OK; /* rolled back: the marks (and the month's re-mark) wait for the next tick */
    *taken = rc == KA_OK && !rn.busy ? rn.taken : 0;
    if (rc == KA_OK && !rn.busy && rn.month_now[0])
        copy(month_checked, 11, rn.month_now);
    return rc;
}

/* The roll-ups a re-org moves (see reorg.h). The rules are SQL functions of
 * deploy/sql/0016_reorg.sql, so the recompute runs where the rows are; this
 * file calls them in the load's transaction and rewrites the cache after. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_buf.h"
#include "ka_redis.h"
#include "ka_worker.h"
#include "reorg.h"

typedef struct two {
    char *text;
    long long n;
} two_t;

static int read_array(void *ud, const ka_pgres_t *res)
{
    two_t *t = ud;
    const char *v = ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : NULL;
    t->text = ka_strdup(v ? v : "{}");
    t->n = ka_pgres_rows(res) ? ka_pgres_int(res, 0, 1, 0) : 0;
    return 0;
}

int reorg_begin(ka_pg_t *pg, const char *ids, const char *parents, reorg_t *r, char *errstr,
                size_t errlen)
{
    two_t moved = {NULL, 0}, old = {NULL, 0};
    memset(r, 0, sizeof *r);
    ka_pg_param_t p[2] = {{ids, 0, 0}, {parents, 0, 0}};
    if (ka_pg_query(pg, "SELECT m::text, cardinality(m) FROM ka_org_moves($1::text[], "
                        "$2::text[]) AS m",
                    2, p, read_array, &moved, errstr, errlen) != KA_OK) {
        free(moved.text);
        return -1;
    }
    if (moved.n == 0) {
        free(moved.text);
        return 0;
    }
    /* Waits for the worker batches that wrote roll-up rows to commit, and
     * holds new ones at their roll-up upsert until this load commits. */
    ka_pg_param_t m = {moved.text, 0, 0};
    if (ka_pg_query(pg, "SELECT o::text, cardinality(o) FROM ka_org_reroll_begin($1::text[]) AS o",
                    1, &m, read_array, &old, errstr, errlen) != KA_OK) {
        free(moved.text);
        free(old.text);
        return -1;
    }
    r->moved = moved.text;
    r->old = old.text;
    printf("%-15s %6lld nodes moved or joined the tree with figures: their roll-ups are "
           "recomputed\n", "org", moved.n);
    return 0;
}

static int read_nodes(void *ud, const ka_pgres_t *res)
{
    reorg_t *r = ud;
    r->nnodes = (size_t)ka_pgres_rows(res);
    r->nodes = ka_calloc(r->nnodes + 1, sizeof *r->nodes);
    for (size_t i = 0; i < r->nnodes; i++)
        r->nodes[i] = ka_strdup(ka_pgres_value(res, (int)i, 0));
    return 0;
}

int reorg_apply(ka_pg_t *pg, reorg_t *r, char *errstr, size_t errlen)
{
    if (!r->moved)
        return 0;
    ka_pg_param_t p[2] = {{r->old, 0, 0}, {r->moved, 0, 0}};
    if (ka_pg_query(pg, "SELECT n FROM ka_org_reroll($1::text[], $2::text[]) AS n", 2, p,
                    read_nodes, r, errstr, errlen) != KA_OK)
        return -1;
    return 0;
}

/* Redis --------------------------------------------------------------------- */

typedef struct cache {
    ka_redis_t *rds;
    size_t keys;
} cache_t;

/* The keys and fields the opportunity worker writes (opp_funnel_key). */
static int write_funnel(void *ud, const ka_pgres_t *res)
{
    cache_t *c = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        char key[256], fc[40], fa[40], fw[40];
        const char *stage = ka_pgres_value(res, i, 2);
        snprintf(key, sizeof key, "ka:funnel:%s:%s", ka_pgres_value(res, i, 0),
                 ka_pgres_value(res, i, 1));
        snprintf(fc, sizeof fc, "%s:count", stage);
        snprintf(fa, sizeof fa, "%s:amount", stage);
        snprintf(fw, sizeof fw, "%s:weighted", stage);
        const char *argv[] = {"HSET", key, fc, ka_pgres_value(res, i, 3), fa,
                              ka_pgres_value(res, i, 4), fw, ka_pgres_value(res, i, 5)};
        ka_redis_append_str(c->rds, 8, argv);
        c->keys++;
    }
    return 0;
}

/* The keys and fields the order worker writes (order_actuals_key). */
static int write_actuals(void *ud, const ka_pgres_t *res)
{
    cache_t *c = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        char key[128], month[8];
        snprintf(key, sizeof key, "ka:actuals:%s", ka_pgres_value(res, i, 0));
        snprintf(month, sizeof month, "%.7s", ka_pgres_value(res, i, 1)); /* YYYY-MM */
        const char *argv[] = {"HSET", key, month, ka_pgres_value(res, i, 2)};
        ka_redis_append_str(c->rds, 4, argv);
        c->keys++;
    }
    return 0;
}

void reorg_cache(const ka_config_t *cfg, ka_pg_t *pg, const reorg_t *r)
{
    char err[KA_ERRSTR_SIZE], unlock_err[KA_ERRSTR_SIZE];
    ka_buf_t nodes = KA_BUF_INIT;
    cache_t c = {NULL, 0};
    int locked = 0;
    ka_err_t rc = KA_ERR;

    if (!r->nnodes)
        return;
    c.rds = ka_redis_connect_config(cfg, (int)ka_config_int(cfg, "KA_REDIS_TIMEOUT_MS"), err,
                                    sizeof err);
    if (!c.rds)
        goto out;
    ka_buf_array_begin(&nodes);
    for (size_t i = 0; i < r->nnodes; i++)
        ka_buf_array_add(&nodes, r->nodes[i]);
    ka_buf_array_end(&nodes);
    ka_pg_param_t p = {ka_buf_str(&nodes), 0, 0};
    /* As a rebuild does: an update a worker makes after its own commit waits
     * while this snapshot is written, so it cannot be overwritten by it. */
    if ((rc = ka_pg_exec(pg, "SELECT pg_advisory_lock(" KA_WORKER_CACHE_LOCK ")", err,
                         sizeof err)) != KA_OK)
        goto out;
    locked = 1;
    if ((rc = ka_pg_query(pg,
                          "SELECT node_id, definition_id, stage_code, open_count, amount_minor, "
                          "weighted_amount_minor FROM funnel_state WHERE node_id = ANY($1::text[]) "
                          "ORDER BY 1, 2, 3",
                          1, &p, write_funnel, &c, err, sizeof err)) != KA_OK ||
        (rc = ka_pg_query(pg,
                          "SELECT node_id, period_month::text, amount_minor FROM actual_rollup "
                          "WHERE node_id = ANY($1::text[]) ORDER BY 1, 2",
                          1, &p, write_actuals, &c, err, sizeof err)) != KA_OK)
        goto out;
    rc = ka_redis_flush(c.rds, err, sizeof err);
out:
    if (locked)
        (void)ka_pg_exec(pg, "SELECT pg_advisory_unlock(" KA_WORKER_CACHE_LOCK ")", unlock_err,
                         sizeof unlock_err);
    if (rc == KA_OK)
        printf("%-15s %6zu cache fields rewritten from PostgreSQL for %zu nodes\n", "org", c.keys,
               r->nnodes);
    else
        fprintf(stderr, "kactl load org: warning: the org tree and its roll-ups are saved, but "
                        "the Redis cache of the %zu nodes recomputed was not rewritten: %s; it "
                        "catches up with the workers' next writes of those keys, or at once with "
                        "kactl rebuild-cache\n", r->nnodes, err);
    ka_redis_free(c.rds);
    ka_buf_free(&nodes);
}

void reorg_free(reorg_t *r)
{
    free(r->moved);
    free(r->old);
    for (size_t i = 0; i < r->nnodes; i++)
        free(r->nodes[i]);
    free(r->nodes);
    memset(r, 0, sizeof *r);
}

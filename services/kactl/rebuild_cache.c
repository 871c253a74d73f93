/* kactl rebuild-cache: make every worker rebuild its Redis cache from
 * PostgreSQL, by deleting the cache markers the workers check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka_pg.h"
#include "ka_redis.h"
#include "kactl.h"

static void usage(FILE *out)
{
    fprintf(out,
        "usage: kactl rebuild-cache [--group G]... [--flush]\n\n"
        "Makes the workers rebuild the Redis cache from PostgreSQL. Every worker keeps a\n"
        "marker key ka:cache:ready:<consumer group> in Redis, set after its last full\n"
        "rebuild, and checks it every 5 s; when the marker is gone it rebuilds its part of\n"
        "the cache (funnels, accounts, follow-ups, actuals, ...) from PostgreSQL and sets it\n"
        "again. This command deletes the markers of every consumer group that has stored\n"
        "offsets (consumer_offset), or of the groups given with --group, so each RUNNING\n"
        "worker rebuilds within about 5 s; a stopped worker rebuilds when it starts. Nothing\n"
        "is rebuilt by kactl itself, and no worker reports back: watch the workers'\n"
        "ka_cache_rebuilds_total{result=\"ok\"} metric.\n\n"
        "  --group G   only this consumer group (repeatable)\n"
        "  --flush     FLUSHDB the cache database first (drops every key, stale ones\n"
        "              included; reads miss until the workers have rebuilt)\n");
}

typedef struct groups {
    char **g;
    int n;
} groups_t;

static void add_group(groups_t *gs, const char *g)
{
    char **ng = realloc(gs->g, ((size_t)gs->n + 1) * sizeof *ng);
    if (!ng)
        abort();
    gs->g = ng;
    gs->g[gs->n] = strdup(g);
    if (!gs->g[gs->n])
        abort();
    gs->n++;
}

static int read_groups(void *ud, const ka_pgres_t *res)
{
    for (int i = 0; i < ka_pgres_rows(res); i++)
        add_group(ud, ka_pgres_value(res, i, 0));
    return 0;
}

int kactl_rebuild_cache(const ka_config_t *cfg, int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE];
    int flush = 0, rc = 1;
    groups_t gs = {NULL, 0};
    ka_pg_t *pg = NULL;
    ka_redis_t *rds = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if (strcmp(argv[i], "--flush") == 0) {
            flush = 1;
        } else if (strcmp(argv[i], "--group") == 0 && i + 1 < argc && argv[i + 1][0]) {
            add_group(&gs, argv[++i]);
        } else {
            fprintf(stderr, "kactl rebuild-cache: unexpected argument \"%s\" (it takes "
                            "[--group G]... [--flush]; see kactl rebuild-cache --help)\n",
                    argv[i]);
            rc = 2;
            goto out;
        }
    }
    if (gs.n == 0) {
        pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
        if (!pg || ka_pg_query(pg, "SELECT DISTINCT consumer_group FROM consumer_offset "
                                   "ORDER BY 1",
                               0, NULL, read_groups, &gs, err, sizeof err) != KA_OK) {
            fprintf(stderr, "kactl rebuild-cache: %s\n", err);
            goto out;
        }
    }
    rds = ka_redis_connect_config(cfg, (int)ka_config_int(cfg, "KA_REDIS_TIMEOUT_MS"), err,
                                  sizeof err);
    if (!rds) {
        fprintf(stderr, "kactl rebuild-cache: %s\n", err);
        goto out;
    }
    if (flush) {
        const char *fl[] = {"FLUSHDB"};
        ka_redis_append_str(rds, 1, fl);
        if (ka_redis_flush(rds, err, sizeof err) != KA_OK) {
            fprintf(stderr, "kactl rebuild-cache: FLUSHDB failed: %s\n", err);
            goto out;
        }
        printf("flushed the cache database (FLUSHDB)\n");
    }
    for (int i = 0; i < gs.n; i++) {
        char marker[256], *val = NULL;
        snprintf(marker, sizeof marker, "ka:cache:ready:%s", gs.g[i]);
        if (ka_redis_get(rds, marker, &val, NULL, err, sizeof err) != KA_OK) {
            fprintf(stderr, "kactl rebuild-cache: GET %s: %s\n", marker, err);
            goto out;
        }
        const char *del[] = {"DEL", marker};
        ka_redis_append_str(rds, 2, del);
        if (ka_redis_flush(rds, err, sizeof err) != KA_OK) {
            fprintf(stderr, "kactl rebuild-cache: DEL %s: %s\n", marker, err);
            free(val);
            goto out;
        }
        printf("%-28s marker %s %s\n", gs.g[i], marker,
               val ? "deleted: a running worker rebuilds within ~5 s"
                   : "was not set: the worker is rebuilding, never ran, or the cache was flushed");
        free(val);
    }
    if (gs.n == 0 && !flush)
        printf("no consumer group has stored offsets: nothing to do\n");
    else
        printf("%d consumer group%s asked to rebuild from PostgreSQL\n", gs.n,
               gs.n == 1 ? "" : "s");
    rc = 0;
out:
    ka_redis_free(rds);
    ka_pg_free(pg);
    for (int i = 0; i < gs.n; i++)
        free(gs.g[i]);
    free(gs.g);
    return rc;
}

#ifndef KACTL_REORG_H
#define KACTL_REORG_H

#include <stddef.h>

#include "ka_config.h"
#include "ka_pg.h"

/* The roll-ups a re-org moves (docs/domain-choices.md, Reference data): in
 * the transaction of `kactl load org`, around its org_node upsert,
 *
 *   reorg_begin   before: takes the tree and roll-up locks when a node
 *                 moves (or a rep with figures joins) and notes the old
 *                 ancestors;
 *   reorg_apply   after: recomputes funnel_state and actual_rollup of the
 *                 old and new ancestors from the base rows and marks the
 *                 forecast and funnel health work (deploy/sql/0016_reorg.sql);
 *   reorg_cache   after COMMIT: rewrites those nodes' Redis keys from
 *                 PostgreSQL.
 *
 * Every function is a no-op when nothing moved. */
typedef struct reorg {
    char *moved;   /* array literal: nodes whose roll-up moves; NULL: none */
    char *old;     /* array literal: their ancestors before the load */
    char **nodes;  /* the nodes recomputed (after reorg_apply) */
    size_t nnodes;
} reorg_t;

/* ids and parents are the file's id and parent_id columns as array
 * literals, in the same order. Returns 0, or -1 with errstr (the caller
 * rolls back). */
int reorg_begin(ka_pg_t *pg, const char *ids, const char *parents, reorg_t *r, char *errstr,
                size_t errlen);

/* Returns 0, or -1 with errstr. */
int reorg_apply(ka_pg_t *pg, reorg_t *r, char *errstr, size_t errlen);

/* Writes the recomputed nodes' funnels and actuals to Redis as absolute
 * values, holding the workers' cache lock (as a rebuild does). Prints what
 * it did; a failure is a warning (PostgreSQL is committed): the cache then
 * waits for the workers' next writes of those keys or kactl rebuild-cache. */
void reorg_cache(const ka_config_t *cfg, ka_pg_t *pg, const reorg_t *r);

/* No operation is performed on an empty reorg. */
void reorg_free(reorg_t *r);

#endif

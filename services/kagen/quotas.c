/* The reps' quotas (--stream quotas), from the same seeded plan as the
 * order stream, so attainment in the demo varies around 100%: each rep's
 * monthly quota is 90% to 110% of its run rate, the revenue it booked (net of
 * what was cancelled or returned by then) in the QUOTA_WINDOW_DAYS before
 * phase 2, a month's worth. The planner sets them then, before the dry spell:
 * the teams that dry up fall behind their quota. A rep without revenue in the
 * window gets its team's mean run rate (else the company's). Every node above
 * the reps has the sum of its reps; a quarter is three months. Months and
 * quarters of the year of --now-ms and of the next, so a demo late in the
 * year still has a next quarter. Written as the CSV `kactl load quotas` takes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quotas.h"

typedef struct node_sum {
    char *id;
    int64_t monthly;
} node_sum_t;

typedef struct qgen {
    const gen_t *g;
    const int64_t *quota; /* monthly, per rep index */
    node_sum_t *nodes;
    int nnodes;
} qgen_t;

static int rep_index(const gen_t *g, const char *id)
{
    for (int i = 0; i < g->nreps; i++)
        if (strcmp(g->reps[i].id, id) == 0)
            return i;
    return -1;
}

/* Rows (ancestor, rep) in ancestor order: sums each ancestor's reps. */
static int read_closure(void *ud, const ka_pgres_t *res)
{
    qgen_t *q = ud;
    q->nodes = ka_calloc((size_t)ka_pgres_rows(res) + 1, sizeof *q->nodes);
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        const char *node = ka_pgres_value(res, i, 0);
        int rep = rep_index(q->g, ka_pgres_value(res, i, 1));
        if (rep < 0)
            continue; /* not a rep kagen plays (no managed team) */
        if (q->nnodes == 0 || strcmp(q->nodes[q->nnodes - 1].id, node) != 0)
            q->nodes[q->nnodes++].id = ka_strdup(node);
        q->nodes[q->nnodes - 1].monthly += q->quota[rep];
    }
    return 0;
}

void quota_run_rates(const ogen_t *og, int64_t split, int64_t *run_rate)
{
    const gen_t *g = og->g;
    memset(run_rate, 0, (size_t)g->nreps * sizeof *run_rate);
    for (int i = 0; i < og->norders; i++) {
        const order_plan_t *o = &og->orders[i];
        if (o->booked_ms < split - QUOTA_WINDOW_DAYS * DAY_MS || o->booked_ms >= split)
            continue;
        if ((o->cancelled_ms && o->cancelled_ms < split) ||
            (o->returned_ms && o->returned_ms < split))
            continue;
        for (int l = 0; l < o->nlines; l++) {
            const oline_t *line = &og->lines[o->line0 + l];
            run_rate[o->rep] += line->qty_milli / 1000 * line->price;
        }
    }
    for (int r = 0; r < g->nreps; r++)
        run_rate[r] = run_rate[r] * 30 / QUOTA_WINDOW_DAYS;
}

int write_quotas(const ogen_t *og, ka_pg_t *pg, uint64_t seed, int64_t split, FILE *out,
                 char *err, size_t errlen)
{
    const gen_t *g = og->g;
    int64_t *run_rate = ka_calloc((size_t)g->nreps + 1, sizeof *run_rate);
    int64_t *quota = ka_calloc((size_t)g->nreps + 1, sizeof *quota);
    int64_t all = 0, total = 0;
    int with = 0, year, month, rc = -1;
    gen_t qr = {.seed = seed ^ 0x71756f746173ULL}; /* a random stream of its own */
    qgen_t q = {.g = g, .quota = quota};

    quota_run_rates(og, split, run_rate);
    for (int r = 0; r < g->nreps; r++)
        if (run_rate[r] > 0) {
            all += run_rate[r];
            with++;
        }
    for (int r = 0; r < g->nreps; r++) {
        int64_t base = run_rate[r];
        if (base == 0) { /* the team's mean, else the company's */
            int64_t sum = 0;
            int n = 0;
            for (int o = 0; o < g->nreps; o++)
                if (run_rate[o] > 0 && strcmp(g->reps[o].team, g->reps[r].team) == 0) {
                    sum += run_rate[o];
                    n++;
                }
            base = n ? sum / n : with ? all / with : 0;
        }
        int64_t pct = 90 + (int64_t)rnd(&qr, 21);
        /* to the thousand yuan, half up */
        quota[r] = (base * pct / 100 + 50000) / 100000 * 100000;
        total += quota[r];
    }
    if (ka_pg_query(pg,
                    "SELECT c.ancestor_id, c.descendant_id FROM org_closure c JOIN org_node r "
                    "ON r.id = c.descendant_id WHERE r.kind = 'rep' AND r.active "
                    "ORDER BY c.ancestor_id COLLATE \"C\", c.descendant_id COLLATE \"C\"",
                    0, NULL, read_closure, &q, err, errlen) != KA_OK)
        goto out;
    ym_of(g->now_ms, &year, &month);
    fprintf(out, "node_id,period_kind,period_start,amount_minor\n");
    for (int n = 0; n < q.nnodes; n++)
        for (int y = year; y <= year + 1; y++) {
            for (int m = 1; m <= 12; m++)
                fprintf(out, "%s,month,%04d-%02d-01,%lld\n", q.nodes[n].id, y, m,
                        (long long)q.nodes[n].monthly);
            for (int k = 0; k < 4; k++)
                fprintf(out, "%s,quarter,%04d-%02d-01,%lld\n", q.nodes[n].id, y, k * 3 + 1,
                        (long long)q.nodes[n].monthly * 3);
        }
    fprintf(stderr, "kagen: quotas of %d reps (%d of them without revenue in the %d days "
                    "before phase 2) and %d nodes for %d and %d: %lld a month in all, each "
                    "rep 90%% to 110%% of its run rate\n",
            g->nreps, g->nreps - with, QUOTA_WINDOW_DAYS, q.nnodes, year, year + 1,
            (long long)(total / 100));
    rc = 0;
out:
    for (int n = 0; n < q.nnodes; n++)
        free(q.nodes[n].id);
    free(q.nodes);
    free(run_rate);
    free(quota);
    return rc;
}

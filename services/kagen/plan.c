/* The opportunity plan every stream starts from: each deal's whole life
 * (stage moves forward and back, amount updates, owner changes by the team
 * manager, wins and losses), from the seed's random stream. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka/v1/opportunity.pb-c.h"
#include "kagen.h"

uint32_t rnd(gen_t *g, uint32_t n)
{
    g->seed = g->seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return n ? (uint32_t)(g->seed >> 33) % n : 0;
}

int read_reps(void *ud, const ka_pgres_t *res)
{
    gen_t *g = ud;
    g->nreps = ka_pgres_rows(res);
    g->reps = ka_calloc((size_t)g->nreps + 1, sizeof *g->reps);
    for (int i = 0; i < g->nreps; i++) {
        const char *v[6];
        for (int c = 0; c < 6; c++)
            v[c] = ka_pgres_value(res, i, c) ? ka_pgres_value(res, i, c) : "";
        g->reps[i].id = ka_strdup(v[0]);
        g->reps[i].team = ka_strdup(v[1]);
        g->reps[i].manager = ka_strdup(v[2]);
        g->reps[i].bu = ka_strdup(v[3]);
        g->reps[i].def = ka_strdup(v[4]);
        g->reps[i].area = ka_strdup(v[5]);
    }
    return 0;
}

int is_dry(const gen_t *g, const char *team)
{
    for (int i = 0; i < g->ndry; i++)
        if (strcmp(g->dry_teams[i], team) == 0)
            return 1;
    return 0;
}

void add(gen_t *g, int64_t at, int opp, int kind, const char *stage, int64_t amount,
                int new_owner)
{
    if (g->nevents == g->capevents) {
        g->capevents = g->capevents ? g->capevents * 2 : 4096;
        g->events = ka_realloc(g->events, (size_t)g->capevents * sizeof *g->events);
    }
    plan_event_t *e = &g->events[g->nevents];
    memset(e, 0, sizeof *e);
    e->at_ms = at;
    e->opp = opp;
    e->kind = kind;
    snprintf(e->stage, sizeof e->stage, "%s", stage ? stage : "");
    e->amount = amount;
    e->new_owner = new_owner;
    e->seq = g->nevents++;
}

/* Plans one opportunity's whole life. */
void plan_opportunity(gen_t *g, int opp, int64_t start, int64_t split)
{
    int rep = (int)rnd(g, (uint32_t)g->nreps);
    int dry = is_dry(g, g->reps[rep].team);
    int max_stage = strcmp(g->reps[rep].def, "project-6") == 0 ? 5 : 7;
    int stage = 1 + (int)rnd(g, 2);
    int64_t t = start;
    char code[16];

    if (dry && start >= split)
        return; /* a dry team opens nothing new */
    g->owner[opp] = rep;
    snprintf(code, sizeof code, "%02d", stage);
    add(g, t, opp, KA__V1__OPPORTUNITY_EVENT__KIND_CREATED, code,
        100000LL * (50 + (int64_t)rnd(g, 5000)), rep);
    for (;;) {
        t += DAY_MS * (2 + (int64_t)rnd(g, 12));
        if (t > g->now_ms)
            return;
        uint32_t dice = rnd(g, 100);
        if (dry && t >= split) { /* the dry spell: deals slip away */
            if (dice < 60) {
                add(g, t, opp, KA__V1__OPPORTUNITY_EVENT__KIND_LOST, NULL, 0, 0);
                return;
            }
            continue;
        }
        if (dice < 45 && stage < max_stage) {
            snprintf(code, sizeof code, "%02d", ++stage);
            add(g, t, opp, KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED, code, 0, 0);
        } else if (dice < 52 && stage > 1) {
            snprintf(code, sizeof code, "%02d", --stage); /* a step back */
            add(g, t, opp, KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED, code, 0, 0);
        } else if (dice < 62) {
            add(g, t, opp, KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED, NULL,
                100000LL * (50 + (int64_t)rnd(g, 5000)), 0);
        } else if (dice < 65) {
            /* the team manager hands the deal to a colleague in the team */
            int to = (int)rnd(g, (uint32_t)g->nreps);
            if (strcmp(g->reps[to].team, g->reps[g->owner[opp]].team) == 0 && to != g->owner[opp]) {
                add(g, t, opp, KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED, NULL, 0, to);
                g->owner[opp] = to;
            }
        } else if (dice < 72u + 2u * (uint32_t)stage && stage >= max_stage - 1) {
            add(g, t, opp, KA__V1__OPPORTUNITY_EVENT__KIND_WON, NULL, 0, 0);
            return;
        } else if (dice < 80) {
            add(g, t, opp, KA__V1__OPPORTUNITY_EVENT__KIND_LOST, NULL, 0, 0);
            return;
        }
    }
}

int by_time(const void *a, const void *b)
{
    const plan_event_t *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    return x->seq - y->seq;
}

void date_of(int64_t ms, char out[11])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

void ym_of(int64_t ms, int *year, int *month)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    *year = tm.tm_year + 1900;
    *month = tm.tm_mon + 1;
}


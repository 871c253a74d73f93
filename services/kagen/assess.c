/* 商机价值评估: the owners' value assessments on the opportunity stream,
 * planned from a random stream of their own after the rest, so every other
 * event stays as it was. Twenty yes/no questions in four dimensions of five
 * (is there an opportunity, can we compete, can we win, is it worth
 * winning); a score over 10 is a high-value deal. Two deals in five are
 * assessed a few days after they reach stage 02; one in five of those again
 * when they reach stage 04. The answers lean the way the deal goes, not
 * all the way: a deal that will be won says yes to about two questions in
 * three, one that will be lost to under half, and an assessment late in the
 * funnel knows more. */
#include <stdlib.h>
#include <string.h>

#include "ka/v1/opportunity.pb-c.h"
#include "kagen.h"

static uint32_t answers(gen_t *g, int yes_pct)
{
    uint32_t a = 0;
    for (int q = 0; q < 20; q++)
        if ((int)rnd(g, 100) < yes_pct)
            a |= 1u << q;
    return a;
}

static void assess(gen_t *g, int64_t at, int opp, int yes_pct)
{
    add(g, at, opp, KA__V1__OPPORTUNITY_EVENT__KIND_ASSESSED, NULL, 0, 0);
    g->events[g->nevents - 1].answers = answers(g, yes_pct);
}

/* g->events[0..n0) is the deals' plan, each deal's events contiguous. */
void plan_assessments(gen_t *g, int n0)
{
    uint64_t saved = g->seed;
    g->seed ^= 0x6173736573736d74ULL;
    for (int i = 0, j; i < n0; i = j) {
        int opp = g->events[i].opp, outcome = 0; /* 1 won, -1 lost */
        int64_t end = INT64_MAX, t2 = 0, t4 = 0;
        for (j = i; j < n0 && g->events[j].opp == opp; j++) {
            const plan_event_t *e = &g->events[j];
            int stage = e->stage[0] ? atoi(e->stage) : 0;
            if (stage >= 2 && !t2)
                t2 = e->at_ms;
            if (stage >= 4 && !t4)
                t4 = e->at_ms;
            if (e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_WON ||
                e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_LOST) {
                end = e->at_ms;
                outcome = e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_WON ? 1 : -1;
            }
        }
        if (!t2 || rnd(g, 100) >= 40)
            continue;
        int yes = outcome > 0 ? 65 : outcome < 0 ? 45 : 55;
        int64_t at = t2 + HOUR_MS * (4 + (int64_t)rnd(g, 6 * 24));
        if (at >= end || at > g->now_ms)
            continue;
        assess(g, at, opp, yes);
        int64_t again = t4 + HOUR_MS * (4 + (int64_t)rnd(g, 4 * 24));
        if (t4 > at && again < end && again <= g->now_ms && rnd(g, 100) < 20)
            assess(g, again, opp, outcome > 0 ? 75 : outcome < 0 ? 35 : 55);
    }
    g->seed = saved;
}

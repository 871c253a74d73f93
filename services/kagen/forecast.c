/* The owners' forecast confirmations (商机确认) and the managers'
 * adjustments (修订销售预测) on the opportunity stream, planned from a random
 * stream of their own after the rest. */
#include <stdlib.h>
#include <string.h>

#include "ka/v1/opportunity.pb-c.h"
#include "forecast.h"
#include "repeat.h"

static void add_confirm(gen_t *g, int64_t at, int opp, int64_t close, int quarter, int category)
{
    int y, m;
    ym_of(close, &y, &m);
    add(g, at, opp, KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED, NULL, 0, 0);
    plan_event_t *e = &g->events[g->nevents - 1];
    e->quarter = quarter;
    e->year = y;
    e->number = quarter ? (m - 1) / 3 + 1 : m;
    e->category = category;
}

/* 商机确认 and 修订销售预测, from a random stream of their own and after the
 * rest is planned, so every other event stays as it was: a deal that ends
 * expects to close near when it does (its created event's close date, up to
 * two weeks early or a few days late); most deals that reach stage 03 are
 * confirmed by their owner a few days later for the month of their expected
 * close date (a few for its quarter only; some with an explicit category:
 * commit, best case, now and then omitted); most still open a week or so
 * before that date move it out (to a few days after they close) and confirm
 * the later month, still commit if called so; most deals that will be won
 * are called commit a few weeks before, some others late in the funnel; in
 * phase 2 a few team managers adjust their team's commit for the current
 * month (their repeat business's too). Each opportunity's events are
 * contiguous here, in time order. */
void plan_forecast(gen_t *g, ogen_t *og, int nopps, int64_t split)
{
    uint64_t saved = g->seed;
    int n0 = g->nevents, ny, nm;
    int *month_of = ka_calloc((size_t)nopps + 1, sizeof *month_of); /* y*12+m of the count */
    int64_t *amount = ka_calloc((size_t)nopps + 1, sizeof *amount);
    g->seed ^= 0x666f726563617374ULL;
    ym_of(g->now_ms, &ny, &nm);
    for (int i = 0, j; i < n0; i = j) {
        int opp = g->events[i].opp, stage = atoi(g->events[i].stage);
        /* late: where an owner may call it commit (the stage before the default's) */
        int late_stage = strcmp(g->reps[g->owner[opp]].def, "project-6") == 0 ? 4 : 6;
        int64_t created = g->events[i].at_ms, end = INT64_MAX, t3 = 0, t5 = INT64_MAX;
        int64_t close = created + DAY_MS * 90, last_amount = g->events[i].amount;
        int won = 0;
        for (j = i; j < n0 && g->events[j].opp == opp; j++) {
            const plan_event_t *e = &g->events[j];
            if (e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED ||
                e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED)
                stage = atoi(e->stage);
            if (e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED)
                last_amount = e->amount;
            if (e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_WON ||
                e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_LOST) {
                end = e->at_ms;
                won = e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_WON;
            }
            if (stage >= 3 && !t3)
                t3 = e->at_ms;
            if (stage >= late_stage && t5 == INT64_MAX)
                t5 = e->at_ms;
        }
        /* the owner's expected close date: when it does close, up to two weeks
         * early or a few days late (90 days on for a deal still open at the
         * end) */
        if (end != INT64_MAX) {
            close = end + DAY_MS * ((int64_t)rnd(g, 20) - 14);
            if (close < created + 14 * DAY_MS)
                close = created + 14 * DAY_MS;
            g->events[i].close_ms = close;
        }
        if (!t3 || rnd(g, 100) >= (uint32_t)(won ? 95 : 80))
            continue;
        int64_t tc = t3 + HOUR_MS * (2 + (int64_t)rnd(g, 5 * 24));
        if (tc >= end || tc > g->now_ms)
            continue;
        /* the owner fills in the products (配置需求) as they confirm it: one to
         * three lines worth about the deal's amount of the moment */
        int64_t at_amount = g->events[i].amount;
        for (int k = i; k < j && g->events[k].at_ms <= tc; k++)
            if (g->events[k].kind == KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED)
                at_amount = g->events[k].amount;
        if (og->nproducts) {
            int nl = 1 + (int)rnd(g, 3);
            add(g, tc - HOUR_MS, opp, KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED, NULL, 0, 0);
            plan_event_t *le = &g->events[g->nevents - 1];
            for (int l = 0; l < nl; l++) {
                int pi = pick_product(og, &g->reps[g->owner[opp]], NULL, at_amount / nl);
                int64_t price = og->products[pi].list * (88 + (int64_t)rnd(g, 13)) / 100;
                int64_t qty = at_amount / nl / (price ? price : 1);
                le->sku[le->nlines] = og->products[pi].sku;
                le->qty_milli[le->nlines] = (qty < 1 ? 1 : qty) * 1000;
                le->price[le->nlines++] = price;
            }
        }
        uint32_t d = rnd(g, 100);
        int quarter = rnd(g, 100) < 8;
        int category = d < 8    ? KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_BEST_CASE
                       : d >= 97 ? KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_OMITTED
                                 : KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_UNSPECIFIED;
        add_confirm(g, tc, opp, close, quarter, category);
        int y, m;
        ym_of(close, &y, &m);
        month_of[opp] = quarter ? 0 : y * 12 + m;
        /* late in the funnel some owners call it commit, for the period of the
         * close date of the moment; the owner of a deal that will be won
         * knows it a few weeks ahead */
        int64_t tl = t5 == INT64_MAX ? INT64_MAX : t5 + HOUR_MS * (2 + (int64_t)rnd(g, 70));
        int64_t ahead = won ? end - DAY_MS * (12 + (int64_t)rnd(g, 40)) : INT64_MAX;
        if (ahead < tl)
            tl = ahead > tc ? ahead : tc + HOUR_MS * (1 + (int64_t)rnd(g, 24));
        int calls = tl > tc && tl < end && tl <= g->now_ms && rnd(g, 100) < (won ? 90 : 45);
        /* the close date comes near, the deal is still open: it moves out, to
         * when it now looks like closing (a few days after it will, for a
         * deal that ends, else weeks on); confirmed for the later month, still
         * commit once called so */
        int64_t tm = close - DAY_MS * (1 + (int64_t)rnd(g, 10)), first_close = close;
        if (!quarter && tm > tc && tm < end && tm <= g->now_ms && rnd(g, 100) < 75) {
            int64_t out = DAY_MS * (20 + (int64_t)rnd(g, 50)), soon = DAY_MS * (int64_t)rnd(g, 10);
            close = end != INT64_MAX && end + soon > close ? end + soon : close + out;
            add(g, tm, opp, KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED, NULL, 0, 0);
            g->events[g->nevents - 1].close_ms = close;
            int64_t tr = tm + HOUR_MS * (1 + (int64_t)rnd(g, 30));
            if (tr < end && tr <= g->now_ms) {
                add_confirm(g, tr, opp, close, 0,
                            calls && tl < tr ? KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_COMMIT
                                             : category);
                ym_of(close, &y, &m);
                month_of[opp] = y * 12 + m;
            }
        }
        if (calls) {
            int64_t c = tl >= tm && close != first_close ? close : first_close;
            add_confirm(g, tl, opp, c, quarter,
                        KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_COMMIT);
            category = KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_COMMIT;
            if (!quarter && !(close != first_close && tl < tm + HOUR_MS * 31)) {
                ym_of(c, &y, &m);
                month_of[opp] = y * 12 + m;
            }
        }
        /* what it adds to the commit now: called commit, or at the commit stage */
        int commit = category == KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_COMMIT ||
                     (category == KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_UNSPECIFIED &&
                      stage >= late_stage + 1);
        amount[opp] = end == INT64_MAX && commit ? last_amount : 0;
    }
    /* phase 2: a few team managers adjust their team's commit for this month,
     * up or down from what their team's commit deals confirmed for it add up
     * to in the end (an estimate: the raw figure is the worker's) */
    int adjusted[4];
    for (int k = 0, tries = 0; k < 4 && tries < 100; tries++) {
        int rep = (int)rnd(g, (uint32_t)g->nreps), again = 0;
        for (int a = 0; a < k; a++)
            again |= strcmp(g->reps[adjusted[a]].team, g->reps[rep].team) == 0;
        if (again || is_dry(g, g->reps[rep].team) || !g->reps[rep].manager[0])
            continue;
        int64_t sum = 0;
        for (int o = 0; o < nopps; o++)
            if (month_of[o] == ny * 12 + nm && strcmp(g->reps[g->owner[o]].team,
                                                      g->reps[rep].team) == 0)
                sum += amount[o];
        /* and the repeat business its reps call commit */
        sum += repeat_commit_open(og, g->reps[rep].team, ny * 12 + nm - 1);
        /* office hours in China: 01:00 to 09:00 UTC */
        int64_t at = (split / DAY_MS + 2 + (int64_t)rnd(g, RECENT_DAYS - 3)) * DAY_MS +
                     HOUR_MS * (1 + (int64_t)rnd(g, 8)) + 60000 * (int64_t)rnd(g, 60);
        if (sum == 0 || at > g->now_ms)
            continue;
        int64_t pct = 70 + (int64_t)rnd(g, 60);
        add(g, at, 0, KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED, NULL,
            sum * pct / 100 / 1000000 * 1000000, 0);
        plan_event_t *e = &g->events[g->nevents - 1];
        adjusted[k] = rep;
        e->year = ny;
        e->number = nm;
        e->category = KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_COMMIT;
        e->adj_rep = rep;
        k++;
    }
    free(month_of);
    free(amount);
    g->seed = saved;
}

/* What an order stream held, for the summary on stderr. */

/* A confirmation counts for the deal's owner only: after a hand-over the new
 * owner confirms the deal again (the period and category of the latest
 * confirmation), within two days; and once, in phase 2, a colleague in the
 * team confirms someone else's deal, which the worker refuses (a dead
 * letter). From a random stream of their own, after plan_forecast: the
 * deals' plan is g->events[0..n0), the forecast events [n0..n1). */
void plan_reconfirmations(gen_t *g, int nopps, int n0, int n1, int64_t split)
{
    uint64_t saved = g->seed;
    int candidates = 0, pick = -1;
    /* plan_forecast adds each deal's events together: where they are */
    int *from = ka_calloc((size_t)nopps + 1, sizeof *from);
    int *to = ka_calloc((size_t)nopps + 1, sizeof *to);
    for (int c = n0; c < n1; c++) {
        const plan_event_t *e = &g->events[c];
        if (e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED)
            continue;
        if (to[e->opp] == 0)
            from[e->opp] = c;
        to[e->opp] = c + 1;
    }
    g->seed ^= 0x72656366726d6564ULL;
    for (int i = 0, j; i < n0; i = j) {
        int opp = g->events[i].opp;
        int64_t end = INT64_MAX;
        for (j = i; j < n0 && g->events[j].opp == opp; j++)
            if (g->events[j].kind == KA__V1__OPPORTUNITY_EVENT__KIND_WON ||
                g->events[j].kind == KA__V1__OPPORTUNITY_EVENT__KIND_LOST)
                end = g->events[j].at_ms;
        for (int k = i; k < j; k++) {
            const plan_event_t *oc = &g->events[k];
            if (oc->kind != KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED)
                continue;
            const plan_event_t *last = NULL;
            for (int c = from[opp]; c < to[opp]; c++) {
                const plan_event_t *e = &g->events[c];
                if (e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED &&
                    e->at_ms < oc->at_ms && (!last || e->at_ms >= last->at_ms))
                    last = e;
            }
            int64_t at = oc->at_ms + HOUR_MS * (2 + (int64_t)rnd(g, 46));
            if (!last || at >= end || at > g->now_ms)
                continue;
            plan_event_t copy = *last;
            add(g, at, opp, KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED, NULL, 0, 0);
            plan_event_t *e = &g->events[g->nevents - 1];
            e->quarter = copy.quarter;
            e->year = copy.year;
            e->number = copy.number;
            e->category = copy.category;
        }
    }
    /* the colleague's mistake: one of phase 2's confirmations, by the seed */
    for (int pass = 0; pass < 2; pass++) {
        int n = 0;
        for (int c = n0; c < n1; c++) {
            const plan_event_t *e = &g->events[c];
            if (e->kind != KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED ||
                e->at_ms < split || e->at_ms + 3 * HOUR_MS > g->now_ms)
                continue;
            if (pass == 0) {
                candidates++;
                continue;
            }
            if (n++ != pick)
                continue;
            int owner = g->owner[e->opp], colleague = -1;
            for (int r = 0; r < g->nreps && colleague < 0; r++)
                if (r != owner && strcmp(g->reps[r].team, g->reps[owner].team) == 0)
                    colleague = r;
            if (colleague < 0)
                break; /* a team of one */
            plan_event_t copy = *e;
            add(g, copy.at_ms + HOUR_MS * (1 + (int64_t)rnd(g, 2)), copy.opp,
                KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED, NULL, 0, 0);
            plan_event_t *s = &g->events[g->nevents - 1];
            s->quarter = copy.quarter;
            s->year = copy.year;
            s->number = copy.number;
            s->category = copy.category;
            s->stranger = colleague + 1;
            break;
        }
        if (pass == 0) {
            if (!candidates)
                break;
            pick = (int)rnd(g, (uint32_t)candidates);
        }
    }
    free(from);
    free(to);
    g->seed = saved;
}

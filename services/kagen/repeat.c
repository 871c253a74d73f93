/* Repeat business on the opportunity stream. A key account calls off its
 * framework agreement month by month, and its rep forecasts that business
 * like any deal: when the customer's purchase plan names a month (a quarter
 * or so ahead for a big customer of over a year, some weeks ahead for the
 * others), the account's owner opens an opportunity for the account's repeat
 * business of that month, confirms it for the month as best case and, once
 * the customer firms the plan, fills in its products and quantities, revises
 * the amount and calls it commit. The month's orders name it: the first
 * closes it as won, the others deliver the rest. Each rep estimates with a
 * bias of its own (90% to 129% of what the customer orders), so teams
 * forecast better or worse than others; the months of small accounts (under
 * REPEAT_OPP_MIN) go unforecast, as does now and then a smaller account's.
 * The coming months have opportunities for what has not been ordered yet; an
 * account that stops ordering in phase 2 loses them, and a dry team opens
 * none in phase 2. Planned from a random stream of its own, after the rest,
 * so every other event stays as it was. */
#include <stdlib.h>
#include <string.h>

#include "ka/v1/opportunity.pb-c.h"
#include "repeat.h"

typedef struct rrng {
    uint64_t s;
} rrng_t;

static uint32_t rr(rrng_t *r, uint32_t n)
{
    r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
    return n ? (uint32_t)(r->s >> 33) % n : 0;
}

/* Days since 1970-01-01 of the first day of month ym (year * 12 + month - 1). */
static int64_t month_start_ms(int ym)
{
    int64_t y = ym / 12, m = ym % 12 + 1;
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (era * 146097 + doe - 719468) * DAY_MS;
}

static int ym_at(int64_t ms)
{
    int y, m;
    ym_of(ms, &y, &m);
    return y * 12 + m - 1;
}

static int64_t order_total(const ogen_t *og, const order_plan_t *o)
{
    int64_t t = 0;
    for (int l = 0; l < o->nlines; l++)
        t += og->lines[o->line0 + l].qty_milli / 1000 * og->lines[o->line0 + l].price;
    return t;
}

/* to the thousand yuan */
static int64_t round_k(int64_t minor)
{
    int64_t r = (minor + 50000) / 100000 * 100000;
    return r > 0 ? r : 100000;
}

static repeat_opp_t *new_repeat(ogen_t *og)
{
    if (og->nrepeats == og->caprepeats) {
        og->caprepeats = og->caprepeats ? og->caprepeats * 2 : 1024;
        og->repeats = ka_realloc(og->repeats, (size_t)og->caprepeats * sizeof *og->repeats);
    }
    repeat_opp_t *r = &og->repeats[og->nrepeats++];
    memset(r, 0, sizeof *r);
    return r;
}

/* A big customer of over a year schedules its call-offs under a yearly
 * framework agreement. */
#define FRAMEWORK(c) ((c)->established && (c)->size >= 20)

/* When it moves, for a month whose first call-off is at b1. A framework
 * customer schedules its call-offs a quarter or so ahead: its months are
 * opened 85 to 115 days before b1 and called commit within ten days;
 * another's are opened 35 to 59 days before and called commit 20 to 38 days
 * before b1; one in 25 is never called commit. It
 * moves through three middle stages of the funnel (03 to 05 of the default
 * one, 02 to 04 of the project process) in about equal parts, the last a
 * quarter to over a third of its life, so no stage outlasts its dwell limit
 * (45 days at the least) and a decision maker unseen matters only in the
 * last; it is won by the order: the commercial stage is the new deals', not
 * the call-offs'. The close date is b1 or a few days on, in the month. */
static void timeline(rrng_t *rg, repeat_opp_t *r, int64_t b1, int framework)
{
    int64_t m1 = month_start_ms(r->ym + 1);
    uint32_t lead = rr(rg, 31 - 6 * !framework), call = rr(rg, framework ? 10 : 19);
    int64_t c = b1 - DAY_MS * ((framework ? 85 : 35) + (int64_t)lead) -
                HOUR_MS * (int64_t)rr(rg, 9);
    r->created = c;
    r->confirmed = c + HOUR_MS * (1 + (int64_t)rr(rg, 30));
    r->committed = 0;
    if (rr(rg, 25) != 0) {
        int64_t k = framework ? c + DAY_MS * (1 + (int64_t)call)
                              : b1 - DAY_MS * (20 + (int64_t)call);
        k += HOUR_MS * (int64_t)rr(rg, 8);
        r->committed = k > r->confirmed ? k : r->confirmed + HOUR_MS;
    }
    int64_t life = b1 - c, last = life * (25 + (int64_t)rr(rg, 14)) / 100;
    r->stage3 = b1 - last;
    r->stage2 = c + (life - last) / 2;
    if (r->stage2 <= r->confirmed)
        r->stage2 = r->confirmed + HOUR_MS;
    int64_t close = b1 + DAY_MS * (int64_t)rr(rg, 4);
    r->close = close < m1 ? close : m1 - HOUR_MS;
}

/* The month's products: the lines of its orders, one line per product. */
static void add_lines(repeat_opp_t *r, const ogen_t *og, const order_plan_t *o)
{
    for (int l = 0; l < o->nlines; l++) {
        const oline_t *ol = &og->lines[o->line0 + l];
        int k = 0;
        while (k < r->nlines && r->product[k] != ol->product)
            k++;
        if (k < r->nlines) {
            r->qty_milli[k] += ol->qty_milli;
        } else if (r->nlines < PLAN_MAX_LINES) {
            r->product[k] = ol->product;
            r->qty_milli[k] = ol->qty_milli;
            r->price[k] = ol->price;
            r->nlines++;
        }
    }
}

static const ogen_t *sort_og; /* by_acct_month's orders */

static int by_acct_month(const void *a, const void *b)
{
    const ogen_t *og = sort_og;
    const order_plan_t *x = &og->orders[*(const int *)a], *y = &og->orders[*(const int *)b];
    int mx = ym_at(x->booked_ms), my = ym_at(y->booked_ms);
    if (x->acct != y->acct)
        return x->acct - y->acct;
    if (mx != my)
        return mx - my;
    if (x->booked_ms != y->booked_ms)
        return x->booked_ms < y->booked_ms ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

void plan_repeat(ogen_t *og, int nopps)
{
    const gen_t *g = og->g;
    rrng_t rg = {og->seed ^ 0x7265706561746f70ULL};
    int64_t hbegin = g->now_ms - (int64_t)(HISTORY_DAYS + RECENT_DAYS) * DAY_MS;
    int *bias = ka_calloc((size_t)g->nreps + 1, sizeof *bias);
    int *idx = ka_calloc((size_t)og->norders + 1, sizeof *idx);
    /* per account: the lines of its latest month with an opportunity, and
     * whether the current month already has one */
    int *last = ka_calloc((size_t)og->ncusts + 1, sizeof *last);
    int n = 0;

    for (int r = 0; r < g->nreps; r++)
        bias[r] = 90 + (int)rr(&rg, 40);
    for (int i = 0; i < og->norders; i++)
        if (og->orders[i].opp < 0 && og->orders[i].booked_ms >= hbegin)
            idx[n++] = i;
    sort_og = og;
    qsort(idx, (size_t)n, sizeof *idx, by_acct_month);

    /* the months ordered: one opportunity each, if big enough */
    for (int i = 0, j; i < n; i = j) {
        const order_plan_t *o = &og->orders[idx[i]];
        const cust_t *c = &og->custs[o->acct];
        int ym = ym_at(o->booked_ms);
        int64_t total = 0;
        for (j = i; j < n && og->orders[idx[j]].acct == o->acct &&
                    ym_at(og->orders[idx[j]].booked_ms) == ym;
             j++)
            total += order_total(og, &og->orders[idx[j]]);
        uint32_t logged = rr(&rg, 20), spread = rr(&rg, 41), firm = rr(&rg, 11);
        /* a rep always forecasts its key accounts, now and then forgets a
         * smaller one's month */
        if (total < REPEAT_OPP_MIN || (logged == 0 && total < 5 * REPEAT_OPP_MIN))
            continue;
        repeat_opp_t *r = new_repeat(og);
        r->opp = nopps + og->nrepeats - 1;
        r->acct = o->acct;
        r->rep = o->rep;
        r->ym = ym;
        r->booked = 1;
        timeline(&rg, r, o->booked_ms, FRAMEWORK(c));
        if (r->created >= og->split && is_dry(g, g->reps[r->rep].team)) {
            og->nrepeats--; /* a dry team opens nothing new: the month goes unforecast */
            continue;
        }
        /* a customer drifting away orders less than its rep expects */
        int64_t usual = c->yearly / 12, base = total;
        if (c->churner && o->booked_ms >= og->split - 30 * DAY_MS && usual > base)
            base = usual;
        r->estimate = round_k(base * bias[r->rep] / 100 * (80 + (int64_t)spread) / 100);
        r->refined = round_k(base * bias[r->rep] / 100 *
                             (95 + (int64_t)firm) / 100);
        for (int k = i; k < j; k++) {
            order_plan_t *ok = &og->orders[idx[k]];
            ok->opp = r->opp;
            ok->repeat_opp = 1;
            add_lines(r, og, ok);
        }
        last[o->acct] = og->nrepeats; /* index + 1 */
    }

    /* what the accounts have not ordered yet: the months of an account's
     * coming call-offs whose opportunities are open by now; an account that
     * stopped ordering, the months since, which its rep opened before phase
     * 2 and gives up in it */
    int split_ym = ym_at(og->split);
    for (int a = 0; a < og->ncusts; a++) {
        const cust_t *c = &og->custs[a];
        int pi = last[a] - 1; /* its last month ordered, -1: none */
        if (!c->seen || c->yearly / 12 < REPEAT_OPP_MIN || (!c->churner && !c->next_ms))
            continue;
        int per_year = 4 + 4 * (c->size < 5 ? c->size : 5), done = pi >= 0 ? og->repeats[pi].ym : -1;
        int64_t t = c->churner ? month_start_ms(split_ym) : c->next_ms;
        for (; t <= g->now_ms + 150 * DAY_MS;
             t = c->churner ? month_start_ms(ym_at(t) + 1) : t + DAY_MS * 365 / per_year) {
            uint32_t spread = rr(&rg, 41), firm = rr(&rg, 11), day = rr(&rg, 23);
            int ym = ym_at(t);
            int64_t b1 = c->churner ? t + DAY_MS * (3 + (int64_t)day) : t;
            if (ym <= done)
                continue; /* ordered already (its opportunity is won), or one month */
            done = ym;
            repeat_opp_t f = {.opp = nopps + og->nrepeats, .acct = a, .rep = c->owner, .ym = ym};
            timeline(&rg, &f, b1, FRAMEWORK(c));
            if (f.created > g->now_ms || (f.created >= og->split && is_dry(g, g->reps[f.rep].team)))
                continue;
            if (c->churner) { /* it stopped ordering: the rep gives the month up */
                if (f.created >= og->split)
                    continue;
                f.lost = og->split + DAY_MS * (3 + (int64_t)rr(&rg, 16)) +
                         HOUR_MS * (int64_t)rr(&rg, 9);
            }
            int64_t base = c->yearly / 12;
            f.estimate = round_k(base * bias[f.rep] / 100 * (80 + (int64_t)spread) / 100);
            f.refined = round_k(base * bias[f.rep] / 100 * (95 + (int64_t)firm) / 100);
            if (pi >= 0) { /* the products of its last month (new_repeat moves them) */
                const repeat_opp_t *prev = &og->repeats[pi];
                f.nlines = prev->nlines;
                memcpy(f.product, prev->product, sizeof f.product);
                memcpy(f.qty_milli, prev->qty_milli, sizeof f.qty_milli);
                memcpy(f.price, prev->price, sizeof f.price);
            }
            *new_repeat(og) = f;
        }
    }
    free(bias);
    free(idx);
    free(last);
}

static void confirm(gen_t *g, int64_t at, int opp, int ym, int category)
{
    add(g, at, opp, KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED, NULL, 0, 0);
    plan_event_t *e = &g->events[g->nevents - 1];
    e->year = ym / 12;
    e->number = ym % 12 + 1;
    e->category = category;
}

/* An event at or before now (what lies after has not happened), and before
 * the opportunity was lost. */
static int happens(const gen_t *g, const repeat_opp_t *r, int64_t at)
{
    return at && at <= g->now_ms && (!r->lost || at < r->lost);
}

void repeat_events(gen_t *g, const ogen_t *og)
{
    for (int i = 0; i < og->nrepeats; i++) {
        const repeat_opp_t *r = &og->repeats[i];
        int project = strcmp(g->reps[r->rep].def, "project-6") == 0;
        add(g, r->created, r->opp, KA__V1__OPPORTUNITY_EVENT__KIND_CREATED,
            project ? "02" : "03", r->estimate, r->rep);
        g->events[g->nevents - 1].close_ms = r->close;
        g->events[g->nevents - 1].acct = r->acct + 1;
        if (happens(g, r, r->confirmed))
            confirm(g, r->confirmed, r->opp, r->ym,
                    KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_BEST_CASE);
        /* the plan firms: products, quantities, the revised amount; commit */
        if (happens(g, r, r->committed)) {
            add(g, r->committed, r->opp, KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED, NULL,
                r->refined, 0);
            plan_event_t *e = &g->events[g->nevents - 1];
            for (int l = 0; l < r->nlines; l++) {
                e->sku[l] = og->products[r->product[l]].sku;
                e->qty_milli[l] = r->qty_milli[l];
                e->price[l] = r->price[l];
            }
            e->nlines = r->nlines;
        }
        if (r->committed && happens(g, r, r->committed + 60000))
            confirm(g, r->committed + 60000, r->opp, r->ym,
                    KA__V1__FORECAST_CATEGORY__FORECAST_CATEGORY_COMMIT);
        if (happens(g, r, r->stage2))
            add(g, r->stage2, r->opp, KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED,
                project ? "03" : "04", 0, 0);
        if (happens(g, r, r->stage3))
            add(g, r->stage3, r->opp, KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED,
                project ? "04" : "05", 0, 0);
        if (r->lost && r->lost <= g->now_ms)
            add(g, r->lost, r->opp, KA__V1__OPPORTUNITY_EVENT__KIND_LOST, NULL, 0, 0);
    }
}

int64_t repeat_commit_open(const ogen_t *og, const char *team, int ym)
{
    const gen_t *g = og->g;
    int64_t sum = 0;
    for (int i = 0; i < og->nrepeats; i++) {
        const repeat_opp_t *r = &og->repeats[i];
        if (r->ym == ym && !r->booked && !(r->lost && r->lost <= g->now_ms) &&
            r->committed && r->committed + 60000 <= g->now_ms &&
            strcmp(g->reps[r->rep].team, team) == 0)
            sum += r->refined;
    }
    return sum;
}

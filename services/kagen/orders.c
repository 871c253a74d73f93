/* The order stream (DOMAIN.md section 6), from a random stream of its own:
 * an order for each won deal, a year of repeat orders whose sizes follow a
 * Pareto law (so the 80/20 tiers mean something), cancellations and
 * returns, and the small customers' orders partly through the distributors
 * on file, a few of them shipped outside the distributor's territory or
 * priced under its floor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "orders.h"

/* The sample's product families and their list prices (per unit; the
 * product's model number moves them by -25% .. +24%). deploy/sample/generate
 * sets the distributors' floor prices from the same table, 12% to 16% under
 * list: keep the two in step. */
static const struct family {
    const char *name;
    int64_t base_yuan;
} families[] = {
    {"压缩机", 68000}, {"变频器", 9800},    {"控制柜", 42000}, {"电缆", 380},
    {"储能柜", 185000}, {"空调机组", 126000}, {"传感器", 1650},  {"阀门", 5200},
};

/* What each of the sample's business units sells (indexes into families);
 * a unit not listed sells everything. */
static const struct bu_line {
    const char *bu;
    int fam[5];
    int n;
} bu_lines[] = {
    {"bu-industrial", {0, 1, 2, 7, 6}, 5},
    {"bu-energy", {4, 3, 1, 2}, 4},
    {"bu-building", {5, 2, 6, 7, 3}, 5},
};

/* Ship-to regions (ISO 3166-2:CN, as kactl load territories takes them) of
 * the accounts of a sales region, by the area its name starts with, with how
 * often each province comes up. */
static const struct area {
    const char *area;
    const char *codes[7];
    int weights[7];
    int n;
} areas[] = {
    {"华东", {"CN-SH", "CN-JS", "CN-ZJ", "CN-AH", "CN-FJ", "CN-JX", "CN-SD"}, {3, 4, 4, 2, 2, 1, 3}, 7},
    {"华南", {"CN-GD", "CN-GX", "CN-HI"}, {6, 2, 1}, 3},
    {"华北", {"CN-BJ", "CN-TJ", "CN-HE", "CN-SX", "CN-NM"}, {3, 2, 3, 2, 1}, 5},
    {"西南", {"CN-CQ", "CN-SC", "CN-GZ", "CN-YN", "CN-XZ"}, {3, 4, 2, 2, 1}, 5},
    {"华中", {"CN-HA", "CN-HB", "CN-HN"}, {3, 3, 2}, 3},
    {"东北", {"CN-LN", "CN-JL", "CN-HL"}, {3, 2, 2}, 3},
    {"西北", {"CN-SN", "CN-GS", "CN-QH", "CN-NX", "CN-XJ"}, {4, 2, 1, 1, 2}, 5},
};

static uint32_t ornd(ogen_t *og, uint32_t n)
{
    og->seed = og->seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return n ? (uint32_t)(og->seed >> 33) % n : 0;
}

/* Without libm: Newton's method, good to the last bit after a few rounds. */
static double square_root(double x)
{
    if (x <= 0)
        return 0;
    double r = x > 1 ? x : 1;
    for (int i = 0; i < 64; i++) {
        double next = 0.5 * (r + x / r);
        if (next == r)
            break;
        r = next;
    }
    return r;
}

/* A Pareto draw (u^-1.25 for u uniform in (0, 1]) from 1 to ORDER_MAX_SIZE:
 * most customers are size 1 or 2, one in a hundred is over 300. */
static int pareto_size(ogen_t *og)
{
    double u = (double)(ornd(og, 1000000) + 1) / 1000000.0;
    double w = 1.0 / (u * square_root(square_root(u)));
    return w >= ORDER_MAX_SIZE ? ORDER_MAX_SIZE : (int)w;
}

int read_products(void *ud, const ka_pgres_t *res)
{
    ogen_t *og = ud;
    og->nproducts = ka_pgres_rows(res);
    og->products = ka_calloc((size_t)og->nproducts + 1, sizeof *og->products);
    for (int i = 0; i < og->nproducts; i++) {
        product_t *p = &og->products[i];
        const char *name = ka_pgres_value(res, i, 1);
        int64_t base = 10000, model = 0;
        p->sku = ka_strdup(ka_pgres_value(res, i, 0));
        p->family = -1;
        for (int f = 0; f < NELEMS(families); f++) {
            if (strncmp(name, families[f].name, strlen(families[f].name)) == 0) {
                p->family = f;
                base = families[f].base_yuan;
            }
        }
        /* the model number: the digits that end the name ("压缩机 A422") */
        size_t n = strlen(name);
        while (n > 0 && name[n - 1] >= '0' && name[n - 1] <= '9')
            n--;
        model = atoll(name + n);
        p->list = (base * (75 + model % 50) + 500) / 1000 * 10 * 100;
    }
    return 0;
}

static int product_index(const ogen_t *og, const char *sku)
{
    for (int i = 0; i < og->nproducts; i++)
        if (strcmp(og->products[i].sku, sku) == 0)
            return i;
    return -1;
}

static dist_t *dist_named(ogen_t *og, const char *id)
{
    for (int i = 0; i < og->ndists; i++)
        if (strcmp(og->dists[i].id, id) == 0)
            return &og->dists[i];
    return NULL;
}

int read_dists(void *ud, const ka_pgres_t *res)
{
    ogen_t *og = ud;
    og->ndists = ka_pgres_rows(res);
    og->dists = ka_calloc((size_t)og->ndists + 1, sizeof *og->dists);
    for (int i = 0; i < og->ndists; i++)
        og->dists[i].id = ka_strdup(ka_pgres_value(res, i, 0));
    return 0;
}

int read_territories(void *ud, const ka_pgres_t *res)
{
    ogen_t *og = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        dist_t *d = dist_named(og, ka_pgres_value(res, i, 0));
        if (!d)
            continue;
        d->regions = ka_realloc(d->regions, (size_t)(d->nregions + 1) * sizeof *d->regions);
        d->regions[d->nregions++] = ka_strdup(ka_pgres_value(res, i, 1));
    }
    return 0;
}

int read_floors(void *ud, const ka_pgres_t *res)
{
    ogen_t *og = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        dist_t *d = dist_named(og, ka_pgres_value(res, i, 0));
        int p = product_index(og, ka_pgres_value(res, i, 1));
        if (!d || p < 0)
            continue;
        d->floors = ka_realloc(d->floors, (size_t)(d->nfloors + 1) * sizeof *d->floors);
        d->floors[d->nfloors++] = (floor_price_t){p, ka_pgres_int(res, i, 2, 0)};
    }
    return 0;
}

static int serves(const dist_t *d, const char *region)
{
    for (int i = 0; i < d->nregions; i++)
        if (strcmp(d->regions[i], region) == 0)
            return 1;
    return 0;
}

/* The area (index in areas) of a region code, -1: none of them. */
static int area_of(const char *region)
{
    for (int i = 0; i < NELEMS(areas); i++)
        for (int c = 0; c < areas[i].n; c++)
            if (strcmp(areas[i].codes[c], region) == 0)
                return i;
    return -1;
}

/* A region outside the distributor's territory but in an area it serves:
 * where 窜货 pays (a neighbouring market, priced higher). */
static int next_door(const dist_t *d, const char *region)
{
    int area = area_of(region);
    if (area < 0 || serves(d, region))
        return 0;
    for (int i = 0; i < d->nregions; i++)
        if (area_of(d->regions[i]) == area)
            return 1;
    return 0;
}

static int64_t floor_of(const dist_t *d, int product)
{
    for (int i = 0; d && i < d->nfloors; i++)
        if (d->floors[i].product == product)
            return d->floors[i].floor;
    return 0;
}

/* The province of an account: one of its sales region's, by area. */
static const char *pick_region(ogen_t *og, const rep_t *owner)
{
    const struct area *a = NULL;
    for (int i = 0; i < NELEMS(areas); i++)
        if (strncmp(owner->area, areas[i].area, strlen(areas[i].area)) == 0)
            a = &areas[i];
    if (!a) /* a region the sample does not have: anywhere */
        a = &areas[ornd(og, (uint32_t)NELEMS(areas))];
    int total = 0;
    for (int i = 0; i < a->n; i++)
        total += a->weights[i];
    int r = (int)ornd(og, (uint32_t)total);
    for (int i = 0; i < a->n; i++) {
        if (r < a->weights[i])
            return a->codes[i];
        r -= a->weights[i];
    }
    return a->codes[0];
}

/* A time in working hours (09:00 to 18:00 in Beijing) on the day of t,
 * moved off the weekend. */
static int64_t office_time(ogen_t *og, int64_t t)
{
    int64_t day = t - t % DAY_MS;
    int weekday = (int)((day / DAY_MS + 4) % 7); /* 0 = Sunday */
    if (weekday == 6)
        day -= DAY_MS * (1 + (int64_t)ornd(og, 5));
    else if (weekday == 0)
        day += DAY_MS * (1 + (int64_t)ornd(og, 5));
    return day + (1 + (int64_t)ornd(og, 9)) * HOUR_MS + (int64_t)ornd(og, 60) * 60000;
}

static order_plan_t *new_order(ogen_t *og, int acct, int rep, int64_t booked_ms)
{
    if (og->norders == og->caporders) {
        og->caporders = og->caporders ? og->caporders * 2 : 4096;
        og->orders = ka_realloc(og->orders, (size_t)og->caporders * sizeof *og->orders);
    }
    order_plan_t *o = &og->orders[og->norders++];
    memset(o, 0, sizeof *o);
    o->acct = acct;
    o->rep = rep;
    o->opp = -1;
    o->dist = -1;
    o->booked_ms = booked_ms;
    o->region = og->custs[acct].region;
    o->line0 = og->nlines;
    return o;
}

static void add_line(ogen_t *og, order_plan_t *o, int product, int64_t qty, int64_t price)
{
    if (og->nlines == og->caplines) {
        og->caplines = og->caplines ? og->caplines * 2 : 8192;
        og->lines = ka_realloc(og->lines, (size_t)og->caplines * sizeof *og->lines);
    }
    og->lines[og->nlines++] = (oline_t){product, qty * 1000, price};
    o->nlines++;
}

/* A product the rep's business unit sells, at most `most` a unit when one
 * is (else its cheapest); from the distributor's price list when it has
 * one, mostly. */
int pick_product(ogen_t *og, const rep_t *rep, const dist_t *d, int64_t most)
{
    const struct bu_line *bl = NULL;
    for (int i = 0; i < NELEMS(bu_lines); i++)
        if (strcmp(rep->bu, bu_lines[i].bu) == 0)
            bl = &bu_lines[i];
    if (d && d->nfloors && ornd(og, 100) < 80) {
        int p = d->floors[ornd(og, (uint32_t)d->nfloors)].product;
        if (og->products[p].list <= most || ornd(og, 4) == 0)
            return p;
    }
    int *cand = ka_calloc((size_t)og->nproducts + 1, sizeof *cand);
    int n = 0, cheapest = -1;
    for (int i = 0; i < og->nproducts; i++) {
        int sold = !bl || og->products[i].family < 0;
        for (int f = 0; bl && f < bl->n; f++)
            sold |= bl->fam[f] == og->products[i].family;
        if (!sold)
            continue;
        if (cheapest < 0 || og->products[i].list < og->products[cheapest].list)
            cheapest = i;
        if (og->products[i].list <= most)
            cand[n++] = i;
    }
    int p = n ? cand[ornd(og, (uint32_t)n)] : cheapest;
    free(cand);
    return p >= 0 ? p : (int)ornd(og, (uint32_t)og->nproducts);
}

/* Lines worth about `amount` in all: one to three products, list price less
 * a discount; through a distributor never under its floor, unless the order
 * is one that dumps (its first line then goes under). */
static void plan_lines(ogen_t *og, order_plan_t *o, int64_t amount, int dumps)
{
    const rep_t *rep = &og->g->reps[o->rep];
    const dist_t *d = o->dist >= 0 ? &og->dists[o->dist] : NULL;
    int n = 1 + (int)ornd(og, 3);
    for (int i = 0; i < n; i++) {
        int64_t part = amount / n * (80 + (int64_t)ornd(og, 41)) / 100;
        int p = pick_product(og, rep, d, part);
        int64_t list = og->products[p].list, floor = floor_of(d, p);
        int64_t price = list * (90 + (int64_t)ornd(og, 11)) / 100 / 100 * 100;
        if (i == 0 && dumps) {
            if (!floor) { /* dumping needs a product with a floor */
                const floor_price_t *f = &d->floors[ornd(og, (uint32_t)d->nfloors)];
                p = f->product;
                floor = f->floor;
            }
            price = floor * (80 + (int64_t)ornd(og, 17)) / 100 / 100 * 100;
            o->dumped = 1;
        } else if (price < floor) {
            price = floor;
        }
        int64_t qty = price > 0 ? part / price : 1;
        add_line(og, o, p, qty < 1 ? 1 : qty, price);
    }
}

/* An order cancelled a few days after booking, or returned weeks later. */
static void maybe_undo(ogen_t *og, order_plan_t *o)
{
    uint32_t r = ornd(og, 100);
    if (r < 4)
        o->cancelled_ms = o->booked_ms + DAY_MS * (1 + (int64_t)ornd(og, 10)) +
                          (int64_t)ornd(og, 480) * 60000;
    else if (r < 6)
        o->returned_ms = o->booked_ms + DAY_MS * (10 + (int64_t)ornd(og, 30)) +
                         (int64_t)ornd(og, 480) * 60000;
}

/* Through which distributor a small customer's order goes: mostly one
 * authorized for its region; now and then one that is not (窜货): the
 * habitual offender in the provinces next to its own, anyone else rarely.
 * -1: direct (no distributor serves it). */
static int pick_dist(ogen_t *og, const char *region, int *diverted)
{
    int *ok = ka_calloc((size_t)og->ndists + 1, sizeof *ok);
    int *other = ka_calloc((size_t)og->ndists + 1, sizeof *other);
    int nok = 0, nother = 0, d = -1;
    for (int i = 0; i < og->ndists; i++) {
        if (serves(&og->dists[i], region))
            ok[nok++] = i;
        else if (og->dists[i].nregions)
            other[nother++] = i;
    }
    uint32_t r = ornd(og, 1000);
    *diverted = 0;
    if (og->diverter >= 0 && next_door(&og->dists[og->diverter], region) && r < 60) {
        d = og->diverter;
        *diverted = 1;
    } else if (nother && r >= 60 && r < 65) {
        d = other[ornd(og, (uint32_t)nother)];
        *diverted = 1;
    } else if (nok) {
        d = ok[ornd(og, (uint32_t)nok)];
    }
    free(ok);
    free(other);
    return d;
}

/* Plans every order: the ones that close won deals (some booked before the
 * won event), a year of repeat orders of established customers and the
 * follow-up business of new ones, a share of the small customers' orders
 * through distributors, cancellations and returns. */
void plan_orders(ogen_t *og, int nopps)
{
    gen_t *g = og->g;
    int nnamed = nopps < opp_accounts ? nopps : opp_accounts;
    int *owner = ka_calloc((size_t)nopps + 1, sizeof *owner);
    int64_t *amount = ka_calloc((size_t)nopps + 1, sizeof *amount);
    int64_t *last = ka_calloc((size_t)nopps + 1, sizeof *last);

    og->ncusts = nnamed;
    og->custs = ka_calloc((size_t)nnamed + 1, sizeof *og->custs);
    for (int i = 0; i < g->nevents; i++) {
        const plan_event_t *p = &g->events[i];
        cust_t *c = &og->custs[p->opp % opp_accounts];
        if (p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED && !c->seen) {
            c->seen = 1;
            c->owner = p->new_owner;
        }
    }
    /* who they are: where they are, how big, since when */
    for (int n = 0; n < nnamed; n++) {
        cust_t *c = &og->custs[n];
        if (!c->seen)
            continue;
        c->region = pick_region(og, &g->reps[c->owner]);
        c->size = pareto_size(og);
        c->established = ornd(og, 100) < 45;
        if (c->established && c->size >= 15 && og->churners < 8 && ornd(og, 3) == 0) {
            c->churner = 1;
            og->churners++;
        }
    }
    /* the habitual offenders among the distributors with a territory */
    og->diverter = og->dumper = -1;
    if (og->ndists >= 2) {
        og->diverter = (int)ornd(og, (uint32_t)og->ndists);
        og->dumper = (og->diverter + 1 + (int)ornd(og, (uint32_t)og->ndists - 1)) % og->ndists;
        if (!og->dists[og->dumper].nfloors)
            og->dumper = -1;
    }

    /* orders that close won deals */
    for (int i = 0; i < g->nevents; i++) {
        const plan_event_t *p = &g->events[i];
        int acct = p->opp % opp_accounts;
        cust_t *c = &og->custs[acct];
        if (p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED ||
            p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED)
            owner[p->opp] = p->new_owner;
        if (p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED ||
            p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED)
            amount[p->opp] = p->amount;
        if (p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_WON) {
            int64_t booked, lo = last[p->opp] + HOUR_MS;
            int before = 0;
            if (lo < p->at_ms - 5 * DAY_MS)
                lo = p->at_ms - 5 * DAY_MS;
            if (ornd(og, 100) < 30 && p->at_ms - lo > HOUR_MS) { /* the ERP was quicker */
                booked = lo + (int64_t)ornd(og, (uint32_t)((p->at_ms - lo) / 60000)) * 60000;
                before = 1;
            } else {
                booked = p->at_ms + HOUR_MS + (int64_t)ornd(og, 7 * 24 * 60) * 60000;
            }
            if (booked <= g->now_ms && !(c->churner && booked >= og->split)) {
                order_plan_t *o = new_order(og, acct, owner[p->opp], booked);
                o->opp = p->opp;
                o->before_won = before;
                plan_lines(og, o, amount[p->opp], 0);
                if (!c->first_won_ms)
                    c->first_won_ms = booked;
            }
        }
        last[p->opp] = p->at_ms;
    }

    /* repeat business: the established customers for the whole year, new
     * ones (most of them) from a few weeks after their first order */
    for (int n = 0; n < nnamed; n++) {
        cust_t *c = &og->custs[n];
        int64_t t, yearly = ORDER_UNIT_MINOR * c->size;
        /* bigger customers call off more often: 8 a year .. 24 (every other
         * week), so a quarter's revenue is steady enough for the churn rule */
        int per_year = 4 + 4 * (c->size < 5 ? c->size : 5);
        if (!c->seen)
            continue;
        if (c->established) {
            t = og->begin + (int64_t)ornd(og, (uint32_t)(365 / per_year)) * DAY_MS;
        } else if (c->first_won_ms && ornd(og, 100) < 60) {
            t = c->first_won_ms + DAY_MS * (20 + (int64_t)ornd(og, 40));
            yearly /= 2;
        } else {
            continue;
        }
        c->yearly = yearly;
        /* call-offs of a framework agreement: a steady rhythm, steady sizes */
        for (;; t += DAY_MS * 365 / per_year * (80 + (int64_t)ornd(og, 41)) / 100) {
            int64_t booked = office_time(og, t), amt = yearly / per_year;
            amt = amt * (80 + (int64_t)ornd(og, 41)) / 100;
            if (booked > g->now_ms || (c->churner && booked >= og->split)) {
                if (booked > g->now_ms && !c->churner)
                    c->next_ms = booked; /* what repeat.c forecasts */
                break;
            }
            if (c->churner && booked >= og->split - 30 * DAY_MS)
                amt /= 2; /* drifting away: half the usual, then nothing */
            int dist = -1, diverted = 0;
            if (c->size <= ORDER_SMALL_SIZE && og->ndists && ornd(og, 100) < 55)
                dist = pick_dist(og, c->region, &diverted);
            order_plan_t *o = new_order(og, n, c->owner, booked);
            o->dist = dist;
            o->diverted = diverted;
            int dumps = dist >= 0 && og->dists[dist].nfloors &&
                        (int)ornd(og, 100) < (dist == og->dumper ? 15 : 1);
            plan_lines(og, o, amt, dumps);
            maybe_undo(og, o);
        }
    }
    free(owner);
    free(amount);
    free(last);
}

static int by_order_time(const void *a, const void *b)
{
    const order_event_t *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    if (x->order != y->order)
        return x->order - y->order;
    return x->status - y->status;
}

/* Every order's events in time order: booked, and later a cancellation or
 * a return; what lies after now has not happened yet. */
void order_events(ogen_t *og)
{
    og->events = ka_calloc((size_t)og->norders * 2 + 1, sizeof *og->events);
    for (int i = 0; i < og->norders; i++) {
        const order_plan_t *o = &og->orders[i];
        og->events[og->nevents++] =
            (order_event_t){o->booked_ms, i, KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED};
        if (o->cancelled_ms && o->cancelled_ms <= og->g->now_ms)
            og->events[og->nevents++] =
                (order_event_t){o->cancelled_ms, i, KA__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED};
        if (o->returned_ms && o->returned_ms <= og->g->now_ms)
            og->events[og->nevents++] =
                (order_event_t){o->returned_ms, i, KA__V1__ORDER_STATUS__ORDER_STATUS_RETURNED};
    }
    qsort(og->events, (size_t)og->nevents, sizeof *og->events, by_order_time);
}

/* Encodes one order event; key gets the order id. Returns the length of
 * *out (free it). */
size_t encode_order(const ogen_t *og, const order_event_t *ev, char *key, size_t keylen,
                           uint8_t **out)
{
    const order_plan_t *o = &og->orders[ev->order];
    const gen_t *g = og->g;
    char event_id[128], opp_id[64], name[64];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OrderEvent e = KA__V1__ORDER_EVENT__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__LineItem *lines = NULL, **linep = NULL;
    int booked = ev->status == KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED;

    snprintf(key, keylen, "%s-order-%06d", g->prefix, ev->order);
    snprintf(event_id, sizeof event_id, "%s-%c", key,
             booked ? 'b' : ev->status == KA__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED ? 'c' : 'r');
    snprintf(name, sizeof name, "客户 %04d 有限公司", o->acct);
    h.event_id = event_id;
    h.occurred_at_ms = ev->at_ms;
    h.producer = "kagen";
    e.header = &h;
    e.order_id = key;
    a.name = name;
    e.account = &a;
    e.rep_id = g->reps[o->rep].id;
    if (o->opp >= 0) {
        snprintf(opp_id, sizeof opp_id, "%s-%06d", g->prefix, o->opp);
        e.opportunity_id = opp_id;
    }
    e.channel = o->dist >= 0 ? KA__V1__CHANNEL__CHANNEL_DISTRIBUTOR : KA__V1__CHANNEL__CHANNEL_DIRECT;
    if (o->dist >= 0)
        e.distributor_id = og->dists[o->dist].id;
    e.ship_to_region = (char *)o->region;
    e.status = (Ka__V1__OrderStatus)ev->status;
    e.booked_at_ms = o->booked_ms;
    if (booked) { /* a cancellation or a return names the order, not its lines again */
        lines = ka_calloc((size_t)o->nlines + 1, sizeof *lines);
        linep = ka_calloc((size_t)o->nlines + 1, sizeof *linep);
        for (int i = 0; i < o->nlines; i++) {
            const oline_t *l = &og->lines[o->line0 + i];
            Ka__V1__LineItem init = KA__V1__LINE_ITEM__INIT;
            lines[i] = init;
            lines[i].sku = og->products[l->product].sku;
            lines[i].quantity_milli = l->qty_milli;
            lines[i].unit_price_minor = l->price;
            linep[i] = &lines[i];
        }
        e.n_lines = (size_t)o->nlines;
        e.lines = linep;
    }
    size_t len = ka__v1__order_event__get_packed_size(&e);
    *out = ka_malloc(len + 1);
    ka__v1__order_event__pack(&e, *out);
    free(lines);
    free(linep);
    return len;
}

void ogen_free(ogen_t *og)
{
    for (int i = 0; i < og->nproducts; i++)
        free(og->products[i].sku);
    free(og->products);
    for (int i = 0; i < og->ndists; i++) {
        for (int r = 0; r < og->dists[i].nregions; r++)
            free(og->dists[i].regions[r]);
        free(og->dists[i].regions);
        free(og->dists[i].floors);
        free(og->dists[i].id);
    }
    free(og->dists);
    free(og->custs);
    free(og->repeats);
    free(og->orders);
    free(og->lines);
    free(og->events);
}


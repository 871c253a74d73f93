/* The order worker's batch logic. Beyond the runtime's BEGIN + dedupe, one
 * pipeline creates the accounts new orders name and reads (locks) the
 * batch's orders with their lines and the distributors' territories, floor
 * prices and firing channel alerts; one writes everything and commits. The
 * orders are applied in memory, in order; actuals move by the difference
 * between what an order counted before and what it counts now, each in its
 * booking month, so a status change adjusts them and never adds an order
 * twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka/v1/alert.pb-c.h"
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka_accounts.h"
#include "ka_alert.h"
#include "ka_buf.h"
#include "ka_cols.h"
#include "ka_ids.h"
#include "ka_log.h"
#include "ka_order_decode.h"
#include "order_scan.h"
#include "order_sql.h"
#include "order_worker.h"

#define ID_LEN (KA_MAX_ID_LEN + 1)

typedef struct line {
    char sku[ID_LEN];
    int64_t qty_milli, price;
} line_t;

typedef struct order {
    char id[ID_LEN];
    int exists, touched, lines_replaced;
    char account[ID_LEN], rep[ID_LEN], opp[ID_LEN], channel[12], distributor[ID_LEN],
        region[ID_LEN], status[12], booked_event[ID_LEN], last_event_id[ID_LEN];
    int64_t booked_ms, cancelled_ms, returned_ms, total, last_event_ms;
    line_t *lines;
    size_t nlines;
} order_t;

/* A change of actuals at (account, sku, crediting rep, month). */
typedef struct delta {
    char account[ID_LEN], sku[ID_LEN], rep[ID_LEN], month[11];
    int64_t amount, qty_milli;
} delta_t;

typedef struct dist_fact {
    char dist[ID_LEN], key[ID_LEN]; /* a territory, or a sku with its floor */
    int64_t floor;
} dist_fact_t;

typedef struct rollup_row {
    char *node, *month, *amount;
} rollup_row_t;


struct order_ctx {
    const ka_config_t *cfg;
    order_scan_t *scan;

    /* per batch */
    ka_accounts_t accounts;
    order_t *orders;
    size_t norders;
    delta_t *deltas;
    size_t ndeltas, capdeltas;
    char **known_dists;
    size_t nknown_dists;
    dist_fact_t *territories, *floors;
    size_t nterritories, nfloors;
    char **firing; /* "<type>/<distributor>" of channel alerts firing */
    size_t nfiring;

    /* after commit: rolled-up actuals to cache */
    rollup_row_t *rollup;
    size_t nrollup;
};

static void copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void reset_batch(order_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->norders; i++)
        free(ctx->orders[i].lines);
    free(ctx->orders);
    ctx->orders = NULL;
    ctx->norders = 0;
    ctx->ndeltas = 0;
    ka_accounts_free(&ctx->accounts);
    free_strv(ctx->known_dists, ctx->nknown_dists);
    ctx->known_dists = NULL;
    ctx->nknown_dists = 0;
    free(ctx->territories);
    free(ctx->floors);
    ctx->territories = ctx->floors = NULL;
    ctx->nterritories = ctx->nfloors = 0;
    free_strv(ctx->firing, ctx->nfiring);
    ctx->firing = NULL;
    ctx->nfiring = 0;
}

static void reset_rollup(order_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nrollup; i++) {
        free(ctx->rollup[i].node);
        free(ctx->rollup[i].month);
        free(ctx->rollup[i].amount);
    }
    free(ctx->rollup);
    ctx->rollup = NULL;
    ctx->nrollup = 0;
}

static order_t *find_order(order_ctx_t *ctx, const char *id)
{
    for (size_t i = 0; i < ctx->norders; i++)
        if (strcmp(ctx->orders[i].id, id) == 0)
            return &ctx->orders[i];
    return NULL;
}

static void add_delta(order_ctx_t *ctx, const char *account, const char *sku, const char *rep,
                      const char *month, int64_t amount, int64_t qty_milli)
{
    delta_t *d = NULL;
    for (size_t i = 0; i < ctx->ndeltas && !d; i++) {
        delta_t *c = &ctx->deltas[i];
        if (!strcmp(c->account, account) && !strcmp(c->sku, sku) && !strcmp(c->rep, rep) &&
            !strcmp(c->month, month))
            d = c;
    }
    if (!d) {
        if (ctx->ndeltas == ctx->capdeltas) {
            ctx->capdeltas = ctx->capdeltas ? ctx->capdeltas * 2 : 64;
            ctx->deltas = ka_realloc(ctx->deltas, ctx->capdeltas * sizeof *ctx->deltas);
        }
        d = &ctx->deltas[ctx->ndeltas++];
        memset(d, 0, sizeof *d);
        copy(d->account, sizeof d->account, account);
        copy(d->sku, sizeof d->sku, sku);
        copy(d->rep, sizeof d->rep, rep);
        copy(d->month, sizeof d->month, month);
    }
    d->amount += amount;
    d->qty_milli += qty_milli;
}

/* What an order counts in the actuals, signed, in the month it was booked
 * in: closed revenue is what a period booked and still has booked, so a
 * cancellation or return corrects the booking's month, never a later one. */
static void count_order(order_ctx_t *ctx, const order_t *o, int sign)
{
    char month[11];
    if (!o->exists || strcmp(o->status, "booked") != 0)
        return;
    order_month(o->booked_ms, month);
    for (size_t i = 0; i < o->nlines; i++)
        add_delta(ctx, o->account, o->lines[i].sku, o->rep, month,
                  sign * order_line_amount(o->lines[i].qty_milli, o->lines[i].price),
                  sign * o->lines[i].qty_milli);
}

/* Reading rows ------------------------------------------------------------ */

static const char *val(const ka_pgres_t *res, int row, int col)
{
    const char *v = ka_pgres_value(res, row, col);
    return v ? v : "";
}

static int read_orders(void *ud, const ka_pgres_t *res)
{
    order_ctx_t *ctx = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        order_t *o = find_order(ctx, val(res, i, 0));
        if (!o)
            continue;
        o->exists = 1;
        copy(o->account, sizeof o->account, val(res, i, 1));
        copy(o->rep, sizeof o->rep, val(res, i, 2));
        copy(o->opp, sizeof o->opp, val(res, i, 3));
        copy(o->channel, sizeof o->channel, val(res, i, 4));
        copy(o->distributor, sizeof o->distributor, val(res, i, 5));
        copy(o->region, sizeof o->region, val(res, i, 6));
        copy(o->status, sizeof o->status, val(res, i, 7));
        o->booked_ms = ka_pgres_int(res, i, 8, 0);
        o->cancelled_ms = ka_pgres_int(res, i, 9, 0);
        o->returned_ms = ka_pgres_int(res, i, 10, 0);
        o->total = ka_pgres_int(res, i, 11, 0);
        copy(o->booked_event, sizeof o->booked_event, val(res, i, 12));
        o->last_event_ms = ka_pgres_int(res, i, 13, 0);
        copy(o->last_event_id, sizeof o->last_event_id, val(res, i, 14));
    }
    return 0;
}

static int read_lines(void *ud, const ka_pgres_t *res)
{
    order_ctx_t *ctx = ud;
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        order_t *o = find_order(ctx, val(res, i, 0));
        if (!o)
            continue;
        o->lines = ka_realloc(o->lines, (o->nlines + 1) * sizeof *o->lines);
        line_t *l = &o->lines[o->nlines++];
        copy(l->sku, sizeof l->sku, val(res, i, 1));
        l->qty_milli = ka_pgres_int(res, i, 2, 0);
        l->price = ka_pgres_int(res, i, 3, 0);
    }
    return 0;
}

static char **strv(const ka_pgres_t *res, size_t *n)
{
    *n = (size_t)ka_pgres_rows(res);
    char **v = ka_calloc(*n + 1, sizeof *v);
    for (size_t i = 0; i < *n; i++)
        v[i] = ka_strdup(val(res, (int)i, 0));
    return v;
}

static int read_known_dists(void *ud, const ka_pgres_t *res)
{
    order_ctx_t *ctx = ud;
    ctx->known_dists = strv(res, &ctx->nknown_dists);
    return 0;
}

static int read_firing(void *ud, const ka_pgres_t *res)
{
    order_ctx_t *ctx = ud;
    ctx->firing = strv(res, &ctx->nfiring);
    return 0;
}

static dist_fact_t *facts(const ka_pgres_t *res, size_t *n)
{
    *n = (size_t)ka_pgres_rows(res);
    dist_fact_t *f = ka_calloc(*n + 1, sizeof *f);
    for (int i = 0; i < (int)*n; i++) {
        copy(f[i].dist, sizeof f[i].dist, val(res, i, 0));
        copy(f[i].key, sizeof f[i].key, val(res, i, 1));
        f[i].floor = ka_pgres_int(res, i, 2, 0);
    }
    return f;
}

static int read_territories(void *ud, const ka_pgres_t *res)
{
    order_ctx_t *ctx = ud;
    ctx->territories = facts(res, &ctx->nterritories);
    return 0;
}

static int read_floors(void *ud, const ka_pgres_t *res)
{
    order_ctx_t *ctx = ud;
    ctx->floors = facts(res, &ctx->nfloors);
    return 0;
}

static int read_rollup(void *ud, const ka_pgres_t *res)
{
    order_ctx_t *ctx = ud;
    size_t n = (size_t)ka_pgres_rows(res);
    ctx->rollup = ka_realloc(ctx->rollup, (ctx->nrollup + n + 1) * sizeof *ctx->rollup);
    for (int i = 0; i < (int)n; i++) {
        rollup_row_t *r = &ctx->rollup[ctx->nrollup++];
        r->node = ka_strdup(val(res, i, 0));
        r->month = ka_strdup(val(res, i, 1));
        r->amount = ka_strdup(val(res, i, 2));
    }
    return 0;
}

static ka_err_t queue_reads(order_ctx_t *ctx, ka_tx_t *tx, ka_event_t *const *events, size_t n,
                            char *errstr, size_t errlen)
{
    ka_pg_t *pg = ka_tx_pg(tx);
    ka_buf_t ids = KA_BUF_INIT, dists = KA_BUF_INIT;
    int ndists = 0;
    ka_err_t rc;

    ka_accounts_begin(&ctx->accounts);
    ka_buf_array_begin(&ids);
    ka_buf_array_begin(&dists);
    for (size_t i = 0; i < n; i++) {
        const Ka__V1__OrderEvent *e = events[i]->decoded;
        ka_accounts_add(&ctx->accounts, e->account, e->rep_id, events[i]->event_id);
        if (!find_order(ctx, e->order_id)) {
            ctx->orders = ka_realloc(ctx->orders, (ctx->norders + 1) * sizeof *ctx->orders);
            order_t *o = &ctx->orders[ctx->norders++];
            memset(o, 0, sizeof *o);
            copy(o->id, sizeof o->id, e->order_id);
            ka_buf_array_add(&ids, e->order_id);
        }
        if (e->distributor_id && *e->distributor_id) {
            ka_buf_array_add(&dists, e->distributor_id);
            ndists++;
        }
    }
    ka_buf_array_end(&ids);
    ka_buf_array_end(&dists);
    ka_pg_param_t p_ids = {ka_buf_str(&ids), 0, 0}, p_dists = {ka_buf_str(&dists), 0, 0};
    if ((rc = ka_accounts_queue(&ctx->accounts, pg, errstr, errlen)) ||
        (rc = ka_pg_pipe_push(pg, "order_load", 1, &p_ids, read_orders, ctx, errstr, errlen)) ||
        (rc = ka_pg_pipe_push(pg, "order_lines", 1, &p_ids, read_lines, ctx, errstr, errlen)))
        goto out;
    if (ndists &&
        ((rc = ka_pg_pipe_push(pg, "order_dists", 1, &p_dists, read_known_dists, ctx, errstr,
                               errlen)) ||
         (rc = ka_pg_pipe_push(pg, "order_territories", 1, &p_dists, read_territories, ctx,
                               errstr, errlen)) ||
         (rc = ka_pg_pipe_push(pg, "order_floors", 1, &p_dists, read_floors, ctx, errstr,
                               errlen)) ||
         (rc = ka_pg_pipe_push(pg, "order_channel_firing", 1, &p_dists, read_firing, ctx, errstr,
                               errlen))))
        goto out;
    rc = ka_tx_flush(tx, errstr, errlen);
out:
    ka_buf_free(&ids);
    ka_buf_free(&dists);
    return rc;
}

/* Applying orders in memory --------------------------------------------------- */

typedef struct rows {
    ka_cols_t event, violation, quality;
} rows_t;

static int known_dist(const order_ctx_t *ctx, const char *dist)
{
    for (size_t i = 0; i < ctx->nknown_dists; i++)
        if (strcmp(ctx->known_dists[i], dist) == 0)
            return 1;
    return 0;
}

/* -1: the distributor has no territory on file (nothing to check against);
 * 0: region outside them; 1: inside. */
static int in_territory(const order_ctx_t *ctx, const char *dist, const char *region)
{
    int any = 0;
    for (size_t i = 0; i < ctx->nterritories; i++) {
        if (strcmp(ctx->territories[i].dist, dist) != 0)
            continue;
        any = 1;
        if (strcmp(ctx->territories[i].key, region) == 0)
            return 1;
    }
    return any ? 0 : -1;
}

static const dist_fact_t *floor_of(const order_ctx_t *ctx, const char *dist, const char *sku)
{
    for (size_t i = 0; i < ctx->nfloors; i++)
        if (!strcmp(ctx->floors[i].dist, dist) && !strcmp(ctx->floors[i].key, sku))
            return &ctx->floors[i];
    return NULL;
}

static int is_firing(order_ctx_t *ctx, const char *type, const char *dist, int mark)
{
    char key[160];
    snprintf(key, sizeof key, "%s/%s", type, dist);
    for (size_t i = 0; i < ctx->nfiring; i++)
        if (strcmp(ctx->firing[i], key) == 0)
            return 1;
    if (mark) {
        ctx->firing = ka_realloc(ctx->firing, (ctx->nfiring + 1) * sizeof *ctx->firing);
        ctx->firing[ctx->nfiring++] = ka_strdup(key);
    }
    return 0;
}

static void record_violation(rows_t *r, const order_t *o, const char *kind, int line_no,
                             const char *sku, int64_t price, int64_t floor, int64_t at_ms)
{
    ka_cols_t *v = &r->violation;
    ka_buf_array_add(&v->b[0], o->id);
    ka_buf_array_add(&v->b[1], kind);
    ka_buf_array_add_int(&v->b[2], line_no);
    ka_buf_array_add(&v->b[3], o->distributor);
    ka_buf_array_add(&v->b[4], sku);
    ka_buf_array_add(&v->b[5], o->region[0] ? o->region : NULL);
    if (sku) {
        ka_buf_array_add_int(&v->b[6], price);
        ka_buf_array_add_int(&v->b[7], floor);
    } else {
        ka_buf_array_add(&v->b[6], NULL);
        ka_buf_array_add(&v->b[7], NULL);
    }
    ka_buf_array_add_int(&v->b[8], at_ms);
    v->rows++;
}

/* 窜货 and 压价: a distributor order entering "booked" is checked once, and
 * counted once in the distributor's sales quality of its booking month. */
static ka_err_t check_channel(order_ctx_t *ctx, ka_tx_t *tx, rows_t *r, const order_t *o,
                              const ka_event_t *ev, char *errstr, size_t errlen)
{
    int64_t dumped = 0;
    int dumping = 0, diversion = 0;
    char month[11];
    ka_err_t rc = KA_OK;
    if (strcmp(o->channel, "distributor") != 0 || !known_dist(ctx, o->distributor))
        return KA_OK; /* a distributor not on file yet cannot be judged */
    if (o->region[0] && in_territory(ctx, o->distributor, o->region) == 0) {
        diversion = 1;
        record_violation(r, o, "diversion", 0, NULL, 0, 0, o->booked_ms);
    }
    for (size_t i = 0; i < o->nlines; i++) {
        const dist_fact_t *f = floor_of(ctx, o->distributor, o->lines[i].sku);
        if (f && o->lines[i].price < f->floor) {
            dumping++;
            dumped += order_line_amount(o->lines[i].qty_milli, o->lines[i].price);
            record_violation(r, o, "dumping", (int)i + 1, o->lines[i].sku, o->lines[i].price,
                             f->floor, o->booked_ms);
        }
    }
    order_month(o->booked_ms, month);
    ka_cols_t *q = &r->quality;
    ka_buf_array_add(&q->b[0], o->distributor);
    ka_buf_array_add(&q->b[1], month);
    ka_buf_array_add_int(&q->b[2], o->total);
    ka_buf_array_add_int(&q->b[3], diversion);
    ka_buf_array_add_int(&q->b[4], diversion ? o->total : 0);
    ka_buf_array_add_int(&q->b[5], dumping > 0);
    ka_buf_array_add_int(&q->b[6], dumped);
    q->rows++;
    if (diversion && !is_firing(ctx, "channel_diversion", o->distributor, 1))
        rc = order_channel_alert(tx, "channel_diversion", o->distributor, o->id, o->region,
                                 o->booked_ms, o->booked_ms, 1, ev->event_id, errstr, errlen);
    if (rc == KA_OK && dumping && !is_firing(ctx, "price_dumping", o->distributor, 1))
        rc = order_channel_alert(tx, "price_dumping", o->distributor, o->id, o->region,
                                 o->booked_ms, o->booked_ms, 1, ev->event_id, errstr, errlen);
    return rc;
}

/* 一个订单关闭商机: the opportunity worker owns opportunities, so the order
 * sends it a won event, whose id derives from the order: sent again (a
 * replay, a re-booking), it is the same event and applies once. */
static ka_err_t close_opportunity(ka_tx_t *tx, const order_t *o, char *errstr, size_t errlen)
{
    char event_id[KA_DERIVED_ID_LEN];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__OpportunityWon won = KA__V1__OPPORTUNITY_WON__INIT;
    ka_order_won_event_id(o->id, event_id);
    h.event_id = event_id;
    h.occurred_at_ms = o->booked_ms;
    h.producer = "order-worker";
    e.header = &h;
    e.opportunity_id = (char *)o->opp;
    e.actor_id = (char *)o->rep;
    won.order_id = (char *)o->id;
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_WON;
    e.won = &won;
    size_t len = ka__v1__opportunity_event__get_packed_size(&e);
    uint8_t *payload = ka_malloc(len + 1);
    ka__v1__opportunity_event__pack(&e, payload);
    ka_outbox_row_t row = {
        .event_id = event_id,
        .topic = ka_config_str(ka_tx_config(tx), "KA_TOPIC_OPPORTUNITY"),
        .key = o->opp,
        .key_len = strlen(o->opp),
        .ce_type = "ka.v1.OpportunityEvent",
        .ce_time_ms = o->booked_ms,
        .payload = payload,
        .len = len,
    };
    ka_err_t rc = ka_tx_emit(tx, &row, errstr, errlen);
    free(payload);
    return rc;
}

static void record_event(rows_t *r, const ka_event_t *ev, const Ka__V1__OrderEvent *e,
                         const char *not_applied)
{
    ka_cols_t *c = &r->event;
    ka_buf_array_add(&c->b[0], e->order_id);
    ka_buf_array_add(&c->b[1], ev->event_id);
    ka_buf_array_add(&c->b[2], order_status_name(e->status));
    ka_buf_array_add_int(&c->b[3], e->header->occurred_at_ms);
    ka_buf_array_add(&c->b[4], not_applied ? "f" : "t");
    ka_buf_array_add(&c->b[5], not_applied);
    ka_buf_array_add(&c->b[6], ev->msg->topic);
    ka_buf_array_add_int(&c->b[7], ev->msg->partition);
    ka_buf_array_add_int(&c->b[8], ev->msg->offset);
    c->rows++;
}

static void set_lines(order_t *o, const Ka__V1__OrderEvent *e)
{
    free(o->lines);
    o->nlines = e->n_lines;
    o->lines = ka_calloc(e->n_lines + 1, sizeof *o->lines);
    for (size_t i = 0; i < e->n_lines; i++) {
        copy(o->lines[i].sku, sizeof o->lines[i].sku, e->lines[i]->sku);
        o->lines[i].qty_milli = e->lines[i]->quantity_milli;
        o->lines[i].price = e->lines[i]->unit_price_minor;
    }
    o->lines_replaced = 1;
    o->total = order_total(e);
}

static ka_err_t apply_one(order_ctx_t *ctx, ka_tx_t *tx, ka_event_t *ev, rows_t *r, char *errstr,
                          size_t errlen)
{
    const Ka__V1__OrderEvent *e = ev->decoded;
    order_t *o = find_order(ctx, e->order_id);
    const char *account = ka_accounts_id(&ctx->accounts, e->account);
    int64_t t = order_effective_ms(e);
    ka_err_t rc = KA_OK;

    if (!account) {
        ka_tx_reject(tx, ev, KA_REASON_ACCOUNT, "account_id \"%s\" is not a known account",
                     e->account->account_id ? e->account->account_id : "");
        return KA_OK;
    }
    if (o->exists && e->header->occurred_at_ms < o->last_event_ms) {
        record_event(r, ev, e, "stale"); /* kept; the order does not roll back */
        return KA_OK;
    }
    int was_booked = o->exists && strcmp(o->status, "booked") == 0;
    count_order(ctx, o, -1); /* take out what it counted, put back what it counts now */
    copy(o->account, sizeof o->account, account);
    copy(o->rep, sizeof o->rep, e->rep_id);
    copy(o->opp, sizeof o->opp, e->opportunity_id);
    copy(o->channel, sizeof o->channel, order_channel_name(e->channel));
    copy(o->distributor, sizeof o->distributor, e->distributor_id);
    copy(o->region, sizeof o->region, e->ship_to_region);
    copy(o->status, sizeof o->status, order_status_name(e->status));
    if (!o->exists || e->status == KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED)
        o->booked_ms = e->booked_at_ms;
    if (e->status == KA__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED)
        o->cancelled_ms = t;
    if (e->status == KA__V1__ORDER_STATUS__ORDER_STATUS_RETURNED)
        o->returned_ms = t;
    if (e->n_lines > 0 || !o->exists) /* a status change may leave the lines out */
        set_lines(o, e);
    if (!o->exists)
        copy(o->booked_event, sizeof o->booked_event, ev->event_id);
    o->exists = 1;
    o->touched = 1;
    o->last_event_ms = e->header->occurred_at_ms;
    copy(o->last_event_id, sizeof o->last_event_id, ev->event_id);
    count_order(ctx, o, +1);

    int booked_now = strcmp(o->status, "booked") == 0;
    if (booked_now && !was_booked) {
        rc = check_channel(ctx, tx, r, o, ev, errstr, errlen);
        if (rc == KA_OK && o->opp[0])
            rc = close_opportunity(tx, o, errstr, errlen);
    }
    record_event(r, ev, e, NULL);
    return rc;
}

static ka_err_t queue_writes(order_ctx_t *ctx, ka_tx_t *tx, rows_t *r, char *errstr,
                             size_t errlen)
{
    ka_pg_t *pg = ka_tx_pg(tx);
    ka_cols_t ord, lines, cleared, act, roll, mark, opp_mark;
    ka_pg_param_t p[KA_COLS_MAX];
    ka_err_t rc = KA_OK;

    ka_cols_begin(&ord, 15);
    ka_cols_begin(&lines, 5);
    ka_cols_begin(&cleared, 1);
    ka_cols_begin(&act, 6);
    ka_cols_begin(&roll, 3);
    ka_cols_begin(&mark, 2);
    ka_cols_begin(&opp_mark, 2);
    for (size_t i = 0; i < ctx->norders; i++) {
        const order_t *o = &ctx->orders[i];
        if (!o->touched)
            continue;
        /* What a won deal still needs (the planning feed) moves with its orders. */
        ka_buf_array_add(&opp_mark.b[0], o->id);
        ka_buf_array_add(&opp_mark.b[1], o->opp[0] ? o->opp : NULL);
        opp_mark.rows++;
        const char *text[] = {o->id, o->account, o->rep, o->opp[0] ? o->opp : NULL, o->channel,
                              o->distributor[0] ? o->distributor : NULL,
                              o->region[0] ? o->region : NULL, o->status};
        for (int c = 0; c < 8; c++)
            ka_buf_array_add(&ord.b[c], text[c]);
        ka_buf_array_add_ms(&ord.b[8], o->booked_ms);
        ka_buf_array_add_ms(&ord.b[9], o->cancelled_ms);
        ka_buf_array_add_ms(&ord.b[10], o->returned_ms);
        ka_buf_array_add_int(&ord.b[11], o->total);
        ka_buf_array_add(&ord.b[12], o->booked_event);
        ka_buf_array_add_int(&ord.b[13], o->last_event_ms);
        ka_buf_array_add(&ord.b[14], o->last_event_id);
        ord.rows++;
        if (!o->lines_replaced)
            continue;
        ka_buf_array_add(&cleared.b[0], o->id);
        cleared.rows++;
        for (size_t l = 0; l < o->nlines; l++) {
            char qty[48];
            snprintf(qty, sizeof qty, "%lld.%03lld", (long long)(o->lines[l].qty_milli / 1000),
                     (long long)(o->lines[l].qty_milli % 1000));
            ka_buf_array_add(&lines.b[0], o->id);
            ka_buf_array_add_int(&lines.b[1], (long long)l + 1);
            ka_buf_array_add(&lines.b[2], o->lines[l].sku);
            ka_buf_array_add(&lines.b[3], qty);
            ka_buf_array_add_int(&lines.b[4], o->lines[l].price);
            lines.rows++;
        }
    }
    for (size_t i = 0; i < ctx->ndeltas; i++) {
        const delta_t *d = &ctx->deltas[i];
        if (!d->amount && !d->qty_milli)
            continue;
        char qty[48];
        int64_t q = d->qty_milli < 0 ? -d->qty_milli : d->qty_milli;
        snprintf(qty, sizeof qty, "%s%lld.%03lld", d->qty_milli < 0 ? "-" : "",
                 (long long)(q / 1000), (long long)(q % 1000));
        ka_buf_array_add(&act.b[0], d->account);
        ka_buf_array_add(&act.b[1], d->sku);
        ka_buf_array_add(&act.b[2], d->rep);
        ka_buf_array_add(&act.b[3], d->month);
        ka_buf_array_add_int(&act.b[4], d->amount);
        ka_buf_array_add(&act.b[5], qty);
        act.rows++;
        if (!d->amount)
            continue;
        ka_buf_array_add(&roll.b[0], d->rep);
        ka_buf_array_add(&roll.b[1], d->month);
        ka_buf_array_add_int(&roll.b[2], d->amount);
        roll.rows++;
        ka_buf_array_add(&mark.b[0], d->rep);
        ka_buf_array_add(&mark.b[1], d->month);
        mark.rows++;
    }
    /* Orders before the rows that reference them. */
    struct {
        const char *stmt;
        ka_cols_t *c;
        ka_pg_rows_fn cb;
    } steps[] = {
        {"order_opportunity_dirty", &opp_mark, NULL}, /* reads the orders' previous deal */
        {"order_upsert", &ord, NULL},
        {"order_lines_clear", &cleared, NULL},
        {"order_lines_insert", &lines, NULL},
        {"order_event_history", &r->event, NULL},
        {"order_actual_add", &act, NULL},
        {"order_rollup_add", &roll, read_rollup},
        {"order_forecast_dirty", &mark, NULL},
        {"order_violations", &r->violation, NULL},
        {"order_quality_add", &r->quality, NULL},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && rc == KA_OK; i++) {
        ka_cols_end(steps[i].c, p);
        if (steps[i].c->rows)
            rc = ka_pg_pipe_push(pg, steps[i].stmt, steps[i].c->n, p, steps[i].cb, ctx, errstr,
                                 errlen);
    }
    /* Crediting reps the org tree does not know (the opportunity worker
     * alerts them); after the roll-up rows, the locks' order. */
    if (rc == KA_OK && roll.rows) {
        char at[24];
        int64_t latest = 0;
        for (size_t i = 0; i < ctx->norders; i++)
            if (ctx->orders[i].touched && ctx->orders[i].last_event_ms > latest)
                latest = ctx->orders[i].last_event_ms;
        snprintf(at, sizeof at, "%lld", (long long)latest);
        ka_pg_param_t up[2] = {{ka_buf_str(&roll.b[0]), 0, 0}, {at, 0, 0}};
        rc = ka_pg_pipe_push(pg, "order_unknown_reps", 2, up, NULL, NULL, errstr, errlen);
    }
    ka_cols_free(&ord);
    ka_cols_free(&lines);
    ka_cols_free(&cleared);
    ka_cols_free(&act);
    ka_cols_free(&roll);
    ka_cols_free(&mark);
    ka_cols_free(&opp_mark);
    return rc;
}

static ka_err_t order_apply(void *ud, ka_tx_t *tx, ka_event_t *const *events, size_t n,
                            char *errstr, size_t errlen)
{
    order_ctx_t *ctx = ud;
    rows_t r;
    ka_err_t rc;

    reset_batch(ctx);
    reset_rollup(ctx);
    ka_cols_begin(&r.event, 9);
    ka_cols_begin(&r.violation, 9);
    ka_cols_begin(&r.quality, 7);
    if ((rc = queue_reads(ctx, tx, events, n, errstr, errlen)) != KA_OK)
        goto out;
    for (size_t i = 0; i < n && rc == KA_OK; i++)
        rc = apply_one(ctx, tx, events[i], &r, errstr, errlen);
    if (rc == KA_OK)
        rc = queue_writes(ctx, tx, &r, errstr, errlen);
out:
    ka_cols_free(&r.event);
    ka_cols_free(&r.violation);
    ka_cols_free(&r.quality);
    return rc;
}

/* Redis ------------------------------------------------------------------------ */

void order_actuals_key(char *out, size_t len, const char *node_id)
{
    snprintf(out, len, "ka:actuals:%s", node_id);
}

static ka_err_t order_after_commit(void *ud, ka_redis_t *rds, ka_event_t *const *events, size_t n,
                                   char *errstr, size_t errlen)
{
    order_ctx_t *ctx = ud;
    char key[128], month[8];
    (void)events;
    (void)n;
    for (size_t i = 0; i < ctx->nrollup; i++) {
        const rollup_row_t *r = &ctx->rollup[i];
        order_actuals_key(key, sizeof key, r->node);
        snprintf(month, sizeof month, "%.7s", r->month); /* YYYY-MM */
        const char *argv[] = {"HSET", key, month, r->amount};
        ka_redis_append_str(rds, 4, argv);
    }
    reset_rollup(ctx);
    return ka_redis_flush(rds, errstr, errlen);
}

static ka_err_t order_rebuild(void *ud, ka_pg_t *pg, ka_redis_t *rds, char *errstr, size_t errlen)
{
    order_ctx_t *ctx = ud;
    reset_rollup(ctx);
    ka_err_t rc = ka_pg_query(pg, "order_rollup_all", 0, NULL, read_rollup, ctx, errstr, errlen);
    if (rc == KA_OK)
        rc = order_after_commit(ud, rds, NULL, 0, errstr, errlen);
    reset_rollup(ctx);
    return rc;
}

/* Setup ---------------------------------------------------------------------------- */

static ka_err_t order_handler_decode(void *ud, const ka_msg_t *msg, void **decoded,
                                     char *event_id, size_t idlen, ka_reject_t *rej)
{
    (void)ud;
    Ka__V1__OrderEvent *ev = NULL;
    ka_err_t rc = order_decode_msg(msg, ka_now_ms(), &ev, event_id, idlen, rej);
    *decoded = ev;
    return rc;
}

static void order_free_decoded(void *ud, void *decoded)
{
    (void)ud;
    ka__v1__order_event__free_unpacked(decoded, NULL);
}

static ka_err_t order_prepare(void *ud, ka_pg_t *pg, char *errstr, size_t errlen)
{
    (void)ud;
    if (ka_alert_prepare(pg, errstr, errlen) != KA_OK ||
        ka_accounts_prepare(pg, errstr, errlen) != KA_OK ||
        order_scan_prepare(pg, errstr, errlen) != KA_OK)
        return KA_ERR;
    return order_statements_prepare(pg, errstr, errlen);
}

static void order_tick(void *ud, ka_worker_t *w)
{
    order_ctx_t *ctx = ud;
    order_scan_tick(ctx->scan, w);
}

order_ctx_t *order_ctx_new(const ka_config_t *cfg)
{
    order_ctx_t *ctx = ka_calloc(1, sizeof *ctx);
    ctx->cfg = cfg;
    ctx->scan = order_scan_new(cfg);
    return ctx;
}

void order_ctx_free(order_ctx_t *ctx)
{
    if (!ctx)
        return;
    reset_batch(ctx);
    reset_rollup(ctx);
    free(ctx->deltas);
    order_scan_free(ctx->scan);
    free(ctx);
}

void order_handler_init(ka_handler_t *h, order_ctx_t *ctx)
{
    memset(h, 0, sizeof *h);
    h->ud = ctx;
    h->prepare = order_prepare;
    h->decode = order_handler_decode;
    h->free_decoded = order_free_decoded;
    h->apply = order_apply;
    h->after_commit = order_after_commit;
    h->rebuild_cache = order_rebuild;
    h->tick = order_tick;
}

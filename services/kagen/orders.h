/* The order stream (--stream orders): the orders of the planned deals'
 * accounts, and the products and distributors they are priced from. */
#ifndef KAGEN_ORDERS_H
#define KAGEN_ORDERS_H

#include "kagen.h"

/* Repeat business goes back a year, so trailing-12-month revenue (the
 * tiers) is complete from the first phase on. */
#define ORDER_HISTORY_DAYS 365
/* A customer's yearly repeat business is this many minor units times its
 * size, a Pareto draw from 1 to ORDER_MAX_SIZE: a few big accounts carry
 * most of the revenue, as the 80/20 rule expects. */
#define ORDER_UNIT_MINOR 40000000LL /* 400,000 a year */
#define ORDER_MAX_SIZE 500
/* Customers of at most this size may buy through distributors. */
#define ORDER_SMALL_SIZE 3

typedef struct product {
    char *sku;
    int family; /* -1: none of the sample's */
    int64_t list; /* minor units per unit */
} product_t;

typedef struct floor_price {
    int product;
    int64_t floor;
} floor_price_t;

typedef struct dist {
    char *id;
    char **regions;
    int nregions;
    floor_price_t *floors;
    int nfloors;
} dist_t;

typedef struct oline {
    int product;
    int64_t qty_milli, price;
} oline_t;

typedef struct order_plan {
    int64_t booked_ms, cancelled_ms, returned_ms; /* 0: never */
    int acct; /* NNNN of 客户 NNNN 有限公司 */
    int rep;
    int opp;  /* the won deal it closes, or the repeat-business opportunity it
               * names (repeat.c), -1: none */
    int repeat_opp; /* opp is a repeat-business opportunity */
    int dist; /* -1: a direct order */
    const char *region;
    int line0, nlines;
    int before_won, diverted, dumped;
} order_plan_t;

typedef struct cust {
    int seen;  /* named by a deal */
    int owner; /* the rep of its first deal, as the account's owner */
    const char *region;
    int size;  /* 1 .. ORDER_MAX_SIZE */
    int established; /* a customer for over a year already */
    int churner;     /* drifts away: smaller orders, then none in phase 2 */
    int64_t first_won_ms;
    int64_t yearly;  /* its repeat business a year (minor units), 0: none */
    int64_t next_ms; /* its first repeat order after now (not sent), 0: none */
} cust_t;

typedef struct order_event {
    int64_t at_ms;
    int order;
    int status; /* Ka__V1__OrderStatus */
} order_event_t;

typedef struct ogen {
    gen_t *g;
    uint64_t seed;
    product_t *products;
    int nproducts;
    dist_t *dists;
    int ndists;
    int diverter, dumper; /* the habitual offenders (index in dists), -1: none */
    cust_t *custs;        /* by account number */
    int ncusts;
    order_plan_t *orders;
    int norders, caporders;
    oline_t *lines;
    int nlines, caplines;
    order_event_t *events;
    int nevents;
    int64_t begin, split;
    int churners;
    struct repeat_opp *repeats; /* repeat.c */
    int nrepeats, caprepeats;
} ogen_t;

int read_products(void *ud, const ka_pgres_t *res);
int read_dists(void *ud, const ka_pgres_t *res);
int read_territories(void *ud, const ka_pgres_t *res);
int read_floors(void *ud, const ka_pgres_t *res);
int pick_product(ogen_t *og, const rep_t *rep, const dist_t *d, int64_t most);
void plan_orders(ogen_t *og, int nopps);
void order_events(ogen_t *og);
size_t encode_order(const ogen_t *og, const order_event_t *ev, char *key, size_t keylen,
                    uint8_t **out);
void ogen_free(ogen_t *og);

#endif

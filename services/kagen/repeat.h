/* Repeat business forecast by opportunities of its own (repeat.c). */
#ifndef KAGEN_REPEAT_H
#define KAGEN_REPEAT_H

#include "orders.h"

/* An account's month of repeat business worth at least this (minor units:
 * 100,000 yuan) has an opportunity of its own; smaller ones go unforecast. */
#define REPEAT_OPP_MIN 10000000LL

typedef struct repeat_opp {
    int opp;  /* its number, after the planned deals' */
    int acct; /* NNNN of 客户 NNNN 有限公司 */
    int rep;  /* the account's owner */
    int ym;   /* year * 12 + month - 1 of the month it is for */
    int booked; /* an order of the stream closes it */
    int64_t created, confirmed, committed, stage2, stage3, lost, close; /* 0: none */
    int64_t estimate, refined; /* its amount at first, and once the plan firms */
    int nlines;
    int product[PLAN_MAX_LINES];
    int64_t qty_milli[PLAN_MAX_LINES], price[PLAN_MAX_LINES];
} repeat_opp_t;

/* After plan_orders: which months of which accounts have an opportunity,
 * numbered from nopps on, and when each moves; the orders of such a month
 * name it (order_plan_t.opp). Both the opportunity and the order stream
 * call it, on the same order plan, so they agree. */
void plan_repeat(ogen_t *og, int nopps);
/* Adds the repeat opportunities' events to g's plan. */
void repeat_events(gen_t *g, const ogen_t *og);
/* What the team's repeat opportunities add to its commit for month ym at
 * the end of the streams (still open, called commit by then). */
int64_t repeat_commit_open(const ogen_t *og, const char *team, int ym);

#endif

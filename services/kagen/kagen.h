/* kagen's shared pieces: the company (reps) and the opportunity plan every
 * stream starts from, and the Kafka producer they all play through. */
#ifndef KAGEN_H
#define KAGEN_H

#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "ka_kafka.h"
#include "ka_pg.h"

#define DAY_MS 86400000LL
#define HISTORY_DAYS 120
#define RECENT_DAYS 21
#define HOUR_MS 3600000LL
/* Opportunities name their account "客户 NNNN 有限公司", NNNN = opportunity
 * number modulo this (--accounts, 1500 by default), so most accounts carry
 * two or more deals. */
extern int opp_accounts;
/* Percentage of stage changes after which the owner also tries to hand the
 * deal over himself, which only a superior may do (an alert). */
extern int unauthorized_pct;

#define NELEMS(a) ((int)(sizeof(a) / sizeof((a)[0])))
/* Line items an updated event carries at most: a deal's products, or a
 * month's call-offs of a repeat-business opportunity (repeat.c). */
#define PLAN_MAX_LINES 8

typedef struct rep {
    char *id, *team, *manager, *bu, *def, *area; /* area: its sales region's name */
} rep_t;

typedef struct plan_event {
    int64_t at_ms;
    int opp;
    int kind; /* Ka__V1__OpportunityEvent__KindCase */
    char stage[8];
    int64_t amount;
    int new_owner; /* rep index for owner changes */
    int seq;
    int unauthorized; /* an owner change by the owner (--unauthorized-pct) */
    /* forecast events (planned from their own stream, after the rest) */
    int64_t close_ms;          /* updated: the new expected close date instead of an amount;
                                * created: its expected close date (0: 90 days on) */
    int acct;                  /* created: account number + 1 (0: the opportunity's number
                                * modulo opp_accounts) */
    int quarter, year, number; /* forecast_confirmed / _adjusted: the period */
    int category;              /* Ka__V1__ForecastCategory */
    int adj_rep;               /* forecast_adjusted: a rep of the team adjusted */
    int nlines;                /* updated: the line items (and the amount, when not 0) */
    const char *sku[PLAN_MAX_LINES];
    int64_t qty_milli[PLAN_MAX_LINES], price[PLAN_MAX_LINES];
    /* forecast_confirmed by someone else than the owner (the one deliberate
     * mistake, dead-lettered): the rep index + 1, 0 for the owner */
    int stranger;
    uint32_t answers; /* assessed: the 20 answers, bit i = question i + 1 yes */
} plan_event_t;

typedef struct gen {
    uint64_t seed;
    rep_t *reps;
    int nreps;
    char **dry_teams;
    int ndry;
    plan_event_t *events;
    int nevents, capevents;
    int *owner; /* current owner of each opportunity while planning */
    int64_t now_ms;
    const char *prefix;
    uint64_t vseed; /* the visits' own random stream: opportunities plan the same */
} gen_t;

/* plan.c: the opportunity plan */
uint32_t rnd(gen_t *g, uint32_t n);
int read_reps(void *ud, const ka_pgres_t *res);
int is_dry(const gen_t *g, const char *team);
void add(gen_t *g, int64_t at, int opp, int kind, const char *stage, int64_t amount,
         int new_owner);
void plan_opportunity(gen_t *g, int opp, int64_t start, int64_t split);
int by_time(const void *a, const void *b);
void date_of(int64_t ms, char out[11]);
void ym_of(int64_t ms, int *year, int *month);

/* assess.c: the value assessments (商机价值评估), from a stream of their own */
void plan_assessments(gen_t *g, int n0);

/* opportunities.c: one planned event as an OpportunityEvent */
size_t encode(const gen_t *g, const plan_event_t *p, int *owner_now, uint8_t **out);

/* produce.c */
extern int failures;
extern long long rate;
/* --format: how events are written (protobuf, json, cloudevents, confluent);
 * the stream's message type, for the other modes. */
int produce_set_format(const char *name, const ProtobufCMessageDescriptor *desc);
void on_delivery(void *ud, void *opaque, ka_err_t status, int possibly, const char *err);
int produce(ka_producer_t *kp, const char *topic, const char *key, const uint8_t *buf,
            size_t len);

#endif

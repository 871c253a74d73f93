/* The visit stream (--stream visits): the plan of every account's visits
 * around the opportunity plan. */
#ifndef KAGEN_VISITS_H
#define KAGEN_VISITS_H

#include "kagen.h"

/* One event of one deal, as the visit plan sees it: per account, in time
 * order. */
typedef struct milestone {
    int64_t at_ms;
    int opp;
    int kind;  /* Ka__V1__OpportunityEvent__KindCase */
    int stage; /* the stage after the event */
    int owner; /* the owner after the event */
} milestone_t;

/* MAN classes as bits, Money 4, Authority 2, Need 1: 7 is "MAN", 0 "man". */
#define MAN_M 4
#define MAN_A 2
#define MAN_N 1
#define NO_CHANGE INT64_MAX

typedef struct account_plan {
    int number;   /* NNNN of "客户 NNNN 有限公司" */
    int prospect; /* visited, no deal yet: "客户 PNNNN 有限公司" */
    int owner;    /* the rep who visits it (of its first deal) */
    const milestone_t *ms;
    int nms;
    int64_t first_ms;
    int neglected;     /* no visit at all in phase 2 */
    int no_dm;         /* never meets a decision maker */
    int two_spellings; /* some visits spell the name another way */
    int spelling;      /* which other way (0..2) */
    int lost_only;     /* every deal lost by the end */
    int man_before, man_after;
    int64_t man_change_ms; /* when the class turns to man_after, NO_CHANGE */
} account_plan_t;

typedef struct visit_plan {
    int64_t at_ms;
    int acct; /* index in the account table */
    int rep;
    int opp;       /* -1: not about a deal */
    int objective; /* Ka__V1__VisitObjective */
    int variant;   /* 1: the account's other spelling */
    int contacts[3];
    int ncontacts;
    int satisfaction; /* Ka__V1__Satisfaction, 0: not asked */
    int man;          /* MAN bits, -1: not assessed */
    int action;       /* Ka__V1__FollowUpAction */
    int interval;     /* Ka__V1__RevisitInterval, 0 with a date or giving up */
    int64_t date_ms;  /* an explicit next-visit date (midnight UTC), 0: none */
    int note;
    int seq;
} visit_plan_t;

typedef struct deal_visit {
    int64_t at_ms;
    int opp, rep, kind, stage;
} deal_visit_t;

typedef struct vgen {
    gen_t *g;
    int nopps;
    uint64_t cast_seed;
    milestone_t *ms;
    account_plan_t *accts;
    int naccts;
    int *status; /* per opportunity while walking its account: 0 not yet, 1 open, 2 won, 3 lost */
    int *stage;
    int64_t *lost_at;
    visit_plan_t *visits;
    int nvisits, capvisits;
    int64_t begin, split;
} vgen_t;

void plan_visits(vgen_t *vg);
int by_visit_time(const void *a, const void *b);
size_t encode_visit(const vgen_t *vg, const visit_plan_t *v, char *key, size_t keylen,
                    uint8_t **out);
void vgen_free(vgen_t *vg);

#endif

/* kagen: a deterministic, seeded generator of realistic streams for the demo
 * (and, later, the benchmarks). It reads the reps of the org tree from
 * PostgreSQL, plans every opportunity's life (stage moves forward and back,
 * amount updates, owner changes by the team manager, wins and losses) and
 * produces the events of one phase to Kafka:
 *
 *   phase 1  the history: every team sells normally;
 *   phase 2  the recent weeks: a few "dry" teams stop creating
 *            opportunities and lose most of the open ones, so their funnel
 *            falls under its baseline.
 *
 * The same seed plans the same company both times, so phase 2 continues
 * exactly where phase 1 stopped. The opportunity stream also carries the
 * owners' forecast confirmations (with the deal's products, and a later
 * month when the close date moves) and, in phase 2, a few managers'
 * adjustments, planned from a stream of their own after the rest, so the
 * other events are the same with or without them (plan_forecast).
 *
 * --stream visits plays the reps' visits to the same accounts instead
 * (DOMAIN.md section 3): it plans the opportunities exactly as above, then,
 * from a second random stream, the visits around them: a cadence that
 * follows each visit's follow-up plan, visits about the deals as they move,
 * contacts with their buying roles, satisfaction and MAN readings. In phase
 * 2 the dry teams' reps (and a few others) stop visiting their accounts, so
 * follow-ups fall overdue, and some accounts with a late-stage deal never
 * see a decision maker.
 *
 * --stream orders plays the orders of the same accounts (DOMAIN.md section
 * 6), from a third random stream: an order for each won deal, a year of
 * repeat orders whose sizes follow a Pareto law (so the 80/20 tiers mean
 * something), cancellations and returns, and the small customers' orders
 * partly through the distributors on file, a few of them shipped outside the
 * distributor's territory or priced under its floor. In phase 2 a few big
 * accounts stop ordering. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_account_key.h"
#include "ka_config.h"
#include "ka_kafka.h"
#include "ka_log.h"
#include "ka_pg.h"
#include "ka_validate.h"

#define DAY_MS 86400000LL
#define HISTORY_DAYS 120
#define RECENT_DAYS 21
#define HOUR_MS 3600000LL
/* Opportunities name their account "客户 NNNN 有限公司", NNNN = opportunity
 * number modulo this (--accounts, 1500 by default), so most accounts carry
 * two or more deals. */
static int opp_accounts = 1500;
/* Percentage of stage changes after which the owner also tries to hand the
 * deal over himself, which only a superior may do (an alert). */
static int unauthorized_pct;

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
    int64_t close_ms;          /* updated: the new expected close date instead of an amount */
    int quarter, year, number; /* forecast_confirmed / _adjusted: the period */
    int category;              /* Ka__V1__ForecastCategory */
    int adj_rep;               /* forecast_adjusted: a rep of the team adjusted */
    int nlines;                /* updated: the line items instead of an amount */
    const char *sku[3];
    int64_t qty_milli[3], price[3];
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

static const char *const adjust_reasons[] = {
    "按重点客户最新采购计划修订本月承诺", "招标结果未公布，承诺数按经理判断修订",
    "客户预算审批进度变化，修订本月承诺", "与大客户高层会谈后重新评估本月承诺"};

static uint32_t rnd(gen_t *g, uint32_t n)
{
    g->seed = g->seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return n ? (uint32_t)(g->seed >> 33) % n : 0;
}

static int read_reps(void *ud, const ka_pgres_t *res)
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

static int is_dry(const gen_t *g, const char *team)
{
    for (int i = 0; i < g->ndry; i++)
        if (strcmp(g->dry_teams[i], team) == 0)
            return 1;
    return 0;
}

static void add(gen_t *g, int64_t at, int opp, int kind, const char *stage, int64_t amount,
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
static void plan_opportunity(gen_t *g, int opp, int64_t start, int64_t split)
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

static int by_time(const void *a, const void *b)
{
    const plan_event_t *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    return x->seq - y->seq;
}

static void date_of(int64_t ms, char out[11])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

static size_t encode(const gen_t *g, const plan_event_t *p, int *owner_now, uint8_t **out)
{
    char event_id[96], opp_id[64], account[64], close[11];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__OpportunityCreated c = KA__V1__OPPORTUNITY_CREATED__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__OpportunityUpdated u = KA__V1__OPPORTUNITY_UPDATED__INIT;
    Ka__V1__StageChanged sc = KA__V1__STAGE_CHANGED__INIT;
    Ka__V1__OwnerChanged oc = KA__V1__OWNER_CHANGED__INIT;
    Ka__V1__OpportunityWon won = KA__V1__OPPORTUNITY_WON__INIT;
    Ka__V1__OpportunityLost lost = KA__V1__OPPORTUNITY_LOST__INIT;
    Ka__V1__ForecastConfirmed fc = KA__V1__FORECAST_CONFIRMED__INIT;
    Ka__V1__ForecastAdjusted fa = KA__V1__FORECAST_ADJUSTED__INIT;
    Ka__V1__Period period = KA__V1__PERIOD__INIT;
    Ka__V1__LineItem line[3] = {KA__V1__LINE_ITEM__INIT, KA__V1__LINE_ITEM__INIT,
                                KA__V1__LINE_ITEM__INIT};
    Ka__V1__LineItem *items[3];
    const rep_t *owner = &g->reps[owner_now[p->opp]];

    snprintf(opp_id, sizeof opp_id, "%s-%06d", g->prefix, p->opp);
    snprintf(event_id, sizeof event_id, "%s-%06d-%d", g->prefix, p->opp, p->seq);
    h.event_id = event_id;
    h.occurred_at_ms = p->at_ms;
    h.producer = "kagen";
    e.header = &h;
    e.opportunity_id = opp_id;
    e.actor_id = owner->id;
    e.kind_case = (Ka__V1__OpportunityEvent__KindCase)p->kind;
    switch (p->kind) {
    case KA__V1__OPPORTUNITY_EVENT__KIND_CREATED:
        snprintf(account, sizeof account, "客户 %04d 有限公司", p->opp % opp_accounts);
        date_of(p->at_ms + DAY_MS * 90, close);
        a.name = account;
        c.account = &a;
        c.owner_rep_id = owner->id;
        c.business_unit_id = owner->bu[0] ? owner->bu : NULL;
        c.stage_code = (char *)p->stage;
        c.amount_minor = p->amount;
        c.expected_close_date = close;
        c.sales_mode = KA__V1__SALES_MODE__SALES_MODE_DIRECT;
        e.created = &c;
        break;
    case KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED:
        if (p->nlines) { /* the products */
            u.replace_lines = 1;
            u.n_lines = (size_t)p->nlines;
            u.lines = items;
            for (int l = 0; l < p->nlines; l++) {
                items[l] = &line[l];
                line[l].sku = (char *)p->sku[l];
                line[l].quantity_milli = p->qty_milli[l];
                line[l].unit_price_minor = p->price[l];
            }
        } else if (p->close_ms) { /* the close date moves */
            date_of(p->close_ms, close);
            u.expected_close_date_present_case =
                KA__V1__OPPORTUNITY_UPDATED__EXPECTED_CLOSE_DATE_PRESENT_EXPECTED_CLOSE_DATE;
            u.expected_close_date = close;
        } else {
            u.amount_minor_present_case =
                KA__V1__OPPORTUNITY_UPDATED__AMOUNT_MINOR_PRESENT_AMOUNT_MINOR;
            u.amount_minor = p->amount;
        }
        e.updated = &u;
        break;
    case KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED:
    case KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED:
        period.kind = p->quarter ? KA__V1__PERIOD_KIND__PERIOD_KIND_QUARTER
                                 : KA__V1__PERIOD_KIND__PERIOD_KIND_MONTH;
        period.year = p->year;
        period.number = p->number;
        if (p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED) {
            fc.period = &period;
            fc.category = (Ka__V1__ForecastCategory)p->category;
            e.forecast_confirmed = &fc;
            break;
        }
        /* 修订销售预测: the team's manager, on a node-level event */
        snprintf(opp_id, sizeof opp_id, "%s-adj-%s", g->prefix, g->reps[p->adj_rep].team);
        snprintf(event_id, sizeof event_id, "%s-adj-%d", g->prefix, p->seq);
        e.actor_id = g->reps[p->adj_rep].manager;
        fa.node_id = g->reps[p->adj_rep].team;
        fa.period = &period;
        fa.category = (Ka__V1__ForecastCategory)p->category;
        fa.amount_minor_present_case =
            KA__V1__FORECAST_ADJUSTED__AMOUNT_MINOR_PRESENT_AMOUNT_MINOR;
        fa.amount_minor = p->amount;
        fa.reason = (char *)adjust_reasons[p->seq % 4];
        e.forecast_adjusted = &fa;
        break;
    case KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED:
        sc.to_stage_code = (char *)p->stage;
        e.stage_changed = &sc;
        break;
    case KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED:
        e.actor_id = owner->manager; /* only a superior may hand it over */
        if (p->unauthorized) { /* the owner tries it himself: refused, nothing changes */
            e.actor_id = owner->id;
            oc.new_owner_rep_id = g->reps[p->new_owner].id;
            e.owner_changed = &oc;
            break;
        }
        oc.new_owner_rep_id = g->reps[p->new_owner].id;
        e.owner_changed = &oc;
        owner_now[p->opp] = p->new_owner;
        break;
    case KA__V1__OPPORTUNITY_EVENT__KIND_WON:
        e.won = &won;
        break;
    default:
        lost.reason = KA__V1__LOST_REASON__LOST_REASON_COMPETITOR;
        e.lost = &lost;
        break;
    }
    size_t len = ka__v1__opportunity_event__get_packed_size(&e);
    *out = ka_malloc(len + 1);
    ka__v1__opportunity_event__pack(&e, *out);
    return len;
}

/* ------------------------------------------------------------------ visits */

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

static uint32_t vrnd(gen_t *g, uint32_t n)
{
    g->vseed = g->vseed * 6364136223846793005ULL + 1442695040888963407ULL;
    return n ? (uint32_t)(g->vseed >> 33) % n : 0;
}

/* A draw from weights[0..n): returns the index. */
static int pick(gen_t *g, const int *weights, int n)
{
    int total = 0;
    for (int i = 0; i < n; i++)
        total += weights[i];
    int r = (int)vrnd(g, (uint32_t)total);
    for (int i = 0; i < n; i++) {
        if (r < weights[i])
            return i;
        r -= weights[i];
    }
    return n - 1;
}

/* splitmix64's finalizer: the contacts of an account are a function of the
 * seed and the account, not of the order things were planned in. */
static uint32_t hash3(uint64_t seed, int a, int b, int c)
{
    uint64_t x = seed ^ ((uint64_t)(uint32_t)a << 40) ^ ((uint64_t)(uint32_t)b << 20) ^
                 (uint64_t)(uint32_t)c;
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)((x ^ (x >> 31)) >> 16);
}

/* --- the people met: each account has a cast of 3 to 6 contacts, number 0
 * its decision maker (决策者) */

typedef struct title {
    const char *title;
    Ka__V1__BuyingRole role;
    Ka__V1__BuyingFunction function;
} title_t;

static const title_t dm_titles[] = {
    {"总经理", KA__V1__BUYING_ROLE__BUYING_ROLE_DECISION_MAKER,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_ECONOMIC},
    {"董事长", KA__V1__BUYING_ROLE__BUYING_ROLE_DECISION_MAKER,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_ECONOMIC},
    {"分管副总经理", KA__V1__BUYING_ROLE__BUYING_ROLE_DECISION_MAKER,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_ECONOMIC},
};

/* 11 titles: a step of 5 visits them all before repeating one. */
static const title_t other_titles[] = {
    {"财务总监", KA__V1__BUYING_ROLE__BUYING_ROLE_INFLUENCER,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_FINANCIAL},
    {"技术总监", KA__V1__BUYING_ROLE__BUYING_ROLE_INFLUENCER,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_TECHNICAL},
    {"采购部经理", KA__V1__BUYING_ROLE__BUYING_ROLE_MANAGER_IN_CHARGE,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_TECHNICAL},
    {"设备部部长", KA__V1__BUYING_ROLE__BUYING_ROLE_MANAGER_IN_CHARGE,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_USER},
    {"办公室主任", KA__V1__BUYING_ROLE__BUYING_ROLE_COACH,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_COACH},
    {"总工程师", KA__V1__BUYING_ROLE__BUYING_ROLE_INFLUENCER,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_TECHNICAL},
    {"车间主任", KA__V1__BUYING_ROLE__BUYING_ROLE_BYSTANDER,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_USER},
    {"生产部经理", KA__V1__BUYING_ROLE__BUYING_ROLE_MANAGER_IN_CHARGE,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_USER},
    {"工艺工程师", KA__V1__BUYING_ROLE__BUYING_ROLE_BYSTANDER,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_TECHNICAL},
    {"设备工程师", KA__V1__BUYING_ROLE__BUYING_ROLE_COACH,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_COACH},
    {"财务部经理", KA__V1__BUYING_ROLE__BUYING_ROLE_BYSTANDER,
     KA__V1__BUYING_FUNCTION__BUYING_FUNCTION_FINANCIAL},
};

static const char *const surnames[] = {"王", "李", "张", "刘", "陈", "杨", "黄", "赵",
                                       "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
                                       "何", "高", "林", "罗", "郑", "梁", "谢", "宋"};
static const char *const given_names[] = {"建国", "志强", "海涛", "丽华", "国平", "秀英", "伟",
                                          "敏",   "静",   "军",   "勇",   "磊",   "洋",   "艳",
                                          "杰",   "娟",   "晓东", "明",   "超",   "春梅", "建华",
                                          "文斌", "宁",   "立新", "红霞"};

#define NELEMS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int cast_size(const vgen_t *vg, int acct)
{
    return 3 + (int)(hash3(vg->cast_seed, acct, 0, 1) % 4);
}

static const title_t *contact_title(const vgen_t *vg, int acct, int k)
{
    if (k == 0)
        return &dm_titles[hash3(vg->cast_seed, acct, 0, 2) % (uint32_t)NELEMS(dm_titles)];
    uint32_t start = hash3(vg->cast_seed, acct, 0, 3);
    return &other_titles[(start + 5u * (uint32_t)(k - 1)) % (uint32_t)NELEMS(other_titles)];
}

static void contact_name(const vgen_t *vg, int acct, int k, char *out, size_t len)
{
    uint32_t h = hash3(vg->cast_seed, acct, k, 4);
    snprintf(out, len, "%s%s", surnames[h % (uint32_t)NELEMS(surnames)],
             given_names[(h >> 8) % (uint32_t)NELEMS(given_names)]);
}

/* --- how reps write an account's name */

/* Appends c as its full-width form (U+FF01..U+FF5E). */
static size_t put_full_width(char *out, size_t o, char c)
{
    unsigned cp = 0xFF00u + (unsigned)(unsigned char)c - 0x20u;
    out[o++] = (char)(0xE0u | (cp >> 12));
    out[o++] = (char)(0x80u | ((cp >> 6) & 0x3Fu));
    out[o++] = (char)(0x80u | (cp & 0x3Fu));
    return o;
}

/* The name a visit gives its account: the usual "客户 0042 有限公司", or
 * the account's other spelling, which ka_account_key folds into the same
 * key: full-width letters and digits, stray spaces, ideographic spaces,
 * lower case. */
static void account_name(const account_plan_t *a, int variant, char *out, size_t len)
{
    char code[16], buf[128];
    size_t o = 0;
    snprintf(code, sizeof code, a->prospect ? "P%04d" : "%04d", a->number);
    if (!variant) {
        snprintf(out, len, "客户 %s 有限公司", code);
        return;
    }
    switch (a->spelling) {
    case 0: /* 客户 ０１２３ 有限公司, 客户 Ｐ００４２ 有限公司 */
        o = (size_t)snprintf(buf, sizeof buf, "客户 ");
        for (const char *c = code; *c; c++)
            o = put_full_width(buf, o, *c);
        snprintf(buf + o, sizeof buf - o, " 有限公司");
        break;
    case 1: /* "  客户   0123  有限公司 ", "  客户   p0042  有限公司 " */
        if (a->prospect)
            code[0] = 'p';
        snprintf(buf, sizeof buf, "  客户   %s  有限公司 ", code);
        break;
    default: /* 客户　０１２３　有限公司 with ideographic spaces, ｐ in lower case */
        if (a->prospect)
            code[0] = 'p';
        o = (size_t)snprintf(buf, sizeof buf, "客户\u3000");
        for (const char *c = code; *c; c++)
            o = put_full_width(buf, o, *c);
        snprintf(buf + o, sizeof buf - o, "\u3000有限公司");
        break;
    }
    snprintf(out, len, "%s", buf);
}

/* --- what reps write down */

static const char *const notes[][3] = {
    [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_SELL] =
        {"介绍新一代产品方案，客户要求提供报价", "技术交流，确认配置需求和交货期",
         "商务洽谈，讨论付款方式和价格"},
    [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_MAINTAIN] =
        {"回访设备使用情况，运行稳定", "处理售后问题，约定下次巡检",
         "交付后回访，安排操作培训"},
    [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_RELATIONSHIP] =
        {"拜访客户高层，沟通明年合作规划", "邀请客户参加技术交流会",
         "陪同客户参观样板工程"},
    [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_INTELLIGENCE] =
        {"了解客户明年的投资和扩产计划", "收集竞争对手的报价和动态",
         "了解丢单原因，客户选择了竞争对手"},
    [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_CONSULT] =
        {"解答客户技术咨询", "客户咨询备件供货周期", "客户咨询设备改造方案"},
};

/* --- planning */

/* A time in working hours (09:00 to 18:00 in Beijing, UTC+8) on the day of
 * t; a weekend day becomes any working day of its week (Saturday) or of the
 * next (Sunday), so no weekday gets more visits than another. */
static int64_t work_time(gen_t *g, int64_t t)
{
    int64_t day = t - t % DAY_MS;
    int weekday = (int)((day / DAY_MS + 4) % 7); /* 1970-01-01 was a Thursday; 0 = Sunday */
    if (weekday == 6)
        day -= (int64_t)(1 + vrnd(g, 5)) * DAY_MS;
    else if (weekday == 0)
        day += (int64_t)(1 + vrnd(g, 5)) * DAY_MS;
    return day + (int64_t)(1 + vrnd(g, 8)) * HOUR_MS + (int64_t)vrnd(g, 60) * 60000;
}

/* When the rep actually comes back for a plan due at due_ms (or on an
 * explicit date): mostly a little early, sometimes late. */
static int64_t come_back(gen_t *g, int64_t due_ms, int64_t date_ms)
{
    uint32_t r = vrnd(g, 100);
    if (date_ms)
        return work_time(g, r < 75 ? date_ms : date_ms + (int64_t)(1 + vrnd(g, 12)) * DAY_MS);
    if (r < 70)
        return work_time(g, due_ms - (int64_t)(1 + vrnd(g, 6)) * DAY_MS);
    if (r < 90)
        return work_time(g, due_ms + (int64_t)vrnd(g, 7) * DAY_MS);
    return work_time(g, due_ms + (int64_t)(7 + vrnd(g, 18)) * DAY_MS);
}

static int is_nurture(int man)
{
    return man == MAN_M || man == MAN_A || man == MAN_N; /* Man, mAn, maN */
}

static visit_plan_t *new_visit(vgen_t *vg)
{
    if (vg->nvisits == vg->capvisits) {
        vg->capvisits = vg->capvisits ? vg->capvisits * 2 : 4096;
        vg->visits = ka_realloc(vg->visits, (size_t)vg->capvisits * sizeof *vg->visits);
    }
    visit_plan_t *v = &vg->visits[vg->nvisits];
    memset(v, 0, sizeof *v);
    v->seq = vg->nvisits++;
    v->opp = -1;
    v->man = -1;
    return v;
}

/* The follow-up plan of a visit (依可能成交的时间分类). */
static void plan_follow_up(gen_t *g, visit_plan_t *v, int man, int top_stage)
{
    uint32_t r = vrnd(g, 100);
    int date_days = 0;
    v->action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_CONTINUE;
    if (is_nurture(man)) { /* nurture long-term: come back rarely */
        if (r < 45) {
            v->action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_PAUSE;
            v->interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_80_DAYS;
        } else if (r < 70) {
            v->interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_60_DAYS;
        } else if (r < 85) {
            v->interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_40_DAYS;
        } else {
            date_days = 14 + (int)vrnd(g, 50);
            if (vrnd(g, 3) == 0)
                v->action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_PAUSE;
        }
    } else if (top_stage >= 4) { /* a deal close to the finish: come back soon */
        if (r < 55)
            v->interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_20_DAYS;
        else if (r < 75)
            v->interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_40_DAYS;
        else if (r < 80)
            v->interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_60_DAYS;
        else
            date_days = 5 + (int)vrnd(g, 20);
    } else {
        if (r < 30)
            v->interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_20_DAYS;
        else if (r < 65)
            v->interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_40_DAYS;
        else if (r < 80)
            v->interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_60_DAYS;
        else if (r < 92)
            date_days = 10 + (int)vrnd(g, 35);
        else {
            v->action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_PAUSE;
            v->interval = KA__V1__REVISIT_INTERVAL__REVISIT_INTERVAL_80_DAYS;
        }
    }
    if (date_days) {
        int64_t d = v->at_ms + date_days * DAY_MS;
        v->date_ms = d - d % DAY_MS;
    }
}

static int64_t due_of(const visit_plan_t *v)
{
    static const int days[] = {0, 20, 40, 60, 80};
    if (v->date_ms)
        return v->date_ms + DAY_MS; /* the date itself is still on time */
    return v->at_ms + days[v->interval] * DAY_MS;
}

static void pick_contacts(vgen_t *vg, visit_plan_t *v, const account_plan_t *a, int ai,
                          int want_dm)
{
    gen_t *g = vg->g;
    int cast = cast_size(vg, ai);
    if (want_dm && !a->no_dm)
        v->contacts[v->ncontacts++] = 0;
    int others = 1 + (int)vrnd(g, v->ncontacts ? 2 : 3);
    for (int i = 0; i < others && v->ncontacts < 3; i++) {
        int k = 1 + (int)vrnd(g, (uint32_t)cast - 1);
        int dup = 0;
        for (int j = 0; j < v->ncontacts; j++)
            dup |= v->contacts[j] == k;
        if (!dup)
            v->contacts[v->ncontacts++] = k;
    }
}

static int cmp_deal_visit(const void *x, const void *y)
{
    const deal_visit_t *a = x, *b = y;
    if (a->at_ms != b->at_ms)
        return a->at_ms < b->at_ms ? -1 : 1;
    return a->opp - b->opp;
}

/* Plans every visit to one account, in time order: a cadence that follows
 * each visit's follow-up plan, and visits about its deals as they move. */
static void plan_account_visits(vgen_t *vg, int ai)
{
    static const int cadence_objectives[] = {
        [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_SELL] = 8,
        [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_MAINTAIN] = 35,
        [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_RELATIONSHIP] = 30,
        [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_INTELLIGENCE] = 15,
        [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_CONSULT] = 12,
    };
    static const int prospect_objectives[] = {
        [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_SELL] = 20,
        [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_MAINTAIN] = 0,
        [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_RELATIONSHIP] = 30,
        [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_INTELLIGENCE] = 35,
        [KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_CONSULT] = 15,
    };
    static const int satisfied[] = {0, 28, 45, 17, 8, 2};
    static const int after_loss[] = {0, 5, 25, 30, 30, 10};
    gen_t *g = vg->g;
    account_plan_t *a = &vg->accts[ai];
    deal_visit_t *deals = ka_calloc((size_t)a->nms + 1, sizeof *deals);
    int ndeals = 0;

    /* visits about the deals: around a stage move, after a win or a loss */
    for (int i = 0; i < a->nms; i++) {
        const milestone_t *m = &a->ms[i];
        deal_visit_t *d = &deals[ndeals];
        uint32_t r = vrnd(g, 100);
        d->opp = m->opp;
        d->rep = m->owner;
        d->kind = m->kind;
        d->stage = m->stage;
        if ((m->kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED ||
             m->kind == KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED) && r < 45)
            d->at_ms = work_time(g, m->at_ms - (int64_t)vrnd(g, 4) * DAY_MS);
        else if (m->kind == KA__V1__OPPORTUNITY_EVENT__KIND_WON && r < 60)
            d->at_ms = work_time(g, m->at_ms + (int64_t)(1 + vrnd(g, 6)) * DAY_MS);
        else if (m->kind == KA__V1__OPPORTUNITY_EVENT__KIND_LOST && r < 30)
            d->at_ms = work_time(g, m->at_ms + (int64_t)(2 + vrnd(g, 10)) * DAY_MS);
        else
            continue;
        ndeals++;
    }
    qsort(deals, (size_t)ndeals, sizeof *deals, cmp_deal_visit);

    int64_t last = INT64_MIN, next = work_time(g, a->first_ms);
    int di = 0, mi = 0, dm_met = 0, last_read = -1;
    for (;;) {
        while (di < ndeals && last != INT64_MIN && deals[di].at_ms <= last + 2 * HOUR_MS)
            di++; /* that was this visit already */
        int64_t at_deal = di < ndeals ? deals[di].at_ms : INT64_MAX;
        int about_deal = at_deal < next;
        int64_t t = about_deal ? at_deal : next;
        if (t == INT64_MAX || t > g->now_ms || (a->neglected && t >= vg->split))
            break;
        /* the account's deals as they stand at t */
        for (; mi < a->nms && a->ms[mi].at_ms <= t; mi++) {
            const milestone_t *m = &a->ms[mi];
            vg->stage[m->opp] = m->stage;
            if (m->kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED ||
                m->kind == KA__V1__OPPORTUNITY_EVENT__KIND_REOPENED)
                vg->status[m->opp] = 1;
            else if (m->kind == KA__V1__OPPORTUNITY_EVENT__KIND_WON)
                vg->status[m->opp] = 2;
            else if (m->kind == KA__V1__OPPORTUNITY_EVENT__KIND_LOST) {
                vg->status[m->opp] = 3;
                vg->lost_at[m->opp] = m->at_ms;
            }
        }
        int top_stage = 0, recent_loss = 0;
        for (int i = 0; i < a->nms; i++) {
            int o = a->ms[i].opp;
            if (vg->status[o] == 1 && vg->stage[o] > top_stage)
                top_stage = vg->stage[o];
            if (vg->status[o] == 3 && t - vg->lost_at[o] < 30 * DAY_MS)
                recent_loss = 1;
        }

        visit_plan_t *v = new_visit(vg);
        int want_dm;
        v->at_ms = t;
        v->acct = ai;
        if (about_deal) {
            const deal_visit_t *d = &deals[di++];
            v->rep = d->rep;
            v->opp = d->opp;
            if (d->kind == KA__V1__OPPORTUNITY_EVENT__KIND_WON) {
                v->objective = KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_MAINTAIN;
                v->note = 2;
            } else if (d->kind == KA__V1__OPPORTUNITY_EVENT__KIND_LOST) {
                v->objective = KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_INTELLIGENCE;
                v->note = 2;
            } else {
                uint32_t r = vrnd(g, 100);
                v->objective = r < 75   ? KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_SELL
                               : r < 90 ? KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_CONSULT
                                        : KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_INTELLIGENCE;
                /* note 2 of a sale is the negotiation, of intelligence the lost deal */
                v->note = v->objective == KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_SELL &&
                                  d->stage >= 6
                              ? 2
                              : (int)vrnd(g, 2);
            }
            want_dm = (int)vrnd(g, 100) < (d->stage >= 3 ? 60 : 25);
        } else {
            v->rep = a->owner;
            if (last == INT64_MIN)
                v->objective = vrnd(g, 10) < 6 ? KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_INTELLIGENCE
                                               : KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_SELL;
            else
                v->objective = pick(g, a->prospect ? prospect_objectives : cadence_objectives,
                                    NELEMS(cadence_objectives));
            v->note = (int)vrnd(
                g, v->objective == KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_INTELLIGENCE ? 2 : 3);
            want_dm = (int)vrnd(g, 100) <
                      (v->objective == KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_RELATIONSHIP ? 35
                       : last == INT64_MIN                                                 ? 30
                                                                                           : 15);
        }
        v->variant = a->two_spellings && vrnd(g, 2);
        pick_contacts(vg, v, a, ai, want_dm);
        if (v->ncontacts && v->contacts[0] == 0)
            dm_met = 1;
        int ask = v->objective == KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_MAINTAIN ||
                          v->objective == KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_RELATIONSHIP
                      ? 70
                      : 35;
        if ((int)vrnd(g, 100) < ask)
            v->satisfaction = pick(g, recent_loss ? after_loss : satisfied, NELEMS(satisfied));

        /* MAN: read on the first visit, when it changed, and now and then;
         * authority stays unconfirmed until the decision maker is met (but
         * a lead with money or need is not written off as "man" for it) */
        int man = t >= a->man_change_ms ? a->man_after : a->man_before;
        int give_up = man == 0 || (a->lost_only && t >= a->man_change_ms && vrnd(g, 100) < 8);
        if (last_read < 0 || man != last_read || give_up || vrnd(g, 100) < 35) {
            v->man = dm_met || !(man & (MAN_M | MAN_N)) ? man : man & ~MAN_A;
            last_read = man;
        }
        last = t;
        if (give_up) {
            v->action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_GIVE_UP;
            v->note = -1;
            break; /* no more visits */
        }
        plan_follow_up(g, v, man, top_stage);
        next = come_back(g, due_of(v), v->date_ms);
        for (int k = 1; next <= last + HOUR_MS; k++)
            next = work_time(g, last + k * DAY_MS);
    }
    free(deals);
}

/* The class draws: weights by MAN bits, index 0 "man" .. 7 "MAN". */
static const int man_with_deals[8] = {0, 5, 4, 12, 5, 14, 14, 46};
static const int man_all_lost[8] = {12, 22, 18, 6, 18, 8, 8, 8};
static const int man_prospect[8] = {20, 28, 14, 6, 14, 10, 4, 4};

/* Builds the account table from the opportunity plan (g->events sorted by
 * time), adds nopps / 20 prospects, and plans every account's visits. */
static void plan_visits(vgen_t *vg)
{
    gen_t *g = vg->g;
    int nnamed = vg->nopps < opp_accounts ? vg->nopps : opp_accounts;
    int nprospects = vg->nopps / 20;
    int *count = ka_calloc((size_t)nnamed + 1, sizeof *count);
    int *fill = ka_calloc((size_t)nnamed + 1, sizeof *fill);
    int *owner = ka_calloc((size_t)vg->nopps + 1, sizeof *owner);
    int *stage = ka_calloc((size_t)vg->nopps + 1, sizeof *stage);

    /* every deal's events, grouped by account, in time order */
    for (int i = 0; i < g->nevents; i++)
        count[g->events[i].opp % opp_accounts]++;
    for (int i = 1; i <= nnamed; i++)
        fill[i] = fill[i - 1] + count[i - 1];
    vg->ms = ka_calloc((size_t)g->nevents + 1, sizeof *vg->ms);
    for (int i = 0; i < g->nevents; i++) {
        const plan_event_t *p = &g->events[i];
        milestone_t *m = &vg->ms[fill[p->opp % opp_accounts]++];
        if (p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED ||
            p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED)
            owner[p->opp] = p->new_owner;
        if (p->stage[0])
            stage[p->opp] = atoi(p->stage);
        m->at_ms = p->at_ms;
        m->opp = p->opp;
        m->kind = p->kind;
        m->stage = stage[p->opp];
        m->owner = owner[p->opp];
    }

    vg->accts = ka_calloc((size_t)(nnamed + nprospects) + 1, sizeof *vg->accts);
    int64_t span_days = (g->now_ms - vg->begin) / DAY_MS;
    for (int n = 0, start = 0; n < nnamed; start += count[n], n++) {
        if (count[n] == 0)
            continue; /* its only deal was never opened */
        account_plan_t *a = &vg->accts[vg->naccts++];
        a->number = n;
        a->ms = &vg->ms[start];
        a->nms = count[n];
        a->owner = a->ms[0].owner;
        /* how its deals end */
        int good = 0, open_late = 0;
        int64_t last_loss = 0;
        for (int i = 0; i < a->nms; i++) {
            const milestone_t *m = &a->ms[i];
            if (m->kind == KA__V1__OPPORTUNITY_EVENT__KIND_LOST)
                last_loss = m->at_ms;
            int last_of_deal = 1;
            for (int j = i + 1; j < a->nms; j++)
                last_of_deal &= a->ms[j].opp != m->opp;
            if (!last_of_deal)
                continue;
            if (m->kind == KA__V1__OPPORTUNITY_EVENT__KIND_WON)
                good = 1;
            else if (m->kind != KA__V1__OPPORTUNITY_EVENT__KIND_LOST) {
                good = 1;
                open_late |= m->stage >= 5;
            }
        }
        int64_t first = a->ms[0].at_ms - (int64_t)(3 + vrnd(g, 23)) * DAY_MS;
        a->first_ms = first >= vg->begin ? first : vg->begin + (int64_t)vrnd(g, 14) * DAY_MS;
        a->neglected = is_dry(g, g->reps[a->owner].team) || vrnd(g, 100) < 6;
        a->no_dm = open_late && vrnd(g, 100) < 35;
        a->two_spellings = vrnd(g, 100) < 6;
        a->spelling = (int)vrnd(g, 3);
        a->lost_only = !good;
        a->man_before = pick(g, man_with_deals, 8);
        if (a->no_dm) /* without the decision maker, authority stays a question */
            a->man_before = vrnd(g, 4) ? MAN_M | MAN_N : MAN_N;
        a->man_after = a->man_before;
        a->man_change_ms = NO_CHANGE;
        if (a->lost_only) {
            a->man_after = pick(g, man_all_lost, 8);
            a->man_change_ms = last_loss;
        }
    }
    for (int n = 1; n <= nprospects; n++) {
        account_plan_t *a = &vg->accts[vg->naccts++];
        a->number = n;
        a->prospect = 1;
        a->owner = (int)vrnd(g, (uint32_t)g->nreps);
        a->first_ms = vg->begin + (int64_t)vrnd(g, (uint32_t)(span_days * 85 / 100)) * DAY_MS;
        a->neglected = is_dry(g, g->reps[a->owner].team) || vrnd(g, 100) < 6;
        a->two_spellings = vrnd(g, 100) < 40;
        a->spelling = (int)vrnd(g, 3);
        a->man_before = a->man_after = pick(g, man_prospect, 8);
        a->man_change_ms = NO_CHANGE;
        if (a->man_after == 0) { /* looked like a lead at first */
            a->man_before = vrnd(g, 2) ? MAN_N : MAN_A;
            a->man_change_ms = a->first_ms + (int64_t)(25 + vrnd(g, 45)) * DAY_MS;
        }
    }

    vg->status = ka_calloc((size_t)vg->nopps + 1, sizeof *vg->status);
    vg->stage = ka_calloc((size_t)vg->nopps + 1, sizeof *vg->stage);
    vg->lost_at = ka_calloc((size_t)vg->nopps + 1, sizeof *vg->lost_at);
    for (int i = 0; i < vg->naccts; i++)
        plan_account_visits(vg, i);
    free(count);
    free(fill);
    free(owner);
    free(stage);
}

static int by_visit_time(const void *a, const void *b)
{
    const visit_plan_t *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    return x->seq - y->seq;
}

/* Encodes one planned visit; key gets the account's canonical key (of the
 * name as this visit spells it). Returns the length of *out (free it), or 0
 * when the name has no key (a bug here). */
static size_t encode_visit(const vgen_t *vg, const visit_plan_t *v, char *key, size_t keylen,
                           uint8_t **out)
{
    const gen_t *g = vg->g;
    const account_plan_t *acct = &vg->accts[v->acct];
    char event_id[96], opp_id[64], name[128], date[11];
    char cids[3][64], cnames[3][32];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__VisitEvent e = KA__V1__VISIT_EVENT__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__ContactMet cm[3], *cmp[3];
    Ka__V1__ManQualification man = KA__V1__MAN_QUALIFICATION__INIT;
    Ka__V1__FollowUpPlan fu = KA__V1__FOLLOW_UP_PLAN__INIT;
    ka_reject_t rej;

    account_name(acct, v->variant, name, sizeof name);
    if (ka_account_key(NULL, name, key, keylen, &rej) != KA_OK)
        return 0;
    snprintf(event_id, sizeof event_id, "%s-visit-%06d", g->prefix, v->seq);
    h.event_id = event_id;
    h.occurred_at_ms = v->at_ms;
    h.producer = "kagen";
    e.header = &h;
    a.name = name;
    e.account = &a;
    e.rep_id = g->reps[v->rep].id;
    e.visited_at_ms = v->at_ms;
    e.objective = (Ka__V1__VisitObjective)v->objective;
    for (int i = 0; i < v->ncontacts; i++) {
        int k = v->contacts[i];
        const title_t *t = contact_title(vg, v->acct, k);
        Ka__V1__ContactMet init = KA__V1__CONTACT_MET__INIT;
        cm[i] = init;
        snprintf(cids[i], sizeof cids[i], "%s-contact-%c%04d-%d", g->prefix,
                 acct->prospect ? 'p' : 'a', acct->number, k);
        contact_name(vg, v->acct, k, cnames[i], sizeof cnames[i]);
        cm[i].contact_id = cids[i];
        cm[i].name = cnames[i];
        cm[i].title = (char *)t->title;
        cm[i].role = t->role;
        cm[i].function = t->function;
        cmp[i] = &cm[i];
    }
    e.n_contacts = (size_t)v->ncontacts;
    e.contacts = cmp;
    if (v->opp >= 0) {
        snprintf(opp_id, sizeof opp_id, "%s-%06d", g->prefix, v->opp);
        e.opportunity_id = opp_id;
    }
    e.satisfaction = (Ka__V1__Satisfaction)v->satisfaction;
    if (v->man >= 0) {
        man.money = (v->man & MAN_M) != 0;
        man.authority = (v->man & MAN_A) != 0;
        man.need = (v->man & MAN_N) != 0;
        e.man = &man;
    }
    fu.action = (Ka__V1__FollowUpAction)v->action;
    if (v->date_ms) {
        date_of(v->date_ms, date);
        fu.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_NEXT_VISIT_DATE;
        fu.next_visit_date = date;
    } else if (v->interval) {
        fu.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_INTERVAL;
        fu.interval = (Ka__V1__RevisitInterval)v->interval;
    }
    e.follow_up = &fu;
    if (v->note < 0)
        e.notes = "客户无预算、无决策权、无明确需求，放弃跟进";
    else
        e.notes = (char *)notes[v->objective][v->note];
    size_t len = ka__v1__visit_event__get_packed_size(&e);
    *out = ka_malloc(len + 1);
    ka__v1__visit_event__pack(&e, *out);
    return len;
}

static void vgen_free(vgen_t *vg)
{
    free(vg->ms);
    free(vg->accts);
    free(vg->status);
    free(vg->stage);
    free(vg->lost_at);
    free(vg->visits);
}

/* ------------------------------------------------------------------ orders */

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
    int opp;  /* the won deal it closes, -1: none */
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
} ogen_t;

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

static int read_products(void *ud, const ka_pgres_t *res)
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

static int read_dists(void *ud, const ka_pgres_t *res)
{
    ogen_t *og = ud;
    og->ndists = ka_pgres_rows(res);
    og->dists = ka_calloc((size_t)og->ndists + 1, sizeof *og->dists);
    for (int i = 0; i < og->ndists; i++)
        og->dists[i].id = ka_strdup(ka_pgres_value(res, i, 0));
    return 0;
}

static int read_territories(void *ud, const ka_pgres_t *res)
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

static int read_floors(void *ud, const ka_pgres_t *res)
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
static int pick_product(ogen_t *og, const rep_t *rep, const dist_t *d, int64_t most)
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
static void plan_orders(ogen_t *og, int nopps)
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
        /* call-offs of a framework agreement: a steady rhythm, steady sizes */
        for (;; t += DAY_MS * 365 / per_year * (80 + (int64_t)ornd(og, 41)) / 100) {
            int64_t booked = office_time(og, t), amt = yearly / per_year;
            amt = amt * (80 + (int64_t)ornd(og, 41)) / 100;
            if (booked > g->now_ms || (c->churner && booked >= og->split))
                break;
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
static void order_events(ogen_t *og)
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
static size_t encode_order(const ogen_t *og, const order_event_t *ev, char *key, size_t keylen,
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

static void ogen_free(ogen_t *og)
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
    free(og->orders);
    free(og->lines);
    free(og->events);
}

/* ------------------------------------------------------------- producing */

static int failures;
/* --rate: events per second, 0 for as fast as Kafka takes them */
static long long rate;
static int64_t rate_start_ms, rate_sent;

static void on_delivery(void *ud, void *opaque, ka_err_t status, int possibly, const char *err)
{
    (void)ud;
    (void)opaque;
    (void)possibly;
    if (status != KA_OK && failures++ < 5)
        fprintf(stderr, "kagen: delivery failed: %s\n", err ? err : "?");
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends one event, waiting while the producer's queue is full. Returns 0, or
 * -1 with the error printed. */
static int produce(ka_producer_t *kp, const char *topic, const char *key, const uint8_t *buf,
                   size_t len)
{
    char err[KA_ERRSTR_SIZE];
    ka_err_t rc;
    if (rate > 0) { /* wait for this event's slot on the fixed-rate clock */
        if (rate_sent == 0)
            rate_start_ms = mono_ms();
        int64_t due = rate_start_ms + rate_sent * 1000 / rate, left;
        while ((left = due - mono_ms()) > 0)
            ka_producer_poll(kp, (int)left); /* serves delivery reports meanwhile */
        rate_sent++;
    }
    while ((rc = ka_producer_send(kp, topic, key, strlen(key), buf, len, NULL, 0, NULL, err,
                                  sizeof err)) == KA_ERR_RETRY)
        ka_producer_poll(kp, 50);
    if (rc != KA_OK) {
        fprintf(stderr, "kagen: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- forecast */

static void ym_of(int64_t ms, int *year, int *month)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    *year = tm.tm_year + 1900;
    *month = tm.tm_mon + 1;
}

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
 * rest is planned, so every other event stays as it was: most deals that
 * reach stage 03 are confirmed by their owner a few days later for the month
 * of their expected close date (a few for its quarter only; some with an
 * explicit category: commit late in the funnel, best case, now and then
 * omitted); some still open a week or so before that date move it out and
 * confirm the later month; in phase 2 a few team managers adjust their team's
 * commit for the current month. Each opportunity's events are contiguous
 * here, in time order. */
static void plan_forecast(gen_t *g, ogen_t *og, int nopps, int64_t split)
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
        for (j = i; j < n0 && g->events[j].opp == opp; j++) {
            const plan_event_t *e = &g->events[j];
            if (e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED ||
                e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED)
                stage = atoi(e->stage);
            if (e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED)
                last_amount = e->amount;
            if (e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_WON ||
                e->kind == KA__V1__OPPORTUNITY_EVENT__KIND_LOST)
                end = e->at_ms;
            if (stage >= 3 && !t3)
                t3 = e->at_ms;
            if (stage >= late_stage && t5 == INT64_MAX)
                t5 = e->at_ms;
        }
        if (!t3 || rnd(g, 100) >= 80)
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
        /* the close date comes near, the deal is still open: it moves out */
        int64_t tm = close - DAY_MS * (1 + (int64_t)rnd(g, 10)), first_close = close;
        if (!quarter && tm > tc && tm < end && tm <= g->now_ms && rnd(g, 100) < 55) {
            close += DAY_MS * (20 + (int64_t)rnd(g, 50));
            add(g, tm, opp, KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED, NULL, 0, 0);
            g->events[g->nevents - 1].close_ms = close;
            int64_t tr = tm + HOUR_MS * (1 + (int64_t)rnd(g, 30));
            if (tr < end && tr <= g->now_ms) {
                add_confirm(g, tr, opp, close, 0, category);
                ym_of(close, &y, &m);
                month_of[opp] = y * 12 + m;
            }
        }
        /* late in the funnel some owners call it commit, for the period of the
         * close date of the moment */
        int64_t tl = t5 == INT64_MAX ? INT64_MAX : t5 + HOUR_MS * (2 + (int64_t)rnd(g, 70));
        if (tl > tc && tl < end && tl <= g->now_ms && rnd(g, 100) < 45) {
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
static struct {
    int won, before, repeat, dist, diverted, dumped, undone;
} ostats;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kagen [--stream opportunities|visits|orders] [--seed N] [--opportunities N]\n"
            "             [--dry-teams N] [--phase 1|2] [--prefix ID] [--now-ms MS]\n"
            "             [--accounts N] [--rate N] [--unauthorized-pct N]\n\n"
            "Plays a realistic opportunity stream for the reps in KA_PG_DSN's org tree to\n"
            "KA_TOPIC_OPPORTUNITY. Phase 1 is %d days of history; phase 2 the last %d days,\n"
            "in which N dry teams stop opening deals and lose most open ones. The same seed\n"
            "and --now-ms plan the same stream, so phase 2 continues phase 1. Owners\n"
            "confirm most deals from stage 03 on for the forecast (商机确认), with their\n"
            "products, some again when the close date moves or when they call it commit;\n"
            "in phase 2 a few team managers adjust their team's commit (修订销售预测).\n\n"
            "--stream visits plays the visits to the same accounts instead, to\n"
            "KA_TOPIC_VISIT, keyed by the account's canonical key: give it the options the\n"
            "opportunity stream had, so visits meet the deals on their accounts. Each visit\n"
            "has an objective, the contacts met with their buying roles, often a\n"
            "satisfaction and a MAN reading, and a follow-up plan the next visit keeps\n"
            "(mostly); some accounts are spelt two ways. In phase 2 the dry teams' reps\n"
            "and a few others stop visiting their accounts, so follow-ups fall overdue,\n"
            "and some accounts with a deal at stage 05 or later never see a decision\n"
            "maker.\n\n"
            "--stream orders plays the orders of the same accounts to KA_TOPIC_ORDER, keyed\n"
            "by order id, priced from the products in the database: an order for every\n"
            "won deal (naming it; some booked before the won event), %d days of repeat\n"
            "orders from established customers and from most new ones after their first\n"
            "order, a few big accounts carrying most of the revenue; some cancellations\n"
            "and returns; part of the small customers' orders through the distributors\n"
            "on file, mostly inside their territories and above their floor prices, a few\n"
            "shipped outside (窜货) or priced under the floor (压价), most by two habitual\n"
            "offenders. In phase 2 a few big accounts, whose orders halved in the month\n"
            "before, order nothing. Every stream prints the number of events sent on\n"
            "stdout and a summary on stderr.\n\n"
            "For the benchmark (tests/bench): --accounts N spreads the deals over N accounts\n"
            "(default 1500), --rate N sends N events a second instead of as fast as Kafka\n"
            "takes them, and --unauthorized-pct N has the owner, after N%% of the stage\n"
            "changes, try to hand the deal over himself (refused, with an alert).\n",
            HISTORY_DAYS, RECENT_DAYS, ORDER_HISTORY_DAYS);
}

static int parse_int(const char *flag, const char *v, long long min, long long max, long long *out)
{
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*v == '\0' || *end || n < min || n > max) {
        fprintf(stderr, "kagen: %s expects a whole number from %lld to %lld, got \"%s\"\n", flag,
                min, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

int main(int argc, char **argv)
{
    char err[KA_ERRSTR_SIZE];
    long long seed = 7, nopps = 3000, ndry = 3, phase = 1, now_ms = 0;
    const char *prefix = "opp";
    int visits = 0, orders = 0;
    gen_t g;
    vgen_t vg;
    ogen_t og;
    int rc = 1;

    memset(&g, 0, sizeof g);
    memset(&vg, 0, sizeof vg);
    memset(&og, 0, sizeof og);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "kagen: %s needs a value\n\n", a);
            usage(stderr);
            return 2;
        }
        int bad = 0;
        if (strcmp(a, "--seed") == 0)
            bad = parse_int(a, v, 0, 1LL << 62, &seed);
        else if (strcmp(a, "--opportunities") == 0)
            bad = parse_int(a, v, 1, 10000000, &nopps);
        else if (strcmp(a, "--dry-teams") == 0)
            bad = parse_int(a, v, 0, 1000, &ndry);
        else if (strcmp(a, "--phase") == 0)
            bad = parse_int(a, v, 1, 2, &phase);
        else if (strcmp(a, "--now-ms") == 0)
            bad = parse_int(a, v, 946684800000LL, 4102444800000LL, &now_ms);
        else if (strcmp(a, "--prefix") == 0)
            prefix = v;
        else if (strcmp(a, "--accounts") == 0) {
            long long n;
            bad = parse_int(a, v, 1, 10000000, &n);
            opp_accounts = (int)n;
        } else if (strcmp(a, "--rate") == 0)
            bad = parse_int(a, v, 0, 10000000, &rate);
        else if (strcmp(a, "--unauthorized-pct") == 0) {
            long long n;
            bad = parse_int(a, v, 0, 100, &n);
            unauthorized_pct = (int)n;
        }
        else if (strcmp(a, "--stream") == 0) {
            if (strcmp(v, "opportunities") == 0 || strcmp(v, "visits") == 0 ||
                strcmp(v, "orders") == 0) {
                visits = strcmp(v, "visits") == 0;
                orders = strcmp(v, "orders") == 0;
            } else {
                fprintf(stderr, "kagen: --stream expects opportunities, visits or orders, got "
                                "\"%s\"\n", v);
                bad = -1;
            }
        } else {
            fprintf(stderr, "kagen: unknown option \"%s\"\n\n", a);
            usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
        i++;
    }
    ka_config_t *cfg = ka_config_load("kagen", NULL, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "kagen: %s\n", err);
        return 1;
    }
    ka_log_init("kagen", "warn");
    ka_pg_t *pg = ka_pg_connect(ka_config_str(cfg, "KA_PG_DSN"), err, sizeof err);
    ka_producer_t *kp = NULL;
    int *owner_now = NULL;
    if (!pg) {
        fprintf(stderr, "kagen: %s\n", err);
        goto out;
    }
    if (ka_pg_query(pg,
                    "SELECT r.id, r.parent_id, t.manager_user_id, "
                    "coalesce((SELECT d.business_unit_id FROM org_closure c JOIN org_node d "
                    "ON d.id = c.ancestor_id WHERE c.descendant_id = r.id AND d.kind = 'division'),"
                    " ''), coalesce((SELECT b.definition_id FROM org_closure c JOIN org_node d "
                    "ON d.id = c.ancestor_id JOIN business_unit b ON b.id = d.business_unit_id "
                    "WHERE c.descendant_id = r.id AND d.kind = 'division'), 'default-8'), "
                    "coalesce((SELECT g.name FROM org_node g WHERE g.id = t.parent_id), '') "
                    "FROM org_node r JOIN org_node t ON t.id = r.parent_id "
                    "WHERE r.kind = 'rep' AND r.active AND t.manager_user_id IS NOT NULL "
                    "ORDER BY r.id",
                    0, NULL, read_reps, &g, err, sizeof err) != KA_OK) {
        fprintf(stderr, "kagen: %s\n", err);
        goto out;
    }
    if (g.nreps == 0) {
        fprintf(stderr, "kagen: the org tree has no reps under a managed team: load one first "
                        "(kactl load sample)\n");
        goto out;
    }
    g.seed = (uint64_t)seed;
    g.prefix = prefix;
    g.now_ms = now_ms ? now_ms : ka_now_ms() - 60000;
    g.now_ms -= g.now_ms % 1000;
    /* dry teams: the teams of a few reps picked by the seed */
    g.dry_teams = ka_calloc((size_t)ndry + 1, sizeof *g.dry_teams);
    for (int i = 0; i < ndry; i++) {
        const char *team = g.reps[rnd(&g, (uint32_t)g.nreps)].team;
        if (!is_dry(&g, team))
            g.dry_teams[g.ndry++] = (char *)team;
    }
    int64_t begin = g.now_ms - HISTORY_DAYS * DAY_MS - RECENT_DAYS * DAY_MS;
    int64_t split = g.now_ms - RECENT_DAYS * DAY_MS;
    g.owner = ka_calloc((size_t)nopps + 1, sizeof *g.owner);
    owner_now = ka_calloc((size_t)nopps + 1, sizeof *owner_now);
    for (int i = 0; i < nopps; i++) {
        int64_t start = begin + (int64_t)rnd(&g, (uint32_t)((g.now_ms - begin) / 1000)) * 1000;
        plan_opportunity(&g, i, start, split);
    }
    if (!visits && !orders) {
        if (ka_pg_query(pg, "SELECT sku, name FROM product WHERE active ORDER BY sku", 0, NULL,
                        read_products, &og, err, sizeof err) != KA_OK) {
            fprintf(stderr, "kagen: %s\n", err);
            goto out;
        }
        og.seed = (uint64_t)seed ^ 0x6c696e65736b61ULL;
        plan_forecast(&g, &og, (int)nopps, split);
    }
    qsort(g.events, (size_t)g.nevents, sizeof *g.events, by_time);

    if (orders) {
        /* the products and the distributors' territories and floors, as loaded */
        if (ka_pg_query(pg, "SELECT sku, name FROM product WHERE active ORDER BY sku", 0, NULL,
                        read_products, &og, err, sizeof err) != KA_OK ||
            ka_pg_query(pg, "SELECT id FROM distributor WHERE active ORDER BY id", 0, NULL,
                        read_dists, &og, err, sizeof err) != KA_OK ||
            ka_pg_query(pg, "SELECT distributor_id, region_code FROM distributor_territory "
                            "ORDER BY 1, 2", 0, NULL, read_territories, &og, err,
                        sizeof err) != KA_OK ||
            ka_pg_query(pg, "SELECT distributor_id, sku, floor_price_minor FROM "
                            "distributor_floor_price ORDER BY 1, 2", 0, NULL, read_floors, &og,
                        err, sizeof err) != KA_OK) {
            fprintf(stderr, "kagen: %s\n", err);
            goto out;
        }
        if (og.nproducts == 0) {
            fprintf(stderr, "kagen: no products to order: load them first (kactl load "
                            "sample)\n");
            goto out;
        }
    }

    kp = ka_producer_new(cfg, on_delivery, NULL, err, sizeof err);
    if (!kp) {
        fprintf(stderr, "kagen: %s\n", err);
        goto out;
    }
    const char *topic = ka_config_str(cfg, visits   ? "KA_TOPIC_VISIT"
                                           : orders ? "KA_TOPIC_ORDER"
                                                    : "KA_TOPIC_OPPORTUNITY");
    int sent = 0;
    if (orders) {
        /* a stream of its own, so the opportunities above plan the same */
        og.seed = (uint64_t)seed ^ 0x6f72646572736b61ULL;
        og.g = &g;
        og.begin = g.now_ms - ORDER_HISTORY_DAYS * DAY_MS;
        og.split = split;
        plan_orders(&og, (int)nopps);
        order_events(&og);
        for (int i = 0; i < og.nevents; i++) {
            const order_event_t *ev = &og.events[i];
            if (phase == 1 ? ev->at_ms >= split : ev->at_ms < split)
                continue;
            char key[96];
            uint8_t *buf;
            size_t len = encode_order(&og, ev, key, sizeof key, &buf);
            int bad = produce(kp, topic, key, buf, len);
            free(buf);
            if (bad)
                goto out;
            sent++;
            const order_plan_t *o = &og.orders[ev->order];
            if (ev->status != KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED) {
                ostats.undone++;
                continue;
            }
            ostats.won += o->opp >= 0;
            ostats.before += o->before_won;
            ostats.repeat += o->opp < 0;
            ostats.dist += o->dist >= 0;
            ostats.diverted += o->diverted;
            ostats.dumped += o->dumped;
        }
    } else if (visits) {
        /* a stream of its own, so the opportunities above plan the same */
        g.vseed = (uint64_t)seed ^ 0x7669736974736b61ULL;
        vg.g = &g;
        vg.nopps = (int)nopps;
        vg.cast_seed = (uint64_t)seed * 0x9e3779b97f4a7c15ULL;
        vg.begin = begin;
        vg.split = split;
        plan_visits(&vg);
        qsort(vg.visits, (size_t)vg.nvisits, sizeof *vg.visits, by_visit_time);
        for (int i = 0; i < vg.nvisits; i++) {
            const visit_plan_t *v = &vg.visits[i];
            if (phase == 1 ? v->at_ms >= split : v->at_ms < split)
                continue;
            char key[KA_ACCOUNT_KEY_MAX];
            uint8_t *buf;
            size_t len = encode_visit(&vg, v, key, sizeof key, &buf);
            if (len == 0) {
                fprintf(stderr, "kagen: visit %d names an account without a key\n", v->seq);
                goto out;
            }
            int bad = produce(kp, topic, key, buf, len);
            free(buf);
            if (bad)
                goto out;
            sent++;
        }
    } else {
        for (int i = 0; i < g.nevents; i++) {
            plan_event_t *p = &g.events[i];
            if (p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED)
                owner_now[p->opp] = p->new_owner;
            int in_phase = phase == 1 ? p->at_ms < split : p->at_ms >= split;
            uint8_t *buf;
            size_t len = encode(&g, p, owner_now, &buf);
            if (in_phase) {
                char key[96];
                if (p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED)
                    snprintf(key, sizeof key, "%s-adj-%s", g.prefix, g.reps[p->adj_rep].team);
                else
                    snprintf(key, sizeof key, "%s-%06d", g.prefix, p->opp);
                if (produce(kp, topic, key, buf, len)) {
                    free(buf);
                    goto out;
                }
                sent++;
                /* --unauthorized-pct: picked by the event's number, so the
                 * plan stays the same; a number of its own as event id */
                if (p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED &&
                    (uint32_t)p->seq * 2654435761u % 100u < (uint32_t)unauthorized_pct) {
                    plan_event_t u = *p;
                    u.kind = KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED;
                    u.unauthorized = 1;
                    u.new_owner = (owner_now[p->opp] + 1) % g.nreps;
                    u.seq = g.nevents + p->seq;
                    free(buf);
                    len = encode(&g, &u, owner_now, &buf);
                    if (produce(kp, topic, key, buf, len)) {
                        free(buf);
                        goto out;
                    }
                    sent++;
                }
            }
            free(buf);
        }
    }
    if (ka_producer_flush(kp, 60000) != KA_OK || failures) {
        fprintf(stderr, "kagen: Kafka did not confirm every event\n");
        goto out;
    }
    printf("%d\n", sent);
    if (orders) {
        fprintf(stderr, "kagen: phase %lld: %d order events to %s: %d orders close won deals (%d "
                        "booked before the won event), %d repeat orders, %d through %d "
                        "distributors (%d shipped outside the territory, %d under the floor "
                        "price), %d cancellations and returns; %d big accounts stop ordering in "
                        "phase 2\n",
                phase, sent, topic, ostats.won, ostats.before, ostats.repeat, ostats.dist,
                og.ndists, ostats.diverted, ostats.dumped, ostats.undone, og.churners);
    } else if (visits) {
        int neglected = 0, no_dm = 0, two = 0;
        for (int i = 0; i < vg.naccts; i++) {
            neglected += vg.accts[i].neglected;
            no_dm += vg.accts[i].no_dm;
            two += vg.accts[i].two_spellings;
        }
        fprintf(stderr, "kagen: phase %lld: %d visits to %d accounts (%d spelt two ways; %d "
                        "left unvisited in phase 2; %d with a late-stage deal and no decision "
                        "maker) by %d reps to %s\n",
                phase, sent, vg.naccts, two, neglected, no_dm, g.nreps, topic);
    } else {
        fprintf(stderr, "kagen: phase %lld: %d events for %lld opportunities of %d reps "
                        "(%d dry teams) to %s\n",
                phase, sent, nopps, g.nreps, g.ndry, topic);
    }
    rc = 0;
out:
    ka_producer_free(kp);
    ka_pg_free(pg);
    for (int i = 0; i < g.nreps; i++) {
        free(g.reps[i].id);
        free(g.reps[i].team);
        free(g.reps[i].manager);
        free(g.reps[i].bu);
        free(g.reps[i].def);
        free(g.reps[i].area);
    }
    free(g.reps);
    free(g.dry_teams);
    free(g.events);
    free(g.owner);
    free(owner_now);
    vgen_free(&vg);
    ogen_free(&og);
    ka_config_free(cfg);
    return rc;
}

/* The visit stream (DOMAIN.md section 3): from a random stream of its own,
 * the visits around the planned deals: a cadence that follows each visit's
 * follow-up plan, visits about the deals as they move, contacts with their
 * buying roles, satisfaction and MAN readings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_account_key.h"
#include "ka_validate.h"
#include "visits.h"

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
void plan_visits(vgen_t *vg)
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

int by_visit_time(const void *a, const void *b)
{
    const visit_plan_t *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    return x->seq - y->seq;
}

/* Encodes one planned visit; key gets the account's canonical key (of the
 * name as this visit spells it). Returns the length of *out (free it), or 0
 * when the name has no key (a bug here). */
size_t encode_visit(const vgen_t *vg, const visit_plan_t *v, char *key, size_t keylen,
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

void vgen_free(vgen_t *vg)
{
    free(vg->ms);
    free(vg->accts);
    free(vg->status);
    free(vg->stage);
    free(vg->lost_at);
    free(vg->visits);
}

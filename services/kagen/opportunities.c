/* The opportunity stream: one planned event as the OpportunityEvent the
 * owner (or, for a hand-over, the team manager) sends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ka/v1/opportunity.pb-c.h"
#include "kagen.h"

static const char *const adjust_reasons[] = {
    "按重点客户最新采购计划修订本月承诺", "招标结果未公布，承诺数按经理判断修订",
    "客户预算审批进度变化，修订本月承诺", "与大客户高层会谈后重新评估本月承诺"};

size_t encode(const gen_t *g, const plan_event_t *p, int *owner_now, uint8_t **out)
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
    Ka__V1__ValueAssessed va = KA__V1__VALUE_ASSESSED__INIT;
    protobuf_c_boolean answer[20];
    Ka__V1__LineItem line[PLAN_MAX_LINES];
    Ka__V1__LineItem *items[PLAN_MAX_LINES];
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
        snprintf(account, sizeof account, "客户 %04d 有限公司",
                 p->acct ? p->acct - 1 : p->opp % opp_accounts);
        date_of(p->close_ms ? p->close_ms : p->at_ms + DAY_MS * 90, close);
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
            if (p->amount) {
                u.amount_minor_present_case =
                    KA__V1__OPPORTUNITY_UPDATED__AMOUNT_MINOR_PRESENT_AMOUNT_MINOR;
                u.amount_minor = p->amount;
            }
            for (int l = 0; l < p->nlines; l++) {
                Ka__V1__LineItem init = KA__V1__LINE_ITEM__INIT;
                line[l] = init;
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
            if (p->stranger) /* a colleague confirms the owner's deal: refused */
                e.actor_id = g->reps[p->stranger - 1].id;
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
    case KA__V1__OPPORTUNITY_EVENT__KIND_ASSESSED:
        for (int q = 0; q < 20; q++)
            answer[q] = (p->answers >> q) & 1u;
        va.n_is_there_an_opportunity = va.n_can_we_compete = va.n_can_we_win =
            va.n_is_it_worth_winning = 5;
        va.is_there_an_opportunity = &answer[0];
        va.can_we_compete = &answer[5];
        va.can_we_win = &answer[10];
        va.is_it_worth_winning = &answer[15];
        e.assessed = &va;
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

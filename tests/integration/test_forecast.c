/* The forecast worker against the real stack, with the opportunity and
 * order workers feeding it as in production:
 *   - a three-level tree (division, two teams, three reps) with adjustments
 *     at two levels rolls up to a hand-computed table, months and quarters,
 *     with quota, coverage and gap; an unconfirmed deal does not count;
 *   - only the owner confirms a deal (others' and actor-less confirmations
 *     are dead-lettered), only a node's own manager adjusts it;
 *   - an owner change takes the deal out of the forecast until its new
 *     owner confirms it, then it counts once, in the new team;
 *   - the planning feed is the line items times the probabilities, never in
 *     a month that is over (overdue deals now, and moved on when the month
 *     rolls over), and a won deal stays committed until booked orders that
 *     name it deliver it, per SKU;
 *   - a burst of 1,000 changes to one deal gives one forecast event per
 *     debounce window, and a forecast worker killed twice during it ends on
 *     the same figures. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "ka/v1/forecast.pb-c.h"
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka_validate.h"

#define MINUTE_MS 60000LL

static const char *opp_worker, *order_worker, *forecast_worker;
static ka_config_t *cfg;
static ka_pg_t *pg;
static ka_producer_t *kp;
static pid_t live[3];

typedef struct run {
    char sfx[40];
    char opps[128], orders[128], forecasts[128], planning[128], dlq[128], alerts[128];
    char g_opp[128], g_order[128], g_forecast[128];
    char division[64], teams[2][64], reps[3][64], mgr_div[64], mgr_team[2][64];
    char month[32], quarter[32], close_date[32], month_label[8];
    int64_t clock_ms;
    int opp_events, order_events, seq;
} run_t;

static run_t *current_run;
/* "KA_CLOCK_OFFSET_MS=..." for the next forecast worker started, or "". */
static char forecast_clock[64];

static void sql(const char *q, int n, const char **args)
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_param_t p[8];
    for (int i = 0; i < n; i++)
        p[i] = (ka_pg_param_t){args[i], 0, 0};
    if (ka_pg_query(pg, q, n, p, NULL, NULL, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", q, err);
}

static long long q_int(const char *q, int n, const char **args)
{
    return it_pg_int_args(pg, q, n, args);
}

static int read_root(void *ud, const ka_pgres_t *res)
{
    snprintf(ud, 64, "%s", ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : "");
    return 0;
}

static void init_run(run_t *r, const char *tag)
{
    char err[KA_ERRSTR_SIZE], root[64] = "";
    memset(r, 0, sizeof *r);
    current_run = r;
    snprintf(r->sfx, sizeof r->sfx, "%s%s", tag, it_suffix());
    snprintf(r->opps, sizeof r->opps, "it.fc-opp.%s", r->sfx);
    snprintf(r->orders, sizeof r->orders, "it.fc-order.%s", r->sfx);
    snprintf(r->forecasts, sizeof r->forecasts, "it.fc-forecast.%s", r->sfx);
    snprintf(r->planning, sizeof r->planning, "it.fc-planning.%s", r->sfx);
    snprintf(r->dlq, sizeof r->dlq, "it.fc-dlq.%s", r->sfx);
    snprintf(r->alerts, sizeof r->alerts, "it.fc-alert.%s", r->sfx);
    snprintf(r->g_opp, sizeof r->g_opp, "it-fc-opp-%s", r->sfx);
    snprintf(r->g_order, sizeof r->g_order, "it-fc-order-%s", r->sfx);
    snprintf(r->g_forecast, sizeof r->g_forecast, "it-fc-forecast-%s", r->sfx);
    const char *brokers = ka_config_str(cfg, "KA_KAFKA_BROKERS");
    const char *topics[] = {r->opps, r->orders, r->forecasts, r->planning, r->dlq, r->alerts};
    for (int i = 0; i < 6; i++)
        if (ka_kafka_create_topic(brokers, topics[i], i < 2 ? 3 : 1, err, sizeof err) != KA_OK)
            fail_msg("%s", err);
    /* The current month and quarter, by the same clock as the workers. */
    time_t now = (time_t)(ka_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(r->month, sizeof r->month, "%04d-%02d-01", tm.tm_year + 1900, tm.tm_mon + 1);
    snprintf(r->quarter, sizeof r->quarter, "%04d-%02d-01", tm.tm_year + 1900,
             tm.tm_mon / 3 * 3 + 1);
    snprintf(r->close_date, sizeof r->close_date, "%04d-%02d-28", tm.tm_year + 1900,
             tm.tm_mon + 1);
    snprintf(r->month_label, sizeof r->month_label, "%.7s", r->month);
    r->clock_ms = ka_now_ms() - 60 * MINUTE_MS;

    /* division (manager) -> two teams (managers) -> reps 0, 1 in team 0, rep 2 in team 1 */
    if (ka_pg_query(pg, "SELECT id FROM org_node WHERE parent_id IS NULL", 0, NULL, read_root,
                    root, err, sizeof err) != KA_OK || !root[0])
        fail_msg("the org tree has no company: load one first (tests/run runs kactl load sample)");
    snprintf(r->division, 64, "fdiv-%s", r->sfx);
    snprintf(r->mgr_div, 64, "u-fdiv-%s", r->sfx);
    const char *mu[] = {r->mgr_div};
    sql("INSERT INTO app_user (id, display_name) VALUES ($1, 'division manager')", 1, mu);
    const char *div[] = {r->division, root, r->mgr_div};
    sql("INSERT INTO org_node (id, parent_id, kind, name, manager_user_id) "
        "VALUES ($1, $2, 'division', 'D', $3)", 3, div);
    for (int t = 0; t < 2; t++) {
        snprintf(r->teams[t], 64, "fteam%d-%s", t, r->sfx);
        snprintf(r->mgr_team[t], 64, "u-fteam%d-%s", t, r->sfx);
        const char *tu[] = {r->mgr_team[t]};
        sql("INSERT INTO app_user (id, display_name) VALUES ($1, 'team manager')", 1, tu);
        const char *team[] = {r->teams[t], r->division, r->mgr_team[t]};
        sql("INSERT INTO org_node (id, parent_id, kind, name, manager_user_id) "
            "VALUES ($1, $2, 'team', 'T', $3)", 3, team);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(r->reps[i], 64, "frep%d-%s", i, r->sfx);
        const char *rep[] = {r->reps[i], r->teams[i < 2 ? 0 : 1]};
        sql("INSERT INTO org_node (id, parent_id, kind, name) VALUES ($1, $2, 'rep', 'r')", 2,
            rep);
    }
}

static void spawn_all(run_t *r, int which)
{
    static char s[3][8][200];
    if (which & 1) {
        snprintf(s[0][0], 200, "KA_TOPIC_OPPORTUNITY=%s", r->opps);
        snprintf(s[0][1], 200, "KA_TOPIC_DEADLETTER=%s", r->dlq);
        snprintf(s[0][2], 200, "KA_TOPIC_ALERT=%s", r->alerts);
        snprintf(s[0][3], 200, "KA_CONSUMER_GROUP=%s", r->g_opp);
        snprintf(s[0][4], 200, "KA_BATCH_MAX_MS=10");
        const char *set[] = {s[0][0], s[0][1], s[0][2], s[0][3], s[0][4], NULL};
        live[0] = it_spawn(opp_worker, set);
    }
    if (which & 2) {
        snprintf(s[1][0], 200, "KA_TOPIC_ORDER=%s", r->orders);
        snprintf(s[1][1], 200, "KA_TOPIC_OPPORTUNITY=%s", r->opps);
        snprintf(s[1][2], 200, "KA_TOPIC_DEADLETTER=%s", r->dlq);
        snprintf(s[1][3], 200, "KA_TOPIC_ALERT=%s", r->alerts);
        snprintf(s[1][4], 200, "KA_CONSUMER_GROUP=%s", r->g_order);
        snprintf(s[1][5], 200, "KA_BATCH_MAX_MS=10");
        const char *set[] = {s[1][0], s[1][1], s[1][2], s[1][3], s[1][4], s[1][5], NULL};
        live[1] = it_spawn(order_worker, set);
    }
    if (which & 4) {
        snprintf(s[2][0], 200, "KA_TOPIC_OPPORTUNITY=%s", r->opps);
        snprintf(s[2][1], 200, "KA_TOPIC_FORECAST=%s", r->forecasts);
        snprintf(s[2][2], 200, "KA_TOPIC_PLANNING=%s", r->planning);
        snprintf(s[2][3], 200, "KA_TOPIC_DEADLETTER=%s", r->dlq);
        snprintf(s[2][4], 200, "KA_TOPIC_ALERT=%s", r->alerts);
        snprintf(s[2][5], 200, "KA_CONSUMER_GROUP=%s", r->g_forecast);
        snprintf(s[2][6], 200, "KA_BATCH_MAX_MS=10");
        const char *set[] = {s[2][0], s[2][1], s[2][2], s[2][3], s[2][4], s[2][5], s[2][6],
                             forecast_clock[0] ? forecast_clock : NULL, NULL};
        live[2] = it_spawn(forecast_worker, set);
    }
}

static void stop_all(int sig)
{
    for (int i = 0; i < 3; i++)
        if (live[i] > 0) {
            it_stop(live[i], sig);
            live[i] = 0;
        }
}

/* Everything consumed, and the forecast worker's queue empty. */
static void wait_settled(const run_t *r, int extra_opp_events)
{
    it_wait_group(pg, r->g_opp, r->opp_events + extra_opp_events);
    it_wait_group(pg, r->g_order, r->order_events);
    it_wait_group(pg, r->g_forecast, r->opp_events + extra_opp_events);
    long long left = it_pg_wait(pg, "SELECT count(*) FROM forecast_dirty WHERE $1::text IS NOT NULL",
                                "x", 0, 60000);
    assert_int_equal(left, 0);
}

/* Events ------------------------------------------------------------------------------- */

static void send_opp(run_t *r, Ka__V1__OpportunityEvent *e, const char *opp)
{
    char id[128];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    r->clock_ms += 1000;
    snprintf(id, sizeof id, "%s-%d", opp, r->seq++);
    h.event_id = id;
    h.occurred_at_ms = r->clock_ms;
    e->header = &h;
    e->opportunity_id = (char *)opp;
    size_t len = ka__v1__opportunity_event__get_packed_size(e);
    uint8_t *buf = malloc(len + 1);
    ka__v1__opportunity_event__pack(e, buf);
    it_produce(kp, r->opps, opp, buf, len);
    free(buf);
    r->opp_events++;
}

/* A deal of rep `rep` closing on `close`, with n line items (sku, quantity
 * in thousandths). */
static void create_deal(run_t *r, const char *opp, int rep, const char *stage, int64_t amount,
                        const char *close, size_t n, const char *const *skus,
                        const int64_t *qty)
{
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__OpportunityCreated c = KA__V1__OPPORTUNITY_CREATED__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__LineItem l[4], *lp[4];
    char name[96];
    assert_true(n <= 4);
    snprintf(name, sizeof name, "Forecast Test %s Customer", r->sfx);
    a.name = name;
    c.account = &a;
    c.owner_rep_id = r->reps[rep];
    c.stage_code = (char *)stage;
    c.amount_minor = amount;
    c.expected_close_date = (char *)close;
    for (size_t i = 0; i < n; i++) {
        l[i] = (Ka__V1__LineItem)KA__V1__LINE_ITEM__INIT;
        l[i].sku = (char *)skus[i];
        l[i].quantity_milli = qty[i];
        l[i].unit_price_minor = 100;
        lp[i] = &l[i];
    }
    c.n_lines = n;
    c.lines = lp;
    e.actor_id = r->reps[rep];
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_CREATED;
    e.created = &c;
    send_opp(r, &e, opp);
}

static void create(run_t *r, const char *opp, int rep, const char *stage, int64_t amount,
                   int64_t qty_a, int64_t qty_b)
{
    const char *skus[] = {"SKU-0001", "SKU-0002"};
    const int64_t qty[] = {qty_a, qty_b};
    create_deal(r, opp, rep, stage, amount, r->close_date, qty_b ? 2 : 1, skus, qty);
}

static void period_of(const char *start, int quarter, Ka__V1__Period *p)
{
    int y = 0, m = 1;
    sscanf(start, "%4d-%2d", &y, &m);
    p->kind = quarter ? KA__V1__PERIOD_KIND__PERIOD_KIND_QUARTER
                      : KA__V1__PERIOD_KIND__PERIOD_KIND_MONTH;
    p->year = y;
    p->number = quarter ? (m - 1) / 3 + 1 : m;
}

/* 商机确认 by `actor` (NULL: no actor) for the current month or quarter. */
static void confirm_by(run_t *r, const char *opp, const char *actor, int quarter, int category)
{
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__ForecastConfirmed c = KA__V1__FORECAST_CONFIRMED__INIT;
    Ka__V1__Period p = KA__V1__PERIOD__INIT;
    period_of(quarter ? r->quarter : r->month, quarter, &p);
    c.period = &p;
    c.category = (Ka__V1__ForecastCategory)category;
    e.actor_id = (char *)actor;
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED;
    e.forecast_confirmed = &c;
    send_opp(r, &e, opp);
}

static void confirm(run_t *r, const char *opp, int rep, int quarter, int category)
{
    confirm_by(r, opp, r->reps[rep], quarter, category);
}

static void adjust(run_t *r, const char *node, const char *actor, int category, int64_t amount)
{
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__ForecastAdjusted a = KA__V1__FORECAST_ADJUSTED__INIT;
    Ka__V1__Period p = KA__V1__PERIOD__INIT;
    char key[96];
    period_of(r->month, 0, &p);
    a.node_id = (char *)node;
    a.period = &p;
    a.category = (Ka__V1__ForecastCategory)category;
    a.amount_minor_present_case = KA__V1__FORECAST_ADJUSTED__AMOUNT_MINOR_PRESENT_AMOUNT_MINOR;
    a.amount_minor = amount;
    a.reason = "big deal expected from the framework agreement";
    e.actor_id = (char *)actor;
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED;
    e.forecast_adjusted = &a;
    snprintf(key, sizeof key, "adj-%s", node); /* node-level: any key keeps them in order */
    send_opp(r, &e, key);
}

static void change_amount(run_t *r, const char *opp, int64_t amount)
{
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__OpportunityUpdated u = KA__V1__OPPORTUNITY_UPDATED__INIT;
    u.amount_minor_present_case = KA__V1__OPPORTUNITY_UPDATED__AMOUNT_MINOR_PRESENT_AMOUNT_MINOR;
    u.amount_minor = amount;
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED;
    e.updated = &u;
    send_opp(r, &e, opp);
}

static void win(run_t *r, const char *opp)
{
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__OpportunityWon w = KA__V1__OPPORTUNITY_WON__INIT;
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_WON;
    e.won = &w;
    send_opp(r, &e, opp);
}

/* An order event of rep `rep` (opp: the opportunity it names, or NULL) with
 * n lines (sku, quantity in thousandths, each at `price`), booked at
 * booked_ms, taking effect at at_ms; a cancellation without lines keeps the
 * order's. */
static void order_event(run_t *r, const char *order, int rep, const char *opp,
                        Ka__V1__OrderStatus status, size_t n, const char *const *skus,
                        const int64_t *qty, int64_t price, int64_t booked_ms, int64_t at_ms)
{
    char id[96], name[96];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OrderEvent e = KA__V1__ORDER_EVENT__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__LineItem l[4], *lp[4];
    assert_true(n <= 4);
    snprintf(id, sizeof id, "%s-%d", order, r->seq++);
    snprintf(name, sizeof name, "Forecast Test %s Customer", r->sfx);
    h.event_id = id;
    h.occurred_at_ms = at_ms;
    a.name = name;
    e.header = &h;
    e.order_id = (char *)order;
    e.account = &a;
    e.rep_id = r->reps[rep];
    e.opportunity_id = (char *)opp;
    e.channel = KA__V1__CHANNEL__CHANNEL_DIRECT;
    e.status = status;
    e.booked_at_ms = booked_ms;
    for (size_t i = 0; i < n; i++) {
        l[i] = (Ka__V1__LineItem)KA__V1__LINE_ITEM__INIT;
        l[i].sku = (char *)skus[i];
        l[i].quantity_milli = qty[i];
        l[i].unit_price_minor = price;
        lp[i] = &l[i];
    }
    e.n_lines = n;
    e.lines = lp;
    size_t len = ka__v1__order_event__get_packed_size(&e);
    uint8_t *buf = malloc(len + 1);
    ka__v1__order_event__pack(&e, buf);
    it_produce(kp, r->orders, order, buf, len);
    free(buf);
    r->order_events++;
}

static void book(run_t *r, const char *order, int rep, int64_t amount)
{
    const char *sku = "SKU-0001";
    const int64_t qty = 1000, at = ka_now_ms() - MINUTE_MS;
    order_event(r, order, rep, NULL, KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED, 1, &sku, &qty,
                amount, at, at);
}

/* Checks ------------------------------------------------------------------------------- */

/* "closed|commit|best|pipeline|weighted" raw or adjusted of a node-period. */
static int read_text(void *ud, const ka_pgres_t *res)
{
    const char *v = ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : NULL;
    snprintf(ud, 256, "%s", v ? v : "(no row)");
    return 0;
}

static void expect(const char *node, const char *kind, const char *start, const char *which,
                   const char *want)
{
    char got[256], err[KA_ERRSTR_SIZE], q[512];
    snprintf(q, sizeof q,
             "SELECT %s_closed_minor || '|' || %s_commit_minor || '|' || %s_best_case_minor || "
             "'|' || %s_pipeline_minor || '|' || %s_weighted_pipeline_minor FROM forecast "
             "WHERE node_id = $1 AND period_kind = $2 AND period_start = $3::date",
             which, which, which, which, which);
    ka_pg_param_t p[3] = {{node, 0, 0}, {kind, 0, 0}, {start, 0, 0}};
    if (ka_pg_query(pg, q, 3, p, read_text, got, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    if (strcmp(got, want) != 0)
        fail_msg("%s %s %s %s: got %s, want %s", node, kind, start, which, got, want);
}

/* "YYYY-MM-01" k months after the month "YYYY-MM-01" (k may be negative). */
static void month_add(const char *month, int k, char out[32])
{
    int y = 0, m = 1;
    sscanf(month, "%4d-%2d", &y, &m);
    int n = y * 12 + (m - 1) + k;
    snprintf(out, 32, "%04d-%02d-01", n / 12, n % 12 + 1);
}

/* A planning_feed quantity of this run's division, in thousandths (0 when
 * there is no row); which: "weighted" or "committed". */
static long long planned(const run_t *r, const char *sku, const char *month, const char *which)
{
    char q[320];
    snprintf(q, sizeof q, "SELECT coalesce((SELECT (%s_quantity * 1000)::bigint FROM planning_feed "
             "WHERE sku = $1 AND period_month = $2::date AND division_node_id = $3), 0)", which);
    const char *a[] = {sku, month, r->division};
    return q_int(q, 3, a);
}

/* Waits (30 s at most) for a planning quantity; returns the last seen. */
static long long wait_planned(const run_t *r, const char *sku, const char *month,
                              const char *which, long long want)
{
    long long v = planned(r, sku, month, which);
    for (int i = 0; i < 300 && v != want; i++) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
        v = planned(r, sku, month, which);
    }
    return v;
}

/* Tests -------------------------------------------------------------------------------- */

enum { PIPELINE = 1, BEST_CASE = 2, COMMIT = 3 };

static void rollup_with_adjustments_owner_change_and_planning(void **state)
{
    static run_t r;
    char o[6][64], order[64];
    (void)state;
    init_run(&r, "r");
    for (int i = 0; i < 6; i++)
        snprintf(o[i], sizeof o[i], "fopp-%s-%d", r.sfx, i);
    snprintf(order, sizeof order, "ford-%s", r.sfx);
    const char *quota[] = {r.teams[0], r.month};
    sql("INSERT INTO quota (node_id, period_kind, period_start, amount_minor) "
        "VALUES ($1, 'month', $2::date, 3000000)", 2, quota);

    create(&r, o[0], 0, "07", 1000000, 10000, 5000); /* commit by stage, 90% */
    confirm(&r, o[0], 0, 0, 0);
    create(&r, o[1], 0, "05", 500000, 1000, 0);      /* best case by stage, 50%... */
    confirm(&r, o[1], 0, 0, COMMIT);                 /* ...confirmed as commit */
    create(&r, o[2], 1, "02", 300000, 1000, 0);      /* pipeline, 20% */
    confirm(&r, o[2], 1, 0, 0);
    create(&r, o[3], 2, "05", 800000, 2000, 0);      /* best case, 50% */
    confirm(&r, o[3], 2, 0, 0);
    create(&r, o[4], 2, "07", 999999, 1000, 0);      /* never confirmed: not counted */
    confirm(&r, o[4], 0, 0, COMMIT);                 /* by another rep: refused */
    confirm_by(&r, o[4], NULL, 0, COMMIT);           /* by nobody: refused */
    create(&r, o[5], 1, "07", 200000, 1000, 0);      /* the quarter only, as commit */
    confirm(&r, o[5], 1, 1, COMMIT);
    book(&r, order, 0, 100000);                      /* closed for rep 0 */
    adjust(&r, r.teams[0], r.mgr_team[0], COMMIT, 2000000);
    adjust(&r, r.division, r.mgr_div, BEST_CASE, 5000000);
    adjust(&r, r.teams[1], r.mgr_team[0], COMMIT, 1); /* not their team: refused */
    adjust(&r, r.teams[1], r.mgr_div, COMMIT, 7);    /* a node above theirs: refused too */
    spawn_all(&r, 7);
    wait_settled(&r, 0);

    /* closed | commit | best case | pipeline | weighted */
    expect(r.reps[0], "month", r.month, "raw", "100000|1500000|0|0|1150000");
    expect(r.reps[1], "month", r.month, "raw", "0|0|0|300000|60000");
    expect(r.reps[2], "month", r.month, "raw", "0|0|800000|0|400000");
    expect(r.teams[0], "month", r.month, "raw", "100000|1500000|0|300000|1210000");
    expect(r.teams[0], "month", r.month, "adj", "100000|2000000|0|300000|1210000");
    expect(r.teams[1], "month", r.month, "raw", "0|0|800000|0|400000");
    expect(r.teams[1], "month", r.month, "adj", "0|0|800000|0|400000");
    expect(r.division, "month", r.month, "raw", "100000|2000000|800000|300000|1610000");
    expect(r.division, "month", r.month, "adj", "100000|2000000|5000000|300000|1610000");
    /* the quarter: the months' confirmations and the quarter-only deal */
    expect(r.reps[1], "quarter", r.quarter, "raw", "0|200000|0|300000|240000");
    expect(r.division, "quarter", r.quarter, "raw", "100000|1700000|800000|300000|1790000");
    /* quota 3,000,000: gap = 3,000,000 - (100,000 + 2,000,000); coverage = open
     * 2,300,000 / (3,000,000 - 100,000) in basis points */
    const char *t0[] = {r.teams[0], r.month};
    assert_int_equal(q_int("SELECT adj_gap_minor FROM forecast WHERE node_id = $1 "
                           "AND period_kind = 'month' AND period_start = $2::date", 2, t0),
                     900000);
    assert_int_equal(q_int("SELECT adj_coverage_bp FROM forecast WHERE node_id = $1 "
                           "AND period_kind = 'month' AND period_start = $2::date", 2, t0),
                     2300000LL * 10000 / 2900000);
    /* every submission kept */
    assert_true(q_int("SELECT count(*) FROM forecast_submission WHERE node_id = $1 "
                      "AND period_kind = 'month' AND period_start = $2::date", 2, t0) >= 1);
    /* 修订销售预测 at their own node only: the other team's manager and the
     * division's manager both refused at team 1 */
    const char *dl[] = {r.g_forecast};
    assert_int_equal(q_int("SELECT count(*) FROM dead_letter WHERE consumer_group = $1 "
                           "AND reason = 'unauthorized_adjustment'", 1, dl), 2);
    assert_int_equal(q_int("SELECT count(*) FROM dead_letter WHERE consumer_group = $1 "
                           "AND reason = 'unauthorized_adjustment' "
                           "AND detail LIKE '%only the node''s manager%'", 1, dl), 2);
    /* 商机确认 by the owner only: o4's confirmations by rep 0 and by no one
     * were dead-lettered and it counts nowhere (rep 2 above) */
    const char *dlo[] = {r.g_opp};
    assert_int_equal(q_int("SELECT count(*) FROM dead_letter WHERE consumer_group = $1 "
                           "AND reason = 'not_owner'", 1, dlo), 1);
    assert_int_equal(q_int("SELECT count(*) FROM dead_letter WHERE consumer_group = $1 "
                           "AND reason = 'missing_actor'", 1, dlo), 1);
    const char *o4[] = {o[4]};
    assert_int_equal(q_int("SELECT count(*) FROM forecast_confirmation WHERE opportunity_id = $1",
                           1, o4), 0);

    /* planning: line items x probabilities, per sku, month and division */
    const char *pa[] = {r.month, r.division};
    /* SKU-0001: 10 x 90% + 1 x 50% + 1 x 20% + 2 x 50% (o4 unconfirmed, o5 quarter: 1 x 90%) */
    assert_int_equal(q_int("SELECT (weighted_quantity * 1000)::bigint FROM planning_feed "
                           "WHERE sku = 'SKU-0001' AND period_month = $1::date "
                           "AND division_node_id = $2", 2, pa),
                     9000 + 500 + 200 + 1000 + 900);
    /* committed: the commit-category deals o0 (10), o1 (1) and o5 (1) */
    assert_int_equal(q_int("SELECT (committed_quantity * 1000)::bigint FROM planning_feed "
                           "WHERE sku = 'SKU-0001' AND period_month = $1::date "
                           "AND division_node_id = $2", 2, pa),
                     12000);
    assert_int_equal(q_int("SELECT (weighted_quantity * 1000)::bigint FROM planning_feed "
                           "WHERE sku = 'SKU-0002' AND period_month = $1::date "
                           "AND division_node_id = $2", 2, pa),
                     4500);

    /* The team-1 deal moves to rep 0 (team 0), by the division manager: rep
     * 2's confirmation no longer counts, for anyone, until rep 0 confirms it;
     * rep 2 may not confirm it any more. */
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__OwnerChanged oc = KA__V1__OWNER_CHANGED__INIT;
    oc.new_owner_rep_id = r.reps[0];
    e.actor_id = r.mgr_div;
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED;
    e.owner_changed = &oc;
    send_opp(&r, &e, o[3]);
    confirm(&r, o[3], 2, 0, 0);
    wait_settled(&r, 0);
    expect(r.teams[1], "month", r.month, "raw", "0|0|0|0|0");
    expect(r.reps[0], "month", r.month, "raw", "100000|1500000|0|0|1150000");
    expect(r.teams[0], "month", r.month, "raw", "100000|1500000|0|300000|1210000");
    expect(r.division, "month", r.month, "raw", "100000|2000000|0|300000|1210000");
    assert_int_equal(q_int("SELECT count(*) FROM dead_letter WHERE consumer_group = $1 "
                           "AND reason = 'not_owner'", 1, dlo), 2);
    /* the new owner confirms it: it counts again, once, in team 0 */
    confirm(&r, o[3], 0, 0, 0);
    wait_settled(&r, 0);
    expect(r.teams[1], "month", r.month, "raw", "0|0|0|0|0");
    expect(r.reps[0], "month", r.month, "raw", "100000|1500000|800000|0|1550000");
    expect(r.teams[0], "month", r.month, "raw", "100000|1500000|800000|300000|1610000");
    expect(r.division, "month", r.month, "raw", "100000|2000000|800000|300000|1610000");
    /* its last change published (after the debounce window), and relayed */
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM forecast WHERE node_id = $1 "
                                    "AND revision > emitted_revision", r.teams[0], 0, 30000),
                     0);
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM outbox WHERE topic = $1 "
                                    "AND published_at IS NULL", r.forecasts, 0, 30000),
                     0);
    stop_all(SIGTERM);

    /* downstream: the latest forecast event of team 0's month carries its figures */
    it_msgs_t got = it_consume_all(cfg, r.forecasts, 1000000, 8000);
    char key[128];
    snprintf(key, sizeof key, "%s/%s", r.teams[0], r.month_label);
    Ka__V1__ForecastEvent *last = NULL;
    for (size_t i = 0; i < got.n; i++) {
        if (got.m[i]->key_len != strlen(key) || memcmp(got.m[i]->key, key, strlen(key)) != 0)
            continue;
        ka__v1__forecast_event__free_unpacked(last, NULL);
        last = ka__v1__forecast_event__unpack(NULL, got.m[i]->len, got.m[i]->payload);
    }
    assert_non_null(last);
    assert_int_equal(last->adjusted->commit_minor, 2000000);
    assert_int_equal(last->raw->best_case_minor, 800000);
    assert_int_equal(last->adjusted->gap_minor, 900000);
    ka__v1__forecast_event__free_unpacked(last, NULL);
    it_free_msgs(&got);
    current_run = NULL;
}

static void a_burst_gives_one_event_per_window_and_survives_sigkill(void **state)
{
    static run_t r;
    char o[64], key[128];
    (void)state;
    init_run(&r, "b");
    snprintf(o, sizeof o, "fopp-%s-burst", r.sfx);
    create(&r, o, 1, "05", 100000, 1000, 0);
    confirm(&r, o, 1, 0, 0);
    spawn_all(&r, 7);
    wait_settled(&r, 0);
    /* 1,000 amount changes as fast as they go, the forecast worker killed
     * twice on the way */
    int64_t t0 = ka_now_ms();
    for (int i = 1; i <= 1000; i++) {
        change_amount(&r, o, 100000 + i);
        if (i == 300 || i == 700) {
            it_stop(live[2], SIGKILL);
            live[2] = 0;
            spawn_all(&r, 4);
        }
    }
    wait_settled(&r, 0);
    int64_t elapsed = ka_now_ms() - t0;
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM forecast WHERE node_id = $1 "
                                    "AND revision > emitted_revision", r.reps[1], 0, 30000),
                     0); /* the last window closed and was published */
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM outbox WHERE topic = $1 "
                                    "AND published_at IS NULL", r.forecasts, 0, 30000),
                     0);
    stop_all(SIGTERM);
    /* the final figures: 101,000 at 50% */
    expect(r.reps[1], "month", r.month, "raw", "0|0|101000|0|50500");
    expect(r.teams[0], "month", r.month, "raw", "0|0|101000|0|50500");

    snprintf(key, sizeof key, "%s/%s", r.reps[1], r.month_label);
    it_msgs_t got = it_consume_all(cfg, r.forecasts, 1000000, 8000);
    size_t events = 0;
    Ka__V1__ForecastEvent *last = NULL;
    for (size_t i = 0; i < got.n; i++) {
        if (got.m[i]->key_len != strlen(key) || memcmp(got.m[i]->key, key, strlen(key)) != 0)
            continue;
        events++;
        ka__v1__forecast_event__free_unpacked(last, NULL);
        last = ka__v1__forecast_event__unpack(NULL, got.m[i]->len, got.m[i]->payload);
    }
    /* One per 1 s window over the burst (plus the first state, the last
     * window, and a re-send around each kill); far fewer than the changes. */
    size_t windows = (size_t)(elapsed / 1000) + 2;
    fprintf(stderr, "burst: 1000 changes in %lld ms, %zu forecast events for %s\n",
            (long long)elapsed, events, key);
    assert_true(events >= 2);
    assert_true(events <= windows + 4);
    assert_non_null(last);
    assert_int_equal(last->raw->best_case_minor, 101000);
    ka__v1__forecast_event__free_unpacked(last, NULL);
    it_free_msgs(&got);
    current_run = NULL;
}

/* 提供给生产计划: demand never lands in a month that is over. An open deal
 * whose close date passed is demand of the current month; a won deal stays
 * committed, per SKU, until booked orders naming it cover it (a cancelled
 * one no longer does); when the forecast worker's month rolls over, what was
 * due moves with it. */
static void planning_moves_overdue_demand_and_keeps_won_demand_until_delivered(void **state)
{
    static run_t r;
    char x[64], y[64], w[64], o1[64], o2[64];
    char past[32], next[32], later[32], past_close[32], next_close[32], offset[32];
    (void)state;
    init_run(&r, "p");
    snprintf(x, sizeof x, "fopp-%s-late", r.sfx);
    snprintf(y, sizeof y, "fopp-%s-next", r.sfx);
    snprintf(w, sizeof w, "fopp-%s-won", r.sfx);
    snprintf(o1, sizeof o1, "ford-%s-1", r.sfx);
    snprintf(o2, sizeof o2, "ford-%s-2", r.sfx);
    month_add(r.month, -2, past);
    month_add(r.month, 1, next);
    month_add(r.month, 2, later);
    snprintf(past_close, sizeof past_close, "%.8s15", past);
    snprintf(next_close, sizeof next_close, "%.8s10", next);
    const char *a[] = {"SKU-0001"}, *b[] = {"SKU-0002"}, *ab[] = {"SKU-0001", "SKU-0002"};
    const int64_t three[] = {3000}, two[] = {2000}, won_qty[] = {10000, 5000};
    const int64_t four[] = {4000}, rest[] = {6000, 5000};

    create_deal(&r, x, 0, "07", 300000, past_close, 1, a, three); /* overdue, commit, 90% */
    confirm(&r, x, 0, 0, 0);
    create_deal(&r, y, 1, "05", 200000, next_close, 1, b, two); /* next month, 50% */
    confirm(&r, y, 1, 0, 0);
    create_deal(&r, w, 0, "07", 1500000, r.close_date, 2, ab, won_qty);
    confirm(&r, w, 0, 0, 0);
    win(&r, w);
    spawn_all(&r, 7);
    wait_settled(&r, 0);
    /* x: 3 x 90% now, not in its close month; y in its month; w: 10 and 5 committed */
    assert_int_equal(planned(&r, "SKU-0001", r.month, "weighted"), 2700);
    assert_int_equal(planned(&r, "SKU-0001", past, "weighted"), 0);
    assert_int_equal(planned(&r, "SKU-0001", r.month, "committed"), 3000 + 10000);
    assert_int_equal(planned(&r, "SKU-0002", r.month, "committed"), 5000);
    assert_int_equal(planned(&r, "SKU-0002", next, "weighted"), 1000);

    /* 4 of w's 10 SKU-0001 booked: 6 still to deliver, and all 5 of SKU-0002 */
    order_event(&r, o1, 0, w, KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED, 1, a, four, 100,
                ka_now_ms() - MINUTE_MS, ka_now_ms() - MINUTE_MS);
    wait_settled(&r, 1); /* the order's won event for w: already closed */
    assert_int_equal(planned(&r, "SKU-0001", r.month, "committed"), 3000 + 6000);
    assert_int_equal(planned(&r, "SKU-0002", r.month, "committed"), 5000);
    /* the rest booked: w is delivered; cancelled, it is due again */
    order_event(&r, o2, 0, w, KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED, 2, ab, rest, 100,
                ka_now_ms() - MINUTE_MS, ka_now_ms() - MINUTE_MS);
    wait_settled(&r, 2);
    assert_int_equal(planned(&r, "SKU-0001", r.month, "committed"), 3000);
    assert_int_equal(planned(&r, "SKU-0002", r.month, "committed"), 0);
    order_event(&r, o2, 0, w, KA__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED, 0, NULL, NULL, 0,
                ka_now_ms() - MINUTE_MS, ka_now_ms() - MINUTE_MS);
    wait_settled(&r, 2);
    assert_int_equal(planned(&r, "SKU-0001", r.month, "committed"), 3000 + 6000);
    assert_int_equal(planned(&r, "SKU-0002", r.month, "committed"), 5000);

    /* Two months on (the forecast worker's clock): x, y and w's remainder are
     * all due then, nothing stays behind. */
    it_stop(live[2], SIGTERM);
    live[2] = 0;
    int64_t at = 0;
    {
        int yy = 0, mm = 1;
        sscanf(later, "%4d-%2d", &yy, &mm);
        struct tm tm = {.tm_year = yy - 1900, .tm_mon = mm - 1, .tm_mday = 15, .tm_hour = 12};
        at = (int64_t)timegm(&tm) * 1000;
    }
    snprintf(offset, sizeof offset, "%lld", (long long)(at - ka_now_ms()));
    snprintf(forecast_clock, sizeof forecast_clock, "KA_CLOCK_OFFSET_MS=%s", offset);
    spawn_all(&r, 4);
    forecast_clock[0] = '\0';
    assert_int_equal(wait_planned(&r, "SKU-0002", later, "weighted", 1000), 1000);
    assert_int_equal(wait_planned(&r, "SKU-0001", later, "committed", 3000 + 6000), 3000 + 6000);
    assert_int_equal(planned(&r, "SKU-0001", later, "weighted"), 2700);
    assert_int_equal(planned(&r, "SKU-0002", later, "committed"), 5000);
    assert_int_equal(planned(&r, "SKU-0002", next, "weighted"), 0);
    assert_int_equal(planned(&r, "SKU-0001", r.month, "committed"), 0);
    assert_int_equal(planned(&r, "SKU-0001", r.month, "weighted"), 0);
    assert_int_equal(planned(&r, "SKU-0002", r.month, "committed"), 0);
    stop_all(SIGTERM);
    current_run = NULL;
}

/* The last forecast event of `key` on the run's forecast topic, or NULL;
 * *events counts them all. */
static Ka__V1__ForecastEvent *last_forecast_event(const run_t *r, const char *key, size_t *events)
{
    it_msgs_t got = it_consume_all(cfg, r->forecasts, 1000000, 8000);
    Ka__V1__ForecastEvent *last = NULL;
    *events = 0;
    for (size_t i = 0; i < got.n; i++) {
        if (got.m[i]->key_len != strlen(key) || memcmp(got.m[i]->key, key, strlen(key)) != 0)
            continue;
        (*events)++;
        ka__v1__forecast_event__free_unpacked(last, NULL);
        last = ka__v1__forecast_event__unpack(NULL, got.m[i]->len, got.m[i]->payload);
    }
    it_free_msgs(&got);
    return last;
}

static void wait_published(const run_t *r, const char *node)
{
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM forecast WHERE node_id = $1 "
                                    "AND revision > emitted_revision", node, 0, 30000),
                     0);
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM outbox WHERE topic = $1 "
                                    "AND published_at IS NULL", r->forecasts, 0, 30000),
                     0);
}

/* Closed revenue is what was booked in the period and is still booked: a
 * cancellation and a return this month take two orders out of last month,
 * where they were booked (its forecast is published again, at 0), and leave
 * this month's own booking alone; nothing goes negative. */
static void a_cancellation_corrects_the_month_it_was_booked_in(void **state)
{
    static run_t r;
    char o[3][64], prev[32], prev_q[32], key[128];
    int y, m;
    (void)state;
    init_run(&r, "x");
    for (int i = 0; i < 3; i++)
        snprintf(o[i], sizeof o[i], "ford-%s-%d", r.sfx, i);
    sscanf(r.month, "%4d-%2d", &y, &m);
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = 1};
    int64_t month_start = (int64_t)timegm(&tm) * 1000;
    if (--m == 0) {
        m = 12;
        y--;
    }
    snprintf(prev, sizeof prev, "%04d-%02d-01", y, m);
    snprintf(prev_q, sizeof prev_q, "%04d-%02d-01", y, (m - 1) / 3 * 3 + 1);
    int same_quarter = strcmp(prev_q, r.quarter) == 0;
    int64_t last_month = month_start - 2 * 86400000LL, now = ka_now_ms();

    const Ka__V1__OrderStatus booked = KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED;
    const char *sku = "SKU-0001";
    const int64_t one = 1000;
    order_event(&r, o[0], 0, NULL, booked, 1, &sku, &one, 100000, last_month, last_month);
    order_event(&r, o[1], 0, NULL, booked, 1, &sku, &one, 250000, last_month, last_month);
    order_event(&r, o[2], 0, NULL, booked, 1, &sku, &one, 70000, now - MINUTE_MS,
                now - MINUTE_MS);
    spawn_all(&r, 7);
    wait_settled(&r, 0);
    expect(r.reps[0], "month", prev, "raw", "350000|0|0|0|0");
    expect(r.reps[0], "month", r.month, "raw", "70000|0|0|0|0");
    wait_published(&r, r.reps[0]);

    /* This month: the first is cancelled, the second returned. */
    order_event(&r, o[0], 0, NULL, KA__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED, 0, NULL, NULL, 0,
                last_month, now - 30000);
    order_event(&r, o[1], 0, NULL, KA__V1__ORDER_STATUS__ORDER_STATUS_RETURNED, 0, NULL, NULL, 0,
                last_month, now - 20000);
    wait_settled(&r, 0);
    const char *nodes[] = {r.reps[0], r.teams[0], r.division};
    for (int i = 0; i < 3; i++) {
        expect(nodes[i], "month", prev, "raw", "0|0|0|0|0");
        expect(nodes[i], "month", r.month, "raw", "70000|0|0|0|0");
        expect(nodes[i], "quarter", prev_q, "raw", same_quarter ? "70000|0|0|0|0" : "0|0|0|0|0");
        if (!same_quarter)
            expect(nodes[i], "quarter", r.quarter, "raw", "70000|0|0|0|0");
        const char *args[] = {nodes[i]};
        assert_int_equal(q_int("SELECT count(*) FROM actual_rollup WHERE node_id = $1 "
                               "AND amount_minor < 0", 1, args), 0);
        assert_int_equal(q_int("SELECT count(*) FROM forecast WHERE node_id = $1 "
                               "AND (raw_closed_minor < 0 OR adj_closed_minor < 0)", 1, args), 0);
    }
    const char *rep[] = {r.reps[0], prev};
    assert_int_equal(q_int("SELECT count(*) FROM actual WHERE node_id = $1 AND amount_minor < 0",
                           1, rep), 0);
    assert_int_equal(q_int("SELECT coalesce(sum(amount_minor), 0) FROM actual "
                           "WHERE node_id = $1 AND period_month = $2::date", 2, rep), 0);
    const char *cur[] = {r.reps[0], r.month};
    assert_int_equal(q_int("SELECT coalesce(sum(amount_minor), 0) FROM actual "
                           "WHERE node_id = $1 AND period_month = $2::date", 2, cur), 70000);

    /* Last month's forecast went out again, with its corrected closed revenue. */
    wait_published(&r, r.reps[0]);
    stop_all(SIGTERM);
    size_t events = 0;
    snprintf(key, sizeof key, "%s/%.7s", r.reps[0], prev);
    Ka__V1__ForecastEvent *last = last_forecast_event(&r, key, &events);
    assert_non_null(last);
    assert_true(events >= 2);
    assert_int_equal(last->raw->closed_minor, 0);
    assert_int_equal(last->adjusted->closed_minor, 0);
    ka__v1__forecast_event__free_unpacked(last, NULL);
    snprintf(key, sizeof key, "%s/%s", r.reps[0], r.month_label);
    last = last_forecast_event(&r, key, &events);
    assert_non_null(last);
    assert_int_equal(last->raw->closed_minor, 70000);
    ka__v1__forecast_event__free_unpacked(last, NULL);
    current_run = NULL;
}

static int setup(void **state)
{
    (void)state;
    it_open("it-forecast", &cfg, &pg, &kp);
    return 0;
}

static int kill_leftovers(void **state)
{
    (void)state;
    it_kill_all(live, 3);
    current_run = NULL;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    it_close(cfg, pg, kp);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_forecast OPPORTUNITY-WORKER ORDER-WORKER FORECAST-WORKER\n");
        return 2;
    }
    opp_worker = argv[1];
    order_worker = argv[2];
    forecast_worker = argv[3];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(rollup_with_adjustments_owner_change_and_planning,
                                  kill_leftovers),
        cmocka_unit_test_teardown(a_cancellation_corrects_the_month_it_was_booked_in,
                                  kill_leftovers),
        cmocka_unit_test_teardown(a_burst_gives_one_event_per_window_and_survives_sigkill,
                                  kill_leftovers),
        cmocka_unit_test_teardown(
            planning_moves_overdue_demand_and_keeps_won_demand_until_delivered, kill_leftovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

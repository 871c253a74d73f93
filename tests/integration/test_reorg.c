/* Re-orgs against the real stack, with the opportunity, order and forecast
 * workers running throughout (deploy/sql/0016_reorg.sql, kactl load org):
 *   - a rep with open deals and an order moves to a team in another region:
 *     the old ancestors lose exactly its figures and the new ones gain them,
 *     in funnel_state, actual_rollup, Redis (ka:funnel, ka:actuals) and the
 *     forecast; funnel health follows (a baseline the old team no longer
 *     meets fires its alert);
 *   - a later stage change of its deal leaves no negative count anywhere;
 *   - a team moves to another region with its whole subtree;
 *   - an event for a rep the tree does not know counts at the rep and raises
 *     unknown_rep; loading the rep rolls it up, resolves the alert, and a
 *     second load of the same file changes nothing.
 *
 * Tree: company -> division D -> regions RA, RB -> teams TA (RA), TB (RB);
 * reps r0, r1 in TA, r2 in TB. */
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
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka_buf.h"
#include "ka_redis.h"
#include "ka_validate.h"

#define MINUTE_MS 60000LL
#define WAIT_MS 60000

static const char *opp_worker, *order_worker, *forecast_worker, *kactl;
static ka_config_t *cfg;
static ka_pg_t *pg;
static ka_producer_t *kp;
static pid_t live[3];

typedef struct run {
    char sfx[40];
    char opps[128], orders[128], forecasts[128], planning[128], dlq[128], alerts[128];
    char g_opp[128], g_order[128], g_forecast[128];
    char div[64], ra[64], rb[64], ta[64], tb[64], reps[3][64], ghost[64];
    char month[32], month_label[8];
    int64_t clock_ms;
    int opp_events, order_events, seq, files;
} run_t;

static run_t R;

static void sql(const char *q, int n, const char **args)
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_param_t p[8];
    for (int i = 0; i < n; i++)
        p[i] = (ka_pg_param_t){args[i], 0, 0};
    if (ka_pg_query(pg, q, n, p, NULL, NULL, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", q, err);
}

static int read_text(void *ud, const ka_pgres_t *res)
{
    const char *v = ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : NULL;
    snprintf(ud, 512, "%s", v ? v : "(no row)");
    return 0;
}

static void text_of(const char *q, int n, const char **args, char out[512])
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_param_t p[4];
    for (int i = 0; i < n; i++)
        p[i] = (ka_pg_param_t){args[i], 0, 0};
    if (ka_pg_query(pg, q, n, p, read_text, out, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", q, err);
}

/* Waits until the query's text is `want`; fails with the last value. */
static void wait_text(const char *what, const char *q, int n, const char **args,
                      const char *want)
{
    char got[512];
    int64_t until = ka_now_ms() + WAIT_MS;
    for (;;) {
        text_of(q, n, args, got);
        if (strcmp(got, want) == 0)
            return;
        if (ka_now_ms() > until)
            fail_msg("%s: got %s, want %s", what, got, want);
        usleep(100 * 1000);
    }
}

#define FUNNEL_SQL                                                                               \
    "SELECT open_count || '|' || amount_minor || '|' || weighted_amount_minor FROM funnel_state " \
    "WHERE node_id = $1 AND definition_id = 'default-8' AND stage_code = $2"

/* "count|amount|weighted" of a node's stage, now. */
static void expect_funnel(const char *node, const char *stage, const char *want)
{
    char got[512];
    const char *a[] = {node, stage};
    text_of(FUNNEL_SQL, 2, a, got);
    if (strcmp(got, want) != 0)
        fail_msg("funnel %s stage %s: got %s, want %s", node, stage, got, want);
}

static void expect_actual(const char *node, const char *want)
{
    char got[512];
    const char *a[] = {node, R.month};
    text_of("SELECT amount_minor::text FROM actual_rollup WHERE node_id = $1 "
            "AND period_month = $2::date", 2, a, got);
    if (strcmp(got, want) != 0)
        fail_msg("actual_rollup %s %s: got %s, want %s", node, R.month, got, want);
}

/* closed|commit|best case|pipeline|weighted, raw, of the current month,
 * once the forecast worker has caught up. */
static void wait_forecast(const char *node, const char *want)
{
    char what[128];
    const char *a[] = {node, R.month};
    snprintf(what, sizeof what, "forecast %s %s", node, R.month);
    wait_text(what,
              "SELECT raw_closed_minor || '|' || raw_commit_minor || '|' || raw_best_case_minor "
              "|| '|' || raw_pipeline_minor || '|' || raw_weighted_pipeline_minor FROM forecast "
              "WHERE node_id = $1 AND period_kind = 'month' AND period_start = $2::date",
              2, a, want);
}

/* No row of the run's nodes below zero. */
static void expect_no_negative(void)
{
    char nodes[1024];
    snprintf(nodes, sizeof nodes, "{%s,%s,%s,%s,%s,%s,%s,%s,%s}", R.div, R.ra, R.rb, R.ta, R.tb,
             R.reps[0], R.reps[1], R.reps[2], R.ghost);
    const char *a[] = {nodes};
    assert_int_equal(it_pg_int_args(pg, "SELECT count(*) FROM funnel_state WHERE node_id = "
                                        "ANY($1::text[]) AND (open_count < 0 OR amount_minor < 0 "
                                        "OR weighted_amount_minor < 0)", 1, a), 0);
}

/* Redis ---------------------------------------------------------------------------------- */

typedef struct fields {
    char *v[128];
    int n;
} fields_t;

static void keep(void *ud, const char *field, const char *value)
{
    fields_t *f = ud;
    ka_buf_t b = KA_BUF_INIT;
    if (f->n >= 128)
        return;
    ka_buf_printf(&b, "%s=%lld", field, atoll(value));
    f->v[f->n++] = b.data;
}

static int keep_rows(void *ud, const ka_pgres_t *res)
{
    for (int i = 0; i < ka_pgres_rows(res); i++)
        keep(ud, ka_pgres_value(res, i, 0), ka_pgres_value(res, i, 1));
    return 0;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void joined(fields_t *f, ka_buf_t *out)
{
    qsort(f->v, (size_t)f->n, sizeof f->v[0], by_text);
    for (int i = 0; i < f->n; i++) {
        ka_buf_printf(out, "%s;", f->v[i]);
        free(f->v[i]);
    }
    f->n = 0;
}

/* The hash at `key` holds exactly what `q` ($1 = node) gives as (field, value). */
static void expect_cache(ka_redis_t *rds, const char *key, const char *q, const char *node)
{
    char err[KA_ERRSTR_SIZE];
    fields_t f = {{0}, 0};
    ka_buf_t cached = KA_BUF_INIT, stored = KA_BUF_INIT;
    assert_int_equal(ka_redis_hgetall(rds, key, keep, &f, err, sizeof err), KA_OK);
    joined(&f, &cached);
    ka_pg_param_t p = {node, 0, 0};
    assert_int_equal(ka_pg_query(pg, q, 1, &p, keep_rows, &f, err, sizeof err), KA_OK);
    joined(&f, &stored);
    if (strcmp(ka_buf_str(&cached), ka_buf_str(&stored)) != 0)
        fail_msg("%s: redis %s, postgres %s", key, ka_buf_str(&cached), ka_buf_str(&stored));
    ka_buf_free(&cached);
    ka_buf_free(&stored);
}

/* Redis equals PostgreSQL for every node of the run: funnels and actuals. */
static void expect_redis(void)
{
    char err[KA_ERRSTR_SIZE], key[256];
    ka_redis_t *rds = ka_redis_connect(ka_config_str(cfg, "KA_REDIS_HOST"),
                                       (int)ka_config_int(cfg, "KA_REDIS_PORT"), 2000, err,
                                       sizeof err);
    assert_non_null(rds);
    const char *nodes[] = {R.div, R.ra, R.rb, R.ta, R.tb, R.reps[0], R.reps[1], R.reps[2], R.ghost};
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        snprintf(key, sizeof key, "ka:funnel:%s:default-8", nodes[i]);
        expect_cache(rds, key,
                     "SELECT stage_code || ':' || m.k, CASE m.k WHEN 'count' THEN open_count "
                     "WHEN 'amount' THEN amount_minor ELSE weighted_amount_minor END::text "
                     "FROM funnel_state CROSS JOIN (VALUES ('count'), ('amount'), ('weighted')) "
                     "AS m(k) WHERE node_id = $1 AND definition_id = 'default-8'",
                     nodes[i]);
        snprintf(key, sizeof key, "ka:actuals:%s", nodes[i]);
        expect_cache(rds, key,
                     "SELECT to_char(period_month, 'YYYY-MM'), amount_minor::text "
                     "FROM actual_rollup WHERE node_id = $1",
                     nodes[i]);
    }
    ka_redis_free(rds);
}

/* Running things ---------------------------------------------------------------------- */

/* kactl load org with the given CSV rows (after the header); returns its
 * output in out. */
static void load_org(const char *rows, char *out, size_t len)
{
    char path[256], cmd[1024];
    snprintf(path, sizeof path, "/tmp/ka-it-reorg-%s-%d.csv", R.sfx, R.files++);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "id,parent_id,kind,name\n%s", rows);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s load org %s 2>&1", kactl, path);
    int rc = it_sh(cmd, out, len);
    unlink(path);
    if (rc != 0)
        fail_msg("kactl load org failed: %s", out);
}

static void spawn_all(void)
{
    static char s[3][8][200];
    snprintf(s[0][0], 200, "KA_TOPIC_OPPORTUNITY=%s", R.opps);
    snprintf(s[0][1], 200, "KA_TOPIC_DEADLETTER=%s", R.dlq);
    snprintf(s[0][2], 200, "KA_TOPIC_ALERT=%s", R.alerts);
    snprintf(s[0][3], 200, "KA_CONSUMER_GROUP=%s", R.g_opp);
    snprintf(s[0][4], 200, "KA_BATCH_MAX_MS=10");
    const char *o[] = {s[0][0], s[0][1], s[0][2], s[0][3], s[0][4], NULL};
    live[0] = it_spawn(opp_worker, o);
    snprintf(s[1][0], 200, "KA_TOPIC_ORDER=%s", R.orders);
    snprintf(s[1][1], 200, "KA_TOPIC_OPPORTUNITY=%s", R.opps);
    snprintf(s[1][2], 200, "KA_TOPIC_DEADLETTER=%s", R.dlq);
    snprintf(s[1][3], 200, "KA_TOPIC_ALERT=%s", R.alerts);
    snprintf(s[1][4], 200, "KA_CONSUMER_GROUP=%s", R.g_order);
    snprintf(s[1][5], 200, "KA_BATCH_MAX_MS=10");
    const char *d[] = {s[1][0], s[1][1], s[1][2], s[1][3], s[1][4], s[1][5], NULL};
    live[1] = it_spawn(order_worker, d);
    snprintf(s[2][0], 200, "KA_TOPIC_OPPORTUNITY=%s", R.opps);
    snprintf(s[2][1], 200, "KA_TOPIC_FORECAST=%s", R.forecasts);
    snprintf(s[2][2], 200, "KA_TOPIC_PLANNING=%s", R.planning);
    snprintf(s[2][3], 200, "KA_TOPIC_DEADLETTER=%s", R.dlq);
    snprintf(s[2][4], 200, "KA_TOPIC_ALERT=%s", R.alerts);
    snprintf(s[2][5], 200, "KA_CONSUMER_GROUP=%s", R.g_forecast);
    snprintf(s[2][6], 200, "KA_BATCH_MAX_MS=10");
    const char *f[] = {s[2][0], s[2][1], s[2][2], s[2][3], s[2][4], s[2][5], s[2][6], NULL};
    live[2] = it_spawn(forecast_worker, f);
}

static void wait_consumed(void)
{
    it_wait_group(pg, R.g_opp, R.opp_events);
    it_wait_group(pg, R.g_order, R.order_events);
    it_wait_group(pg, R.g_forecast, R.opp_events);
}

static void init_run(const char *tag)
{
    char err[KA_ERRSTR_SIZE], root[512], rows[2048], out[4096];
    memset(&R, 0, sizeof R);
    snprintf(R.sfx, sizeof R.sfx, "%s%s", tag, it_suffix());
    snprintf(R.opps, sizeof R.opps, "it.ro-opp.%s", R.sfx);
    snprintf(R.orders, sizeof R.orders, "it.ro-order.%s", R.sfx);
    snprintf(R.forecasts, sizeof R.forecasts, "it.ro-forecast.%s", R.sfx);
    snprintf(R.planning, sizeof R.planning, "it.ro-planning.%s", R.sfx);
    snprintf(R.dlq, sizeof R.dlq, "it.ro-dlq.%s", R.sfx);
    snprintf(R.alerts, sizeof R.alerts, "it.ro-alert.%s", R.sfx);
    snprintf(R.g_opp, sizeof R.g_opp, "it-ro-opp-%s", R.sfx);
    snprintf(R.g_order, sizeof R.g_order, "it-ro-order-%s", R.sfx);
    snprintf(R.g_forecast, sizeof R.g_forecast, "it-ro-forecast-%s", R.sfx);
    const char *brokers = ka_config_str(cfg, "KA_KAFKA_BROKERS");
    const char *topics[] = {R.opps, R.orders, R.forecasts, R.planning, R.dlq, R.alerts};
    for (int i = 0; i < 6; i++)
        if (ka_kafka_create_topic(brokers, topics[i], i < 2 ? 3 : 1, err, sizeof err) != KA_OK)
            fail_msg("%s", err);
    time_t now = (time_t)(ka_now_ms() / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(R.month, sizeof R.month, "%04d-%02d-01", tm.tm_year + 1900, tm.tm_mon + 1);
    snprintf(R.month_label, sizeof R.month_label, "%.7s", R.month);
    R.clock_ms = ka_now_ms() - 60 * MINUTE_MS;

    text_of("SELECT id FROM org_node WHERE parent_id IS NULL", 0, NULL, root);
    if (strcmp(root, "(no row)") == 0)
        fail_msg("the org tree has no company: load one first (tests/run runs kactl load sample)");
    snprintf(R.div, 64, "rodiv-%s", R.sfx);
    snprintf(R.ra, 64, "rora-%s", R.sfx);
    snprintf(R.rb, 64, "rorb-%s", R.sfx);
    snprintf(R.ta, 64, "rota-%s", R.sfx);
    snprintf(R.tb, 64, "rotb-%s", R.sfx);
    for (int i = 0; i < 3; i++)
        snprintf(R.reps[i], 64, "rorep%d-%s", i, R.sfx);
    snprintf(R.ghost, 64, "roghost-%s", R.sfx);
    /* in any order: kactl sorts parents first */
    snprintf(rows, sizeof rows,
             "%s,%s,rep,r0\n%s,%s,rep,r1\n%s,%s,rep,r2\n%s,%s,team,TA\n%s,%s,team,TB\n"
             "%s,%s,region,RA\n%s,%s,region,RB\n%s,%s,division,D\n",
             R.reps[0], R.ta, R.reps[1], R.ta, R.reps[2], R.tb, R.ta, R.ra, R.tb, R.rb, R.ra,
             R.div, R.rb, R.div, R.div, root);
    load_org(rows, out, sizeof out);
}

/* Events --------------------------------------------------------------------------------- */

static void send_opp(Ka__V1__OpportunityEvent *e, const char *opp)
{
    char id[128];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    R.clock_ms += 1000;
    snprintf(id, sizeof id, "%s-%d", opp, R.seq++);
    h.event_id = id;
    h.occurred_at_ms = R.clock_ms;
    e->header = &h;
    e->opportunity_id = (char *)opp;
    size_t len = ka__v1__opportunity_event__get_packed_size(e);
    uint8_t *buf = malloc(len + 1);
    ka__v1__opportunity_event__pack(e, buf);
    it_produce(kp, R.opps, opp, buf, len);
    free(buf);
    R.opp_events++;
}

/* A deal at `stage`, confirmed for the current month (its stage's category). */
static void deal(const char *opp, const char *rep, const char *stage, int64_t amount)
{
    char name[96];
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__OpportunityCreated c = KA__V1__OPPORTUNITY_CREATED__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    snprintf(name, sizeof name, "Reorg Test %s Customer", R.sfx);
    a.name = name;
    c.account = &a;
    c.owner_rep_id = (char *)rep;
    c.stage_code = (char *)stage;
    c.amount_minor = amount;
    e.actor_id = (char *)rep;
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_CREATED;
    e.created = &c;
    send_opp(&e, opp);

    Ka__V1__OpportunityEvent f = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__ForecastConfirmed fc = KA__V1__FORECAST_CONFIRMED__INIT;
    Ka__V1__Period p = KA__V1__PERIOD__INIT;
    int y = 0, m = 1;
    sscanf(R.month, "%4d-%2d", &y, &m);
    p.kind = KA__V1__PERIOD_KIND__PERIOD_KIND_MONTH;
    p.year = y;
    p.number = m;
    fc.period = &p;
    f.actor_id = (char *)rep;
    f.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED;
    f.forecast_confirmed = &fc;
    send_opp(&f, opp);
}

static void stage_change(const char *opp, const char *stage)
{
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__StageChanged sc = KA__V1__STAGE_CHANGED__INIT;
    sc.to_stage_code = (char *)stage;
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED;
    e.stage_changed = &sc;
    send_opp(&e, opp);
}

static void book(const char *order, const char *rep, int64_t amount)
{
    char id[96], name[96];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OrderEvent e = KA__V1__ORDER_EVENT__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__LineItem l = KA__V1__LINE_ITEM__INIT, *lp = &l;
    snprintf(id, sizeof id, "%s-booked", order);
    snprintf(name, sizeof name, "Reorg Test %s Customer", R.sfx);
    h.event_id = id;
    h.occurred_at_ms = ka_now_ms() - MINUTE_MS;
    a.name = name;
    e.header = &h;
    e.order_id = (char *)order;
    e.account = &a;
    e.rep_id = (char *)rep;
    e.channel = KA__V1__CHANNEL__CHANNEL_DIRECT;
    e.status = KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED;
    e.booked_at_ms = h.occurred_at_ms;
    l.sku = "SKU-0001";
    l.quantity_milli = 1000;
    l.unit_price_minor = amount;
    e.n_lines = 1;
    e.lines = &lp;
    size_t len = ka__v1__order_event__get_packed_size(&e);
    uint8_t *buf = malloc(len + 1);
    ka__v1__order_event__pack(&e, buf);
    it_produce(kp, R.orders, order, buf, len);
    free(buf);
    R.order_events++;
}

static long long alerts(const char *type, const char *subject, const char *status)
{
    const char *a[] = {type, subject, status};
    return it_pg_int_args(pg, "SELECT count(*) FROM alert_state WHERE type = $1 "
                              "AND subject_id = $2 AND status = $3", 3, a);
}

static void wait_alert(const char *type, const char *subject, const char *status)
{
    char what[256];
    const char *a[] = {type, subject, status};
    snprintf(what, sizeof what, "%s alert of %s %s", type, subject, status);
    wait_text(what, "SELECT count(*)::text FROM alert_state WHERE type = $1 AND subject_id = $2 "
                    "AND status = $3", 3, a, "1");
}

/* The test ------------------------------------------------------------------------------- */

static void moves_take_their_figures_and_unknown_reps_roll_up_on_joining(void **state)
{
    char o[5][64], ord[2][64], rows[1024], out[4096];
    (void)state;
    init_run("m");
    for (int i = 0; i < 5; i++)
        snprintf(o[i], sizeof o[i], "roopp-%s-%d", R.sfx, i);
    for (int i = 0; i < 2; i++)
        snprintf(ord[i], sizeof ord[i], "roord-%s-%d", R.sfx, i);

    /* amounts at 20% (02), 30% (03), 50% (05) */
    deal(o[0], R.reps[0], "02", 100000); /* r0: pipeline, weighted 20,000 */
    deal(o[1], R.reps[0], "05", 200000); /* r0: best case, weighted 100,000 */
    deal(o[2], R.reps[1], "02", 400000); /* r1: pipeline, weighted 80,000 */
    deal(o[3], R.reps[2], "03", 800000); /* r2: pipeline, weighted 240,000 */
    book(ord[0], R.reps[0], 50000);      /* r0: closed */
    spawn_all();
    wait_consumed();
    expect_funnel(R.ta, "02", "2|500000|100000");
    expect_funnel(R.ta, "05", "1|200000|100000");
    expect_funnel(R.tb, "03", "1|800000|240000");
    expect_funnel(R.rb, "03", "1|800000|240000");
    expect_actual(R.ta, "50000");
    wait_forecast(R.ta, "50000|0|200000|500000|200000");
    wait_forecast(R.tb, "0|0|0|800000|240000");
    /* team A's stage 02 is expected to hold two deals */
    const char *base[] = {R.ta};
    sql("INSERT INTO funnel_baseline (node_id, definition_id, stage_code, metric, value, source, "
        "valid_from, valid_to) VALUES ($1, 'default-8', '02', 'count', 2, 'explicit', "
        "current_date - 1, current_date + 2)", 1, base);

    /* 1. r0 moves to team B, in the other region, while the workers run */
    snprintf(rows, sizeof rows, "%s,%s,rep,r0\n", R.reps[0], R.tb);
    load_org(rows, out, sizeof out);
    assert_non_null(strstr(out, "1 nodes moved or joined"));
    /* the old ancestors keep only r1's deal, the new ones gain r0's two */
    expect_funnel(R.ta, "02", "1|400000|80000");
    expect_funnel(R.ta, "05", "0|0|0");
    expect_funnel(R.ra, "02", "1|400000|80000");
    expect_funnel(R.ra, "05", "0|0|0");
    expect_funnel(R.tb, "02", "1|100000|20000");
    expect_funnel(R.tb, "05", "1|200000|100000");
    expect_funnel(R.tb, "03", "1|800000|240000");
    expect_funnel(R.rb, "02", "1|100000|20000");
    expect_funnel(R.rb, "05", "1|200000|100000");
    expect_funnel(R.div, "02", "2|500000|100000"); /* above both: unchanged */
    expect_funnel(R.reps[0], "02", "1|100000|20000");
    expect_actual(R.ta, "0");
    expect_actual(R.ra, "0");
    expect_actual(R.tb, "50000");
    expect_actual(R.rb, "50000");
    expect_actual(R.div, "50000");
    expect_redis();
    wait_forecast(R.ta, "0|0|0|400000|80000");
    wait_forecast(R.ra, "0|0|0|400000|80000");
    wait_forecast(R.tb, "50000|0|200000|900000|360000");
    wait_forecast(R.rb, "50000|0|200000|900000|360000");
    wait_forecast(R.div, "50000|0|200000|1300000|440000");
    /* health follows: team A has one deal of the two expected */
    wait_alert("funnel_health", R.ta, "firing");
    const char *h[] = {R.ta};
    assert_int_equal(it_pg_int_args(pg, "SELECT ratio_bp FROM funnel_health WHERE node_id = $1 "
                                        "AND stage_code = '02' AND metric = 'count' "
                                        "AND status = 'warning'", 1, h), 5000);

    /* 2. its deal moves on: taken from team B's stage 02, where it now counts */
    stage_change(o[0], "03");
    wait_consumed();
    expect_no_negative();
    expect_funnel(R.tb, "02", "0|0|0");
    expect_funnel(R.tb, "03", "2|900000|270000");
    expect_funnel(R.rb, "02", "0|0|0");
    expect_funnel(R.ta, "02", "1|400000|80000");
    expect_funnel(R.div, "02", "1|400000|80000");
    expect_funnel(R.div, "03", "2|900000|270000");
    expect_redis();

    /* 3. team B (r0 and r2) moves to region A: region B is left with nothing */
    snprintf(rows, sizeof rows, "%s,%s,team,TB\n", R.tb, R.ra);
    load_org(rows, out, sizeof out);
    expect_funnel(R.rb, "03", "0|0|0");
    expect_funnel(R.rb, "05", "0|0|0");
    const char *rb[] = {R.rb};
    assert_int_equal(it_pg_int_args(pg, "SELECT coalesce(sum(abs(open_count) + abs(amount_minor)), "
                                        "0) FROM funnel_state WHERE node_id = $1", 1, rb), 0);
    expect_funnel(R.ra, "02", "1|400000|80000");
    expect_funnel(R.ra, "03", "2|900000|270000");
    expect_funnel(R.ra, "05", "1|200000|100000");
    expect_funnel(R.tb, "03", "2|900000|270000"); /* the team itself: unchanged */
    expect_actual(R.rb, "0");
    expect_actual(R.ra, "50000");
    expect_actual(R.div, "50000");
    expect_no_negative();
    expect_redis();
    wait_forecast(R.rb, "0|0|0|0|0");
    wait_forecast(R.ra, "50000|0|200000|1300000|450000");
    wait_forecast(R.div, "50000|0|200000|1300000|450000");

    /* 4. a rep the tree does not know: counted at the rep, and alerted */
    deal(o[4], R.ghost, "02", 70000); /* weighted 14,000 */
    book(ord[1], R.ghost, 30000);
    wait_consumed();
    expect_funnel(R.ghost, "02", "1|70000|14000");
    expect_funnel(R.ta, "02", "1|400000|80000");
    expect_actual(R.ghost, "30000");
    wait_alert("unknown_rep", R.ghost, "firing");
    wait_forecast(R.ghost, "30000|0|0|70000|14000");
    /* the tree learns it: its figures roll up, the alert resolves */
    snprintf(rows, sizeof rows, "%s,%s,rep,Ghost\n", R.ghost, R.ta);
    load_org(rows, out, sizeof out);
    assert_non_null(strstr(out, "1 nodes moved or joined"));
    expect_funnel(R.ghost, "02", "1|70000|14000");
    expect_funnel(R.ta, "02", "2|470000|94000");
    expect_funnel(R.ra, "02", "2|470000|94000");
    expect_funnel(R.div, "02", "2|470000|94000");
    expect_actual(R.ta, "30000");
    expect_actual(R.ra, "80000");
    expect_actual(R.div, "80000");
    expect_redis();
    wait_alert("unknown_rep", R.ghost, "resolved");
    wait_forecast(R.ta, "30000|0|0|470000|94000");
    wait_forecast(R.div, "80000|0|200000|1370000|464000");
    /* team A holds two deals again: its health alert resolves */
    wait_alert("funnel_health", R.ta, "resolved");
    assert_int_equal(alerts("unknown_rep", R.ghost, "firing"), 0);

    /* 5. loading the same file again changes nothing: the recompute is absolute */
    load_org(rows, out, sizeof out);
    assert_null(strstr(out, "moved or joined"));
    expect_funnel(R.ta, "02", "2|470000|94000");
    expect_actual(R.ra, "80000");
    const char *g[] = {R.ghost};
    assert_int_equal(it_pg_int_args(pg, "SELECT count(*) FROM alert_history WHERE type = "
                                        "'unknown_rep' AND fingerprint IN (SELECT fingerprint FROM "
                                        "alert_state WHERE subject_id = $1)", 1, g), 2);

    for (int i = 0; i < 3; i++) {
        it_stop(live[i], SIGTERM);
        live[i] = 0;
    }
}

/* The roll-ups of the run's nodes equal a recomputation from the base rows
 * over the current tree (zero rows aside). */
static void expect_recomputed(void)
{
    char nodes[1024];
    snprintf(nodes, sizeof nodes, "{%s,%s,%s,%s,%s,%s,%s,%s}", R.div, R.ra, R.rb, R.ta, R.tb,
             R.reps[0], R.reps[1], R.reps[2]);
    const char *a[] = {nodes};
    assert_int_equal(
        it_pg_int_args(pg,
                       "WITH n AS (SELECT unnest($1::text[]) AS node), "
                       "want AS (SELECT n.node, o.definition_id, o.stage_code, count(*) AS c, "
                       "sum(o.amount_minor) AS a, sum(o.weighted_amount_minor) AS w FROM n "
                       "CROSS JOIN LATERAL (SELECT descendant_id AS rep FROM org_closure "
                       "WHERE ancestor_id = n.node UNION SELECT n.node) d "
                       "JOIN opportunity o ON o.owner_rep_id = d.rep AND o.status = 'open' "
                       "GROUP BY 1, 2, 3), "
                       "have AS (SELECT node_id, definition_id, stage_code, open_count, "
                       "amount_minor, weighted_amount_minor FROM funnel_state "
                       "WHERE node_id = ANY($1::text[]) AND (open_count, amount_minor, "
                       "weighted_amount_minor) <> (0, 0, 0)) "
                       "SELECT count(*) FROM ((SELECT * FROM want EXCEPT SELECT * FROM have) "
                       "UNION ALL (SELECT * FROM have EXCEPT SELECT * FROM want)) x",
                       1, a),
        0);
    assert_int_equal(
        it_pg_int_args(pg,
                       "WITH n AS (SELECT unnest($1::text[]) AS node), "
                       "want AS (SELECT n.node, x.period_month, sum(x.amount_minor) AS a FROM n "
                       "CROSS JOIN LATERAL (SELECT descendant_id AS rep FROM org_closure "
                       "WHERE ancestor_id = n.node UNION SELECT n.node) d "
                       "JOIN actual x ON x.node_id = d.rep GROUP BY 1, 2), "
                       "have AS (SELECT node_id, period_month, amount_minor FROM actual_rollup "
                       "WHERE node_id = ANY($1::text[]) AND amount_minor <> 0) "
                       "SELECT count(*) FROM ((SELECT * FROM want EXCEPT SELECT * FROM have) "
                       "UNION ALL (SELECT * FROM have EXCEPT SELECT * FROM want)) x",
                       1, a),
        0);
}

/* kactl load org moving r0 between the teams `times` times, in a child
 * process, so the loads run while the parent produces. */
static pid_t mover(int times)
{
    char path[2][256], cmd[2][1024];
    for (int t = 0; t < 2; t++) {
        snprintf(path[t], sizeof path[t], "/tmp/ka-it-reorg-%s-move%d.csv", R.sfx, t);
        FILE *f = fopen(path[t], "w");
        assert_non_null(f);
        fprintf(f, "id,parent_id,kind,name\n%s,%s,rep,r0\n", R.reps[0], t ? R.ta : R.tb);
        fclose(f);
        snprintf(cmd[t], sizeof cmd[t], "%s load org %s >/dev/null", kactl, path[t]);
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int bad = 0;
        for (int i = 0; i < times; i++)
            bad |= system(cmd[i % 2]) != 0;
        _exit(bad);
    }
    return pid;
}

/* Moves back and forth while the workers apply a stream of stage changes and
 * bookings for the moving rep and for one that stays: every batch counts
 * once, at the ancestors of the tree it committed under. */
static void moves_during_a_stream_count_every_change_once(void **state)
{
    char o[10][64], order[64];
    static const char *stages[] = {"02", "03", "04", "05"};
    int status = 0;
    (void)state;
    init_run("s");
    for (int i = 0; i < 10; i++) {
        snprintf(o[i], sizeof o[i], "roopp-%s-%d", R.sfx, i);
        deal(o[i], R.reps[i < 5 ? 0 : 2], "02", 10000 * (i + 1));
    }
    spawn_all();
    wait_consumed();
    pid_t pid = mover(41); /* odd: r0 ends in team B */
    for (int i = 0; i < 600; i++) {
        stage_change(o[i % 10], stages[(i / 10) % 4]);
        if (i % 10 == 0) {
            snprintf(order, sizeof order, "roord-%s-%d", R.sfx, i);
            book(order, R.reps[i % 20 == 0 ? 0 : 2], 1000 + i);
        }
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    wait_consumed();
    expect_funnel(R.ta, "02", "0|0|0"); /* r0 in team B */
    expect_no_negative();
    expect_recomputed();
    expect_redis();
    for (int i = 0; i < 3; i++) {
        it_stop(live[i], SIGTERM);
        live[i] = 0;
    }
}

static int setup(void **state)
{
    (void)state;
    it_open("it-reorg", &cfg, &pg, &kp);
    return 0;
}

static int kill_leftovers(void **state)
{
    (void)state;
    it_kill_all(live, 3);
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
    if (argc < 5) {
        fprintf(stderr, "usage: test_reorg OPPORTUNITY-WORKER ORDER-WORKER FORECAST-WORKER "
                        "KACTL\n");
        return 2;
    }
    opp_worker = argv[1];
    order_worker = argv[2];
    forecast_worker = argv[3];
    kactl = argv[4];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(moves_take_their_figures_and_unknown_reps_roll_up_on_joining,
                                  kill_leftovers),
        cmocka_unit_test_teardown(moves_during_a_stream_count_every_change_once, kill_leftovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

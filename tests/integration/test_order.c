/* The order worker against the real stack:
 *   - a long mixed stream of orders (bookings, amendments, cancellations,
 *     returns, stale events, duplicates, bad events) leaves the actuals per
 *     account and the rolled-up actuals per node, in PostgreSQL and Redis,
 *     as an independent model says; bad orders are dead-lettered;
 *   - the same with a worker killed by SIGKILL three times mid-stream;
 *   - an order closes the opportunity it names exactly once, with the
 *     opportunity worker running, whether the CRM's won event comes first,
 *     the order comes first, or the order comes before the deal was created;
 *   - tiers on a known revenue distribution split A/B/C/D as the 80/20 rule
 *     says (a first ranking raises nothing), a tier A account whose revenue
 *     stopped raises churn risk once, resolved when it buys again, and the
 *     tier change that purchase causes fires once and resolves by itself
 *     when its time to live has passed;
 *   - channel diversion and price dumping fire once per episode, count in
 *     sales quality and resolve after a quiet period. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "ka/v1/alert.pb-c.h"
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka_account_key.h"
#include "ka_redis.h"
#include "ka_validate.h"

#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL
#define NACCTS 5
#define NORDERS 40
#define NEVENTS 300
#define NSKUS 3

static const char *order_worker, *opp_worker;
static ka_config_t *cfg;
static ka_pg_t *pg;
static ka_producer_t *kp;
static pid_t live[2];
static pid_t scaled[3]; /* the scale-out test's instances */

typedef struct order_model {
    char id[64];
    int exists, booked, account, rep;
    int64_t qty[NSKUS], price[NSKUS]; /* qty 0: no line */
    int64_t last_ms, booked_ms;
} order_model_t;

typedef struct run {
    char sfx[40];
    char orders[128], opps[128], dlq[128], alerts[128], group[128], opp_group[128];
    char team[64], division[64], reps[2][64];
    char accts[NACCTS][96], acct_ids[NACCTS][KA_ACCOUNT_ID_LEN];
    order_model_t model[NORDERS];
    int64_t actual[NACCTS];       /* booked revenue per account */
    int64_t rep_total[2];         /* per rep, all months */
    int64_t clock_ms, clock_offset_ms;
    int produced, rejected, opp_produced;
    uint64_t seed;
    uint8_t **sent;
    size_t *sent_len;
    char **sent_key;
    int nsent;
    const char *extra[8]; /* more worker settings, NULL-terminated */
} run_t;

static run_t *current_run;

static uint32_t rnd(run_t *r, uint32_t n)
{
    r->seed = r->seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(r->seed >> 33) % n;
}

static int read_root(void *ud, const ka_pgres_t *res)
{
    snprintf(ud, 64, "%s", ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : "");
    return 0;
}

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

/* The run --------------------------------------------------------------------------- */

static void init_run(run_t *r, const char *tag, uint64_t seed)
{
    char err[KA_ERRSTR_SIZE], root[64] = "";
    memset(r, 0, sizeof *r);
    current_run = r;
    snprintf(r->sfx, sizeof r->sfx, "%s%s", tag, it_suffix());
    snprintf(r->orders, sizeof r->orders, "it.order.%s", r->sfx);
    snprintf(r->opps, sizeof r->opps, "it.order-opp.%s", r->sfx);
    snprintf(r->dlq, sizeof r->dlq, "it.order-dlq.%s", r->sfx);
    snprintf(r->alerts, sizeof r->alerts, "it.order-alert.%s", r->sfx);
    snprintf(r->group, sizeof r->group, "it-order-%s", r->sfx);
    snprintf(r->opp_group, sizeof r->opp_group, "it-order-opp-%s", r->sfx);
    r->seed = seed;
    r->clock_ms = ka_now_ms() - 20 * DAY_MS;
    const char *brokers = ka_config_str(cfg, "KA_KAFKA_BROKERS");
    if (ka_kafka_create_topic(brokers, r->orders, 3, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, r->opps, 3, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, r->dlq, 1, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, r->alerts, 1, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    /* A division of its own: one team of two reps. */
    if (ka_pg_query(pg, "SELECT id FROM org_node WHERE parent_id IS NULL", 0, NULL, read_root,
                    root, err, sizeof err) != KA_OK || !root[0])
        fail_msg("the org tree has no company: load one first (tests/run runs kactl load sample)");
    snprintf(r->division, 64, "odiv-%s", r->sfx);
    snprintf(r->team, 64, "oteam-%s", r->sfx);
    const char *div[] = {r->division, root};
    sql("INSERT INTO org_node (id, parent_id, kind, name) VALUES ($1, $2, 'division', 'D')", 2,
        div);
    const char *team[] = {r->team, r->division};
    sql("INSERT INTO org_node (id, parent_id, kind, name) VALUES ($1, $2, 'team', 'T')", 2, team);
    for (int i = 0; i < 2; i++) {
        snprintf(r->reps[i], 64, "orep%d-%s", i, r->sfx);
        const char *rep[] = {r->reps[i], r->team};
        sql("INSERT INTO org_node (id, parent_id, kind, name) VALUES ($1, $2, 'rep', 'r')", 2,
            rep);
    }
    for (int i = 0; i < NACCTS; i++) {
        char key[KA_ACCOUNT_KEY_MAX];
        ka_reject_t rej;
        snprintf(r->accts[i], sizeof r->accts[i], "Order Test %s Customer %d", r->sfx, i);
        assert_int_equal(ka_account_key(NULL, r->accts[i], key, sizeof key, &rej), KA_OK);
        ka_account_id(key, r->acct_ids[i]);
    }
}

static void free_run(run_t *r)
{
    for (int i = 0; i < r->nsent; i++) {
        free(r->sent[i]);
        free(r->sent_key[i]);
    }
    free(r->sent);
    free(r->sent_len);
    free(r->sent_key);
    r->sent = NULL;
    r->sent_len = NULL;
    r->sent_key = NULL;
    r->nsent = 0;
    current_run = NULL;
}

static pid_t spawn_order_worker(const run_t *r)
{
    static char s[12][200];
    const char *set[20];
    int n = 0;
    snprintf(s[0], 200, "KA_TOPIC_ORDER=%s", r->orders);
    snprintf(s[1], 200, "KA_TOPIC_OPPORTUNITY=%s", r->opps);
    snprintf(s[2], 200, "KA_TOPIC_DEADLETTER=%s", r->dlq);
    snprintf(s[3], 200, "KA_TOPIC_ALERT=%s", r->alerts);
    snprintf(s[4], 200, "KA_CONSUMER_GROUP=%s", r->group);
    snprintf(s[5], 200, "KA_CLOCK_OFFSET_MS=%lld", (long long)r->clock_offset_ms);
    snprintf(s[6], 200, "KA_BATCH_MAX_EVENTS=25");
    snprintf(s[7], 200, "KA_BATCH_MAX_MS=10");
    snprintf(s[8], 200, "KA_SCAN_INTERVAL_MS=200");
    snprintf(s[9], 200, "KA_TIER_INTERVAL_MS=200");
    for (int i = 0; i < 10; i++)
        set[n++] = s[i];
    for (int i = 0; r->extra[i]; i++)
        set[n++] = r->extra[i];
    set[n] = NULL;
    live[0] = it_spawn(order_worker, set);
    return live[0];
}

static pid_t spawn_opp_worker(const run_t *r)
{
    static char s[5][200];
    snprintf(s[0], 200, "KA_TOPIC_OPPORTUNITY=%s", r->opps);
    snprintf(s[1], 200, "KA_TOPIC_DEADLETTER=%s", r->dlq);
    snprintf(s[2], 200, "KA_TOPIC_ALERT=%s", r->alerts);
    snprintf(s[3], 200, "KA_CONSUMER_GROUP=%s", r->opp_group);
    snprintf(s[4], 200, "KA_BATCH_MAX_MS=10");
    const char *set[] = {s[0], s[1], s[2], s[3], s[4], NULL};
    live[1] = it_spawn(opp_worker, set);
    return live[1];
}

static void stop(pid_t pid, int sig)
{
    it_stop(pid, sig);
    for (int i = 0; i < 2; i++)
        if (live[i] == pid)
            live[i] = 0;
}

static void wait_offsets(const char *group, long long want)
{
    long long sum = it_pg_wait(pg,
                               "SELECT coalesce(sum(next_offset), 0) FROM consumer_offset "
                               "WHERE consumer_group = $1",
                               group, want, 90000);
    assert_int_equal(sum, want);
}

static void wait_consumed(const run_t *r)
{
    wait_offsets(r->group, r->produced);
}

/* Waits until this run's order worker finished scan `name` at a clock of
 * at least clock_ms. */
static void wait_scan(const run_t *r, const char *name, int64_t clock_ms)
{
    char at[24];
    snprintf(at, sizeof at, "%lld", (long long)clock_ms);
    const char *args[] = {name, r->group, at};
    for (int i = 0; i < 300; i++) {
        if (q_int("SELECT count(*) FROM scan_run WHERE name = $1 AND consumer_group = $2 "
                  "AND clock_at >= to_timestamp($3::bigint / 1000.0)", 3, args) == 1)
            return;
        usleep(100 * 1000);
    }
    fail_msg("no %s scan at clock %s within 30 s", name, at);
}

/* Events ------------------------------------------------------------------------------ */

static void send_raw(run_t *r, const char *topic, const char *key, uint8_t *buf, size_t len,
                     int keep)
{
    it_produce(kp, topic, key, buf, len);
    if (!keep) {
        free(buf);
        return;
    }
    r->sent = realloc(r->sent, (size_t)(r->nsent + 1) * sizeof *r->sent);
    r->sent_len = realloc(r->sent_len, (size_t)(r->nsent + 1) * sizeof *r->sent_len);
    r->sent_key = realloc(r->sent_key, (size_t)(r->nsent + 1) * sizeof *r->sent_key);
    r->sent[r->nsent] = buf;
    r->sent_len[r->nsent] = len;
    r->sent_key[r->nsent] = strdup(key);
    r->nsent++;
}

typedef struct order_spec {
    const char *id, *account, *rep, *opp, *dist, *region;
    int status; /* Ka__V1__OrderStatus */
    int64_t at_ms, booked_ms;
    int nlines;
    const char *sku[NSKUS];
    int64_t qty[NSKUS], price[NSKUS];
} order_spec_t;

static void send_order(run_t *r, const order_spec_t *o, int rejected)
{
    char event_id[128];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OrderEvent e = KA__V1__ORDER_EVENT__INIT;
    Ka__V1__AccountRef ref = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__LineItem lines[NSKUS], *lp[NSKUS];
    snprintf(event_id, sizeof event_id, "%s-%d", o->id, r->produced);
    h.event_id = event_id;
    h.occurred_at_ms = o->at_ms;
    h.producer = "erp";
    ref.name = (char *)o->account;
    e.header = &h;
    e.order_id = (char *)o->id;
    e.account = &ref;
    e.rep_id = (char *)o->rep;
    e.opportunity_id = (char *)o->opp;
    e.channel = o->dist ? KA__V1__CHANNEL__CHANNEL_DISTRIBUTOR : KA__V1__CHANNEL__CHANNEL_DIRECT;
    e.distributor_id = (char *)o->dist;
    e.ship_to_region = (char *)o->region;
    e.status = (Ka__V1__OrderStatus)o->status;
    e.booked_at_ms = o->booked_ms;
    for (int i = 0; i < o->nlines; i++) {
        Ka__V1__LineItem init = KA__V1__LINE_ITEM__INIT;
        lines[i] = init;
        lines[i].sku = (char *)o->sku[i];
        lines[i].quantity_milli = o->qty[i];
        lines[i].unit_price_minor = o->price[i];
        lp[i] = &lines[i];
    }
    e.n_lines = (size_t)o->nlines;
    e.lines = lp;
    size_t len = ka__v1__order_event__get_packed_size(&e);
    uint8_t *buf = malloc(len + 1);
    ka__v1__order_event__pack(&e, buf);
    send_raw(r, r->orders, o->id, buf, len, !rejected);
    r->produced++;
    r->rejected += rejected;
}

static const char *skus[NSKUS] = {"SKU-0001", "SKU-0002", "SKU-0003"};

static int64_t amount(int64_t qty_milli, int64_t price)
{
    return (qty_milli * price + 500) / 1000;
}

/* What an order counts, signed, into the model's actuals. */
static void model_count(run_t *r, const order_model_t *m, int sign)
{
    if (!m->exists || !m->booked)
        return;
    for (int k = 0; k < NSKUS; k++) {
        int64_t a = sign * amount(m->qty[k], m->price[k]);
        r->actual[m->account] += a;
        r->rep_total[m->rep] += a;
    }
}

/* One random order event, applied to the model by the domain rules. */
static void random_order(run_t *r)
{
    uint32_t dice = rnd(r, 100);
    if (dice < 5 && r->nsent > 0) { /* a re-delivered duplicate changes nothing */
        int k = (int)rnd(r, (uint32_t)r->nsent);
        it_produce(kp, r->orders, r->sent_key[k], r->sent[k], r->sent_len[k]);
        r->produced++;
        return;
    }
    order_model_t *m = &r->model[rnd(r, NORDERS)];
    order_spec_t o;
    memset(&o, 0, sizeof o);
    r->clock_ms += HOUR_MS;
    o.id = m->id;
    if (m->exists && dice < 10) { /* stale: older than what was applied; kept, not applied */
        o.account = r->accts[m->account];
        o.rep = r->reps[m->rep];
        o.status = KA__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED;
        o.at_ms = m->last_ms - HOUR_MS;
        o.booked_ms = m->booked_ms;
        send_order(r, &o, 0);
        return;
    }
    model_count(r, m, -1);
    if (!m->exists || dice < 60) { /* a booking, or an amendment of the lines */
        if (!m->exists) {
            m->account = (int)rnd(r, NACCTS);
            m->rep = (int)rnd(r, 2);
        }
        for (int k = 0; k < NSKUS; k++) {
            m->qty[k] = k == 0 || rnd(r, 2) ? 500 + rnd(r, 5000) : 0;
            m->price[k] = 100 + rnd(r, 100000);
            if (m->qty[k]) {
                o.sku[o.nlines] = skus[k];
                o.qty[o.nlines] = m->qty[k];
                o.price[o.nlines] = m->price[k];
                o.nlines++;
            }
        }
        m->exists = m->booked = 1;
        m->booked_ms = r->clock_ms;
        o.status = KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED;
    } else { /* cancelled or returned: the lines stay as they were */
        m->booked = 0;
        o.status = dice < 80 ? KA__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED
                             : KA__V1__ORDER_STATUS__ORDER_STATUS_RETURNED;
    }
    o.account = r->accts[m->account];
    o.rep = r->reps[m->rep];
    o.at_ms = r->clock_ms;
    o.booked_ms = m->booked_ms;
    m->last_ms = r->clock_ms;
    model_count(r, m, +1);
    send_order(r, &o, 0);
}

static void send_bad_orders(run_t *r)
{
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0x0f, 0x01};
    char id[96];
    it_produce(kp, r->orders, "garbage", garbage, sizeof garbage);
    r->produced++;
    r->rejected++;
    for (int k = 0; k < 5; k++) {
        order_spec_t o;
        memset(&o, 0, sizeof o);
        snprintf(id, sizeof id, "bad-%s-%d", r->sfx, k);
        o.id = id;
        o.account = r->accts[0];
        o.rep = r->reps[0];
        o.status = KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED;
        o.at_ms = o.booked_ms = r->clock_ms;
        o.nlines = 1;
        o.sku[0] = skus[0];
        o.qty[0] = 1000;
        o.price[0] = 100;
        switch (k) {
        case 0: o.nlines = 0; break;                        /* booked without lines */
        case 1: o.qty[0] = 0; break;                        /* no quantity */
        case 2: o.status = 9; break;                        /* unknown status */
        case 3: o.booked_ms = ka_now_ms() + 30 * DAY_MS; break;   /* in the future */
        case 4: o.account = NULL; break;                    /* no account */
        }
        send_order(r, &o, 1);
    }
}

/* Checks ------------------------------------------------------------------------------- */

typedef struct redis_months {
    char month[64][8];
    long long amount[64];
    int n;
} redis_months_t;

static void keep_month(void *ud, const char *field, const char *value)
{
    redis_months_t *m = ud;
    if (m->n < 64) {
        snprintf(m->month[m->n], sizeof m->month[0], "%s", field);
        m->amount[m->n++] = atoll(value);
    }
}

static void check_actuals(const run_t *r)
{
    for (int i = 0; i < NACCTS; i++) {
        const char *args[] = {r->acct_ids[i]};
        long long got = q_int("SELECT coalesce(sum(amount_minor), 0) FROM actual "
                              "WHERE account_id = $1", 1, args);
        if (got != r->actual[i])
            fail_msg("actuals of account %d: got %lld, want %lld", i, got,
                     (long long)r->actual[i]);
        /* a cancellation corrects the booking's month: no month goes negative */
        assert_int_equal(q_int("SELECT count(*) FROM actual WHERE account_id = $1 "
                               "AND (amount_minor < 0 OR quantity < 0)", 1, args), 0);
    }
    /* rolled up: each rep, the team and the division */
    for (int i = 0; i < 2; i++) {
        const char *args[] = {r->reps[i]};
        assert_int_equal(q_int("SELECT coalesce(sum(amount_minor), 0) FROM actual_rollup "
                               "WHERE node_id = $1", 1, args),
                         r->rep_total[i]);
    }
    const char *nodes[] = {r->team, r->division};
    for (int i = 0; i < 2; i++) {
        const char *args[] = {nodes[i]};
        assert_int_equal(q_int("SELECT coalesce(sum(amount_minor), 0) FROM actual_rollup "
                               "WHERE node_id = $1", 1, args),
                         r->rep_total[0] + r->rep_total[1]);
        /* and the rollup is the sum of the detail rows under the node */
        assert_int_equal(q_int("SELECT count(*) FROM (SELECT period_month, sum(amount_minor) s "
                               "FROM actual a JOIN org_closure c ON c.descendant_id = a.node_id "
                               "WHERE c.ancestor_id = $1 GROUP BY 1) d FULL JOIN "
                               "(SELECT period_month, amount_minor s FROM actual_rollup "
                               "WHERE node_id = $1) u USING (period_month) "
                               "WHERE d.s IS DISTINCT FROM u.s",
                               1, args),
                         0);
    }
    /* Redis: every month of the division as PostgreSQL has it */
    char err[KA_ERRSTR_SIZE], key[128];
    ka_redis_t *rds = ka_redis_connect(ka_config_str(cfg, "KA_REDIS_HOST"),
                                       (int)ka_config_int(cfg, "KA_REDIS_PORT"), 2000, err,
                                       sizeof err);
    assert_non_null(rds);
    redis_months_t got;
    memset(&got, 0, sizeof got);
    snprintf(key, sizeof key, "ka:actuals:%s", r->division);
    assert_int_equal(ka_redis_hgetall(rds, key, keep_month, &got, err, sizeof err), KA_OK);
    ka_redis_free(rds);
    const char *args[] = {r->division};
    assert_int_equal(got.n, q_int("SELECT count(*) FROM actual_rollup WHERE node_id = $1", 1,
                                  args));
    for (int i = 0; i < got.n; i++) {
        char month[16];
        snprintf(month, sizeof month, "%s-01", got.month[i]);
        const char *margs[] = {r->division, month};
        assert_int_equal(got.amount[i],
                         q_int("SELECT amount_minor FROM actual_rollup WHERE node_id = $1 "
                               "AND period_month = $2::date", 2, margs));
    }
}

static void check_dead_letters(const run_t *r)
{
    const char *g[] = {r->group};
    assert_int_equal(q_int("SELECT count(*) FROM dead_letter WHERE consumer_group = $1", 1, g),
                     r->rejected);
    assert_int_equal(q_int("SELECT count(DISTINCT reason) FROM dead_letter "
                           "WHERE consumer_group = $1", 1, g),
                     6);
}

static void check_stale_kept(const run_t *r)
{
    char pattern[96];
    snprintf(pattern, sizeof pattern, "o-%s-%%", r->sfx);
    const char *p[] = {pattern};
    assert_true(q_int("SELECT count(*) FROM sales_order_event WHERE order_id LIKE $1 "
                      "AND NOT applied AND not_applied_reason = 'stale'", 1, p) > 0);
}

/* Tests --------------------------------------------------------------------------------- */

static void play_stream(run_t *r)
{
    for (int i = 0; i < NORDERS; i++)
        snprintf(r->model[i].id, sizeof r->model[i].id, "o-%s-%d", r->sfx, i);
    send_bad_orders(r);
    for (int i = 0; i < NEVENTS; i++)
        random_order(r);
}

static void mixed_stream_matches_model(void **state)
{
    static run_t r;
    (void)state;
    init_run(&r, "m", 42);
    play_stream(&r);
    pid_t pid = spawn_order_worker(&r);
    wait_consumed(&r);
    stop(pid, SIGTERM);
    check_actuals(&r);
    check_dead_letters(&r);
    check_stale_kept(&r);
    free_run(&r);
}

static void sigkill_mid_stream_ends_in_the_same_state(void **state)
{
    static run_t r;
    (void)state;
    init_run(&r, "k", 42);
    play_stream(&r);
    for (int round = 1; round <= 3; round++) {
        pid_t pid = spawn_order_worker(&r);
        long long target = (long long)r.produced * round / 4, seen = 0;
        for (int waited = 0; waited < 60000 && seen < target; waited += 5) {
            seen = it_pg_int(pg, "SELECT coalesce(sum(next_offset), 0) FROM consumer_offset "
                                 "WHERE consumer_group = $1", r.group);
            usleep(5000);
        }
        stop(pid, SIGKILL);
        assert_true(seen < r.produced); /* it really died mid-stream */
    }
    pid_t pid = spawn_order_worker(&r);
    wait_consumed(&r);
    stop(pid, SIGTERM);
    check_actuals(&r);
    check_dead_letters(&r);
    free_run(&r);
}

/* Scale-out: three instances in one consumer group share the partitions;
 * one is killed mid-stream and the others take its partitions over from
 * the offsets stored with the state: nothing lost, nothing counted twice. */
static void three_instances_one_killed_mid_stream_match_the_model(void **state)
{
    static run_t r;
    (void)state;
    init_run(&r, "s", 42); /* the same stream as the single-worker runs */
    play_stream(&r);
    for (int i = 0; i < 3; i++) {
        scaled[i] = spawn_order_worker(&r);
        live[0] = 0;
    }
    long long seen = 0;
    for (int waited = 0; waited < 60000 && seen < r.produced / 3; waited += 5) {
        seen = it_pg_int(pg, "SELECT coalesce(sum(next_offset), 0) FROM consumer_offset "
                             "WHERE consumer_group = $1", r.group);
        usleep(5000);
    }
    it_stop(scaled[1], SIGKILL);
    scaled[1] = 0;
    assert_true(seen < r.produced); /* it died mid-stream */
    wait_consumed(&r);
    for (int i = 0; i < 3; i += 2) {
        it_stop(scaled[i], SIGTERM);
        scaled[i] = 0;
    }
    check_actuals(&r);
    check_dead_letters(&r);
    free_run(&r);
}

/* An opportunity event to the run's opportunity topic. */
static void send_opp(run_t *r, const char *opp, int kind, int64_t at)
{
    char event_id[128];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__OpportunityCreated c = KA__V1__OPPORTUNITY_CREATED__INIT;
    Ka__V1__OpportunityWon won = KA__V1__OPPORTUNITY_WON__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    snprintf(event_id, sizeof event_id, "%s-%d", opp, kind);
    h.event_id = event_id;
    h.occurred_at_ms = at;
    e.header = &h;
    e.opportunity_id = (char *)opp;
    e.actor_id = r->reps[0];
    if (kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED) {
        a.name = r->accts[0];
        c.account = &a;
        c.owner_rep_id = r->reps[0];
        c.stage_code = "03";
        c.amount_minor = 5000000;
        e.created = &c;
    } else {
        e.won = &won;
    }
    e.kind_case = (Ka__V1__OpportunityEvent__KindCase)kind;
    size_t len = ka__v1__opportunity_event__get_packed_size(&e);
    uint8_t *buf = malloc(len + 1);
    ka__v1__opportunity_event__pack(&e, buf);
    send_raw(r, r->opps, opp, buf, len, 0);
    r->opp_produced++;
}

static void book(run_t *r, const char *id, int account, const char *opp, const char *dist,
                 const char *region, int64_t price, int64_t at)
{
    order_spec_t o;
    memset(&o, 0, sizeof o);
    o.id = id;
    o.account = r->accts[account];
    o.rep = r->reps[0];
    o.opp = opp;
    o.dist = dist;
    o.region = region;
    o.status = KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED;
    o.at_ms = o.booked_ms = at;
    o.nlines = 1;
    o.sku[0] = skus[0];
    o.qty[0] = 1000;
    o.price[0] = price;
    send_order(r, &o, 0);
}

static long long won_entries(const char *opp)
{
    const char *args[] = {opp};
    return q_int("SELECT count(*) FROM opportunity_stage_history WHERE opportunity_id = $1 "
                 "AND to_stage = '08'", 1, args);
}

static void an_order_closes_its_opportunity_once_in_either_order(void **state)
{
    static run_t r;
    char x1[64], x2[64], x3[64], o1[64], o2[64], o3[64];
    (void)state;
    init_run(&r, "w", 1);
    snprintf(x1, sizeof x1, "opp-%s-1", r.sfx);
    snprintf(x2, sizeof x2, "opp-%s-2", r.sfx);
    snprintf(x3, sizeof x3, "opp-%s-3", r.sfx);
    snprintf(o1, sizeof o1, "ord-%s-1", r.sfx);
    snprintf(o2, sizeof o2, "ord-%s-2", r.sfx);
    snprintf(o3, sizeof o3, "ord-%s-3", r.sfx);
    int64_t t = ka_now_ms() - 5 * DAY_MS;
    pid_t opp = spawn_opp_worker(&r), ord = spawn_order_worker(&r);

    /* 1: created, then its order closes it. 2: created, won by the CRM,
     * then its order comes too. */
    send_opp(&r, x1, KA__V1__OPPORTUNITY_EVENT__KIND_CREATED, t);
    send_opp(&r, x2, KA__V1__OPPORTUNITY_EVENT__KIND_CREATED, t);
    send_opp(&r, x2, KA__V1__OPPORTUNITY_EVENT__KIND_WON, t + HOUR_MS);
    wait_offsets(r.opp_group, r.opp_produced);
    book(&r, o1, 0, x1, NULL, NULL, 1000, t + 2 * HOUR_MS);
    book(&r, o2, 0, x2, NULL, NULL, 1000, t + 2 * HOUR_MS);
    /* 3: the order comes before the deal reached us. */
    book(&r, o3, 0, x3, NULL, NULL, 1000, t + 2 * HOUR_MS);
    wait_consumed(&r);
    wait_offsets(r.opp_group, r.opp_produced + 3); /* the orders' three won events */
    send_opp(&r, x3, KA__V1__OPPORTUNITY_EVENT__KIND_CREATED, t);
    wait_offsets(r.opp_group, r.opp_produced + 3);
    stop(ord, SIGTERM);
    stop(opp, SIGTERM);

    const char *xs[] = {x1, x2, x3};
    for (int i = 0; i < 3; i++) {
        const char *args[] = {xs[i]};
        assert_int_equal(q_int("SELECT count(*) FROM opportunity WHERE id = $1 "
                               "AND status = 'won'", 1, args), 1);
        assert_int_equal(won_entries(xs[i]), 1);
    }
    const char *a2[] = {x2};
    assert_int_equal(q_int("SELECT count(*) FROM opportunity_event WHERE opportunity_id = $1 "
                           "AND not_applied_reason = 'already_closed'", 1, a2), 1);
    const char *a3[] = {x3};
    assert_int_equal(q_int("SELECT count(*) FROM opportunity_event WHERE opportunity_id = $1 "
                           "AND not_applied_reason = 'awaiting_created'", 1, a3), 1);
    /* nothing of them is left open in the funnel */
    const char *rep[] = {r.reps[0]};
    assert_int_equal(q_int("SELECT coalesce(sum(open_count), 0) FROM funnel_state "
                           "WHERE node_id = $1", 1, rep), 0);
    assert_int_equal(q_int("SELECT count(*) FROM dead_letter WHERE consumer_group = $1", 1, rep),
                     0);
    free_run(&r);
}

static long long alert_rows(const char *type, const char *subject, const char *transition)
{
    const char *args[] = {type, subject, transition};
    return q_int("SELECT count(*) FROM alert_history h JOIN alert_state s "
                 "ON s.fingerprint = h.fingerprint WHERE h.type = $1 AND s.subject_id = $2 "
                 "AND h.transition = $3", 3, args);
}

static void wait_alert_rows(const char *type, const char *subject, const char *transition,
                            long long want)
{
    for (int i = 0; i < 300 && alert_rows(type, subject, transition) < want; i++)
        usleep(100 * 1000);
    assert_int_equal(alert_rows(type, subject, transition), want);
}

static void tiers_split_by_the_80_20_rule_and_churn_fires_once(void **state)
{
    static run_t r;
    static const long long units[] = {45, 25, 12, 8, 4, 3, 2, 1};
    static const char *want[] = {"A", "A", "A", "B", "B", "B", "C", "C", "D"};
    char accts[9][96], ids[9][KA_ACCOUNT_ID_LEN], order[96];
    (void)state;
    init_run(&r, "t", 3);
    /* The ranking covers the whole company: run it 9 years ahead, where
     * only this test books (earlier runs' rows there are cleared). */
    r.clock_offset_ms = 9 * 365 * DAY_MS;
    int64_t now = ka_now_ms() + r.clock_offset_ms;
    sql("DELETE FROM actual WHERE period_month >= date '2031-01-01'", 0, NULL);
    for (int i = 0; i < 9; i++) {
        char key[KA_ACCOUNT_KEY_MAX];
        ka_reject_t rej;
        snprintf(accts[i], sizeof accts[i], "Tier Test %s Customer %d", r.sfx, i);
        assert_int_equal(ka_account_key(NULL, accts[i], key, sizeof key, &rej), KA_OK);
        ka_account_id(key, ids[i]);
        snprintf(r.accts[0], sizeof r.accts[0], "%.90s", accts[i]);
        snprintf(order, sizeof order, "tier-%s-%d", r.sfx, i);
        /* revenue in units of 10^11 minor; 4 months ago: in the previous 90 days */
        book(&r, order, 0, NULL, NULL, NULL, i < 8 ? units[i] * 100000000000LL : 5000,
             now - 120 * DAY_MS);
    }
    /* the ninth account's order is cancelled: no revenue, tier D */
    order_spec_t c;
    memset(&c, 0, sizeof c);
    c.id = order;
    c.account = accts[8];
    c.rep = r.reps[0];
    c.status = KA__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED;
    c.at_ms = now - 100 * DAY_MS;
    c.booked_ms = now - 120 * DAY_MS;
    send_order(&r, &c, 0);
    pid_t pid = spawn_order_worker(&r);
    wait_consumed(&r);
    for (int round = 0; round < 100; round++) { /* a first ranking may take a few rounds */
        int ok = 1;
        for (int i = 0; i < 9 && ok; i++) {
            const char *args[] = {ids[i], want[i]};
            ok = q_int("SELECT count(*) FROM account WHERE id = $1 AND tier = $2", 2, args) == 1;
        }
        if (ok)
            break;
        usleep(200 * 1000);
    }
    for (int i = 0; i < 9; i++) {
        const char *args[] = {ids[i], want[i]};
        if (q_int("SELECT count(*) FROM account WHERE id = $1 AND tier = $2", 2, args) != 1)
            fail_msg("account %d is not tier %s", i, want[i]);
    }
    /* A first ranking is no change: kept in the history, no alert. */
    for (int i = 0; i < 9; i++) {
        const char *args[] = {ids[i], want[i]};
        assert_int_equal(q_int("SELECT count(*) FROM account_tier_history WHERE account_id = $1 "
                               "AND previous_tier IS NULL AND tier = $2", 2, args), 1);
        assert_int_equal(q_int("SELECT count(*) FROM alert_state WHERE subject_id = $1 "
                               "AND type = 'tier_changed'", 1, args), 0);
    }

    /* Tier A, bought 4 months ago and nothing since: churn risk, once. */
    wait_alert_rows("churn_risk", ids[0], "firing", 1);
    const char *det[] = {ids[0]};
    assert_int_equal(q_int("SELECT count(*) FROM alert_state WHERE subject_id = $1 AND "
                           "type = 'churn_risk' AND details->>'reasons' = 'revenue_down' "
                           "AND severity = 'critical'", 1, det), 1);
    assert_int_equal(alert_rows("churn_risk", ids[8], "firing"), 0); /* D: not watched */
    /* It buys again: resolved, once. */
    snprintf(r.accts[0], sizeof r.accts[0], "%.90s", accts[0]);
    snprintf(order, sizeof order, "tier-%s-again", r.sfx);
    book(&r, order, 0, NULL, NULL, NULL, units[0] * 100000000000LL, now - DAY_MS);
    wait_consumed(&r);
    wait_alert_rows("churn_risk", ids[0], "resolved", 1);
    wait_scan(&r, "churn_risk", ka_now_ms() + r.clock_offset_ms + 500);
    assert_int_equal(alert_rows("churn_risk", ids[0], "firing"), 1);
    assert_int_equal(alert_rows("churn_risk", ids[0], "resolved"), 1);

    /* Its new order (145 units in all now) moves account 5 from B to C: a
     * point event, firing with its end, the default time to live (7 days)
     * after its start. */
    wait_alert_rows("tier_changed", ids[5], "firing", 1);
    const char *a5[] = {ids[5]};
    assert_int_equal(q_int("SELECT count(*) FROM account WHERE id = $1 AND tier = 'C'", 1, a5), 1);
    assert_int_equal(q_int("SELECT count(*) FROM account_tier_history WHERE account_id = $1 "
                           "AND previous_tier = 'B' AND tier = 'C'", 1, a5), 1);
    assert_int_equal(q_int("SELECT count(*) FROM alert_history WHERE type = 'tier_changed' "
                           "AND details->>'account_id' = $1 AND transition = 'firing' "
                           "AND ends_at = starts_at + interval '7 days'", 1, a5), 1);
    it_msgs_t got = it_consume_all(cfg, r.alerts, 1000000, 8000);
    int sent = 0;
    for (size_t i = 0; i < got.n; i++) {
        Ka__V1__AlertEvent *a =
            ka__v1__alert_event__unpack(NULL, got.m[i]->len, got.m[i]->payload);
        assert_non_null(a);
        if (a->type == KA__V1__ALERT_TYPE__ALERT_TYPE_TIER_CHANGED &&
            strcmp(a->subject_id, ids[5]) == 0) {
            assert_int_equal(a->status, KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING);
            assert_int_equal(a->ends_at_ms - a->starts_at_ms, 7 * DAY_MS);
            sent++;
        }
        ka__v1__alert_event__free_unpacked(a, NULL);
    }
    it_free_msgs(&got);
    assert_int_equal(sent, 1);
    assert_int_equal(alert_rows("tier_changed", ids[5], "resolved"), 0);
    for (int i = 0; i < 9; i++) /* nothing else changed */
        if (i != 5)
            assert_int_equal(alert_rows("tier_changed", ids[i], "firing"), 0);
    stop(pid, SIGTERM);

    /* Eight days on, the time to live has passed: resolved at its end, once. */
    r.clock_offset_ms += 8 * DAY_MS;
    pid = spawn_order_worker(&r);
    wait_alert_rows("tier_changed", ids[5], "resolved", 1);
    wait_scan(&r, "tiers", ka_now_ms() + r.clock_offset_ms + 500);
    stop(pid, SIGTERM);
    assert_int_equal(alert_rows("tier_changed", ids[5], "firing"), 1);
    assert_int_equal(alert_rows("tier_changed", ids[5], "resolved"), 1);
    assert_int_equal(q_int("SELECT count(*) FROM alert_state WHERE subject_id = $1 "
                           "AND type = 'tier_changed' AND status = 'resolved' "
                           "AND ends_at = starts_at + interval '7 days'", 1, a5), 1);
    free_run(&r);
}

static void channel_alerts_fire_once_count_and_resolve_after_quiet(void **state)
{
    static run_t r;
    char dist[64], sku_floor[64], o[4][96];
    (void)state;
    init_run(&r, "c", 4);
    snprintf(dist, sizeof dist, "dist-%s", r.sfx);
    const char *d[] = {dist};
    sql("INSERT INTO distributor (id, name) VALUES ($1, 'D')", 1, d);
    sql("INSERT INTO distributor_territory (distributor_id, region_code) VALUES ($1, 'R1')", 1,
        d);
    snprintf(sku_floor, sizeof sku_floor, "%s", skus[0]);
    const char *f[] = {dist, sku_floor};
    sql("INSERT INTO product (sku, name, unit) VALUES ($1, 'p', 'pc') ON CONFLICT DO NOTHING", 1,
        f + 1);
    sql("INSERT INTO distributor_floor_price (distributor_id, sku, floor_price_minor) "
        "VALUES ($1, $2, 100000)", 2, f);
    for (int i = 0; i < 4; i++)
        snprintf(o[i], sizeof o[i], "ch-%s-%d", r.sfx, i);
    int64_t now = ka_now_ms();
    static const char *quiet = "KA_CHANNEL_QUIET_DAYS=1";
    r.extra[0] = quiet;
    /* Two shipments outside the territory and one under the floor, days ago. */
    book(&r, o[0], 0, NULL, dist, "R2", 120000, now - 3 * DAY_MS);
    book(&r, o[1], 0, NULL, dist, "R2", 120000, now - 2 * DAY_MS);
    book(&r, o[2], 0, NULL, dist, "R1", 80000, now - 2 * DAY_MS);
    pid_t pid = spawn_order_worker(&r);
    wait_consumed(&r);
    /* Every episode is over after a quiet day. The one dumping is one
     * episode; the two diversions are one, or two when a scan fell between
     * their batches (replayed history: each was already older than the quiet
     * period when it arrived). */
    wait_alert_rows("price_dumping", dist, "resolved", 1);
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM alert_state WHERE subject_id = $1 "
                                    "AND status = 'firing'", dist, 0, 30000),
                     0);
    long long diversions = alert_rows("channel_diversion", dist, "firing");
    assert_true(diversions == 1 || diversions == 2);
    assert_int_equal(alert_rows("channel_diversion", dist, "resolved"), diversions);
    assert_int_equal(alert_rows("price_dumping", dist, "firing"), 1);
    assert_int_equal(q_int("SELECT sum(order_count) FROM distributor_sales_quality "
                           "WHERE distributor_id = $1", 1, d), 3);
    assert_int_equal(q_int("SELECT sum(diversion_count) FROM distributor_sales_quality "
                           "WHERE distributor_id = $1", 1, d), 2);
    assert_int_equal(q_int("SELECT sum(dumping_count) FROM distributor_sales_quality "
                           "WHERE distributor_id = $1", 1, d), 1);
    assert_int_equal(q_int("SELECT count(*) FROM distributor_violation "
                           "WHERE distributor_id = $1", 1, d), 3);
    /* A new diversion today: a new episode that stays open. */
    book(&r, o[3], 0, NULL, dist, "R3", 120000, now - HOUR_MS);
    wait_consumed(&r);
    wait_alert_rows("channel_diversion", dist, "firing", diversions + 1);
    wait_scan(&r, "channel", ka_now_ms() + 500);
    stop(pid, SIGTERM);
    assert_int_equal(alert_rows("channel_diversion", dist, "resolved"), diversions);
    assert_int_equal(q_int("SELECT count(*) FROM alert_state WHERE subject_id = $1 AND "
                           "type = 'channel_diversion' AND status = 'firing'", 1, d), 1);
    free_run(&r);
}

static int setup(void **state)
{
    (void)state;
    it_open("it-order", &cfg, &pg, &kp);
    return 0;
}

static int kill_leftovers(void **state)
{
    (void)state;
    it_kill_all(live, 2);
    it_kill_all(scaled, 3);
    if (current_run)
        free_run(current_run);
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
    if (argc < 3) {
        fprintf(stderr, "usage: test_order PATH-TO-order-worker PATH-TO-opportunity-worker\n");
        return 2;
    }
    order_worker = argv[1];
    opp_worker = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(mixed_stream_matches_model, kill_leftovers),
        cmocka_unit_test_teardown(sigkill_mid_stream_ends_in_the_same_state, kill_leftovers),
        cmocka_unit_test_teardown(three_instances_one_killed_mid_stream_match_the_model,
                                  kill_leftovers),
        cmocka_unit_test_teardown(an_order_closes_its_opportunity_once_in_either_order,
                                  kill_leftovers),
        cmocka_unit_test_teardown(tiers_split_by_the_80_20_rule_and_churn_fires_once,
                                  kill_leftovers),
        cmocka_unit_test_teardown(channel_alerts_fire_once_count_and_resolve_after_quiet,
                                  kill_leftovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

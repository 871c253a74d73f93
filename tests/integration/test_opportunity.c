/* The opportunity worker against the real stack: a long mixed stream of
 * opportunity events (stage moves and regressions, updates, wins, losses,
 * reopenings, authorized and unauthorized owner changes, stale events and
 * duplicates) ends with
 *   - every opportunity as an independent model in this test says,
 *   - the funnel in PostgreSQL equal to a recomputation from the
 *     opportunities table, rolled up the org tree,
 *   - Redis equal to PostgreSQL,
 *   - the unauthorized changes and the bad events on the dead-letter topic;
 * and a worker killed with SIGKILL mid-stream and restarted ends in the same
 * state. */
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
#include "ka_account_key.h"
#include "ka_redis.h"
#include "ka_validate.h"

#define NREPS 4
#define NOPPS 60
#define NEVENTS 500

static const char *worker_path;

typedef struct model {
    char id[64];
    int owner; /* rep index */
    int stage; /* 1..7 open stages; 8 won; 9 lost (the LOST stage) */
    int64_t amount;
    int64_t last_ms;
} model_t;

typedef struct run {
    char sfx[40];
    char topic[128], dlq[128], alerts[128], group[128];
    char reps[NREPS][64], teams[2][64], region[64], division[64];
    char team_mgr[2][64], region_mgr[64];
    model_t opps[NOPPS];
    int64_t clock_ms;
    const char *account; /* of the opportunities simple_event creates */
    int produced, rejected_unauthorized, rejected_bad;
    uint64_t seed;
    uint8_t **sent; /* every encoded event, for duplicates */
    size_t *sent_len;
    char **sent_key;
    int nsent;
} run_t;

static ka_config_t *cfg;
static ka_pg_t *pg;
static ka_producer_t *kp;

static uint32_t rnd(run_t *r, uint32_t n)
{
    r->seed = r->seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(r->seed >> 33) % n;
}

static void sql(const char *q, const char *p1)
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_param_t p = {p1, 0, 0};
    if (ka_pg_query(pg, q, p1 ? 1 : 0, &p, NULL, NULL, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", q, err);
}

static void sql_args(const char *q, int n, const char **args)
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_param_t p[8];
    for (int i = 0; i < n; i++)
        p[i] = (ka_pg_param_t){args[i], 0, 0};
    if (ka_pg_query(pg, q, n, p, NULL, NULL, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", q, err);
}

static int read_root(void *ud, const ka_pgres_t *res)
{
    snprintf(ud, 64, "%s", ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : "");
    return 0;
}

/* A division of its own under the test database's company (the sample's):
 * its own managers, two teams of two reps. */
static void make_org(run_t *r)
{
    char err[KA_ERRSTR_SIZE], root[64] = "";
    if (ka_pg_query(pg, "SELECT id FROM org_node WHERE parent_id IS NULL", 0, NULL, read_root,
                    root, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    if (!root[0]) /* one company per database: the test database's is the sample's */
        fail_msg("the org tree has no company: load one first (tests/run runs kactl load sample)");
    snprintf(r->division, 64, "div-%s", r->sfx);
    snprintf(r->region, 64, "reg-%s", r->sfx);
    snprintf(r->region_mgr, 64, "u-reg-%s", r->sfx);
    const char *div[] = {r->division, root};
    sql_args("INSERT INTO org_node (id, parent_id, kind, name) VALUES ($1, $2, 'division', 'D')",
             2, div);
    sql("INSERT INTO app_user (id, display_name) VALUES ($1, 'region manager')", r->region_mgr);
    const char *reg[] = {r->region, r->division, r->region_mgr};
    sql_args("INSERT INTO org_node (id, parent_id, kind, name, manager_user_id) "
             "VALUES ($1, $2, 'region', 'R', $3)", 3, reg);
    for (int t = 0; t < 2; t++) {
        snprintf(r->teams[t], 64, "team%d-%s", t, r->sfx);
        snprintf(r->team_mgr[t], 64, "u-team%d-%s", t, r->sfx);
        sql("INSERT INTO app_user (id, display_name) VALUES ($1, 'team manager')", r->team_mgr[t]);
        const char *team[] = {r->teams[t], r->region, r->team_mgr[t]};
        sql_args("INSERT INTO org_node (id, parent_id, kind, name, manager_user_id) "
                 "VALUES ($1, $2, 'team', 'T', $3)", 3, team);
        for (int k = 0; k < 2; k++) {
            int i = t * 2 + k;
            snprintf(r->reps[i], 64, "rep%d-%s", i, r->sfx);
            const char *rep[] = {r->reps[i], r->teams[t]};
            sql_args("INSERT INTO org_node (id, parent_id, kind, name) VALUES ($1, $2, 'rep', 'r')",
                     2, rep);
        }
    }
}

/* Rejected events stay out of the pool the duplicates are drawn from: a
 * re-delivered rejected event is dead-lettered again, by design. */
static void send_event_as(run_t *r, Ka__V1__OpportunityEvent *e, const char *key, int rejected)
{
    size_t len = ka__v1__opportunity_event__get_packed_size(e);
    uint8_t *buf = malloc(len + 1);
    ka__v1__opportunity_event__pack(e, buf);
    it_produce(kp, r->topic, key, buf, len);
    r->produced++;
    if (rejected) {
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

static void send_event(run_t *r, Ka__V1__OpportunityEvent *e, const char *key)
{
    send_event_as(r, e, key, 0);
}

static void stage_code(int stage, char out[8])
{
    if (stage == 9)
        snprintf(out, 8, "LOST");
    else
        snprintf(out, 8, "%02d", stage);
}

/* Produces one random event for a random opportunity and updates the model
 * by the domain rules, independently of the worker's code. */
static void random_event(run_t *r, int n)
{
    model_t *m = &r->opps[rnd(r, NOPPS)];
    char event_id[96], code[8];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__StageChanged sc = KA__V1__STAGE_CHANGED__INIT;
    Ka__V1__OpportunityUpdated up = KA__V1__OPPORTUNITY_UPDATED__INIT;
    Ka__V1__OwnerChanged oc = KA__V1__OWNER_CHANGED__INIT;
    Ka__V1__OpportunityWon won = KA__V1__OPPORTUNITY_WON__INIT;
    Ka__V1__OpportunityLost lost = KA__V1__OPPORTUNITY_LOST__INIT;
    Ka__V1__OpportunityReopened reo = KA__V1__OPPORTUNITY_REOPENED__INIT;
    int open = m->stage <= 7;
    uint32_t dice = rnd(r, 100);

    if (dice < 6 && r->nsent > 0) { /* a re-delivered duplicate changes nothing */
        int k = (int)rnd(r, (uint32_t)r->nsent);
        it_produce(kp, r->topic, r->sent_key[k], r->sent[k], r->sent_len[k]);
        r->produced++;
        return;
    }
    r->clock_ms += 1000;
    snprintf(event_id, sizeof event_id, "%s-e%d", m->id, n);
    h.event_id = event_id;
    h.occurred_at_ms = r->clock_ms;
    h.producer = "it";
    e.header = &h;
    e.opportunity_id = m->id;
    e.actor_id = r->reps[m->owner];

    if (dice < 12) { /* stale: older than what was applied; recorded, not applied */
        h.occurred_at_ms = m->last_ms - 60000;
        sc.to_stage_code = "07";
        e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED;
        e.stage_changed = &sc;
        send_event(r, &e, m->id);
        return;
    }
    if (dice < 22) { /* owner change by the team manager or the region manager */
        int to = (int)rnd(r, NREPS);
        int unauthorized = rnd(r, 3) == 0;
        int team = m->owner / 2;
        e.actor_id = unauthorized ? r->team_mgr[1 - team] : rnd(r, 2) ? r->team_mgr[team] : r->region_mgr;
        oc.new_owner_rep_id = r->reps[to];
        e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED;
        e.owner_changed = &oc;
        send_event_as(r, &e, m->id, unauthorized);
        if (unauthorized) {
            r->rejected_unauthorized++;
        } else {
            m->owner = to;
            m->last_ms = r->clock_ms;
        }
        return;
    }
    if (open && dice < 55) {
        int to = 1 + (int)rnd(r, 7); /* forward and back: regressions happen */
        stage_code(to, code);
        sc.to_stage_code = code;
        e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED;
        e.stage_changed = &sc;
        m->stage = to;
    } else if (dice < 70) {
        up.amount_minor_present_case = KA__V1__OPPORTUNITY_UPDATED__AMOUNT_MINOR_PRESENT_AMOUNT_MINOR;
        up.amount_minor = 100000 * (1 + (int64_t)rnd(r, 500));
        e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_UPDATED;
        e.updated = &up;
        m->amount = up.amount_minor;
    } else if (open && dice < 80) {
        e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_WON;
        e.won = &won;
        m->stage = 8;
    } else if (open) {
        lost.reason = KA__V1__LOST_REASON__LOST_REASON_COMPETITOR;
        lost.reason_text = "went with a rival";
        e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_LOST;
        e.lost = &lost;
        m->stage = 9;
    } else {
        reo.stage_code = "03";
        e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_REOPENED;
        e.reopened = &reo;
        m->stage = 3;
    }
    m->last_ms = r->clock_ms;
    send_event(r, &e, m->id);
}

static void create_all(run_t *r)
{
    char event_id[96], code[8], account[64];
    for (int i = 0; i < NOPPS; i++) {
        model_t *m = &r->opps[i];
        Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
        Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
        Ka__V1__OpportunityCreated c = KA__V1__OPPORTUNITY_CREATED__INIT;
        Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
        Ka__V1__LineItem line = KA__V1__LINE_ITEM__INIT;
        Ka__V1__LineItem *lines[] = {&line};
        snprintf(m->id, sizeof m->id, "opp-%s-%d", r->sfx, i);
        m->owner = (int)rnd(r, NREPS);
        m->stage = 1 + (int)rnd(r, 4);
        m->amount = 100000 * (1 + (int64_t)rnd(r, 500));
        r->clock_ms += 1000;
        m->last_ms = r->clock_ms;
        snprintf(event_id, sizeof event_id, "%s-created", m->id);
        /* two spellings of one company must end as one account */
        snprintf(account, sizeof account, i % 2 ? "ＡＣＭＥ %s  Ltd" : "acme %s ltd", r->sfx);
        stage_code(m->stage, code);
        h.event_id = event_id;
        h.occurred_at_ms = r->clock_ms;
        a.name = account;
        line.sku = "SKU-1";
        line.quantity_milli = 2500;
        line.unit_price_minor = 40000;
        c.account = &a;
        c.owner_rep_id = r->reps[m->owner];
        c.stage_code = code;
        c.amount_minor = m->amount;
        c.expected_close_date = "2026-12-31";
        c.n_lines = 1;
        c.lines = lines;
        c.sales_mode = KA__V1__SALES_MODE__SALES_MODE_DIRECT;
        e.header = &h;
        e.opportunity_id = m->id;
        e.actor_id = r->reps[m->owner];
        e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_CREATED;
        e.created = &c;
        send_event(r, &e, m->id);
    }
}

/* Bad input: each must reach the dead-letter topic; the worker goes on. */
static void send_bad_events(run_t *r)
{
    static const uint8_t garbage[] = {0xff, 0x01, 0x02, 0xff, 0xff};
    char id[96];
    it_produce(kp, r->topic, "bad", garbage, sizeof garbage);
    r->produced++;
    r->rejected_bad++;
    for (int k = 0; k < 6; k++) {
        Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
        Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
        Ka__V1__OpportunityCreated c = KA__V1__OPPORTUNITY_CREATED__INIT;
        Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
        Ka__V1__LineItem line = KA__V1__LINE_ITEM__INIT;
        Ka__V1__LineItem **many = calloc(300, sizeof *many);
        snprintf(id, sizeof id, "bad-%s-%d", r->sfx, k);
        h.event_id = id;
        h.occurred_at_ms = r->clock_ms;
        a.name = "Bad Input Co";
        c.account = &a;
        c.owner_rep_id = r->reps[0];
        c.stage_code = "01";
        c.amount_minor = 1000;
        e.header = &h;
        e.opportunity_id = id;
        e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_CREATED;
        e.created = &c;
        switch (k) {
        case 0: e.opportunity_id = ""; break;              /* missing id */
        case 1: c.stage_code = "42"; break;                /* not in the funnel */
        case 2: c.amount_minor = -5; break;                /* negative amount */
        case 3: c.sales_mode = (Ka__V1__SalesMode)77; break; /* unknown enum */
        case 4:                                            /* oversize list */
            for (int i = 0; i < 300; i++)
                many[i] = &line;
            line.sku = "S";
            line.quantity_milli = 1;
            c.n_lines = 300;
            c.lines = many;
            break;
        case 5: a.name = "\xc3\x28 broken"; break;          /* invalid UTF-8 */
        }
        send_event_as(r, &e, id, 1);
        free(many);
        r->rejected_bad++;
    }
}

static pid_t live_worker; /* killed by the teardown if a test fails early */

static pid_t spawn_worker(const run_t *r)
{
    static char s[7][200];
    snprintf(s[0], 200, "KA_TOPIC_OPPORTUNITY=%s", r->topic);
    snprintf(s[1], 200, "KA_TOPIC_DEADLETTER=%s", r->dlq);
    snprintf(s[2], 200, "KA_TOPIC_ALERT=%s", r->alerts);
    snprintf(s[3], 200, "KA_CONSUMER_GROUP=%s", r->group);
    snprintf(s[4], 200, "KA_BATCH_MAX_EVENTS=20");
    snprintf(s[5], 200, "KA_BATCH_MAX_MS=10");
    snprintf(s[6], 200, "KA_SCAN_INTERVAL_MS=200");
    const char *set[] = {s[0], s[1], s[2], s[3], s[4], s[5], s[6], NULL};
    live_worker = it_spawn(worker_path, set);
    return live_worker;
}

static void stop_worker(pid_t pid, int sig)
{
    it_stop(pid, sig);
    live_worker = 0;
}

static run_t *current_run;

static void init_run(run_t *r, const char *tag, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    current_run = r;
    char err[KA_ERRSTR_SIZE];
    snprintf(r->sfx, sizeof r->sfx, "%s%s", tag, it_suffix());
    snprintf(r->topic, sizeof r->topic, "it.opp.%s", r->sfx);
    snprintf(r->dlq, sizeof r->dlq, "it.opp-dlq.%s", r->sfx);
    snprintf(r->alerts, sizeof r->alerts, "it.opp-alert.%s", r->sfx);
    snprintf(r->group, sizeof r->group, "it-opp-%s", r->sfx);
    r->seed = seed;
    r->clock_ms = ka_now_ms() - 10LL * 86400000;
    const char *brokers = ka_config_str(cfg, "KA_KAFKA_BROKERS");
    if (ka_kafka_create_topic(brokers, r->topic, 3, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, r->dlq, 1, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, r->alerts, 1, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    make_org(r);
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

static void wait_consumed(const run_t *r)
{
    long long sum = it_pg_wait(pg,
                               "SELECT coalesce(sum(next_offset), 0) FROM consumer_offset "
                               "WHERE consumer_group = $1",
                               r->group, r->produced, 90000);
    assert_int_equal(sum, r->produced);
}

/* Every opportunity is as the model says. */
static void check_model(const run_t *r)
{
    char q[512], code[8];
    for (int i = 0; i < NOPPS; i++) {
        const model_t *m = &r->opps[i];
        stage_code(m->stage, code);
        const char *status = m->stage == 8 ? "won" : m->stage == 9 ? "lost" : "open";
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM opportunity WHERE id = $1 AND owner_rep_id = '%s' "
                 "AND stage_code = '%s' AND status = '%s' AND amount_minor = %lld",
                 r->reps[m->owner], code, status, (long long)m->amount);
        if (it_pg_int(pg, q, m->id) != 1)
            fail_msg("opportunity %s differs from the model (owner %s, stage %s, %s, %lld)",
                     m->id, r->reps[m->owner], code, status, (long long)m->amount);
    }
}

/* The funnel equals a recomputation from the opportunities (both ways). */
static void check_funnel(const run_t *r)
{
    static const char *recompute =
        "WITH expected AS ("
        "  SELECT c.ancestor_id AS node_id, o.definition_id, o.stage_code, count(*) AS n, "
        "         sum(o.amount_minor) AS amt, sum(o.weighted_amount_minor) AS w "
        "  FROM opportunity o JOIN org_closure c ON c.descendant_id = o.owner_rep_id "
        "  WHERE o.status = 'open' AND o.id LIKE 'opp-' || $1 || '-%' "
        "    AND c.ancestor_id IN (SELECT descendant_id FROM org_closure "
        "                          WHERE ancestor_id = 'div-' || $1) "
        "  GROUP BY 1, 2, 3), "
        "actual AS ("
        "  SELECT node_id, definition_id, stage_code, open_count AS n, amount_minor AS amt, "
        "         weighted_amount_minor AS w FROM funnel_state "
        "  WHERE node_id IN (SELECT descendant_id FROM org_closure "
        "                    WHERE ancestor_id = 'div-' || $1) "
        "    AND (open_count, amount_minor, weighted_amount_minor) <> (0, 0, 0)) "
        "SELECT (SELECT count(*) FROM (SELECT * FROM expected EXCEPT SELECT * FROM actual) a) + "
        "       (SELECT count(*) FROM (SELECT * FROM actual EXCEPT SELECT * FROM expected) b)";
    assert_int_equal(it_pg_int(pg, recompute, r->sfx), 0);
    /* and it is not trivially empty */
    char q[256];
    snprintf(q, sizeof q, "SELECT coalesce(sum(open_count), 0) FROM funnel_state WHERE node_id = $1");
    assert_true(it_pg_int(pg, q, r->division) > 0);
}

typedef struct redis_hash {
    char fields[64][32];
    long long values[64];
    int n;
} redis_hash_t;

static void keep_field(void *ud, const char *field, const char *value)
{
    redis_hash_t *h = ud;
    if (h->n < 64) {
        snprintf(h->fields[h->n], sizeof h->fields[0], "%s", field);
        h->values[h->n++] = atoll(value);
    }
}

static long long hash_value(const redis_hash_t *h, const char *field)
{
    for (int i = 0; i < h->n; i++)
        if (strcmp(h->fields[i], field) == 0)
            return h->values[i];
    return 0; /* an absent field reads as an empty stage */
}

typedef struct pg_rows {
    const redis_hash_t *h;
    int mismatches;
} pg_rows_t;

static int compare_rows(void *ud, const ka_pgres_t *res)
{
    pg_rows_t *c = ud;
    char f[40];
    static const char *metrics[] = {"count", "amount", "weighted"};
    for (int i = 0; i < ka_pgres_rows(res); i++) {
        for (int m = 0; m < 3; m++) {
            snprintf(f, sizeof f, "%s:%s", ka_pgres_value(res, i, 0), metrics[m]);
            if (hash_value(c->h, f) != ka_pgres_int(res, i, 1 + m, -1)) {
                fprintf(stderr, "redis %s = %lld, postgres %s\n", f, hash_value(c->h, f),
                        ka_pgres_value(res, i, 1 + m));
                c->mismatches++;
            }
        }
    }
    return 0;
}

/* Redis holds exactly PostgreSQL's funnel, field by field. */
static void check_redis(const run_t *r)
{
    char err[KA_ERRSTR_SIZE], key[256];
    ka_redis_t *rds = ka_redis_connect(ka_config_str(cfg, "KA_REDIS_HOST"),
                                       (int)ka_config_int(cfg, "KA_REDIS_PORT"), 2000, err,
                                       sizeof err);
    assert_non_null(rds);
    const char *nodes[] = {r->division, r->region, r->teams[0], r->teams[1],
                           r->reps[0], r->reps[1], r->reps[2], r->reps[3]};
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        redis_hash_t h;
        memset(&h, 0, sizeof h);
        snprintf(key, sizeof key, "ka:funnel:%s:default-8", nodes[i]);
        assert_int_equal(ka_redis_hgetall(rds, key, keep_field, &h, err, sizeof err), KA_OK);
        pg_rows_t c = {&h, 0};
        ka_pg_param_t p = {nodes[i], 0, 0};
        assert_int_equal(ka_pg_query(pg,
                                     "SELECT stage_code, open_count, amount_minor, "
                                     "weighted_amount_minor FROM funnel_state WHERE node_id = $1 "
                                     "AND definition_id = 'default-8'",
                                     1, &p, compare_rows, &c, err, sizeof err),
                         KA_OK);
        assert_int_equal(c.mismatches, 0);
    }
    ka_redis_free(rds);
}

static void check_rejections(const run_t *r)
{
    assert_int_equal(it_pg_int(pg,
                               "SELECT count(*) FROM dead_letter WHERE consumer_group = $1 "
                               "AND reason = 'unauthorized_owner_change'",
                               r->group),
                     r->rejected_unauthorized);
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM dead_letter WHERE consumer_group = $1",
                               r->group),
                     r->rejected_unauthorized + r->rejected_bad);
    /* each unauthorized attempt raised or joined an alert on its opportunity */
    long long fired = it_pg_int(pg,
                                "SELECT count(*) FROM alert_history WHERE type = "
                                "'unauthorized_owner_change' AND transition = 'firing' AND "
                                "details->>'opportunity_id' LIKE 'opp-' || $1 || '-%'",
                                r->sfx);
    assert_true(r->rejected_unauthorized > 0);
    assert_true(fired >= 1 && fired <= r->rejected_unauthorized);
    /* one reason per kind of bad input */
    assert_int_equal(it_pg_int(pg,
                               "SELECT count(DISTINCT reason) FROM dead_letter WHERE "
                               "consumer_group = $1 AND reason <> 'unauthorized_owner_change'",
                               r->group),
                     7);
}

static void mixed_stream_matches_model_and_recomputed_funnel(void **state)
{
    static run_t r; /* static: the teardown frees it when an assertion ends the test */
    (void)state;
    init_run(&r, "a", 42);
    create_all(&r);
    send_bad_events(&r);
    for (int i = 0; i < NEVENTS; i++)
        random_event(&r, i);
    pid_t pid = spawn_worker(&r);
    wait_consumed(&r);
    /* let the outbox drain before SIGTERM so the exit is a clean drain */
    stop_worker(pid, SIGTERM);
    check_model(&r);
    check_funnel(&r);
    check_redis(&r);
    check_rejections(&r);
    /* two spellings of one company: one account */
    assert_int_equal(it_pg_int(pg,
                               "SELECT count(DISTINCT account_id) FROM opportunity "
                               "WHERE id LIKE 'opp-' || $1 || '-%'",
                               r.sfx),
                     1);
    /* stale events are kept in history, not applied */
    assert_true(it_pg_int(pg,
                          "SELECT count(*) FROM opportunity_event WHERE opportunity_id LIKE "
                          "'opp-' || $1 || '-%' AND NOT applied AND not_applied_reason = 'stale'",
                          r.sfx) > 0);
    free_run(&r);
}

static void sigkill_mid_stream_ends_in_the_same_state(void **state)
{
    static run_t r; /* static: the teardown frees it when an assertion ends the test */
    (void)state;
    init_run(&r, "k", 42); /* the same stream as the uninterrupted run */
    create_all(&r);
    send_bad_events(&r);
    for (int i = 0; i < NEVENTS; i++)
        random_event(&r, i);
    /* Kill it three times at a quarter, half and three quarters of the way:
     * wherever in a batch that lands, nothing may be lost or applied twice. */
    for (int round = 1; round <= 3; round++) {
        pid_t pid = spawn_worker(&r);
        long long target = (long long)r.produced * round / 4, seen = 0;
        for (int waited = 0; waited < 60000 && seen < target; waited += 5) {
            seen = it_pg_int(pg, "SELECT coalesce(sum(next_offset), 0) FROM consumer_offset "
                                 "WHERE consumer_group = $1", r.group);
            usleep(5000);
        }
        stop_worker(pid, SIGKILL);
        assert_true(seen < r.produced); /* it really died mid-stream */
    }
    pid_t pid = spawn_worker(&r);
    wait_consumed(&r);
    stop_worker(pid, SIGTERM);
    check_model(&r);
    check_funnel(&r);
    check_redis(&r);
    check_rejections(&r);
    free_run(&r);
}

/* One opportunity event of the given kind at the next clock tick. */
static void simple_event(run_t *r, const char *opp, int created, const char *stage)
{
    char event_id[128];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__OpportunityCreated c = KA__V1__OPPORTUNITY_CREATED__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__StageChanged sc = KA__V1__STAGE_CHANGED__INIT;
    r->clock_ms += 1000;
    snprintf(event_id, sizeof event_id, "%s-%lld", opp, (long long)r->clock_ms);
    h.event_id = event_id;
    h.occurred_at_ms = r->clock_ms;
    e.header = &h;
    e.opportunity_id = (char *)opp;
    if (created) {
        a.name = (char *)(r->account ? r->account : "Health Check Co");
        c.account = &a;
        c.owner_rep_id = r->reps[0];
        c.stage_code = (char *)stage;
        c.amount_minor = 1000000;
        e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_CREATED;
        e.created = &c;
    } else {
        sc.to_stage_code = (char *)stage;
        e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED;
        e.stage_changed = &sc;
    }
    send_event(r, &e, opp);
}

static void run_phase(run_t *r)
{
    pid_t pid = spawn_worker(r);
    wait_consumed(r);
    stop_worker(pid, SIGTERM);
}

static long long alert_rows(const run_t *r, const char *transition)
{
    char q[512];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM alert_history WHERE type = 'funnel_health' "
             "AND transition = '%s' AND details->>'node_id' = $1", transition);
    return it_pg_int(pg, q, r->teams[0]);
}

static void health_alert_fires_and_resolves_once_per_episode(void **state)
{
    static run_t r; /* static: the teardown frees it when an assertion ends the test */
    char ids[10][64];
    (void)state;
    init_run(&r, "h", 7);
    for (int i = 0; i < 10; i++) {
        snprintf(ids[i], sizeof ids[i], "opp-%s-%d", r.sfx, i);
        simple_event(&r, ids[i], 1, "02");
    }
    run_phase(&r);
    /* the team's baseline for stage 02: ten open opportunities */
    sql("INSERT INTO funnel_baseline (node_id, definition_id, stage_code, metric, value, source, "
        "valid_from, valid_to) VALUES ($1, 'default-8', '02', 'count', 10, 'explicit', "
        "current_date - 1, current_date + 30)", r.teams[0]);

    for (int i = 0; i < 4; i++) /* 10 -> 6: 60% of baseline, warning */
        simple_event(&r, ids[i], 0, "03");
    run_phase(&r);
    assert_int_equal(alert_rows(&r, "firing"), 1);
    assert_int_equal(alert_rows(&r, "resolved"), 0);

    simple_event(&r, ids[0], 0, "02"); /* 7 = 70%: under 70% + 5% margin, still warning */
    run_phase(&r);
    assert_int_equal(alert_rows(&r, "firing"), 1);
    assert_int_equal(alert_rows(&r, "resolved"), 0);

    simple_event(&r, ids[1], 0, "02"); /* 8 = 80%: recovered */
    run_phase(&r);
    simple_event(&r, ids[1], 0, "03"); /* back to 70%: good, hovering, no new episode */
    run_phase(&r);
    assert_int_equal(alert_rows(&r, "firing"), 1);
    assert_int_equal(alert_rows(&r, "resolved"), 1);

    /* Downstream: exactly the two transitions, one episode id, as CloudEvents. */
    it_msgs_t got = it_consume_all(cfg, r.alerts, 2, 30000);
    assert_int_equal(got.n, 2);
    Ka__V1__AlertEvent *a0 = ka__v1__alert_event__unpack(NULL, got.m[0]->len, got.m[0]->payload);
    Ka__V1__AlertEvent *a1 = ka__v1__alert_event__unpack(NULL, got.m[1]->len, got.m[1]->payload);
    assert_non_null(a0);
    assert_non_null(a1);
    assert_int_equal(a0->status, KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING);
    assert_int_equal(a1->status, KA__V1__ALERT_STATUS__ALERT_STATUS_RESOLVED);
    assert_string_equal(a0->alert_id, a1->alert_id);
    assert_int_equal(a0->type, KA__V1__ALERT_TYPE__ALERT_TYPE_FUNNEL_HEALTH);
    assert_string_equal(a0->subject_id, r.teams[0]);
    assert_true(a1->ends_at_ms >= a1->starts_at_ms && a1->ends_at_ms > 0);
    char *ce_id = it_header(got.m[1], "ce_id");
    char want[256];
    snprintf(want, sizeof want, "%s:resolved", a1->alert_id);
    assert_string_equal(ce_id, want);
    free(ce_id);
    ka__v1__alert_event__free_unpacked(a0, NULL);
    ka__v1__alert_event__free_unpacked(a1, NULL);
    it_free_msgs(&got);
    free_run(&r);
}

static long long team_health(const run_t *r, const char *view, const char *column)
{
    char q[256];
    snprintf(q, sizeof q,
             "SELECT %s FROM %s WHERE node_id = $1 AND definition_id = 'default-8' "
             "AND stage_code = '02' AND metric = 'count'", column, view);
    return it_pg_int(pg, q, r->teams[0]);
}

/* funnel_health is written when a band or the baseline changes (migration
 * 0023, issue 17), not at every evaluation; funnel_health_now has the live
 * figures. */
static void health_rows_change_with_the_band_and_the_ratio_is_live(void **state)
{
    static run_t r;
    char ids[10][64];
    (void)state;
    init_run(&r, "b", 11);
    for (int i = 0; i < 10; i++) {
        snprintf(ids[i], sizeof ids[i], "opp-%s-%d", r.sfx, i);
        simple_event(&r, ids[i], 1, "02");
    }
    run_phase(&r);
    sql("INSERT INTO funnel_baseline (node_id, definition_id, stage_code, metric, value, source, "
        "valid_from, valid_to) VALUES ($1, 'default-8', '02', 'count', 10, 'explicit', "
        "current_date - 1, current_date + 30)", r.teams[0]);
    for (int i = 0; i < 4; i++) /* 10 -> 6: warning, the row is written */
        simple_event(&r, ids[i], 0, "03");
    run_phase(&r);
    assert_int_equal(team_health(&r, "funnel_health", "current_value"), 6);
    assert_int_equal(team_health(&r, "funnel_health", "ratio_bp"), 6000);
    const char *at = "(extract(epoch FROM evaluated_at) * 1000000)::bigint";
    long long written = team_health(&r, "funnel_health", at);

    simple_event(&r, ids[0], 0, "02"); /* 7 = 70%: still warning, the row stays */
    run_phase(&r);
    assert_int_equal(team_health(&r, "funnel_health", "current_value"), 6);
    assert_int_equal(team_health(&r, "funnel_health", at), written);
    assert_int_equal(team_health(&r, "funnel_health_now", "current_value"), 7);
    assert_int_equal(team_health(&r, "funnel_health_now", "ratio_bp"), 7000);
    assert_int_equal(team_health(&r, "funnel_health_now", "(status = 'warning')::int"), 1);

    simple_event(&r, ids[1], 0, "02"); /* 8 = 80%: recovered, written again */
    run_phase(&r);
    assert_int_equal(team_health(&r, "funnel_health", "current_value"), 8);
    assert_int_equal(team_health(&r, "funnel_health", "(status = 'good')::int"), 1);
    assert_int_equal(team_health(&r, "funnel_health_now", "ratio_bp"), 8000);
    free_run(&r);
}

static long long stalled_rows(const char *opp, const char *transition)
{
    char q[256];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM alert_history WHERE type = 'stalled_opportunity' "
             "AND transition = '%s' AND details->>'opportunity_id' = $1", transition);
    return it_pg_int(pg, q, opp);
}

static void stalled_opportunity_alerts_once_and_resolves_when_it_moves(void **state)
{
    static run_t r; /* static: the teardown frees it when an assertion ends the test */
    char stuck[64], fresh[64];
    (void)state;
    init_run(&r, "s", 9);
    snprintf(stuck, sizeof stuck, "opp-%s-stuck", r.sfx);
    snprintf(fresh, sizeof fresh, "opp-%s-fresh", r.sfx);
    r.clock_ms = ka_now_ms() - 40 * 86400000LL; /* stage 02 allows 30 days */
    simple_event(&r, stuck, 1, "02");
    r.clock_ms = ka_now_ms() - 5 * 86400000LL;
    simple_event(&r, fresh, 1, "02");
    pid_t pid = spawn_worker(&r);
    wait_consumed(&r);
    for (int i = 0; i < 100 && stalled_rows(stuck, "firing") == 0; i++)
        usleep(100 * 1000);
    usleep(1000 * 1000); /* several more scans */
    assert_int_equal(stalled_rows(stuck, "firing"), 1);
    assert_int_equal(stalled_rows(fresh, "firing"), 0);

    r.clock_ms = ka_now_ms() - 86400000LL; /* it moves on: resolved */
    simple_event(&r, stuck, 0, "03");
    wait_consumed(&r);
    for (int i = 0; i < 100 && stalled_rows(stuck, "resolved") == 0; i++)
        usleep(100 * 1000);
    usleep(1000 * 1000);
    stop_worker(pid, SIGTERM);
    assert_int_equal(stalled_rows(stuck, "firing"), 1);
    assert_int_equal(stalled_rows(stuck, "resolved"), 1);
    free_run(&r);
}

static long long no_visit_rows(const char *opp, const char *transition)
{
    const char *args[] = {opp, transition};
    return it_pg_int_args(pg,
                          "SELECT count(*) FROM alert_history WHERE type = 'stalled_opportunity' "
                          "AND details->>'cause' = 'no_visit' AND details->>'opportunity_id' = $1 "
                          "AND transition = $2",
                          2, args);
}

/* An account of this run, created as the visit worker would have, last
 * visited days_ago days ago. */
static void visited_account(const char *name, int days_ago, char id[KA_ACCOUNT_ID_LEN])
{
    char key[KA_ACCOUNT_KEY_MAX], days[16];
    ka_reject_t rej;
    assert_int_equal(ka_account_key(NULL, name, key, sizeof key, &rej), KA_OK);
    ka_account_id(key, id);
    snprintf(days, sizeof days, "%d", days_ago);
    const char *args[] = {id, key, name, days};
    sql_args("INSERT INTO account (id, canonical_key, display_name, owner_rep_id, "
             "last_visit_at, last_activity_at) VALUES ($1, $2, $3, 'it', "
             "now() - $4::int * interval '1 day', now() - $4::int * interval '1 day')",
             4, args);
}

static void stalled_without_visits_alerts_once_and_a_visit_resolves_it(void **state)
{
    static run_t r;
    char quiet[64], visited[64], quiet_name[96], visited_name[96], quiet_id[KA_ACCOUNT_ID_LEN],
        visited_id[KA_ACCOUNT_ID_LEN];
    (void)state;
    init_run(&r, "q", 3);
    snprintf(quiet, sizeof quiet, "opp-%s-quiet", r.sfx);
    snprintf(visited, sizeof visited, "opp-%s-visited", r.sfx);
    snprintf(quiet_name, sizeof quiet_name, "Quiet Co %s", r.sfx);
    snprintf(visited_name, sizeof visited_name, "Visited Co %s", r.sfx);
    visited_account(quiet_name, 80, quiet_id);
    visited_account(visited_name, 10, visited_id);
    /* Both deals 50 days in stage 05 (60 days allowed): only the account
     * without a visit in 45 days (KA_STALL_NO_VISIT_DAYS) stalls. */
    r.clock_ms = ka_now_ms() - 50 * 86400000LL;
    r.account = quiet_name;
    simple_event(&r, quiet, 1, "05");
    r.account = visited_name;
    simple_event(&r, visited, 1, "05");
    pid_t pid = spawn_worker(&r);
    wait_consumed(&r);
    for (int i = 0; i < 100 && no_visit_rows(quiet, "firing") == 0; i++)
        usleep(100 * 1000);
    usleep(1000 * 1000); /* several more scans */
    assert_int_equal(no_visit_rows(quiet, "firing"), 1);
    assert_int_equal(no_visit_rows(visited, "firing"), 0);
    assert_int_equal(stalled_rows(quiet, "firing"), 1); /* and no dwell alert */

    /* a visit (the visit worker's write) resolves it */
    sql("UPDATE account SET last_visit_at = now(), last_activity_at = now() WHERE id = $1",
        quiet_id);
    for (int i = 0; i < 100 && no_visit_rows(quiet, "resolved") == 0; i++)
        usleep(100 * 1000);
    usleep(1000 * 1000);
    stop_worker(pid, SIGTERM);
    assert_int_equal(no_visit_rows(quiet, "firing"), 1);
    assert_int_equal(no_visit_rows(quiet, "resolved"), 1);
    free_run(&r);
}



static int setup(void **state)
{
    (void)state;
    it_open("it-opportunity", &cfg, &pg, &kp);
    return 0;
}

static int kill_leftover_worker(void **state)
{
    (void)state;
    it_kill_all(&live_worker, 1);
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
    if (argc < 2) {
        fprintf(stderr, "usage: test_opportunity PATH-TO-opportunity-worker\n");
        return 2;
    }
    worker_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(mixed_stream_matches_model_and_recomputed_funnel,
                                  kill_leftover_worker),
        cmocka_unit_test_teardown(sigkill_mid_stream_ends_in_the_same_state, kill_leftover_worker),
        cmocka_unit_test_teardown(health_alert_fires_and_resolves_once_per_episode,
                                  kill_leftover_worker),
        cmocka_unit_test_teardown(health_rows_change_with_the_band_and_the_ratio_is_live,
                                  kill_leftover_worker),
        cmocka_unit_test_teardown(stalled_opportunity_alerts_once_and_resolves_when_it_moves,
                                  kill_leftover_worker),
        cmocka_unit_test_teardown(stalled_without_visits_alerts_once_and_a_visit_resolves_it,
                                  kill_leftover_worker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

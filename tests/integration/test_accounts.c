/* One customer, one account (DOMAIN.md section 2) across the three workers
 * that resolve accounts, against the real stack:
 *   - an account first named by name takes the credit code a later event
 *     (another worker, another spelling) gives with that name: same id, the
 *     code attached, no second account; the code alone (any name) then finds
 *     it; a second code for that name is kept apart as an account of its own
 *     and listed by kactl accounts --conflicts;
 *   - events of one batch resolve as if applied one after the other;
 *   - workers racing on one code (one attaching it to a name's account, one
 *     creating it) end with one account holding it, named by both, and no
 *     event dead-lettered; a worker meeting a code another transaction
 *     holds waits for it, then finds its account, without a rollback. */
#include <setjmp.h>
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
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_account_key.h"
#include "ka_hash.h"

#define NRACE 200

static const char *visit_worker, *opp_worker, *order_worker, *kactl;
static ka_config_t *cfg;
static ka_pg_t *pg;
static ka_producer_t *kp;
static pid_t live[3];

typedef struct run {
    char sfx[40];
    char visits[128], opps[128], orders[128], dlq[128], alerts[128];
    char visit_group[128], opp_group[128], order_group[128];
    char team[64], rep[64];
    long long nvisits, nopps, norders; /* produced per topic */
} run_t;

/* Queries ------------------------------------------------------------------------- */

static long long q(const char *sql, int n, ...)
{
    const char *args[8];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        args[i] = va_arg(ap, const char *);
    va_end(ap);
    return it_pg_int_args(pg, sql, n, args);
}

static int read_text(void *ud, const ka_pgres_t *res)
{
    const char *v = ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : NULL;
    snprintf(ud, 128, "%s", v ? v : "(none)");
    return 0;
}

/* The first column of the first row as text ("(none)" for no row or NULL). */
static void q_text(char out[128], const char *sql, const char *p1)
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_param_t p = {p1, 0, 0};
    if (ka_pg_query(pg, sql, 1, &p, read_text, out, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", sql, err);
}

static void sql(const char *text, int n, const char **args)
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_param_t p[4];
    for (int i = 0; i < n; i++)
        p[i] = (ka_pg_param_t){args[i], 0, 0};
    if (ka_pg_query(pg, text, n, p, NULL, NULL, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", text, err);
}

static int read_root(void *ud, const ka_pgres_t *res)
{
    snprintf(ud, 64, "%s", ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : "");
    return 0;
}

/* Runs kactl with args; returns its exit code, its output in out. */
static int run_kactl(const char *args, char *out, size_t len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", kactl, args);
    return it_sh(cmd, out, len);
}

/* Codes and names ------------------------------------------------------------------ */

/* A well-formed credit code of its own for (run, n): 17 characters from a
 * hash, then GB 32100's check character. */
static void make_code(const run_t *r, int n, char out[19])
{
    static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    static const int weights[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28};
    char seed[96], hex[KA_HASH_HEX_LEN];
    int sum = 0;
    snprintf(seed, sizeof seed, "%s/%d", r->sfx, n);
    ka_hash128_hex(seed, strlen(seed), hex);
    for (int i = 0; i < 17; i++) {
        int v = (int)(((unsigned char)hex[i] * 7u + (unsigned char)hex[i + 15]) % 31u);
        out[i] = alphabet[v];
        sum += v * weights[i];
    }
    out[17] = alphabet[(31 - sum % 31) % 31];
    out[18] = '\0';
    assert_true(ka_uscc_valid(out));
}

static void key_id(const char *code, const char *name, char id[KA_ACCOUNT_ID_LEN])
{
    char key[KA_ACCOUNT_KEY_MAX];
    ka_reject_t rej;
    assert_int_equal(ka_account_key(code, name, key, sizeof key, &rej), KA_OK);
    ka_account_id(key, id);
}

/* The name with its first word in full-width capitals and doubled spaces:
 * "Attach x" -> "ＡＴＴＡＣＨ  x". */
static void full_width(const char *name, char *out, size_t len)
{
    size_t o = 0;
    const char *p = name;
    for (; *p && *p != ' ' && o + 4 < len; p++) {
        unsigned cp = 0xFF00u + (unsigned)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p) - 0x20u;
        out[o++] = (char)(0xE0 | (cp >> 12));
        out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[o++] = (char)(0x80 | (cp & 0x3F));
    }
    snprintf(out + o, len - o, " %s", p);
}

/* The run ------------------------------------------------------------------------- */

static void init_run(run_t *r, const char *tag)
{
    char err[KA_ERRSTR_SIZE], root[64] = "";
    memset(r, 0, sizeof *r);
    snprintf(r->sfx, sizeof r->sfx, "%s%s", tag, it_suffix());
    snprintf(r->visits, sizeof r->visits, "it.acct-visit.%s", r->sfx);
    snprintf(r->opps, sizeof r->opps, "it.acct-opp.%s", r->sfx);
    snprintf(r->orders, sizeof r->orders, "it.acct-order.%s", r->sfx);
    snprintf(r->dlq, sizeof r->dlq, "it.acct-dlq.%s", r->sfx);
    snprintf(r->alerts, sizeof r->alerts, "it.acct-alert.%s", r->sfx);
    snprintf(r->visit_group, sizeof r->visit_group, "it-acct-visit-%s", r->sfx);
    snprintf(r->opp_group, sizeof r->opp_group, "it-acct-opp-%s", r->sfx);
    snprintf(r->order_group, sizeof r->order_group, "it-acct-order-%s", r->sfx);
    const char *brokers = ka_config_str(cfg, "KA_KAFKA_BROKERS");
    const char *topics[] = {r->visits, r->opps, r->orders, r->dlq, r->alerts};
    for (size_t i = 0; i < 5; i++)
        if (ka_kafka_create_topic(brokers, topics[i], i < 3 ? 3 : 1, err, sizeof err) != KA_OK)
            fail_msg("%s", err);
    if (ka_pg_query(pg, "SELECT id FROM org_node WHERE parent_id IS NULL", 0, NULL, read_root,
                    root, err, sizeof err) != KA_OK || !root[0])
        fail_msg("the org tree has no company: load one first (tests/run runs kactl load sample)");
    snprintf(r->team, sizeof r->team, "ateam-%s", r->sfx);
    snprintf(r->rep, sizeof r->rep, "arep-%s", r->sfx);
    const char *team[] = {r->team, root};
    sql("INSERT INTO org_node (id, parent_id, kind, name) VALUES ($1, $2, 'team', 'T')", 2, team);
    const char *rep[] = {r->rep, r->team};
    sql("INSERT INTO org_node (id, parent_id, kind, name) VALUES ($1, $2, 'rep', 'r')", 2, rep);
}

static pid_t spawn_on(const run_t *r, int which, int batch_events, int http_port)
{
    static char s[3][7][200];
    const char *bins[] = {visit_worker, opp_worker, order_worker};
    const char *groups[] = {r->visit_group, r->opp_group, r->order_group};
    snprintf(s[which][0], 200, "KA_TOPIC_VISIT=%s", r->visits);
    snprintf(s[which][1], 200, "KA_TOPIC_OPPORTUNITY=%s", r->opps);
    snprintf(s[which][2], 200, "KA_TOPIC_ORDER=%s", r->orders);
    snprintf(s[which][3], 200, "KA_TOPIC_DEADLETTER=%s", r->dlq);
    snprintf(s[which][4], 200, "KA_CONSUMER_GROUP=%s", groups[which]);
    snprintf(s[which][5], 200, "KA_BATCH_MAX_EVENTS=%d", batch_events);
    snprintf(s[which][6], 200, "KA_HTTP_PORT=%d", http_port);
    char alerts[200];
    snprintf(alerts, sizeof alerts, "KA_TOPIC_ALERT=%s", r->alerts);
    const char *set[] = {s[which][0], s[which][1], s[which][2], s[which][3], s[which][4],
                         s[which][5], s[which][6], alerts, "KA_BATCH_MAX_MS=200", NULL};
    live[which] = it_spawn(bins[which], set);
    return live[which];
}

static pid_t spawn(const run_t *r, int which, int batch_events)
{
    return spawn_on(r, which, batch_events, 0);
}

static void stop(int which)
{
    it_stop(live[which], SIGTERM);
    live[which] = 0;
}

/* Each worker of the run, one at a time: start it, let it consume what was
 * produced for it, stop it. */
static void run_worker(const run_t *r, int which)
{
    const char *groups[] = {r->visit_group, r->opp_group, r->order_group};
    long long want[] = {r->nvisits, r->nopps, r->norders};
    spawn(r, which, 25);
    it_wait_group(pg, groups[which], want[which]);
    stop(which);
}

static long long dead_letters(const run_t *r)
{
    return q("SELECT count(*) FROM dead_letter WHERE consumer_group IN ($1, $2, $3)", 3,
             r->visit_group, r->opp_group, r->order_group);
}

/* Events: the account named by an optional code and an optional name ---------- */

static void send(const char *topic, const char *key, uint8_t *buf, size_t len)
{
    it_produce(kp, topic, key, buf, len);
    free(buf);
}

static void send_visit(run_t *r, const char *id, const char *code, const char *name,
                       const char *key)
{
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__VisitEvent v = KA__V1__VISIT_EVENT__INIT;
    Ka__V1__AccountRef ref = KA__V1__ACCOUNT_REF__INIT;
    h.event_id = (char *)id;
    h.occurred_at_ms = ka_now_ms() - 60000 + r->nvisits;
    h.producer = "it";
    ref.unified_social_credit_code = (char *)code;
    ref.name = (char *)name;
    v.header = &h;
    v.account = &ref;
    v.rep_id = r->rep;
    v.visited_at_ms = h.occurred_at_ms;
    v.objective = KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_MAINTAIN;
    size_t len = ka__v1__visit_event__get_packed_size(&v);
    uint8_t *buf = malloc(len + 1);
    ka__v1__visit_event__pack(&v, buf);
    send(r->visits, key, buf, len);
    r->nvisits++;
}

static void send_opp(run_t *r, const char *id, const char *code, const char *name)
{
    char event_id[128];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OpportunityEvent e = KA__V1__OPPORTUNITY_EVENT__INIT;
    Ka__V1__OpportunityCreated c = KA__V1__OPPORTUNITY_CREATED__INIT;
    Ka__V1__AccountRef a = KA__V1__ACCOUNT_REF__INIT;
    snprintf(event_id, sizeof event_id, "%s-created", id);
    h.event_id = event_id;
    h.occurred_at_ms = ka_now_ms() - 30000;
    e.header = &h;
    e.opportunity_id = (char *)id;
    e.actor_id = r->rep;
    a.unified_social_credit_code = (char *)code;
    a.name = (char *)name;
    c.account = &a;
    c.owner_rep_id = r->rep;
    c.stage_code = "03";
    c.amount_minor = 5000000;
    e.created = &c;
    e.kind_case = KA__V1__OPPORTUNITY_EVENT__KIND_CREATED;
    size_t len = ka__v1__opportunity_event__get_packed_size(&e);
    uint8_t *buf = malloc(len + 1);
    ka__v1__opportunity_event__pack(&e, buf);
    send(r->opps, id, buf, len);
    r->nopps++;
}

static void send_order(run_t *r, const char *id, const char *code, const char *name,
                       const char *key)
{
    char event_id[128];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__OrderEvent e = KA__V1__ORDER_EVENT__INIT;
    Ka__V1__AccountRef ref = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__LineItem line = KA__V1__LINE_ITEM__INIT, *lp = &line;
    snprintf(event_id, sizeof event_id, "%s-booked", id);
    h.event_id = event_id;
    h.occurred_at_ms = ka_now_ms() - 20000;
    h.producer = "erp";
    ref.unified_social_credit_code = (char *)code;
    ref.name = (char *)name;
    e.header = &h;
    e.order_id = (char *)id;
    e.account = &ref;
    e.rep_id = r->rep;
    e.channel = KA__V1__CHANNEL__CHANNEL_DIRECT;
    e.status = KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED;
    e.booked_at_ms = h.occurred_at_ms;
    line.sku = "SKU-0001";
    line.quantity_milli = 1000;
    line.unit_price_minor = 1000;
    e.n_lines = 1;
    e.lines = &lp;
    size_t len = ka__v1__order_event__get_packed_size(&e);
    uint8_t *buf = malloc(len + 1);
    ka__v1__order_event__pack(&e, buf);
    send(r->orders, key, buf, len);
    r->norders++;
}

static long long accounts_named(const char *name_key)
{
    return q("SELECT count(*) FROM account WHERE name_key = $1", 1, name_key);
}

/* Tests ------------------------------------------------------------------------------ */

static void a_code_attaches_to_the_account_first_named_by_name(void **state)
{
    static run_t r;
    char name[160], spelled[256], other[160], c1[19], c2[19], id[KA_ACCOUNT_ID_LEN],
        code_id[KA_ACCOUNT_ID_LEN], c2_id[KA_ACCOUNT_ID_LEN], ev[96], got[128],
        nkey[KA_ACCOUNT_KEY_MAX];
    ka_reject_t rej;
    (void)state;
    init_run(&r, "a");
    snprintf(name, sizeof name, "Attach %s Machinery Co", r.sfx);
    full_width(name, spelled, sizeof spelled);
    snprintf(other, sizeof other, "Attach %s Machinery (Renamed) Ltd", r.sfx);
    make_code(&r, 1, c1);
    make_code(&r, 2, c2);
    key_id(NULL, name, id);
    key_id(c1, NULL, code_id);
    key_id(c2, NULL, c2_id);
    assert_int_equal(ka_account_key(NULL, name, nkey, sizeof nkey, &rej), KA_OK);

    /* A visit names the company by name: the account is keyed by it. */
    snprintf(ev, sizeof ev, "v1-%s", r.sfx);
    send_visit(&r, ev, NULL, name, name);
    run_worker(&r, 0);
    q_text(got, "SELECT coalesce(credit_code, '(no code)') FROM account WHERE id = $1", id);
    assert_string_equal(got, "(no code)");

    /* A deal gives the code with the name spelled otherwise: same account,
     * code attached, no account keyed by the code. */
    char opp[96];
    snprintf(opp, sizeof opp, "aopp-%s", r.sfx);
    send_opp(&r, opp, c1, spelled);
    run_worker(&r, 1);
    q_text(got, "SELECT account_id FROM opportunity WHERE id = $1", opp);
    assert_string_equal(got, id);
    q_text(got, "SELECT credit_code FROM account WHERE id = $1", id);
    assert_string_equal(got, c1);
    assert_int_equal(q("SELECT count(*) FROM account WHERE id = $1", 1, code_id), 0);
    assert_int_equal(q("SELECT count(*) FROM account WHERE credit_code = $1", 1, c1), 1);
    assert_int_equal(accounts_named(nkey), 1);

    /* An order gives the code with another name: the code finds it. */
    char order[96];
    snprintf(order, sizeof order, "aord-%s", r.sfx);
    send_order(&r, order, c1, other, order);
    run_worker(&r, 2);
    q_text(got, "SELECT account_id FROM sales_order WHERE id = $1", order);
    assert_string_equal(got, id);
    assert_int_equal(q("SELECT count(*) FROM account WHERE display_name = $1", 1, other), 0);

    /* Visits: the code alone finds it; a second code for the name is kept
     * apart as an account of its own. */
    snprintf(ev, sizeof ev, "v2-%s", r.sfx);
    send_visit(&r, ev, c1, NULL, name);
    snprintf(ev, sizeof ev, "v3-%s", r.sfx);
    send_visit(&r, ev, c2, name, name);
    run_worker(&r, 0);
    snprintf(ev, sizeof ev, "v2-%s", r.sfx);
    q_text(got, "SELECT account_id FROM visit WHERE event_id = $1", ev);
    assert_string_equal(got, id);
    snprintf(ev, sizeof ev, "v3-%s", r.sfx);
    q_text(got, "SELECT account_id FROM visit WHERE event_id = $1", ev);
    assert_string_equal(got, c2_id);
    q_text(got, "SELECT credit_code FROM account WHERE id = $1", id);
    assert_string_equal(got, c1); /* the first code stays */
    q_text(got, "SELECT credit_code FROM account WHERE id = $1", c2_id);
    assert_string_equal(got, c2);
    assert_int_equal(accounts_named(nkey), 2);
    assert_int_equal(q("SELECT count(*) FROM visit WHERE account_id = $1", 1, id), 2);
    assert_int_equal(dead_letters(&r), 0);

    /* kactl lists the conflict: both accounts, both codes, the name, when. */
    char out[16384], args[256];
    snprintf(args, sizeof args, "accounts %s --conflicts", r.team);
    assert_int_equal(run_kactl(args, out, sizeof out), 0);
    const char *must[] = {id, c1, c2_id, c2, "kept apart since", ev, "1 conflict shown"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        if (!strstr(out, must[i]))
            fail_msg("kactl %s lacks \"%s\":\n%s", args, must[i], out);
    char lower[160];
    snprintf(lower, sizeof lower, "name \"attach %s machinery co\"", r.sfx);
    for (char *p = lower; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (!strstr(out, lower))
        fail_msg("kactl %s lacks the name (%s):\n%s", args, lower, out);
    /* The name's account first, the one kept apart second. */
    assert_true(strstr(out, id) < strstr(out, c2_id));
    assert_int_equal(run_kactl("accounts --help", out, sizeof out), 0);
    assert_non_null(strstr(out, "--conflicts"));
}

/* The schema's name key (0017, for accounts created by code and for the
 * conflicts) is the key ka_account_key gives the same name. */
static void the_schema_normalizes_names_as_the_workers_do(void **state)
{
    const char *names[] = {"  ＡＢＣ　Ｔｅｃｈ （上海）  有限公司 ", "ABC\tTech\n(上海)\v\f\r有限公司",
                           "Ａｃｍｅ\xC2\xA0Machinery", "O'Brien \\ Sons {Ｘ｝ ～", "Ä Österreich GmbH",
                           "ＺＺＺ"};
    (void)state;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char key[KA_ACCOUNT_KEY_MAX], got[128];
        ka_reject_t rej;
        assert_int_equal(ka_account_key(NULL, names[i], key, sizeof key, &rej), KA_OK);
        q_text(got, "SELECT ka_account_name_key($1)", names[i]);
        if (strcmp(got, key) != 0)
            fail_msg("name \"%s\": SQL %s, C %s", names[i], got, key);
    }
    char got[128];
    q_text(got, "SELECT coalesce(ka_account_name_key($1), '(blank)')", " 　\t ");
    assert_string_equal(got, "(blank)");
}

/* One batch: a name, then that name with a code, then with another code,
 * then the first code alone, then a name alone after a code came first. */
static void one_batch_resolves_as_one_event_after_another(void **state)
{
    static run_t r;
    char name[160], late[160], c3[19], c4[19], c5[19], id[KA_ACCOUNT_ID_LEN],
        c4_id[KA_ACCOUNT_ID_LEN], c5_id[KA_ACCOUNT_ID_LEN], late_id[KA_ACCOUNT_ID_LEN],
        got[128], ev[96];
    (void)state;
    init_run(&r, "b");
    snprintf(name, sizeof name, "Batch %s Tooling", r.sfx);
    snprintf(late, sizeof late, "Batch %s Late Name", r.sfx);
    make_code(&r, 3, c3);
    make_code(&r, 4, c4);
    make_code(&r, 5, c5);
    key_id(NULL, name, id);
    key_id(c4, NULL, c4_id);
    key_id(c5, NULL, c5_id);
    key_id(NULL, late, late_id);
    /* One Kafka key: one partition, in order, one batch. */
    const char *code[] = {NULL, c3, c4, c3, c5, NULL};
    const char *named[] = {name, name, name, NULL, late, late};
    for (int i = 0; i < 6; i++) {
        snprintf(ev, sizeof ev, "b%d-%s", i, r.sfx);
        send_visit(&r, ev, code[i], named[i], "one-key");
    }
    run_worker(&r, 0);
    /* Serially: b0 creates the name's account, b1 attaches c3 to it, b2 is
     * a conflict (own account), b3 finds c3's; b4 creates c5's account with
     * the late name, b5 (that name alone, after) its own name-keyed one. */
    const char *want[] = {id, id, c4_id, id, c5_id, late_id};
    for (int i = 0; i < 6; i++) {
        snprintf(ev, sizeof ev, "b%d-%s", i, r.sfx);
        q_text(got, "SELECT account_id FROM visit WHERE event_id = $1", ev);
        if (strcmp(got, want[i]) != 0)
            fail_msg("visit b%d: account %s, want %s", i, got, want[i]);
    }
    q_text(got, "SELECT credit_code FROM account WHERE id = $1", id);
    assert_string_equal(got, c3);
    q_text(got, "SELECT coalesce(credit_code, '(no code)') FROM account WHERE id = $1", late_id);
    assert_string_equal(got, "(no code)");
    assert_int_equal(dead_letters(&r), 0);
}

/* For each of NRACE names known by name: the visit worker attaches a code
 * with the name while the order worker creates it (another name), both at
 * once, one event per transaction so they interleave. */
static void workers_racing_on_one_code_agree(void **state)
{
    static run_t r;
    char name[160], other[160], code[19], ev[96];
    (void)state;
    init_run(&r, "c");
    for (int i = 0; i < NRACE; i++) {
        snprintf(name, sizeof name, "Race %s Works %d", r.sfx, i);
        snprintf(ev, sizeof ev, "c0-%d-%s", i, r.sfx);
        send_visit(&r, ev, NULL, name, name);
    }
    run_worker(&r, 0);
    for (int i = 0; i < NRACE; i++) {
        snprintf(name, sizeof name, "Race %s Works %d", r.sfx, i);
        snprintf(other, sizeof other, "Race %s Trading %d", r.sfx, i);
        make_code(&r, 100 + i, code);
        snprintf(ev, sizeof ev, "c1-%d-%s", i, r.sfx);
        send_visit(&r, ev, code, name, code);
        snprintf(ev, sizeof ev, "cord-%d-%s", i, r.sfx);
        send_order(&r, ev, code, other, code);
    }
    spawn(&r, 0, 1);
    spawn(&r, 2, 1);
    it_wait_group(pg, r.visit_group, r.nvisits);
    it_wait_group(pg, r.order_group, r.norders);
    stop(0);
    stop(2);
    for (int i = 0; i < NRACE; i++) {
        char vid[128], oid[128], ordid[96];
        make_code(&r, 100 + i, code);
        snprintf(ev, sizeof ev, "c1-%d-%s", i, r.sfx);
        snprintf(ordid, sizeof ordid, "cord-%d-%s", i, r.sfx);
        assert_int_equal(q("SELECT count(*) FROM account WHERE credit_code = $1", 1, code), 1);
        q_text(vid, "SELECT account_id FROM visit WHERE event_id = $1", ev);
        q_text(oid, "SELECT account_id FROM sales_order WHERE id = $1", ordid);
        q_text(name, "SELECT id FROM account WHERE credit_code = $1", code);
        assert_string_equal(vid, name);
        assert_string_equal(oid, name);
    }
    assert_int_equal(dead_letters(&r), 0);
}

/* The value of metric `name` (no labels) on the worker's /metrics, or -1. */
static double metric(int port, const char *name)
{
    double v = -1;
    it_reply_t rep = it_http_get(port, "/metrics");
    size_t n = strlen(name);
    for (const char *line = rep.body; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            v = strtod(line + n + 1, NULL);
    free(rep.body);
    return v;
}

/* Another transaction holds a code (its lock taken, its account created, not
 * yet committed) when a visit gives that code with a name known uncoded: the
 * worker waits for it and then finds the code's account; it neither fails
 * its batch on the code (unique) nor gives the name's account the code. */
static void a_worker_waits_for_a_code_another_holds(void **state)
{
    static run_t r;
    char err[KA_ERRSTR_SIZE], name[160], code[19], id[KA_ACCOUNT_ID_LEN],
        code_id[KA_ACCOUNT_ID_LEN], key[KA_ACCOUNT_KEY_MAX], ev[96], got[128];
    (void)state;
    init_run(&r, "d");
    snprintf(name, sizeof name, "Held %s Optics", r.sfx);
    make_code(&r, 7, code);
    key_id(NULL, name, id);
    key_id(code, NULL, code_id);
    snprintf(key, sizeof key, "uscc:%s", code);
    snprintf(ev, sizeof ev, "d0-%s", r.sfx);
    send_visit(&r, ev, NULL, name, name);
    run_worker(&r, 0);

    ka_pg_t *other = it_pg(cfg);
    ka_pg_param_t lock = {code, 0, 0};
    char held[160];
    snprintf(held, sizeof held, "Held %s Elsewhere", r.sfx);
    ka_pg_param_t row[5] = {{code_id, 0, 0}, {key, 0, 0}, {code, 0, 0}, {held, 0, 0},
                            {r.rep, 0, 0}};
    if (ka_pg_exec(other, "BEGIN", err, sizeof err) != KA_OK ||
        ka_pg_query(other, "SELECT pg_advisory_xact_lock(4242201, hashtext($1))", 1, &lock, NULL,
                    NULL, err, sizeof err) != KA_OK ||
        ka_pg_query(other, "INSERT INTO account (id, canonical_key, credit_code, display_name, "
                    "owner_rep_id) VALUES ($1, $2, $3, $4, $5)", 5, row, NULL, NULL,
                    err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    snprintf(ev, sizeof ev, "d1-%s", r.sfx);
    send_visit(&r, ev, code, name, name);
    int port = it_free_port();
    spawn_on(&r, 0, 25, port);
    sleep(2);
    assert_int_equal(q("SELECT count(*) FROM visit WHERE event_id = $1", 1, ev), 0);
    if (ka_pg_exec(other, "COMMIT", err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    ka_pg_free(other);
    it_wait_group(pg, r.visit_group, r.nvisits);
    q_text(got, "SELECT account_id FROM visit WHERE event_id = $1", ev);
    assert_string_equal(got, code_id);
    q_text(got, "SELECT coalesce(credit_code, '(no code)') FROM account WHERE id = $1", id);
    assert_string_equal(got, "(no code)");
    assert_true(metric(port, "ka_rollbacks_total") == 0);
    stop(0);
    assert_int_equal(dead_letters(&r), 0);
}

static int setup(void **state)
{
    (void)state;
    it_open("it-accounts", &cfg, &pg, &kp);
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
        fprintf(stderr, "usage: test_accounts VISIT-WORKER OPPORTUNITY-WORKER ORDER-WORKER "
                        "KACTL\n");
        return 2;
    }
    visit_worker = argv[1];
    opp_worker = argv[2];
    order_worker = argv[3];
    kactl = argv[4];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_schema_normalizes_names_as_the_workers_do),
        cmocka_unit_test_teardown(a_code_attaches_to_the_account_first_named_by_name,
                                  kill_leftovers),
        cmocka_unit_test_teardown(one_batch_resolves_as_one_event_after_another,
                                  kill_leftovers),
        cmocka_unit_test_teardown(workers_racing_on_one_code_agree, kill_leftovers),
        cmocka_unit_test_teardown(a_worker_waits_for_a_code_another_holds, kill_leftovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

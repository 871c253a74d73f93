/* The visit worker against the real stack:
 *   - a long mixed stream of visits (company names spelled several ways,
 *     MAN readings, every kind of follow-up plan, visits that arrive late,
 *     re-delivered duplicates and bad events) ends with every account as an
 *     independent model in this test says, in PostgreSQL and in Redis, and
 *     the bad events on the dead-letter topic with their reasons;
 *   - a worker killed with SIGKILL three times mid-stream ends the same;
 *   - every MAN class is kept with its history, and 'man' stops follow-ups;
 *   - an overdue follow-up fires on time, by a clock the test moves
 *     (KA_CLOCK_OFFSET_MS), once, and the next visit resolves it once;
 *   - a late-stage deal without a decision-maker visit raises the gap alert
 *     once, and meeting a decision maker resolves it. */
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
#include "ka/v1/alert.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_account_key.h"
#include "ka_alert.h"
#include "ka_redis.h"
#include "ka_validate.h"

#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL
#define NACCTS 16
#define NEVENTS 400

static const char *worker_path;
static ka_config_t *cfg;
static ka_pg_t *pg;
static ka_producer_t *kp;
static pid_t live_worker;

typedef struct acct_model {
    char name[128]; /* the canonical spelling; events use variants of it */
    char key[KA_ACCOUNT_KEY_MAX];
    char id[KA_ACCOUNT_ID_LEN];
    char man[4]; /* "" never classed */
    int man_changes;
    int64_t last_visit, last_dm;
    int plan_active, plan_interval;
    int64_t plan_due;
    char plan_action[12];
    int visits;
} acct_model_t;

typedef struct run {
    char sfx[40];
    char topic[128], dlq[128], alerts[128], group[128];
    char reps[2][64];
    acct_model_t accts[NACCTS];
    int64_t clock_ms;
    int64_t clock_offset_ms; /* the worker's KA_CLOCK_OFFSET_MS */
    int produced, rejected;
    uint64_t seed;
    uint8_t **sent;
    size_t *sent_len;
    char **sent_key;
    int nsent;
} run_t;

static run_t *current_run;

static uint32_t rnd(run_t *r, uint32_t n)
{
    r->seed = r->seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(r->seed >> 33) % n;
}

/* Queries ------------------------------------------------------------------------ */

static int read_int(void *ud, const ka_pgres_t *res)
{
    *(long long *)ud = ka_pgres_rows(res) ? ka_pgres_int(res, 0, 0, -1) : -1;
    return 0;
}

static int read_text(void *ud, const ka_pgres_t *res)
{
    const char *v = ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : NULL;
    snprintf(ud, 512, "%s", v ? v : "(no row)");
    return 0;
}

static void query(const char *q, int n, const char **args, ka_pg_rows_fn cb, void *ud)
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_param_t p[8];
    for (int i = 0; i < n; i++)
        p[i] = (ka_pg_param_t){args[i], 0, 0};
    if (ka_pg_query(pg, q, n, p, cb, ud, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", q, err);
}

static long long q_int(const char *q, int n, const char **args)
{
    long long v = -1;
    query(q, n, args, read_int, &v);
    return v;
}

/* The run ------------------------------------------------------------------------ */

static void init_run(run_t *r, const char *tag, uint64_t seed)
{
    char err[KA_ERRSTR_SIZE];
    memset(r, 0, sizeof *r);
    current_run = r;
    snprintf(r->sfx, sizeof r->sfx, "%s%s", tag, it_suffix());
    snprintf(r->topic, sizeof r->topic, "it.visit.%s", r->sfx);
    snprintf(r->dlq, sizeof r->dlq, "it.visit-dlq.%s", r->sfx);
    snprintf(r->alerts, sizeof r->alerts, "it.visit-alert.%s", r->sfx);
    snprintf(r->group, sizeof r->group, "it-visit-%s", r->sfx);
    for (int i = 0; i < 2; i++)
        snprintf(r->reps[i], 64, "vrep%d-%s", i, r->sfx);
    for (int i = 0; i < NACCTS; i++) {
        acct_model_t *a = &r->accts[i];
        ka_reject_t rej;
        snprintf(a->name, sizeof a->name, "Huasheng Tooling %s Works %d", r->sfx, i);
        assert_int_equal(ka_account_key(NULL, a->name, a->key, sizeof a->key, &rej), KA_OK);
        ka_account_id(a->key, a->id);
    }
    r->seed = seed;
    r->clock_ms = ka_now_ms() - 60 * DAY_MS;
    const char *brokers = ka_config_str(cfg, "KA_KAFKA_BROKERS");
    if (ka_kafka_create_topic(brokers, r->topic, 3, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, r->dlq, 1, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, r->alerts, 1, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
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

static pid_t spawn_worker(const run_t *r)
{
    static char s[8][200];
    snprintf(s[0], 200, "KA_TOPIC_VISIT=%s", r->topic);
    snprintf(s[1], 200, "KA_TOPIC_DEADLETTER=%s", r->dlq);
    snprintf(s[2], 200, "KA_TOPIC_ALERT=%s", r->alerts);
    snprintf(s[3], 200, "KA_CONSUMER_GROUP=%s", r->group);
    snprintf(s[4], 200, "KA_BATCH_MAX_EVENTS=25");
    snprintf(s[5], 200, "KA_BATCH_MAX_MS=10");
    snprintf(s[6], 200, "KA_SCAN_INTERVAL_MS=200");
    snprintf(s[7], 200, "KA_CLOCK_OFFSET_MS=%lld", (long long)r->clock_offset_ms);
    const char *set[] = {s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], NULL};
    live_worker = it_spawn(worker_path, set);
    return live_worker;
}

static void stop_worker(pid_t pid, int sig)
{
    it_stop(pid, sig);
    live_worker = 0;
}

static void wait_consumed(const run_t *r)
{
    long long sum = it_pg_wait(pg,
                               "SELECT coalesce(sum(next_offset), 0) FROM consumer_offset "
                               "WHERE consumer_group = $1",
                               r->group, r->produced, 90000);
    assert_int_equal(sum, r->produced);
}

/* Waits until this run's worker finished a scan at a clock of at least
 * clock_ms (its scans are recorded in scan_run). */
static void wait_scan(const run_t *r, const char *name, int64_t clock_ms)
{
    char at[24];
    snprintf(at, sizeof at, "%lld", (long long)clock_ms);
    const char *args[] = {name, r->group, at};
    for (int i = 0; i < 300; i++) {
        if (q_int("SELECT count(*) FROM scan_run WHERE name = $1 AND consumer_group = $2 "
                  "AND clock_at >= to_timestamp($3::bigint / 1000.0)",
                  3, args) == 1)
            return;
        usleep(100 * 1000);
    }
    fail_msg("no %s scan at clock %s by group %s within 30 s", name, at, r->group);
}

/* Events ------------------------------------------------------------------------- */

static void send_visit_as(run_t *r, const Ka__V1__VisitEvent *v, const char *key, int rejected)
{
    size_t len = ka__v1__visit_event__get_packed_size(v);
    uint8_t *buf = malloc(len + 1);
    ka__v1__visit_event__pack(v, buf);
    it_produce(kp, r->topic, key, buf, len);
    r->produced++;
    if (rejected) {
        r->rejected++;
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

/* Another spelling of the same company: upper case, stray spaces, or the
 * first word in full-width letters (ＨＵＡＳＨＥＮＧ). */
static void spelling(const char *name, int variant, char *out, size_t len)
{
    size_t o = 0;
    if (variant == 1) {
        for (size_t i = 0; name[i] && o + 1 < len; i++)
            out[o++] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    } else if (variant == 2) {
        o = (size_t)snprintf(out, len, "  ");
        for (size_t i = 0; name[i] && o + 3 < len; i++) {
            out[o++] = name[i];
            if (name[i] == ' ')
                out[o++] = ' ';
        }
        out[o++] = ' ';
    } else if (variant == 3) {
        size_t i = 0;
        for (; name[i] && name[i] != ' ' && o + 4 < len; i++) {
            unsigned cp = 0xFF01u + (unsigned char)name[i] - 0x21u;
            out[o++] = (char)0xEF;
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
        for (; name[i] && o + 1 < len; i++)
            out[o++] = name[i];
    } else {
        o = (size_t)snprintf(out, len, "%s", name);
    }
    out[o] = '\0';
}

static const char *man_classes[] = {"MAN", "MAn", "MaN", "mAN", "Man", "mAn", "maN", "man"};

static void man_of(const char *cls, Ka__V1__ManQualification *m)
{
    m->money = cls[0] == 'M';
    m->authority = cls[1] == 'A';
    m->need = cls[2] == 'N';
}

static void utc_date(int64_t ms, char out[16])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static int64_t day_start(int64_t ms)
{
    return ms - ((ms % DAY_MS) + DAY_MS) % DAY_MS;
}

/* What a visit does to the account, by the domain rules, independently of
 * the worker's code. */
static void model_visit(acct_model_t *a, int64_t t, const char *cls, int plan_kind, int days,
                        int64_t date_ms, int met_dm)
{
    a->visits++;
    if (met_dm && t > a->last_dm)
        a->last_dm = t;
    if (t < a->last_visit)
        return; /* arrived late: history only */
    if (cls) {
        if (strcmp(a->man, cls) != 0)
            a->man_changes++;
        snprintf(a->man, sizeof a->man, "%s", cls);
    }
    a->last_visit = t;
    int had_interval = a->plan_active ? a->plan_interval : 0;
    char had_action[12];
    snprintf(had_action, sizeof had_action, "%s", a->plan_action);
    a->plan_active = 0;
    if (strcmp(a->man, "man") == 0)
        return; /* not a prospect: no follow-up */
    switch (plan_kind) {
    case 1: /* continue, interval */
        a->plan_active = 1;
        a->plan_interval = days;
        a->plan_due = t + days * DAY_MS;
        snprintf(a->plan_action, sizeof a->plan_action, "continue");
        break;
    case 2: /* pause until a date */
        a->plan_active = 1;
        a->plan_interval = 0;
        a->plan_due = date_ms + DAY_MS;
        snprintf(a->plan_action, sizeof a->plan_action, "pause");
        break;
    case 3: /* give up */
        break;
    default: /* no plan: the rhythm of the one fulfilled goes on */
        if (had_interval) {
            a->plan_active = 1;
            a->plan_interval = had_interval;
            a->plan_due = t + had_interval * DAY_MS;
            snprintf(a->plan_action, sizeof a->plan_action, "%s", had_action);
        }
    }
}

static const int interval_days[] = {0, 20, 40, 60, 80};

/* One visit to account i at time t. plan_kind: 0 none, 1 interval (days
 * index 1..4), 2 pause until date, 3 give up. */
static void visit(run_t *r, int i, int64_t t, const char *cls, int plan_kind, int interval,
                  int date_days, int ncontacts, int dm_contact, const char *event_id, int variant)
{
    acct_model_t *a = &r->accts[i];
    char name[512], date[16], cnames[4][32];
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__VisitEvent v = KA__V1__VISIT_EVENT__INIT;
    Ka__V1__AccountRef ref = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__ManQualification man = KA__V1__MAN_QUALIFICATION__INIT;
    Ka__V1__FollowUpPlan plan = KA__V1__FOLLOW_UP_PLAN__INIT;
    Ka__V1__ContactMet contacts[4], *cptr[4];

    spelling(a->name, variant, name, sizeof name);
    h.event_id = (char *)event_id;
    h.occurred_at_ms = t;
    h.producer = "it";
    ref.name = name;
    v.header = &h;
    v.account = &ref;
    v.rep_id = r->reps[rnd(r, 2)];
    v.visited_at_ms = t;
    v.objective = (Ka__V1__VisitObjective)(1 + rnd(r, 5));
    v.satisfaction = (Ka__V1__Satisfaction)rnd(r, 6);
    if (cls) {
        man_of(cls, &man);
        v.man = &man;
    }
    int64_t date_ms = 0;
    if (plan_kind == 1) {
        plan.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_CONTINUE;
        plan.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_INTERVAL;
        plan.interval = (Ka__V1__RevisitInterval)interval;
        v.follow_up = &plan;
    } else if (plan_kind == 2) {
        date_ms = day_start(t + date_days * DAY_MS);
        utc_date(date_ms, date);
        plan.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_PAUSE;
        plan.next_case = KA__V1__FOLLOW_UP_PLAN__NEXT_NEXT_VISIT_DATE;
        plan.next_visit_date = date;
        v.follow_up = &plan;
    } else if (plan_kind == 3) {
        plan.action = KA__V1__FOLLOW_UP_ACTION__FOLLOW_UP_ACTION_GIVE_UP;
        v.follow_up = &plan;
    }
    for (int c = 0; c < ncontacts; c++) {
        Ka__V1__ContactMet init = KA__V1__CONTACT_MET__INIT;
        contacts[c] = init;
        snprintf(cnames[c], sizeof cnames[c], "Contact %u", rnd(r, 5));
        contacts[c].name = cnames[c];
        contacts[c].title = "manager";
        contacts[c].role = c == dm_contact ? KA__V1__BUYING_ROLE__BUYING_ROLE_DECISION_MAKER
                                           : (Ka__V1__BuyingRole)(2 + rnd(r, 4));
        contacts[c].function = (Ka__V1__BuyingFunction)rnd(r, 6);
        cptr[c] = &contacts[c];
    }
    v.n_contacts = (size_t)ncontacts;
    v.contacts = cptr;
    send_visit_as(r, &v, a->key, 0);
    model_visit(a, t, cls, plan_kind, interval_days[interval], date_ms, dm_contact >= 0);
}

static void random_visit(run_t *r, int n)
{
    char event_id[96];
    uint32_t dice = rnd(r, 100);
    if (dice < 5 && r->nsent > 0) { /* a re-delivered duplicate changes nothing */
        int k = (int)rnd(r, (uint32_t)r->nsent);
        it_produce(kp, r->topic, r->sent_key[k], r->sent[k], r->sent_len[k]);
        r->produced++;
        return;
    }
    int i = (int)rnd(r, NACCTS);
    acct_model_t *a = &r->accts[i];
    int64_t t;
    if (dice < 12 && a->last_visit) {
        t = a->last_visit - (int64_t)(1 + rnd(r, 48)) * HOUR_MS; /* arrives late */
    } else {
        r->clock_ms += HOUR_MS + rnd(r, 600) * 1000;
        t = r->clock_ms;
    }
    snprintf(event_id, sizeof event_id, "v-%s-%d", r->sfx, n);
    const char *cls = rnd(r, 100) < 60 ? man_classes[rnd(r, 8)] : NULL;
    uint32_t p = rnd(r, 100);
    int plan_kind = p < 40 ? 1 : p < 55 ? 2 : p < 65 ? 3 : 0;
    int ncontacts = (int)rnd(r, 4);
    int dm = ncontacts > 0 && rnd(r, 100) < 30 ? (int)rnd(r, (uint32_t)ncontacts) : -1;
    visit(r, i, t, cls, plan_kind, 1 + (int)rnd(r, 4), 10 + (int)rnd(r, 50), ncontacts, dm,
          event_id, (int)rnd(r, 4));
}

/* One bad event of each kind; each must be dead-lettered with its reason. */
static void send_bad_events(run_t *r)
{
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0x0f, 0x01};
    char id[96], unknown[96], notes[8] = {'b', 'a', 'd', (char)0xc3, (char)0x28, 0};
    Ka__V1__EventHeader h = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__AccountRef ref = KA__V1__ACCOUNT_REF__INIT;
    Ka__V1__ContactMet many[201], *mptr[201];

    it_produce(kp, r->topic, "garbage", garbage, sizeof garbage);
    r->produced++;
    r->rejected++;
    for (int k = 0; k < 7; k++) {
        Ka__V1__VisitEvent v = KA__V1__VISIT_EVENT__INIT;
        snprintf(id, sizeof id, "bad-%s-%d", r->sfx, k);
        h.event_id = id;
        h.occurred_at_ms = r->clock_ms;
        ref.name = r->accts[0].name;
        ref.account_id = NULL;
        v.header = &h;
        v.account = &ref;
        v.rep_id = r->reps[0];
        v.visited_at_ms = r->clock_ms;
        v.objective = KA__V1__VISIT_OBJECTIVE__VISIT_OBJECTIVE_SELL;
        switch (k) {
        case 0: v.account = NULL; break;                                  /* unresolvable */
        case 1: v.objective = 0; break;                                   /* missing */
        case 2: v.objective = (Ka__V1__VisitObjective)99; break;          /* unknown enum */
        case 3:                                                           /* unknown id */
            snprintf(unknown, sizeof unknown, "acct-unknown-%s", r->sfx);
            ref.account_id = unknown;
            ref.name = NULL;
            break;
        case 4: v.notes = notes; break;                                   /* invalid UTF-8 */
        case 5:                                                           /* too many */
            for (int c = 0; c < 201; c++) {
                Ka__V1__ContactMet init = KA__V1__CONTACT_MET__INIT;
                many[c] = init;
                many[c].name = "someone";
                mptr[c] = &many[c];
            }
            v.n_contacts = 201;
            v.contacts = mptr;
            break;
        case 6: v.visited_at_ms = ka_now_ms() + 30 * DAY_MS; break;       /* future */
        }
        send_visit_as(r, &v, r->accts[0].key, 1);
    }
}

/* Checks ------------------------------------------------------------------------- */

/* Every account is as the model says, in PostgreSQL. */
static void check_model(const run_t *r)
{
    char got[512], want[512];
    int visits = 0, changes = 0, visited = 0;
    for (int i = 0; i < NACCTS; i++) {
        const acct_model_t *a = &r->accts[i];
        const char *args[] = {a->id};
        query("SELECT coalesce(a.man_class, '-') || '|' || "
              "coalesce((extract(epoch FROM a.last_visit_at) * 1000)::bigint::text, '-') || '|' || "
              "coalesce((extract(epoch FROM a.last_decision_maker_visit_at) * 1000)::bigint::text, "
              "'-') || '|' || coalesce(f.action, '-') || '|' || "
              "coalesce((extract(epoch FROM f.next_due_at) * 1000)::bigint::text, '-') || '|' || "
              "(SELECT count(*) FROM visit v WHERE v.account_id = a.id) "
              "FROM account a LEFT JOIN follow_up f ON f.account_id = a.id WHERE a.id = $1",
              1, args, read_text, got);
        char lv[24] = "-", dm[24] = "-", due[24] = "-";
        if (a->last_visit)
            snprintf(lv, sizeof lv, "%lld", (long long)a->last_visit);
        if (a->last_dm)
            snprintf(dm, sizeof dm, "%lld", (long long)a->last_dm);
        if (a->plan_active)
            snprintf(due, sizeof due, "%lld", (long long)a->plan_due);
        snprintf(want, sizeof want, "%s|%s|%s|%s|%s|%d", a->man[0] ? a->man : "-", lv, dm,
                 a->plan_active ? a->plan_action : "-", due, a->visits);
        if (a->visits == 0) /* never named: never created */
            snprintf(want, sizeof want, "(no row)");
        visited += a->visits > 0;
        if (strcmp(got, want) != 0)
            fail_msg("account %d (%s): got %s, want %s", i, a->id, got, want);
        visits += a->visits;
        changes += a->man_changes;
    }
    /* every spelling merged: one account per company */
    char pattern[96];
    snprintf(pattern, sizeof pattern, "name:huasheng tooling %s works %%", r->sfx);
    const char *p[] = {pattern};
    assert_int_equal(q_int("SELECT count(*) FROM account WHERE canonical_key LIKE $1", 1, p),
                     visited);
    assert_int_equal(q_int("SELECT count(*) FROM visit v JOIN account a ON a.id = v.account_id "
                           "WHERE a.canonical_key LIKE $1", 1, p),
                     visits);
    assert_int_equal(q_int("SELECT count(*) FROM account_man_history h JOIN account a "
                           "ON a.id = h.account_id WHERE a.canonical_key LIKE $1", 1, p),
                     changes);
}

/* Late visits are kept, marked, and did not move the plan (check_model). */
static void check_late_visits(const run_t *r)
{
    char pattern[96];
    snprintf(pattern, sizeof pattern, "name:huasheng tooling %s works %%", r->sfx);
    const char *p[] = {pattern};
    assert_true(q_int("SELECT count(*) FROM visit v JOIN account a ON a.id = v.account_id "
                      "WHERE a.canonical_key LIKE $1 AND v.superseded", 1, p) > 0);
}

typedef struct fields {
    char man[8];
    long long last_visit, due;
    int has_due;
} fields_t;

static void keep_field(void *ud, const char *field, const char *value)
{
    fields_t *f = ud;
    if (strcmp(field, "man_class") == 0)
        snprintf(f->man, sizeof f->man, "%s", value);
    else if (strcmp(field, "last_visit_ms") == 0)
        f->last_visit = atoll(value);
    else if (strcmp(field, "next_due_ms") == 0) {
        f->due = atoll(value);
        f->has_due = 1;
    }
}

/* Redis holds the same: the account hash and the due-date sorted set. */
static void check_redis(const run_t *r)
{
    char err[KA_ERRSTR_SIZE], key[128];
    ka_redis_t *rds = ka_redis_connect(ka_config_str(cfg, "KA_REDIS_HOST"),
                                       (int)ka_config_int(cfg, "KA_REDIS_PORT"), 2000, err,
                                       sizeof err);
    assert_non_null(rds);
    for (int i = 0; i < NACCTS; i++) {
        const acct_model_t *a = &r->accts[i];
        fields_t f;
        double score;
        int found;
        memset(&f, 0, sizeof f);
        snprintf(key, sizeof key, "ka:account:%s", a->id);
        assert_int_equal(ka_redis_hgetall(rds, key, keep_field, &f, err, sizeof err), KA_OK);
        assert_string_equal(f.man, a->man);
        assert_int_equal(f.last_visit, a->last_visit);
        assert_int_equal(f.has_due, a->plan_active);
        assert_int_equal(ka_redis_zscore(rds, "ka:followup:due", a->id, &score, &found, err,
                                         sizeof err),
                         KA_OK);
        assert_int_equal(found, a->plan_active);
        if (a->plan_active) {
            assert_int_equal(f.due, a->plan_due);
            assert_int_equal((long long)score, a->plan_due);
        }
    }
    ka_redis_free(rds);
}

static void check_dead_letters(const run_t *r)
{
    const char *g[] = {r->group};
    assert_int_equal(q_int("SELECT count(*) FROM dead_letter WHERE consumer_group = $1", 1, g),
                     r->rejected);
    /* each kind of bad input has its own reason */
    static const char *reasons[] = {"decode_failed",  "unresolvable_account", "missing_field",
                                    "unknown_enum_value", "invalid_utf8", "list_too_long",
                                    "time_out_of_range"};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        const char *args[] = {r->group, reasons[i]};
        if (q_int("SELECT count(*) FROM dead_letter WHERE consumer_group = $1 AND reason = $2", 2,
                  args) < 1)
            fail_msg("no dead letter with reason %s", reasons[i]);
    }
    /* On the topic: every one, with its reason. A relay killed between the
     * send and its bookkeeping sends a row again; the source coordinates
     * identify repeats, so count distinct ones. */
    it_msgs_t got = it_consume_all(cfg, r->dlq, (size_t)r->rejected, 30000);
    char seen[64][48];
    size_t nseen = 0;
    for (size_t i = 0; i < got.n; i++) {
        char *reason = it_header(got.m[i], "ka_dlq_reason");
        char *topic = it_header(got.m[i], "ka_src_topic");
        char *part = it_header(got.m[i], "ka_src_partition");
        char *off = it_header(got.m[i], "ka_src_offset");
        char coord[48];
        assert_true(reason[0] != '\0');
        assert_string_equal(topic, r->topic);
        snprintf(coord, sizeof coord, "%s/%s", part, off);
        size_t k = 0;
        while (k < nseen && strcmp(seen[k], coord) != 0)
            k++;
        if (k == nseen && nseen < 64)
            snprintf(seen[nseen++], sizeof seen[0], "%s", coord);
        free(reason);
        free(topic);
        free(part);
        free(off);
    }
    assert_int_equal(nseen, (size_t)r->rejected);
    it_free_msgs(&got);
}

/* Tests -------------------------------------------------------------------------- */

static void play_stream(run_t *r)
{
    send_bad_events(r);
    for (int i = 0; i < NEVENTS; i++)
        random_visit(r, i);
}

static void mixed_stream_matches_model(void **state)
{
    static run_t r; /* static: the teardown frees it when an assertion ends the test */
    (void)state;
    init_run(&r, "m", 42);
    play_stream(&r);
    pid_t pid = spawn_worker(&r);
    wait_consumed(&r);
    stop_worker(pid, SIGTERM);
    check_model(&r);
    check_late_visits(&r);
    check_redis(&r);
    check_dead_letters(&r);
    free_run(&r);
}

static void sigkill_mid_stream_ends_in_the_same_state(void **state)
{
    static run_t r;
    (void)state;
    init_run(&r, "k", 42); /* the same stream as the uninterrupted run */
    play_stream(&r);
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
    check_late_visits(&r);
    check_redis(&r);
    check_dead_letters(&r);
    free_run(&r);
}

static void every_man_class_is_kept_and_man_stops_follow_ups(void **state)
{
    static run_t r;
    char id[96], want[16];
    (void)state;
    init_run(&r, "c", 7);
    for (int k = 0; k < 8; k++) {
        r.clock_ms += HOUR_MS;
        snprintf(id, sizeof id, "c-%s-%d", r.sfx, k);
        visit(&r, k, r.clock_ms, man_classes[k], 1, 1, 0, 1, -1, id, 0);
    }
    pid_t pid = spawn_worker(&r);
    wait_consumed(&r);
    for (int k = 0; k < 8; k++) {
        const char *args[] = {r.accts[k].id};
        query("SELECT man_class FROM account WHERE id = $1", 1, args, read_text, want);
        assert_string_equal(want, man_classes[k]);
        assert_int_equal(q_int("SELECT count(*) FROM account_man_history WHERE account_id = $1 "
                               "AND previous_man_class IS NULL", 1, args), 1);
        /* a continue plan was given every time; 'man' (not a prospect) drops it */
        assert_int_equal(q_int("SELECT count(*) FROM follow_up WHERE account_id = $1", 1, args),
                         k == 7 ? 0 : 1);
    }
    /* the 'man' account qualifies later: classed again, followed up again */
    r.clock_ms += HOUR_MS;
    snprintf(id, sizeof id, "c-%s-again", r.sfx);
    visit(&r, 7, r.clock_ms, "MAN", 1, 2, 0, 1, -1, id, 1);
    wait_consumed(&r);
    stop_worker(pid, SIGTERM);
    const char *args[] = {r.accts[7].id};
    assert_int_equal(q_int("SELECT count(*) FROM account_man_history WHERE account_id = $1 AND "
                           "previous_man_class = 'man' AND man_class = 'MAN'", 1, args), 1);
    assert_int_equal(q_int("SELECT interval_days FROM follow_up WHERE account_id = $1", 1, args),
                     40);
    check_model(&r);
    check_redis(&r);
    free_run(&r);
}

static long long alert_rows(const char *type, const char *subject, const char *transition)
{
    const char *args[] = {type, subject, transition};
    return q_int("SELECT count(*) FROM alert_history h JOIN alert_state s "
                 "ON s.fingerprint = h.fingerprint WHERE h.type = $1 AND s.subject_id = $2 "
                 "AND h.transition = $3",
                 3, args);
}

static void overdue_fires_on_time_once_and_the_next_visit_resolves_it(void **state)
{
    static run_t r;
    char id[96];
    (void)state;
    init_run(&r, "o", 11);
    /* Visited 10 days ago with a 20-day interval: due in 10 days. */
    int64_t t0 = ka_now_ms() - 10 * DAY_MS;
    snprintf(id, sizeof id, "o-%s-first", r.sfx);
    visit(&r, 0, t0, "MAN", 1, 1, 0, 1, -1, id, 0);
    int64_t due = r.accts[0].plan_due;
    const char *acct[] = {r.accts[0].id};

    /* An hour before the due date: nothing fires. */
    r.clock_offset_ms = due - HOUR_MS - ka_now_ms();
    pid_t pid = spawn_worker(&r);
    wait_consumed(&r);
    query("UPDATE account SET tier = 'A' WHERE id = $1", 1, acct, NULL, NULL);
    wait_scan(&r, "visit_overdue", due - 2 * HOUR_MS);
    stop_worker(pid, SIGTERM);
    assert_int_equal(alert_rows("visit_overdue", r.accts[0].id, "firing"), 0);

    /* An hour after it: one alert, starting at the due date, critical for
     * tier A, however many scans run. */
    r.clock_offset_ms = due + HOUR_MS - ka_now_ms();
    pid = spawn_worker(&r);
    wait_scan(&r, "visit_overdue", due);
    int64_t later = due + HOUR_MS - 1;
    wait_scan(&r, "visit_overdue", later + 1500); /* several more scans */
    assert_int_equal(alert_rows("visit_overdue", r.accts[0].id, "firing"), 1);
    char due_s[24];
    snprintf(due_s, sizeof due_s, "%lld", (long long)due);
    const char *check[] = {r.accts[0].id, due_s};
    assert_int_equal(q_int("SELECT count(*) FROM alert_state WHERE type = 'visit_overdue' "
                           "AND subject_id = $1 AND status = 'firing' AND severity = 'critical' "
                           "AND starts_at = to_timestamp($2::bigint / 1000.0)",
                           2, check),
                     1);

    /* The next visit resolves it, once. */
    snprintf(id, sizeof id, "o-%s-second", r.sfx);
    visit(&r, 0, due + 30 * 60000, NULL, 0, 0, 0, 0, -1, id, 2);
    wait_consumed(&r);
    wait_scan(&r, "visit_overdue", due + HOUR_MS + 2000);
    stop_worker(pid, SIGTERM);
    assert_int_equal(alert_rows("visit_overdue", r.accts[0].id, "firing"), 1);
    assert_int_equal(alert_rows("visit_overdue", r.accts[0].id, "resolved"), 1);
    /* the visit came after the due date: late against its plan */
    assert_int_equal(q_int("SELECT count(*) FROM visit WHERE account_id = $1 AND on_time = false",
                           1, acct), 1);
    check_model(&r);

    /* Downstream: the two transitions of one episode, as CloudEvents. */
    char fp[KA_FINGERPRINT_LEN];
    const char *labels[] = {r.accts[0].id};
    ka_alert_fingerprint(fp, "visit_overdue", labels, 1);
    it_msgs_t got = it_consume_all(cfg, r.alerts, 2, 30000);
    int firing = 0, resolved = 0;
    for (size_t i = 0; i < got.n; i++) {
        if (got.m[i]->key_len != strlen(fp) || memcmp(got.m[i]->key, fp, strlen(fp)) != 0)
            continue; /* other accounts fall due too when the clock jumps */
        Ka__V1__AlertEvent *a = ka__v1__alert_event__unpack(NULL, got.m[i]->len,
                                                             got.m[i]->payload);
        assert_non_null(a);
        assert_int_equal(a->type, KA__V1__ALERT_TYPE__ALERT_TYPE_VISIT_OVERDUE);
        assert_int_equal(a->starts_at_ms, due);
        firing += a->status == KA__V1__ALERT_STATUS__ALERT_STATUS_FIRING;
        resolved += a->status == KA__V1__ALERT_STATUS__ALERT_STATUS_RESOLVED;
        ka__v1__alert_event__free_unpacked(a, NULL);
    }
    assert_int_equal(firing, 1);
    assert_int_equal(resolved, 1);
    it_free_msgs(&got);
    free_run(&r);
}

static void decision_maker_gap_fires_once_and_a_decision_maker_visit_resolves_it(void **state)
{
    static run_t r;
    char id[96], late[96], early[96], closed[96];
    (void)state;
    init_run(&r, "d", 5);
    /* The account was last visited (by no decision maker) 100 days ago. */
    snprintf(id, sizeof id, "d-%s-first", r.sfx);
    visit(&r, 0, ka_now_ms() - 100 * DAY_MS, NULL, 0, 0, 0, 1, -1, id, 0);
    pid_t pid = spawn_worker(&r);
    wait_consumed(&r);
    /* Its deals, as the opportunity worker keeps them: one on the shortlist
     * (stage 05), one early (stage 03), one won. */
    snprintf(late, sizeof late, "opp-%s-late", r.sfx);
    snprintf(early, sizeof early, "opp-%s-early", r.sfx);
    snprintf(closed, sizeof closed, "opp-%s-closed", r.sfx);
    const char *deals[][4] = {{late, "05", "5000", "open"},
                              {early, "03", "3000", "open"},
                              {closed, "08", "10000", "won"}};
    for (int k = 0; k < 3; k++) {
        const char *args[] = {deals[k][0], r.accts[0].id, r.reps[0], deals[k][1], deals[k][2],
                              deals[k][3]};
        query("INSERT INTO opportunity (id, account_id, owner_rep_id, definition_id, stage_code, "
              "amount_minor, win_probability_bp, status, stage_entered_at, closed_at) "
              "VALUES ($1, $2, $3, 'default-8', $4, 100000, $5::int, $6, "
              "now() - interval '10 days', CASE WHEN $6 = 'open' THEN NULL ELSE now() END)",
              6, args, NULL, NULL);
    }
    int64_t t = ka_now_ms();
    wait_scan(&r, "decision_maker_gap", t + 500);
    assert_int_equal(alert_rows("decision_maker_gap", late, "firing"), 1);
    assert_int_equal(alert_rows("decision_maker_gap", early, "firing"), 0);
    assert_int_equal(alert_rows("decision_maker_gap", closed, "firing"), 0);

    /* A visit that meets a decision maker resolves it, once. */
    snprintf(id, sizeof id, "d-%s-dm", r.sfx);
    visit(&r, 0, ka_now_ms() - 60000, NULL, 0, 0, 0, 2, 1, id, 3);
    wait_consumed(&r);
    wait_scan(&r, "decision_maker_gap", ka_now_ms() + 500);
    stop_worker(pid, SIGTERM);
    assert_int_equal(alert_rows("decision_maker_gap", late, "firing"), 1);
    assert_int_equal(alert_rows("decision_maker_gap", late, "resolved"), 1);
    const char *args[] = {late};
    assert_int_equal(q_int("SELECT count(*) FROM alert_state WHERE subject_id = $1 "
                           "AND status = 'resolved' AND $1 = ANY(cause_event_ids) IS NOT TRUE "
                           "AND cardinality(cause_event_ids) = 1",
                           1, args),
                     1);
    check_model(&r);
    free_run(&r);
}

static int setup(void **state)
{
    (void)state;
    it_open("it-visit", &cfg, &pg, &kp);
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
        fprintf(stderr, "usage: test_visit PATH-TO-visit-worker\n");
        return 2;
    }
    worker_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(mixed_stream_matches_model, kill_leftover_worker),
        cmocka_unit_test_teardown(sigkill_mid_stream_ends_in_the_same_state, kill_leftover_worker),
        cmocka_unit_test_teardown(every_man_class_is_kept_and_man_stops_follow_ups,
                                  kill_leftover_worker),
        cmocka_unit_test_teardown(overdue_fires_on_time_once_and_the_next_visit_resolves_it,
                                  kill_leftover_worker),
        cmocka_unit_test_teardown(
            decision_maker_gap_fires_once_and_a_decision_maker_visit_resolves_it,
            kill_leftover_worker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

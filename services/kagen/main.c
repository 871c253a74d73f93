/* kagen: a deterministic, seeded generator of realistic opportunity streams
 * for the demo (and, later, the benchmarks). It reads the reps of the org
 * tree from PostgreSQL, plans every opportunity's life (stage moves forward
 * and back, amount updates, owner changes by the team manager, wins and
 * losses) and produces the events of one phase to Kafka:
 *
 *   phase 1  the history: every team sells normally;
 *   phase 2  the recent weeks: a few "dry" teams stop creating
 *            opportunities and lose most of the open ones, so their funnel
 *            falls under its baseline.
 *
 * The same seed plans the same company both times, so phase 2 continues
 * exactly where phase 1 stopped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ka/v1/opportunity.pb-c.h"
#include "ka_config.h"
#include "ka_kafka.h"
#include "ka_log.h"
#include "ka_pg.h"
#include "ka_validate.h"

#define DAY_MS 86400000LL
#define HISTORY_DAYS 120
#define RECENT_DAYS 21

typedef struct rep {
    char *id, *team, *manager, *bu, *def;
} rep_t;

typedef struct plan_event {
    int64_t at_ms;
    int opp;
    int kind; /* Ka__V1__OpportunityEvent__KindCase */
    char stage[8];
    int64_t amount;
    int new_owner; /* rep index for owner changes */
    int seq;
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
} gen_t;

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
        const char *v[5];
        for (int c = 0; c < 5; c++)
            v[c] = ka_pgres_value(res, i, c) ? ka_pgres_value(res, i, c) : "";
        g->reps[i].id = ka_strdup(v[0]);
        g->reps[i].team = ka_strdup(v[1]);
        g->reps[i].manager = ka_strdup(v[2]);
        g->reps[i].bu = ka_strdup(v[3]);
        g->reps[i].def = ka_strdup(v[4]);
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
        snprintf(account, sizeof account, "客户 %04d 有限公司", p->opp % 1500);
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
        u.amount_minor_present_case = KA__V1__OPPORTUNITY_UPDATED__AMOUNT_MINOR_PRESENT_AMOUNT_MINOR;
        u.amount_minor = p->amount;
        e.updated = &u;
        break;
    case KA__V1__OPPORTUNITY_EVENT__KIND_STAGE_CHANGED:
        sc.to_stage_code = (char *)p->stage;
        e.stage_changed = &sc;
        break;
    case KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED:
        e.actor_id = owner->manager; /* only a superior may hand it over */
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

static int failures;

static void on_delivery(void *ud, void *opaque, ka_err_t status, int possibly, const char *err)
{
    (void)ud;
    (void)opaque;
    (void)possibly;
    if (status != KA_OK && failures++ < 5)
        fprintf(stderr, "kagen: delivery failed: %s\n", err ? err : "?");
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kagen [--seed N] [--opportunities N] [--dry-teams N] [--phase 1|2]\n"
            "             [--prefix ID] [--now-ms MS]\n\n"
            "Plays a realistic opportunity stream for the reps in KA_PG_DSN's org tree to\n"
            "KA_TOPIC_OPPORTUNITY. Phase 1 is %d days of history; phase 2 the last %d days,\n"
            "in which N dry teams stop opening deals and lose most open ones. The same seed\n"
            "and --now-ms plan the same stream, so phase 2 continues phase 1.\n",
            HISTORY_DAYS, RECENT_DAYS);
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
    gen_t g;
    int rc = 1;

    memset(&g, 0, sizeof g);
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
        else {
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
                    "WHERE c.descendant_id = r.id AND d.kind = 'division'), 'default-8') "
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
    qsort(g.events, (size_t)g.nevents, sizeof *g.events, by_time);

    kp = ka_producer_new(cfg, on_delivery, NULL, err, sizeof err);
    if (!kp) {
        fprintf(stderr, "kagen: %s\n", err);
        goto out;
    }
    const char *topic = ka_config_str(cfg, "KA_TOPIC_OPPORTUNITY");
    int sent = 0;
    for (int i = 0; i < g.nevents; i++) {
        plan_event_t *p = &g.events[i];
        if (p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED)
            owner_now[p->opp] = p->new_owner;
        int in_phase = phase == 1 ? p->at_ms < split : p->at_ms >= split;
        uint8_t *buf;
        size_t len = encode(&g, p, owner_now, &buf);
        if (in_phase) {
            char key[64];
            snprintf(key, sizeof key, "%s-%06d", g.prefix, p->opp);
            ka_err_t src;
            while ((src = ka_producer_send(kp, topic, key, strlen(key), buf, len, NULL, 0, NULL,
                                           err, sizeof err)) == KA_ERR_RETRY)
                ka_producer_poll(kp, 50);
            if (src != KA_OK) {
                fprintf(stderr, "kagen: %s\n", err);
                free(buf);
                goto out;
            }
            sent++;
        }
        free(buf);
    }
    if (ka_producer_flush(kp, 60000) != KA_OK || failures) {
        fprintf(stderr, "kagen: Kafka did not confirm every event\n");
        goto out;
    }
    printf("%d\n", sent);
    fprintf(stderr, "kagen: phase %lld: %d events for %lld opportunities of %d reps "
                    "(%d dry teams) to %s\n",
            phase, sent, nopps, g.nreps, g.ndry, topic);
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
    }
    free(g.reps);
    free(g.dry_teams);
    free(g.events);
    free(g.owner);
    free(owner_now);
    ka_config_free(cfg);
    return rc;
}

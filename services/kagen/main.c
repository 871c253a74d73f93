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
 * other events are the same with or without them (plan_forecast); and the
 * opportunities of the accounts' repeat business, one per account and month
 * of call-offs, which the order stream's orders name (repeat.c: both streams
 * plan the orders the same way to agree on them).
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
 * accounts stop ordering.
 *
 * Where each rule of the sample lives: plan.c the deals' lives (every stream
 * starts from them), opportunities.c their events, forecast.c the
 * confirmations and adjustments, visits.c the visits, orders.c the orders and
 * the products and distributors they are priced from, repeat.c the repeat
 * business's opportunities, produce.c the Kafka
 * producer; this file the options, the company read from PostgreSQL and the
 * loop that plays one stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast.h"
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_account_key.h"
#include "ka_config.h"
#include "ka_log.h"
#include "orders.h"
#include "quotas.h"
#include "repeat.h"
#include "visits.h"

int opp_accounts = 1500; /* --accounts (kagen.h) */
int unauthorized_pct;     /* --unauthorized-pct (kagen.h) */

static struct {
    int won, before, repeat, repeat_opp, dist, diverted, dumped, undone, later_month;
} ostats;

/* The products and the distributors' territories and floors, as loaded:
 * what orders are priced from. Returns 0, or -1 with the reason in err. */
static int load_catalog(ka_pg_t *pg, ogen_t *og, char *err, size_t errlen)
{
    if (ka_pg_query(pg, "SELECT sku, name FROM product WHERE active ORDER BY sku", 0, NULL,
                    read_products, og, err, errlen) != KA_OK ||
        ka_pg_query(pg, "SELECT id FROM distributor WHERE active ORDER BY id", 0, NULL,
                    read_dists, og, err, errlen) != KA_OK ||
        ka_pg_query(pg, "SELECT distributor_id, region_code FROM distributor_territory "
                        "ORDER BY 1, 2", 0, NULL, read_territories, og, err,
                    errlen) != KA_OK ||
        ka_pg_query(pg, "SELECT distributor_id, sku, floor_price_minor FROM "
                        "distributor_floor_price ORDER BY 1, 2", 0, NULL, read_floors, og,
                    err, errlen) != KA_OK)
        return -1;
    return 0;
}

/* The order plan (the order stream's, from its own random stream), and the
 * opportunities of the accounts' repeat business from it. The order stream
 * plans from the deals in time order: so does this. */
static void plan_order_side(gen_t *g, ogen_t *og, int nopps, int nbase, int64_t split,
                            uint64_t seed, int repeat)
{
    gen_t sorted = *g;
    sorted.events = ka_calloc((size_t)nbase + 1, sizeof *sorted.events);
    memcpy(sorted.events, g->events, (size_t)nbase * sizeof *sorted.events);
    sorted.nevents = sorted.capevents = nbase;
    qsort(sorted.events, (size_t)nbase, sizeof *sorted.events, by_time);
    og->seed = seed ^ 0x6f72646572736b61ULL; /* the order stream's random stream */
    og->g = &sorted;
    og->begin = g->now_ms - ORDER_HISTORY_DAYS * DAY_MS;
    og->split = split;
    plan_orders(og, nopps);
    if (repeat)
        plan_repeat(og, nopps);
    og->g = g;
    free(sorted.events);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: kagen [--stream opportunities|visits|orders|quotas] [--seed N]\n"
            "             [--opportunities N] [--dry-teams N] [--phase 1|2] [--prefix ID]\n"
            "             [--now-ms MS] [--from-ms MS] [--to-ms MS] [--accounts N] [--rate N]\n"
            "             [--unauthorized-pct N] [--format protobuf|json|cloudevents|confluent]\n"
            "             [--under NODE[,NODE...]]\n\n"
            "Plays a realistic opportunity stream for the reps in KA_PG_DSN's org tree (or\n"
            "only those under the --under nodes) to\n"
            "KA_TOPIC_OPPORTUNITY. Phase 1 is %d days of history; phase 2 the last %d days,\n"
            "in which N dry teams stop opening deals and lose most open ones. The same seed\n"
            "and --now-ms plan the same stream, so phase 2 continues phase 1. Owners\n"
            "confirm most deals from stage 03 on for the forecast (商机确认), with their\n"
            "products, some again when the close date moves or when they call it commit;\n"
            "in phase 2 a few team managers adjust their team's commit (修订销售预测).\n"
            "Each account's month of repeat orders worth 100,000 or more has an opportunity\n"
            "of its own, opened by the account's owner weeks to a quarter ahead, confirmed\n"
            "best case, then commit with its products; the month's orders name it.\n\n"
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
            "stdout and a summary on stderr. --from-ms and --to-ms send only the phase's\n"
            "events from, and before, those times, so a phase can be played in slices (the\n"
            "demo takes the daily snapshots between them).\n\n"
            "--stream quotas sends nothing: it writes the reps' quotas, as `kactl load\n"
            "quotas` takes them, to stdout, from the same plan as the order stream (give it\n"
            "the same options): each rep's month 90%% to 110%% of its run rate, what it\n"
            "booked in the %d days before phase 2 (net of cancellations and returns) a\n"
            "month; every node above the sum of its reps, a quarter three months; the\n"
            "months and quarters of the year of --now-ms and of the next.\n\n"
            "For the benchmark (tests/bench): --accounts N spreads the deals over N accounts\n"
            "(default 1500), --rate N sends N events a second instead of as fast as Kafka\n"
            "takes them, and --unauthorized-pct N has the owner, after N%% of the stage\n"
            "changes, try to hand the deal over himself (refused, with an alert).\n\n"
            "--format writes the events as bare protobuf (the default), in the proto3 JSON\n"
            "mapping (content-type application/json), as structured CloudEvents\n"
            "(application/cloudevents+json, the event as data) or in the Confluent wire\n"
            "format (magic byte 0, schema id 1, message index): the same stream either way.\n",
            HISTORY_DAYS, RECENT_DAYS, ORDER_HISTORY_DAYS, QUOTA_WINDOW_DAYS);
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
    long long from_ms = 0, to_ms = 4102444800000LL; /* --from-ms, --to-ms */
    const char *prefix = "opp", *format = "protobuf"; /* --prefix, --format */
    const char *under = NULL; /* --under: comma-separated node ids, NULL for the whole tree */
    int visits = 0, orders = 0, quotas = 0;
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
        else if (strcmp(a, "--from-ms") == 0)
            bad = parse_int(a, v, 0, 4102444800000LL, &from_ms);
        else if (strcmp(a, "--to-ms") == 0)
            bad = parse_int(a, v, 0, 4102444800000LL, &to_ms);
        else if (strcmp(a, "--prefix") == 0)
            prefix = v;
        else if (strcmp(a, "--under") == 0)
            under = v;
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
        else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "protobuf") && strcmp(v, "json") && strcmp(v, "cloudevents") &&
                strcmp(v, "confluent")) {
                fprintf(stderr, "kagen: --format expects protobuf, json, cloudevents or "
                                "confluent, got \"%s\"\n", v);
                bad = -1;
            } else
                format = v;
        } else if (strcmp(a, "--stream") == 0) {
            if (strcmp(v, "opportunities") == 0 || strcmp(v, "visits") == 0 ||
                strcmp(v, "orders") == 0 || strcmp(v, "quotas") == 0) {
                visits = strcmp(v, "visits") == 0;
                quotas = strcmp(v, "quotas") == 0;
                orders = strcmp(v, "orders") == 0 || quotas; /* quotas come from the orders */
            } else {
                fprintf(stderr, "kagen: --stream expects opportunities, visits, orders or "
                                "quotas, got \"%s\"\n", v);
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
                    "AND ($1::text IS NULL OR EXISTS (SELECT 1 FROM org_closure u "
                    "WHERE u.descendant_id = r.id AND u.ancestor_id = ANY(string_to_array($1, ','))))"
                    " ORDER BY r.id",
                    1, (ka_pg_param_t[]){{under, 0, 0}}, read_reps, &g, err, sizeof err) != KA_OK) {
        fprintf(stderr, "kagen: %s\n", err);
        goto out;
    }
    if (g.nreps == 0 && under) {
        fprintf(stderr, "kagen: no active reps under a managed team below --under %s: give org "
                        "node ids (as in deploy/sample/org.csv, e.g. div-ind)\n", under);
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
    for (int i = 0; i < nopps; i++) {
        int64_t start = begin + (int64_t)rnd(&g, (uint32_t)((g.now_ms - begin) / 1000)) * 1000;
        plan_opportunity(&g, i, start, split);
    }
    if (!visits && !orders) {
        if (load_catalog(pg, &og, err, sizeof err) != 0) {
            fprintf(stderr, "kagen: %s\n", err);
            goto out;
        }
        /* each from a random stream of its own, after the rest: what was
         * planned before stays as it was */
        int n0 = g.nevents;
        if (og.nproducts) /* no products, no orders: no repeat business */
            plan_order_side(&g, &og, (int)nopps, n0, split, (uint64_t)seed, 1);
        og.seed = (uint64_t)seed ^ 0x6c696e65736b61ULL;
        plan_forecast(&g, &og, (int)nopps, split);
        plan_reconfirmations(&g, (int)nopps, n0, g.nevents, split);
        plan_assessments(&g, n0);
        repeat_events(&g, &og);
    }
    qsort(g.events, (size_t)g.nevents, sizeof *g.events, by_time);
    /* every deal's owner as the stream goes, the repeat business's too */
    owner_now = ka_calloc((size_t)nopps + (size_t)og.nrepeats + 1, sizeof *owner_now);

    if (orders) {
        if (load_catalog(pg, &og, err, sizeof err) != 0) {
            fprintf(stderr, "kagen: %s\n", err);
            goto out;
        }
        if (og.nproducts == 0) {
            fprintf(stderr, "kagen: no products to order: load them first (kactl load "
                            "sample)\n");
            goto out;
        }
    }

    if (quotas) {
        plan_order_side(&g, &og, (int)nopps, g.nevents, split, (uint64_t)seed, 0);
        if (write_quotas(&og, pg, (uint64_t)seed, split, stdout, err, sizeof err) != 0) {
            fprintf(stderr, "kagen: %s\n", err);
            goto out;
        }
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "kagen: could not write the quotas to stdout\n");
            goto out;
        }
        rc = 0;
        goto out;
    }
    kp = ka_producer_new(cfg, on_delivery, NULL, err, sizeof err);
    if (!kp) {
        fprintf(stderr, "kagen: %s\n", err);
        goto out;
    }
    produce_set_format(format, visits   ? &ka__v1__visit_event__descriptor
                               : orders ? &ka__v1__order_event__descriptor
                                        : &ka__v1__opportunity_event__descriptor);
    const char *topic = ka_config_str(cfg, visits   ? "KA_TOPIC_VISIT"
                                           : orders ? "KA_TOPIC_ORDER"
                                                    : "KA_TOPIC_OPPORTUNITY");
    int sent = 0, assessed = 0, confirmed = 0, strangers = 0, adjusted = 0, repeats = 0;
    if (orders) {
        /* a stream of its own, so the opportunities above plan the same */
        plan_order_side(&g, &og, (int)nopps, g.nevents, split, (uint64_t)seed, 1);
        order_events(&og);
        for (int i = 0; i < og.nevents; i++) {
            const order_event_t *ev = &og.events[i];
            if ((phase == 1 ? ev->at_ms >= split : ev->at_ms < split) || ev->at_ms < from_ms ||
                ev->at_ms >= to_ms)
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
                int y0, m0, y1, m1; /* undone in a later month than booked */
                ym_of(o->booked_ms, &y0, &m0);
                ym_of(ev->at_ms, &y1, &m1);
                ostats.later_month += y1 * 12 + m1 > y0 * 12 + m0;
                ostats.undone++;
                continue;
            }
            ostats.won += o->opp >= 0 && !o->repeat_opp;
            ostats.before += o->before_won;
            ostats.repeat += o->opp < 0 || o->repeat_opp;
            ostats.repeat_opp += o->repeat_opp;
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
            if ((phase == 1 ? v->at_ms >= split : v->at_ms < split) || v->at_ms < from_ms ||
                v->at_ms >= to_ms)
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
            int in_phase = (phase == 1 ? p->at_ms < split : p->at_ms >= split) &&
                           p->at_ms >= from_ms && p->at_ms < to_ms;
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
                assessed += p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_ASSESSED;
                confirmed += p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED;
                strangers += p->stranger != 0;
                adjusted += p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED;
                repeats += p->kind == KA__V1__OPPORTUNITY_EVENT__KIND_CREATED && p->opp >= nopps;
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
                        "booked before the won event), %d repeat orders (%d of them naming "
                        "their month's repeat-business opportunity), %d through %d "
                        "distributors (%d shipped outside the territory, %d under the floor "
                        "price), %d cancellations and returns (%d in a later month than the "
                        "booking); %d big accounts stop ordering in phase 2\n",
                phase, sent, topic, ostats.won, ostats.before, ostats.repeat, ostats.repeat_opp,
                ostats.dist,
                og.ndists, ostats.diverted, ostats.dumped, ostats.undone, ostats.later_month,
                og.churners);
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
                        "(%d dry teams) to %s: %d forecast confirmations (%d by someone not "
                        "the owner), %d managers' adjustments, %d value assessments; %d "
                        "opportunities of the accounts' repeat business opened\n",
                phase, sent, nopps, g.nreps, g.ndry, topic, confirmed, strangers, adjusted,
                assessed, repeats);
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

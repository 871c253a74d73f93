/* The sample company's rules, asserted on what kagen really sends: it plays
 * its streams to topics of this test's own (from the sample company tests/run
 * loads), the test reads them back and checks them against kagen's quota
 * file and the products on file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "it_util.h"
#include "ka/v1/opportunity.pb-c.h"
#include "ka/v1/order.pb-c.h"

#define DAY_MS 86400000LL
#define OPPS "1200"

static const char *kagen;
static ka_config_t *cfg;
static ka_pg_t *pg;
static char opp_topic[128], order_topic[128];
/* The streams end here (a fixed clock, so the plan is the same every run):
 * 2026-11-30 00:53:20 UTC; phase 2 starts 21 days before. */
static const long long now_ms = 1796000000000LL;
static const long long split_ms = 1796000000000LL - 21 * DAY_MS;

/* Runs kagen with args and the test's topics; returns its exit code, its
 * stdout in *out (malloc'd, NUL-terminated). */
static int run_kagen(const char *args, char **out)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "KA_TOPIC_OPPORTUNITY=%s KA_TOPIC_ORDER=%s %s --opportunities " OPPS
             " --now-ms %lld %s",
             opp_topic, order_topic, kagen, now_ms, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20, n = 0, got;
    char *buf = malloc(cap);
    assert_non_null(buf);
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[n] = '\0';
    *out = buf;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Plays one stream and phase; returns the number of events kagen sent. */
static long play(const char *args)
{
    char *out;
    assert_int_equal(run_kagen(args, &out), 0);
    long n = atol(out);
    free(out);
    assert_true(n > 0);
    return n;
}

typedef struct quota_row {
    char node[64];
    char kind[8];
    int year, month;
    long long amount;
} quota_row_t;

/* year * 12 + month - 1 of a time (UTC) */
static int month_of(long long ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    return (tm.tm_year + 1900) * 12 + tm.tm_mon;
}

static int rep_of(char reps[][64], int nreps, const char *id)
{
    for (int i = 0; i < nreps; i++)
        if (strcmp(reps[i], id) == 0)
            return i;
    return -1;
}

/* Each rep's month is 90% to 110% of what its orders booked a month in the 90
 * days before phase 2 (net of cancellations and returns by then), for the
 * months and quarters of this year and the next; a team has its reps' sum. */
static void quotas_follow_the_reps_run_rates(void **state)
{
    (void)state;
    long n = play("--stream orders --phase 1");
    it_msgs_t msgs = it_consume_all(cfg, order_topic, (size_t)n, 60000);
    assert_int_equal(msgs.n, (size_t)n);

    /* the orders booked in the window, and those undone before phase 2 */
    static char reps[4096][64];
    static long long booked[4096];
    int nreps = 0, later_month = 0;
    size_t norders = 0;
    char(*ids)[64] = calloc(msgs.n + 1, 64);
    int *rep_idx = calloc(msgs.n + 1, sizeof *rep_idx);
    long long *amount = calloc(msgs.n + 1, sizeof *amount);
    int *undone = calloc(msgs.n + 1, sizeof *undone);
    assert_true(ids && rep_idx && amount && undone);
    for (size_t i = 0; i < msgs.n; i++) {
        Ka__V1__OrderEvent *e = ka__v1__order_event__unpack(NULL, msgs.m[i]->len,
                                                             msgs.m[i]->payload);
        assert_non_null(e);
        if (e->status == KA__V1__ORDER_STATUS__ORDER_STATUS_BOOKED) {
            if (e->booked_at_ms >= split_ms - 90 * DAY_MS && e->booked_at_ms < split_ms) {
                int r = rep_of(reps, nreps, e->rep_id);
                if (r < 0) {
                    assert_true(nreps < 4096);
                    r = nreps++;
                    snprintf(reps[r], 64, "%s", e->rep_id);
                }
                long long total = 0;
                for (size_t l = 0; l < e->n_lines; l++)
                    total += e->lines[l]->quantity_milli * e->lines[l]->unit_price_minor / 1000;
                snprintf(ids[norders], 64, "%s", e->order_id);
                rep_idx[norders] = r;
                amount[norders++] = total;
            }
        } else { /* phase 1 only: undone before phase 2 */
            later_month += month_of(e->header->occurred_at_ms) > month_of(e->booked_at_ms);
            for (size_t o = 0; o < norders; o++)
                if (strcmp(ids[o], e->order_id) == 0)
                    undone[o] = 1;
        }
        ka__v1__order_event__free_unpacked(e, NULL);
    }
    it_free_msgs(&msgs);
    assert_true(later_month >= 3); /* cancelled or returned across a month boundary */
    for (size_t o = 0; o < norders; o++)
        if (!undone[o])
            booked[rep_idx[o]] += amount[o];

    char *csv;
    assert_int_equal(run_kagen("--stream quotas", &csv), 0);
    assert_true(strncmp(csv, "node_id,period_kind,period_start,amount_minor\n", 46) == 0);
    int year;
    {
        time_t t = (time_t)(now_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        year = tm.tm_year + 1900;
    }
    int checked = 0, low = 0, high = 0, months = 0, quarters = 0, next_year = 0;
    long long month_of_rep0 = -1, team_sum = 0, team_quota = -1;
    char team0[64]; /* the team of the first rep with revenue: the sum of its reps */
    snprintf(team0, sizeof team0, "%.*s", (int)(strrchr(reps[0], '-') - reps[0] - 4), reps[0] + 4);
    for (char *line = strchr(csv, '\n') + 1, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        assert_non_null(end);
        *end = '\0';
        quota_row_t q;
        assert_int_equal(sscanf(line, "%63[^,],%7[^,],%d-%d-01,%lld", q.node, q.kind, &q.year,
                                &q.month, &q.amount),
                         5);
        assert_true(q.year == year || q.year == year + 1);
        next_year += q.year == year + 1;
        if (strcmp(q.kind, "quarter") == 0) {
            quarters++;
            assert_true(q.month == 1 || q.month == 4 || q.month == 7 || q.month == 10);
            if (strncmp(q.node, "rep-", 4) == 0 && strcmp(q.node, reps[0]) == 0)
                assert_int_equal(q.amount, 3 * month_of_rep0);
            continue;
        }
        months++;
        if (q.month != 1 || q.year != year)
            continue;
        if (strcmp(q.node, team0) == 0)
            team_quota = q.amount;
        if (strncmp(q.node, "rep-", 4) != 0)
            continue;
        if (strncmp(q.node + 4, team0, strlen(team0)) == 0 && q.node[4 + strlen(team0)] == '-')
            team_sum += q.amount;
        int r = rep_of(reps, nreps, q.node);
        if (r == 0)
            month_of_rep0 = q.amount;
        if (r < 0 || booked[r] <= 0)
            continue; /* no revenue in the window: its team's mean */
        /* a month's worth, 90% to 110%, rounded to the thousand yuan */
        double rate = (double)booked[r] * 30 / 90;
        assert_true(q.amount >= rate * 0.9 - 50000 && q.amount <= rate * 1.1 + 50000);
        low += q.amount < rate * 0.97;
        high += q.amount > rate * 1.03;
        checked++;
    }
    free(csv);
    assert_true(checked > 100);
    assert_true(low > 10 && high > 10); /* it varies, both ways */
    assert_int_equal(months, 3 * quarters);
    assert_true(next_year * 2 == months + quarters);
    assert_true(team_sum > 0);
    assert_int_equal(team_quota, team_sum);
    free(ids);
    free(rep_idx);
    free(amount);
    free(undone);
}

typedef struct deal {
    char id[64], owner[64];
    int handed_over; /* 1: confirmed, then handed over, not confirmed since */
    int confirmed;
} deal_t;

static deal_t *deal_of(deal_t *deals, int *n, const char *id)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(deals[i].id, id) == 0)
            return &deals[i];
    deal_t *d = &deals[(*n)++];
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", id);
    return d;
}

/* Every confirmation comes from the deal's owner of the moment but one (the
 * colleague's mistake), a deal handed over after its confirmation is
 * confirmed again by its new owner, a manager adjusts only the team he
 * manages, and some deals carry the 20-question value assessment. */
static void confirmations_assessments_and_adjustments(void **state)
{
    (void)state;
    long n = play("--phase 1") + play("--phase 2");
    it_msgs_t msgs = it_consume_all(cfg, opp_topic, (size_t)n, 60000);
    assert_int_equal(msgs.n, (size_t)n);
    int ndeals = 0, strangers = 0, reconfirmed = 0, assessed = 0, high = 0, adjusted = 0;
    deal_t *deals = calloc((size_t)n + 1, sizeof *deals);
    assert_non_null(deals);
    /* one key per deal, so each deal's events come in order */
    for (size_t i = 0; i < msgs.n; i++) {
        Ka__V1__OpportunityEvent *e = ka__v1__opportunity_event__unpack(NULL, msgs.m[i]->len,
                                                                        msgs.m[i]->payload);
        assert_non_null(e);
        deal_t *d = deal_of(deals, &ndeals, e->opportunity_id);
        switch (e->kind_case) {
        case KA__V1__OPPORTUNITY_EVENT__KIND_CREATED:
            snprintf(d->owner, sizeof d->owner, "%s", e->created->owner_rep_id);
            break;
        case KA__V1__OPPORTUNITY_EVENT__KIND_OWNER_CHANGED:
            assert_string_not_equal(e->actor_id, d->owner); /* the manager hands it over */
            snprintf(d->owner, sizeof d->owner, "%s", e->owner_changed->new_owner_rep_id);
            d->handed_over = d->confirmed;
            break;
        case KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_CONFIRMED:
            if (strcmp(e->actor_id, d->owner) != 0) {
                strangers++;
                break;
            }
            reconfirmed += d->handed_over;
            d->handed_over = 0;
            d->confirmed = 1;
            break;
        case KA__V1__OPPORTUNITY_EVENT__KIND_ASSESSED: {
            const Ka__V1__ValueAssessed *a = e->assessed;
            assert_int_equal(a->n_is_there_an_opportunity, 5);
            assert_int_equal(a->n_can_we_compete, 5);
            assert_int_equal(a->n_can_we_win, 5);
            assert_int_equal(a->n_is_it_worth_winning, 5);
            int score = 0;
            for (int q = 0; q < 5; q++)
                score += a->is_there_an_opportunity[q] + a->can_we_compete[q] +
                         a->can_we_win[q] + a->is_it_worth_winning[q];
            assert_string_equal(e->actor_id, d->owner);
            assessed++;
            high += score > 10;
            break;
        }
        case KA__V1__OPPORTUNITY_EVENT__KIND_FORECAST_ADJUSTED: {
            const char *node[] = {e->forecast_adjusted->node_id, e->actor_id};
            assert_int_equal(it_pg_int_args(pg, "SELECT count(*) FROM org_node WHERE id = $1 "
                                                "AND kind = 'team' AND manager_user_id = $2",
                                            2, node),
                             1);
            adjusted++;
            break;
        }
        default:
            break;
        }
        ka__v1__opportunity_event__free_unpacked(e, NULL);
    }
    it_free_msgs(&msgs);
    free(deals);
    assert_int_equal(strangers, 1);
    assert_true(reconfirmed >= 1);
    assert_true(assessed > 100);
    assert_true(high > 10 && high < assessed - 10);
    assert_true(adjusted >= 1);
}

/* Every product on file is sold in its family's unit. */
static void products_come_in_their_familys_unit(void **state)
{
    (void)state;
    static const char *const fam[][2] = {{"压缩机", "台"}, {"变频器", "台"}, {"控制柜", "面"},
                                         {"电缆", "米"},   {"储能柜", "套"}, {"空调机组", "台"},
                                         {"传感器", "套"}, {"阀门", "件"}};
    long long sample = it_pg_int(pg, "SELECT count(*) FROM product WHERE sku LIKE 'SKU-%'", NULL);
    assert_int_equal(sample, 40);
    long long fitting = 0;
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM product WHERE sku LIKE 'SKU-%%' AND name LIKE '%s %%' "
                 "AND unit = '%s'",
                 fam[i][0], fam[i][1]);
        fitting += it_pg_int(pg, sql, NULL);
    }
    assert_int_equal(fitting, sample);
}

static int setup(void **state)
{
    char err[KA_ERRSTR_SIZE];
    (void)state;
    cfg = it_config("it");
    pg = it_pg(cfg);
    snprintf(opp_topic, sizeof opp_topic, "it.kagen-opp.%s", it_suffix());
    snprintf(order_topic, sizeof order_topic, "it.kagen-order.%s", it_suffix());
    const char *brokers = ka_config_str(cfg, "KA_KAFKA_BROKERS");
    if (ka_kafka_create_topic(brokers, opp_topic, 3, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, order_topic, 3, err, sizeof err) != KA_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ka_pg_free(pg);
    ka_config_free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_kagen KAGEN\n");
        return 2;
    }
    kagen = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quotas_follow_the_reps_run_rates),
        cmocka_unit_test(products_come_in_their_familys_unit),
        cmocka_unit_test(confirmations_assessments_and_adjustments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

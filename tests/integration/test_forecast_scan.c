/* The forecast worker's daily and periodic rules against the real stack, on
 * history seeded with SQL and a clock the test moves (KA_CLOCK_OFFSET_MS):
 *   - today's snapshots hold the node's funnel, its current forecast and its
 *     open deals (and those closed yesterday);
 *   - derived baselines are the hand-computed means of the same day of the
 *     last 4 months, on the 31st (February, November: their last day), only
 *     with at least 2 snapshots and only for nodes of the org tree;
 *   - forecast accuracy at 30/60/90 days equals the hand-computed values
 *     (latest snapshot at or before the lead, a lead without one skipped, a
 *     zero forecast NULL, rounded half up), once per node-period;
 *   - `kactl flow` between two seeded opportunity snapshots prints the
 *     hand-computed waterfall, which adds up;
 *   - a deal pushed out three times this quarter and one whose close date
 *     passed are flagged once each and resolved once, when one closes and
 *     the other gets a realistic date; earlier quarters' pushes do not count;
 *   - a forecast behind the configured pace fires a gap alert once and
 *     resolves when closed revenue catches up; linear pace; the episode ends
 *     with the period; a malformed KA_FORECAST_PACE stops the worker;
 *   - `kactl load quotas` while the worker runs gives a rep with no deal and
 *     no order its forecast row (quota, gap = quota) within seconds, and the
 *     gap alert of the rep most behind pace; a changed quota follows; each
 *     ancestor keeps its own quota; kactl forecast says `no quota` and `met`;
 *   - with the periodic scan ten minutes away, a quota loaded for a rep
 *     behind pace fires its gap alerts (and its team's) within seconds, and
 *     an order that catches May up resolves them within seconds, the
 *     quarter still behind firing on. */
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
#include "ka_validate.h"

#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL

static const char *worker_path, *kactl_path;
static ka_config_t *cfg;
static ka_pg_t *pg;
static pid_t live;
static char root[64];

typedef struct run {
    char sfx[48], group[128];
    char topics[6][128];
    char division[64];
    const char *extra[4]; /* more worker settings, NULL-terminated */
} run_t;

static const char *const topic_keys[6] = {"KA_TOPIC_OPPORTUNITY", "KA_TOPIC_ORDER",
                                          "KA_TOPIC_FORECAST",    "KA_TOPIC_PLANNING",
                                          "KA_TOPIC_ALERT",       "KA_TOPIC_DEADLETTER"};

/* SQL ------------------------------------------------------------------------------ */

static void sql(const char *q, int n, const char *const *args)
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_param_t p[16];
    for (int i = 0; i < n; i++)
        p[i] = (ka_pg_param_t){args[i], 0, 0};
    if (ka_pg_query(pg, q, n, p, NULL, NULL, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", q, err);
}

static long long q_int(const char *q, int n, const char *const *args)
{
    return it_pg_int_args(pg, q, n, args);
}

static int read_text(void *ud, const ka_pgres_t *res)
{
    const char *v = ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : NULL;
    snprintf(ud, 256, "%s", v ? v : "(null)");
    return 0;
}

/* The first column of the first row as text ("(null)" for NULL). */
static void q_text(const char *q, int n, const char *const *args, char out[256])
{
    char err[KA_ERRSTR_SIZE];
    ka_pg_param_t p[16];
    for (int i = 0; i < n; i++)
        p[i] = (ka_pg_param_t){args[i], 0, 0};
    snprintf(out, 256, "(no row)");
    if (ka_pg_query(pg, q, n, p, read_text, out, err, sizeof err) != KA_OK)
        fail_msg("%s: %s", q, err);
}

static int read_root(void *ud, const ka_pgres_t *res)
{
    snprintf(ud, 64, "%s", ka_pgres_rows(res) ? ka_pgres_value(res, 0, 0) : "");
    return 0;
}

/* The run: topics, a consumer group and a division of its own ----------------------- */

static void init_run(run_t *r, const char *tag)
{
    char err[KA_ERRSTR_SIZE];
    memset(r, 0, sizeof *r);
    snprintf(r->sfx, sizeof r->sfx, "%s%s", tag, it_suffix());
    snprintf(r->group, sizeof r->group, "it-fscan-%s", r->sfx);
    const char *brokers = ka_config_str(cfg, "KA_KAFKA_BROKERS");
    for (int i = 0; i < 6; i++) {
        snprintf(r->topics[i], sizeof r->topics[i], "it.fscan%d.%s", i, r->sfx);
        if (ka_kafka_create_topic(brokers, r->topics[i], 1, err, sizeof err) != KA_OK)
            fail_msg("%s", err);
    }
    snprintf(r->division, sizeof r->division, "fdiv-%s", r->sfx);
    const char *div[] = {r->division, root};
    sql("INSERT INTO org_node (id, parent_id, kind, name) VALUES ($1, $2, 'division', 'D')", 2,
        div);
}

static void add_node(char *id, size_t len, const char *prefix, const run_t *r,
                     const char *parent, const char *kind)
{
    snprintf(id, len, "%s-%s", prefix, r->sfx);
    const char *args[] = {id, parent, kind};
    sql("INSERT INTO org_node (id, parent_id, kind, name) VALUES ($1, $2, $3, $1)", 3, args);
}

/* Midday UTC of a date: the worker's day stays that date for hours. */
static int64_t midday(const char *date)
{
    int y, m, d;
    assert_int_equal(ka_parse_date(date, &y, &m, &d), 0);
    return ka_date_to_ms(y, m, d) + 12 * HOUR_MS;
}

/* Starts the worker with its clock at `clock_ms`. */
static pid_t spawn(const run_t *r, int64_t clock_ms)
{
    static char s[12][256];
    const char *set[20];
    int n = 0;
    for (int i = 0; i < 6; i++)
        snprintf(s[i], sizeof s[i], "%s=%s", topic_keys[i], r->topics[i]);
    snprintf(s[6], sizeof s[6], "KA_CONSUMER_GROUP=%s", r->group);
    snprintf(s[7], sizeof s[7], "KA_CLOCK_OFFSET_MS=%lld", (long long)(clock_ms - ka_now_ms()));
    snprintf(s[8], sizeof s[8], "KA_SCAN_INTERVAL_MS=200");
    snprintf(s[9], sizeof s[9], "KA_BASELINE_PERIODS=4");
    snprintf(s[10], sizeof s[10], "KA_BATCH_MAX_MS=10");
    for (int i = 0; i < 11; i++)
        set[n++] = s[i];
    for (int i = 0; r->extra[i]; i++)
        set[n++] = r->extra[i];
    set[n] = NULL;
    live = it_spawn(worker_path, set);
    return live;
}

static void stop(pid_t pid)
{
    it_stop(pid, SIGTERM);
    if (live == pid)
        live = 0;
}

/* Waits until this run's worker finished scan `name` at a clock of at
 * least clock_ms (the scan after a change made at clock_ms - 1). */
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

/* The worker's clock now, for a worker started with its clock at `clock_ms`
 * `started` real ms ago: waiting for a scan after a change. */
static int64_t worker_now(int64_t clock_ms, int64_t started_real)
{
    return clock_ms + (ka_now_ms() - started_real);
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

/* Runs kactl with args; returns its exit code, its output (and errors) in out. */
static int kactl(const char *args, char *out, size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", kactl_path, args);
    return it_sh(cmd, out, len);
}

/* Seeding ------------------------------------------------------------------------ */

static void funnel_snapshot(const char *node, const char *stage, const char *date,
                            const char *count, const char *amount)
{
    const char *args[] = {node, stage, date, count, amount};
    sql("INSERT INTO funnel_snapshot (node_id, definition_id, stage_code, snapshot_date, "
        "open_count, amount_minor, weighted_amount_minor) VALUES ($1, 'default-8', $2, "
        "$3::date, $4::bigint, $5::bigint, 0)", 5, args);
}

static void forecast_row(const char *node, const char *kind, const char *start,
                         const char *closed, const char *commit, const char *quota)
{
    const char *args[] = {node, kind, start, closed, commit, quota};
    sql("INSERT INTO forecast (node_id, period_kind, period_start, raw_closed_minor, "
        "raw_commit_minor, adj_closed_minor, adj_commit_minor, quota_minor) VALUES ($1, $2, "
        "$3::date, $4::bigint, $5::bigint, $4::bigint, $5::bigint, $6::bigint)", 6, args);
}

static void forecast_snapshot(const char *node, const char *kind, const char *start,
                              const char *date, const char *closed, const char *commit)
{
    const char *args[] = {node, kind, start, date, closed, commit};
    sql("INSERT INTO forecast_snapshot (node_id, period_kind, period_start, snapshot_date, "
        "raw_closed_minor, raw_commit_minor, raw_best_case_minor, raw_pipeline_minor, "
        "raw_weighted_pipeline_minor, adj_closed_minor, adj_commit_minor, adj_best_case_minor, "
        "adj_pipeline_minor, adj_weighted_pipeline_minor) VALUES ($1, $2, $3::date, $4::date, "
        "$5::bigint, $6::bigint, 0, 0, 0, $5::bigint, $6::bigint, 0, 0, 0)", 6, args);
}

static void actual(const char *node, const char *month, const char *amount)
{
    const char *args[] = {node, month, amount};
    sql("INSERT INTO actual_rollup (node_id, period_month, amount_minor) "
        "VALUES ($1, $2::date, $3::bigint)", 3, args);
}

static void account(const char *id, const char *rep)
{
    const char *args[] = {id, rep};
    sql("INSERT INTO account (id, canonical_key, display_name, owner_rep_id) "
        "VALUES ($1, 'name:' || $1, $1, $2)", 2, args);
}

/* An opportunity as the opportunity worker keeps it; closed_at NULL: open,
 * else status won or lost. */
static void opportunity(const char *id, const char *acct, const char *rep, const char *amount,
                        const char *close, const char *status, const char *closed_at)
{
    const char *args[] = {id, acct, rep, amount, close, status, closed_at};
    sql("INSERT INTO opportunity (id, account_id, owner_rep_id, definition_id, stage_code, "
        "amount_minor, win_probability_bp, expected_close_date, status, closed_at, "
        "stage_entered_at) VALUES ($1, $2, $3, 'default-8', CASE $6 WHEN 'won' THEN '08' "
        "WHEN 'lost' THEN 'LOST' ELSE '03' END, $4::bigint, CASE $6 WHEN 'won' THEN 10000 "
        "WHEN 'lost' THEN 0 ELSE 3000 END, $5::date, $6, $7::timestamptz, "
        "now() - interval '30 days')", 7, args);
}

static void pushes(const char *opp, const char *rep, const char *close, const char *n,
                   const char *quarter)
{
    const char *args[] = {opp, rep, close, n, quarter};
    sql("INSERT INTO forecast_opportunity (opportunity_id, owner_rep_id, status, "
        "expected_close_date, pushes, pushes_quarter) VALUES ($1, $2, 'open', $3::date, "
        "$4::int, $5::date)", 5, args);
}

/* Tests ------------------------------------------------------------------------------ */

static void snapshots_baselines_and_accuracy_match_hand_computed_values(void **state)
{
    static run_t r;
    char team[64], ghost[80], rep[64], acct[80], o[3][80], v[256];
    (void)state;
    init_run(&r, "b");
    add_node(team, sizeof team, "fteam", &r, r.division, "team");
    add_node(rep, sizeof rep, "frep", &r, team, "rep");
    snprintf(ghost, sizeof ghost, "fghost-%s", r.sfx); /* not in the org tree */

    /* Baselines for 2025-03-31 from the 31st of the last 4 months: February
     * and November have no 31st, so their last days. Stage 01: four
     * snapshots, counts 3 4 6 4 (mean 4.25 -> 4), amounts 1000 1001 2000 2001
     * (1500.5 -> 1501, half up). Stage 03: two (1.5 -> 2, 5.5 -> 6). Stage
     * 02: one, no baseline. Decoys on other days and 5 months back. */
    funnel_snapshot(team, "01", "2025-02-28", "3", "1000");
    funnel_snapshot(team, "01", "2025-01-31", "4", "1001");
    funnel_snapshot(team, "01", "2024-12-31", "6", "2000");
    funnel_snapshot(team, "01", "2024-11-30", "4", "2001");
    funnel_snapshot(team, "01", "2024-10-31", "900", "900000");
    funnel_snapshot(team, "01", "2025-02-27", "900", "900000");
    funnel_snapshot(team, "01", "2025-03-30", "900", "900000");
    funnel_snapshot(team, "03", "2025-01-31", "1", "5");
    funnel_snapshot(team, "03", "2024-12-31", "2", "6");
    funnel_snapshot(team, "02", "2025-02-28", "7", "70");
    funnel_snapshot(ghost, "01", "2025-02-28", "3", "1000");
    funnel_snapshot(ghost, "01", "2025-01-31", "3", "1000");
    funnel_snapshot(ghost, "01", "2024-12-31", "3", "1000");
    /* Today's funnel, to be snapshotted. */
    const char *fs[] = {team};
    sql("INSERT INTO funnel_state (node_id, definition_id, stage_code, open_count, "
        "amount_minor, weighted_amount_minor) VALUES ($1, 'default-8', '04', 7, 7000, 2800)", 1,
        fs);

    /* Accuracy. Month 2025-01 (end 2025-02-01): lead 30 -> latest snapshot at
     * or before 2025-01-02 (400000), lead 60 -> before 2024-12-03 (300000),
     * lead 90 -> before 2024-11-03: none. Actual 333340 (January only):
     * 8333.5 -> 8334 bp, 11111.33 -> 11111 bp. */
    forecast_row(team, "month", "2025-01-01", "333340", "0", "500000");
    forecast_snapshot(team, "month", "2025-01-01", "2025-01-01", "1", "1");
    forecast_snapshot(team, "month", "2025-01-01", "2025-01-02", "100000", "300000");
    forecast_snapshot(team, "month", "2025-01-01", "2025-01-10", "999999", "0");
    forecast_snapshot(team, "month", "2025-01-01", "2024-12-01", "250000", "50000");
    forecast_snapshot(team, "month", "2025-01-01", "2024-12-05", "7", "7");
    actual(team, "2025-01-01", "333340");
    actual(team, "2025-02-01", "999");
    /* Quarter 2024-Q4 (end 2025-01-01): lead 30 -> 2024-12-02 (zero: NULL),
     * 60 and 90 -> 2024-10-03 (500000). Actual 223 + 1000 + 777 = 2000: 40 bp. */
    forecast_row(team, "quarter", "2024-10-01", "2000", "0", NULL);
    forecast_snapshot(team, "quarter", "2024-10-01", "2024-12-02", "0", "0");
    forecast_snapshot(team, "quarter", "2024-10-01", "2024-11-05", "1", "1");
    forecast_snapshot(team, "quarter", "2024-10-01", "2024-10-03", "500000", "0");
    actual(team, "2024-10-01", "223");
    actual(team, "2024-11-01", "1000");
    actual(team, "2024-12-01", "777");
    /* Month 2024-12 already has accuracy: left alone. */
    forecast_row(team, "month", "2024-12-01", "777", "0", NULL);
    forecast_snapshot(team, "month", "2024-12-01", "2024-11-01", "5", "5");
    const char *done[] = {team};
    sql("INSERT INTO forecast_accuracy (node_id, period_kind, period_start, lead_days, "
        "snapshot_date, forecast_minor, actual_minor, accuracy_bp) VALUES ($1, 'month', "
        "'2024-12-01', 30, '2024-11-01', 1, 1, 10000)", 1, done);
    /* The current month: snapshotted today, no accuracy yet. */
    forecast_row(team, "month", "2025-03-01", "1234", "5678", "100000");

    /* Deals: open; closed yesterday (in today's snapshot); closed earlier. */
    snprintf(acct, sizeof acct, "facct-%s", r.sfx);
    account(acct, rep);
    for (int i = 0; i < 3; i++)
        snprintf(o[i], sizeof o[i], "fopp-%s-%d", r.sfx, i);
    opportunity(o[0], acct, rep, "5000", "2025-06-30", "open", NULL);
    opportunity(o[1], acct, rep, "6000", "2025-03-30", "won", "2025-03-30 18:00+00");
    opportunity(o[2], acct, rep, "7000", "2025-03-20", "lost", "2025-03-20 18:00+00");

    int64_t clock = midday("2025-03-31");
    pid_t pid = spawn(&r, clock);
    wait_scan(&r, "forecast_snapshots", clock);
    wait_scan(&r, "forecast_accuracy", clock);
    wait_scan(&r, "funnel_baselines", clock);
    stop(pid);

    /* snapshots */
    const char *t[] = {team};
    assert_int_equal(q_int("SELECT count(*) FROM funnel_snapshot WHERE node_id = $1 AND "
                           "snapshot_date = '2025-03-31' AND stage_code = '04' AND "
                           "open_count = 7 AND amount_minor = 7000 AND "
                           "weighted_amount_minor = 2800", 1, t), 1);
    assert_int_equal(q_int("SELECT count(*) FROM forecast_snapshot WHERE node_id = $1 AND "
                           "snapshot_date = '2025-03-31'", 1, t), 1);
    assert_int_equal(q_int("SELECT count(*) FROM forecast_snapshot WHERE node_id = $1 AND "
                           "snapshot_date = '2025-03-31' AND period_start = '2025-03-01' AND "
                           "adj_closed_minor = 1234 AND adj_commit_minor = 5678 AND "
                           "quota_minor = 100000", 1, t), 1);
    const char *o0[] = {o[0]}, *o1[] = {o[1]}, *o2[] = {o[2]};
    assert_int_equal(q_int("SELECT count(*) FROM opportunity_snapshot WHERE snapshot_date = "
                           "'2025-03-31' AND opportunity_id = $1 AND status = 'open' AND "
                           "amount_minor = 5000 AND expected_close_date = '2025-06-30'", 1, o0),
                     1);
    assert_int_equal(q_int("SELECT count(*) FROM opportunity_snapshot WHERE snapshot_date = "
                           "'2025-03-31' AND opportunity_id = $1 AND status = 'won'", 1, o1),
                     1);
    assert_int_equal(q_int("SELECT count(*) FROM opportunity_snapshot WHERE snapshot_date = "
                           "'2025-03-31' AND opportunity_id = $1", 1, o2), 0);

    /* baselines */
    static const struct {
        const char *stage, *metric, *value;
    } want[] = {{"01", "count", "4"}, {"01", "amount", "1501"}, {"03", "count", "2"},
                {"03", "amount", "6"}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *args[] = {team, want[i].stage, want[i].metric};
        q_text("SELECT value::text FROM funnel_baseline WHERE node_id = $1 AND definition_id = "
               "'default-8' AND stage_code = $2 AND metric = $3 AND source = 'derived' AND "
               "valid_from = '2025-03-31' AND valid_to = '2025-04-01'", 3, args, v);
        if (strcmp(v, want[i].value) != 0)
            fail_msg("baseline %s %s: got %s, want %s", want[i].stage, want[i].metric, v,
                     want[i].value);
    }
    assert_int_equal(q_int("SELECT count(*) FROM funnel_baseline WHERE node_id = $1", 1, t), 4);
    const char *g[] = {ghost};
    assert_int_equal(q_int("SELECT count(*) FROM funnel_baseline WHERE node_id = $1", 1, g), 0);

    /* accuracy */
    static const struct {
        const char *kind, *start, *lead, *snap, *forecast, *actual, *bp;
    } acc[] = {
        {"month", "2025-01-01", "30", "2025-01-02", "400000", "333340", "8334"},
        {"month", "2025-01-01", "60", "2024-12-01", "300000", "333340", "11111"},
        {"quarter", "2024-10-01", "30", "2024-12-02", "0", "2000", "(null)"},
        {"quarter", "2024-10-01", "60", "2024-10-03", "500000", "2000", "40"},
        {"quarter", "2024-10-01", "90", "2024-10-03", "500000", "2000", "40"},
    };
    for (size_t i = 0; i < sizeof acc / sizeof acc[0]; i++) {
        const char *args[] = {team, acc[i].kind, acc[i].start, acc[i].lead};
        char want_row[256];
        q_text("SELECT snapshot_date || ' ' || forecast_minor || ' ' || actual_minor || ' ' || "
               "coalesce(accuracy_bp::text, '(null)') FROM forecast_accuracy WHERE node_id = $1 "
               "AND period_kind = $2 AND period_start = $3::date AND lead_days = $4::int", 4,
               args, v);
        snprintf(want_row, sizeof want_row, "%s %s %s %s", acc[i].snap, acc[i].forecast,
                 acc[i].actual, acc[i].bp);
        if (strcmp(v, want_row) != 0)
            fail_msg("accuracy %s %s lead %s: got %s, want %s", acc[i].kind, acc[i].start,
                     acc[i].lead, v, want_row);
    }
    assert_int_equal(q_int("SELECT count(*) FROM forecast_accuracy WHERE node_id = $1", 1, t),
                     5 + 1);
    assert_int_equal(q_int("SELECT count(*) FROM forecast_accuracy WHERE node_id = $1 AND "
                           "period_start = '2024-12-01' AND accuracy_bp = 10000", 1, t), 1);

    /* kactl forecast shows the rows; a bad period is explained */
    char out[16384], args[256];
    snprintf(args, sizeof args, "forecast %s --period 2025-01 --history", team);
    assert_int_equal(kactl(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "2025-01 (month 2025-01-01 .. 2025-01-31)"));
    assert_non_null(strstr(out, "3,333.40"));
    snprintf(args, sizeof args, "forecast %s --period 2025-Q4", team);
    assert_int_equal(kactl(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "no forecast for"));
    snprintf(args, sizeof args, "forecast %s --period 2025-13", team);
    assert_int_equal(kactl(args, out, sizeof out), 2);
    assert_non_null(strstr(out, "YYYY-MM"));
}

/* The line of `label` in kactl flow's table: its deal count and amount. */
static void flow_line(const char *out, const char *label, long long count, const char *amount)
{
    const char *p = out;
    size_t n = strlen(label);
    for (;;) {
        p = strstr(p, label);
        if (!p)
            fail_msg("no line \"%s\" in:\n%s", label, out);
        if ((p == out || p[-1] == '\n') && p[n] == ' ')
            break;
        p += n;
    }
    long long c = -1;
    char a[64] = "";
    const char *q = p + n;
    while (*q == ' ')
        q++;
    if (sscanf(q, "%lld %63s", &c, a) != 2 || c != count || strcmp(a, amount) != 0)
        fail_msg("%s: got %lld %s, want %lld %s\n%s", label, c, a, count, amount, out);
}

static void flow_between_two_snapshots_matches_the_hand_computed_table(void **state)
{
    static run_t r;
    char team[64], other[64], reps[3][64], acct[80], id[17][80];
    (void)state;
    init_run(&r, "f");
    add_node(team, sizeof team, "ftm", &r, r.division, "team");
    add_node(other, sizeof other, "fto", &r, r.division, "team");
    add_node(reps[0], sizeof reps[0], "fr1", &r, team, "rep");
    add_node(reps[1], sizeof reps[1], "fr2", &r, team, "rep");
    add_node(reps[2], sizeof reps[2], "fr3", &r, other, "rep"); /* outside the team */
    for (int i = 1; i <= 16; i++)
        snprintf(id[i], sizeof id[i], "fl-%s-%02d", r.sfx, i);
    /* One deal per row: (date, deal, rep, status, amount in major units,
     * close date). From 2025-02-10 to 2025-03-10, intermediate 2025-02-20. */
    static const struct {
        const char *date;
        int deal, rep;
        const char *status;
        int amount;
        const char *close;
    } rows[] = {
        {"2025-02-10", 1, 0, "open", 1000, "2025-03-15"}, /* pulled in */
        {"2025-03-10", 1, 0, "open", 1000, "2025-03-01"},
        {"2025-02-10", 2, 0, "open", 2000, "2025-03-15"}, /* pushed out */
        {"2025-03-10", 2, 0, "open", 2000, "2025-04-15"},
        {"2025-02-10", 3, 1, "open", 3000, "2025-05-01"}, /* increased 500 */
        {"2025-03-10", 3, 1, "open", 3500, "2025-05-01"},
        {"2025-02-10", 4, 1, "open", 4000, "2025-05-01"}, /* decreased 1000 */
        {"2025-03-10", 4, 0, "open", 3000, "2025-05-01"},
        {"2025-02-10", 5, 0, "open", 5000, "2025-03-01"}, /* won at 5000 */
        {"2025-03-10", 5, 0, "won", 5200, "2025-03-01"},
        {"2025-02-10", 6, 1, "open", 6000, "2025-03-01"}, /* lost */
        {"2025-03-10", 6, 1, "lost", 6000, "2025-03-01"},
        {"2025-02-10", 7, 0, "open", 7000, "2025-02-15"}, /* won, seen in between */
        {"2025-02-20", 7, 0, "won", 7000, "2025-02-15"},
        {"2025-02-10", 8, 0, "open", 8000, "2025-06-01"}, /* moved out */
        {"2025-03-10", 8, 2, "open", 8000, "2025-06-01"},
        {"2025-02-10", 9, 2, "open", 900, "2025-06-01"}, /* moved in */
        {"2025-03-10", 9, 0, "open", 900, "2025-06-01"},
        {"2025-03-10", 10, 1, "open", 1100, "2025-06-01"}, /* new */
        {"2025-02-10", 11, 0, "open", 1200, "2025-06-01"}, /* unchanged */
        {"2025-03-10", 11, 0, "open", 1200, "2025-06-01"},
        {"2025-02-10", 12, 1, "open", 1300, "2025-06-01"}, /* lost: the deal says */
        {"2025-02-10", 13, 0, "won", 1400, "2025-02-09"}, /* reopened: new */
        {"2025-03-10", 13, 0, "open", 1400, "2025-06-01"},
        {"2025-02-10", 14, 1, "open", 1500, "2025-03-20"}, /* increased 200, pushed out */
        {"2025-03-10", 14, 1, "open", 1700, "2025-03-25"},
        {"2025-02-10", 15, 1, "open", 1600, "2025-06-01"}, /* left, no record */
        {"2025-02-10", 16, 2, "open", 9999, "2025-06-01"}, /* outside on both days */
        {"2025-03-10", 16, 2, "open", 9999, "2025-06-01"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char amount[24];
        snprintf(amount, sizeof amount, "%d", rows[i].amount * 100);
        const char *args[] = {rows[i].date, id[rows[i].deal], reps[rows[i].rep],
                              rows[i].status, amount, rows[i].close};
        sql("INSERT INTO opportunity_snapshot (snapshot_date, opportunity_id, owner_rep_id, "
            "status, stage_code, amount_minor, expected_close_date) VALUES ($1::date, $2, $3, "
            "$4, CASE $4 WHEN 'won' THEN '08' WHEN 'lost' THEN 'LOST' ELSE '03' END, "
            "$5::bigint, $6::date)", 6, args);
    }
    snprintf(acct, sizeof acct, "facct-%s", r.sfx);
    account(acct, reps[1]);
    opportunity(id[12], acct, reps[1], "130000", "2025-06-01", "lost", "2025-02-25 10:00+00");

    char out[32768], args[512];
    snprintf(args, sizeof args, "flow %s --from 2025-02-10 --to 2025-03-10", team);
    assert_int_equal(kactl(args, out, sizeof out), 0);
    flow_line(out, "opening pipeline", 12, "41,600.00");
    flow_line(out, "+ new", 2, "2,500.00");
    flow_line(out, "+ moved in", 1, "900.00");
    flow_line(out, "+ increased", 2, "700.00");
    flow_line(out, "- decreased", 1, "1,000.00");
    flow_line(out, "- won", 2, "12,000.00");
    flow_line(out, "- lost", 2, "7,300.00");
    flow_line(out, "- moved out", 1, "8,000.00");
    flow_line(out, "- left, outcome unknown", 1, "1,600.00");
    flow_line(out, "= closing pipeline", 9, "15,800.00");
    flow_line(out, "pulled in", 1, "1,000.00");
    flow_line(out, "pushed out", 2, "3,700.00");
    /* the same with the deals listed: each under its category */
    snprintf(args, sizeof args, "flow %s --from 2025-02-10 --to 2025-03-10 --details", team);
    assert_int_equal(kactl(args, out, sizeof out), 0);
    const char *won = strstr(out, "\n- won: 2\n"), *lost = strstr(out, "\n- lost: 2\n");
    assert_non_null(won);
    assert_non_null(lost);
    const char *w5 = strstr(won, id[5]), *w7 = strstr(won, id[7]);
    assert_true(w5 && w5 < lost && w7 && w7 < lost);
    assert_null(strstr(out, id[11])); /* unchanged */
    assert_null(strstr(out, id[16])); /* never in the team */
    /* a rep's own flow: only its deals */
    snprintf(args, sizeof args, "flow %s --from 2025-02-10 --to 2025-03-10", reps[1]);
    assert_int_equal(kactl(args, out, sizeof out), 0);
    flow_line(out, "opening pipeline", 6, "17,400.00"); /* deals 3, 4, 6, 12, 14, 15 */
    flow_line(out, "- moved out", 1, "4,000.00");        /* 4 went to a teammate */
    flow_line(out, "= closing pipeline", 3, "6,300.00"); /* 3, 10, 14 */

    /* bad arguments say what is wrong */
    snprintf(args, sizeof args, "flow %s --from 2025-03-10 --to 2025-02-10", team);
    assert_int_equal(kactl(args, out, sizeof out), 2);
    assert_non_null(strstr(out, "must be before"));
    snprintf(args, sizeof args, "flow %s --from 2025-02-10", team);
    assert_int_equal(kactl(args, out, sizeof out), 2);
    assert_non_null(strstr(out, "--to is missing"));
    snprintf(args, sizeof args, "flow %s --from 10/02/2025 --to 2025-03-10", team);
    assert_int_equal(kactl(args, out, sizeof out), 2);
    assert_non_null(strstr(out, "YYYY-MM-DD"));
    snprintf(args, sizeof args, "flow nosuch-%s --from 2025-02-10 --to 2025-03-10", r.sfx);
    assert_int_equal(kactl(args, out, sizeof out), 2);
    assert_non_null(strstr(out, "no org node"));
    assert_int_equal(kactl("flow --help", out, sizeof out), 0);
}

static void slipping_deals_fire_once_and_resolve_once(void **state)
{
    static run_t r;
    char team[64], rep[64], acct[80], p[80], d[80], q[80], w[80], x[80], v[256];
    (void)state;
    init_run(&r, "s");
    add_node(team, sizeof team, "fst", &r, r.division, "team");
    add_node(rep, sizeof rep, "fsr", &r, team, "rep");
    snprintf(acct, sizeof acct, "facct-%s", r.sfx);
    account(acct, rep);
    snprintf(p, sizeof p, "fsp-%s", r.sfx); /* pushed out 3 times this quarter */
    snprintf(d, sizeof d, "fsd-%s", r.sfx); /* close date passed */
    snprintf(q, sizeof q, "fsq-%s", r.sfx); /* 3 pushes, but last quarter */
    snprintf(w, sizeof w, "fsw-%s", r.sfx); /* 2 pushes this quarter */
    snprintf(x, sizeof x, "fsx-%s", r.sfx); /* won, date passed */
    /* Today is 2025-05-16, in the quarter of 2025-04-01. */
    opportunity(p, acct, rep, "100000", "2025-06-20", "open", NULL);
    pushes(p, rep, "2025-06-20", "3", "2025-04-01");
    opportunity(d, acct, rep, "200000", "2025-05-10", "open", NULL);
    pushes(d, rep, "2025-05-10", "1", "2025-04-01");
    opportunity(q, acct, rep, "300000", "2025-06-20", "open", NULL);
    pushes(q, rep, "2025-06-20", "5", "2025-01-01");
    opportunity(w, acct, rep, "400000", "2025-06-20", "open", NULL);
    pushes(w, rep, "2025-06-20", "2", "2025-04-01");
    opportunity(x, acct, rep, "500000", "2025-05-01", "won", "2025-05-02 10:00+00");

    int64_t clock = midday("2025-05-16"), started = ka_now_ms();
    pid_t pid = spawn(&r, clock);
    wait_alert_rows("slipping_deal", p, "firing", 1);
    wait_alert_rows("slipping_deal", d, "firing", 1);
    wait_scan(&r, "slipping_deal", worker_now(clock, started) + 500);
    assert_int_equal(alert_rows("slipping_deal", q, "firing"), 0);
    assert_int_equal(alert_rows("slipping_deal", w, "firing"), 0);
    assert_int_equal(alert_rows("slipping_deal", x, "firing"), 0);
    const char *pa[] = {p};
    q_text("SELECT details->>'reason' || ' ' || (details->>'pushes') || ' ' || "
           "(details->>'owner_rep_id') || ' ' || severity || ' ' || "
           "to_char(starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM alert_state "
           "WHERE subject_id = $1 AND type = 'slipping_deal'", 1, pa, v);
    char want[256];
    snprintf(want, sizeof want, "pushed_out 3 %s warning 2025-05-16", rep);
    assert_string_equal(v, want);
    const char *da[] = {d};
    q_text("SELECT details->>'reason' || ' ' || (details->>'expected_close_date') || ' ' || "
           "to_char(starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM alert_state "
           "WHERE subject_id = $1 AND type = 'slipping_deal'", 1, da, v);
    assert_string_equal(v, "close_date_passed 2025-05-10 2025-05-11 00:00");

    /* The pushed deal closes; the other gets a realistic date. */
    sql("UPDATE opportunity SET status = 'won', stage_code = '08', win_probability_bp = 10000, "
        "closed_at = '2025-05-16 09:00+00' WHERE id = $1", 1, pa);
    sql("UPDATE opportunity SET expected_close_date = '2025-05-16' WHERE id = $1", 1, da);
    wait_alert_rows("slipping_deal", p, "resolved", 1);
    wait_alert_rows("slipping_deal", d, "resolved", 1);
    /* a few more scans change nothing */
    wait_scan(&r, "slipping_deal", worker_now(clock, started) + 1000);
    stop(pid);
    assert_int_equal(alert_rows("slipping_deal", p, "firing"), 1);
    assert_int_equal(alert_rows("slipping_deal", p, "resolved"), 1);
    assert_int_equal(alert_rows("slipping_deal", d, "firing"), 1);
    assert_int_equal(alert_rows("slipping_deal", d, "resolved"), 1);
    q_text("SELECT status || ' ' || (details->>'expected_close_date') FROM alert_state "
           "WHERE subject_id = $1 AND type = 'slipping_deal'", 1, da, v);
    assert_string_equal(v, "resolved 2025-05-16");
    /* the alert events went out through the outbox, to this run's topic */
    const char *ta[] = {r.topics[4]};
    assert_true(q_int("SELECT count(*) FROM outbox WHERE topic = $1", 1, ta) >= 4);
}

static void forecast_behind_pace_fires_once_and_resolves_when_it_catches_up(void **state)
{
    static run_t r;
    char g[64], c[64], v[256];
    (void)state;
    init_run(&r, "g");
    add_node(g, sizeof g, "fgt", &r, r.division, "team");
    add_node(c, sizeof c, "fgc", &r, r.division, "team");
    /* Today 2025-05-16: 15 of May's 31 days and 45 of the quarter's 91 are
     * over. Pace 5,10,20,30,40,50,60,75,90,100: month 150/31 tenths -> 30% +
     * 10% x 26/31 = 38.39%: 383871 of 1000000 expected, 300000 there:
     * behind. Quarter 450/91 -> 30% + 10% x 86/91: 1183516 of 3000000, 1200000
     * there: on pace. Node c: 119000 of 310000 expected, 149999 there. */
    forecast_row(g, "month", "2025-05-01", "200000", "100000", "1000000");
    forecast_row(g, "quarter", "2025-04-01", "1000000", "200000", "3000000");
    forecast_row(c, "month", "2025-05-01", "149999", "0", "310000");
    forecast_row(c, "quarter", "2025-04-01", "0", "0", NULL); /* no quota: no verdict */
    static const char *pace = "KA_FORECAST_PACE=5,10,20,30,40,50,60,75,90,100";
    r.extra[0] = pace;
    int64_t clock = midday("2025-05-16"), started = ka_now_ms();
    pid_t pid = spawn(&r, clock);
    wait_alert_rows("forecast_gap", g, "firing", 1);
    wait_scan(&r, "forecast_gap", worker_now(clock, started) + 500);
    assert_int_equal(alert_rows("forecast_gap", c, "firing"), 0);
    const char *ga[] = {g};
    q_text("SELECT (details->>'period') || ' ' || (details->>'expected_minor') || ' ' || "
           "(details->>'actual_minor') || ' ' || (details->>'quota_minor') || ' ' || severity "
           "FROM alert_state WHERE subject_id = $1 AND type = 'forecast_gap'", 1, ga, v);
    assert_string_equal(v, "2025-05 383871 300000 1000000 warning");
    assert_int_equal(q_int("SELECT count(*) FROM alert_history WHERE type = 'forecast_gap' AND "
                           "details->>'node_id' = $1", 1, ga), 1); /* not the quarter */

    /* Closed revenue catches up exactly: resolved, once. */
    sql("UPDATE forecast SET adj_closed_minor = 283871, raw_closed_minor = 283871 "
        "WHERE node_id = $1 AND period_kind = 'month'", 1, ga);
    wait_alert_rows("forecast_gap", g, "resolved", 1);
    wait_scan(&r, "forecast_gap", worker_now(clock, started) + 1000);
    stop(pid);
    assert_int_equal(alert_rows("forecast_gap", g, "firing"), 1);
    assert_int_equal(alert_rows("forecast_gap", g, "resolved"), 1);

    /* Linear pace (the default): 15/31 of the month. g is ahead everywhere
     * now; c needs 150000 and has 149999: behind. */
    sql("UPDATE forecast SET adj_closed_minor = 400000 WHERE node_id = $1 AND "
        "period_kind = 'month'", 1, ga);
    sql("UPDATE forecast SET adj_closed_minor = 1300000 WHERE node_id = $1 AND "
        "period_kind = 'quarter'", 1, ga);
    r.extra[0] = NULL;
    started = ka_now_ms();
    pid = spawn(&r, clock);
    wait_alert_rows("forecast_gap", c, "firing", 1);
    wait_scan(&r, "forecast_gap", worker_now(clock, started) + 500);
    stop(pid);
    const char *ca[] = {c};
    q_text("SELECT (details->>'expected_minor') || ' ' || (details->>'actual_minor') "
           "FROM alert_state WHERE subject_id = $1 AND type = 'forecast_gap'", 1, ca, v);
    assert_string_equal(v, "150000 149999");
    assert_int_equal(alert_rows("forecast_gap", g, "firing"), 1);

    /* June: May's episode is over. */
    int64_t june = midday("2025-06-02");
    started = ka_now_ms();
    pid = spawn(&r, june);
    wait_alert_rows("forecast_gap", c, "resolved", 1);
    wait_scan(&r, "forecast_gap", worker_now(june, started) + 500);
    stop(pid);
    q_text("SELECT status || ' ' || summary FROM alert_state WHERE subject_id = $1 AND "
           "type = 'forecast_gap'", 1, ca, v);
    assert_non_null(strstr(v, "resolved"));
    assert_non_null(strstr(v, "period ended"));
    assert_int_equal(alert_rows("forecast_gap", c, "firing"), 1);
    /* g's quarter is behind the linear pace by now (62 of 91 days): its own
     * alert, beside the month's resolved one */
    q_text("SELECT string_agg(status || ' ' || (details->>'period'), ', ' ORDER BY "
           "details->>'period') FROM alert_state WHERE subject_id = $1 AND "
           "type = 'forecast_gap'", 1, ga, v);
    assert_string_equal(v, "resolved 2025-05, firing 2025-Q2");

    /* A malformed pace stops the worker at start, with the reason. */
    static const char *bad = "KA_FORECAST_PACE=5,10,20";
    r.extra[0] = bad;
    pid = spawn(&r, clock);
    int status = 0, waited = 0;
    while (waitpid(pid, &status, WNOHANG) == 0 && waited < 30000) {
        usleep(100 * 1000);
        waited += 100;
    }
    if (waited >= 30000)
        fail_msg("the worker kept running with KA_FORECAST_PACE=5,10,20");
    live = 0;
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
}

/* Loads `rows` (node_id,period_kind,period_start,amount_minor lines) with
 * kactl load quotas, as an operator would while the workers run. */
static void load_quotas(const run_t *r, const char *rows)
{
    char path[256], args[512], out[4096];
    snprintf(path, sizeof path, "/tmp/ka-it-quotas-%s.csv", r->sfx);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "node_id,period_kind,period_start,amount_minor\n%s", rows);
    assert_int_equal(fclose(f), 0);
    snprintf(args, sizeof args, "load quotas %s", path);
    int rc = kactl(args, out, sizeof out);
    unlink(path);
    if (rc != 0)
        fail_msg("kactl %s: exit %d: %s", args, rc, out);
}

/* A forecast row's figures: closed commit best_case pipeline quota
 * raw_coverage adj_coverage raw_gap adj_gap ("-" for NULL). */
static void forecast_figures(const char *node, const char *kind, const char *start,
                             char out[256])
{
    const char *args[] = {node, kind, start};
    q_text("SELECT raw_closed_minor || ' ' || raw_commit_minor || ' ' || raw_best_case_minor "
           "|| ' ' || raw_pipeline_minor || ' ' || coalesce(quota_minor::text, '-') || ' ' || "
           "coalesce(raw_coverage_bp::text, '-') || ' ' || coalesce(adj_coverage_bp::text, '-') "
           "|| ' ' || coalesce(raw_gap_minor::text, '-') || ' ' || "
           "coalesce(adj_gap_minor::text, '-') FROM forecast WHERE node_id = $1 AND "
           "period_kind = $2 AND period_start = $3::date", 3, args, out);
}

/* The line of kactl forecast's output that starts with "  <label> ". */
static void output_line(const char *out, const char *label, char *line, size_t len)
{
    char want[64];
    snprintf(want, sizeof want, "\n  %s ", label);
    const char *p = strstr(out, want);
    if (!p)
        fail_msg("no line \"%s\" in:\n%s", label, out);
    p += 1;
    size_t n = strcspn(p, "\n");
    snprintf(line, len, "%.*s", (int)n, p);
}

static void a_loaded_quota_reaches_the_forecast_and_its_gap_alert_while_running(void **state)
{
    static run_t r;
    char team[64], empty[64], met[64], acct[80], rows[512], v[256], out[16384], args[256],
        line[256];
    (void)state;
    init_run(&r, "q");
    add_node(team, sizeof team, "fqt", &r, r.division, "team");
    add_node(empty, sizeof empty, "fqe", &r, team, "rep"); /* no deal, no order */
    add_node(met, sizeof met, "fqm", &r, team, "rep");     /* booked 3,000.00 in May */
    snprintf(acct, sizeof acct, "facct-%s", r.sfx);
    account(acct, met);
    /* The booking as the order worker leaves it: the actual and the marks of
     * the rep's month and quarter. */
    const char *am[] = {acct, met};
    sql("INSERT INTO actual (account_id, sku, node_id, period_month, amount_minor) "
        "VALUES ($1, 'SKU-0001', $2, '2025-05-01', 300000)", 2, am);
    const char *m[] = {met};
    sql("INSERT INTO forecast_dirty (node_id, period_kind, period_start) VALUES "
        "($1, 'month', '2025-05-01'), ($1, 'quarter', '2025-04-01')", 1, m);

    /* Today 2025-05-16: 15 of May's 31 days and 45 of the quarter's 91 gone. */
    int64_t clock = midday("2025-05-16"), started = ka_now_ms();
    pid_t pid = spawn(&r, clock);
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM forecast WHERE node_id = $1 AND "
                                    "period_kind = 'month' AND period_start = '2025-05-01'",
                                met, 1, 30000),
                     1);
    const char *ea[] = {empty};
    assert_int_equal(q_int("SELECT count(*) FROM forecast WHERE node_id = $1", 1, ea), 0);

    /* The quotas, loaded while the worker runs: within seconds every
     * node-period with one has its row. */
    snprintf(rows, sizeof rows,
             "%s,month,2025-05-01,1000000\n%s,quarter,2025-04-01,3000000\n"
             "%s,month,2025-05-01,200000\n%s,month,2025-05-01,500000\n",
             empty, empty, met, team);
    load_quotas(&r, rows);
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM forecast WHERE node_id = $1 AND "
                                    "quota_minor IS NOT NULL", empty, 2, 10000),
                     2);
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM forecast WHERE node_id = $1 AND "
                                    "period_kind = 'month' AND quota_minor = 200000",
                                met, 1, 10000),
                     1);
    /* closed commit best_case pipeline quota coverage(raw adj) gap(raw adj):
     * the empty rep owes its whole quota; nothing open over 10,000.00 left
     * to close is coverage 0. */
    forecast_figures(empty, "month", "2025-05-01", v);
    assert_string_equal(v, "0 0 0 0 1000000 0 0 1000000 1000000");
    forecast_figures(empty, "quarter", "2025-04-01", v);
    assert_string_equal(v, "0 0 0 0 3000000 0 0 3000000 3000000");
    /* booked past its quota: met, no coverage, ahead by 1,000.00 */
    forecast_figures(met, "month", "2025-05-01", v);
    assert_string_equal(v, "300000 0 0 0 200000 - - -100000 -100000");
    /* the ancestors: closed rolls up, the quota is each node's own */
    forecast_figures(team, "month", "2025-05-01", v);
    assert_string_equal(v, "300000 0 0 0 500000 0 0 200000 200000");
    forecast_figures(r.division, "month", "2025-05-01", v);
    assert_string_equal(v, "300000 0 0 0 - - - - -");
    forecast_figures(team, "quarter", "2025-04-01", v);
    assert_string_equal(v, "300000 0 0 0 - - - - -");

    /* The empty rep is behind the (linear) pace in both periods: 15/31 of
     * 1,000,000 = 483871 and 45/91 of 3,000,000 = 1483516 expected, 0
     * there. The others are ahead (96774 of 300000, 241935 of 300000). */
    wait_alert_rows("forecast_gap", empty, "firing", 2);
    wait_scan(&r, "forecast_gap", worker_now(clock, started) + 500);
    q_text("SELECT string_agg((details->>'period') || ' ' || (details->>'expected_minor') || "
           "' ' || (details->>'actual_minor') || ' ' || (details->>'quota_minor'), ', ' "
           "ORDER BY details->>'period') FROM alert_state WHERE subject_id = $1 AND "
           "type = 'forecast_gap' AND status = 'firing'", 1, ea, v);
    assert_string_equal(v, "2025-05 483871 0 1000000, 2025-Q2 1483516 0 3000000");
    assert_int_equal(alert_rows("forecast_gap", met, "firing"), 0);
    assert_int_equal(alert_rows("forecast_gap", team, "firing"), 0);

    /* A changed quota follows within seconds; the team keeps its own. */
    snprintf(rows, sizeof rows, "%s,month,2025-05-01,2000000\n", empty);
    load_quotas(&r, rows);
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM forecast WHERE node_id = $1 AND "
                                    "period_kind = 'month' AND quota_minor = 2000000",
                                empty, 1, 10000),
                     1);
    forecast_figures(empty, "month", "2025-05-01", v);
    assert_string_equal(v, "0 0 0 0 2000000 0 0 2000000 2000000");
    forecast_figures(team, "month", "2025-05-01", v);
    assert_string_equal(v, "300000 0 0 0 500000 0 0 200000 200000");
    stop(pid);

    /* kactl forecast says which: a quota and its gap, met, no quota. */
    snprintf(args, sizeof args, "forecast %s --period 2025-05", empty);
    assert_int_equal(kactl(args, out, sizeof out), 0);
    output_line(out, "quota", line, sizeof line);
    assert_non_null(strstr(line, "20,000.00"));
    output_line(out, "gap", line, sizeof line);
    assert_non_null(strstr(line, "20,000.00"));
    output_line(out, "coverage", line, sizeof line);
    assert_non_null(strstr(line, "0.00x"));
    snprintf(args, sizeof args, "forecast %s --period 2025-05", met);
    assert_int_equal(kactl(args, out, sizeof out), 0);
    output_line(out, "coverage", line, sizeof line);
    char raw_cov[32] = "", adj_cov[32] = "";
    if (sscanf(line, " coverage %31s %31s", raw_cov, adj_cov) != 2 || strcmp(raw_cov, "met") ||
        strcmp(adj_cov, "met"))
        fail_msg("a met quota's coverage: \"%s\"", line);
    snprintf(args, sizeof args, "forecast %s --period 2025-05", r.division);
    assert_int_equal(kactl(args, out, sizeof out), 0);
    output_line(out, "quota", line, sizeof line);
    assert_non_null(strstr(line, "no quota"));
    output_line(out, "coverage", line, sizeof line);
    assert_null(strstr(line, "met"));
}

/* Waits up to 10 s for `want` alert_history rows of the transition. */
static void wait_alert_rows_soon(const char *type, const char *subject, const char *transition,
                                 long long want)
{
    for (int i = 0; i < 100 && alert_rows(type, subject, transition) < want; i++)
        usleep(100 * 1000);
    assert_int_equal(alert_rows(type, subject, transition), want);
}

/* The scan's record of the gap rule for this run's worker: its clock and
 * when it finished. */
static void gap_scan_record(const run_t *r, char out[256])
{
    const char *args[] = {r->group};
    q_text("SELECT clock_at::text || ' ' || finished_at::text FROM scan_run WHERE name = "
           "'forecast_gap' AND consumer_group = $1", 1, args, out);
}

static void the_pace_alert_follows_a_quota_and_an_order_without_waiting_for_the_scan(
    void **state)
{
    static run_t r;
    static const char *slow = "KA_SCAN_INTERVAL_MS=600000";
    char team[64], rep[64], acct[80], rows[512], v[256], scanned[256], now[256];
    (void)state;
    init_run(&r, "p");
    add_node(team, sizeof team, "fpt", &r, r.division, "team");
    add_node(rep, sizeof rep, "fpr", &r, team, "rep"); /* no deal, no order yet */
    snprintf(acct, sizeof acct, "facct-%s", r.sfx);
    account(acct, rep);

    /* The scans run once at start, then not for ten minutes: only the
     * recompute can move the alerts below. */
    r.extra[0] = slow;
    int64_t clock = midday("2025-05-16");
    pid_t pid = spawn(&r, clock);
    wait_scan(&r, "forecast_gap", clock);
    gap_scan_record(&r, scanned);

    /* Today 2025-05-16, linear pace: 15/31 of May and 45/91 of the quarter
     * gone. The rep's 1,000,000 expects 483871 by now, its quarter's 3,000,000
     * 1483516, the team's May 400,000 193548; nothing there: all three behind,
     * within seconds of the load. */
    snprintf(rows, sizeof rows,
             "%s,month,2025-05-01,1000000\n%s,quarter,2025-04-01,3000000\n"
             "%s,month,2025-05-01,400000\n",
             rep, rep, team);
    load_quotas(&r, rows);
    wait_alert_rows_soon("forecast_gap", rep, "firing", 2);
    wait_alert_rows_soon("forecast_gap", team, "firing", 1);
    const char *ra[] = {rep}, *ta[] = {team};
    q_text("SELECT string_agg((details->>'period') || ' ' || (details->>'expected_minor') || "
           "' ' || (details->>'actual_minor'), ', ' ORDER BY details->>'period') FROM "
           "alert_state WHERE subject_id = $1 AND type = 'forecast_gap' AND status = 'firing'",
           1, ra, v);
    assert_string_equal(v, "2025-05 483871 0, 2025-Q2 1483516 0");
    q_text("SELECT (details->>'expected_minor') || ' ' || (details->>'actual_minor') FROM "
           "alert_state WHERE subject_id = $1 AND type = 'forecast_gap' AND status = 'firing'",
           1, ta, v);
    assert_string_equal(v, "193548 0");

    /* An order booked for 5,000.00, as the order worker leaves it (the
     * actual and the marks of the rep's month and quarter): May caught up
     * for the rep and the team, resolved once each; the quarter still
     * behind (500000 of 1483516), its episode goes on. */
    const char *ar[] = {acct, rep};
    sql("INSERT INTO actual (account_id, sku, node_id, period_month, amount_minor) "
        "VALUES ($1, 'SKU-0001', $2, '2025-05-01', 500000)", 2, ar);
    sql("INSERT INTO forecast_dirty (node_id, period_kind, period_start) VALUES "
        "($1, 'month', '2025-05-01'), ($1, 'quarter', '2025-04-01')", 1, ra);
    wait_alert_rows_soon("forecast_gap", rep, "resolved", 1);
    wait_alert_rows_soon("forecast_gap", team, "resolved", 1);
    q_text("SELECT string_agg(status || ' ' || (details->>'period') || ' ' || "
           "(details->>'actual_minor'), ', ' ORDER BY details->>'period') FROM alert_state "
           "WHERE subject_id = $1 AND type = 'forecast_gap'", 1, ra, v);
    assert_string_equal(v, "resolved 2025-05 500000, firing 2025-Q2 0");
    q_text("SELECT status || ' ' || summary FROM alert_state WHERE subject_id = $1 AND "
           "type = 'forecast_gap'", 1, ta, v);
    assert_non_null(strstr(v, "resolved"));
    assert_non_null(strstr(v, "caught up"));
    /* Nothing judged twice: one transition each, and the quarter fired once. */
    assert_int_equal(alert_rows("forecast_gap", rep, "firing"), 2);
    assert_int_equal(alert_rows("forecast_gap", rep, "resolved"), 1);
    assert_int_equal(alert_rows("forecast_gap", team, "firing"), 1);

    /* ... and no scan ran meanwhile. */
    gap_scan_record(&r, now);
    assert_string_equal(now, scanned);
    stop(pid);
}

static int setup(void **state)
{
    char err[KA_ERRSTR_SIZE];
    (void)state;
    cfg = it_config("it-forecast-scan");
    pg = it_pg(cfg);
    if (ka_pg_query(pg, "SELECT id FROM org_node WHERE parent_id IS NULL", 0, NULL, read_root,
                    root, err, sizeof err) != KA_OK || !root[0])
        fail_msg("the org tree has no company: load one first (tests/run runs kactl load sample)");
    return 0;
}

static int kill_leftovers(void **state)
{
    (void)state;
    if (live > 0) {
        kill(live, SIGKILL);
        waitpid(live, NULL, 0);
        live = 0;
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
    if (argc < 3) {
        fprintf(stderr, "usage: test_forecast_scan PATH-TO-forecast-worker PATH-TO-kactl\n");
        return 2;
    }
    worker_path = argv[1];
    kactl_path = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(snapshots_baselines_and_accuracy_match_hand_computed_values,
                                  kill_leftovers),
        cmocka_unit_test_teardown(flow_between_two_snapshots_matches_the_hand_computed_table,
                                  kill_leftovers),
        cmocka_unit_test_teardown(slipping_deals_fire_once_and_resolve_once, kill_leftovers),
        cmocka_unit_test_teardown(forecast_behind_pace_fires_once_and_resolves_when_it_catches_up,
                                  kill_leftovers),
        cmocka_unit_test_teardown(
            a_loaded_quota_reaches_the_forecast_and_its_gap_alert_while_running,
            kill_leftovers),
        cmocka_unit_test_teardown(
            the_pace_alert_follows_a_quota_and_an_order_without_waiting_for_the_scan,
            kill_leftovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

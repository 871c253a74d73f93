/* Retention on the real stack (docs/retention.md): a probe worker takes a
 * day of events, then its clock (KA_CLOCK_OFFSET_MS) and `kactl retention
 * apply`'s move a day on, DAYS times, with day-wide partitions and a few
 * days of retention. Every day some of the day before is re-sent (inside the
 * dedupe window) and one bad event is dead-lettered. Then:
 *   - every distinct event applied exactly once: the re-sends deduped even
 *     after days of partitions came and went;
 *   - an event older than the dedupe window is dead-lettered with
 *     outside_dedupe_window, not applied;
 *   - the dead letters' outbox ids are the deterministic dlq:group:topic:part:offset,
 *     all published, none lost;
 *   - the partitioned logs' bytes stay flat once the retention is reached:
 *     the last day's are within a margin of the first steady day's, while the
 *     events taken grew every day, and no row older than the retention is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include <cmocka.h>

#include "it_util.h"
#include "ka/v1/visit.pb-c.h"
#include "ka_validate.h"

#define DAY_MS 86400000LL
#define DAYS 9
#define PER_DAY 60
#define RESENT 15
#define KEEP_DAYS 3

static const char *worker_path, *kactl_path;
static ka_config_t *cfg;
static ka_pg_t *pg;
static ka_producer_t *kp;
static char topic[128], echo[128], dlq[128], group[128];
static pid_t live;

static const char *BYTES =
    "SELECT sum(bytes)::bigint FROM ka_retention_status() "
    "WHERE table_name IN ('processed_event', 'outbox')";

/* Past the partitions the migration made (months up to now + 3): the
 * test's days get day-wide partitions of their own. */
#define BASE_MS (450 * DAY_MS)

static const char *OTHERS[] = {"opportunity_event", "alert_history", "dead_letter",
                               "funnel_snapshot", "forecast_snapshot", "opportunity_snapshot"};

static void produce_at(const char *id, int64_t at_ms)
{
    Ka__V1__EventHeader header = KA__V1__EVENT_HEADER__INIT;
    Ka__V1__VisitEvent ev = KA__V1__VISIT_EVENT__INIT;
    Ka__V1__AccountRef acct = KA__V1__ACCOUNT_REF__INIT;
    header.event_id = (char *)id;
    header.occurred_at_ms = at_ms;
    header.producer = "it";
    acct.name = "Retention Account";
    ev.header = &header;
    ev.account = &acct;
    ev.rep_id = "rep-1";
    size_t len = ka__v1__visit_event__get_packed_size(&ev);
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    ka__v1__visit_event__pack(&ev, buf);
    it_produce(kp, topic, id, buf, len);
    free(buf);
}

static void sh(const char *fmt, ...)
{
    char cmd[1024], out[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = it_sh(cmd, out, sizeof out);
    if (rc != 0)
        fail_msg("`%s` exited %d:\n%s", cmd, rc, out);
}

/* Runs the probe worker at clock offset `offset_ms` until it has taken
 * every offset produced so far (`want` across partitions' next offsets). */
static void run_worker(int64_t offset_ms, long long want)
{
    char off[64], t[160], e[160], d[160], g[160];
    snprintf(off, sizeof off, "KA_CLOCK_OFFSET_MS=%lld", (long long)offset_ms);
    snprintf(t, sizeof t, "KA_TOPIC_VISIT=%s", topic);
    snprintf(e, sizeof e, "PROBE_ECHO_TOPIC=%s", echo);
    snprintf(d, sizeof d, "KA_TOPIC_DEADLETTER=%s", dlq);
    snprintf(g, sizeof g, "KA_CONSUMER_GROUP=%s", group);
    const char *set[] = {off, t, e, d, g, "KA_BATCH_MAX_MS=20", "KA_START_OFFSET=earliest", NULL};
    live = it_spawn(worker_path, set);
    it_wait_group(pg, group, want);
    /* Published before it stops: none of its outbox rows may be dropped unsent. */
    assert_int_equal(it_pg_wait(pg, "SELECT count(*) FROM outbox WHERE topic = $1 AND published_at IS NULL",
                                dlq, 0, 30000), 0);
    it_stop(live, SIGTERM);
    live = 0;
}

static void apply(int64_t offset_ms)
{
    sh("KA_CLOCK_OFFSET_MS=%lld %s retention apply 2>&1", (long long)offset_ms, kactl_path);
}

static void ages_data_and_disk_stays_flat(void **state)
{
    (void)state;
    char id[96];
    long long produced = 0, bytes[DAYS];
    int64_t now = ka_now_ms();

    sh("%s retention set kafka_input_retention 1d 2>&1", kactl_path);
    sh("%s retention set processed_event %dd --every day --ahead 1 2>&1", kactl_path, KEEP_DAYS);
    sh("%s retention set outbox %dd --every day --ahead 1 2>&1", kactl_path, KEEP_DAYS);
    /* The other logs keep everything for the test's days (the suite's data). */
    for (size_t i = 0; i < sizeof OTHERS / sizeof OTHERS[0]; i++)
        sh("%s retention set %s 1000d 2>&1", kactl_path, OTHERS[i]);

    for (int day = 0; day < DAYS; day++) {
        int64_t off = BASE_MS + day * DAY_MS, today = now + off;
        apply(off);
        for (int i = 0; i < PER_DAY; i++) {
            snprintf(id, sizeof id, "ret-%s-%d-%d", it_suffix(), day, i);
            produce_at(id, today - (int64_t)i * 60000);
            produced++;
        }
        if (day > 0)
            for (int i = 0; i < RESENT; i++) { /* yesterday's, again: same bytes */
                snprintf(id, sizeof id, "ret-%s-%d-%d", it_suffix(), day - 1, i);
                produce_at(id, today - DAY_MS - (int64_t)i * 60000);
                produced++;
            }
        it_produce(kp, topic, "bad", "\xff\xff not a protobuf", 17);
        produced++;
        run_worker(off, produced);
        apply(off);
        bytes[day] = it_pg_int(pg, BYTES, NULL);
        fprintf(stderr, "day %d: %lld bytes in processed_event + outbox + dead_letter\n", day,
                bytes[day]);
    }

    /* Exactly once, across every day's partitions. */
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM ingest_probe WHERE consumer_group = $1",
                               group),
                     DAYS * PER_DAY);
    /* A re-send after the rows of its day were dropped is not taken either:
     * it is older than the window and dead-lettered. */
    int64_t off = BASE_MS + (DAYS - 1) * DAY_MS;
    snprintf(id, sizeof id, "ret-%s-0-0", it_suffix());
    produce_at(id, now);
    produced++;
    run_worker(off, produced);
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM ingest_probe WHERE consumer_group = $1",
                               group),
                     DAYS * PER_DAY);
    assert_int_equal(it_pg_int(pg,
                               "SELECT count(*) FROM dead_letter WHERE consumer_group = $1 "
                               "AND reason = 'outside_dedupe_window'",
                               group),
                     1);

    /* Dead letters: deterministic ids, every one published, the old ones gone. */
    assert_int_equal(
        it_pg_int(pg,
                  "SELECT count(*) FROM outbox o WHERE o.topic = $1 AND o.event_id <> "
                  "'dlq:' || (o.headers->>'ka_src_topic') || ':' || (o.headers->>'ka_src_partition') "
                  "|| ':' || (o.headers->>'ka_src_offset') AND o.event_id NOT LIKE 'dlq:%'",
                  dlq),
        0);
    char q[512];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM outbox WHERE topic = $1 AND event_id NOT LIKE 'dlq:%s:%%'",
             group);
    assert_int_equal(it_pg_int(pg, q, dlq), 0);
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM outbox WHERE topic = $1 AND published_at IS NULL",
                               dlq),
                     0);
    assert_int_equal(it_pg_int(pg, "SELECT count(*) FROM dead_letter WHERE consumer_group = $1",
                               group),
                     DAYS + 1);

    /* Nothing older than the retention is left in the inbox. */
    char cut[64];
    snprintf(cut, sizeof cut, "%lld", (long long)(now + off - (KEEP_DAYS + 1) * DAY_MS));
    const char *args[] = {group, cut};
    assert_int_equal(it_pg_int_args(pg,
                                    "SELECT count(*) FROM processed_event WHERE consumer_group = $1 "
                                    "AND occurred_at < timestamptz 'epoch' + $2::bigint * "
                                    "interval '1 millisecond'",
                                    2, args),
                     0);
    long long inbox = it_pg_int(pg, "SELECT count(*) FROM processed_event WHERE consumer_group = $1",
                                group);
    assert_true(inbox <= (KEEP_DAYS + 2) * PER_DAY);
    assert_true(inbox >= KEEP_DAYS * PER_DAY);

    /* Flat: from the first day the retention is full, the bytes do not grow
     * with the days (a partition's fixed size plus a day's rows of margin). */
    long long steady = bytes[KEEP_DAYS + 1];
    for (int day = KEEP_DAYS + 2; day < DAYS; day++)
        if (bytes[day] > steady + steady / 4)
            fail_msg("day %d: %lld bytes, more than 1.25 x day %d's %lld: disk grows", day,
                     bytes[day], KEEP_DAYS + 1, steady);
}

static int setup(void **state)
{
    (void)state;
    char err[KA_ERRSTR_SIZE];
    it_open("it-retention", &cfg, &pg, &kp);
    snprintf(topic, sizeof topic, "it.retention.visit.%s", it_suffix());
    snprintf(echo, sizeof echo, "it.retention.echo.%s", it_suffix());
    snprintf(dlq, sizeof dlq, "it.retention.deadletter.%s", it_suffix());
    snprintf(group, sizeof group, "it-retention-%s", it_suffix());
    const char *brokers = ka_config_str(cfg, "KA_KAFKA_BROKERS");
    if (ka_kafka_create_topic(brokers, topic, 2, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, echo, 1, err, sizeof err) != KA_OK ||
        ka_kafka_create_topic(brokers, dlq, 1, err, sizeof err) != KA_OK)
        fail_msg("%s", err);
    return 0;
}

/* The shipped policies again, and the partitions of today. */
static int teardown(void **state)
{
    (void)state;
    char out[4096];
    if (live)
        it_kill_all(&live, 1);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s retention set processed_event 400d --every month --ahead 2 && "
             "%s retention set outbox 7d --ahead 3 && "
             "%s retention set kafka_input_retention 7d",
             kactl_path, kactl_path, kactl_path);
    (void)it_sh(cmd, out, sizeof out);
    for (size_t i = 0; i < sizeof OTHERS / sizeof OTHERS[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s retention set %s %s", kactl_path, OTHERS[i],
                 strcmp(OTHERS[i], "dead_letter") == 0 ? "90d" : "400d");
        (void)it_sh(cmd, out, sizeof out);
    }
    snprintf(cmd, sizeof cmd, "%s retention apply", kactl_path);
    (void)it_sh(cmd, out, sizeof out);
    it_close(cfg, pg, kp);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PROBE_WORKER KACTL\n", argv[0]);
        return 2;
    }
    worker_path = argv[1];
    kactl_path = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ages_data_and_disk_stays_flat),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

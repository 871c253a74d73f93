/* kactl's operator reads and repairs against the real database and Kafka:
 * deadletters lists seeded rows and filters them; redrive produces a dead
 * letter's stored bytes to its source topic with the original key and marks
 * it re-driven only then; replay moves stored offsets back and refuses
 * offsets outside what is stored; timeline shows an account's visits,
 * opportunity and order events and alerts newest first; rebuild-cache deletes
 * a group's cache marker; bad arguments exit 2 with the reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "it_util.h"
#include "ka_redis.h"

static const char *kactl;
static ka_config_t *cfg;
static ka_pg_t *pg;
static char sfx[64], group[128], src_topic[128], in_topic[128], account[128];
static char dl_a[24], dl_b[24];

/* Runs kactl with args; returns its exit code, its output (stdout and
 * stderr) in out. */
static int run(const char *args, char *out, size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", kactl, args);
    return it_sh(cmd, out, len);
}

static int runf(char *out, size_t len, const char *fmt, ...)
{
    char args[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return run(args, out, len);
}

static long long q(const char *sql, int n, ...)
{
    const char *args[16];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        args[i] = va_arg(ap, const char *);
    va_end(ap);
    return it_pg_int_args(pg, sql, n, args);
}

static void seed_dead_letters(void)
{
    /* A: rejected by apply, its outbox row keeps the original key; B: no
     * outbox row (pruned), so no key. published_at is set so no relay
     * publishes the seeded outbox row. */
    long long a = q("INSERT INTO dead_letter (consumer_group, source_topic, source_partition, "
                    "source_offset, reason, detail, payload, created_at) VALUES ($1, $2, 0, 5, "
                    "'unknown_stage', 'stage 99 is not in funnel x-' || $3, "
                    "convert_to('payload-a-' || $3, 'UTF8'), now() - interval '1 minute') "
                    "RETURNING id",
                    3, group, src_topic, sfx);
    long long b = q("INSERT INTO dead_letter (consumer_group, source_topic, source_partition, "
                    "source_offset, reason, detail, payload, content_mode, json_path) "
                    "VALUES ($1, $2, 0, 6, "
                    "'decode_failed', 'not a protobuf message y-' || $3, "
                    "'\\x00ff0102'::bytea, 'json', '$.lines[0].quantityMilli') RETURNING id",
                    3, group, src_topic, sfx);
    assert_true(a > 0 && b > a);
    snprintf(dl_a, sizeof dl_a, "%lld", a);
    snprintf(dl_b, sizeof dl_b, "%lld", b);
    q("INSERT INTO outbox (event_id, topic, kafka_key, ce_source, ce_time, payload, "
      "published_at) VALUES ('dlq:' || $1 || ':' || $2 || ':0:5', 'ka.deadletter.v1', "
      "convert_to('key-a-' || $3, 'UTF8'), 'urn:ka:it', now(), "
      "convert_to('payload-a-' || $3, 'UTF8'), now())",
      3, group, src_topic, sfx);
}

static void deadletters_lists_newest_first_and_filters(void **state)
{
    char out[16384];
    (void)state;
    assert_int_equal(runf(out, sizeof out, "deadletters --group %s", group), 0);
    char *pa = strstr(out, "unknown_stage"), *pb = strstr(out, "decode_failed");
    assert_non_null(pa);
    assert_non_null(pb);
    assert_true(pb < pa); /* B is newer */
    assert_non_null(strstr(out, src_topic));
    assert_non_null(strstr(out, "[0] @ 5"));
    /* the content mode and the JSON path of a rejection; "-" before modes */
    assert_non_null(strstr(out, "bytes  json  pending"));
    assert_non_null(strstr(out, "  at $.lines[0].quantityMilli\n"));
    assert_non_null(strstr(out, "bytes  -  pending"));
    assert_non_null(strstr(out, "2 dead letters"));

    assert_int_equal(runf(out, sizeof out, "deadletters --group %s --reason unknown_stage", group),
                     0);
    assert_non_null(strstr(out, "stage 99 is not in funnel x-"));
    assert_null(strstr(out, "decode_failed"));
    assert_non_null(strstr(out, "1 dead letter\n"));

    assert_int_equal(run("deadletters --limit 0", out, sizeof out), 2);
    assert_non_null(strstr(out, "--limit expects a number"));
    assert_int_equal(run("deadletters --bogus", out, sizeof out), 2);
    assert_non_null(strstr(out, "unexpected argument \"--bogus\""));
    assert_int_equal(run("deadletters --reason", out, sizeof out), 2);
    assert_int_equal(run("deadletters --help", out, sizeof out), 0);
    assert_non_null(strstr(out, "usage: kactl deadletters"));
}

static void redrive_produces_stored_bytes_then_marks(void **state)
{
    char out[16384], want[128];
    (void)state;
    assert_int_equal(run("redrive", out, sizeof out), 2);
    assert_non_null(strstr(out, "either dead letter ids or --reason"));
    assert_int_equal(run("redrive abc", out, sizeof out), 2);
    assert_non_null(strstr(out, "unexpected argument \"abc\""));
    assert_int_equal(run("redrive 1 --reason x", out, sizeof out), 2);
    assert_int_equal(run("redrive --help", out, sizeof out), 0);
    assert_non_null(strstr(out, "duplicate"));

    assert_int_equal(runf(out, sizeof out, "redrive %s", dl_a), 0);
    assert_non_null(strstr(out, "original key"));
    assert_non_null(strstr(out, "1 of 1 dead letter re-driven"));
    assert_int_equal(q("SELECT count(*) FROM dead_letter WHERE id = $1::bigint "
                       "AND redriven_at IS NOT NULL", 1, dl_a), 1);
    assert_int_equal(q("SELECT count(*) FROM dead_letter WHERE id = $1::bigint "
                       "AND redriven_at IS NULL", 1, dl_b), 1);

    /* Already re-driven: skipped unless --again. */
    assert_int_equal(runf(out, sizeof out, "redrive %s", dl_a), 1);
    assert_non_null(strstr(out, "already re-driven"));

    /* By reason and group: B, with no key stored. */
    assert_int_equal(runf(out, sizeof out, "redrive --reason decode_failed --group %s", group),
                     0);
    assert_non_null(strstr(out, "no key"));
    assert_int_equal(q("SELECT count(*) FROM dead_letter WHERE consumer_group = $1 "
                       "AND redriven_at IS NULL", 1, group), 0);
    assert_int_equal(runf(out, sizeof out, "deadletters --group %s --pending", group), 0);
    assert_non_null(strstr(out, "0 dead letters"));

    it_msgs_t msgs = it_consume_all(cfg, src_topic, 2, 30000);
    assert_int_equal(msgs.n, 2);
    snprintf(want, sizeof want, "payload-a-%s", sfx);
    assert_int_equal(msgs.m[0]->len, strlen(want));
    assert_memory_equal(msgs.m[0]->payload, want, strlen(want));
    snprintf(want, sizeof want, "key-a-%s", sfx);
    assert_int_equal(msgs.m[0]->key_len, strlen(want));
    assert_memory_equal(msgs.m[0]->key, want, strlen(want));
    char *from = it_header(msgs.m[0], "ka_redriven_from");
    snprintf(want, sizeof want, "dead_letter:%s", dl_a);
    assert_string_equal(from, want);
    free(from);
    assert_int_equal(msgs.m[1]->len, 4);
    assert_memory_equal(msgs.m[1]->payload, "\x00\xff\x01\x02", 4);
    assert_int_equal(msgs.m[1]->key_len, 0);
    it_free_msgs(&msgs);
}

static void replay_moves_stored_offsets_and_refuses_outside(void **state)
{
    char out[16384];
    const char *sql_off = "SELECT next_offset FROM consumer_offset WHERE consumer_group = $1 "
                          "AND topic = $2 AND partition = $3::int";
    (void)state;
    q("INSERT INTO consumer_offset (consumer_group, topic, partition, next_offset) "
      "VALUES ($1, $2, 0, 100), ($1, $2, 1, 50)", 2, group, in_topic);

    assert_int_equal(runf(out, sizeof out, "replay --topic %s --from-offset 40", in_topic), 2);
    assert_non_null(strstr(out, "are required"));
    assert_int_equal(runf(out, sizeof out, "replay --topic %s --group %s --from-offset -3",
                          in_topic, group), 2);
    assert_int_equal(runf(out, sizeof out, "replay --topic %s --group %s --from-offset 40 "
                          "--to-offset 30", in_topic, group), 2);
    assert_non_null(strstr(out, "before --from-offset"));

    assert_int_equal(runf(out, sizeof out, "replay --topic %s --group %s --from-offset 40 "
                          "--to-offset 45 --partition 0", in_topic, group), 0);
    assert_non_null(strstr(out, "100 -> 40"));
    assert_int_equal(q(sql_off, 3, group, in_topic, "0"), 40);
    assert_int_equal(q(sql_off, 3, group, in_topic, "1"), 50);

    /* Every partition: a --to-offset never read, or a --from-offset at or past a
     * stored offset, moves nothing. */
    assert_int_equal(runf(out, sizeof out, "replay --topic %s --group %s --from-offset 30 "
                          "--to-offset 70", in_topic, group), 1);
    assert_non_null(strstr(out, "never read"));
    assert_int_equal(q(sql_off, 3, group, in_topic, "0"), 40);
    assert_int_equal(runf(out, sizeof out, "replay --topic %s --group %s --from-offset 60",
                          in_topic, group), 1);
    assert_non_null(strstr(out, "nothing moved"));
    assert_int_equal(q(sql_off, 3, group, in_topic, "1"), 50);

    /* No stored offset: refused, then created with --force. */
    assert_int_equal(runf(out, sizeof out, "replay --topic %s --group %s --from-offset 7 "
                          "--partition 2", in_topic, group), 1);
    assert_non_null(strstr(out, "--force"));
    assert_int_equal(runf(out, sizeof out, "replay --topic %s --group %s --from-offset 7 "
                          "--partition 2 --force", in_topic, group), 0);
    assert_int_equal(q(sql_off, 3, group, in_topic, "2"), 7);

    /* Every stored partition (three now) back to 5. */
    assert_int_equal(runf(out, sizeof out, "replay --topic %s --group %s --from-offset 5",
                          in_topic, group), 0);
    assert_non_null(strstr(out, "moved 3 stored offsets"));
    assert_int_equal(q(sql_off, 3, group, in_topic, "1"), 5);
}

static void timeline_shows_account_history_newest_first(void **state)
{
    char out[16384], opp[128], order[128];
    (void)state;
    snprintf(opp, sizeof opp, "opp-ops-%s", sfx);
    snprintf(order, sizeof order, "ord-ops-%s", sfx);
    q("INSERT INTO account (id, canonical_key, display_name, owner_rep_id) "
      "VALUES ($1, 'name:' || $1, 'Ops Test Co ' || $1, 'rep-ops')", 1, account);
    q("INSERT INTO contact (id, account_id, name) VALUES ('c-' || $1, $1, 'Zhang Wei')", 1,
      account);
    q("INSERT INTO visit (id, event_id, account_id, rep_id, visited_at, objective, man_money, "
      "man_authority, man_need) VALUES ('v-' || $1, 'ev-v-' || $1, $1, 'rep-ops', "
      "'2026-03-01 09:00Z', 'sell', true, false, true)", 1, account);
    q("INSERT INTO visit_contact (visit_id, contact_id, buying_role) "
      "VALUES ('v-' || $1, 'c-' || $1, 'decision_maker')", 1, account);
    q("INSERT INTO opportunity (id, account_id, owner_rep_id, definition_id, stage_code, "
      "win_probability_bp, stage_entered_at) SELECT $1, $2, 'rep-ops', definition_id, code, "
      "0, '2026-02-01Z' FROM funnel_stage LIMIT 1", 2, opp, account);
    q("INSERT INTO opportunity_event (opportunity_id, event_id, kind, occurred_at, applied) "
      "VALUES ($1, 'ev-o1-' || $1, 'created', '2026-02-01 08:00Z', true), "
      "($1, 'ev-o2-' || $1, 'stage_changed', '2026-03-02 08:00Z', true)", 1, opp);
    q("INSERT INTO sales_order (id, account_id, rep_id, channel, status, booked_at, "
      "total_amount_minor, booked_event_id, last_event_at, last_event_id) VALUES ($1, $2, "
      "'rep-ops', 'direct', 'booked', '2026-03-05 10:00Z', 12345600, 'ev-b-' || $1, "
      "'2026-03-05 10:00Z', 'ev-b-' || $1)", 2, order, account);
    q("INSERT INTO sales_order_event (order_id, event_id, kind, occurred_at, applied) "
      "VALUES ($1, 'ev-b-' || $1, 'booked', '2026-03-05 10:00Z', true)", 1, order);
    q("INSERT INTO alert_state (fingerprint, alert_id, type, severity, status, subject_kind, "
      "subject_id, summary, starts_at, last_transition_at) VALUES ('fp-' || $1, 'al-' || $1, "
      "'churn_risk', 'warning', 'firing', 'account', $1, 'orders fell ' || $1, "
      "'2026-03-10 00:00Z', '2026-03-10 00:00Z')", 1, account);

    assert_int_equal(runf(out, sizeof out, "timeline %s", account), 0);
    char *alert = strstr(out, "churn_risk"), *ord = strstr(out, order),
         *stage = strstr(out, "stage_changed"), *visit = strstr(out, "Zhang Wei"),
         *created = strstr(out, "created");
    assert_non_null(alert);
    assert_non_null(ord);
    assert_non_null(stage);
    assert_non_null(visit);
    assert_non_null(created);
    assert_true(alert < ord && ord < stage && stage < visit && visit < created);
    assert_non_null(strstr(out, "MAN MaN"));
    assert_non_null(strstr(out, "Zhang Wei (decision_maker)"));
    assert_non_null(strstr(out, "total 123,456"));
    assert_non_null(strstr(out, "2026-03-10 00:00"));
    assert_non_null(strstr(out, "5 entries"));

    assert_int_equal(runf(out, sizeof out, "timeline %s --limit 2", account), 0);
    assert_non_null(strstr(out, "2 entries"));
    assert_null(strstr(out, "Zhang Wei"));

    assert_int_equal(run("timeline", out, sizeof out), 2);
    assert_non_null(strstr(out, "which account?"));
    assert_int_equal(runf(out, sizeof out, "timeline %s --limit nope", account), 2);
    assert_int_equal(runf(out, sizeof out, "timeline %s extra", account), 2);
    assert_int_equal(runf(out, sizeof out, "timeline no-such-%s", sfx), 1);
    assert_non_null(strstr(out, "no account"));
}

static void rebuild_cache_deletes_the_group_marker(void **state)
{
    char out[16384], err[KA_ERRSTR_SIZE], marker[256], *val = NULL;
    (void)state;
    ka_redis_t *rds = ka_redis_connect(ka_config_str(cfg, "KA_REDIS_HOST"),
                                       (int)ka_config_int(cfg, "KA_REDIS_PORT"), 2000, err,
                                       sizeof err);
    assert_non_null(rds);
    snprintf(marker, sizeof marker, "ka:cache:ready:%s", group);
    const char *set[] = {"SET", marker, "1"};
    ka_redis_append_str(rds, 3, set);
    assert_int_equal(ka_redis_flush(rds, err, sizeof err), KA_OK);

    assert_int_equal(runf(out, sizeof out, "rebuild-cache --group %s", group), 0);
    assert_non_null(strstr(out, "deleted"));
    assert_int_equal(ka_redis_get(rds, marker, &val, NULL, err, sizeof err), KA_OK);
    assert_null(val);
    assert_int_equal(runf(out, sizeof out, "rebuild-cache --group %s", group), 0);
    assert_non_null(strstr(out, "was not set"));
    assert_int_equal(run("rebuild-cache --nope", out, sizeof out), 2);
    assert_non_null(strstr(out, "unexpected argument"));
    ka_redis_free(rds);
}

static int setup(void **state)
{
    char err[KA_ERRSTR_SIZE];
    (void)state;
    cfg = it_config("it-kactl");
    pg = it_pg(cfg);
    snprintf(sfx, sizeof sfx, "%s", it_suffix());
    snprintf(group, sizeof group, "it-ops-%s", sfx);
    snprintf(src_topic, sizeof src_topic, "it.ops-src.%s", sfx);
    snprintf(in_topic, sizeof in_topic, "it.ops-in.%s", sfx);
    snprintf(account, sizeof account, "acct-ops-%s", sfx);
    if (ka_kafka_create_topic(ka_config_str(cfg, "KA_KAFKA_BROKERS"), src_topic, 1, err,
                              sizeof err) != KA_OK)
        fail_msg("%s", err);
    seed_dead_letters();
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
        fprintf(stderr, "usage: test_kactl_ops KACTL\n");
        return 2;
    }
    kactl = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(deadletters_lists_newest_first_and_filters),
        cmocka_unit_test(redrive_produces_stored_bytes_then_marks),
        cmocka_unit_test(replay_moves_stored_offsets_and_refuses_outside),
        cmocka_unit_test(timeline_shows_account_history_newest_first),
        cmocka_unit_test(rebuild_cache_deletes_the_group_marker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

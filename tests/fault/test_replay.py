"""Duplicates, reordering, stale events and replays: nothing changes twice.

1. A stream with many duplicates (the same event id again, later on its key),
   an interleaving across keys unlike the production order (each key's order
   kept, as the partitioning promises), and events older than the state
   already applied (stale opportunity and order events, late visits).
2. The whole stream produced a second time: every event a duplicate.
3. A replay of every input topic from offset 0 with `kactl replay` (the
   product's replay: the group's stored offsets moved back), over the
   existing state, workers stopped first as docs/operations.md says.
The forecast worker runs too (managers' adjustments among the events, deals
confirmed for periods). After each step the state equals the oracle's; after
2 and 3 no row of the run was even rewritten (versions, update times,
forecast and planning revisions, adjustments and the alert, forecast and
planning outbox unchanged; a rejected event is judged again, so dead letters
are left to the oracle's count)."""
import subprocess
import sys

from faultlib import INPUT, WORKERS, Env, Run, Scenario, pg_array, report, seed_of


def fingerprint(run):
    """Every row the run's events wrote, with versions and update times: a
    re-applied event would change it even when the values come out equal.
    Left out: what the periodic rules write on their own clock (the tier
    ranking's account columns, scan-raised alerts, the hourly full forecast
    round), which a restart runs."""
    p = run.prefix
    q = """
SELECT x FROM (
  SELECT concat_ws('|', id, stage_code, amount_minor, owner_rep_id, status, version, updated_at) AS x
    FROM opportunity WHERE starts_with(id, :'p')
  UNION ALL SELECT concat_ws('|', id, status, total_amount_minor, updated_at)
    FROM sales_order WHERE starts_with(id, :'p')
  UNION ALL SELECT concat_ws('|', account_id, sku, node_id, period_month, amount_minor, updated_at)
    FROM actual WHERE starts_with(node_id, 'rep') AND node_id LIKE '%' || :'p'
  UNION ALL SELECT concat_ws('|', id, visited_at) FROM visit WHERE starts_with(event_id, :'p')
  UNION ALL SELECT concat_ws('|', id, last_visit_at, last_decision_maker_visit_at, man_class,
                             man_class_at, last_activity_at) FROM account
    WHERE starts_with(canonical_key, 'name:fault ' || :'p')
  UNION ALL SELECT concat_ws('|', fingerprint, status, last_transition_at) FROM alert_state
    WHERE type = 'unauthorized_owner_change' AND starts_with(subject_id, :'p')
  UNION ALL SELECT concat_ws('|', event_id, topic) FROM outbox
    WHERE topic = :'a' AND starts_with(event_id, 'unauthorized_owner_change/')
  UNION ALL SELECT concat_ws('|', node_id, period_kind, period_start, revision, updated_at)
    FROM forecast WHERE node_id = ANY(:'n'::text[])
  UNION ALL SELECT concat_ws('|', sku, period_month, revision, updated_at) FROM planning_feed
    WHERE division_node_id = :'d'
  UNION ALL SELECT concat_ws('|', id, event_id) FROM forecast_adjustment
    WHERE node_id = ANY(:'n'::text[])
  UNION ALL SELECT concat_ws('|', event_id, topic) FROM outbox
    WHERE topic IN (:'f', :'pl') AND strpos(event_id, '/full-') = 0
) rows ORDER BY x"""
    return sorted(r[0] for r in run.env.sql(q, p=p, a=run.topics["alert"],
                                              n=pg_array(sorted(run.org.nodes())),
                                              d=run.division, f=run.topics["forecast"],
                                              pl=run.topics["planning"]))


def same(before, after, what):
    if before != after:
        gone, new = sorted(set(before) - set(after)), sorted(set(after) - set(before))
        raise AssertionError(f"{what} rewrote rows of the run:\n  before: {gone[:10]}\n"
                             f"  after:  {new[:10]}")


def main():
    args = Env.parser(__doc__).parse_args()
    env = Env.from_environ(args)
    if not env.kactl:
        raise SystemExit("--kactl is required")
    seed = seed_of(args)
    with Run(env, "replay") as run:
        sc = Scenario(run, seed, n_events=900, duplicates=0.3, reorder=True, stale=0.1,
                      forecast=True)
        print(f"{len(sc.events)} events: {sc.duplicates} duplicates, {sc.stale_events} stale, "
              f"{sc.unauthorized_events} unauthorized", flush=True)
        workers = [run.worker(k, extra_env={"KA_BATCH_MAX_EVENTS": "50"}).start()
                   for k in WORKERS]
        run.produce(sc.events)
        run.wait_caught_up(WORKERS)
        first = run.compare(sc)
        run.check_downstream(sc)
        before = fingerprint(run)

        # 2: everything again. Rejected events are judged again (their ids
        # are forgotten for re-drives), so the oracle reads the log twice.
        run.produce(sc.events)
        run.wait_caught_up(WORKERS)
        sc.log = sc.log + sc.log
        second = run.compare(sc)
        run.check_downstream(sc)
        after = fingerprint(run)
        same(before, after, "the re-sent stream")

        # 3: kactl replay from offset 0, workers stopped first.
        for w in workers:
            w.stop()
        for k in WORKERS:
            res = subprocess.run([env.kactl, "replay", "--group", run.groups[k], "--topic",
                                  run.topics[INPUT[k]], "--from-offset", "0"], capture_output=True,
                                 text=True)
            assert res.returncode == 0, f"kactl replay {k}: {res.stdout}{res.stderr}"
            assert all(o == 0 for o in run.stored_offsets(k).values()), \
                f"{k}: stored offsets after replay {run.stored_offsets(k)}"
        for w in workers:
            w.start()
        run.wait_caught_up(WORKERS)
        third = run.compare(sc)
        run.check_downstream(sc)
        replayed = fingerprint(run)
        for w in workers:
            # The replay read the whole topic again (both copies of the stream).
            sent = 2 * sum(1 for e in sc.events if e.kind == INPUT[w.kind])
            consumed = w.metric("ka_events_consumed_total")
            assert consumed is not None and consumed >= sent, \
                f"{w.kind}: the replay consumed {consumed} events, the topic holds {sent}"
            w.stop()
        same(after, replayed, "the replay")
        # Faults: in-stream duplicates and stale events, then every event
        # delivered twice more (the re-send and the replay).
        report("duplicates_replay", sc.duplicates + sc.stale_events + 2 * len(sc.events),
               first.events_compared + second.events_compared + third.events_compared)
    return 0


if __name__ == "__main__":
    sys.exit(main())

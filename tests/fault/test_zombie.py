"""A zombie: instance A of each worker kind is paused (SIGSTOP) holding a
batch it has polled but not committed, for longer than its session timeout
(10 s, ka_kafka.c), while instance B of the same group takes its partitions
and commits further events. Then A resumes (SIGCONT): none of A's writes may
land. Whichever way A learns it is fenced (the rebalance callback reporting
the assignment lost, which drops its batch, or the stored-offset
compare-and-set failing in its transaction) is read from its log and its
ka_fenced_batches_total, and the state must equal the oracle's. The forecast
worker is among them: a zombie paused inside its recomputation would hold
the recompute lock, so its session ends after KA_PG_IDLE_IN_TRANSACTION_MS
and the taker's forecast catches up while it sleeps.

Then the compare-and-set fence on its own, deterministically: the stored
offsets of a running worker are moved under it (kactl replay, as
docs/operations.md describes), so its next batch must fail the
compare-and-set (ka_fenced_batches_total rises), roll back, reload and replay
without changing anything twice."""
import subprocess
import sys
import time

from faultlib import WORKERS, Env, Run, Scenario, report, seed_of

SESSION_TIMEOUT_S = 10  # session.timeout.ms in common/ka_kafka.c
LEADER_IDLE_MS = 4000
IDLE_IN_TRANSACTION_MS = 4000


def main():
    args = Env.parser(__doc__).parse_args()
    env = Env.from_environ(args)
    if not env.kactl:
        raise SystemExit("--kactl is required")
    seed = seed_of(args)
    faults = 0
    with Run(env, "zombie") as run:
        sc = Scenario(run, seed, n_events=1500, duplicates=0.05, stale=0.03, forecast=True)
        ev = sc.events
        cut1, cut2, cut3 = len(ev) // 4, len(ev) // 2, 3 * len(ev) // 4
        # A collects a batch for three seconds, so a pause lands while it
        # holds events it has not committed.
        # A paused relay leader loses its PostgreSQL session, and with it the
        # leadership, after KA_OUTBOX_LEADER_IDLE_MS.
        idle = {"KA_OUTBOX_LEADER_IDLE_MS": str(LEADER_IDLE_MS),
                "KA_PG_IDLE_IN_TRANSACTION_MS": str(IDLE_IN_TRANSACTION_MS)}
        zombies = {k: run.worker(k, 0, {"KA_BATCH_MAX_EVENTS": "100000", "KA_BATCH_MAX_MS": "3000",
                                        **idle})
                   .start() for k in WORKERS}
        run.produce(ev[:cut1])
        run.wait_caught_up(WORKERS)
        run.produce(ev[cut1:cut1 + 150])
        time.sleep(1.0)
        for z in zombies.values():
            z.pause()
        faults += len(zombies)
        paused_at = time.monotonic()
        takers = {k: run.worker(k, 1, {"KA_BATCH_MAX_EVENTS": "50", **idle})
                  .start() for k in WORKERS}
        unpublished_before = run.unpublished()
        run.produce(ev[cut1 + 150:cut2])
        # B can only take over once A's session has expired. The outbox too
        # is published while every zombie sleeps: the relay leader among them
        # lost its session, and a taker's relay took the lock.
        run.wait_caught_up(WORKERS, timeout=90)
        assert time.monotonic() - paused_at >= SESSION_TIMEOUT_S - 1, "B committed before A expired?"
        leaders = sum(int(t.metric("ka_outbox_relay_leader") or 0) for t in takers.values())
        assert leaders == 1, f"{leaders} takers lead the outbox relay while the zombies sleep"
        print(f"outbox published by a taker while the zombies slept "
              f"({unpublished_before} rows were waiting at the pause)", flush=True)
        for z in zombies.values():
            assert z.alive(), f"zombie {z.kind} died: {z.log_path}"
            z.resume()
        run.produce(ev[cut2:cut3])
        run.wait_caught_up(WORKERS, timeout=90)
        time.sleep(2)  # the zombies' own rounds after waking, caught up or not
        state = run.compare(sc_prefix(sc, cut3))
        evidence = {}
        for k, z in zombies.items():
            assert z.alive(), f"zombie {k} died after SIGCONT: {z.log_path}"
            log = z.log()
            evidence[k] = {"fenced_batches": z.metric("ka_fenced_batches_total"),
                           "lost_partitions": log.count("partition lost"),
                           "dropped_by_revoke": log.count("partition revoked")}
            assert evidence[k]["fenced_batches"] or evidence[k]["lost_partitions"] or \
                evidence[k]["dropped_by_revoke"], \
                f"zombie {k} shows no fence, no lost and no revoked partition: {z.log_path}"
        print(f"zombie evidence {evidence}", flush=True)

        # The compare-and-set fence, deterministically: move the stored
        # offsets of the running opportunity group back to 0 under it.
        for w in list(takers.values()):
            if w.kind != "opportunity":
                w.stop()
        for k in ("visit", "order", "forecast"):
            zombies[k].stop()
        opp_workers = [zombies["opportunity"], takers["opportunity"]]
        before = sum(w.metric("ka_fenced_batches_total") or 0 for w in opp_workers)
        res = subprocess.run([env.kactl, "replay", "--group", run.groups["opportunity"], "--topic",
                              run.topics["opportunity"], "--from-offset", "0"],
                             capture_output=True, text=True)
        assert res.returncode == 0, f"kactl replay: {res.stdout}{res.stderr}"
        faults += 1
        run.produce(ev[cut3:])
        for k in ("visit", "order", "forecast"):
            zombies[k].start()
        run.wait_caught_up(WORKERS, timeout=120)
        after = sum(w.metric("ka_fenced_batches_total") or 0 for w in opp_workers)
        assert after > before, f"moving the stored offsets under a running worker fenced " \
                               f"nothing ({before} -> {after} fenced batches)"
        final = run.compare(sc)
        run.check_downstream(sc)
        for w in run.workers:
            if w.alive():
                w.stop()
        print(f"fenced batches after the offset move: {after - before}; compared "
              f"{state.rows_compared + final.rows_compared} rows", flush=True)
        report("zombie", faults, state.events_compared + final.events_compared)
    return 0


class sc_prefix:
    """The first n events of a scenario, for a comparison mid-stream."""

    def __init__(self, sc, n):
        self.kinds, self.visit_account_prefix = sc.kinds, sc.visit_account_prefix
        self.forecast = sc.forecast
        self.log = [e.fields for e in sc.events[:n]]


if __name__ == "__main__":
    sys.exit(main())

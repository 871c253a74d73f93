"""Crashes at exact instants (KA_FAULT_CRASH_AT, common/ka_fault.h), where
test_kill's signals land wherever they happen to:

1. Every worker kind (the forecast worker too) crashes again and again over
   a backlog, each time at the n-th reach (n random) of one of the
   transaction's instants: the COMMIT queued but (for batches this small)
   not sent, sent but not answered (the server may or may not have
   committed), and just committed
   (before the cache update and the relay). Each kind reaches each instant
   twice.
2. The outbox relay: the opportunity worker alone (so it is the relay's
   leader) crashes with outbox rows read but none handed to Kafka, produced
   and flushed but not marked published (they go out again, same ids), and
   just marked.
Each crash must be the one asked for (exit by SIGKILL, the point in its
log). Then every worker runs unarmed to the end of the stream, and the state
and the published view must equal the oracle's, as in test_kill."""
import random
import signal
import sys
import threading
import time

from faultlib import WORKERS, Env, Run, Scenario, report, seed_of

COMMIT_POINTS = ("commit_before", "commit_sent", "commit_after")
RELAY_POINTS = ("relay_before", "relay_flushed", "relay_marked")
ROUNDS = 2          # crashes per worker kind and commit instant
RELAY_SHARE = 0.25  # the stream's tail, played in phase 2
CRASH_TIMEOUT = 90  # seconds for an armed worker to reach its point (a rejoin
                    # waits out the crashed member's 10 s session first)


def crashed_at(w, point):
    """Asserts the worker died by SIGKILL at `point` (its own log says so)."""
    rc = w.proc.wait(CRASH_TIMEOUT)
    last = w.log().rsplit(f"--- start {w.starts}\n", 1)[-1]
    assert rc == -signal.SIGKILL, f"{w.kind} exited {rc}, not at {point} ({w.log_path})"
    assert f'"point":"{point}"' in last and "crash point reached" in last, \
        f"{w.kind} was killed, but not at {point} ({w.log_path})"


def arm(w, point, nth):
    w.env["KA_FAULT_CRASH_AT"] = f"{point}:{nth}"


def disarm(w):
    w.env.pop("KA_FAULT_CRASH_AT", None)


def commit_crasher(w, rnd, hits, failures):
    """Phase 1 for one worker: a crash at each commit instant in turn. Each
    start has a backlog to commit (batches of at most 20 events, n <= 3),
    and the forecast worker commits its recomputation every 100 ms."""
    try:
        for point in COMMIT_POINTS * ROUNDS:
            arm(w, point, rnd.randint(1, 3))
            w.start()
            crashed_at(w, point)
            hits[(w.kind, point)] += 1
    except AssertionError as e:
        failures.append(str(e))
    disarm(w)


def main():
    args = Env.parser(__doc__).parse_args()
    env = Env.from_environ(args)
    seed = seed_of(args)
    rnd = random.Random(seed)
    with Run(env, "crash") as run:
        sc = Scenario(run, seed, n_events=1600, duplicates=0.05, stale=0.03, unauthorized=0.15,
                      forecast=True)
        cut = int(len(sc.events) * (1 - RELAY_SHARE))
        workers = {k: run.worker(k, extra_env={"KA_BATCH_MAX_EVENTS": "20"}) for k in WORKERS}

        # 1: the transaction's instants, every kind at once, over a backlog.
        hits = {(k, p): 0 for k in WORKERS for p in COMMIT_POINTS + RELAY_POINTS}
        failures = []
        run.produce(sc.events[:cut])
        crashers = [threading.Thread(target=commit_crasher,
                                     args=(w, random.Random(rnd.random()), hits, failures))
                    for w in workers.values()]
        for t in crashers:
            t.start()
        for t in crashers:
            t.join()
        assert not failures, "\n".join(failures)
        print(f"phase 1: {cut} events, commit crashes "
              f"{ {k: sum(hits[(k, p)] for p in COMMIT_POINTS) for k in WORKERS} }", flush=True)

        # 2: the relay's instants. The other workers rest, so the opportunity
        # worker leads the relay; its dead letters and alerts fill the outbox.
        opp = workers["opportunity"]
        tail = sc.events[cut:]
        for point in RELAY_POINTS:
            arm(opp, point, 1)
            opp.start()
            while opp.alive() and tail:
                run.produce(tail[:10])
                tail = tail[10:]
                time.sleep(0.3)
            crashed_at(opp, point)
            hits[("opportunity", point)] += 1
        disarm(opp)
        run.produce(tail)
        print(f"phase 2: relay crashes { {p: hits[('opportunity', p)] for p in RELAY_POINTS} }",
              flush=True)

        for w in workers.values():
            w.start()
        run.wait_caught_up(WORKERS, timeout=240)
        state, summary = run.check_final(sc, workers)
        for w in workers.values():
            w.stop()
        print(summary, flush=True)
        report("crash_points", sum(hits.values()), state.events_compared)
    return 0


if __name__ == "__main__":
    sys.exit(main())

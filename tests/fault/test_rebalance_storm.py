"""A rebalance storm: while a stream flows, more instances of each worker
kind join the group and leave again (SIGTERM, a clean drain that must exit
0), over and over, so partitions move in the middle of batches (small
batches with a time window, cooperative-sticky assignment). One instance of
each kind stays throughout. Afterwards the state equals the oracle's and the
published events pass the downstream check."""
import random
import signal
import sys
import threading
import time

from faultlib import KINDS, Env, Run, Scenario, report, seed_of

RATE = 40  # events per second


def storm(w, rnd, done, moves, failures):
    """Joins, stays a moment (often shorter than a rebalance takes), leaves."""
    try:
        churn(w, rnd, done, moves)
    except AssertionError as e:  # a leave that did not exit 0
        failures.append(str(e))
        done.set()


def churn(w, rnd, done, moves):
    while not done.is_set():
        w.start()
        assert w.wait_up(), f"{w.kind}-{w.instance} did not come up: {w.log_path}"
        time.sleep(rnd.uniform(0.0, 3.0))
        if rnd.random() < 0.15:
            w.kill(signal.SIGKILL)  # a member that vanishes: its session must expire
        else:
            w.stop()
        moves[0] += 2
        time.sleep(rnd.uniform(0.0, 1.0))


def main():
    args = Env.parser(__doc__).parse_args()
    env = Env.from_environ(args)
    seed = seed_of(args)
    rnd = random.Random(seed)
    batch = {"KA_BATCH_MAX_EVENTS": "30", "KA_BATCH_MAX_MS": "200"}
    with Run(env, "storm") as run:
        sc = Scenario(run, seed, n_events=1600, duplicates=0.05, stale=0.03)
        steady = [run.worker(k, 0, batch).start() for k in KINDS]
        joiners = [run.worker(k, 1, batch) for k in KINDS] + [run.worker("opportunity", 2, batch)]
        done, moves, failures = threading.Event(), [0], []
        threads = [threading.Thread(target=storm, args=(w, random.Random(rnd.random()), done, moves,
                                                        failures)) for w in joiners]
        for t in threads:
            t.start()
        try:
            run.produce(sc.events, rate=RATE)
        finally:
            done.set()
            for t in threads:
                t.join()
        assert not failures, "; ".join(failures)
        print(f"{moves[0]} joins and leaves during a stream of {len(sc.events)} events",
              flush=True)
        run.wait_caught_up(KINDS, timeout=120)
        state = run.compare(sc)
        down = run.check_downstream(sc)
        for w in steady:
            w.stop()
        print(f"compared {state.rows_compared} rows; downstream {down.messages} messages, "
              f"{down.distinct} distinct ids, {down.resent} re-sent", flush=True)
        report("rebalance_storm", moves[0], state.events_compared)
    return 0


if __name__ == "__main__":
    sys.exit(main())

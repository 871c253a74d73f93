"""SIGKILL of each worker kind (the forecast worker too) at random points of
a long stream, many times in a row, with small and varied batches so kills
land before, during and after the PostgreSQL commit, inside the forecast's
recomputation and publishing, and around the outbox relay's produce (and a
few while the worker is still joining its group); then the state (funnel,
actuals, visits, forecast, planning feed) must equal the oracle's and the
published alerts, dead letters, forecast and planning events must pass the
downstream check (none lost, none from a rolled-back transaction, per-key
order, re-sends with the same id and bytes, the latest figures exact)."""
import random
import signal
import sys
import threading
import time

from faultlib import WORKERS, Env, Run, Scenario, report, seed_of

KILLS_PER_KIND = 8
RATE = 25  # events per second: the stream outlasts the kills


def killer(w, rnd, kills, done):
    """Kills one worker again and again while the stream flows."""
    while kills[w.kind] < KILLS_PER_KIND and not done.is_set():
        w.env["KA_BATCH_MAX_EVENTS"] = str(rnd.choice((1, 2, 5, 13, 40)))
        w.env["KA_BATCH_MAX_MS"] = str(rnd.choice((5, 20, 100)))
        w.start()
        if rnd.random() < 0.25:
            time.sleep(rnd.uniform(0.05, 2.0))  # still starting or joining
        else:
            # A rejoin waits for the killed member's session to expire:
            # wait for the first committed batch, then kill mid-stream.
            if not w.wait_metric("ka_batches_total", 1, timeout=40):
                assert w.alive(), f"{w.kind} died by itself: {w.log_path}"
            time.sleep(rnd.uniform(0.0, 1.5))
        assert w.alive(), f"{w.kind} died by itself: {w.log_path}"
        w.kill(signal.SIGKILL)
        kills[w.kind] += 1
    w.start()


def main():
    args = Env.parser(__doc__).parse_args()
    env = Env.from_environ(args)
    seed = seed_of(args)
    rnd = random.Random(seed)
    with Run(env, "kill") as run:
        # Unauthorized owner changes feed the outbox (dead letters, alerts), so
        # kills also land between a commit and the relay marking rows published.
        sc = Scenario(run, seed, n_events=2400, duplicates=0.05, stale=0.03, unauthorized=0.1,
                      forecast=True)
        workers = {k: run.worker(k) for k in WORKERS}
        kills = {k: 0 for k in WORKERS}
        done = threading.Event()
        feeder = threading.Thread(target=run.produce, args=(sc.events,), kwargs={"rate": RATE})
        feeder.start()
        killers = [threading.Thread(target=killer, args=(w, random.Random(rnd.random()), kills,
                                                         done)) for w in workers.values()]
        for t in killers:
            t.start()
        feeder.join()
        done.set()
        for t in killers:
            t.join()
        print(f"kills {kills}; stream of {len(sc.events)} events produced", flush=True)
        assert min(kills.values()) >= KILLS_PER_KIND // 2, f"too few kills landed: {kills}"
        run.wait_caught_up(WORKERS, timeout=180)
        batches = {w.kind: w.metric("ka_batches_total") for w in workers.values()}
        state, summary = run.check_final(sc, workers)
        for w in workers.values():
            w.stop()
        print(f"{summary}; batches after the last restart {batches}", flush=True)
        report("kill", sum(kills.values()), state.events_compared)
    return 0


if __name__ == "__main__":
    sys.exit(main())

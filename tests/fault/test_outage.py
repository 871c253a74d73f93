"""Outages of one server in the middle of a stream, on a private stack (its
own PostgreSQL, Redis and Kafka: stopping the shared servers would break the
other tests). All four workers (opportunity, visit, order, forecast) run
throughout and must ride the outage out by themselves: none may exit, and at
the end the state (the forecast and planning feed included) equals the
oracle's and the published alerts, dead letters, forecast and planning
events pass the downstream check.

  --server kafka          the broker is stopped and started again
  --server postgres       PostgreSQL is stopped and started again: the workers
                          pause (/readyz says so, /healthz stays up, the log
                          says PostgreSQL is unavailable) and resume
  --server redis          Redis is stopped and started empty (it keeps no
                          data): the workers keep committing to PostgreSQL
                          meanwhile and the cache converges afterwards
  --server kafka-timeout  the broker hangs (SIGSTOP) for longer than the
                          relay producer's message timeout: deliveries fail
                          as possibly persisted, the outbox sends them again
                          with the same ids, downstream dedupe by id hides
                          the repeats
"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request

from faultlib import KINDS, WORKERS, Env, Run, Scenario, pg_array, report, seed_of
from stacklib import PrivateStack

EVENTS = 900
RATE = 60           # events per second: a 15 s stream
OUTAGE_AT_S = 4     # into the stream
OUTAGE_S = 7        # how long the server stays away
MESSAGE_TIMEOUT_MS = 2000  # kafka-timeout: the relay producer's, far below the hang


def probe(worker, path):
    """(status, body) of a worker endpoint; (None, error) when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{path}", timeout=3) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return None, str(e)


def stored_total(run):
    """Sum of the stored offsets of every group of this run."""
    rows = run.env.sql("SELECT coalesce(sum(next_offset), 0) FROM consumer_offset "
                       "WHERE consumer_group = ANY(:'g'::text[])",
                       g=pg_array(run.groups[k] for k in KINDS))
    return int(rows[0][0])


def wait_applying(run, kind, timeout=60):
    """Until the worker of `kind` has stored an offset (it fetched and applies)."""
    deadline = time.monotonic() + timeout
    while sum(run.stored_offsets(kind).values()) == 0:
        assert time.monotonic() < deadline, f"the {kind} worker applied nothing in {timeout}s"
        time.sleep(0.05)


def watch(workers, seconds, what):
    """Polls the workers through an outage: every one must stay alive; returns
    per worker what /healthz and /readyz answered."""
    seen = {k: {"healthz": set(), "readyz": set(), "why": set()} for k in workers}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for k, w in workers.items():
            assert w.alive(), f"{k} worker exited during the {what} outage: {w.log_path}"
            hs, _ = probe(w, "/healthz")
            rs, body = probe(w, "/readyz")
            seen[k]["healthz"].add(hs)
            seen[k]["readyz"].add(rs)
            if rs != 200 and body:
                seen[k]["why"].add(body.strip()[:120])
        time.sleep(0.5)
    return seen


def converge(run, sc, timeout):
    """compare() until it passes (the cache is rebuilt in the background) or
    timeout; the last failure is raised."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return run.compare(sc)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def main():
    ap = Env.parser(__doc__)
    ap.add_argument("--server", required=True,
                    choices=("kafka", "postgres", "redis", "kafka-timeout"))
    args = ap.parse_args()
    if not args.kactl:
        raise SystemExit("--kactl is needed to migrate the private stack")
    seed = seed_of(args)
    mode = args.server
    with PrivateStack(args.kactl, mode) as st:
        env = Env.from_environ(args)
        name = "outage_" + mode.replace("-", "_")
        with Run(env, name) as run:
            # kafka-timeout: more owner changes refused, so more alerts and
            # dead letters for the relay to send into the hung broker
            sc = Scenario(run, seed, n_events=EVENTS, duplicates=0.03, stale=0.03,
                          unauthorized=0.15 if mode == "kafka-timeout" else 0.05, forecast=True)
            extra = {"KA_RETRY_MAX_MS": "1000"}  # back-off cap: resume soon after the return
            if mode == "kafka-timeout":
                extra["KA_KAFKA_MESSAGE_TIMEOUT_MS"] = str(MESSAGE_TIMEOUT_MS)
                # One event per transaction: the stream, all fetched before the
                # hang, takes seconds to apply, and the relay publishes the
                # alerts and dead letters it raises into the hung broker.
                extra["KA_BATCH_MAX_EVENTS"] = "1"
            workers = {k: run.worker(k, 0, extra).start() for k in WORKERS}
            if mode == "kafka-timeout":
                feeder = threading.Thread(target=run.produce, args=(sc.events,))
                feeder.start()
                feeder.join()
                wait_applying(run, "opportunity")
            else:
                feeder = threading.Thread(target=run.produce, args=(sc.events,),
                                          kwargs={"rate": RATE})
                feeder.start()
                time.sleep(OUTAGE_AT_S)
            facts = {}
            if mode == "kafka":
                st.stop("kafka")
                seen = watch(workers, OUTAGE_S, mode)
                facts["restart_s"] = round(st.start("kafka"), 1)
            elif mode == "postgres":
                st.stop("postgres")
                seen = watch(workers, OUTAGE_S, mode)
                facts["restart_s"] = round(st.start("postgres"), 1)
                for k, w in workers.items():
                    assert seen[k]["healthz"] == {200}, \
                        f"{k}: /healthz answered {seen[k]['healthz']} while it waited"
                    assert any(r is not None and r != 200 for r in seen[k]["readyz"]) and \
                        any("postgresql" in why for why in seen[k]["why"]), \
                        f"{k}: /readyz never said PostgreSQL was away: {seen[k]}"
                    assert "PostgreSQL unavailable" in w.log(), \
                        f"{k}: the log does not show the pause ({w.log_path})"
            elif mode == "redis":
                before = stored_total(run)
                st.stop("redis")
                seen = watch(workers, OUTAGE_S, mode)
                during = stored_total(run)
                facts["offsets_committed_without_redis"] = during - before
                assert during > before, "no worker committed to PostgreSQL while Redis was down"
                facts["restart_s"] = round(st.start("redis"), 2)
                facts["keys_after_restart"] = int(env.redis("DBSIZE")[0])
            else:  # kafka-timeout
                st.pause_kafka()
                seen = watch(workers, OUTAGE_S, mode)
                st.resume_kafka()
            feeder.join()
            for k, w in workers.items():
                assert w.alive(), f"{k} worker exited after the {mode} outage: {w.log_path}"
            run.wait_caught_up(WORKERS, timeout=180)
            state = converge(run, sc, 60) if mode == "redis" else run.compare(sc)
            down = run.check_downstream(sc)
            if mode == "kafka-timeout":
                unconfirmed = sum(w.metric("ka_outbox_unconfirmed_total") or 0
                                  for w in workers.values())
                facts["unconfirmed_deliveries"] = int(unconfirmed)
                assert unconfirmed > 0, "no relay delivery timed out: the hang missed the relay"
                # a failed delivery counts an attempt, the later success another
                again = int(env.sql("SELECT count(*) FROM outbox WHERE topic IN (:'a', :'d') "
                                    "AND attempts > 1", a=run.topics["alert"],
                                    d=run.topics["deadletter"])[0][0])
                facts["rows_sent_again"] = again
                assert again > 0, "no outbox row was sent again after its delivery failed"
            for w in workers.values():
                w.stop()
            facts["readyz_during"] = {k: sorted(str(s) for s in v["readyz"])
                                      for k, v in seen.items()}
            print(f"{mode} outage of {OUTAGE_S} s: {json.dumps(facts)}; compared "
                  f"{state.rows_compared} rows; downstream {down.messages} messages, "
                  f"{down.distinct} distinct ids, {down.resent} re-sent", flush=True)
            report(name, 1, state.events_compared)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark's JSON input phase (tests/bench/run imports it): the
opportunity worker's throughput on the pre-loaded opportunity stream as
protobuf and the same stream as JSON (kagen --format json, the proto3 JSON
mapping with content-type application/json), issue 20's target being the
JSON rate at 75% of the protobuf one or more.

Each run is the opportunity worker alone on a fresh copy of the reference
database, timed as the throughput phase times it (from its first batch's
transaction until every event is applied and the outbox is drained). The
two formats alternate, ROUNDS times each, and the median run of each
counts, so that a neighbour's burst on a shared machine weighs on both alike
(the best of each proved noisier: one lucky second-long run decides it).
"""
import os
import statistics
import subprocess
import time

ROUNDS = 3


def measure(bench, topic, total, tag):
    dsn = bench.create_db(f"{bench.run_id}_{tag.replace('-', '_')}", bench.ref_db)
    pg = type(bench.admin)(dsn)  # run's Pg
    group = f"bench-{tag}"
    env = bench.worker_env(dsn, tag, KA_TOPIC_OPPORTUNITY=topic)
    p, _ = bench.start_worker("opportunity", env, f"json-phase-{tag}")
    last_n, last_progress = -1, time.monotonic()
    while True:
        if p.poll() is not None:
            raise RuntimeError(f"opportunity-worker exited with {p.returncode} "
                               f"({bench.logs}/json-phase-{tag}.log)")
        n, pending = (int(v) for v in pg.query(
            "SELECT (SELECT coalesce(sum(next_offset), 0) FROM consumer_offset "
            "WHERE consumer_group = :'v1' AND topic = :'v2'), "
            "(SELECT count(*) FROM outbox WHERE published_at IS NULL)", group, topic).split("|"))
        if n >= total and pending == 0:
            break
        now = time.monotonic()
        if n != last_n:
            last_n, last_progress = n, now
        elif now - last_progress > 60:
            raise RuntimeError(f"{tag}: stuck at {n} of {total} events")
        time.sleep(0.25)
    first = float(pg.query("SELECT extract(epoch FROM min(processed_at)) FROM processed_event "
                           "WHERE consumer_group = :'v1'", group) or 0)
    secs = time.time() - first
    bench.stop_worker(p)
    dead = pg.scalar("SELECT count(*) FROM dead_letter WHERE consumer_group = :'v1'", group)
    return {"seconds": round(secs, 2), "events_per_s": round(total / secs, 1),
            "worker_cpu_pct": round(100 * bench.last_cpu / secs, 1),
            "cpu_us_per_event": round(1e6 * bench.last_cpu / total, 1), "dead_lettered": dead}


def run(bench, ref_dsn):
    """Returns the phase's JSON: per format the events, each round and the
    median; the ratio json / protobuf of the medians."""
    s = bench.size
    # Both streams into fresh topics: the pre-loaded opportunity topic holds,
    # after the throughput phase, the order worker's won events as well.
    topics = {f: f"{bench.run_id}.opportunity-{f}" for f in ("protobuf", "json")}
    subprocess.run([bench.bin("ka-bench"), "topics", "6", *topics.values()], env=bench.env,
                   check=True, stdout=subprocess.DEVNULL)
    total = None
    for f, topic in topics.items():
        env = dict(bench.env, KA_PG_DSN=ref_dsn, KA_TOPIC_OPPORTUNITY=topic)
        with open(os.path.join(bench.logs, f"kagen-opportunities-{f}.log"), "w") as log:
            n = int(subprocess.run(
                [bench.bin("kagen"), "--stream", "opportunities", "--seed", "7",
                 "--opportunities", str(s["opportunities"]), "--accounts", str(s["accounts"]),
                 "--now-ms", str(bench.now_ms), "--format", f], env=env, check=True,
                stdout=subprocess.PIPE, stderr=log, text=True).stdout.strip())
        if total is not None and n != total:
            raise RuntimeError(f"kagen --format {f} produced {n} events, protobuf {total}")
        total = n
    res = {f: {"events": total, "rounds": []} for f in topics}
    for i in range(ROUNDS):
        for f, t in topics.items():
            res[f]["rounds"].append(measure(bench, t, total, f"fmt-{f}-{i}"))
    for f in topics:
        res[f]["median_events_per_s"] = statistics.median(r["events_per_s"]
                                                           for r in res[f]["rounds"])
        res[f]["median_cpu_us_per_event"] = statistics.median(r["cpu_us_per_event"]
                                                              for r in res[f]["rounds"])
        res[f]["dead_lettered"] = sum(r["dead_lettered"] for r in res[f]["rounds"])
    res["ratio"] = round(res["json"]["median_events_per_s"] /
                         res["protobuf"]["median_events_per_s"], 3)
    return res


def md(r):
    """The report's lines for the phase."""
    pb, js = r["protobuf"], r["json"]
    rounds = "; ".join(f"{f} " + ", ".join(f"{x['events_per_s']:.0f}" for x in r[f]["rounds"])
                       for f in ("protobuf", "json"))
    return [
        f"JSON input (the opportunity worker alone on the same {pb['events']} events as "
        f"protobuf and as JSON, `kagen --format json`, median of {ROUNDS} alternating runs on "
        f"fresh databases): protobuf {pb['median_events_per_s']:.0f} events/s, JSON "
        f"{js['median_events_per_s']:.0f} events/s, ratio {r['ratio']:.2f} (target >= 0.75: "
        f"{'met' if r['ratio'] >= 0.75 else 'NOT met'}). Runs: {rounds} events/s. Worker CPU "
        f"per event (median, start-up included): protobuf {pb['median_cpu_us_per_event']:.0f} "
        f"us, JSON {js['median_cpu_us_per_event']:.0f} us. On a shared machine, and at the "
        f"smoke size where a run lasts about a second and the worker mostly waits on "
        f"PostgreSQL, these rates are noisy; the CPU per event shows the decoding's cost.",
        "",
    ]

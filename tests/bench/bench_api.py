"""The benchmark's API phase (tests/bench/run imports it): ka-api answers a
division's funnel and forecast at 200 requests/s from 16 keep-alive
connections (ka-bench api) while the opportunity worker ingests kagen's
stream at 2,000 events/s; p50/p99 per resource and ka-api's peak RSS.
Targets p99 <= 10 ms and RSS <= 64 MB, reported, never asserted."""
import os
import subprocess
import time
import urllib.error
import urllib.request

RATE, CONNS, INGEST = 200, 16, 2000


def phase(b):
    # tests/bench/run's helpers (it runs as the main script)
    from __main__ import BenchError, Pg, free_port, log, run, vm_hwm_kb

    seconds = 5 if b.a.size == "smoke" else 20
    pg = Pg(b.run_dsn)
    node = pg.query("SELECT n.id FROM org_node n WHERE n.kind = 'division' ORDER BY "
                    "(SELECT count(*) FROM org_closure c WHERE c.ancestor_id = n.id) DESC, n.id "
                    "LIMIT 1")
    env = dict(b.env, KA_PG_DSN=b.run_dsn)
    tok = run([b.bin("kactl"), "token", "create", "--node", node, "--name", "bench"], env).strip()
    port = free_port()
    dsn = b.run_dsn + " user=ka_api"  # libpq takes the last user=
    api_env = dict(b.env, KA_PG_DSN=dsn, KA_API_PORT=str(port), KA_HTTP_ADDR="127.0.0.1",
                   KA_API_RATE_PER_S="100000")
    api_env.pop("KA_HTTP_PORT", None)
    logf = open(os.path.join(b.logs, "api-ka-api.log"), "w")
    api = subprocess.Popen([os.path.join(b.build, "services/api/ka-api")], env=api_env,
                           stdout=logf, stderr=logf)
    b.procs.append(api)
    t0 = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        if api.poll() is not None or time.monotonic() - t0 > 30:
            raise BenchError(f"ka-api did not become ready (see {b.logs}/api-ka-api.log)")
        time.sleep(0.05)
    worker, _ = b.start_worker("opportunity", b.worker_env(b.run_dsn, "opportunity"),
                               "api-opportunity")
    # ka-api trusts the funnel cache once the production group's marker says
    # a worker built it; the bench's worker has a group of its own
    rport = b.env["KA_REDIS_PORT"]
    marker = subprocess.run(["redis-cli", "-p", rport, "GET", "ka:cache:ready:bench-opportunity"],
                            capture_output=True, text=True).stdout.strip()
    if marker:
        subprocess.run(["redis-cli", "-p", rport, "SET", "ka:cache:ready:ka-opportunity-worker",
                        marker], capture_output=True)
    applied0 = b.applied(pg, "bench-opportunity", b.topics["opportunity"])
    opps = max(50, INGEST * seconds // 7)  # about 7 events a deal
    kagen = subprocess.Popen(
        [b.bin("kagen"), "--stream", "opportunities", "--seed", "13", "--prefix", "api",
         "--opportunities", str(opps), "--accounts", str(b.size["accounts"]), "--rate",
         str(INGEST), "--now-ms", str(b.now_ms)], env=env, stdout=subprocess.PIPE,
        stderr=open(os.path.join(b.logs, "kagen-api.log"), "w"), text=True)
    time.sleep(1)  # the stream under way before the first request
    t_load = time.monotonic()
    out = run([b.bin("ka-bench"), "api", str(port), tok, str(seconds), str(RATE), str(CONNS),
               f"/v1/nodes/{node}/funnel", f"/v1/nodes/{node}/forecast"], b.env)
    applied1 = b.applied(pg, "bench-opportunity", b.topics["opportunity"])
    load_s = time.monotonic() - t_load
    import json
    res = json.loads(out)
    hwm = vm_hwm_kb(api.pid)
    n = int(kagen.communicate()[0].strip() or 0)
    b.lat_sent += n
    expect = b.produced["opportunity"] + b.lat_sent
    last, since = -1, time.monotonic()
    while (applied := b.applied(pg, "bench-opportunity", b.topics["opportunity"])) < expect:
        if applied != last:
            last, since = applied, time.monotonic()
        elif time.monotonic() - since > 60 or worker.poll() is not None:
            raise BenchError(f"api phase: {applied} of {expect} events applied")
        time.sleep(0.25)
    b.stop_worker(worker)
    api.terminate()
    api.wait(30)
    b.procs.remove(api)
    res.update({"node": node, "kagen_rate": INGEST, "events_sent": n,
                "ingested_during_load_per_s": round((applied1 - applied0) / load_s, 1),
                "ka_api_peak_rss_mb": round(hwm / 1024, 1), "cache_marker": bool(marker)})
    b.result["api"] = res
    log("api: " + ", ".join(f"{p['path'].rsplit('/', 1)[1]} p50 {p['p50_ms']} ms p99 "
                            f"{p['p99_ms']} ms" for p in res["paths"])
        + f", ka-api RSS {res['ka_api_peak_rss_mb']} MB")


def report_lines(r):
    a = r.get("api")
    if not a:
        return []
    per = "; ".join(f"{p['path'].rsplit('/', 1)[1]}: {p['requests']} requests, "
                    f"{p['not_ok']} not 200, p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, "
                    f"max {p['max_ms']} ms" for p in a["paths"])
    p99 = max(p["p99_ms"] for p in a["paths"])
    return [
        f"API (ka-api, a division's funnel and forecast at {a['rate']} requests/s from "
        f"{a['connections']} connections for {a['seconds']} s, while kagen sends "
        f"{a['kagen_rate']} events/s; the worker applied {a['ingested_during_load_per_s']} "
        f"events/s meanwhile): {per}. ka-api peak RSS {a['ka_api_peak_rss_mb']} MB. "
        f"Targets p99 <= 10 ms {'met' if p99 <= 10 else 'NOT met'}, RSS <= 64 MB "
        f"{'met' if a['ka_api_peak_rss_mb'] <= 64 else 'NOT met'} (not asserted; on a shared "
        f"machine the figures are noisy).",
        "",
    ]

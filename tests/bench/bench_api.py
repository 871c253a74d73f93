"""The benchmark's API phase (tests/bench/run imports it): ka-api answers a
division's funnel and forecast at 200 requests/s from 16 keep-alive
connections (ka-bench api) while the opportunity worker ingests kagen's
stream at 2,000 events/s; p50/p99 per resource and ka-api's peak RSS.
Targets p99 <= 10 ms and RSS <= 64 MB, reported, never asserted."""
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import pgprofile

RATE, CONNS, INGEST = 200, 16, 2000


def phase(b):
    # tests/bench/run's helpers (it runs as the main script)
    from __main__ import BenchError, Pg, cpu_seconds, free_port, log, run, vm_hwm_kb

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
    prof = pgprofile.Profile(pg)
    if prof.statements:
        pg.query("SELECT pg_stat_statements_reset()")
    scrape(port)  # warm: the first requests' connects are not in the profile
    before = scrape(port)
    cpu0 = cpu_seconds(api.pid)
    t_load = time.monotonic()
    out = run([b.bin("ka-bench"), "api", str(port), tok, str(seconds), str(RATE), str(CONNS),
               f"/v1/nodes/{node}/funnel", f"/v1/nodes/{node}/forecast"], b.env)
    applied1 = b.applied(pg, "bench-opportunity", b.topics["opportunity"])
    load_s = time.monotonic() - t_load
    res = json.loads(out)
    hwm = vm_hwm_kb(api.pid)
    res["ka_api_cpu_pct"] = round(100 * (cpu_seconds(api.pid) - cpu0) / load_s, 1)
    res["server"] = server_side(before, scrape(port))
    if prof.statements:
        res["statements"] = statements(pg)
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


def scrape(port):
    """ka-api's /metrics: {(name, labels): value} of the latency histograms."""
    out = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except (urllib.error.URLError, OSError):
        return out
    for line in text.splitlines():
        m = re.match(r"(ka_api_request_seconds|ka_pg_round_trip_seconds|"
                     r"ka_redis_round_trip_seconds)_(bucket|sum|count)(\{[^}]*\})? (\S+)$", line)
        if m:
            out[(m.group(1) + "_" + m.group(2), m.group(3) or "")] = float(m.group(4))
    return out


def _quantile(buckets, q):
    """Upper bound of the bucket holding quantile q (Prometheus-style, no
    interpolation: an honest upper bound)."""
    total = buckets[-1][1] if buckets else 0
    for le, n in buckets:
        if total and n >= q * total:
            return le
    return None


def server_side(before, after):
    """ka-api's own time per request during the load (its histogram, by
    route) and its PostgreSQL and Redis round trips per request."""
    d = {k: after[k] - before.get(k, 0) for k in after}
    res = {}
    for route in ("funnel", "forecast", "auth"):
        lab = f'route="{route}"'
        n = sum(v for (k, l), v in d.items() if k == "ka_api_request_seconds_count" and lab in l)
        if not n:
            continue
        total = sum(v for (k, l), v in d.items() if k == "ka_api_request_seconds_sum" and lab in l)
        bk = sorted((float(re.search(r'le="([^"]+)"', l).group(1).replace("+Inf", "inf")), v)
                    for (k, l), v in d.items() if k == "ka_api_request_seconds_bucket" and lab in l)
        p50, p99 = _quantile(bk, 0.5), _quantile(bk, 0.99)
        res[route] = {"requests": int(n), "mean_ms": round(1000 * total / n, 2),
                      "p50_le_ms": None if p50 is None else round(1000 * p50, 2),
                      "p99_le_ms": None if p99 is None else round(1000 * p99, 2)}
    reqs = sum(v["requests"] for v in res.values()) or 1
    for name, key in (("pg", "ka_pg_round_trip_seconds"), ("redis", "ka_redis_round_trip_seconds")):
        n = sum(v for (k, _), v in d.items() if k == key + "_count")
        t = sum(v for (k, _), v in d.items() if k == key + "_sum")
        if n:
            res[name] = {"round_trips_per_request": round(n / reqs, 2),
                         "mean_round_trip_ms": round(1000 * t / n, 3)}
    return res


def statements(pg, top=8):
    """ka-api's statements during the load (pg_stat_statements, role ka_api):
    calls, mean execution time, rows and buffers per call."""
    rows = pg.query(
        "SELECT calls, round(mean_exec_time::numeric, 3), round(max_exec_time::numeric, 2), "
        "round((total_plan_time / calls)::numeric, 3), "
        "rows, shared_blks_hit + shared_blks_read, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) "
        "FROM pg_stat_statements WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = "
        "'ka_api') AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "ORDER BY total_exec_time DESC LIMIT " + str(int(top)))
    out = []
    for line in rows.splitlines():
        calls, mean, mx, plan, nrows, blocks, q = line.split("|", 6)
        calls = int(calls)
        out.append({"calls": calls, "mean_ms": float(mean), "max_ms": float(mx),
                    "plan_ms_per_call": float(plan),
                    "rows_per_call": round(int(nrows) / calls, 1) if calls else 0,
                    "blocks_per_call": round(int(blocks) / calls, 1) if calls else 0,
                    "query": q})
    return out


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
    ] + _profile_lines(a)


def _profile_lines(a):
    srv = a.get("server") or {}
    lines = []
    if srv:
        per = "; ".join(f"{k}: mean {v['mean_ms']} ms, p50 <= {v['p50_le_ms']} ms, p99 <= "
                        f"{v['p99_le_ms']} ms" for k, v in srv.items() if "requests" in v)
        rt = "; ".join(f"{k} {v['round_trips_per_request']} round trips a request, "
                       f"{v['mean_round_trip_ms']} ms each" for k, v in srv.items()
                       if "round_trips_per_request" in v)
        lines += [f"ka-api's own time per request (ka_api_request_seconds, from reading the "
                  f"request to queuing the answer): {per}. {rt}. ka-api CPU "
                  f"{a.get('ka_api_cpu_pct')}%.", ""]
    if a.get("statements"):
        lines += ["| ka-api statement | calls | mean ms | max ms | planning ms/call | rows/call "
                  "| blocks/call |", "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| `{s['query'][:90]}` | {s['calls']} | {s['mean_ms']} | {s['max_ms']} | "
                  f"{s['plan_ms_per_call']} | {s['rows_per_call']} | {s['blocks_per_call']} |"
                  for s in a["statements"]]
        lines += [""]
    return lines

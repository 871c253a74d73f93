"""The benchmark's alert phase (tests/bench/run imports it): alert event sent
-> notification received, through ka-alert-bridge and a Prometheus
Alertmanager of the phase's own, at the size's rate.

Alertmanager's bench configuration: group_wait 0s, and group_by
[fingerprint], so each alert is a group of its own and is notified as soon
as Alertmanager has it (grouped by team and type as in production, every
alert after a group's first would wait its group_interval, which measures
the setting, not the pipeline). ka-bench alert writes the alerts, sends
their events and runs the webhook receiver.
"""
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

AM_BIN = "/usr/bin/prometheus-alertmanager"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, what, timeout=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout} s")


def scrape(url):
    """Prometheus text -> {(name, labels): value}; {} when it does not answer."""
    out = {}
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except (urllib.error.URLError, OSError):
        return out
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        name, _, labels = key.partition("{")
        try:
            out[(name, labels.rstrip("}"))] = float(value)
        except ValueError:
            pass
    return out


def hist_quantile(m, name, q, match=""):
    """The q-quantile of histogram `name` (series whose labels contain
    `match`, summed), interpolated in its bucket, in ms; None when empty."""
    buckets = {}
    for (n, labels), v in m.items():
        if n == name + "_bucket" and match in labels:
            le = labels.split('le="')[1].split('"')[0]
            le = float("inf") if le == "+Inf" else float(le)
            buckets[le] = buckets.get(le, 0) + v
    if not buckets or not buckets.get(float("inf")):
        return None
    total, lo, below = buckets[float("inf")], 0.0, 0.0
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            if le == float("inf"):
                return round(lo * 1000)
            inside = buckets[le] - below
            frac = (q * total - below) / inside if inside else 1
            return round((lo + (le - lo) * frac) * 1000)
        lo, below = le, buckets[le]
    return None


def total(m, name, match=""):
    return sum(v for (n, labels), v in m.items() if n == name and match in labels)


def hops(bridge_m, am_m):
    """Where the time went, from both processes' metrics."""
    h = {}
    for key, name in (("bridge_read", "ka_alert_bridge_read_delay_seconds"),
                      ("bridge_posted", "ka_alert_bridge_delivery_seconds"),
                      ("bridge_post", "ka_alert_bridge_post_seconds")):
        for q in (0.5, 0.99):
            v = hist_quantile(bridge_m, name, q)
            if v is not None:
                h[f"{key}_p{int(q * 100)}_ms"] = v
    h["bridge_posts"] = int(total(bridge_m, "ka_alert_bridge_posts_total"))
    h["am_http_post_p99_ms"] = hist_quantile(am_m, "alertmanager_http_request_duration_seconds",
                                             0.99, 'handler="/api/v2/alerts"')
    h["am_notifications"] = int(total(am_m, "alertmanager_notifications_total",
                                      'integration="webhook"'))
    h["am_notifications_failed"] = int(total(am_m, "alertmanager_notifications_failed_total",
                                             'integration="webhook"'))
    h["am_webhook_requests_failed"] = int(total(
        am_m, "alertmanager_notification_requests_failed_total", 'integration="webhook"'))
    return h


def run(bench, events, rate):
    """Returns the phase's JSON (ka-bench alert's, with the settings)."""
    logs, env = bench.logs, dict(bench.env, KA_PG_DSN=bench.run_dsn)
    topic = f"{bench.run_id}.alertbench"
    subprocess.run([bench.bin("ka-bench"), "topics", "3", topic], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    hook, am_port, http_port = free_port(), free_port(), free_port()
    conf = os.path.join(logs, "alertmanager-bench.yml")
    with open(conf, "w") as f:
        f.write("route:\n  receiver: bench\n  group_by: [fingerprint]\n  group_wait: 0s\n"
                "  group_interval: 1m\n  repeat_interval: 4h\nreceivers:\n  - name: bench\n"
                f"    webhook_configs:\n      - url: http://127.0.0.1:{hook}/\n"
                "        send_resolved: false\n")
    am = subprocess.Popen([AM_BIN, f"--config.file={conf}",
                           f"--storage.path={os.path.join(logs, 'alertmanager-data')}",
                           f"--web.listen-address=127.0.0.1:{am_port}",
                           "--cluster.listen-address=", "--log.level=warn"],
                          stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(logs, "alertmanager.log"), "w"))
    bench.procs.append(am)
    wait_http(f"http://127.0.0.1:{am_port}/-/ready", am, "Alertmanager")
    benv = dict(env, KA_TOPIC_ALERT=topic, KA_ALERTMANAGER_URLS=f"http://127.0.0.1:{am_port}",
                KA_CONSUMER_GROUP=f"bench-alert-bridge-{bench.run_id}", KA_START_OFFSET="latest",
                KA_HTTP_PORT=str(http_port), KA_LOG_LEVEL="debug")
    bridge = subprocess.Popen([bench.bin("ka-alert-bridge")], env=benv, stdout=subprocess.DEVNULL,
                              stderr=open(os.path.join(logs, "alert-bridge.log"), "w"))
    bench.procs.append(bridge)
    try:
        wait_http(f"http://127.0.0.1:{http_port}/readyz", bridge, "ka-alert-bridge")
        time.sleep(3)  # the group's partitions assigned (readyz does not wait for them)
        out = subprocess.run([bench.bin("ka-bench"), "alert", topic, str(hook), str(events),
                              str(rate)], env=env, stdout=subprocess.PIPE, text=True,
                             stderr=open(os.path.join(logs, "bench-alert.log"), "w"))
        if out.returncode != 0:
            raise RuntimeError(f"ka-bench alert exited with {out.returncode} (see "
                               f"{logs}/bench-alert.log)")
        r = json.loads(out.stdout)
        r["hops"] = hops(scrape(f"http://127.0.0.1:{http_port}/metrics"),
                         scrape(f"http://127.0.0.1:{am_port}/metrics"))
    finally:
        for p in (bridge, am):
            p.terminate()
            p.wait(30)
    r["group_wait"] = "0s"
    return r


def md(r):
    """The report's lines for the phase."""
    if not r.get("received"):
        return [f"Alert delivery: no notification of {r['events']} alerts arrived.", ""]
    return [
        f"Alert delivery (event sent -> Alertmanager's webhook notification, through "
        f"ka-alert-bridge and Alertmanager, group_wait 0): {r['received']} of {r['events']} "
        f"alerts at {r['rate']} events/s (sent in {r['send_s']} s): p50 {r['p50_ms']} ms, "
        f"p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms (target p99 "
        f"<= 1,000 ms: {'met' if r['p99_ms'] <= 1000 else 'NOT met'}).",
        "",
    ] + hops_md(r.get("hops") or {})


def hops_md(h):
    if "bridge_posted_p99_ms" not in h:
        return []
    return [
        f"Alert hops: Kafka record -> read by the bridge p50 {h.get('bridge_read_p50_ms')} ms, "
        f"p99 {h.get('bridge_read_p99_ms')} ms; -> accepted by Alertmanager p50 "
        f"{h['bridge_posted_p50_ms']} ms, p99 {h['bridge_posted_p99_ms']} ms ({h['bridge_posts']} "
        f"posts, one post p99 {h.get('bridge_post_p99_ms')} ms); Alertmanager: "
        f"{h['am_notifications']} webhook notifications, {h['am_notifications_failed']} failed, "
        f"{h['am_webhook_requests_failed']} webhook requests failed (retried).",
        "",
    ]

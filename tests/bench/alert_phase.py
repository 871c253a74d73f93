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
                KA_HTTP_PORT=str(http_port))
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
    ]

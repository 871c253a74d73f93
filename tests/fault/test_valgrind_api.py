"""ka-api under valgrind for one request mix on the shared stack: every
resource, pages and cursors, ETag / 304, the 400 / 401 / 403 / 404 answers,
the operations endpoints, requests from several connections at once, then
SIGTERM; valgrind must report no memory error and no definite or indirect
leak (--error-exitcode), and every answer validates against
docs/api/openapi.yaml (apilib).

Usage: test_valgrind_api.py KA_API KACTL --valgrind VALGRIND. Plain builds
only, like test_valgrind.py (valgrind cannot run a sanitized binary)."""
import argparse
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from apilib import Api, Org, psql, token  # noqa: E402

VALGRIND_EXIT = 99


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ka_api")
    ap.add_argument("kactl")
    ap.add_argument("--valgrind", required=True)
    args = ap.parse_args()
    org = Org()
    s = org.s
    acc = f"vg-a-{s}"
    psql(f"""
INSERT INTO account (id, canonical_key, display_name, owner_rep_id) VALUES
 ('{acc}', 'name:{acc}', '甲公司 {s}', '{org.r1}');
INSERT INTO visit (id, event_id, account_id, rep_id, visited_at, objective) VALUES
 ('vg-v-{s}', 'vg-e-{s}', '{acc}', '{org.r1}', now() - interval '30 days', 'sell');
INSERT INTO follow_up (account_id, visit_id, rep_id, action, interval_days, next_due_at, set_at)
 VALUES ('{acc}', 'vg-v-{s}', '{org.r1}', 'continue', 20, now() - interval '10 days',
 now() - interval '30 days');
INSERT INTO alert_state (fingerprint, alert_id, type, severity, status, subject_kind, subject_id,
  summary, starts_at, last_transition_at) VALUES
 ('vg-f-{s}', 'vg-i-{s}', 'visit_overdue', 'warning', 'firing', 'account', '{acc}', 'overdue',
  now() - interval '1 hour', now() - interval '1 hour');
""")
    div, team, ops = token(args.kactl, org.d), token(args.kactl, org.t1), \
        token(args.kactl, org.c, "--ops")
    log = f"/tmp/ka-api-valgrind-{s}.log"
    api = Api(args.ka_api, start_s=60, extra={"KA_API_RATE_PER_S": "100000"},
              prefix=(args.valgrind, "--quiet", f"--error-exitcode={VALGRIND_EXIT}",
                      "--leak-check=full", "--show-leak-kinds=definite,indirect",
                      "--errors-for-leak-kinds=definite,indirect", "--num-callers=30",
                      f"--log-file={log}"))
    n = 0

    def get(path, tok=None, want=None, **kw):
        nonlocal n
        r = api.get(path, token=tok, **kw)
        n += 1
        assert want is None or r.status_code == want, (path, r.status_code, r.text[:300])
        return r

    for path in ("/healthz", "/readyz", "/metrics"):
        get(path, want=200)
    get("/v1/me", div, 200)
    for sub in ("", "/children", "/tree", "/funnel", "/forecast", "/alerts", "/followups",
                "/coverage"):
        r = get(f"/v1/nodes/{org.d}{sub}", div, 200)
        get(f"/v1/nodes/{org.d}{sub}", div, 304, headers={"If-None-Match": r.headers["ETag"]})
        get(f"/v1/nodes/{org.t2}{sub}", team, 403)
    j = get(f"/v1/nodes/{org.d}/tree", div, 200, params={"limit": "2"}).json()
    get(f"/v1/nodes/{org.d}/tree", div, 200, params={"cursor": j["next_cursor"]})
    get(f"/v1/nodes/{org.d}/tree", div, 400, params={"cursor": "zz"})
    get(f"/v1/nodes/{org.d}/alerts", div, 200, params={"status": "all"})
    get(f"/v1/nodes/{org.d}/forecast", div, 200, params={"period": "2026-Q1"})
    get(f"/v1/nodes/{org.d}/forecast", div, 400, params={"period": "2026-13"})
    get(f"/v1/nodes/{org.d}/funnel", div, 404, params={"definition": "nope"})
    get(f"/v1/accounts/{acc}", team, 200)
    get(f"/v1/accounts/{acc}", token(args.kactl, org.t2), 403)
    get(f"/v1/opportunities/none-{s}", div, 404)
    get(f"/v1/divisions/{org.d}/planning", div, 200, params={"month": "2026-12"})
    get(f"/v1/divisions/{org.t1}/planning", div, 400)
    get("/v1/deadletters", ops, 200, params={"limit": "3"})
    get("/v1/deadletters", div, 403)
    get("/v1/me", None, 401)
    get("/v1/me", "not-a-token", 401)
    get("/v1/me", "ka_" + "0" * 64, 401)
    get(f"/v1/nodes/nope-{s}", div, 404)
    errors = []

    def burst():
        try:
            for _ in range(10):
                get(f"/v1/nodes/{org.t1}/funnel", div, 200)
                get(f"/v1/nodes/{org.t1}/followups", div, 200)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=burst) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    api.proc.terminate()
    rc = api.proc.wait(timeout=120)
    with open(log, errors="replace") as f:
        vg = f.read()
    if rc != 0:
        sys.stderr.write(vg[-20000:])
    assert rc != VALGRIND_EXIT, f"valgrind found errors or leaks (log {log})"
    assert rc == 0, f"ka-api exited {rc} after SIGTERM"
    print(f"ka-api under valgrind: {n} requests, clean exit, valgrind log {len(vg)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

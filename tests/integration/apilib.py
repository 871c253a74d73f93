"""Shared by the HTTP API's integration tests (test_api_*.py): the OpenAPI
document, validation of every answer against it, a ka-api process, seeded
data in PostgreSQL, tokens, and a TCP proxy that plays a PostgreSQL outage
without stopping the shared stack's server."""
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
import uuid

import jsonschema
import requests
import yaml
from openapi_spec_validator import validate as validate_spec

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC_PATH = os.path.join(ROOT, "docs", "api", "openapi.yaml")
with open(SPEC_PATH) as f:
    SPEC = yaml.safe_load(f)
validate_spec(SPEC)

_TEMPLATES = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"), p) for p in SPEC["paths"]]


def template(path):
    for rx, p in _TEMPLATES:
        if rx.match(path):
            return p
    raise AssertionError(f"{path}: no path of the OpenAPI document")


def check_response(path, resp):
    """Fails unless the answer's status is documented for its path and its
    JSON body validates against the documented schema."""
    ops = SPEC["paths"][template(path)]["get"]["responses"]
    status = str(resp.status_code)
    assert status in ops, f"{path}: status {status} not in the document ({resp.text[:200]})"
    r = ops[status]
    if "$ref" in r:
        r = SPEC["components"]["responses"][r["$ref"].split("/")[-1]]
    content = r.get("content", {})
    if "application/json" in content:
        schema = dict(SPEC)
        schema.update(content["application/json"]["schema"])
        jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.FormatChecker()).validate(resp.json())
    elif status == "304":
        assert resp.content == b""


def dsn_as(dsn, role):
    return re.sub(r"user=\S+", f"user={role}", dsn) if "user=" in dsn else f"{dsn} user={role}"


def psql(sql, *args, dsn=None):
    """Runs SQL as the owner (KA_PG_DSN); returns the rows of the last
    statement as lists of text."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
           dsn or os.environ["KA_PG_DSN"]]
    for i, a in enumerate(args):
        cmd += ["-v", f"a{i + 1}={a}"]
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def free_port():
    """A free port in KA_API_TEST_PORTS (default 27100-27199): the tests keep to
    the ports they were given."""
    lo, hi = (int(x) for x in os.environ.get("KA_API_TEST_PORTS", "27100-27199").split("-"))
    for port in range(lo, hi + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port for ka-api")


class Api:
    """A ka-api process as role ka_api."""

    def __init__(self, binary, pg_dsn=None, extra=None, prefix=(), start_s=10):
        """prefix: a command ka-api runs under (valgrind); start_s: how long
        it may take to answer /healthz."""
        self.port = free_port()
        env = dict(os.environ)
        env["KA_PG_DSN"] = pg_dsn or dsn_as(os.environ["KA_PG_DSN"], "ka_api")
        env["KA_API_PORT"] = str(self.port)
        env["KA_HTTP_ADDR"] = "127.0.0.1"
        env.update(extra or {})
        self.proc = subprocess.Popen([*prefix, binary], env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(f"/tmp/ka-api-test-{self.port}.log", "w"))
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(int(start_s * 20)):
            try:
                requests.get(self.base + "/healthz", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("ka-api did not start")

    def get(self, path, token=None, headers=None, params=None, check=True):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        resp = requests.get(self.base + path, headers=h, params=params, timeout=10)
        if check and path.startswith("/v1"):
            check_response(path, resp)
        return resp

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.terminate()
            rc = self.proc.wait(timeout=timeout)
            assert rc == 0, f"ka-api exited {rc} after SIGTERM"


def kactl(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True)


def token(kactl_bin, node, *extra):
    r = kactl(kactl_bin, "token", "create", "--node", node, "--name", f"test {node}", *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class Org:
    """A private subtree under the company (the one root; created when the
    database has none): division d, region rg, teams t1 and t2 with reps r1
    (under t1) and r2 (under t2), ids suffixed so runs never meet."""

    def __init__(self):
        s = uuid.uuid4().hex[:8]
        self.s = s
        psql("INSERT INTO org_node (id, parent_id, kind, name) SELECT 'hs', NULL, 'company', "
             "'Company' WHERE NOT EXISTS (SELECT 1 FROM org_node WHERE parent_id IS NULL)")
        self.c = psql("SELECT id FROM org_node WHERE parent_id IS NULL")[0][0]
        self.d, self.t1, self.t2 = f"d-{s}", f"t1-{s}", f"t2-{s}"
        self.rg = f"rg-{s}"
        self.r1, self.r2 = f"r1-{s}", f"r2-{s}"
        psql(f"""
INSERT INTO org_node (id, parent_id, kind, name) VALUES
 ('{self.d}', '{self.c}', 'division', 'Division {s}'),
 ('{self.rg}', '{self.d}', 'region', 'Region {s}'),
 ('{self.t1}', '{self.rg}', 'team', '一组 {s}'),
 ('{self.t2}', '{self.rg}', 'team', 'Team two {s}'),
 ('{self.r1}', '{self.t1}', 'rep', 'Rep one {s}'),
 ('{self.r2}', '{self.t2}', 'rep', 'Rep two {s}');
""")


class PgProxy:
    """A TCP proxy to PostgreSQL that can go down (refusing and cutting every
    connection) and come back: an outage of the store of record as ka-api sees
    it, without stopping the server other tests share."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.port = free_port()
        self.up = False
        self.conns = []
        self.lock = threading.Lock()
        self.start()

    def start(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(16)
        self.up = True
        threading.Thread(target=self._accept, args=(self.ls,), daemon=True).start()

    def _accept(self, ls):
        while self.up:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                r, _, _ = select.select([a, b], [], [], 0.5)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        raise OSError
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()

    def down(self):
        self.up = False
        # shutdown wakes the thread blocked in accept(); close alone leaves
        # the socket listening until accept returns.
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ls.close()
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns = []

    def dsn(self):
        return dsn_as(re.sub(r"port=\d+", f"port={self.port}",
                             re.sub(r"host=\S+", "host=127.0.0.1", os.environ["KA_PG_DSN"])),
                      "ka_api")


def pg_host_port():
    d = dict(kv.split("=", 1) for kv in os.environ["KA_PG_DSN"].split() if "=" in kv)
    return d.get("host", "127.0.0.1"), int(d.get("port", "5432"))


def dump(x):
    return json.dumps(x, ensure_ascii=False, indent=1)


class Cases:
    """Runs each test case, reports ok or FAIL with its time and goes on;
    exit() prints the tally and ends the script, 1 when any case failed."""

    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, fn, body=None):
        name, body = (fn, body) if body else (fn.__name__, fn)
        t0 = time.time()
        try:
            body()
            self.passed += 1
            print(f"ok   {name} ({time.time() - t0:.1f} s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on
            self.failed += 1
            print(f"FAIL {name}: {e!r}", flush=True)

    def exit(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)

"""The fault suite's harness: a run of real workers against the local stack on
topics, consumer groups and ids of its own, a deterministic event stream, and
the checks of the stored and published results against oracle.py.

PostgreSQL and Redis are read with psql and redis-cli (both shipped by
deploy/local/deps); Kafka with confluent-kafka and the official protobuf
runtime, as an outside system on the bus would.
"""
import argparse
import atexit
import datetime
import decimal
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import oracle

KINDS = ("opportunity", "visit", "order")  # the input topics, each with its worker
WORKERS = KINDS + ("forecast",)
SERVICE = {"opportunity": "opportunity-worker", "visit": "visit-worker",
           "order": "order-worker", "forecast": "forecast-worker"}
# The topic each worker consumes: the forecast worker reads managers'
# adjustments from the opportunity topic (and the others' marks from PostgreSQL).
INPUT = {"opportunity": "opportunity", "visit": "visit", "order": "order",
         "forecast": "opportunity"}
PARTITIONS = 3
_pb = None


def proto(proto_dir):
    """The ka.v1 Python modules, generated once per process from proto/."""
    global _pb
    if _pb is None:
        out = tempfile.mkdtemp(prefix="ka-fault-pb-")
        atexit.register(shutil.rmtree, out, ignore_errors=True)
        files = sorted(os.path.join("ka/v1", f) for f in os.listdir(os.path.join(proto_dir, "ka/v1"))
                       if f.endswith(".proto"))
        subprocess.run(["protoc", f"-I{proto_dir}", f"--python_out={out}", *files], check=True)
        sys.path.insert(0, out)
        from ka.v1 import (alert_pb2, common_pb2, forecast_pb2, opportunity_pb2, order_pb2,
                           planning_pb2, visit_pb2)
        _pb = argparse.Namespace(alert=alert_pb2, common=common_pb2, opp=opportunity_pb2,
                                 order=order_pb2, visit=visit_pb2, forecast=forecast_pb2,
                                 planning=planning_pb2)
    return _pb


def seed_of(args):
    """The stream's seed: --seed, else the clock; printed so a failure replays."""
    seed = args.seed if args.seed is not None else int(time.time())
    print(f"seed {seed}", flush=True)
    return seed


def report(test, faults_injected, events_compared):
    """The one line each fault test prints (issue 8: faults injected, events compared)."""
    print(f"FAULT-REPORT test={test} faults={faults_injected} events={events_compared}", flush=True)


# -- environment ---------------------------------------------------------------

class Env:
    def __init__(self, pg_dsn, redis_host, redis_port, brokers, bins, proto_dir, kactl):
        self.pg_dsn, self.redis_host, self.redis_port = pg_dsn, redis_host, redis_port
        self.brokers, self.bins, self.proto_dir, self.kactl = brokers, bins, proto_dir, kactl

    @staticmethod
    def parser(description=None):
        ap = argparse.ArgumentParser(description=description)
        for kind in SERVICE:
            ap.add_argument(f"--{kind}-worker", help=f"path of the {SERVICE[kind]} binary")
        ap.add_argument("--kactl", help="path of kactl")
        ap.add_argument("--proto-dir", required=True)
        ap.add_argument("--seed", type=int, default=None,
                        help="stream seed (default: from the clock, printed)")
        return ap

    @classmethod
    def from_environ(cls, args):
        missing = [k for k in ("KA_PG_DSN", "KA_KAFKA_BROKERS") if not os.environ.get(k)]
        if missing:
            raise SystemExit(f"fault tests need {', '.join(missing)} (tests/run exports them; "
                             "by hand: eval \"$(deploy/local/stack env)\"; "
                             "export KA_PG_DSN=\"$KA_PG_TEST_DSN\")")
        bins = {k: getattr(args, f"{k}_worker") for k in SERVICE
                if getattr(args, f"{k}_worker", None)}
        for k, path in bins.items():
            if not os.access(path, os.X_OK):
                raise SystemExit(f"--{k}-worker {path}: not an executable")
        return cls(os.environ["KA_PG_DSN"], os.environ.get("KA_REDIS_HOST", "127.0.0.1"),
                   int(os.environ.get("KA_REDIS_PORT", "16379")), os.environ["KA_KAFKA_BROKERS"],
                   bins, args.proto_dir, getattr(args, "kactl", None))

    # PostgreSQL through psql: values travel as psql variables (-v), which
    # the query reads as :'name' (quoted by psql), never spliced into SQL.
    def sql(self, query, **params):
        cmd = ["psql", "-X", "-q", "-A", "-t", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
               "-d", self.pg_dsn]
        for k, v in params.items():
            cmd += ["-v", f"{k}={v}"]
        res = subprocess.run(cmd, input=query, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"psql failed: {res.stderr.strip()}\nquery: {query}")
        return [line.split("\x1f") for line in res.stdout.splitlines() if line]

    def redis(self, *args):
        env = dict(os.environ)
        if os.environ.get("KA_REDIS_PASSWORD"):
            env["REDISCLI_AUTH"] = os.environ["KA_REDIS_PASSWORD"]
        res = subprocess.run(["redis-cli", "--raw", "-h", self.redis_host, "-p",
                              str(self.redis_port), *args], capture_output=True, text=True,
                             env=env, timeout=30)
        if res.returncode != 0:
            raise RuntimeError(f"redis-cli {args}: {res.stderr.strip()}")
        return res.stdout.splitlines()

    def redis_hash(self, key):
        lines = self.redis("HGETALL", key)
        return dict(zip(lines[0::2], lines[1::2]))


def pg_array(values):
    """A PostgreSQL array literal of plain ids, dates or numbers (no quoting
    needed; the value travels as a psql variable)."""
    return "{" + ",".join(str(v) for v in values) + "}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- workers -------------------------------------------------------------------

class Worker:
    def __init__(self, run, kind, instance, extra_env):
        if kind not in run.env.bins:
            raise SystemExit(f"no --{kind}-worker given")
        self.run, self.kind, self.instance = run, kind, instance
        self.port = free_port()
        self.env = dict(os.environ, **run.worker_env(kind), KA_HTTP_PORT=str(self.port),
                        **{k: str(v) for k, v in extra_env.items()})
        self.log_path = os.path.join(run.dir, f"{kind}-{instance}.log")
        self.proc = None
        self.starts = 0

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        assert not self.alive(), f"{self.kind}-{self.instance} is already running"
        self.starts += 1
        log = open(self.log_path, "a")
        log.write(f"--- start {self.starts}\n")
        log.flush()
        self.proc = subprocess.Popen([self.run.env.bins[self.kind]], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            self.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.proc.wait(60)

    def stop(self, timeout=60):
        """SIGTERM: the worker drains and must exit 0."""
        assert self.alive(), f"{self.kind}-{self.instance} is not running"
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        with open(self.log_path, "a") as log:
            log.write(f"--- SIGTERM: exit {rc} after {time.monotonic() - t0:.2f} s\n")
        assert rc == 0, f"{self.kind}-{self.instance} exited {rc} after SIGTERM ({self.log_path})"

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def metric(self, name):
        """Sum of a counter's series on /metrics (None when it does not answer)."""
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read()
        except OSError:
            return None
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_up(self, timeout=30):
        """Until /metrics answers: the worker has its signal handlers (a
        SIGTERM before them ends the process by the default action)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            if self.metric("ka_events_consumed_total") is not None:
                return True
            time.sleep(0.05)
        return False

    def wait_metric(self, name, at_least, timeout=60):
        """Until the counter reaches at_least (this process's own count);
        False when it does not within timeout or the worker died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            v = self.metric(name)
            if v is not None and v >= at_least:
                return True
            time.sleep(0.05)
        return False

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


# -- a run ---------------------------------------------------------------------

class Run:
    """Everything one test owns: a suffix, topics, consumer groups, an org
    subtree (division, region, two teams of two reps and their managers) and
    an id prefix, so the checks compare exactly the rows of this run."""

    def __init__(self, env, name):
        self._plan(env, name)
        self.dir = tempfile.mkdtemp(prefix=f"ka-fault-{name}-")
        admin = AdminClient({"bootstrap.servers": env.brokers})
        for fut in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in
                                        self.topics.values()]).values():
            fut.result(30)
        self._make_org()
        self._producer = Producer({"bootstrap.servers": env.brokers, "enable.idempotence": True,
                                   "linger.ms": 5})
        print(f"run {name}: prefix {self.prefix}, logs in {self.dir}", flush=True)

    @classmethod
    def offline(cls, env, name):
        """A run's names, org and quotas without its topics and rows: enough to
        build a Scenario and look at its stream."""
        run = cls.__new__(cls)
        run._plan(env, name)
        return run

    def _plan(self, env, name):
        self.env, self.name = env, name
        self.short = f"{int(time.time() * 1000) % 10**10:x}{os.getpid() % 1000:03d}"
        self.prefix = f"f{self.short}"
        self.topics = {k: f"fault.{name}.{k}.{self.short}" for k in
                       ("opportunity", "visit", "order", "alert", "deadletter", "forecast",
                        "planning")}
        self.groups = {k: f"fault-{name}-{k}-{self.short}" for k in SERVICE}
        self.workers = []
        # Twenty minutes before this month began: a stream's events cross a
        # month boundary, so actuals land in two months.
        now = datetime.datetime.now(datetime.timezone.utc)
        month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        self.base_ms = int(month.timestamp() * 1000) - 20 * 60 * 1000
        # The months the stream's forecast confirmations and adjustments name:
        # the one it starts in, this one and the next.
        first = datetime.datetime.fromtimestamp(self.base_ms / 1000, datetime.timezone.utc)
        self.months = [f"{first.year + (first.month - 1 + i) // 12:04d}-"
                       f"{(first.month - 1 + i) % 12 + 1:02d}-01" for i in range(3)]
        p = self.prefix
        self.division, self.region = f"div-{p}", f"reg-{p}"
        self.teams = [f"team{t}-{p}" for t in range(2)]
        self.reps = [f"rep{i}-{p}" for i in range(4)]
        self.team_managers = [f"u-team{t}-{p}" for t in range(2)]
        self.region_manager = f"u-reg-{p}"
        self.division_manager = f"u-div-{p}"
        self.outsider = f"u-out-{p}"  # a user who manages nothing above anyone
        parent = {self.division: None, self.region: self.division,
                  self.teams[0]: self.region, self.teams[1]: self.region,
                  self.reps[0]: self.teams[0], self.reps[1]: self.teams[0],
                  self.reps[2]: self.teams[1], self.reps[3]: self.teams[1]}
        manager = {self.division: self.division_manager, self.region: self.region_manager,
                   self.teams[0]: self.team_managers[0], self.teams[1]: self.team_managers[1]}
        self.org = oracle.Org(parent, manager)
        # Quotas (reference data) for the first two months and the quarter of
        # the second: the third month has none, so its coverage and gap are
        # absent. A rep's quota is small enough for closed revenue to pass
        # it (coverage absent once quota - closed <= 0).
        per_level = {self.division: 9_000_000, self.region: 9_000_000,
                     self.teams[0]: 4_000_000, self.teams[1]: 4_000_000,
                     **{r: 1_500_000 for r in self.reps}}
        self.quotas = {}
        for node, amount in per_level.items():
            self.quotas[(node, "month", self.months[0])] = amount
            self.quotas[(node, "month", self.months[1])] = amount
            self.quotas[(node, "quarter", oracle.quarter_of(self.months[1]))] = amount * 3

    def _make_org(self):
        root = self.env.sql("SELECT id FROM org_node WHERE parent_id IS NULL")
        if not root:
            raise SystemExit("the org tree has no company: load one first "
                             "(tests/run runs kactl load sample)")
        q = """
INSERT INTO app_user (id, display_name) VALUES (:'rm', 'region manager'), (:'tm0', 'team manager'),
    (:'tm1', 'team manager'), (:'out', 'outsider'), (:'dm', 'division manager');
INSERT INTO org_node (id, parent_id, kind, name, manager_user_id)
    VALUES (:'div', :'root', 'division', 'fault', :'dm');
INSERT INTO org_node (id, parent_id, kind, name, manager_user_id)
    VALUES (:'reg', :'div', 'region', 'fault', :'rm');
INSERT INTO org_node (id, parent_id, kind, name, manager_user_id)
    VALUES (:'t0', :'reg', 'team', 'fault', :'tm0'), (:'t1', :'reg', 'team', 'fault', :'tm1');
INSERT INTO org_node (id, parent_id, kind, name) VALUES (:'r0', :'t0', 'rep', 'r'),
    (:'r1', :'t0', 'rep', 'r'), (:'r2', :'t1', 'rep', 'r'), (:'r3', :'t1', 'rep', 'r');
"""
        self.env.sql(q, root=root[0][0], div=self.division, reg=self.region, rm=self.region_manager,
                     dm=self.division_manager,
                     tm0=self.team_managers[0], tm1=self.team_managers[1], out=self.outsider,
                     t0=self.teams[0], t1=self.teams[1], r0=self.reps[0], r1=self.reps[1],
                     r2=self.reps[2], r3=self.reps[3])
        keys = list(self.quotas)
        self.env.sql("INSERT INTO quota (node_id, period_kind, period_start, amount_minor) "
                     "SELECT * FROM unnest(:'n'::text[], :'k'::text[], :'s'::date[], "
                     ":'a'::bigint[])",
                     n=pg_array(k[0] for k in keys), k=pg_array(k[1] for k in keys),
                     s=pg_array(k[2] for k in keys), a=pg_array(self.quotas[k] for k in keys))

    def worker_env(self, kind):
        # Each worker runs as its least-privilege role (0012_worker_roles.sql),
        # as deployments do; a later user= overrides the DSN's.
        dsn = self.env.pg_dsn
        if "=" in dsn and not dsn.startswith(("postgres://", "postgresql://")):
            dsn = f"{dsn} user=ka_{kind}_worker"
        return {
            "KA_PG_DSN": dsn,
            "KA_TOPIC_OPPORTUNITY": self.topics["opportunity"], "KA_TOPIC_VISIT": self.topics["visit"],
            "KA_TOPIC_ORDER": self.topics["order"], "KA_TOPIC_ALERT": self.topics["alert"],
            "KA_TOPIC_DEADLETTER": self.topics["deadletter"],
            "KA_TOPIC_FORECAST": self.topics["forecast"], "KA_TOPIC_PLANNING": self.topics["planning"],
            "KA_CONSUMER_GROUP": self.groups[kind],
            # Scans and the tier ranking are time- and database-wide rules the
            # oracle leaves out: keep them from running during the test.
            "KA_SCAN_INTERVAL_MS": "86400000", "KA_TIER_INTERVAL_MS": "86400000",
            # Forecast events a fifth of a second after a change, not a second:
            # shorter waits, and crashes land between a change and its event.
            "KA_FORECAST_DEBOUNCE_MS": "200",
        }

    def worker(self, kind, instance=0, extra_env=None):
        w = Worker(self, kind, instance, extra_env or {})
        self.workers.append(w)
        return w

    def produce(self, events, rate=None):
        """Produces (kind, key, value) events in order; rate = events per second."""
        t0 = time.monotonic()
        for i, ev in enumerate(events):
            if rate:
                ahead = t0 + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            while True:
                try:
                    self._producer.produce(self.topics[ev.kind], key=ev.key.encode(),
                                           value=ev.value)
                    break
                except BufferError:
                    self._producer.poll(0.1)
            self._producer.poll(0)
        left = self._producer.flush(60)
        assert left == 0, f"{left} events not confirmed by Kafka"

    def high_watermarks(self, topic):
        c = Consumer({"bootstrap.servers": self.env.brokers, "group.id": f"wm-{self.short}",
                      "enable.auto.commit": False})
        try:
            return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in range(PARTITIONS)}
        finally:
            c.close()

    def stored_offsets(self, kind):
        rows = self.env.sql("SELECT partition, next_offset FROM consumer_offset "
                            "WHERE consumer_group = :'g' AND topic = :'t'",
                            g=self.groups[kind], t=self.topics[INPUT[kind]])
        return {int(p): int(o) for p, o in rows}

    def unpublished(self):
        rows = self.env.sql("SELECT count(*) FROM outbox WHERE published_at IS NULL AND topic "
                            "IN (:'a', :'d', :'o', :'f', :'p')", a=self.topics["alert"],
                            d=self.topics["deadletter"], o=self.topics["opportunity"],
                            f=self.topics["forecast"], p=self.topics["planning"])
        return int(rows[0][0])

    def forecast_pending(self):
        """What the forecast worker has still to do: marks not yet taken (any
        run's: it takes them in order) and this run's forecast and planning
        rows changed since their last event."""
        rows = self.env.sql(
            "SELECT (SELECT count(*) FROM forecast_dirty), "
            "(SELECT count(*) FROM forecast WHERE node_id = ANY(:'n'::text[]) "
            "AND revision > emitted_revision), "
            "(SELECT count(*) FROM planning_feed WHERE division_node_id = :'d' "
            "AND revision > emitted_revision)",
            n=pg_array(sorted(self.org.nodes())), d=self.division)
        marks, forecasts, planning = (int(v) for v in rows[0])
        return {k: v for k, v in (("marks", marks), ("forecast rows", forecasts),
                                  ("planning rows", planning)) if v}

    def wait_caught_up(self, kind, timeout=120, outbox=True):
        """Until the stored offsets of `kind` (or of each kind in a tuple)
        reach the end of its input topic, the forecast worker (when among
        them) has recomputed and published every change, and (unless
        outbox=False) this run's outbox is published."""
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        deadline = time.monotonic() + timeout
        while True:
            behind = {}
            for k in kinds:
                high = self.high_watermarks(self.topics[INPUT[k]])
                stored = self.stored_offsets(k)
                lag = {p: h - stored.get(p, 0) for p, h in high.items() if h > stored.get(p, 0)}
                if lag:
                    behind[k] = lag
            # In this order: the offsets are stored with the marks, the marks
            # taken with the revisions, the revisions emitted into the outbox.
            if not behind and "forecast" in kinds:
                pending = self.forecast_pending()
                if pending:
                    behind["forecast"] = pending
            unpublished = self.unpublished() if outbox else 0
            if not behind and unpublished == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not caught up after {timeout}s: lag {behind}, "
                                     f"{unpublished} outbox rows unpublished (logs in {self.dir})")
            time.sleep(0.3)

    def close(self, passed=False):
        """Kills what still runs; after a pass also deletes the run's topics
        (a failed run keeps them, and its logs, for a look)."""
        for w in self.workers:
            if w.alive():
                w.resume()
                w.kill()
        self._producer.flush(10)
        if passed:
            admin = AdminClient({"bootstrap.servers": self.env.brokers})
            for fut in admin.delete_topics(list(self.topics.values())).values():
                try:
                    fut.result(10)
                except Exception as e:  # noqa: BLE001 - a leftover topic is harmless
                    print(f"run {self.name}: topic not deleted: {e}", flush=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(passed=exc_type is None)

    # -- checks ----------------------------------------------------------------
    def compare(self, scenario):
        """PostgreSQL and Redis against the oracle; AssertionError with a diff."""
        x = oracle.expected(scenario.log, self.org, self.quotas)
        diffs, rows = [], 0
        nodes = sorted(self.org.nodes())
        nodes_arr = pg_array(nodes)

        def check(what, got, want):
            nonlocal rows
            rows += len(got) + len(want)
            if got != want:
                keys = sorted(set(got) | set(want), key=str)
                lines = [f"  {k}: stored {got.get(k)!r}, expected {want.get(k)!r}"
                         for k in keys if got.get(k) != want.get(k)]
                diffs.append(f"{what}: {len(lines)} differ\n" + "\n".join(lines[:25]))

        if "opportunity" in scenario.kinds:
            got = {r[0]: {"stage": r[1], "amount": int(r[2]), "owner": r[3], "status": r[4]}
                   for r in self.env.sql(
                       "SELECT id, stage_code, amount_minor, owner_rep_id, status FROM opportunity "
                       "WHERE starts_with(id, :'p')", p=self.prefix + "-o")}
            check("opportunities (PostgreSQL)", got, x["opportunities"])
            got = {(r[0], r[1], r[2]): (int(r[3]), int(r[4]), int(r[5])) for r in self.env.sql(
                "SELECT node_id, definition_id, stage_code, open_count, amount_minor, "
                "weighted_amount_minor FROM funnel_state WHERE node_id = ANY(:'n'::text[]) "
                "AND (open_count, amount_minor, weighted_amount_minor) <> (0, 0, 0)", n=nodes_arr)}
            check("funnel_state (PostgreSQL)", got, x["funnel"])
            got = {}
            for n in nodes:
                h = self.env.redis_hash(f"ka:funnel:{n}:{oracle.DEFINITION}")
                for stage in {f.split(":")[0] for f in h}:
                    v = tuple(int(h.get(f"{stage}:{m}", 0)) for m in ("count", "amount", "weighted"))
                    if v != (0, 0, 0):
                        got[(n, oracle.DEFINITION, stage)] = v
            check("funnel (Redis ka:funnel:*)", got, x["funnel"])
            got = {}
            for subject, status, start in self.env.sql(
                    "SELECT subject_id, status, (extract(epoch FROM starts_at) * 1000)::bigint "
                    "FROM alert_state WHERE type = 'unauthorized_owner_change' "
                    "AND starts_with(subject_id, :'p')", p=self.prefix + "-o"):
                got[subject] = (status, int(start))
            want = {}
            for a in x["alerts"]:
                want[a["subject_id"]] = (a["status"], a["starts_at_ms"])
            check("alert_state unauthorized_owner_change (PostgreSQL)", got, want)
            got = self.env.sql("SELECT count(*) FROM dead_letter WHERE consumer_group = :'g'",
                               g=self.groups["opportunity"])
            check("dead_letter rows (PostgreSQL)", {"count": int(got[0][0])},
                  {"count": len(x["dead_letters"])})
        if scenario.forecast:
            check("forecast (PostgreSQL)", self.stored_forecast(), x["forecast"])
            got = {(r[0], r[1], r[2]): (decimal.Decimal(r[3]), decimal.Decimal(r[4]))
                   for r in self.env.sql(
                       "SELECT sku, period_month::text, division_node_id, weighted_quantity, "
                       "committed_quantity FROM planning_feed WHERE division_node_id = :'d' "
                       "AND (weighted_quantity, committed_quantity) <> (0, 0)", d=self.division)}
            check("planning_feed (PostgreSQL)", got, x["planning"])
            got = self.env.sql("SELECT count(*) FROM dead_letter WHERE consumer_group = :'g'",
                               g=self.groups["forecast"])
            check("dead_letter rows of the forecast worker (PostgreSQL)",
                  {"count": int(got[0][0])}, {"count": len(x["forecast_dead_letters"])})
        if "order" in scenario.kinds:
            got = {r[0]: {"status": r[1], "total": int(r[2])} for r in self.env.sql(
                "SELECT id, status, total_amount_minor FROM sales_order WHERE starts_with(id, :'p')",
                p=self.prefix + "-s")}
            check("orders (PostgreSQL)", got, x["orders"])
            got = {}
            for key, sku, node, month, amount, qty in self.env.sql(
                    "SELECT ac.canonical_key, a.sku, a.node_id, a.period_month, a.amount_minor, "
                    "a.quantity FROM actual a JOIN account ac ON ac.id = a.account_id "
                    "WHERE a.node_id = ANY(:'n'::text[]) AND (a.amount_minor <> 0 OR a.quantity <> 0)",
                    n=nodes_arr):
                q = decimal.Decimal(qty)
                got[(key.removeprefix("name:"), sku, node, month)] = (
                    int(amount), int(q) if q == int(q) else q)
            check("actual (PostgreSQL)", got, x["actuals"])
            got = {(r[0], r[1]): int(r[2]) for r in self.env.sql(
                "SELECT node_id, period_month, amount_minor FROM actual_rollup "
                "WHERE node_id = ANY(:'n'::text[]) AND amount_minor <> 0", n=nodes_arr)}
            check("actual_rollup (PostgreSQL)", got, x["rollup"])
            got = {}
            for n in nodes:
                for month, amount in self.env.redis_hash(f"ka:actuals:{n}").items():
                    if int(amount):
                        got[(n, month + "-01")] = int(amount)
            check("actuals (Redis ka:actuals:*)", got, x["rollup"])
        if "visit" in scenario.kinds:
            got, ids = {}, {}
            for key, aid, n, last, dm, man in self.env.sql(
                    "SELECT ac.canonical_key, ac.id, (SELECT count(*) FROM visit v "
                    "WHERE v.account_id = ac.id), "
                    "(extract(epoch FROM ac.last_visit_at) * 1000)::bigint, "
                    "(extract(epoch FROM ac.last_decision_maker_visit_at) * 1000)::bigint, "
                    "ac.man_class FROM account ac WHERE starts_with(ac.canonical_key, :'p')",
                    p=f"name:{scenario.visit_account_prefix}"):
                name = key.removeprefix("name:")
                ids[name] = aid
                got[name] = {"visits": int(n), "last_visit": int(last) if last else None,
                             "last_dm": int(dm) if dm else None, "man": man or None}
            want = {k: {f: v[f] for f in ("visits", "last_visit", "last_dm", "man")}
                    for k, v in x["accounts"].items()}
            check("accounts from visits (PostgreSQL)", got, want)
            got = {}
            for name, aid in ids.items():
                h = self.env.redis_hash(f"ka:account:{aid}")
                got[name] = {"last_visit": int(h["last_visit_ms"]) if h.get("last_visit_ms") else None,
                             "last_dm": int(h.get("last_decision_maker_visit_ms") or 0) or None,
                             "man": h.get("man_class") or None}
            want = {k: {f: v[f] for f in ("last_visit", "last_dm", "man")}
                    for k, v in x["accounts"].items()}
            check("accounts (Redis ka:account:*)", got, want)
        if diffs:
            raise AssertionError(f"run {self.name} ({self.prefix}) differs from the oracle:\n"
                                 + "\n".join(diffs))
        return argparse.Namespace(events_compared=len(scenario.log), rows_compared=rows,
                                  expected=x)

    SCAN_LIMIT = 500  # rows a scan handles per rule and run (visit_scan.c, forecast_scan.c)

    def _rescan(self, worker, scan, timeout, clock_ms=None):
        """Restarts `worker` (its clock moved to about clock_ms) so that its
        first tick runs its scans over the final state, again while a run
        hit its row limit (older rows of other runs come first); waits for
        the alerts to be published. Returns the last scan's clock in ms."""
        for _ in range(10):
            if worker.alive():
                worker.stop()
            started = self.env.sql("SELECT now()")[0][0]
            if clock_ms is not None:
                worker.env["KA_CLOCK_OFFSET_MS"] = str(clock_ms - int(time.time() * 1000))
            worker.start()
            deadline = time.monotonic() + timeout
            while True:
                rows = self.env.sql("SELECT (extract(epoch FROM clock_at) * 1000)::bigint, fired, "
                                    "resolved FROM scan_run WHERE name = :'s' AND "
                                    "consumer_group = :'g' AND finished_at >= :'t'",
                                    s=scan, g=self.groups[worker.kind], t=started)
                if rows:
                    break
                assert time.monotonic() < deadline and worker.alive(), \
                    f"no {scan} scan after the restart ({worker.log_path})"
                time.sleep(0.2)
            clock, fired, resolved = (int(v) for v in rows[0])
            if max(fired, resolved) < self.SCAN_LIMIT:
                break
        else:
            raise AssertionError(f"{scan}: every scan hit its limit of {self.SCAN_LIMIT} rows")
        worker.env.pop("KA_CLOCK_OFFSET_MS", None)
        self.wait_caught_up(worker.kind, timeout=timeout)
        return clock

    def _firing_published(self, alert_type, subjects):
        """The AlertEvents of `alert_type` about `subjects` whose fingerprint's
        last published transition, in commit order, is firing."""
        pb = proto(self.env.proto_dir)
        committed = {r[0]: int(r[1]) for r in self.env.sql(
            "SELECT event_id, id FROM outbox WHERE topic = :'t'", t=self.topics["alert"])}
        latest = {}
        for m in self.read_topic(self.topics["alert"]):
            a = pb.alert.AlertEvent()
            a.ParseFromString(m.value())
            if a.type != alert_type or a.subject_id not in subjects:
                continue
            ce_id = dict(m.headers() or []).get("ce_id", b"").decode(errors="replace")
            order = committed.get(ce_id, -1)
            if a.fingerprint not in latest or order > latest[a.fingerprint][0]:
                latest[a.fingerprint] = (order, a)
        return [a for _, a in latest.values() if a.status == pb.alert.ALERT_STATUS_FIRING]

    def check_visit_scan(self, scenario, visit_worker, timeout=60):
        """Restarts the visit worker with its clock moved to the middle of the
        stream's follow-up due dates, so that its first scan finds about half
        of the run's accounts overdue; the firing visit-overdue alerts, stored
        (with their start at the due date) and as last published, must be the
        oracle's at the scan's clock, and so must the decision-maker gaps the
        same scan judges (the run's deals at 50% or more). Returns (overdue
        alerts firing, accounts, gap alerts firing, deals)."""
        x = oracle.expected(scenario.log, self.org, self.quotas)
        dues = sorted(a["last_visit"] + a["interval_days"] * 86400000
                      for a in x["accounts"].values() if a["interval_days"])
        assert dues, "the stream has no visit with a follow-up plan"
        clock = self._rescan(visit_worker, "visit_overdue", timeout, dues[len(dues) // 2])
        want = {}
        ids = {r[0].removeprefix("name:"): r[1] for r in self.env.sql(
            "SELECT canonical_key, id FROM account WHERE starts_with(canonical_key, :'p')",
            p=f"name:{scenario.visit_account_prefix}")}
        for name in oracle.overdue_visits(x["accounts"], clock):
            a = x["accounts"][name]
            want[ids[name]] = a["last_visit"] + a["interval_days"] * 86400000
        got = {r[0]: int(r[1]) for r in self.env.sql(
            "SELECT subject_id, (extract(epoch FROM starts_at) * 1000)::bigint FROM alert_state "
            "WHERE type = 'visit_overdue' AND status = 'firing' "
            "AND subject_id = ANY(:'a'::text[])", a=pg_array(sorted(ids.values())))}
        pb = proto(self.env.proto_dir)
        published = {a.subject_id: a.starts_at_ms for a in self._firing_published(
            pb.alert.ALERT_TYPE_VISIT_OVERDUE, set(ids.values()))}
        problems = [f"overdue visits {what}: {sorted(v.items())}, expected {sorted(want.items())}"
                    for what, v in (("firing in alert_state", got),
                                    ("firing as last published", published)) if v != want]
        deals = set(x["opportunities"])
        want_gaps = oracle.decision_maker_gaps(x, clock)
        got_gaps = {r[0] for r in self.env.sql(
            "SELECT subject_id FROM alert_state WHERE type = 'decision_maker_gap' "
            "AND status = 'firing' AND starts_with(subject_id, :'p')", p=self.prefix + "-o")}
        published_gaps = {a.subject_id for a in self._firing_published(
            pb.alert.ALERT_TYPE_DECISION_MAKER_GAP, deals)}
        problems += [f"decision-maker gaps {what}: {sorted(v)}, expected {sorted(want_gaps)}"
                     for what, v in (("firing in alert_state", got_gaps),
                                     ("firing as last published", published_gaps))
                     if v != want_gaps]
        if problems:
            raise AssertionError(f"visit scan of run {self.name} ({self.prefix}) at "
                                 f"{clock}:\n  " + "\n  ".join(problems))
        return len(want), len(ids), len(want_gaps), len(deals)

    def check_final(self, scenario, workers):
        """The checks that end a test whose four workers ran a forecast
        stream: state and downstream against the oracle, then the forecast,
        visit and stall rescans. Returns (compare's result, a summary line)."""
        state = self.compare(scenario)
        down = self.check_downstream(scenario)
        gaps = self.check_forecast_gap(scenario, workers["forecast"])
        visits = self.check_visit_scan(scenario, workers["visit"])
        stalls = self.check_stall_scan(scenario, workers["opportunity"])
        return state, (
            f"compared {state.rows_compared} rows; downstream {down.messages} messages, "
            f"{down.distinct} distinct ids, {down.resent} re-sent; forecast gaps firing "
            f"{gaps[0]} of {gaps[1]} node-periods; visits overdue {visits[0]} of {visits[1]} "
            f"accounts; decision-maker gaps {visits[2]} of {visits[3]} deals; stalls "
            f"{stalls[0]} of {stalls[1]} open deals")

    def check_stall_scan(self, scenario, opportunity_worker, timeout=120):
        """Restarts the opportunity worker with its clock moved to the middle
        of the run's open deals' stage dwell limits, so that its first scan
        finds about half of them stalled in their stage (and, by then, maybe
        silent too long); the firing stalled-opportunity alerts per deal and
        cause, stored and as last published, must be the oracle's at the
        scan's clock. Returns (alerts firing, open deals)."""
        x = oracle.expected(scenario.log, self.org, self.quotas)
        limits = sorted(x["opportunity_times"][k][1] + oracle.MAX_DWELL_DAYS[o["stage"]]
                        * oracle.DAY_MS for k, o in x["opportunities"].items()
                        if o["status"] == "open")
        assert limits, "the stream left no deal open"
        clock = self._rescan(opportunity_worker, "stalled_opportunity", timeout,
                             limits[len(limits) // 2])
        want = oracle.stalled(x, clock)
        got = {(r[0], r[1]) for r in self.env.sql(
            "SELECT subject_id, coalesce(details->>'cause', 'stage_dwell') FROM alert_state "
            "WHERE type = 'stalled_opportunity' AND status = 'firing' "
            "AND starts_with(subject_id, :'p')", p=self.prefix + "-o")}
        pb = proto(self.env.proto_dir)
        published = {(a.subject_id, a.details.get("cause", "stage_dwell"))
                     for a in self._firing_published(pb.alert.ALERT_TYPE_STALLED_OPPORTUNITY,
                                                     set(x["opportunities"]))}
        problems = [f"stalls {what}: {sorted(v)}, expected {sorted(want)}"
                    for what, v in (("firing in alert_state", got),
                                    ("firing as last published", published)) if v != want]
        if problems:
            raise AssertionError(f"stall scan of run {self.name} ({self.prefix}) at {clock}:"
                                 "\n  " + "\n  ".join(problems))
        return len(want), len(limits)

    def check_forecast_gap(self, scenario, forecast_worker, timeout=60):
        """Restarts the forecast worker so that its first tick scans the final
        forecast for gaps (the fault runs' scans otherwise wait a day), then
        compares the firing forecast-gap alerts of this run's nodes, stored
        and as last published per fingerprint, with the oracle's verdict on
        the scan's day. Returns (alerts firing, node-periods stored)."""
        clock = self._rescan(forecast_worker, "forecast_gap", timeout)
        today = datetime.datetime.fromtimestamp(clock / 1000, datetime.timezone.utc).date()
        nodes = pg_array(sorted(self.org.nodes()))
        stored = {(r[0], r[1], r[2]) for r in self.env.sql(
            "SELECT node_id, period_kind, period_start::text FROM forecast "
            "WHERE node_id = ANY(:'n'::text[])", n=nodes)}
        x = oracle.expected(scenario.log, self.org, self.quotas)
        want = oracle.forecast_gaps(x["forecast"], self.quotas, today)
        got = {(r[0], r[1], r[2]) for r in self.env.sql(
            "SELECT subject_id, details->>'period_kind', details->>'period_start' "
            "FROM alert_state WHERE type = 'forecast_gap' AND status = 'firing' "
            "AND subject_id = ANY(:'n'::text[])", n=nodes)}
        problems = []
        if got != want:
            problems.append(f"firing in alert_state {sorted(got)}, expected {sorted(want)}")
        pb = proto(self.env.proto_dir)
        published = {(a.subject_id, a.details["period_kind"], a.details["period_start"])
                     for a in self._firing_published(pb.alert.ALERT_TYPE_FORECAST_GAP,
                                                      self.org.nodes())}
        if published != want:
            problems.append(f"firing as last published {sorted(published)}, "
                            f"expected {sorted(want)}")
        if problems:
            raise AssertionError(f"forecast gaps of run {self.name} ({self.prefix}) on {today}:"
                                 "\n  " + "\n  ".join(problems))
        return len(want), len(stored)

    def stored_forecast(self):
        """This run's forecast rows with a quota or a figure other than zero,
        in the oracle's shape (None for NULL)."""
        got = {}
        for r in self.env.sql(
                "SELECT node_id, period_kind, period_start::text, raw_closed_minor, "
                "raw_commit_minor, raw_best_case_minor, raw_pipeline_minor, "
                "raw_weighted_pipeline_minor, adj_closed_minor, adj_commit_minor, "
                "adj_best_case_minor, adj_pipeline_minor, adj_weighted_pipeline_minor, "
                "quota_minor, raw_coverage_bp, adj_coverage_bp, raw_gap_minor, adj_gap_minor "
                "FROM forecast WHERE node_id = ANY(:'n'::text[])",
                n=pg_array(sorted(self.org.nodes()))):
            v = [None if c == "" else int(c) for c in r[3:]]
            raw, adjusted = tuple(v[0:5]), tuple(v[5:10])
            if any(raw) or any(adjusted) or v[10] is not None:
                got[(r[0], r[1], r[2])] = {
                    "raw": raw, "adjusted": adjusted, "quota": v[10], "raw_coverage": v[11],
                    "adjusted_coverage": v[12], "raw_gap": v[13], "adjusted_gap": v[14]}
        return got

    def read_topic(self, topic, timeout=60):
        """Every message of `topic` from the start up to its current end."""
        high = self.high_watermarks(topic)
        c = Consumer({"bootstrap.servers": self.env.brokers, "group.id": f"rd-{self.short}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        got, pos = [], {p: 0 for p in range(PARTITIONS)}
        deadline = time.monotonic() + timeout
        try:
            while any(pos[p] < high[p] for p in pos):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{topic}: read {pos}, end {high} after {timeout}s")
                m = c.poll(0.5)
                if m is None or m.error():
                    continue
                pos[m.partition()] = m.offset() + 1
                got.append(m)
        finally:
            c.close()
        return got

    def check_downstream(self, scenario):
        """The published view, as Jepsen's Kafka checker reads it: every id
        committed in the outbox (none for a rolled-back transaction), none of
        the oracle's events lost, per-key order as committed, and a re-send
        only with the same id and the same bytes."""
        pb = proto(self.env.proto_dir)
        x = oracle.expected(scenario.log, self.org, self.quotas)
        problems = []
        stats = {"messages": 0, "distinct": 0, "resent": 0}
        expected_dead = {SERVICE["opportunity"]: x["dead_letters"]}
        outputs = ("alert", "deadletter")
        if scenario.forecast:
            expected_dead[SERVICE["forecast"]] = x["forecast_dead_letters"]
            outputs += ("forecast", "planning")
        for which in outputs:
            topic = self.topics[which]
            committed = {r[0]: int(r[1]) for r in self.env.sql(
                "SELECT event_id, id FROM outbox WHERE topic = :'t'", t=topic)}
            msgs = self.read_topic(topic)
            seen, order = {}, {}
            for m in msgs:
                h = {k: v.decode(errors="replace") for k, v in (m.headers() or [])}
                if which != "deadletter":
                    ident = h.get("ce_id")
                else:  # dead letters are raw bytes: their id is the source position
                    kind = next((k for k, v in SERVICE.items() if v == h.get("ka_service")), None)
                    ident = (f"dlq:{self.groups.get(kind)}:{h.get('ka_src_topic')}:"
                             f"{h.get('ka_src_partition')}:{h.get('ka_src_offset')}")
                if not ident or ident not in committed:
                    problems.append(f"{which}: {ident!r} is not a committed outbox row")
                    continue
                if ident in seen:
                    stats["resent"] += 1
                    if seen[ident][:2] != (m.key(), m.value()):
                        problems.append(f"{which}: {ident} re-sent with other bytes")
                    continue
                seen[ident] = (m.key(), m.value(), h.get("ka_service"))
                order.setdefault((m.partition(), m.key()), []).append(ident)
            stats["messages"] += len(msgs)
            stats["distinct"] += len(seen)
            lost = sorted(set(committed) - set(seen))
            if lost:
                problems.append(f"{which}: {len(lost)} committed rows never published: {lost[:5]}")
            for key, ids in order.items():
                if ids != sorted(ids, key=lambda i: committed[i]):
                    problems.append(f"{which}: key {key[1]!r} out of commit order: {ids}")
            if which in ("forecast", "planning"):
                # The latest event of each key carries the final figures.
                latest = {key: seen[max(ids, key=lambda i: committed[i])][1]
                          for key, ids in order.items()}
                check = self._check_forecast if which == "forecast" else self._check_planning
                problems += check(pb, latest.values(), x)
            elif which == "deadletter":
                got = []
                for _, value, service in seen.values():
                    if service not in expected_dead:  # the oracle expects none from it
                        got.append(f"({service} dead letter)")
                        continue
                    e = pb.opp.OpportunityEvent()
                    e.ParseFromString(value)
                    got.append(e.header.event_id)
                want = sorted(i for ids in expected_dead.values() for i in ids)
                if sorted(got) != want:
                    problems.append(f"dead letters: published {sorted(got)}, expected {want}")
            else:
                got = []
                for _, value, _ in seen.values():
                    a = pb.alert.AlertEvent()
                    a.ParseFromString(value)
                    kind = pb.alert.AlertType.Name(a.type).removeprefix("ALERT_TYPE_").lower()
                    if kind in oracle.MODELLED_ALERT_TYPES and a.subject_id.startswith(self.prefix):
                        status = pb.alert.AlertStatus.Name(a.status).removeprefix(
                            "ALERT_STATUS_").lower()
                        got.append((kind, a.subject_id, status, a.starts_at_ms))
                want = [(a["type"], a["subject_id"], a["status"], a["starts_at_ms"])
                        for a in x["alerts"]]
                if sorted(got) != sorted(want):
                    problems.append(f"alerts: published {len(got)} {sorted(got)[:6]}..., "
                                    f"expected {len(want)} {sorted(want)[:6]}...")
        if problems:
            raise AssertionError(f"downstream of run {self.name} ({self.prefix}):\n  "
                                 + "\n  ".join(problems))
        return argparse.Namespace(**stats)


    def _check_forecast(self, pb, values, x):
        """The latest ForecastEvent of each of this run's node-periods against
        the oracle; an event carries 0 for an absent quota or gap."""
        def view(f):
            return ((f.closed_minor, f.commit_minor, f.best_case_minor, f.pipeline_minor,
                     f.weighted_pipeline_minor),
                    f.coverage_bp if f.HasField("coverage_bp") else None, f.gap_minor)

        nodes, got = self.org.nodes(), {}
        for value in values:
            e = pb.forecast.ForecastEvent()
            e.ParseFromString(value)
            if e.node_id not in nodes:
                continue  # another run's marks, taken by this run's worker
            month = e.period.number if e.period.kind == pb.common.PERIOD_KIND_MONTH \
                else (e.period.number - 1) * 3 + 1
            kind = "month" if e.period.kind == pb.common.PERIOD_KIND_MONTH else "quarter"
            got[(e.node_id, kind, f"{e.period.year:04d}-{month:02d}-01")] = (
                view(e.raw), view(e.adjusted), e.raw.quota_minor)
        want = {k: ((r["raw"], r["raw_coverage"], r["raw_gap"] or 0),
                    (r["adjusted"], r["adjusted_coverage"], r["adjusted_gap"] or 0),
                    r["quota"] or 0) for k, r in x["forecast"].items()}
        problems = []
        for k in sorted(set(got) | set(want)):
            if k not in want and got[k][0][0] == got[k][1][0] == (0,) * 5:
                continue  # moved out: its last event says zero
            if got.get(k) != want.get(k):
                problems.append(f"forecast {k}: latest published {got.get(k)}, "
                                f"expected {want.get(k)}")
        return problems[:20]

    def _check_planning(self, pb, values, x):
        """The latest PlanningEvent of each of this run's demand lines against
        the oracle (quantities in thousandths)."""
        def milli(q):
            return int((q * 1000).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))

        got = {}
        for value in values:
            e = pb.planning.PlanningEvent()
            e.ParseFromString(value)
            if e.division_id != self.division:
                continue
            key = (e.sku, f"{e.month.year:04d}-{e.month.number:02d}-01", e.division_id)
            got[key] = (e.weighted_quantity_milli, e.committed_quantity_milli)
        want = {k: (milli(w), milli(c)) for k, (w, c) in x["planning"].items()}
        problems = []
        for k in sorted(set(got) | set(want)):
            if k not in want and got[k] == (0, 0):
                continue
            if got.get(k) != want.get(k):
                problems.append(f"planning {k}: latest published {got.get(k)}, "
                                f"expected {want.get(k)}")
        return problems[:20]


# -- the event stream ------------------------------------------------------------

class Event:
    __slots__ = ("kind", "key", "value", "fields")

    def __init__(self, kind, key, value, fields):
        self.kind, self.key, self.value, self.fields = kind, key, value, fields


class Scenario:
    """A deterministic stream of valid events (and the chosen faults in it:
    duplicates, unauthorized owner changes, stale events, interleaving across
    keys), encoded with the official protobuf runtime. `.events` is what to
    produce; `.log` the same as plain dicts for the oracle. With forecast=True
    deals also carry lines and close dates, owners confirm them for periods,
    and managers (and some who may not) adjust nodes' forecasts."""

    def __init__(self, run, seed, n_events, kinds=KINDS, duplicates=0.0, reorder=False,
                 stale=0.0, unauthorized=0.03, n_opps=40, n_orders=30, n_accounts=12,
                 forecast=False):
        self.run, self.seed, self.kinds, self.forecast = run, seed, tuple(kinds), forecast
        self.pb = proto(run.env.proto_dir)
        self.rnd = random.Random(seed)
        self.visit_account_prefix = f"fault {run.prefix} visited "
        self.events = []
        self._seq = 0
        self._t = run.base_ms
        self._opps, self._orders, self._accts = {}, {}, {}
        self._n = dict(opps=n_opps, orders=n_orders, accounts=n_accounts)
        self._copyable = {}  # key -> events that may be duplicated
        self.duplicates = self.stale_events = self.unauthorized_events = 0
        for _ in range(n_events):
            if forecast and "opportunity" in self.kinds and self.rnd.random() < 0.04:
                ev = self._adjustment()
            else:
                kind = self.rnd.choice(self.kinds)
                ev = getattr(self, f"_{kind}")(stale, unauthorized)
            self.events.append(ev)
            if self.rnd.random() < duplicates and self._copyable.get(ev.key):
                self.events.append(self.rnd.choice(self._copyable[ev.key]))
                self.duplicates += 1
        if reorder:
            self.events = self._interleave(self.events)
        self.log = [e.fields for e in self.events]

    def _interleave(self, events):
        """A random merge of the per-key sequences: order across keys changes,
        each key's order (all Kafka promises) stays."""
        queues = {}
        for e in events:
            queues.setdefault((e.kind, e.key), []).append(e)
        keys = [k for k in queues]
        weights = [len(queues[k]) for k in keys]
        out, heads = [], {k: 0 for k in keys}
        while len(out) < len(events):
            k = self.rnd.choices(keys, weights)[0]
            if heads[k] < len(queues[k]):
                out.append(queues[k][heads[k]])
                heads[k] += 1
                weights[keys.index(k)] -= 1
        return out

    def _next(self):
        self._seq += 1
        self._t += 1000 + self.rnd.randrange(1000)
        return f"{self.run.prefix}-e{self._seq}", self._t

    def _header(self, msg, event_id, t):
        msg.header.event_id = event_id
        msg.header.occurred_at_ms = t
        msg.header.producer = "fault-suite"

    def _keep(self, ev):
        self._copyable.setdefault(ev.key, []).append(ev)
        return ev

    # opportunities
    def _opportunity(self, stale, unauthorized):
        pb, r = self.pb.opp, self.rnd
        eid, t = self._next()
        e = pb.OpportunityEvent()
        self._header(e, eid, t)
        f = {"kind": "opportunity", "event_id": eid, "t": t}
        live = list(self._opps.values())
        if not live or (len(live) < self._n["opps"] and r.random() < 0.2):
            oid = f"{self.run.prefix}-o{len(self._opps)}"
            o = self._opps[oid] = {"id": oid, "owner": r.choice(self.run.reps),
                                   "stage": r.choice(("01", "02", "03")),
                                   "amount": r.randrange(1, 10000) * 100, "open": True, "t": t}
            e.opportunity_id, e.actor_id = oid, o["owner"]
            c = e.created
            c.account.name = f"fault {self.run.prefix} buyer {r.randrange(8)}"
            c.owner_rep_id, c.stage_code, c.amount_minor = o["owner"], o["stage"], o["amount"]
            close, lines = self._close_date(t, 60), []
            if self.forecast:
                lines = self._opp_lines()
                # Some deals have no close date: planning takes the confirmed period's month.
                close = None if r.random() < 0.2 else self._close_date(t, r.randrange(5, 120))
            if close:
                c.expected_close_date = close
            self._set_lines(c.lines, lines)
            c.name = f"deal {oid}"
            f.update(opportunity_id=oid, type="created", owner=o["owner"], stage=o["stage"],
                     amount=o["amount"], close=close, lines=lines, account=c.account.name)
            return self._keep(Event("opportunity", oid, e.SerializeToString(), f))
        o = r.choice(live)
        e.opportunity_id, e.actor_id = o["id"], o["owner"]
        f["opportunity_id"] = o["id"]
        if r.random() < stale:
            # Older than what was applied: recorded, changes nothing.
            f["t"] = t = o["t"] - 1 - r.randrange(3600 * 1000)
            e.header.occurred_at_ms = t
            e.updated.amount_minor = 777
            f.update(type="updated", amount=777)
            self.stale_events += 1
            return self._keep(Event("opportunity", o["id"], e.SerializeToString(), f))
        x = r.random()
        if self.forecast and x < unauthorized and r.random() < 0.4:
            # 商机确认 by someone other than the owner (another rep, the team's
            # manager), or by no one: dead-lettered (not_owner, missing_actor).
            actor = r.choice([*(p for p in self.run.reps if p != o["owner"]),
                              self._team_manager(o["owner"]), None])
            if actor is None:
                e.ClearField("actor_id")
            else:
                e.actor_id = actor
            period = self._period()
            self._set_period(e.forecast_confirmed.period, period)
            f.update(type="confirmed", actor=actor, period=period, category=None)
            self.unauthorized_events += 1
            return Event("opportunity", o["id"], e.SerializeToString(), f)
        if x < unauthorized:
            # Not a superior of the owner: dead-lettered, alert fires once.
            actor = r.choice((self.run.outsider, self._other_team_manager(o["owner"])))
            e.actor_id = actor
            e.owner_changed.new_owner_rep_id = r.choice(self.run.reps)
            f.update(type="owner_changed", actor=actor,
                     new_owner=e.owner_changed.new_owner_rep_id)
            self.unauthorized_events += 1
            return Event("opportunity", o["id"], e.SerializeToString(), f)
        o["t"] = t  # the last applied event's time: rejected ones do not count
        if x < 0.15:
            actor = r.choice((self.run.region_manager, self._team_manager(o["owner"])))
            new = r.choice(self.run.reps)
            e.actor_id = actor
            e.owner_changed.new_owner_rep_id = new
            o["owner"] = new
            f.update(type="owner_changed", actor=actor, new_owner=new)
        elif self.forecast and x < 0.27:
            # 商机确认, also of a closed deal (it counts once reopened).
            period = self._period()
            category = r.choice((None, None, None, "commit", "best_case", "pipeline", "omitted",
                                 "closed"))
            self._set_period(e.forecast_confirmed.period, period)
            if category:
                e.forecast_confirmed.category = self._category(category)
            f.update(type="confirmed", actor=o["owner"], period=period, category=category)
        elif not o["open"]:
            stage = r.choice(("02", "03", "04"))
            e.reopened.stage_code = stage
            o["open"] = True
            f.update(type="reopened", stage=stage)
        elif x < 0.40:
            amount = r.randrange(1, 10000) * 100
            e.updated.amount_minor = amount
            f.update(type="updated", amount=amount)
            if self.forecast and r.random() < 0.3:
                f["close"] = e.updated.expected_close_date = self._close_date(t, r.randrange(1, 120))
            if self.forecast and r.random() < 0.2:
                e.updated.replace_lines = True
                f["lines"] = self._opp_lines()
                self._set_lines(e.updated.lines, f["lines"])
        elif x < 0.85:
            stage = r.choice(oracle.OPEN_STAGES)
            e.stage_changed.to_stage_code = stage
            f.update(type="stage_changed", stage=stage)
        elif x < 0.93:
            e.won.SetInParent()
            o["open"] = False
            f.update(type="won")
        else:
            e.lost.reason = pb.LOST_REASON_PRICE
            o["open"] = False
            f.update(type="lost")
        return self._keep(Event("opportunity", o["id"], e.SerializeToString(), f))

    # forecast: confirmations, lines, adjustments
    @staticmethod
    def _close_date(t, days):
        return (datetime.datetime.fromtimestamp(t / 1000, datetime.timezone.utc)
                + datetime.timedelta(days=days)).strftime("%Y-%m-%d")

    def _opp_lines(self):
        r = self.rnd
        return [(f"sku-{r.randrange(5)}", r.randrange(1, 40000)) for _ in range(r.randrange(0, 4))]

    @staticmethod
    def _set_lines(field, lines):
        for sku, qty_milli in lines:
            li = field.add()
            li.sku, li.quantity_milli, li.unit_price_minor = sku, qty_milli, 1000

    def _period(self):
        kind = self.rnd.choice(("month", "month", "quarter"))
        start = self.rnd.choice(self.run.months)
        return kind, start if kind == "month" else oracle.quarter_of(start)

    def _set_period(self, msg, period):
        kind, start = period
        year, month = int(start[:4]), int(start[5:7])
        msg.year = year
        if kind == "month":
            msg.kind, msg.number = self.pb.common.PERIOD_KIND_MONTH, month
        else:
            msg.kind, msg.number = self.pb.common.PERIOD_KIND_QUARTER, (month - 1) // 3 + 1

    def _category(self, name):
        return getattr(self.pb.common, f"FORECAST_CATEGORY_{name.upper()}")

    def _adjustment(self):
        """修订销售预测 on the opportunity topic, keyed by the node: mostly by
        the node's own manager, sometimes by one who may not (an outsider,
        another team's manager, a manager above the node; any one at a rep's
        node, which has no manager)."""
        r, run = self.rnd, self.run
        eid, t = self._next()
        authorized = r.random() < 0.85
        node = r.choice(sorted(run.org.manager) if authorized else sorted(run.org.nodes()))
        others = [u for u in (run.outsider, *run.team_managers, run.region_manager,
                              run.division_manager) if u != run.org.manager.get(node)]
        actor = run.org.manager[node] if authorized else r.choice(others)
        period = self._period()
        category = r.choice(oracle.ADJUSTABLE)
        amount = None if r.random() < 0.2 else r.randrange(0, 5000) * 100
        e = self.pb.opp.OpportunityEvent()
        self._header(e, eid, t)
        e.opportunity_id, e.actor_id = node, actor
        a = e.forecast_adjusted
        a.node_id, a.reason = node, "fault-suite adjustment"
        self._set_period(a.period, period)
        a.category = self._category(category)
        if amount is not None:
            a.amount_minor = amount
        f = {"kind": "adjustment", "event_id": eid, "t": t, "actor": actor, "node": node,
             "period": period, "category": category, "amount": amount}
        ev = Event("opportunity", node, e.SerializeToString(), f)
        return self._keep(ev) if authorized else ev

    def _team_of(self, rep):
        return self.run.org.parent[rep]

    def _team_manager(self, rep):
        return self.run.org.manager[self._team_of(rep)]

    def _other_team_manager(self, rep):
        mine = self._team_manager(rep)
        return next(m for m in self.run.team_managers if m != mine)

    # orders
    def _order(self, stale, unauthorized):
        pb, r = self.pb.order, self.rnd
        eid, t = self._next()
        e = pb.OrderEvent()
        self._header(e, eid, t)
        e.channel = pb.CHANNEL_DIRECT
        open_orders = [o for o in self._orders.values() if o["status"] == "booked"]
        if not open_orders or (len(self._orders) < self._n["orders"] and r.random() < 0.4):
            oid = f"{self.run.prefix}-s{len(self._orders)}"
            o = self._orders[oid] = {"id": oid, "rep": r.choice(self.run.reps), "booked_at": t,
                                     "account": f"fault {self.run.prefix} customer {r.randrange(6)}",
                                     "status": "booked", "t": t}
            status, lines = "booked", self._lines()
        else:
            o = r.choice(open_orders)
            if r.random() < stale:
                t = o["t"] - 1 - r.randrange(3600 * 1000)
                e.header.occurred_at_ms = t
                status, lines = "cancelled", []
                self.stale_events += 1
            else:
                o["t"] = t
                x = r.random()
                status = "booked" if x < 0.7 else "cancelled" if x < 0.85 else "returned"
                lines = self._lines() if status == "booked" else []
                o["status"] = status
        e.order_id, e.rep_id, e.account.name, e.booked_at_ms = o["id"], o["rep"], o["account"], \
            o["booked_at"]
        e.status = {"booked": pb.ORDER_STATUS_BOOKED, "cancelled": pb.ORDER_STATUS_CANCELLED,
                    "returned": pb.ORDER_STATUS_RETURNED}[status]
        for sku, qty, price in lines:
            li = e.lines.add()
            li.sku, li.quantity_milli, li.unit_price_minor = sku, qty * 1000, price
        f = {"kind": "order", "event_id": eid, "order_id": o["id"], "account": o["account"],
             "rep": o["rep"], "status": status, "t": t, "booked_at": o["booked_at"],
             "lines": lines}
        return self._keep(Event("order", o["id"], e.SerializeToString(), f))

    def _lines(self):
        r = self.rnd
        return [(f"sku-{r.randrange(5)}", r.randrange(1, 20), r.randrange(1, 500) * 100)
                for _ in range(r.randrange(1, 4))]

    # visits
    def _visit(self, stale, unauthorized):
        pb, r = self.pb.visit, self.rnd
        eid, t = self._next()
        e = pb.VisitEvent()
        self._header(e, eid, t)
        name = f"{self.visit_account_prefix}{r.randrange(self._n['accounts'])}"
        a = self._accts.setdefault(name, {"rep": r.choice(self.run.reps), "last": 0})
        visited = t
        if a["last"] and r.random() < stale:
            visited = a["last"] - 1 - r.randrange(86400 * 1000)  # entered late
            self.stale_events += 1
        a["last"] = max(a["last"], visited)
        e.account.name, e.rep_id, e.visited_at_ms = name, a["rep"], visited
        e.objective = pb.VISIT_OBJECTIVE_SELL
        dm = r.random() < 0.3
        c = e.contacts.add()
        c.name = "contact " + str(r.randrange(4))
        c.role = pb.BUYING_ROLE_DECISION_MAKER if dm else pb.BUYING_ROLE_INFLUENCER
        c.function = pb.BUYING_FUNCTION_ECONOMIC
        man = None
        if r.random() < 0.5:
            m, au, n = (r.random() < 0.5 for _ in range(3))
            e.man.money, e.man.authority, e.man.need = m, au, n
            man = ("M" if m else "m") + ("A" if au else "a") + ("N" if n else "n")
        e.follow_up.action = pb.FOLLOW_UP_ACTION_CONTINUE
        e.follow_up.interval = pb.REVISIT_INTERVAL_20_DAYS
        f = {"kind": "visit", "event_id": eid, "account": name, "visited_at": visited, "dm": dm,
             "man": man, "interval_days": 20}
        return self._keep(Event("visit", name, e.SerializeToString(), f))

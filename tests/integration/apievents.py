"""Events through the real workers for ka-api's figure tests: protobuf
classes generated from proto/ with protoc, private topics and consumer
groups, the workers as their own roles, and a wait until every event sent
is consumed and the forecast worker's queue is empty."""
import os
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from apilib import ROOT, dsn_as, psql

_out = tempfile.mkdtemp(prefix="ka-api-pb-")
_proto = os.path.join(ROOT, "proto")
subprocess.run(["protoc", f"-I{_proto}", f"--python_out={_out}",
                *[os.path.join("ka/v1", f) for f in os.listdir(os.path.join(_proto, "ka/v1"))
                  if f.endswith(".proto")]], check=True)
sys.path.insert(0, _out)
from ka.v1 import common_pb2, opportunity_pb2, order_pb2, visit_pb2  # noqa: E402,F401

ROLES = {"opportunity-worker": "ka_opportunity_worker", "visit-worker": "ka_visit_worker",
         "order-worker": "ka_order_worker", "forecast-worker": "ka_forecast_worker"}


class Bus:
    """Private topics, one producer, and the workers reading them."""

    def __init__(self, binaries):
        self.s = uuid.uuid4().hex[:10]
        self.brokers = os.environ.get("KA_KAFKA_BROKERS", "127.0.0.1:19092")
        names = ("opportunity", "visit", "order", "forecast", "planning", "deadletter", "alert")
        self.topic = {n: f"it.api-{n}.{self.s}" for n in names}
        admin = AdminClient({"bootstrap.servers": self.brokers})
        for fut in admin.create_topics([NewTopic(t, 3 if n in ("opportunity", "visit", "order")
                                                 else 1, 1)
                                        for n, t in self.topic.items()]).values():
            fut.result(30)
        self.producer = Producer({"bootstrap.servers": self.brokers, "enable.idempotence": True})
        self.sent = {"opportunity": 0, "visit": 0, "order": 0}
        self.groups = {}
        self.procs = []
        self.binaries = binaries  # worker name -> its binary
        self.seq = 0

    def start(self):
        t = self.topic
        common = {"KA_TOPIC_DEADLETTER": t["deadletter"], "KA_TOPIC_ALERT": t["alert"],
                  "KA_BATCH_MAX_MS": "10"}
        specs = {
            "opportunity-worker": {"KA_TOPIC_OPPORTUNITY": t["opportunity"]},
            "visit-worker": {"KA_TOPIC_VISIT": t["visit"]},
            "order-worker": {"KA_TOPIC_ORDER": t["order"], "KA_TOPIC_OPPORTUNITY": t["opportunity"]},
            "forecast-worker": {"KA_TOPIC_OPPORTUNITY": t["opportunity"],
                                "KA_TOPIC_FORECAST": t["forecast"],
                                "KA_TOPIC_PLANNING": t["planning"]},
        }
        for name, extra in specs.items():
            group = f"it-api-{name}-{self.s}"
            self.groups[name] = group
            env = dict(os.environ, **common, **extra, KA_CONSUMER_GROUP=group,
                       KA_PG_DSN=dsn_as(os.environ["KA_PG_DSN"], ROLES[name]))
            env.pop("KA_HTTP_PORT", None)
            path = self.binaries[name]
            self.procs.append(subprocess.Popen(
                [path], env=env, stdout=subprocess.DEVNULL,
                stderr=open(f"/tmp/ka-api-{name}-{self.s}.log", "w")))

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            p.wait(timeout=30)

    def _send(self, kind, key, msg):
        self.producer.produce(self.topic[kind], key=key.encode(), value=msg.SerializeToString())
        self.producer.flush(30)
        self.sent[kind] += 1

    def header(self, h, at_ms):
        self.seq += 1
        h.event_id = f"ev-{self.s}-{self.seq}"
        h.occurred_at_ms = at_ms
        h.producer = "api-test"
        return h.event_id

    def opp(self, opp_id, actor, at_ms, fill):
        """Sends an OpportunityEvent; fill(ev) sets its kind. Returns its id."""
        ev = opportunity_pb2.OpportunityEvent()
        eid = self.header(ev.header, at_ms)
        ev.opportunity_id = opp_id
        if actor:
            ev.actor_id = actor
        fill(ev)
        self._send("opportunity", opp_id, ev)
        return eid

    def order(self, fill, key):
        ev = order_pb2.OrderEvent()
        fill(ev)
        self._send("order", key, ev)

    def visit(self, fill, key):
        ev = visit_pb2.VisitEvent()
        fill(ev)
        self._send("visit", key, ev)

    def settle(self, timeout=120):
        """Every event sent consumed (committed offsets in PostgreSQL), the
        forecast worker's queue empty."""
        want = {"opportunity-worker": self.sent["opportunity"],
                "visit-worker": self.sent["visit"], "order-worker": self.sent["order"],
                "forecast-worker": self.sent["opportunity"]}
        end = time.time() + timeout
        while time.time() < end:
            done = all(int(psql(f"SELECT coalesce(sum(next_offset), 0) FROM consumer_offset "
                                f"WHERE consumer_group = '{self.groups[n]}'")[0][0]) == w
                       for n, w in want.items())
            if done and psql("SELECT count(*) FROM forecast_dirty")[0][0] == "0":
                return
            for p in self.procs:
                assert p.poll() is None, f"a worker exited {p.returncode}"
            time.sleep(0.2)
        raise AssertionError(f"events not consumed within {timeout} s: sent {want}")

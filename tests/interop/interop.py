"""Interop: an outside system using the official protobuf runtime and
confluent-kafka produces VisitEvents; the C probe worker consumes them through
common/ and publishes AlertEvents through its outbox; this side decodes them
and checks the CloudEvents binary-mode headers."""
import argparse
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def generate_python(proto_dir, out_dir):
    protos = [os.path.join("ka/v1", f) for f in os.listdir(os.path.join(proto_dir, "ka/v1"))
              if f.endswith(".proto")]
    subprocess.run(["protoc", f"-I{proto_dir}", f"--python_out={out_dir}", *protos],
                   check=True)
    sys.path.insert(0, out_dir)


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL: {what}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe-worker", required=True)
    ap.add_argument("--proto-dir", required=True)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="ka-interop-")
    generate_python(args.proto_dir, tmp)
    from ka.v1 import alert_pb2, common_pb2, visit_pb2  # noqa: E402

    brokers = os.environ.get("KA_KAFKA_BROKERS", "127.0.0.1:19092")
    suffix = uuid.uuid4().hex[:12]
    in_topic, echo_topic, dlq_topic = (f"interop.{n}.{suffix}" for n in ("visit", "echo", "dlq"))
    admin = AdminClient({"bootstrap.servers": brokers})
    for fut in admin.create_topics([NewTopic(t, 2, 1) for t in (in_topic, echo_topic, dlq_topic)]
                                   ).values():
        fut.result(30)

    group = f"interop-{suffix}"
    env = dict(os.environ, KA_TOPIC_VISIT=in_topic, PROBE_ECHO_TOPIC=echo_topic,
               KA_TOPIC_DEADLETTER=dlq_topic, KA_CONSUMER_GROUP=group,
               KA_BATCH_MAX_MS="10")
    worker = subprocess.Popen([args.probe_worker], env=env)
    checks = Checks()
    try:
        producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
        sent = []
        for i in range(5):
            ev = visit_pb2.VisitEvent()
            ev.header.event_id = f"py-{suffix}-{i}"
            ev.header.occurred_at_ms = int(time.time() * 1000) - 5000
            ev.header.producer = "crm-python"
            ev.account.name = "Interop Trading Co."
            ev.rep_id = "rep-py"
            producer.produce(in_topic, key=b"Interop Trading Co.", value=ev.SerializeToString(),
                             headers=[("origin", b"python")])
            sent.append(ev.header.event_id)
        producer.flush(30)

        consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"interop-reader-{suffix}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([echo_topic])
        got = {}
        deadline = time.time() + 60
        while len(got) < len(sent) and time.time() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            headers = {k: v.decode() for k, v in (msg.headers() or [])}
            alert = alert_pb2.AlertEvent()
            alert.ParseFromString(msg.value())
            got[alert.cause_event_ids[0]] = (alert, headers)
        consumer.close()

        checks.check(sorted(got) == sorted(sent), f"an echo for every event: {sorted(got)}")
        for event_id, (alert, h) in got.items():
            checks.check(h.get("ce_specversion") == "1.0", f"ce_specversion {h}")
            checks.check(h.get("ce_id") == f"probe:{group}:{event_id}", f"ce_id {h}")
            checks.check(h.get("ce_type") == "ka.v1.AlertEvent", f"ce_type {h}")
            checks.check(h.get("ce_source") == "urn:ka:probe-worker", f"ce_source {h}")
            checks.check(h.get("content-type") == "application/x-protobuf", f"content-type {h}")
            try:
                when = datetime.datetime.fromisoformat(h.get("ce_time", "").replace("Z", "+00:00"))
                checks.check(abs(time.time() - when.timestamp()) < 600, f"ce_time recent {h}")
            except ValueError:
                checks.check(False, f"ce_time is RFC 3339: {h}")
            checks.check(alert.alert_id == f"probe:{group}:{event_id}",
                         f"alert_id {alert.alert_id}")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            rc = worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            rc = None
        checks.check(rc == 0, f"worker drains and exits 0 on SIGTERM (exit {rc})")
    print(f"{checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())

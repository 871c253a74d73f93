"""Interop of the content modes (issue 20): one stream of events, as an
outside system on the bus would write it in each mode, played through the
real opportunity, visit, order and forecast workers; every mode must end in
the very state, alerts, dead letters and forecast events of the bare
protobuf stream.

The stream is the fault suite's (tests/fault/faultlib.py: deals with lines
and close dates, owner changes by people who may not, 商机确认 and managers'
adjustments, orders, visits, duplicates, stale events, a reordering across
keys), built with the official protobuf runtime, then encoded per mode
without any of our C code:

  protobuf     SerializeToString, no content-type
  json         google.protobuf.json_format: lowerCamelCase names, original
               names, enums as numbers with every default written out, and
               one of four without a content-type (told by its first `{`)
  cloudevents  a structured CloudEvent (specversion 1.0, id, source, type,
               time per docs/domain-choices.md) whose data is json_format's
  confluent    Confluent's wire format from its published spec: magic byte 0,
               the schema id as 4 bytes big-endian, the message-index array
               as zig-zag varints (count then indexes; [0] as the single
               byte 0, or written out as count 1, index 0), the message

Each mode runs as a run of its own (faultlib.Run: own topics, consumer
groups, org subtree and id prefix on the shared stack), one after the other
(the forecast worker takes any run's marks). Each run is checked against the
oracle, then its snapshot (every stored row of the run's entities, the alert
state, dead letters, and the published alerts and latest forecast and
planning events, with the run's prefix taken out) must equal the protobuf
run's. Last, a negative control: the JSON stream again with one order line's
quantityMilli dropped (in the order's last event) must differ (else the comparison could not see a wrong
decode); --drop-field NAME drops that member instead, and the test must then
fail."""
import datetime
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fault"))

from confluent_kafka import Producer  # noqa: E402
from google.protobuf import descriptor_pb2, json_format  # noqa: E402

import faultlib  # noqa: E402
from faultlib import WORKERS, Env, Run, Scenario, pg_array, seed_of  # noqa: E402

MODES = ("protobuf", "json", "cloudevents", "confluent")
N_EVENTS = 360
# The member the negative control drops from the first JSON event having it.
CONTROL_FIELD = "quantityMilli"
# Alerts raised by periodic scans on the worker's clock (and the first scan
# runs at start, over whatever part of the stream has arrived): not a
# function of the events, so left out. slipping_deal is the forecast scan's
# (a close date passed on the wall clock: streams dated near the month's start
# have such deals in the month's second week).
SCAN_ALERTS = ("forecast_gap", "decision_maker_gap", "visit_overdue", "stalled_opportunity",
               "tier_changed", "churn_risk", "price_dumping", "channel_diversion",
               "slipping_deal")


def message_class(pb, kind):
    return {"opportunity": pb.opp.OpportunityEvent, "visit": pb.visit.VisitEvent,
            "order": pb.order.OrderEvent}[kind]


# -- Confluent's wire format, from its spec (docs.confluent.io, "Wire format") --

def zigzag_varint(n):
    """Kafka's ByteUtils.writeVarint: zig-zag, then 7 bits a byte, low first."""
    v = ((n << 1) ^ (n >> 31)) & 0xFFFFFFFF
    out = bytearray()
    while v & ~0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def message_indexes(desc):
    """The index path of a message type in its .proto file, from the file's
    descriptor (top-level messages in declaration order; nested ones below)."""
    path, d = [], desc
    while d.containing_type is not None:
        path.append(list(d.containing_type.nested_types).index(d))
        d = d.containing_type
    fdp = descriptor_pb2.FileDescriptorProto.FromString(desc.file.serialized_pb)
    path.append([m.name for m in fdp.message_type].index(d.name))
    return path[::-1]


def confluent_frame(msg, schema_id, shortcut):
    idx = message_indexes(msg.DESCRIPTOR)
    if idx == [0] and shortcut:
        array = b"\x00"
    else:
        array = zigzag_varint(len(idx)) + b"".join(zigzag_varint(i) for i in idx)
    return b"\x00" + struct.pack(">I", schema_id) + array + msg.SerializeToString()


# -- the JSON mapping, by the official runtime ------------------------------------

def to_json_dict(msg, variant):
    if variant == 1:
        return json_format.MessageToDict(msg, preserving_proto_field_name=True)
    if variant == 2:
        return json_format.MessageToDict(msg, use_integers_for_enums=True,
                                         including_default_value_fields=True)
    return json_format.MessageToDict(msg)


def rfc3339_ms(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Dropper:
    """Drops one member (by its JSON name or its proto name, at any depth)
    from one event: the first that has it, or the event `only` names."""

    def __init__(self, name, only=None):
        self.names = set()
        if name:
            snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
            self.names = {name, snake}
        self.only, self.dropped = only, None

    def __call__(self, d, event_id):
        if not self.names or self.dropped or (self.only and event_id != self.only):
            return d

        def walk(v):
            if isinstance(v, dict):
                for n in self.names & set(v):
                    del v[n]
                    return True
                return any(walk(x) for x in v.values())
            if isinstance(v, list):
                return any(walk(x) for x in v)
            return False

        if walk(d):
            self.dropped = event_id
        return d


def control_target(sc):
    """The event the negative control damages: the last applied event (the
    latest in event time) of an order booked at the end (else of any order),
    whose lines make the order's final lines and total; a line without its quantity cannot leave
    them as they were."""
    last = {}
    for f in sc.log:
        if f["kind"] == "order" and (f["order_id"] not in last or
                                     f["t"] > last[f["order_id"]]["t"]):
            last[f["order_id"]] = f
    def seq(e):
        return int(e.rsplit("-e", 1)[1])
    booked = sorted((f["event_id"] for f in last.values() if f["status"] == "booked"), key=seq)
    return booked[-1] if booked else None


def scenario(run, seed):
    return Scenario(run, seed, n_events=N_EVENTS, duplicates=0.1, reorder=True, stale=0.05,
                    unauthorized=0.08, forecast=True)


def seed_with_booked_order(env, seed):
    """The first seed from `seed` on whose stream an order ends booked, so the
    negative control has lines to damage (some streams cancel every order)."""
    probe = Run.offline(env, "probe")  # the stream depends on the seed alone
    while control_target(scenario(probe, seed)) is None:
        print(f"seed {seed} leaves no order booked, for the negative control: seed {seed + 1}",
              flush=True)
        seed += 1
    return seed


def encode(pb, events, mode, dropper):
    """(kind, key, value, headers) per event in `mode`."""
    out = []
    sources = ("urn:ka:fault-suite", "fault-suite", "//crm.example.com/fault-suite")
    for i, ev in enumerate(events):
        msg = message_class(pb, ev.kind)()
        msg.ParseFromString(ev.value)
        eid = msg.header.event_id
        if mode == "protobuf":
            value, headers = ev.value, []
        elif mode == "json":
            variant = i % 4
            value = json.dumps(dropper(to_json_dict(msg, variant), eid),
                               indent=2 if variant == 1 else None).encode()
            # The fourth without a content-type: detected by its first byte.
            headers = [] if variant == 3 else [("content-type", b"application/json")]
        elif mode == "cloudevents":
            ce = {"specversion": "1.0", "id": eid, "source": sources[i % 3],
                  "type": msg.DESCRIPTOR.full_name, "datacontenttype": "application/json",
                  "data": dropper(to_json_dict(msg, i % 3), eid)}
            if i % 5:  # time is optional
                ce["time"] = rfc3339_ms(msg.header.occurred_at_ms)
            value = json.dumps(ce).encode()
            headers = [("content-type", b"application/cloudevents+json")]
        else:
            value, headers = confluent_frame(msg, 100 + i % 7, shortcut=i % 2 == 0), []
        out.append((ev.kind, ev.key, value, headers))
    return out


def produce(run, encoded):
    p = Producer({"bootstrap.servers": run.env.brokers, "enable.idempotence": True,
                  "linger.ms": 5})
    for kind, key, value, headers in encoded:
        while True:
            try:
                p.produce(run.topics[kind], key=key.encode(), value=value, headers=headers)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(60)
    assert left == 0, f"{left} events not confirmed by Kafka"


# -- the snapshot ------------------------------------------------------------------

def snapshot(run, mode):
    """Everything the run's events wrote and published, with the run's
    prefix replaced by `P`, so two runs compare equal when they did the same.
    Left out: wall-clock columns (created, updated, sent, transition times),
    revisions and how many forecast events a debounce merged."""
    pb = faultlib.proto(run.env.proto_dir)
    p = run.prefix
    run_nodes = set(run.org.nodes())
    nodes = pg_array(sorted(run_nodes))
    acct = f"name:fault {p}"
    ms = "(extract(epoch FROM {}) * 1000)::bigint"
    q = {
        "opportunities": f"""
SELECT o.id, a.canonical_key, o.owner_rep_id, o.business_unit_id, o.definition_id, o.stage_code,
       o.amount_minor, o.win_probability_bp, o.weighted_amount_minor, o.expected_close_date,
       o.sales_mode, o.competitors, o.relationship_degree, o.impact, o.status, o.lost_reason,
       {ms.format('o.closed_at')}, {ms.format('o.stage_entered_at')}, o.assess_exists,
       o.assess_compete, o.assess_win, o.assess_worth, o.assessment_score, o.high_value,
       {ms.format('o.assessed_at')}, o.version, {ms.format('o.last_event_at')}, o.last_event_id
  FROM opportunity o JOIN account a ON a.id = o.account_id WHERE starts_with(o.id, :'p')""",
        "opportunity lines": """
SELECT opportunity_id, line_no, sku, requirement, quantity, unit_price_minor, amount_minor
  FROM opportunity_line WHERE starts_with(opportunity_id, :'p')""",
        "funnel": """
SELECT node_id, definition_id, stage_code, open_count, amount_minor, weighted_amount_minor
  FROM funnel_state WHERE node_id = ANY(:'n'::text[])
   AND (open_count, amount_minor, weighted_amount_minor) <> (0, 0, 0)""",
        "visits": f"""
SELECT v.event_id, a.canonical_key, v.rep_id, {ms.format('v.visited_at')}, v.objective,
       v.opportunity_id, v.satisfaction, v.man_money, v.man_authority, v.man_need, v.man_class,
       v.follow_up_action, v.follow_up_interval_days, v.follow_up_date,
       {ms.format('v.next_due_at')}, v.notes, {ms.format('v.plan_due_at')}, v.on_time,
       v.superseded,
       (SELECT string_agg(concat_ws('/', k.name, c.buying_role, c.buying_function), ','
                          ORDER BY k.name, c.buying_role)
          FROM visit_contact c JOIN contact k ON k.id = c.contact_id WHERE c.visit_id = v.id)
  FROM visit v JOIN account a ON a.id = v.account_id WHERE starts_with(v.event_id, :'p')""",
        "accounts": f"""
SELECT canonical_key, display_name, man_class, {ms.format('man_class_at')},
       {ms.format('last_activity_at')}, {ms.format('last_visit_at')},
       {ms.format('last_decision_maker_visit_at')}
  FROM account WHERE starts_with(canonical_key, :'a')""",
        "orders": f"""
SELECT o.id, a.canonical_key, o.rep_id, o.opportunity_id, o.channel, o.distributor_id,
       o.ship_to_region, o.status, {ms.format('o.booked_at')}, {ms.format('o.cancelled_at')},
       {ms.format('o.returned_at')}, o.total_amount_minor, o.booked_event_id,
       {ms.format('o.last_event_at')}, o.last_event_id
  FROM sales_order o JOIN account a ON a.id = o.account_id WHERE starts_with(o.id, :'p')""",
        "order lines": """
SELECT order_id, line_no, sku, quantity, unit_price_minor, amount_minor
  FROM sales_order_line WHERE starts_with(order_id, :'p')""",
        "actuals": """
SELECT a.canonical_key, x.sku, x.node_id, x.period_month, x.amount_minor, x.quantity
  FROM actual x JOIN account a ON a.id = x.account_id WHERE x.node_id = ANY(:'n'::text[])
   AND (x.amount_minor <> 0 OR x.quantity <> 0)""",
        "actual rollup": """
SELECT node_id, period_month, amount_minor FROM actual_rollup WHERE node_id = ANY(:'n'::text[])
   AND amount_minor <> 0""",
        "forecast": """
SELECT node_id, period_kind, period_start, raw_closed_minor, raw_commit_minor,
       raw_best_case_minor, raw_pipeline_minor, raw_weighted_pipeline_minor, adj_closed_minor,
       adj_commit_minor, adj_best_case_minor, adj_pipeline_minor, adj_weighted_pipeline_minor,
       quota_minor, raw_coverage_bp, adj_coverage_bp, raw_gap_minor, adj_gap_minor
  FROM forecast WHERE node_id = ANY(:'n'::text[])
   AND (quota_minor IS NOT NULL OR 0 <> ANY(ARRAY[raw_closed_minor, raw_commit_minor,
        raw_best_case_minor, raw_pipeline_minor, raw_weighted_pipeline_minor, adj_closed_minor,
        adj_commit_minor, adj_best_case_minor, adj_pipeline_minor,
        adj_weighted_pipeline_minor]))""",
        "planning feed": """
SELECT sku, period_month, division_node_id, weighted_quantity, committed_quantity
  FROM planning_feed WHERE division_node_id = :'d'
   AND (weighted_quantity, committed_quantity) <> (0, 0)""",
        "forecast adjustments": """
SELECT node_id, period_kind, period_start, category, adjusted_minor, reason,
       adjusted_by, event_id FROM forecast_adjustment WHERE node_id = ANY(:'n'::text[])""",
        "alert state": f"""
SELECT type, severity, status, subject_kind, subject_id, summary, details,
       {ms.format('starts_at')}, {ms.format('ends_at')}, cause_event_ids
  FROM alert_state WHERE (starts_with(subject_id, :'p') OR subject_id = ANY(:'n'::text[]))
   AND type <> ALL(:'scan'::text[])""",
    }
    snap = {}
    for what, sql in q.items():
        snap[what] = sorted(tuple(r) for r in run.env.sql(sql, p=p, n=nodes, a=acct,
                                                          d=run.division,
                                                          scan=pg_array(SCAN_ALERTS)))
    # Dead letters: the reason and detail, by the worker; the mode is the run's.
    kind_of = {g: k for k, g in run.groups.items()}
    rows = run.env.sql("SELECT consumer_group, reason, detail, coalesce(json_path, ''), "
                       "coalesce(content_mode, '') FROM dead_letter "
                       "WHERE consumer_group = ANY(:'g'::text[])",
                       g=pg_array(sorted(run.groups.values())))
    snap["dead letters"] = sorted((kind_of[g], r, d, jp) for g, r, d, jp, _ in rows)
    snap["dead-letter modes"] = sorted({m for *_, m in rows})
    # What was published: alerts (one per ce_id), each forecast and planning
    # key's latest event (the debounce may merge changes differently).
    alerts = {}
    for m in run.read_topic(run.topics["alert"]):
        h = dict(m.headers() or [])
        a = pb.alert.AlertEvent()
        a.ParseFromString(m.value())
        kind = pb.alert.AlertType.Name(a.type).removeprefix("ALERT_TYPE_").lower()
        if kind in SCAN_ALERTS or not (a.subject_id.startswith(p) or a.subject_id in run_nodes):
            continue
        # The fingerprint hashes the subject, which holds the run's prefix.
        for f in ("header", "alert_id", "fingerprint"):
            a.ClearField(f)
        alerts[h.get("ce_id", b"").decode()] = json_format.MessageToJson(a, sort_keys=True)
    snap["published alerts"] = sorted(alerts.values())
    for which, cls in (("forecast", pb.forecast.ForecastEvent),
                       ("planning", pb.planning.PlanningEvent)):
        committed = {r[0]: int(r[1]) for r in run.env.sql(
            "SELECT event_id, id FROM outbox WHERE topic = :'t'", t=run.topics[which])}
        latest = {}
        for m in run.read_topic(run.topics[which]):
            ce_id = dict(m.headers() or []).get("ce_id", b"").decode()
            e = cls()
            e.ParseFromString(m.value())
            if (e.node_id if which == "forecast" else e.division_id) not in run_nodes:
                continue  # another run's, or the org's first full round
            for f in ("header", "revision", "computed_at_ms"):
                if f in cls.DESCRIPTOR.fields_by_name:
                    e.ClearField(f)
            order = committed.get(ce_id, -1)
            if m.key() not in latest or order > latest[m.key()][0]:
                latest[m.key()] = (order, json_format.MessageToJson(e, sort_keys=True))
        # A key whose latest event says zero was moved out (the oracle's rule).
        snap[f"published {which} (latest per key)"] = sorted(
            v for _, v in latest.values() if not zero(v))
    # Dead letters as published: the source bytes, in the run's mode.
    dl = []
    for m in run.read_topic(run.topics["deadletter"]):
        h = {k: v.decode(errors="replace") for k, v in (m.headers() or [])}
        dl.append((h.get("ka_service"), h.get("ka_reason"), h.get("ka_dlq_mode"),
                   source_event_id(pb, m.value())))
    snap["published dead letters"] = sorted(set(dl))

    def norm(v):
        if isinstance(v, str):
            return v.replace(p, "P").replace(run.short, "S")
        if isinstance(v, (list, tuple)):
            return type(v)(norm(x) for x in v)
        return v

    return {k: norm(v) for k, v in snap.items()}


def zero(text):
    """A forecast or planning event (as JSON) with no figure but zeros."""
    def figures(v):
        if isinstance(v, dict):
            return [x for k, y in v.items() if k not in ("period", "month") for x in figures(y)]
        return [v] if isinstance(v, (int, float)) or (isinstance(v, str) and v.lstrip("-").replace(
            ".", "").isdigit()) else []
    d = json.loads(text)
    return all(float(x) == 0 for x in figures({k: v for k, v in d.items()
                                                if k not in ("nodeId", "divisionId", "sku")}))


def source_event_id(pb, value):
    """The event id of a dead letter's source bytes, whatever their mode."""
    if value[:1] == b"{":
        d = json.loads(value)
        if "specversion" in d:
            return d["id"]
        h = d.get("header", {})
        return h.get("eventId", h.get("event_id"))
    if value[:1] == b"\x00":
        n = 6 if value[5:6] == b"\x00" else 7  # [0], or count 1 then index 0
        value = value[n:]
    e = pb.opp.OpportunityEvent()  # the header is field 1 of every input type
    e.ParseFromString(value)
    return e.header.event_id


def expected_mode(mode, snap):
    """In the run's own mode: every stored and published dead letter."""
    stored = snap["dead-letter modes"]
    published = sorted({m for _, _, m, _ in snap["published dead letters"]})
    return [f"dead letters stored with modes {stored}, published with {published}; "
            f"the run's mode is {mode}"] if (stored, published) != ([mode], [mode]) else []


def diff(base, got):
    problems = []
    for what in base:
        b, g = base[what], got[what]
        if what == "dead-letter modes":
            continue
        if what == "published dead letters":
            b = [x[:2] + x[3:] for x in b]
            g = [x[:2] + x[3:] for x in g]
        if b != g:
            only_b = [x for x in b if x not in g]
            only_g = [x for x in g if x not in b]
            problems.append(f"{what}: protobuf run {len(b)}, this run {len(g)}\n"
                            f"    only in protobuf: {only_b[:4]}\n    only here:        "
                            f"{only_g[:4]}")
    return problems


def play(env, seed, mode, drop_field, control=False):
    t0 = time.monotonic()
    run = Run(env, f"interop-{mode}")
    problems = []
    try:
        sc = scenario(run, seed)
        pb = faultlib.proto(env.proto_dir)
        dropper = Dropper(drop_field, control_target(sc) if control else None)
        encoded = encode(pb, sc.events, mode, dropper)
        if dropper.dropped:
            print(f"{mode}: negative control: {drop_field!r} dropped from {dropper.dropped}",
                  flush=True)
        workers = [run.worker(k, extra_env={"KA_BATCH_MAX_EVENTS": "50"}).start()
                   for k in WORKERS]
        produce(run, encoded)
        run.wait_caught_up(WORKERS)
        for w in workers:
            w.stop()
        try:
            run.compare(sc)
        except AssertionError as e:
            problems.append(f"against the oracle: {e}")
        if mode == "protobuf":
            run.check_downstream(sc)  # reads dead letters as protobuf
        snap = snapshot(run, mode)
        problems += expected_mode(mode, snap)
        if mode == "protobuf":
            print("snapshot: " + ", ".join(f"{k} {len(v)}" for k, v in snap.items()), flush=True)
        print(f"{mode}: {len(sc.events)} events ({sc.duplicates} duplicates, "
              f"{sc.stale_events} stale, {sc.unauthorized_events} unauthorized), "
              f"{sum(len(v) for v in snap.values())} snapshot rows, "
              f"{time.monotonic() - t0:.1f} s", flush=True)
        return snap, problems
    except BaseException:
        problems.append("raised")
        raise
    finally:
        # A failed run keeps its topics and logs for a look.
        run.close(passed=control or not problems)


def main():
    ap = Env.parser(__doc__)
    ap.add_argument("--drop-field", default=None,
                    help="negative control: drop this JSON member from the first JSON event "
                         "that has it (the test must fail)")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--no-control", action="store_true",
                    help="skip the negative control (a JSON run with one member dropped, "
                         "which must differ)")
    args = ap.parse_args()
    env = Env.from_environ(args)
    seed = seed_of(args)
    if not args.drop_field and not args.no_control:
        seed = seed_with_booked_order(env, seed)
    modes = [m for m in args.modes.split(",") if m]
    if modes[0] != "protobuf":
        modes.insert(0, "protobuf")
    base, problems = play(env, seed, "protobuf", args.drop_field)
    failed = [f"protobuf: {p}" for p in problems]
    for mode in modes[1:]:
        snap, problems = play(env, seed, mode, args.drop_field)
        problems += diff(base, snap)
        failed += [f"{mode}: {p}" for p in problems]
        print(f"{mode}: {'differs' if problems else 'same as protobuf'} "
              f"({len(problems)} problems)", flush=True)
        for p in problems:
            print(f"  {p}", flush=True)
    if not args.drop_field and not args.no_control:
        # The negative control: one order line's quantity dropped from the
        # JSON stream must show, else the comparison could not see a wrong
        # decode.
        snap, problems = play(env, seed, "json", CONTROL_FIELD, control=True)
        problems += diff(base, snap)
        print(f"negative control (json without one {CONTROL_FIELD}): {len(problems)} problems "
              f"found, as it must", flush=True)
        if not problems:
            failed.append(f"negative control: dropping one {CONTROL_FIELD} changed nothing")
    for f in failed:
        print(f"FAIL: {f}", flush=True)
    print(f"{len(modes)} modes, {len(failed)} problems", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""A bad-input corpus played against the running opportunity, visit, order
and forecast workers: truncated protobuf, another topic's message type, huge
repeated fields, invalid UTF-8, extreme numbers, unknown enum values,
SQL-looking ids, NUL bytes inside strings, a missing header, an empty
payload; managers' adjustments that only the forecast worker can judge (by
one who is not the node's manager: another team's, or the manager of a node
above it; of the omitted category) or that the opportunity worker refuses on
its own (a 13th month, no reason); and forecast confirmations of an existing
deal by someone other than its owner, or by no one. Every
one must be dead-lettered once, by the worker that judges it, with its
reason (the dead-letter topic's ka_dlq_reason and ka_service headers,
matched to the input by its source position, and the dead_letter table),
nothing of it may reach the state tables, and each worker must stay
alive and apply the valid events sent afterwards: among them one whose
account name looks like SQL (stored verbatim) and one whose event id is a
bad event's id cut at its NUL (applied, not taken for a duplicate)."""
import sys
import time

from confluent_kafka import Producer

from faultlib import INPUT, SERVICE, WORKERS, Env, Run, proto, report

INT64_MAX, INT64_MIN = 2**63 - 1, -2**63
SQL_ID = "x');DROP TABLE opportunity;--"
BAD_UTF8 = b"\xff\xfe\xc0\xaf"  # not UTF-8: invalid bytes and an overlong '/'


class Corpus:
    """Valid events of this run (current times, the run's reps) and the bad
    variants made from them: (the worker that must dead-letter it, name,
    bytes, expected reason); it goes to that worker's input topic."""

    def __init__(self, run):
        self.run, self.pb = run, proto(run.env.proto_dir)
        self.now = int(time.time() * 1000)
        self.p = run.prefix
        self.cases = []
        self.n = 0

    def _id(self, tag):
        self.n += 1
        return f"{self.p}-{tag}{self.n}"

    def _header(self, msg, event_id=None):
        msg.header.event_id = event_id or self._id("e")
        msg.header.occurred_at_ms = self.now - 1000
        msg.header.producer = "fault-suite"

    def opp(self, event_id=None, opp_id=None, account=None):
        e = self.pb.opp.OpportunityEvent()
        self._header(e, event_id)
        e.opportunity_id = opp_id or self._id("o")
        e.actor_id = self.run.reps[0]
        c = e.created
        c.account.name = account or f"bad input {self.p} buyer"
        c.owner_rep_id, c.stage_code, c.amount_minor = self.run.reps[0], "01", 1_000_000
        c.expected_close_date = time.strftime("%Y-%m-%d", time.gmtime(self.now / 1000 + 60 * 86400))
        c.name = "deal"
        return e

    def visit(self, event_id=None, account=None):
        pb = self.pb.visit
        e = pb.VisitEvent()
        self._header(e, event_id)
        e.account.name = account or f"bad input {self.p} visited"
        e.rep_id, e.visited_at_ms = self.run.reps[1], self.now - 3600 * 1000
        e.objective = pb.VISIT_OBJECTIVE_SELL
        c = e.contacts.add()
        c.name, c.role = "contact", pb.BUYING_ROLE_INFLUENCER
        e.follow_up.action = pb.FOLLOW_UP_ACTION_CONTINUE
        e.follow_up.interval = pb.REVISIT_INTERVAL_20_DAYS
        return e

    def order(self, event_id=None, account=None):
        pb = self.pb.order
        e = pb.OrderEvent()
        self._header(e, event_id)
        e.order_id, e.rep_id = self._id("s"), self.run.reps[2]
        e.account.name = account or f"bad input {self.p} customer"
        e.booked_at_ms, e.status, e.channel = self.now - 7200 * 1000, pb.ORDER_STATUS_BOOKED, \
            pb.CHANNEL_DIRECT
        li = e.lines.add()
        li.sku, li.quantity_milli, li.unit_price_minor = "sku-1", 2000, 15000
        return e

    def adjustment(self, actor, category):
        e = self.pb.opp.OpportunityEvent()
        self._header(e)
        node = self.run.teams[0]
        e.opportunity_id, e.actor_id = node, actor
        a = e.forecast_adjusted
        a.node_id, a.reason, a.amount_minor = node, "bad input", 100
        a.period.kind, a.period.year, a.period.number = self.pb.common.PERIOD_KIND_MONTH, \
            time.gmtime(self.now / 1000).tm_year, 1
        a.category = category
        return e

    def confirmation(self, actor):
        """商机确认 of the deal self.confirm_target (created, owned by rep 0,
        before the corpus is sent) by `actor` (None: no actor)."""
        e = self.pb.opp.OpportunityEvent()
        self._header(e)
        e.opportunity_id = self.confirm_target
        if actor:
            e.actor_id = actor
        c = e.forecast_confirmed
        c.period.kind, c.period.year, c.period.number = self.pb.common.PERIOD_KIND_MONTH, \
            time.gmtime(self.now / 1000).tm_year, time.gmtime(self.now / 1000).tm_mon
        c.category = self.pb.common.FORECAST_CATEGORY_COMMIT
        return e

    def add(self, kind, name, value, reason):
        self.cases.append((kind, name, value, reason))

    @staticmethod
    def bad_utf8(msg, set_placeholder):
        """msg serialized with BAD_UTF8 where set_placeholder put a marker
        of the same length (the runtime refuses to encode invalid UTF-8)."""
        marker = "\x01\x02\x03\x04"
        set_placeholder(marker)
        raw = msg.SerializeToString()
        assert raw.count(marker.encode()) == 1
        return raw.replace(marker.encode(), BAD_UTF8)

    def build(self):
        pb = self.pb
        # opportunity topic
        raw = self.opp().SerializeToString()
        self.add("opportunity", "truncated", raw[:-7], "decode_failed")
        self.add("opportunity", "empty payload", b"", "decode_failed")
        # a VisitEvent read as an opportunity: its follow_up (field 10) is
        # parsed as OpportunityCreated, whose field 1 (a message) then comes
        # with the varint wire type of FollowUpPlan.action
        self.add("opportunity", "a VisitEvent", self.visit().SerializeToString(), "decode_failed")
        e = self.opp()
        e.created.amount_minor = INT64_MAX
        self.add("opportunity", "amount int64 max", e.SerializeToString(), "amount_out_of_range")
        e = self.opp()
        e.header.occurred_at_ms = INT64_MAX
        self.add("opportunity", "time int64 max", e.SerializeToString(), "time_out_of_range")
        e = self.opp()
        e.lost.reason = 99
        self.add("opportunity", "unknown lost reason", e.SerializeToString(),
                 "unknown_enum_value")
        e = self.opp()
        e.created.competitors.extend(f"competitor {i}" for i in range(5000))
        self.add("opportunity", "5000 competitors", e.SerializeToString(), "list_too_long")
        e = self.opp(opp_id=SQL_ID)
        self.add("opportunity", "SQL-looking id", e.SerializeToString(), "invalid_id")
        e = self.opp()
        self.add("opportunity", "name not UTF-8",
                 self.bad_utf8(e, lambda m: setattr(e.created, "name", m)), "invalid_utf8")
        self.cut_id = f"{self.p}-cut"
        e = self.opp(event_id=self.cut_id + "\x00zz")
        self.add("opportunity", "NUL in event id", e.SerializeToString(), "nul_in_string")
        e = self.opp()
        e.ClearField("header")
        self.add("opportunity", "no header", e.SerializeToString(), "missing_field")
        # managers' adjustments, on the opportunity topic
        commit = self.pb.common.FORECAST_CATEGORY_COMMIT
        e = self.adjustment(self.run.team_managers[0], commit)
        e.forecast_adjusted.period.number = 13
        self.add("opportunity", "adjustment of month 13", e.SerializeToString(),
                 "time_out_of_range")
        e = self.adjustment(self.run.team_managers[0], commit)
        e.forecast_adjusted.ClearField("reason")
        self.add("opportunity", "adjustment without a reason", e.SerializeToString(),
                 "missing_field")
        e = self.adjustment(self.run.team_managers[1], commit)  # the other team's manager
        self.add("forecast", "adjustment by a manager of another team", e.SerializeToString(),
                 "unauthorized_adjustment")
        e = self.adjustment(self.run.region_manager, commit)  # manages a node above the team
        self.add("forecast", "adjustment by the manager of the team's region",
                 e.SerializeToString(), "unauthorized_adjustment")
        e = self.adjustment(self.run.team_managers[0], self.pb.common.FORECAST_CATEGORY_OMITTED)
        self.add("forecast", "adjustment of the omitted category", e.SerializeToString(),
                 "unknown_enum_value")
        # forecast confirmations of a deal owned by rep 0
        self.confirm_target = self._id("oconf")
        e = self.confirmation(self.run.reps[1])
        self.add("opportunity", "confirmation by another rep", e.SerializeToString(), "not_owner")
        e = self.confirmation(self.run.team_managers[0])
        self.add("opportunity", "confirmation by the owner's manager", e.SerializeToString(),
                 "not_owner")
        e = self.confirmation(None)
        self.add("opportunity", "confirmation without an actor", e.SerializeToString(),
                 "missing_actor")
        # visit topic
        raw = self.visit().SerializeToString()
        self.add("visit", "truncated", raw[:-5], "decode_failed")
        # an OrderEvent read as a visit: order_id (field 2, "f...-s.") parsed
        # as the AccountRef message is garbage wire data
        self.add("visit", "an OrderEvent", self.order().SerializeToString(), "decode_failed")
        e = self.visit()
        for i in range(5000):
            e.contacts.add().name = f"c{i}"
        self.add("visit", "5000 contacts", e.SerializeToString(), "list_too_long")
        e = self.visit()
        self.add("visit", "notes not UTF-8", self.bad_utf8(e, lambda m: setattr(e, "notes", m)),
                 "invalid_utf8")
        e = self.visit()
        e.visited_at_ms = INT64_MIN
        self.add("visit", "visited int64 min", e.SerializeToString(), "time_out_of_range")
        e = self.visit()
        e.objective = 99
        self.add("visit", "unknown objective", e.SerializeToString(), "unknown_enum_value")
        e = self.visit()
        e.rep_id = "r' OR '1'='1"
        self.add("visit", "SQL-looking rep id", e.SerializeToString(), "invalid_id")
        e = self.visit(account=f"bad input {self.p} nul\x00tail")
        self.add("visit", "NUL in account name", e.SerializeToString(), "nul_in_string")
        e = self.visit()
        e.ClearField("header")
        self.add("visit", "no header", e.SerializeToString(), "missing_field")
        # order topic
        raw = self.order().SerializeToString()
        self.add("order", "truncated", raw[:-3], "decode_failed")
        # an OpportunityEvent read as an order: actor_id (field 3) parsed as
        # the AccountRef message is garbage wire data
        self.add("order", "an OpportunityEvent", self.opp().SerializeToString(),
                 "decode_failed")
        # a VisitEvent read as an order: rep_id (field 3, "rep1-...") parsed
        # as the AccountRef message is garbage wire data
        self.add("order", "a VisitEvent", self.visit().SerializeToString(), "decode_failed")
        e = self.order()
        for i in range(5000):
            li = e.lines.add()
            li.sku, li.quantity_milli, li.unit_price_minor = f"sku-{i}", 1000, 100
        self.add("order", "5000 lines", e.SerializeToString(), "list_too_long")
        e = self.order()
        e.lines[0].unit_price_minor = INT64_MAX
        self.add("order", "price int64 max", e.SerializeToString(), "amount_out_of_range")
        e = self.order()
        e.status = 99
        self.add("order", "unknown status", e.SerializeToString(), "unknown_enum_value")
        e = self.order()
        e.lines[0].sku = "sku\x00-1"
        self.add("order", "NUL in sku", e.SerializeToString(), "nul_in_string")
        e = self.order()
        self.add("order", "requirement not UTF-8",
                 self.bad_utf8(e, lambda m: setattr(e.lines[0], "requirement", m)),
                 "invalid_utf8")
        e = self.order()
        e.order_id = "s-1;DELETE FROM sales_order"
        self.add("order", "SQL-looking order id", e.SerializeToString(), "invalid_id")
        e = self.order()
        e.ClearField("header")
        self.add("order", "no header", e.SerializeToString(), "missing_field")
        return self.cases


def produce_positions(run, cases):
    """Produces the bad events; returns {(topic, partition, offset): case}."""
    p = Producer({"bootstrap.servers": run.env.brokers, "enable.idempotence": True,
                  "message.max.bytes": 2_000_000})
    where = {}

    def delivered(case):
        def cb(err, msg):
            assert err is None, f"{case[1]}: not produced: {err}"
            where[(msg.topic(), msg.partition(), msg.offset())] = case
        return cb

    for case in cases:
        kind, name, value, _ = case
        p.produce(run.topics[INPUT[kind]], key=f"{run.prefix}-{name}".encode(), value=value,
                  on_delivery=delivered(case))
        p.poll(0)
    assert p.flush(30) == 0, "bad events not confirmed by Kafka"
    assert len(where) == len(cases)
    return where


def main():
    args = Env.parser(__doc__).parse_args()
    env = Env.from_environ(args)
    with Run(env, "bad_input") as run:
        corpus = Corpus(run)
        cases = corpus.build()
        workers = {k: run.worker(k).start() for k in WORKERS}
        # The deal the bad confirmations name, applied before they are sent.
        sql_name = f"Robert'); DROP TABLE account;-- {run.prefix}"
        target = corpus.opp(opp_id=corpus.confirm_target, account=sql_name)
        p = Producer({"bootstrap.servers": env.brokers, "enable.idempotence": True})
        p.produce(run.topics["opportunity"], key=target.opportunity_id.encode(),
                  value=target.SerializeToString())
        assert p.flush(30) == 0
        deadline = time.monotonic() + 60
        while not int(env.sql("SELECT count(*) FROM opportunity WHERE id = :'o'",
                              o=corpus.confirm_target)[0][0]):
            assert time.monotonic() < deadline, "the deal to confirm was not created"
            time.sleep(0.2)
        where = produce_positions(run, cases)
        # Valid events after the bad ones, on each topic.
        valid = [
            ("opportunity", corpus.opp(event_id=corpus.cut_id, account=sql_name)),  # the NUL event's id, cut
            ("opportunity", corpus.opp(account=sql_name)),
            ("visit", corpus.visit(account=sql_name)),
            ("order", corpus.order(account=sql_name)),
        ]
        p = Producer({"bootstrap.servers": env.brokers, "enable.idempotence": True})
        for kind, e in valid:
            key = e.opportunity_id if kind == "opportunity" else e.account.name
            p.produce(run.topics[kind], key=key.encode(), value=e.SerializeToString())
        assert p.flush(30) == 0
        run.wait_caught_up(WORKERS, timeout=120)
        for k, w in workers.items():
            assert w.alive(), f"{k} worker died on bad input: {w.log_path}"

        problems = []
        # The dead-letter topic: one per bad event, with its reason.
        got = {}
        for m in run.read_topic(run.topics["deadletter"]):
            h = {k: v.decode(errors="replace") for k, v in (m.headers() or [])}
            pos = (h.get("ka_src_topic"), int(h.get("ka_src_partition", -1)),
                   int(h.get("ka_src_offset", -1)))
            if pos in got:
                problems.append(f"dead letter for {pos} published twice")
            got[pos] = (h.get("ka_dlq_reason"), h.get("ka_dlq_detail"), m.value(),
                        h.get("ka_service"))
        for pos, (kind, name, value, reason) in where.items():
            if pos not in got:
                problems.append(f"{kind} {name!r}: no dead letter")
                continue
            r, detail, payload, service = got[pos]
            if r != reason:
                problems.append(f"{kind} {name!r}: reason {r!r} ({detail}), expected {reason!r}")
            if service != SERVICE[kind]:
                problems.append(f"{kind} {name!r}: dead-lettered by {service}, expected "
                                f"{SERVICE[kind]}")
            if (payload or b"") != value:
                problems.append(f"{kind} {name!r}: dead letter does not keep the input's bytes")
        extra = set(got) - set(where)
        if extra:
            problems.append(f"dead letters for inputs that were valid: {sorted(extra)}")
        # The dead_letter table: the same count and reasons per worker.
        for kind in WORKERS:
            rows = env.sql("SELECT source_offset, source_partition, reason FROM dead_letter "
                           "WHERE consumer_group = :'g'", g=run.groups[kind])
            table = {(run.topics[INPUT[kind]], int(pt), int(o)): r for o, pt, r in rows}
            want = {pos: c[3] for pos, c in where.items() if c[0] == kind}
            if table != want:
                problems.append(f"dead_letter rows of {kind}: {table}, expected {want}")
        # Nothing of the bad events in the state tables: only the valid ones.
        n_opp = int(env.sql("SELECT count(*) FROM opportunity WHERE starts_with(id, :'p')",
                            p=run.prefix)[0][0])
        if n_opp != 3:
            problems.append(f"{n_opp} opportunities of this run, expected the 3 valid ones")
        n_confirmed = int(env.sql("SELECT count(*) FROM forecast_confirmation "
                                  "WHERE opportunity_id = :'o'", o=corpus.confirm_target)[0][0])
        if n_confirmed:
            problems.append(f"{n_confirmed} of the bad confirmations were stored")
        n_adjustments = int(env.sql("SELECT count(*) FROM forecast_adjustment "
                                    "WHERE node_id = :'n'", n=run.teams[0])[0][0])
        if n_adjustments:
            problems.append(f"{n_adjustments} of the bad adjustments were stored")
        n_orders = int(env.sql("SELECT count(*) FROM sales_order WHERE starts_with(id, :'p')",
                               p=run.prefix)[0][0])
        if n_orders != 1:
            problems.append(f"{n_orders} orders of this run, expected the 1 valid one")
        names = sorted(r[0] for r in env.sql(
            "SELECT display_name FROM account WHERE strpos(display_name, :'p') > 0",
            p=run.prefix))
        if names != [sql_name]:
            problems.append(f"accounts of this run: {names}, expected only {sql_name!r}")
        n_visits = int(env.sql("SELECT count(*) FROM visit v JOIN account a ON a.id = v.account_id "
                               "WHERE strpos(a.display_name, :'p') > 0", p=run.prefix)[0][0])
        if n_visits != 1:
            problems.append(f"{n_visits} visits of this run, expected the 1 valid one")
        # The valid event whose id is the NUL event's id cut short was applied.
        cut = env.sql("SELECT count(*) FROM opportunity WHERE id = :'o'",
                      o=valid[0][1].opportunity_id)
        if int(cut[0][0]) != 1:
            problems.append("the event whose id equals a NUL-bearing id cut short was dropped "
                            "as a duplicate")
        for k, w in workers.items():
            w.stop()
        if problems:
            raise AssertionError("bad input:\n  " + "\n  ".join(problems))
        reasons = {}
        for _, _, _, r in cases:
            reasons[r] = reasons.get(r, 0) + 1
        print(f"{len(cases)} bad events dead-lettered with their reasons {reasons}; "
              f"{len(valid) + 1} valid events applied around them", flush=True)
        report("bad_input", len(cases), len(cases) + len(valid) + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The fault suite's reference model: what the stored state must be after a
given event log, recomputed from the rules of DOMAIN.md (and the choices of
docs/domain-choices.md) with none of the workers' code.

The log is a list of plain dicts, one per event as produced (duplicates and
all), in the order each key's events were produced; Kafka keeps per-key order,
and nothing below depends on the order across keys. Times are milliseconds.

Kept deliberately small: a dict per entity, one function per event kind, sums
recomputed from the final entities instead of maintained as deltas.
"""
import datetime

# DOMAIN.md section 1, the 8-stage funnel of seed 003 (the default
# definition, `default-8`): win probability in basis points.
DEFINITION = "default-8"
STAGE_BP = {"01": 1000, "02": 2000, "03": 3000, "04": 4000, "05": 5000, "06": 7000,
            "07": 9000, "08": 10000, "LOST": 0}
WON_STAGE, LOST_STAGE = "08", "LOST"
OPEN_STAGES = ("01", "02", "03", "04", "05", "06", "07")
# The alerts that are pure functions of the log. The others are raised by
# periodic scans on the worker's clock, or from org-wide data (tiers, health
# of nodes shared with other runs), so the model leaves them out.
MODELLED_ALERT_TYPES = ("unauthorized_owner_change",)


def month_of(ms):
    d = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return f"{d.year:04d}-{d.month:02d}-01"


def weighted(amount, bp):
    return (amount * bp + 5000) // 10000  # rounded half up (domain-choices.md)


class Org:
    """The part of the org tree a run owns: parent of each node, manager user
    of each node (None for none). Nodes above the run's subtree are not
    modelled: the funnel and actuals are compared on the run's nodes only."""

    def __init__(self, parent, manager):
        self.parent = dict(parent)
        self.manager = dict(manager)

    def ancestors(self, node, strict=False):
        out = [] if strict else [node]
        n = self.parent.get(node)
        while n is not None:
            out.append(n)
            n = self.parent.get(n)
        return out

    def is_superior(self, actor, owner):
        # 只有其上级才能更换: the manager of a strict ancestor of the owner.
        return any(self.manager.get(a) == actor for a in self.ancestors(owner, strict=True))

    def nodes(self):
        return set(self.parent)


class Model:
    def __init__(self, org):
        self.org = org
        self.seen = set()         # (kind, event id): the first copy applies, later ones are duplicates
        self.opps = {}
        self.orders = {}
        self.accounts = {}        # visits: canonical key -> state
        self.dead_letters = []    # event ids expected on the dead-letter topic
        self.alerts = []          # transitions, in the order they happen per subject
        self.firing = {}          # (type, subject) -> starts_at_ms
        self.applied = 0

    # -- opportunities (DOMAIN.md 4, domain-choices "Opportunities") -----------
    def _alert(self, subject, status, start, at):
        self.alerts.append({"type": "unauthorized_owner_change", "subject_id": subject,
                            "status": status, "starts_at_ms": start, "at_ms": at})

    def _resolve_unauthorized(self, o, t):
        start = self.firing.pop(("unauthorized_owner_change", o["id"]), None)
        if start is not None:
            self._alert(o["id"], "resolved", start, t)

    def opportunity(self, e):
        o = self.opps.get(e["opportunity_id"])
        kind, t = e["type"], e["t"]
        if kind == "created":
            if o is not None:
                return "already_exists"
            self.opps[e["opportunity_id"]] = {
                "id": e["opportunity_id"], "owner": e["owner"], "stage": e["stage"],
                "amount": e["amount"], "status": "open", "last_t": t}
            return None
        if o is None:
            self.dead_letters.append(e["event_id"])
            return "unknown_opportunity"
        if t < o["last_t"]:
            return "stale"  # recorded, never rolls the state back
        if kind == "updated":
            o["amount"] = e["amount"]
        elif kind == "stage_changed":
            o["stage"] = e["stage"]
            o["status"] = "open"
        elif kind == "owner_changed":
            if not self.org.is_superior(e["actor"], o["owner"]):
                self.dead_letters.append(e["event_id"])
                key = ("unauthorized_owner_change", o["id"])
                if key not in self.firing:
                    self.firing[key] = t
                    self._alert(o["id"], "firing", t, t)
                return "rejected"
            self._resolve_unauthorized(o, t)
            o["owner"] = e["new_owner"]
        elif kind in ("won", "lost"):
            if o["status"] != "open":
                return "already_closed"  # closes once
            o["stage"] = WON_STAGE if kind == "won" else LOST_STAGE
            o["status"] = kind
            self._resolve_unauthorized(o, t)
        elif kind == "reopened":
            o["stage"] = e["stage"]
            o["status"] = "open"
        else:
            raise ValueError(f"oracle: unknown opportunity event type {kind!r}")
        o["last_t"] = t
        return None

    # -- orders (DOMAIN.md 6, domain-choices "Orders") -------------------------
    def order(self, e):
        o = self.orders.get(e["order_id"])
        if o is not None and e["t"] < o["last_t"]:
            return "stale"
        if o is None:
            o = self.orders[e["order_id"]] = {"id": e["order_id"], "account": e["account"],
                                              "rep": e["rep"], "lines": [], "postings": []}
        was = o.get("status") == "booked"
        old_lines, old_rep = o["lines"], o["rep"]
        o["status"] = e["status"]
        o["rep"] = e["rep"]
        if e["lines"]:  # a cancellation or return without lines keeps the order's
            o["lines"] = list(e["lines"])
        o["last_t"] = e["t"]
        # Actuals move by differences, in the month the event takes effect.
        eff = e["booked_at"] if e["status"] == "booked" else e["t"]
        month = month_of(eff)
        if was:
            for sku, qty, price in old_lines:
                o["postings"].append((old_rep, sku, month, -qty * price, -qty))
        if o["status"] == "booked":
            for sku, qty, price in o["lines"]:
                o["postings"].append((o["rep"], sku, month, qty * price, qty))
        return None

    # -- visits (DOMAIN.md 3, domain-choices "Visits") -------------------------
    def visit(self, e):
        a = self.accounts.setdefault(e["account"], {"visits": 0, "last_visit": None,
                                                    "last_dm": None, "man": None})
        a["visits"] += 1
        if e["dm"]:  # a decision maker met counts even on a late visit
            a["last_dm"] = max(a["last_dm"] or e["visited_at"], e["visited_at"])
        if a["last_visit"] is not None and e["visited_at"] < a["last_visit"]:
            return "superseded"
        a["last_visit"] = e["visited_at"]
        if e["man"] is not None:
            a["man"] = e["man"]
        return None

    def apply(self, e):
        ident = (e["kind"], e["event_id"])
        if ident in self.seen:
            return "duplicate"
        result = getattr(self, e["kind"])(e)
        # A rejected event's id is forgotten so it can be re-driven: a second
        # copy is judged again. The generator never duplicates those.
        if result not in ("rejected", "unknown_opportunity"):
            self.seen.add(ident)
        if result is None:
            self.applied += 1
        return result


def expected(log, org):
    """The whole expected outcome of a log: a dict of plain values."""
    m = Model(org)
    for e in log:
        m.apply(e)
    nodes = org.nodes()
    funnel = {}
    for o in m.opps.values():
        if o["status"] != "open":
            continue
        for n in org.ancestors(o["owner"]):
            if n not in nodes:
                continue
            c = funnel.setdefault((n, DEFINITION, o["stage"]), [0, 0, 0])
            c[0] += 1
            c[1] += o["amount"]
            c[2] += weighted(o["amount"], STAGE_BP[o["stage"]])
    actuals, rollup = {}, {}
    for o in m.orders.values():
        for rep, sku, month, amount, qty in o["postings"]:
            k = (o["account"], sku, rep, month)
            a = actuals.setdefault(k, [0, 0])
            a[0] += amount
            a[1] += qty
            for n in org.ancestors(rep):
                if n in nodes:
                    rollup[(n, month)] = rollup.get((n, month), 0) + amount
    return {
        "opportunities": {k: {f: v[f] for f in ("stage", "amount", "owner", "status")}
                          for k, v in m.opps.items()},
        "funnel": {k: tuple(v) for k, v in funnel.items() if v[0] or v[1] or v[2]},
        "orders": {k: {"status": v["status"],
                       "total": sum(q * p for _, q, p in v["lines"])}
                   for k, v in m.orders.items()},
        "actuals": {k: tuple(v) for k, v in actuals.items() if v[0] or v[1]},
        "rollup": {k: v for k, v in rollup.items() if v},
        "accounts": {k: dict(v) for k, v in m.accounts.items()},
        "dead_letters": sorted(m.dead_letters),
        "alerts": list(m.alerts),
        "firing": {subject: start for (_, subject), start in m.firing.items()},
        "applied": m.applied,
    }


# -- its own check: a tiny log computed by hand ------------------------------
def _self_check():
    org = Org({"div": None, "team": "div", "r1": "team", "r2": "team"},
              {"div": "u-div", "team": "u-team"})
    day = 86400000
    t0 = 1767225600000  # 2026-01-01T00:00:00Z
    log = [
        {"kind": "opportunity", "event_id": "o1", "opportunity_id": "A", "type": "created",
         "t": t0, "owner": "r1", "stage": "01", "amount": 1000},
        {"kind": "opportunity", "event_id": "o2", "opportunity_id": "A", "type": "stage_changed",
         "t": t0 + 1, "stage": "06"},
        {"kind": "opportunity", "event_id": "o2", "opportunity_id": "A", "type": "stage_changed",
         "t": t0 + 1, "stage": "06"},                                     # duplicate
        {"kind": "opportunity", "event_id": "o3", "opportunity_id": "A", "type": "updated",
         "t": t0 - 5, "amount": 999999},                                  # stale
        {"kind": "opportunity", "event_id": "o4", "opportunity_id": "A", "type": "owner_changed",
         "t": t0 + 2, "actor": "u-nobody", "new_owner": "r2"},            # unauthorized
        {"kind": "opportunity", "event_id": "o5", "opportunity_id": "A", "type": "owner_changed",
         "t": t0 + 3, "actor": "u-team", "new_owner": "r2"},              # resolves it
        {"kind": "opportunity", "event_id": "o6", "opportunity_id": "B", "type": "created",
         "t": t0, "owner": "r2", "stage": "07", "amount": 333},
        {"kind": "opportunity", "event_id": "o7", "opportunity_id": "B", "type": "won", "t": t0 + 1},
        {"kind": "opportunity", "event_id": "o8", "opportunity_id": "B", "type": "lost", "t": t0 + 2},
        {"kind": "opportunity", "event_id": "o9", "opportunity_id": "C", "type": "updated",
         "t": t0, "amount": 5},                                           # never created
        {"kind": "order", "event_id": "s1", "order_id": "X", "account": "k1", "rep": "r1",
         "status": "booked", "t": t0, "booked_at": t0, "lines": [("sku", 2, 100)]},
        {"kind": "order", "event_id": "s2", "order_id": "X", "account": "k1", "rep": "r1",
         "status": "booked", "t": t0 + 1, "booked_at": t0, "lines": [("sku", 3, 100)]},
        {"kind": "order", "event_id": "s3", "order_id": "X", "account": "k1", "rep": "r1",
         "status": "cancelled", "t": t0 + 40 * day, "booked_at": t0, "lines": []},
        {"kind": "order", "event_id": "s4", "order_id": "X", "account": "k1", "rep": "r1",
         "status": "returned", "t": t0 + 41 * day, "booked_at": t0, "lines": []},
        {"kind": "visit", "event_id": "v1", "account": "k2", "visited_at": t0 + 10, "dm": False,
         "man": "MAN"},
        {"kind": "visit", "event_id": "v2", "account": "k2", "visited_at": t0 + 5, "dm": True,
         "man": "man"},                                                   # late: superseded
    ]
    x = expected(log, org)
    assert x["opportunities"] == {
        "A": {"stage": "06", "amount": 1000, "owner": "r2", "status": "open"},
        "B": {"stage": "08", "amount": 333, "owner": "r2", "status": "won"}}, x["opportunities"]
    # A: 1000 at 70% = 700, owned by r2 now; B is closed.
    assert x["funnel"] == {(n, "default-8", "06"): (1, 1000, 700) for n in ("r2", "team", "div")}, \
        x["funnel"]
    assert x["dead_letters"] == ["o4", "o9"], x["dead_letters"]
    assert [(a["status"], a["starts_at_ms"], a["at_ms"]) for a in x["alerts"]] == \
        [("firing", t0 + 2, t0 + 2), ("resolved", t0 + 2, t0 + 3)], x["alerts"]
    assert x["firing"] == {}
    # Booked 200 in January, amended to 300 (difference +100 in January),
    # cancelled on day 40 (February: -300); the return after it changes nothing.
    jan, feb = "2026-01-01", "2026-02-01"
    assert x["actuals"] == {("k1", "sku", "r1", jan): (300, 3), ("k1", "sku", "r1", feb): (-300, -3)}, \
        x["actuals"]
    assert x["rollup"] == {(n, m): v for n in ("r1", "team", "div")
                           for m, v in ((jan, 300), (feb, -300))}, x["rollup"]
    assert x["orders"] == {"X": {"status": "returned", "total": 300}}, x["orders"]
    assert x["accounts"] == {"k2": {"visits": 2, "last_visit": t0 + 10, "last_dm": t0 + 5,
                                    "man": "MAN"}}, x["accounts"]
    assert x["applied"] == 10, x["applied"]


if __name__ == "__main__":
    _self_check()
    print("oracle self-check passed")

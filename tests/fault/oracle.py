"""The fault suite's reference model: what the stored state must be after a
given event log, recomputed from the rules of DOMAIN.md (and the choices of
docs/domain-choices.md) with none of the workers' code: the opportunities and
their funnel, actuals, visited accounts, the forecast per node and period (raw
and adjusted, quota, coverage, gap) and the planning feed.

The log is a list of plain dicts, one per event as produced (duplicates and
all), in the order each key's events were produced; Kafka keeps per-key order,
and nothing below depends on the order across keys. Times are milliseconds.
The planning feed also depends on the forecast worker's month (demand is
never in a month that is over): expected() takes that clock.

Kept deliberately small: a dict per entity, one function per event kind, sums
recomputed from the final entities instead of maintained as deltas.
"""
import datetime
import time
from decimal import ROUND_HALF_UP, Decimal

# DOMAIN.md section 1, the 8-stage funnel of seed 003 (the default
# definition, `default-8`): win probability in basis points.
DEFINITION = "default-8"
STAGE_BP = {"01": 1000, "02": 2000, "03": 3000, "04": 4000, "05": 5000, "06": 7000,
            "07": 9000, "08": 10000, "LOST": 0}
WON_STAGE, LOST_STAGE = "08", "LOST"
# The stages' default forecast categories (seed 003, 0002_default_funnels.sql).
STAGE_CATEGORY = {"01": "pipeline", "02": "pipeline", "03": "pipeline", "04": "pipeline",
                  "05": "best_case", "06": "best_case", "07": "commit", "08": "closed",
                  "LOST": "omitted"}
# What a confirmed open deal can count as; closed is booked revenue only.
FORECAST_CATEGORIES = ("commit", "best_case", "pipeline")
# The figures of a node-period, in the order the comparisons use.
FIGURES = ("closed", "commit", "best_case", "pipeline", "weighted_pipeline")
ADJUSTABLE = ("closed", "commit", "best_case", "pipeline")
OPEN_STAGES = ("01", "02", "03", "04", "05", "06", "07")
# Each open stage's max dwell in days (seed 003, 0002_default_funnels.sql).
MAX_DWELL_DAYS = {"01": 30, "02": 30, "03": 45, "04": 45, "05": 60, "06": 45, "07": 30}
DAY_MS = 86400000
# The alerts that are pure functions of the log. The others are raised by
# periodic scans on the worker's clock, or from org-wide data (tiers, health
# of nodes shared with other runs), so the model leaves them out.
MODELLED_ALERT_TYPES = ("unauthorized_owner_change",)


def month_of(ms):
    d = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return f"{d.year:04d}-{d.month:02d}-01"


def weighted(amount, bp):
    return (amount * bp + 5000) // 10000  # rounded half up (domain-choices.md)


def quarter_of(start):
    """The quarter's first day of a "YYYY-MM-01" month."""
    y, m = int(start[:4]), int(start[5:7])
    return f"{y:04d}-{(m - 1) // 3 * 3 + 1:02d}-01"


def weighted_quantity(qty_milli, bp):
    """Quantity x probability, to four decimals, half up."""
    return (Decimal(qty_milli) * bp / 10**7).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


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

    def may_adjust(self, actor, node):
        # 修订销售预测 "at their node": the node's own manager only.
        return actor is not None and self.manager.get(node) == actor

    def division_of(self, node):
        """The top of the modelled tree: a run's subtree is one division."""
        return self.ancestors(node)[-1]

    def children(self, node):
        return [n for n, p in self.parent.items() if p == node]

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
        self.adjustments = {}     # (node, kind, start, category) -> [(t, seq, amount or None)]
        self.forecast_dead_letters = []

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
                "amount": e["amount"], "status": "open", "last_t": t,
                "lines": list(e.get("lines", ())), "close": e.get("close"), "confs": {},
                "closed_t": None, "account": e.get("account"), "created_t": t,
                "entered_t": t}
            return None
        if o is None:
            self.dead_letters.append(e["event_id"])
            return "unknown_opportunity"
        if t < o["last_t"]:
            return "stale"  # recorded, never rolls the state back
        if kind == "updated":
            if "amount" in e:
                o["amount"] = e["amount"]
            if "close" in e:
                o["close"] = e["close"]
            if "lines" in e:  # replace_lines
                o["lines"] = list(e["lines"])
        elif kind == "confirmed":
            # 商机确认 by the owner of the moment only (not_owner, missing_actor
            # otherwise); one per period, confirming a period again replaces
            # it. Accepted on a closed deal too: it counts once the deal
            # reopens. It counts while its owner owns the deal.
            if e.get("actor") != o["owner"]:
                self.dead_letters.append(e["event_id"])
                return "rejected"
            o["confs"][tuple(e["period"])] = (t, e.get("category"), o["owner"])
        elif kind == "stage_changed":
            if e["stage"] != o["stage"]:
                o["entered_t"] = t  # a change to the stage it is in changes nothing
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
            o["closed_t"] = o["entered_t"] = t
            self._resolve_unauthorized(o, t)
        elif kind == "reopened":
            if o["status"] != "open" or o["stage"] != e["stage"]:
                o["entered_t"] = t
            o["stage"] = e["stage"]
            o["status"] = "open"
            o["closed_t"] = None
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
        # The deal it names: its booked lines deliver that won deal's demand.
        # (One naming an open deal would close it as won: the streams never
        # send one, and the model does not close deals from orders.)
        o["opportunity"] = e.get("opportunity")
        was = o.get("status") == "booked"
        old_lines, old_rep, old_booked = o["lines"], o["rep"], o.get("booked_at")
        o["status"] = e["status"]
        o["rep"] = e["rep"]
        if old_booked is None or e["status"] == "booked":  # a booking (re)sets its time
            o["booked_at"] = e["booked_at"]
        if e["lines"]:  # a cancellation or return without lines keeps the order's
            o["lines"] = list(e["lines"])
        o["last_t"] = e["t"]
        # Actuals move by differences, each in the month the order was booked
        # in: a cancellation or a return corrects that month, never its own.
        if was:
            for sku, qty, price in old_lines:
                o["postings"].append((old_rep, sku, month_of(old_booked), -qty * price, -qty))
        if o["status"] == "booked":
            for sku, qty, price in o["lines"]:
                o["postings"].append((o["rep"], sku, month_of(o["booked_at"]), qty * price, qty))
        return None

    # -- visits (DOMAIN.md 3, domain-choices "Visits") -------------------------
    def visit(self, e):
        a = self.accounts.setdefault(e["account"], {"visits": 0, "last_visit": None,
                                                    "last_dm": None, "man": None,
                                                    "interval_days": None})
        a["visits"] += 1
        if e["dm"]:  # a decision maker met counts even on a late visit
            a["last_dm"] = max(a["last_dm"] or e["visited_at"], e["visited_at"])
        if a["last_visit"] is not None and e["visited_at"] < a["last_visit"]:
            return "superseded"
        a["last_visit"] = e["visited_at"]
        if e["man"] is not None:
            a["man"] = e["man"]
        # The follow-up plan in force is the latest visit's (continue, every N days).
        a["interval_days"] = e.get("interval_days")
        return None

    # -- managers' adjustments (DOMAIN.md 5, domain-choices "Forecast") --------
    def adjustment(self, e):
        if not self.org.may_adjust(e["actor"], e["node"]):
            self.forecast_dead_letters.append(e["event_id"])
            return "rejected"
        kind, start = e["period"]
        self.adjustments.setdefault((e["node"], kind, start, e["category"]), []).append(
            (e["t"], len(self.seen), e["amount"]))
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


def _latest(o, kinds):
    """The latest confirmation of deal o among those of `kinds` made by its
    current owner (after a reassignment the new owner's only): (t, start,
    category)."""
    best = None
    for (kind, start), (t, category, owner) in o["confs"].items():
        if kind in kinds and owner == o["owner"] and (best is None or (t, start) > best[:2]):
            best = (t, start, category)
    return best


def _forecast(m, org, quotas, actuals):
    """Per (node, period kind, period start) of the run's tree with a quota
    or a figure other than zero: raw and adjusted figures (FIGURES order),
    quota, coverage and gap of each."""
    own, keys = {}, set()

    def add(node, kind, start, figure, amount):
        f = own.setdefault((node, kind, start), dict.fromkeys(FIGURES, 0))
        f[figure] += amount
        keys.add((node, kind, start))

    for o in m.opps.values():
        if o["status"] != "open":
            continue
        # One month (the latest month confirmation) and one quarter (the
        # latest of a quarter or of a month in it): never counted twice.
        for kind, c in (("month", _latest(o, ("month",))),
                        ("quarter", _latest(o, ("month", "quarter")))):
            if c is None:
                continue
            category = c[2] or STAGE_CATEGORY[o["stage"]]
            if category not in FORECAST_CATEGORIES:
                continue
            start = c[1] if kind == "month" else quarter_of(c[1])
            add(o["owner"], kind, start, category, o["amount"])
            add(o["owner"], kind, start, "weighted_pipeline",
                weighted(o["amount"], STAGE_BP[o["stage"]]))
    for (_, _, rep, month), (amount, _) in actuals.items():
        add(rep, "month", month, "closed", amount)
        add(rep, "quarter", quarter_of(month), "closed", amount)
    for node, kind, start, _ in m.adjustments:
        keys.add((node, kind, start))
    # A quota alone makes a row (with zero figures): the rep with an empty
    # pipeline still has its quota and gap.
    keys.update(quotas)
    for node, kind, start in list(keys):
        for a in org.ancestors(node, strict=True):
            keys.add((a, kind, start))

    def in_force(node, kind, start, figure, raw):
        history = m.adjustments.get((node, kind, start, figure))
        if not history:
            return raw
        amount = max(history, key=lambda h: h[:2])[2]
        return raw if amount is None else amount  # withdrawn: back to raw

    memo = {}

    def figures(node, kind, start):
        if (node, kind, start) not in memo:
            base = own.get((node, kind, start), dict.fromkeys(FIGURES, 0))
            raw = {}
            for f in FIGURES:
                raw[f] = base[f] + sum(figures(c, kind, start)[1][f] for c in org.children(node))
            adj = {f: in_force(node, kind, start, f, raw[f]) for f in FIGURES}
            memo[(node, kind, start)] = (raw, adj)
        return memo[(node, kind, start)]

    out = {}
    for node, kind, start in keys:
        raw, adj = figures(node, kind, start)
        quota = quotas.get((node, kind, start))
        if not any(raw.values()) and not any(adj.values()) and quota is None:
            continue

        def coverage(f):
            if quota is None or quota - f["closed"] <= 0:
                return None
            return (f["commit"] + f["best_case"] + f["pipeline"]) * 10000 // (quota - f["closed"])

        def gap(f):
            return None if quota is None else quota - (f["closed"] + f["commit"])

        out[(node, kind, start)] = {
            "raw": tuple(raw[f] for f in FIGURES), "adjusted": tuple(adj[f] for f in FIGURES),
            "quota": quota, "raw_coverage": coverage(raw), "adjusted_coverage": coverage(adj),
            "raw_gap": gap(raw), "adjusted_gap": gap(adj)}
    return out


def _planning(m, org, month_now):
    """Per (sku, month, division): (weighted quantity, committed quantity).
    month_now: the forecast worker's month, "YYYY-MM-01"."""
    out = {}

    def add(o, month, lines, bp, committed):
        division = org.division_of(o["owner"])
        month = max(month, month_now)  # never in a month that is over
        for sku, qty_milli in lines:
            w, c = out.get((sku, month, division), (Decimal(0), Decimal(0)))
            out[(sku, month, division)] = (
                w + weighted_quantity(qty_milli, bp),
                c + (Decimal(qty_milli) / 1000 if committed else 0))

    delivered = {}  # (deal, sku) -> milli booked by orders naming it
    for order in m.orders.values():
        if order.get("opportunity") and order.get("status") == "booked":
            for sku, qty, _ in order["lines"]:
                k = (order["opportunity"], sku)
                delivered[k] = delivered.get(k, 0) + qty * 1000

    for o in m.opps.values():
        if o["status"] == "won":
            # Won: committed demand (in the month it was won, or now) until
            # delivered, per sku.
            need = {}
            for sku, qty_milli in o["lines"]:
                need[sku] = need.get(sku, 0) + qty_milli
            left = [(sku, q - delivered.get((o["id"], sku), 0)) for sku, q in need.items()]
            add(o, month_of(o["closed_t"]), [(sku, q) for sku, q in left if q > 0], 0, True)
        elif o["status"] == "open":
            mc, qc = _latest(o, ("month",)), _latest(o, ("month", "quarter"))
            last = mc if qc is None or (mc is not None and mc[0] >= qc[0]) else qc
            if last is None:
                continue
            category = last[2] or STAGE_CATEGORY[o["stage"]]
            if category not in FORECAST_CATEGORIES:
                continue
            # The month it is expected to close, else the confirmed period's.
            month = o["close"][:7] + "-01" if o["close"] else last[1]
            add(o, month, o["lines"], STAGE_BP[o["stage"]], category == "commit")
    return {k: v for k, v in out.items() if v[0] or v[1]}


def expected(log, org, quotas=None, now_ms=None):
    """The whole expected outcome of a log: a dict of plain values. quotas:
    (node, period kind, period start) -> amount, the reference data loaded.
    now_ms: the forecast worker's clock (default: now, the clock of a worker
    without KA_CLOCK_OFFSET_MS), whose month the planning feed depends on."""
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
        "opportunity_accounts": {k: v["account"] for k, v in m.opps.items()},
        "opportunity_times": {k: (v["created_t"], v["entered_t"]) for k, v in m.opps.items()},
        "forecast": _forecast(m, org, quotas or {}, actuals),
        "planning": _planning(m, org, month_of(time.time() * 1000 if now_ms is None
                                              else now_ms)),
        "dead_letters": sorted(m.dead_letters),
        "forecast_dead_letters": sorted(m.forecast_dead_letters),
        "alerts": list(m.alerts),
        "firing": {subject: start for (_, subject), start in m.firing.items()},
        "applied": m.applied,
    }


def overdue_visits(accounts, clock_ms):
    """The accounts whose visit-overdue alert must be firing after a scan at
    clock_ms: the plan of the latest visit is due (visit time + its interval)
    before the clock, and the account is not classed `man` (no plan)."""
    return {name for name, a in accounts.items()
            if a["interval_days"] and a["man"] != "man"
            and a["last_visit"] + a["interval_days"] * 86400000 < clock_ms}


def stalled(x, clock_ms, no_visit_days=45):
    """The (opportunity, cause) stalls that must be firing after a scan at
    clock_ms: an open deal longer in its stage than the stage's max dwell
    (stage_dwell), or silent no_visit_days: no visit on its account since the
    later of its last visit and the deal's start (no_visit)."""
    firing = set()
    for oid, o in x["opportunities"].items():
        if o["status"] != "open":
            continue
        created, entered = x["opportunity_times"][oid]
        if entered + MAX_DWELL_DAYS[o["stage"]] * DAY_MS < clock_ms:
            firing.add((oid, "stage_dwell"))
        account = x["accounts"].get(x["opportunity_accounts"].get(oid), {})
        if max(account.get("last_visit") or created, created) + no_visit_days * DAY_MS < clock_ms:
            firing.add((oid, "no_visit"))
    return firing


def decision_maker_gaps(x, clock_ms, gap_days=90):
    """The opportunities whose decision-maker-gap alert must be firing after
    a scan at clock_ms (找对人): open, at a stage at least 50% likely, and the
    account met no decision maker in the gap_days before the clock. x is
    expected()'s outcome."""
    firing = set()
    for oid, o in x["opportunities"].items():
        if o["status"] != "open" or STAGE_BP[o["stage"]] < 5000:
            continue
        account = x["accounts"].get(x["opportunity_accounts"].get(oid), {})
        last_dm = account.get("last_dm")
        if last_dm is None or last_dm < clock_ms - gap_days * 86400000:
            firing.add(oid)
    return firing


def forecast_gaps(forecast, quotas, today):
    """The forecast-gap alerts that must be firing after a scan on `today`
    (a date): for each node-period in the current month or quarter with a
    quota (each has a forecast row, whatever its figures), behind when
    adjusted closed + commit < quota x days elapsed before today / days of
    the period (the linear pace), rounded half up. `forecast` is
    expected()["forecast"]."""
    firing = set()
    starts = {"month": today.replace(day=1),
              "quarter": today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)}
    for (node, kind, start), quota in quotas.items():
        first = starts[kind]
        if start != first.isoformat():
            continue
        months = 1 if kind == "month" else 3
        y, m = divmod(first.month - 1 + months, 12)
        days = (datetime.date(first.year + y, m + 1, 1) - first).days
        elapsed = (today - first).days
        expected_by_now = (2 * quota * elapsed + days) // (2 * days)
        adjusted = forecast[(node, kind, start)]["adjusted"]
        if adjusted[0] + adjusted[1] < expected_by_now:
            firing.add((node, kind, start))
    return firing


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
        {"kind": "order", "event_id": "s5", "order_id": "Y", "account": "k1", "rep": "r1",
         "status": "booked", "t": t0 + 20 * day, "booked_at": t0 + 20 * day,
         "lines": [("sku", 1, 50)]},
        {"kind": "order", "event_id": "s6", "order_id": "Y", "account": "k1", "rep": "r1",
         "status": "booked", "t": t0 + 35 * day, "booked_at": t0 + 35 * day,
         "lines": [("sku", 2, 50)]},                                      # re-booked in February
        {"kind": "order", "event_id": "s7", "order_id": "Z", "account": "k1", "rep": "r2",
         "status": "booked", "t": t0 + 31 * day, "booked_at": t0 + 31 * day,
         "lines": [("sku", 4, 10)]},
        {"kind": "order", "event_id": "s8", "order_id": "Z", "account": "k1", "rep": "r2",
         "status": "returned", "t": t0 + 62 * day, "booked_at": t0 + 31 * day, "lines": []},
        {"kind": "visit", "event_id": "v1", "account": "k2", "visited_at": t0 + 10, "dm": False,
         "man": "MAN", "interval_days": 20},
        {"kind": "visit", "event_id": "v2", "account": "k2", "visited_at": t0 + 5, "dm": True,
         "man": "man", "interval_days": 40},                              # late: superseded
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
    # X: booked 200 in January, amended to 300 (difference +100 in January),
    # cancelled on day 40 (in February, taken out of January: 0 there, and
    # February untouched); the return after it changes nothing.
    # Y: booked 50 on January 21, re-booked at 100 on February 5: -50 in
    # January, +100 in February. Z: r2 booked 40 on February 1, returned in
    # March: 0 in February, March untouched.
    jan, feb = "2026-01-01", "2026-02-01"
    assert x["actuals"] == {("k1", "sku", "r1", feb): (100, 2)}, x["actuals"]
    assert x["rollup"] == {(n, feb): 100 for n in ("r1", "team", "div")}, x["rollup"]
    assert x["orders"] == {"X": {"status": "returned", "total": 300},
                           "Y": {"status": "booked", "total": 100},
                           "Z": {"status": "returned", "total": 40}}, x["orders"]
    assert x["accounts"] == {"k2": {"visits": 2, "last_visit": t0 + 10, "last_dm": t0 + 5,
                                    "man": "MAN", "interval_days": 20}}, x["accounts"]
    # Due 20 days after the latest visit (the late one changes no plan); an
    # account classed `man` has none.
    accounts = dict(x["accounts"], k3={"last_visit": t0, "man": "man", "interval_days": 20})
    assert overdue_visits(accounts, t0 + 10 + 20 * day) == set()
    assert overdue_visits(accounts, t0 + 11 + 20 * day) == {"k2"}
    # Decision-maker gaps: A is open at 70% (stage 06) and its account k2 met
    # a decision maker at t0 + 5: a gap once 90 days have passed since. B is
    # closed.
    x["opportunity_accounts"] = {"A": "k2", "B": "k2"}
    assert decision_maker_gaps(x, t0 + 5 + 90 * day) == set()
    assert decision_maker_gaps(x, t0 + 6 + 90 * day) == {"A"}
    # Stalls: A entered stage 06 (45 days) at t0 + 1 and was created at t0; its
    # account was last visited at t0 + 10, so silent since then (45 days).
    # Its owner change moved no stage.
    assert x["opportunity_times"]["A"] == (t0, t0 + 1)
    assert stalled(x, t0 + 1 + 45 * day) == set()
    assert stalled(x, t0 + 2 + 45 * day) == {("A", "stage_dwell")}
    assert stalled(x, t0 + 11 + 45 * day) == {("A", "stage_dwell"), ("A", "no_visit")}
    assert x["applied"] == 14, x["applied"]


def _self_check_forecast():
    org = Org({"div": None, "team": "div", "r1": "team", "r2": "team"},
              {"div": "u-div", "team": "u-team"})
    day, hour = 86400000, 3600000
    t0 = 1767225600000  # 2026-01-01T00:00:00Z
    jan, feb, apr, q1, q2 = "2026-01-01", "2026-02-01", "2026-04-01", "2026-01-01", "2026-04-01"
    now = t0 + 40 * day + 12 * hour  # the forecast worker's clock: 2026-02-10, February

    def opp(eid, oid, t, kind, **f):
        return {"kind": "opportunity", "event_id": eid, "opportunity_id": oid, "t": t,
                "type": kind, **f}

    def conf(eid, oid, t, actor, period, category):
        return opp(eid, oid, t, "confirmed", actor=actor, period=period, category=category)

    def adj(eid, t, actor, node, period, category, amount):
        return {"kind": "adjustment", "event_id": eid, "t": t, "actor": actor, "node": node,
                "period": period, "category": category, "amount": amount}

    def order(eid, oid, t, status, lines, deal=None):
        return {"kind": "order", "event_id": eid, "order_id": oid, "account": "k1", "rep": "r2",
                "status": status, "t": t, "booked_at": t0 + 40 * day + hour, "lines": lines,
                "opportunity": deal}

    log = [
        # A: stage 05 (best case, 50%), 2.5 units of p, closing in February.
        opp("a1", "A", t0, "created", owner="r1", stage="05", amount=1000,
            lines=[("p", 2500)], close="2026-02-15"),
        conf("a2", "A", t0 + 1, "r1", ("month", jan), None),
        conf("a3", "A", t0 + 2, "r1", ("quarter", q2), "commit"),
        # B: stage 07 (commit, 90%), no close date; omitted for January, then
        # confirmed for February, which moves it. Only its owner confirms:
        # r1's and an actor-less confirmation are dead-lettered.
        opp("b1", "B", t0, "created", owner="r2", stage="07", amount=2000,
            lines=[("p", 1000), ("q", 3000)], close=None),
        conf("b2", "B", t0 + 1, "r2", ("month", jan), "omitted"),
        conf("b3", "B", t0 + 2, "r2", ("month", feb), None),
        conf("b4", "B", t0 + 3, "r1", ("month", jan), "commit"),          # not the owner
        conf("b5", "B", t0 + 4, None, ("month", jan), "commit"),          # no actor
        # C: confirmed, then won in February: out of the forecast, committed
        # demand (3 of q over two lines, 2 of p) until delivered. Order Y
        # delivers 1 of q; order Z, cancelled, nothing.
        opp("c1", "C", t0, "created", owner="r2", stage="01", amount=500,
            lines=[("q", 2000), ("q", 1000), ("p", 2000)], close=None),
        conf("c2", "C", t0 + 1, "r2", ("month", jan), None),
        opp("c3", "C", t0 + 40 * day, "won"),
        order("y1", "Y", t0 + 40 * day + hour, "booked", [("q", 1, 100)], "C"),
        order("z1", "Z", t0 + 40 * day + 2 * hour, "booked", [("p", 2, 100)], "C"),
        order("z2", "Z", t0 + 40 * day + 3 * hour, "cancelled", [], "C"),
        # D: confirmed by r1, then handed to r2: counts nowhere until r2
        # confirms it, and r1 may not any more.
        opp("d1", "D", t0, "created", owner="r1", stage="06", amount=400,
            lines=[("q", 1000)], close=None),
        conf("d2", "D", t0 + 1, "r1", ("month", jan), None),
        opp("d3", "D", t0 + 2, "owner_changed", actor="u-team", new_owner="r2"),
        conf("d4", "D", t0 + 3, "r1", ("month", feb), None),              # not the owner now
        # E: the same hand-over, then confirmed by r2 for February: r2's.
        opp("e1", "E", t0, "created", owner="r1", stage="02", amount=600, lines=[], close=None),
        conf("e2", "E", t0 + 1, "r1", ("month", jan), None),
        opp("e3", "E", t0 + 2, "owner_changed", actor="u-team", new_owner="r2"),
        conf("e4", "E", t0 + 3, "r2", ("month", feb), None),
        # G: stage 04 (pipeline, 40%), expected on 20 January and still open
        # in February: its demand is February's.
        opp("g1", "G", t0, "created", owner="r1", stage="04", amount=800,
            lines=[("p", 1000)], close="2026-01-20"),
        conf("g2", "G", t0 + 1, "r1", ("month", jan), None),
        {"kind": "order", "event_id": "s1", "order_id": "X", "account": "k1", "rep": "r1",
         "status": "booked", "t": t0, "booked_at": t0, "lines": [("sku", 3, 100)]},
        adj("j1", t0 + 10, "u-team", "team", ("month", jan), "commit", 5000),
        adj("j2", t0 + 11, "u-out", "team", ("month", jan), "commit", 1),        # unauthorized
        adj("j3", t0 + 12, "u-team", "team", ("month", jan), "best_case", 0),
        adj("j4", t0 + 13, "u-team", "team", ("month", jan), "best_case", None),  # withdrawn
        adj("j5", t0 + 14, "u-div", "div", ("quarter", q1), "pipeline", 7),
        adj("j6", t0 + 15, "u-div", "team", ("month", jan), "commit", 1),        # above the team
        adj("j7", t0 + 16, "u-team", "r1", ("month", jan), "best_case", 0),      # a rep: no manager
    ]
    # r2 has no figure in January (B omitted, C won in February, its
    # confirmations by others refused): its quota alone makes the row. r1's Q1
    # quota 300 is met by its closed 300.
    quotas = {("team", "month", jan): 10000, ("div", "quarter", q1): 1000,
              ("r2", "month", jan): 400, ("r1", "quarter", q1): 300}
    x = expected(log, org, quotas, now_ms=now)

    def row(raw, adjusted, quota=None, cov=(None, None), gap=(None, None)):
        return {"raw": raw, "adjusted": adjusted, "quota": quota, "raw_coverage": cov[0],
                "adjusted_coverage": cov[1], "raw_gap": gap[0], "adjusted_gap": gap[1]}

    # (closed, commit, best case, pipeline, weighted). r1 in January: X's 300
    # closed, A best case 1000 (500 weighted), G pipeline 800 (320); D counts
    # for no one. r2 in February: Y's 100 closed (Z's 200 booked and
    # cancelled), B commit 2000 (1800), E pipeline 600 (120).
    r1_jan = (300, 0, 1000, 800, 820)
    team_jan_adj = (300, 5000, 1000, 800, 820)  # best case: adjusted to 0, then withdrawn
    r2_feb = (100, 2000, 0, 600, 1920)
    r1_q1 = (300, 0, 0, 800, 320)
    q1_team = (400, 2000, 0, 1400, 2240)
    a_q2 = (0, 1000, 0, 0, 500)
    want = {
        ("r1", "month", jan): row(r1_jan, r1_jan),
        # coverage (0 + 1000 + 800) / (10000 - 300) = 1855 bp; adjusted 6800 / 9700 = 7010 bp
        ("team", "month", jan): row(r1_jan, team_jan_adj, 10000, (1855, 7010), (9700, 4700)),
        ("div", "month", jan): row(team_jan_adj, team_jan_adj),
        ("r2", "month", feb): row(r2_feb, r2_feb), ("team", "month", feb): row(r2_feb, r2_feb),
        ("div", "month", feb): row(r2_feb, r2_feb),
        # no figure: coverage 0 / (400 - 0) = 0, gap 400
        ("r2", "month", jan): row((0,) * 5, (0,) * 5, 400, (0, 0), (400, 400)),
        # met: quota - closed = 0, no coverage; gap 300 - (300 + 0)
        ("r1", "quarter", q1): row(r1_q1, r1_q1, 300, (None, None), (0, 0)),
        ("r2", "quarter", q1): row(r2_feb, r2_feb),
        ("team", "quarter", q1): row(q1_team, q1_team),
        # 3400 / (1000 - 400) = 56666 bp; adjusted 2007 / 600 = 33450 bp; gap 1000 - 2400
        ("div", "quarter", q1): row(q1_team, (400, 2000, 0, 7, 2240), 1000, (56666, 33450),
                                    (-1400, -1400)),
        ("r1", "quarter", q2): row(a_q2, a_q2), ("team", "quarter", q2): row(a_q2, a_q2),
        ("div", "quarter", q2): row(a_q2, a_q2),
    }
    assert x["forecast"] == want, {k: (x["forecast"].get(k), want.get(k))
                                   for k in set(x["forecast"]) | set(want)
                                   if x["forecast"].get(k) != want.get(k)}
    assert x["forecast_dead_letters"] == ["j2", "j6", "j7"], x["forecast_dead_letters"]
    assert x["dead_letters"] == ["b4", "b5", "d4"], x["dead_letters"]
    # Planning in February (the worker's month): A (its quarter confirmation
    # is the latest: commit) in its close month, 2.5 x 50% = 1.25 weighted,
    # 2.5 committed; B 0.9 / 1 of p and 2.7 / 3 of q; C won, 2 of q and 2 of
    # p still to deliver; G's January is over: 0.4 of p now. D counts for no
    # one, E has no lines.
    d = Decimal
    assert x["planning"] == {("p", feb, "div"): (d("2.55"), d("5.5")),
                             ("q", feb, "div"): (d("2.7"), d("5"))}, x["planning"]
    # Two months later everything still due is April's; back in January, G
    # is January's and C (won in February) February's.
    assert expected(log, org, quotas, now_ms=t0 + 95 * day)["planning"] == {
        ("p", apr, "div"): (d("2.55"), d("5.5")), ("q", apr, "div"): (d("2.7"), d("5"))}
    assert expected(log, org, quotas, now_ms=t0 + 5 * day)["planning"] == {
        ("p", jan, "div"): (d("0.4"), d("0")), ("p", feb, "div"): (d("2.15"), d("5.5")),
        ("q", feb, "div"): (d("2.7"), d("5"))}
    # Gaps on 2026-01-11 (10 of 31 days gone): the team's January quota
    # 10000 expects 3226 (3225.8); adjusted closed + commit 5300 is ahead. The
    # division's Q1 quota 1000 expects 111 (10 of 90 days: 111.1), and 2400 is
    # ahead too; with a quota of 30000 it expects 3333 and is behind. r2's
    # January quota 400 expects 129 (129.03) of its empty pipeline: behind.
    # r1's Q1 quota 300 expects 33 and has 300. No quota (r1's January), no
    # verdict.
    today = datetime.date(2026, 1, 11)
    assert forecast_gaps(x["forecast"], quotas, today) == {("r2", "month", jan)}
    behind = {**quotas, ("div", "quarter", q1): 30000}
    assert forecast_gaps(x["forecast"], behind, today) == \
        {("div", "quarter", q1), ("r2", "month", jan)}
    # On the first day nothing is expected yet; February's rows are not current.
    assert forecast_gaps(x["forecast"], behind, datetime.date(2026, 1, 1)) == set()


if __name__ == "__main__":
    _self_check()
    _self_check_forecast()
    print("oracle self-check passed")

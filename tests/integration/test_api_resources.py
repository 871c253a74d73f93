"""ka-api's resources on the real stack against figures this test computes
from the rows it seeded (a private subtree), with pagination and ETag / 304;
every answer validated against docs/api/openapi.yaml."""
import datetime
import sys

from apilib import Api, Cases, Org, psql, token

KA_API, KACTL = sys.argv[1], sys.argv[2]
case = Cases()


org = Org()
s = org.s
api = Api(KA_API, extra={"KA_REDIS_PORT": "1"})  # no cache: figures from PostgreSQL
div = token(KACTL, org.d)
ops = token(KACTL, org.c, "--ops")
stages = [r[0] for r in psql("SELECT code FROM funnel_stage WHERE definition_id = 'default-8' "
                             "AND NOT is_closed ORDER BY ordinal")]
FIG = {stages[0]: (3, 300000, 30000), stages[1]: (2, 500000, 100000)}
for node in (org.r1, org.t1, org.rg, org.d):
    for code, (n, a, w) in FIG.items():
        psql(f"INSERT INTO funnel_state (node_id, definition_id, stage_code, open_count, "
             f"amount_minor, weighted_amount_minor) VALUES ('{node}', 'default-8', '{code}', "
             f"{n}, {a}, {w})")
psql(f"INSERT INTO funnel_health (node_id, definition_id, stage_code, metric, current_value, "
     f"baseline_value, ratio_bp, status, status_since, evaluated_at) VALUES ('{org.t1}', "
     f"'default-8', '{stages[0]}', 'count', 3, 4, 7500, 'good', now(), now())")
acc1, acc2 = f"a1-{s}", f"a2-{s}"
psql(f"""
INSERT INTO account (id, canonical_key, display_name, owner_rep_id) VALUES
 ('{acc1}', 'name:{acc1}', '甲公司 {s}', '{org.r1}'), ('{acc2}', 'name:{acc2}', 'B Co {s}', '{org.r2}');
INSERT INTO visit (id, event_id, account_id, rep_id, visited_at, objective) VALUES
 ('v1-{s}', 'ev1-{s}', '{acc1}', '{org.r1}', now() - interval '50 days', 'sell'),
 ('v2-{s}', 'ev2-{s}', '{acc2}', '{org.r2}', now() - interval '2 days', 'maintain');
INSERT INTO follow_up (account_id, visit_id, rep_id, action, interval_days, next_due_at, set_at) VALUES
 ('{acc1}', 'v1-{s}', '{org.r1}', 'continue', 40, now() - interval '10 days', now() - interval '50 days'),
 ('{acc2}', 'v2-{s}', '{org.r2}', 'continue', 20, now() + interval '18 days', now() - interval '2 days');
INSERT INTO actual (account_id, sku, node_id, period_month, amount_minor) VALUES
 ('{acc1}', 'sku-{s}', '{org.r1}', date_trunc('month', now() AT TIME ZONE 'UTC')::date, 120000),
 ('{acc1}', 'sku-{s}', '{org.r1}', (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '2 months')::date, 80000),
 ('{acc1}', 'sku-{s}', '{org.r1}', (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '13 months')::date, 999);
INSERT INTO alert_state (fingerprint, alert_id, type, severity, status, subject_kind, subject_id,
  summary, starts_at, ends_at, last_transition_at) VALUES
 ('f1-{s}', 'i1-{s}', 'visit_overdue', 'warning', 'firing', 'account', '{acc1}', 'overdue', now() - interval '3 hours', NULL, now() - interval '3 hours'),
 ('f2-{s}', 'i2-{s}', 'funnel_health', 'warning', 'resolved', 'node', '{org.t2}', 'health', now() - interval '2 hours', now() - interval '1 hour', now() - interval '1 hour'),
 ('f3-{s}', 'i3-{s}', 'funnel_health', 'critical', 'firing', 'node', '{org.t1}', 'health', now() - interval '30 minutes', NULL, now() - interval '30 minutes');
""")


def test_funnel_figures():
    r = api.get(f"/v1/nodes/{org.t1}/funnel", token=div)
    assert r.status_code == 200 and r.headers["X-KA-Source"] == "postgresql"
    assert int(r.headers["X-KA-Age-Ms"]) >= 0
    d = [x for x in r.json()["definitions"] if x["definition_id"] == "default-8"][0]
    got = {st["code"]: (st["count"], st["amount_minor"], st["weighted_amount_minor"])
           for st in d["stages"] if st["count"]}
    assert got == FIG, got
    assert d["open"] == {"count": 5, "amount_minor": 800000, "weighted_amount_minor": 130000}
    h = [st for st in d["stages"] if st["code"] == stages[0]][0]["health"]
    assert h == {"status": "good", "ratio_bp": 7500, "baseline": 4}, h


def test_etag_304():
    r = api.get(f"/v1/nodes/{org.t1}/funnel", token=div)
    r2 = api.get(f"/v1/nodes/{org.t1}/funnel", token=div,
                 headers={"If-None-Match": r.headers["ETag"]})
    assert r2.status_code == 304 and r2.content == b""
    assert api.get(f"/v1/nodes/{org.t1}/funnel", token=div,
                   headers={"If-None-Match": '"other"'}).status_code == 200


def test_tree_and_children_pages():
    seen, cur = [], None
    while True:
        p = {"limit": "2"} | ({"cursor": cur} if cur else {})
        j = api.get(f"/v1/nodes/{org.d}/tree", token=div, params=p).json()
        seen += [(x["depth"], x["id"]) for x in j["items"]]
        cur = j["next_cursor"]
        if not cur:
            break
    assert seen == sorted(seen) and len(seen) == 6, seen
    kids = api.get(f"/v1/nodes/{org.rg}/children", token=div, params={"limit": "1"}).json()
    assert [k["id"] for k in kids["items"]] == [org.t1] and kids["items"][0]["children"] == 1
    more = api.get(f"/v1/nodes/{org.rg}/children", token=div,
                   params={"cursor": kids["next_cursor"]}).json()
    assert [k["id"] for k in more["items"]] == [org.t2] and more["next_cursor"] is None
    n = api.get(f"/v1/nodes/{org.d}", token=div).json()
    assert n["children"] == 1 and n["descendants"] == 5 and n["path"] == []


def test_alerts_under_node():
    j = api.get(f"/v1/nodes/{org.t1}/alerts", token=div).json()
    assert [a["fingerprint"] for a in j["items"]] == [f"f3-{s}", f"f1-{s}"], j
    j = api.get(f"/v1/nodes/{org.d}/alerts", token=div, params={"status": "all"}).json()
    assert [a["fingerprint"] for a in j["items"]] == [f"f3-{s}", f"f2-{s}", f"f1-{s}"]
    p1 = api.get(f"/v1/nodes/{org.d}/alerts", token=div,
                 params={"status": "all", "limit": "2"}).json()
    p2 = api.get(f"/v1/nodes/{org.d}/alerts", token=div,
                 params={"status": "all", "cursor": p1["next_cursor"]}).json()
    assert [a["fingerprint"] for a in p2["items"]] == [f"f1-{s}"]


def test_distributor_alerts_under_the_company():
    psql(f"INSERT INTO alert_state (fingerprint, alert_id, type, severity, status, subject_kind, "
         f"subject_id, summary, starts_at, last_transition_at) VALUES ('fd-{s}', 'id-{s}', "
         f"'channel_diversion', 'warning', 'firing', 'distributor', 'dist-{s}', 'diversion', "
         f"now(), now() + interval '50 years')")  # on top of the list, past any test's clock offset
    root = token(KACTL, org.c)
    j = api.get(f"/v1/nodes/{org.c}/alerts", token=root, params={"limit": "5"}).json()
    assert f"fd-{s}" in [a["fingerprint"] for a in j["items"]], j
    assert [a["node_id"] for a in j["items"] if a["fingerprint"] == f"fd-{s}"] == [org.c]
    j = api.get(f"/v1/nodes/{org.d}/alerts", token=div, params={"status": "all"}).json()
    assert f"fd-{s}" not in [a["fingerprint"] for a in j["items"]]


def test_followups_overdue_first_and_coverage():
    j = api.get(f"/v1/nodes/{org.d}/followups", token=div).json()
    assert [f["account_id"] for f in j["items"]] == [acc1, acc2]
    assert j["items"][0]["overdue"] and j["items"][0]["days_overdue"] == 10
    assert not j["items"][1]["overdue"] and j["items"][1]["days_overdue"] is None
    j = api.get(f"/v1/nodes/{org.d}/followups", token=div, params={"overdue": "true"}).json()
    assert [f["account_id"] for f in j["items"]] == [acc1]
    c = api.get(f"/v1/nodes/{org.d}/coverage", token=div).json()
    assert [x["rep_id"] for x in c["reps"]] == [org.r1, org.r2]  # the overdue rep first
    assert c["totals"]["accounts_followed"] == 2 and c["totals"]["overdue"] == 1


def test_account():
    a = api.get(f"/v1/accounts/{acc1}", token=div).json()
    assert a["revenue_12m_minor"] == 200000, a  # the 13-month-old row is outside
    assert a["visits"]["total"] == 1 and a["visits"]["last_90_days"] == 1
    assert [x["fingerprint"] for x in a["alerts"]] == [f"f1-{s}"]


def test_forecast_empty_is_valid():
    j = api.get(f"/v1/nodes/{org.t1}/forecast", token=div, params={"all": "true"}).json()
    assert j == {"node": org.t1, "periods": []}


def test_dead_letters_newest_first():
    for i in range(3):
        psql(f"INSERT INTO dead_letter (consumer_group, source_topic, source_partition, "
             f"source_offset, reason, detail) VALUES ('g-{s}', 't', 0, {i}, 'decode_failed', 'd')")
    j = api.get("/v1/deadletters", token=ops, params={"group": f"g-{s}", "limit": "2"}).json()
    assert [x["source_offset"] for x in j["items"]] == [2, 1]
    j = api.get("/v1/deadletters", token=ops,
                params={"group": f"g-{s}", "cursor": j["next_cursor"]}).json()
    assert [x["source_offset"] for x in j["items"]] == [0] and j["next_cursor"] is None
    # where a JSON event failed, as the worker recorded it (migration 0020), and the
    # record's time (0026)
    psql(f"INSERT INTO dead_letter (consumer_group, source_topic, source_partition, "
         f"source_offset, reason, detail, content_mode, json_path, source_time) VALUES "
         f"('j-{s}', 't', 0, 7, 'bad_value', 'd', 'json', '$.lines[0].quantityMilli', "
         f"'2026-11-30T08:00:00Z')")
    [x] = api.get("/v1/deadletters", token=ops, params={"group": f"j-{s}"}).json()["items"]
    assert (x["content_mode"], x["json_path"]) == ("json", "$.lines[0].quantityMilli"), x
    assert (datetime.datetime.fromisoformat(x["source_time"])
            == datetime.datetime(2026, 11, 30, 8, tzinfo=datetime.timezone.utc)), x


for f in [test_funnel_figures, test_etag_304, test_tree_and_children_pages, test_alerts_under_node,
          test_distributor_alerts_under_the_company,
          test_followups_overdue_first_and_coverage, test_account, test_forecast_empty_is_valid,
          test_dead_letters_newest_first]:
    case(f)
api.stop()
case.exit()

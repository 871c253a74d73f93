"""The manager's page in a real browser (Debian's chromium, driven by
Playwright) on the real stack: opportunity, visit and forecast events go
through the real workers, ka-api serves the page, and the test
  - logs in with a team's token and reads the funnel, forecast, alerts and
    overdue follow-ups off the page, asserting they equal the API's answers
    (and the figures the events imply), with the bars coloured by health;
  - drills down to a rep, an account and an opportunity's timeline;
  - sends one more event and waits for the page to show it unprompted;
  - opens another team: the page shows the 403;
  - writes screenshots into the artifact folder.

usage: test_page.py KA_API KACTL OPP_WORKER VISIT_WORKER FORECAST_WORKER PROTO_DIR ARTIFACTS"""
import datetime
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from apilib import Api, Cases, Org, dsn_as, psql, token  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

KA_API, KACTL, OPP_W, VISIT_W, FC_W, PROTO_DIR, ARTIFACTS = sys.argv[1:8]
CHROMIUM = os.environ.get("KA_CHROMIUM", "/usr/bin/chromium")
LIVE_UPDATE_S = 10  # the page polls every 2 s; a new event must show well within this
case = Cases()


# --- the protobuf messages, as an outside CRM would build them ----------------------------
gen = tempfile.mkdtemp(prefix="ka-browser-")
protos = [os.path.join("ka/v1", f) for f in os.listdir(os.path.join(PROTO_DIR, "ka/v1"))
          if f.endswith(".proto")]
subprocess.run(["protoc", f"-I{PROTO_DIR}", f"--python_out={gen}", *protos], check=True)
sys.path.insert(0, gen)
from ka.v1 import common_pb2, opportunity_pb2, visit_pb2  # noqa: E402

# --- a private subtree, its baselines and quotas ---------------------------------------------
org = Org()
s = org.s
today = datetime.datetime.now(datetime.timezone.utc).date()
month = today.replace(day=1)
quarter = month.replace(month=(month.month - 1) // 3 * 3 + 1)
next_month = (month + datetime.timedelta(days=32)).replace(day=1)
close_date = (next_month - datetime.timedelta(days=1)).isoformat()  # this month's last day
psql(f"""
UPDATE org_node SET name = '华东一组 {s}' WHERE id = '{org.t1}';
UPDATE org_node SET name = '王小明 {s}' WHERE id = '{org.r1}';
INSERT INTO funnel_baseline (node_id, definition_id, stage_code, metric, value, source, valid_from,
  valid_to) VALUES
 ('{org.t1}', 'default-8', '01', 'count', 2, 'explicit', current_date - 1, current_date + 30),
 ('{org.t1}', 'default-8', '02', 'count', 3, 'explicit', current_date - 1, current_date + 30),
 ('{org.t1}', 'default-8', '03', 'count', 1, 'explicit', current_date - 1, current_date + 30);
INSERT INTO quota (node_id, period_kind, period_start, amount_minor) VALUES
 ('{org.t1}', 'month', '{month}', 5000000), ('{org.t1}', 'quarter', '{quarter}', 12000000);
""")

brokers = os.environ.get("KA_KAFKA_BROKERS", "127.0.0.1:19092")
topics = {k: f"browser.{k}.{s}" for k in ("opp", "visit", "dlq", "alert", "forecast", "planning")}
admin = AdminClient({"bootstrap.servers": brokers})
for fut in admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()]).values():
    fut.result(30)
producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
seq = [0]


def header(h, ago_s=0):
    seq[0] += 1
    h.event_id = f"browser-{s}-{seq[0]}"
    h.occurred_at_ms = int(time.time() * 1000) - int(ago_s * 1000) - 60000 + seq[0] * 10
    h.producer = "crm-browser-test"


def send_opp(ev, key):
    header(ev.header)
    producer.produce(topics["opp"], key=key.encode(), value=ev.SerializeToString())


def create(opp, rep, stage, amount, account):
    ev = opportunity_pb2.OpportunityEvent(opportunity_id=opp, actor_id=rep)
    c = ev.created
    c.account.name = account
    c.owner_rep_id, c.stage_code, c.amount_minor = rep, stage, amount
    c.expected_close_date = close_date
    c.name = f"{account} 项目"
    send_opp(ev, opp)


def move(opp, stage):
    ev = opportunity_pb2.OpportunityEvent(opportunity_id=opp)
    ev.stage_changed.to_stage_code = stage
    send_opp(ev, opp)


def confirm(opp, rep, kind=common_pb2.PERIOD_KIND_MONTH, category=0):
    ev = opportunity_pb2.OpportunityEvent(opportunity_id=opp, actor_id=rep)
    p = ev.forecast_confirmed.period
    p.kind, p.year = kind, month.year
    p.number = month.month if kind == common_pb2.PERIOD_KIND_MONTH else (month.month - 1) // 3 + 1
    ev.forecast_confirmed.category = category
    send_opp(ev, opp)


ACC1, ACC2 = f"华东精密机械有限公司 {s}", f"Suzhou New Materials Co. {s}"
opp = {k: f"o{k}-{s}" for k in ("a1", "a2", "a3", "b1", "b2", "c1", "d1", "e1")}
# team 1: three at 01 (150% of its baseline 2: excellent), two at 02 (67% of 3: warning,
# which fires an alert), one at 03 (100% of 1: good), one moved 04 -> 05; team 2: one.
for k, amount, acc in (("a1", 1200000, ACC1), ("a2", 800000, ACC2), ("a3", 450000, ACC1)):
    create(opp[k], org.r1, "01", amount, acc)
create(opp["b1"], org.r1, "02", 2600000, ACC1)
create(opp["b2"], org.r1, "02", 700000, ACC2)
create(opp["c1"], org.r1, "03", 1500000, ACC2)
create(opp["d1"], org.r1, "04", 3100000, ACC1)
move(opp["d1"], "05")
create(opp["e1"], org.r2, "02", 990000, f"B Co {s}")
confirm(opp["d1"], org.r1, category=common_pb2.FORECAST_CATEGORY_COMMIT)
confirm(opp["c1"], org.r1)
confirm(opp["b1"], org.r1, kind=common_pb2.PERIOD_KIND_QUARTER)
# a visit 30 days ago asking for a revisit within 20: ten days overdue
v = visit_pb2.VisitEvent(rep_id=org.r1)
header(v.header)
v.account.name = ACC1
v.visited_at_ms = int(time.time() * 1000) - 30 * 86400 * 1000
v.objective = visit_pb2.VISIT_OBJECTIVE_SELL
v.follow_up.action = visit_pb2.FOLLOW_UP_ACTION_CONTINUE
v.follow_up.interval = visit_pb2.REVISIT_INTERVAL_20_DAYS
producer.produce(topics["visit"], key=ACC1.encode(), value=v.SerializeToString())
producer.flush(30)

# --- the workers and ka-api ----------------------------------------------------------------
ROLES = {OPP_W: "ka_opportunity_worker", VISIT_W: "ka_visit_worker", FC_W: "ka_forecast_worker"}
workers = []
for path in (OPP_W, VISIT_W, FC_W):
    env = dict(os.environ, KA_PG_DSN=dsn_as(os.environ["KA_PG_DSN"], ROLES[path]),
               KA_TOPIC_OPPORTUNITY=topics["opp"], KA_TOPIC_VISIT=topics["visit"],
               KA_TOPIC_DEADLETTER=topics["dlq"], KA_TOPIC_ALERT=topics["alert"],
               KA_TOPIC_FORECAST=topics["forecast"], KA_TOPIC_PLANNING=topics["planning"],
               KA_CONSUMER_GROUP=f"browser-{os.path.basename(path)}-{s}", KA_BATCH_MAX_MS="10",
               KA_HTTP_PORT="0")
    log = open(os.path.join(ARTIFACTS, f"{os.path.basename(path)}.log"), "w")
    workers.append(subprocess.Popen([path], env=env, stdout=log, stderr=log))
api = Api(KA_API)
team = token(KACTL, org.t1)


def wait_for(what, fn, timeout=60):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def get(path, tok=team, **params):
    r = api.get(path, token=tok, params=params or None)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r.json()


def settled():
    f = get(f"/v1/nodes/{org.t1}/funnel")["definitions"]
    fc = get(f"/v1/nodes/{org.t1}/forecast")["periods"]
    fu = get(f"/v1/nodes/{org.t1}/followups", overdue="true")["items"]
    al = get(f"/v1/nodes/{org.t1}/alerts")["items"]
    return (f and f[0]["open"]["count"] == 7 and len(fc) == 2 and fu and al) or None


def eventually(fn, timeout=6):
    """fn's assertions, retried for a few page refreshes: a worker may still
    be committing the last figures (the forecast worker debounces) when the
    page and the API are read a moment apart. A page that shows a wrong
    figure fails all the same, once the time is up."""
    end = time.time() + timeout
    while True:
        try:
            return fn()
        except AssertionError:
            if time.time() > end:
                raise
            time.sleep(0.5)


def minor(text):
    """A money figure as the page shows it ("1,234.50") in minor units."""
    t = text.strip().replace(",", "")
    neg = t.startswith("-")
    whole, _, frac = t.lstrip("-").partition(".")
    v = int(whole) * 100 + int((frac + "00")[:2])
    return -v if neg else v


def number(text):
    return int(text.strip().replace(",", ""))


def pct_text(bp):
    return "–" if bp is None else f"{bp / 100:.1f}%"


# --- the browser ---------------------------------------------------------------------------
pw = sync_playwright().start()
browser = pw.chromium.launch(executable_path=CHROMIUM)
ctx = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
page = ctx.new_page()
console_errors = []
# The browser logs each refused request (the 401 and 403 the test asks for);
# anything else logged as an error is the page's fault.
page.on("console", lambda m: console_errors.append(m.text)
        if m.type == "error" and "Failed to load resource" not in m.text else None)
page.on("pageerror", lambda e: console_errors.append(str(e)))
HEALTH_FILL = {"excellent": "rgb(46, 125, 50)", "good": "rgb(224, 161, 0)",
               "warning": "rgb(198, 40, 40)", "none": "rgb(154, 165, 177)"}


def page_funnel():
    rows = page.locator("#funnel [data-definition='default-8'] tbody tr")
    out = {}
    for i in range(rows.count()):
        r = rows.nth(i)
        out[r.get_attribute("data-stage")] = {
            "count": number(r.locator(".count").inner_text()),
            "amount": minor(r.locator(".amount").inner_text()),
            "weighted": minor(r.locator(".weighted").inner_text()),
            "health": r.get_attribute("data-health"),
            "fill": r.locator("rect.fill").evaluate("e => getComputedStyle(e).fill"),
        }
    return out


def api_funnel(node):
    d = [x for x in get(f"/v1/nodes/{node}/funnel")["definitions"]
         if x["definition_id"] == "default-8"][0]
    return {st["code"]: {"count": st["count"], "amount": st["amount_minor"],
                         "weighted": st["weighted_amount_minor"],
                         "health": (st["health"] or {}).get("status")
                         if (st["health"] or {}).get("status") in HEALTH_FILL else "none"}
            for st in d["stages"]}, d["open"]


def assert_funnel_matches(node):
    want, open_ = api_funnel(node)
    got = page_funnel()
    assert set(got) == set(want), (sorted(got), sorted(want))
    for code, w in want.items():
        g = got[code]
        assert (g["count"], g["amount"], g["weighted"], g["health"]) == \
            (w["count"], w["amount"], w["weighted"], w["health"]), (code, g, w)
        assert g["fill"] == HEALTH_FILL[w["health"]], (code, g["fill"], w["health"])
    foot = page.locator("#funnel [data-definition='default-8'] tfoot")
    assert number(foot.locator(".count").inner_text()) == open_["count"]
    assert minor(foot.locator(".amount").inner_text()) == open_["amount_minor"]
    assert minor(foot.locator(".weighted").inner_text()) == open_["weighted_amount_minor"]
    return got


def login():
    page.goto(api.base + "/")
    page.fill("#token", team)
    page.click("#login-button")
    page.wait_for_selector(f"#node-name[data-node='{org.t1}']")
    page.wait_for_selector("#funnel [data-definition='default-8']")
    page.wait_for_selector("#forecast .period")
    assert not page.is_visible("#login") and page.is_visible("#logout")
    assert page.evaluate("sessionStorage.getItem('ka_token')") == team
    assert f"华东一组 {s}" in page.inner_text("#node-name")


def funnel_equals_api():
    got = assert_funnel_matches(org.t1)
    # and the figures the events imply
    assert {c: got[c]["count"] for c in ("01", "02", "03", "05")} == \
        {"01": 3, "02": 2, "03": 1, "05": 1}, got
    assert got["01"]["amount"] == 2450000 and got["05"]["amount"] == 3100000, got
    assert (got["01"]["health"], got["02"]["health"], got["03"]["health"]) == \
        ("excellent", "warning", "good"), got


def forecast_equals_api():
    want = get(f"/v1/nodes/{org.t1}/forecast")["periods"]
    assert [p["label"] for p in want] == [month.strftime("%Y-%m"),
                                          f"{quarter.year}-Q{(quarter.month - 1) // 3 + 1}"]
    for p in want:
        box = page.locator(f"#forecast .period[data-period='{p['label']}']")
        shown = {k: box.locator(f"dd.{k}").inner_text() for k in ("quota", "coverage", "gap")}
        assert minor(shown["quota"]) == p["quota_minor"], (p["label"], shown, p["quota_minor"])
        assert shown["coverage"] == pct_text(p["coverage_bp"]["adjusted"]), (shown, p["coverage_bp"])
        assert minor(shown["gap"]) == p["gap_minor"]["adjusted"], (shown, p["gap_minor"])
        for cat in ("closed", "commit", "best_case", "pipeline", "weighted_pipeline"):
            row = box.locator(f"tr[data-category='{cat}']")
            assert minor(row.locator(".raw").inner_text()) == p["raw"][cat], (p["label"], cat)
            assert minor(row.locator(".adjusted").inner_text()) == p["adjusted"][cat], (p["label"], cat)
    m = want[0]
    assert m["quota_minor"] == 5000000 and m["raw"]["commit"] == 3100000, m


def alerts_and_followups_equal_api():
    al = get(f"/v1/nodes/{org.t1}/alerts", limit="20")["items"]
    shown = page.locator("#alerts li").evaluate_all("ls => ls.map(l => l.dataset.fingerprint)")
    assert shown == [a["fingerprint"] for a in al] and shown, (shown, al)
    assert any(a["type"] == "funnel_health" and a["subject_id"] == org.t1 for a in al), al
    fu = get(f"/v1/nodes/{org.t1}/followups", overdue="true", limit="20")["items"]
    rows = page.locator("#followups tbody tr")
    assert rows.count() == len(fu) == 1, fu
    assert rows.nth(0).get_attribute("data-account") == fu[0]["account_id"]
    assert ACC1 in rows.nth(0).inner_text()
    assert number(rows.nth(0).locator(".days").inner_text()) == fu[0]["days_overdue"] == 10


def updates_after_a_new_event():
    before = number(page.locator("#funnel tr[data-stage='01'] .count").inner_text())
    create(f"olive-{s}", org.r1, "01", 330000, ACC2)
    producer.flush(30)
    t0 = time.time()
    page.wait_for_function(
        "n => { const c = document.querySelector(\"#funnel tr[data-stage='01'] .count\");"
        " return c && c.textContent.trim() === String(n); }",
        arg=before + 1, timeout=LIVE_UPDATE_S * 1000)
    print(f"     the page showed the new event {time.time() - t0:.1f} s after it was sent")
    eventually(lambda: assert_funnel_matches(org.t1))


def screenshot():
    page.wait_for_timeout(300)
    page.screenshot(path=os.path.join(ARTIFACTS, "manager-page.png"), full_page=True)


def chinese_labels():
    page.click("#lang")
    page.wait_for_function("document.querySelector('#funnel h2').textContent === '销售漏斗'")
    assert page.inner_text("#forecast h2") == "销售预测" and page.inner_text("#lang") == "English"
    eventually(lambda: assert_funnel_matches(org.t1))
    page.screenshot(path=os.path.join(ARTIFACTS, "manager-page-zh.png"), full_page=True)
    page.click("#lang")
    page.wait_for_function("document.querySelector('#funnel h2').textContent === 'Funnel'")


def drill_down():
    page.click(f"#children a[data-node='{org.r1}']")
    page.wait_for_selector(f"#node-name[data-node='{org.r1}']")
    page.wait_for_selector("#funnel [data-definition='default-8']")
    eventually(lambda: assert_funnel_matches(org.r1))
    page.click("#followups a[data-account]")
    page.wait_for_selector("#account-name")
    acc_id = page.get_attribute("#account-name", "data-account")
    a = get(f"/v1/accounts/{acc_id}")
    assert a["display_name"] == ACC1 and ACC1 in page.inner_text("#account-name")
    shown = page.locator("table.deals tbody tr").evaluate_all(
        "rs => rs.map(r => r.dataset.opportunity)")
    assert shown == [d["id"] for d in a["deals"]], (shown, a["deals"])
    assert minor(page.inner_text("dd.revenue")) == a["revenue_12m_minor"]
    page.click(f"table.deals a[data-opportunity='{opp['d1']}']")
    page.wait_for_selector(f"#opportunity-id[data-opportunity='{opp['d1']}']")
    o = get(f"/v1/opportunities/{opp['d1']}")
    kinds = page.locator("ol.timeline li").evaluate_all("ls => ls.map(l => l.dataset.kind)")
    assert kinds == [e["kind"] for e in o["timeline"]] and "stage" in kinds, (kinds, o["timeline"])
    assert "04 → 05" in page.inner_text("ol.timeline")
    page.screenshot(path=os.path.join(ARTIFACTS, "manager-page-opportunity.png"), full_page=True)


def another_team_is_403():
    r = api.get(f"/v1/nodes/{org.t2}", token=team)
    assert r.status_code == 403, r.status_code
    page.goto(f"{api.base}/#/node/{org.t2}")
    box = page.wait_for_selector("#error [data-status='403']")
    text = box.inner_text()
    assert "403" in text and "Not allowed" in text, text
    assert r.json()["detail"] in text, (text, r.json())
    assert page.locator("#funnel").count() == 0
    page.screenshot(path=os.path.join(ARTIFACTS, "manager-page-403.png"))


def bad_token_is_refused():
    p = ctx.new_page()
    p.goto(api.base + "/")
    p.fill("#token", "ka_" + "0" * 64)
    p.click("#login-button")
    p.wait_for_function("document.querySelector('#login-error').textContent.length > 0")
    assert "unknown token" in p.inner_text("#login-error")
    assert p.evaluate("sessionStorage.getItem('ka_token')") is None
    p.close()


def page_headers():
    import requests
    r = requests.get(api.base + "/", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert requests.get(api.base + "/app.js", timeout=5).headers["Content-Type"].startswith(
        "text/javascript")
    r2 = requests.get(api.base + "/app.js", headers={"If-None-Match": r.headers["ETag"]}, timeout=5)
    assert r2.status_code == 200  # another file's ETag
    js = requests.get(api.base + "/app.js", timeout=5)
    assert requests.get(api.base + "/app.js", headers={"If-None-Match": js.headers["ETag"]},
                        timeout=5).status_code == 304


try:
    case("the workers settle (figures visible through the API)",
         lambda: wait_for("the workers' figures", settled))
    case("the page's headers, types and ETags", page_headers)
    case("log in with a team token", login)
    case("the funnel on the page equals the API's, coloured by health",
         lambda: eventually(funnel_equals_api))
    case("the forecast on the page equals the API's", lambda: eventually(forecast_equals_api))
    case("alerts newest first and overdue follow-ups equal the API's",
         lambda: eventually(alerts_and_followups_equal_api))
    case("the page updates by itself after a new event", updates_after_a_new_event)
    case("screenshot", screenshot)
    case("Chinese labels, the same figures", chinese_labels)
    case("drill down: a rep, an account, an opportunity's timeline", drill_down)
    case("another team: the page shows 403", another_team_is_403)
    case("a bad token stays at the login with its reason", bad_token_is_refused)
    case("no script errors in the page", lambda: None if not console_errors else
         (_ for _ in ()).throw(AssertionError(console_errors)))
finally:
    browser.close()
    pw.stop()
    api.stop()
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(30)
        except subprocess.TimeoutExpired:
            w.kill()
case.exit()

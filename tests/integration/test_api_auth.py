"""ka-api's tokens and scoping on the real stack: every denial, each 401
reason, the ops-only dead letters, the rate limit; every answer validated
against docs/api/openapi.yaml."""
import sys
from concurrent.futures import ThreadPoolExecutor

from apilib import Api, Cases, Org, kactl, psql, token

KA_API, KACTL = sys.argv[1], sys.argv[2]
case = Cases()


org = Org()
api = Api(KA_API, extra={"KA_API_RATE_PER_S": "40"})
t1 = token(KACTL, org.t1)
div = token(KACTL, org.d)
ops = token(KACTL, org.c, "--ops")


def err(resp, status, reason=None):
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error", "detail", "parameter"}, body
    if reason:
        assert reason in body["detail"], body


def test_missing_token():
    err(api.get(f"/v1/nodes/{org.t1}"), 401, "missing token")


def test_malformed_tokens():
    err(api.get(f"/v1/nodes/{org.t1}", headers={"Authorization": "Basic abc"}), 401, "malformed")
    err(api.get(f"/v1/nodes/{org.t1}", token="ka_123"), 401, "malformed")
    err(api.get(f"/v1/nodes/{org.t1}", token=t1.upper()), 401, "malformed")
    err(api.get(f"/v1/nodes/{org.t1}", headers={"Authorization": "Bearer " + "x" * 5000}), 401,
        "malformed")


def test_unknown_token():
    err(api.get(f"/v1/nodes/{org.t1}", token="ka_" + "0" * 64), 401, "unknown token")


def test_revoked_token():
    t = token(KACTL, org.t1)
    assert api.get("/v1/me", token=t).status_code == 200
    tid = api.get("/v1/me", token=t).json()["token_id"]
    r = kactl(KACTL, "token", "revoke", tid)
    assert r.returncode == 0, r.stderr
    err(api.get("/v1/me", token=t), 401, "token revoked")
    assert tid in kactl(KACTL, "token", "list", "--all").stdout
    assert tid not in kactl(KACTL, "token", "list").stdout


def test_expired_token():
    t = token(KACTL, org.t1, "--expires", "1")
    tid = api.get("/v1/me", token=t).json()["token_id"]
    psql(f"UPDATE api_token SET created_at = now() - interval '3 days', "
         f"expires_at = now() - interval '1 day' WHERE id = '{tid}'")
    err(api.get("/v1/me", token=t), 401, "token expired")


def test_token_of_a_deactivated_node():
    t = token(KACTL, org.t2)
    assert api.get("/v1/me", token=t).status_code == 200
    psql(f"UPDATE org_node SET active = false WHERE id = '{org.t2}'")
    try:
        err(api.get("/v1/me", token=t), 401, "node deactivated")
        err(api.get(f"/v1/nodes/{org.t2}/funnel", token=t), 401, "node deactivated")
        assert api.get(f"/v1/nodes/{org.t2}", token=div).status_code == 200  # others still see it
    finally:
        psql(f"UPDATE org_node SET active = true WHERE id = '{org.t2}'")


def test_team_token_sees_its_team_only():
    assert api.get(f"/v1/nodes/{org.t1}", token=t1).status_code == 200
    assert api.get(f"/v1/nodes/{org.r1}/funnel", token=t1).status_code == 200
    err(api.get(f"/v1/nodes/{org.t2}", token=t1), 403, org.t2)
    err(api.get(f"/v1/nodes/{org.r2}/alerts", token=t1), 403)
    err(api.get(f"/v1/nodes/{org.d}/forecast", token=t1), 403)
    err(api.get(f"/v1/divisions/{org.d}/planning", token=t1), 403)


def test_division_token_sees_its_teams():
    for n in (org.d, org.t1, org.t2, org.r2):
        assert api.get(f"/v1/nodes/{n}", token=div).status_code == 200
    err(api.get(f"/v1/nodes/{org.c}", token=div), 403)
    path = api.get(f"/v1/nodes/{org.r2}", token=div).json()["path"]
    assert path == [org.d, org.rg, org.t2], path  # nothing above the token's node


def test_account_and_opportunity_of_another_team():
    a = f"acc-{org.s}"
    psql(f"INSERT INTO account (id, canonical_key, display_name, owner_rep_id) "
         f"VALUES ('{a}', 'name:{a}', 'Acme {org.s}', '{org.r2}')")
    err(api.get(f"/v1/accounts/{a}", token=t1), 403, a)
    assert api.get(f"/v1/accounts/{a}", token=div).status_code == 200
    err(api.get(f"/v1/accounts/nope-{org.s}", token=div), 404)
    err(api.get(f"/v1/opportunities/nope-{org.s}", token=div), 404)


def test_unknown_node_is_404():
    err(api.get(f"/v1/nodes/none-{org.s}", token=ops), 404)


def test_dead_letters_are_for_ops():
    err(api.get("/v1/deadletters", token=div), 403, "ops")
    assert api.get("/v1/deadletters", token=ops).status_code == 200


def test_bad_parameters():
    for path, params, p in [
        (f"/v1/nodes/{org.t1}/children", {"limit": "0"}, "limit"),
        (f"/v1/nodes/{org.t1}/children", {"limit": "x"}, "limit"),
        (f"/v1/nodes/{org.t1}/children", {"cursor": "zz"}, "cursor"),
        (f"/v1/nodes/{org.t1}/alerts", {"status": "loud"}, "status"),
        (f"/v1/nodes/{org.t1}/followups", {"overdue": "maybe"}, "overdue"),
        (f"/v1/nodes/{org.t1}/forecast", {"period": "2026-13"}, "period"),
        (f"/v1/nodes/{org.t1}/forecast", {"period": "2026-Q1", "period_kind": "month"},
         "period_kind"),
        (f"/v1/nodes/{org.t1}/coverage", {"month": "2026-1"}, "month"),
        (f"/v1/divisions/{org.t1}/planning", {}, "division"),
    ]:
        r = api.get(path, token=div, params=params)
        err(r, 400)
        assert r.json()["parameter"] == p, (path, r.json())


def test_rate_limit():
    t = token(KACTL, org.t1)
    # A burst from 8 connections: one after another, a slow machine (or the
    # sanitizers) can stay under 40 a second and never earn the 429.
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: api.get("/v1/me", token=t).status_code, range(120)))
    assert 429 in codes, codes
    assert set(codes) <= {200, 429}, codes
    r = api.get("/v1/me", token=t)
    if r.status_code == 429:
        assert r.headers.get("Retry-After") == "1"


def test_cors_is_off():
    r = api.get("/v1/me", token=t1, headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


for f in [test_missing_token, test_malformed_tokens, test_unknown_token, test_revoked_token,
          test_expired_token, test_token_of_a_deactivated_node,
          test_team_token_sees_its_team_only,
          test_division_token_sees_its_teams, test_account_and_opportunity_of_another_team,
          test_unknown_node_is_404, test_dead_letters_are_for_ops, test_bad_parameters,
          test_rate_limit, test_cors_is_off]:
    case(f)
api.stop()
case.exit()

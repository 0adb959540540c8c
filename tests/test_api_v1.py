"""``/api/v1`` against a real ``demandloop serve``: tokens and scopes, accounts (filters,
sort, keyset pages) checked against pandas over a copy of the same workspace, one account,
people, every report equal to ``demandloop report <name> --json``, CSV imports, rescore
jobs, and schemathesis over the published OpenAPI schema (no request may end in a 5xx)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pandas as pd
import pytest

from demandloop.serve import keys as keystore
from demandloop.serve import tokens
from tests.collector_helpers import free_port, start_subprocess
from tests.test_every_command import _run


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A scored workspace served by a real 'demandloop serve'; *twin* is a copy of it the
    tests read directly (DuckDB: the server's file is the server's)."""
    from demandloop import simulate as sim
    from demandloop.workspace import Workspace

    base = tmp_path_factory.mktemp("api")
    market = base / "market"
    sim.simulate(accounts=80, days=40, seed=5, out=market)
    served = base / "served"
    with Workspace.open(served) as ws:
        ws.load_simulation(market, spend=True)
        ws.resolve()
        ws.score_history(7)
    (served / "demandloop.toml").write_text("[collector]\nrescore_minutes = 0\n")
    twin = base / "twin"
    shutil.copytree(served, twin)
    minted = {scope: tokens.create(served, scope, f"test-{scope}")[0]
              for scope in tokens.SCOPES}
    key, _ = keystore.create(served, "default", "sdk")
    port = free_port()
    proc = start_subprocess(served, port)
    try:
        yield {"url": f"http://127.0.0.1:{port}/api/v1", "dir": served, "twin": twin,
               "tokens": minted, "key": key, "market": market}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def _get(api: dict[str, Any], path: str, scope: str = "read", **params: Any) -> httpx.Response:
    return httpx.get(api["url"] + path, params=params, timeout=60,
                     headers={"Authorization": f"Bearer {api['tokens'][scope]}"})


def _view(twin: Path) -> pd.DataFrame:
    con = duckdb.connect(str(twin / "demandloop.duckdb"), read_only=True)
    try:
        return con.execute("SELECT * FROM account_view").df()
    finally:
        con.close()


def _pages(api: dict[str, Any], limit: int, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        q = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = _get(api, "/accounts", **q)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["data"]) <= limit
        rows += body["data"]
        cursor = body["next"]
        if cursor is None:
            return rows
    raise AssertionError("pagination did not end")


def _expected_order(df: pd.DataFrame, column: str, descending: bool) -> list[str]:
    """Sort NULLs last, ties by account id: what the API promises, computed by pandas."""
    known = df[df[column].notna()]
    known = known.sort_values([column, "account_id"], ascending=[not descending, True])
    return [*known["account_id"], *sorted(df[df[column].isna()]["account_id"])]


@pytest.mark.parametrize("sort", ["-priority", "fit", "-engagement", "name", "-employees",
                                  "-updated_at"])
def test_keyset_pages_walk_every_account_once_in_order(api: dict[str, Any], sort: str) -> None:
    df = _view(api["twin"])
    got = [r["account_id"] for r in _pages(api, 7, sort=sort)]
    assert got == _expected_order(df, sort.lstrip("-"), sort.startswith("-"))
    assert len(got) == len(set(got)) == len(df)


def test_filters_match_pandas(api: dict[str, Any]) -> None:
    df = _view(api["twin"])
    stage = df["stage"].dropna().value_counts().index[0]
    cases: list[tuple[dict[str, Any], pd.Series]] = [
        ({"stage": stage}, df["stage"] == stage),
        ({"target": "true"}, df["target"].fillna(False).astype(bool)),
        ({"surging": "true"}, df["surging"].fillna(False).astype(bool)),
        ({"intent_min": 2.5}, df["intent"] >= 2.5),
        ({"band": df["band"].dropna().iloc[0], "target": "false"},
         (df["band"] == df["band"].dropna().iloc[0]) & ~df["target"].fillna(False)),
        ({"industry": df["industry"].dropna().iloc[0]}, df["industry"] == df["industry"]
         .dropna().iloc[0]),
        ({"q": df["name"].iloc[3][:4].upper()},
         df["name"].str.lower().str.contains(df["name"].iloc[3][:4].lower(), regex=False)
         | df["domain"].str.lower().str.contains(df["name"].iloc[3][:4].lower(),
                                                 regex=False)),
    ]
    topics = df["surge_topics"].dropna().map(orjson.loads)
    topic = max({t for ts in topics for t in ts}, key=lambda t: sum(t in ts for ts in topics))
    cases += [
        ({"country": df["country"].dropna().iloc[0]}, df["country"] == df["country"]
         .dropna().iloc[0]),
        ({"employees_min": 200, "employees_max": 999}, df["employees"].between(200, 999)),
        ({"topic": topic}, df["surge_topics"].map(
            lambda v: isinstance(v, str) and topic in orjson.loads(v))),
    ]
    # text as people type it (they found nothing): another case, and an empty value is no
    # filter, as an empty search
    industry, country = df["industry"].dropna().iloc[0], df["country"].dropna().iloc[0]
    cases += [({"industry": industry.upper()}, df["industry"] == industry),
              ({"country": country.lower()}, df["country"] == country),
              ({"topic": topic.upper()}, cases[-1][1]),
              # a stage or band too: one of the names there are, in any case
              ({"stage": stage.upper()}, df["stage"] == stage),
              ({"band": df["band"].dropna().iloc[0].lower()},
               df["band"] == df["band"].dropna().iloc[0]),
              ({"owner": "", "industry": ""}, df["account_id"].notna())]
    for params, mask in cases:
        got = sorted(r["account_id"] for r in _pages(api, 50, **params))
        want = sorted(df[mask.fillna(False)]["account_id"])
        assert got == want, params
        assert want, f"the case {params} tests nothing"


def _cursor(value: Any, key: str) -> str:
    """A cursor as a client might edit one by hand (the API's own encoding)."""
    return base64.urlsafe_b64encode(json.dumps([value, key]).encode()).decode().rstrip("=")


def test_bad_parameters_are_one_clear_4xx(api: dict[str, Any]) -> None:
    # a cursor of the right shape whose value is not of the sort field's type (a number
    # sorting by name, text sorting by priority or time) is the client's error too
    edited = [({"sort": "name", "cursor": _cursor(123, "a")}, 400),
              ({"sort": "-priority", "cursor": _cursor("high", "a")}, 400),
              ({"sort": "updated_at", "cursor": _cursor("yesterday", "a")}, 400),
              ({"sort": "fit", "cursor": _cursor(True, "a")}, 400)]
    for params, status in (({"sort": "-nonsense"}, 400), ({"limit": 0}, 422),
                           ({"cursor": "not-a-cursor"}, 400), ({"intent_min": "x"}, 422),
                           *edited):
        r = _get(api, "/accounts", **params)
        assert r.status_code == status, (params, r.text)
        body = r.json()
        assert body["success"] is False and body["error"]["message"]
    # not a number at all: said so (not that NaN exceeds the limit)
    for value in ("nan", "inf"):
        r = _get(api, "/accounts", intent_min=value)
        assert r.status_code == 422 and "finite number" in r.text, r.text
    # a stage or band no account can have: named, with the ones there are, not an empty page
    for params, known in (({"stage": ["customer", "custmer"]}, "stage is one of: "),
                          ({"band": "strng"}, "band is one of: Strong, Moderate, Weak")):
        r = _get(api, "/accounts", **params)
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith("unknown ") and known in message, message
    assert "custmer" in _get(api, "/accounts", stage=["customer", "custmer"]).text
    # the stage of accounts no rule matches is one too
    assert _get(api, "/accounts", stage="unaware").status_code == 200
    # a parameter the endpoint does not take is a typo, not the unfiltered first page
    for path, params, named in (("/accounts", {"intent": 2}, "'intent'"),
                                ("/people", {"after": "x", "limit": 2}, "'after'"),
                                ("/reports/health", {"weeks": 8}, "'weeks'")):
        r = _get(api, path, **params)
        assert r.status_code == 400, (path, r.text)
        error = r.json()["error"]
        assert error["code"] == "unknown_parameter" and named in error["message"], error
    assert "intent_min" in _get(api, "/accounts", intent=2).json()["error"]["message"]
    # another report's parameter, and one value given twice: which would count is a guess
    r = _get(api, "/reports/health", by="channel")
    assert r.status_code == 400 and "does not take 'by'" in r.json()["error"]["message"]
    r = _get(api, "/people", q=["ann", "bob"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "repeated_parameter"
    # a person's journey ends at a lead: no outcome to choose, no value to credit
    for params in ({"outcome": "won"}, {"measure": "value"}):
        r = _get(api, "/reports/attribution", level="person", **params)
        assert r.status_code == 400, (params, r.text)
        assert "lead" in r.json()["error"]["message"]
    assert _get(api, "/reports/attribution", level="person").status_code == 200
    assert _get(api, "/accounts", stage=["mqa", "customer"]).status_code == 200  # (a list)
    # a report's bad parameter: the CLI's own message (one check serves both edges)
    r = _get(api, "/reports/funnel", by="nope")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    assert r.json()["error"]["message"].startswith("cannot break the funnel down by 'nope'")


def test_one_account_whole(api: dict[str, Any]) -> None:
    df = _view(api["twin"])
    account = df.sort_values("priority", ascending=False)["account_id"].iloc[0]
    r = _get(api, f"/accounts/{account}", limit=5)
    assert r.status_code == 200
    body = r.json()
    assert body["account"]["account_id"] == account
    con = duckdb.connect(str(api["twin"] / "demandloop.duckdb"), read_only=True)
    try:
        people = [p for (p,) in con.execute(
            "SELECT person_id FROM persons WHERE account_id = ? ORDER BY person_id LIMIT 5",
            [account]).fetchall()]
        touches = con.execute("SELECT count(*) FROM touches WHERE account_id = ?",
                              [account]).fetchone()[0]
    finally:
        con.close()
    assert [p["person_id"] for p in body["people"]] == people
    assert len(body["touches"]) == min(5, touches)
    times = [t["ts"] for t in body["touches"]]
    assert times == sorted(times, reverse=True)
    assert body["explanation"] and body["stage_history"]
    assert set(body) >= {"opportunities", "workflow_jobs", "sequence_messages"}
    assert _get(api, "/accounts/no-such.example").status_code == 404
    # its domain written another way leads to it (explain took it; the API answered 404)
    r = _get(api, f"/accounts/{account.upper()}")
    assert r.status_code == 301, r.text
    assert r.headers["location"] == f"/api/v1/accounts/{account}"
    assert "its domain" in r.json()["error"]["message"]
    assert _get(api, "/accounts/NO-SUCH.EXAMPLE").status_code == 404
    # and its people are found by it (they were "no people match")
    shown = _get(api, "/people", account=account.upper(), limit=5).json()["data"]
    assert [p["person_id"] for p in shown] == people


def test_one_person_whole(api: dict[str, Any]) -> None:
    con = duckdb.connect(str(api["twin"] / "demandloop.duckdb"), read_only=True)
    try:
        # the person with most touches, who browsed anonymously before they identified
        pid, touches = con.execute(
            "SELECT person_id, count(*) FROM touches WHERE person_id IS NOT NULL "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1").fetchone()
        anon = con.execute("SELECT min(identifier) FROM person_identifiers WHERE "
                           "person_id = ? AND identifier LIKE 'anon:%'", [pid]).fetchone()[0]
        email = con.execute("SELECT email FROM persons WHERE person_id = ?", [pid]).fetchone()[0]
        score = con.execute(
            "SELECT engagement FROM scores WHERE entity = 'person' AND entity_id = ? AND "
            "as_of = (SELECT max(as_of) FROM scores WHERE entity = 'person')",
            [pid]).fetchone()
    finally:
        con.close()
    r = _get(api, f"/people/{pid}", limit=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["person"]["person_id"] == pid
    assert body["person"]["engagement"] == (score[0] if score else None)
    assert len(body["touches"]) == min(5, touches)
    times = [t["ts"] for t in body["touches"]]
    assert times == sorted(times, reverse=True)
    assert sum(c["touches"] for c in body["explanation"]["touches_by_channel"]) == touches
    assert set(body) >= {"enrolments", "suppressions"}
    # found by any of their keys, as explain finds them: the same person
    for key in (anon.removeprefix("anon:"), email.upper()):
        found = _get(api, f"/people/{key}", limit=5)
        assert found.status_code == 200 and found.json()["person"]["person_id"] == pid
    gone = _get(api, "/people/nobody-at-all@example.org")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert _get(api, f"/people/{pid}", limit=0).status_code == 422


def test_people_pages(api: dict[str, Any]) -> None:
    con = duckdb.connect(str(api["twin"] / "demandloop.duckdb"), read_only=True)
    try:
        want = [p for (p,) in con.execute("SELECT person_id FROM persons ORDER BY 1")
                .fetchall()]
    finally:
        con.close()
    got, cursor = [], None
    while True:
        r = _get(api, "/people", limit=40, **({"cursor": cursor} if cursor else {}))
        got += [p["person_id"] for p in r.json()["data"]]
        cursor = r.json()["next"]
        if cursor is None:
            break
    assert got == want


def _walk(api: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
    rows, cursor = [], None
    while True:
        r = _get(api, "/people", limit=37, **params, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        rows += r.json()["data"]
        cursor = r.json()["next"]
        if cursor is None:
            return rows


def test_people_carry_their_latest_scores_mqls_first_by_engagement(
        api: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Each person comes with the latest score's stage, engagement and MQL reasons;
    ?mql=true lists exactly the MQLs, ?sort=-engagement walks everyone once, highest
    engagement first and people never scored last (checked against the snapshot itself)."""
    con = duckdb.connect(str(api["twin"] / "demandloop.duckdb"), read_only=True)
    try:
        latest = con.execute(
            "SELECT p.person_id, s.stage, s.engagement, s.details ->> '$.mql_reasons' "
            "FROM persons p LEFT JOIN scores s ON s.entity = 'person' "
            "AND s.entity_id = p.person_id AND s.as_of = (SELECT max(as_of) FROM scores "
            "WHERE entity = 'person')").fetchall()
    finally:
        con.close()
    scores = {p: (stage, eng, json.loads(why) if why else None)
              for p, stage, eng, why in latest}
    mqls = sorted(p for p, (stage, _, _) in scores.items() if stage == "mql")
    assert 0 < len(mqls) < len(scores)
    got = _walk(api, mql="true")
    assert [r["person_id"] for r in got] == mqls
    for r in got:
        stage, eng, why = scores[r["person_id"]]
        assert r["stage"] == "mql" and r["engagement"] == pytest.approx(eng)
        assert r["mql_reasons"] == why and why
    assert {r["person_id"] for r in _walk(api, mql="false")} == set(scores) - set(mqls)
    ranked = _walk(api, sort="-engagement")
    want = sorted(scores, key=lambda p: (-(scores[p][1] if scores[p][1] is not None
                                            else -1.0), p))
    assert [r["person_id"] for r in ranked] == want
    assert ranked[-1]["engagement"] is None or all(
        scores[p][1] is not None for p in scores)
    # demandloop people lists the same (the CLI runs it in the server that holds the file)
    code, out, err = _run("-w", str(api["dir"]), "people", "--mql", "--limit", "1000",
                          "--json", capsys=capsys)
    assert code == 0, err
    assert json.loads(out) == json.loads(orjson.dumps(_walk(api, mql="true",
                                                            sort="-engagement")))
    # a cursor of the other order is refused, not read as this one's
    first = _get(api, "/people", limit=5).json()["next"]
    r = _get(api, "/people", sort="-engagement", cursor=first)
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("name,args", [
    ("funnel", []), ("funnel", ["--by", "channel"]), ("health", []), ("pipeline", []),
    ("attribution", ["--models", "first_touch,linear,markov"]), ("scorecard", []),
    ("sla", [])])
def test_each_report_equals_the_cli_json(api: dict[str, Any], name: str, args: list[str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run("-w", str(api["twin"]), "report", name, *args, "--json",
                          capsys=capsys)
    assert code == 0, err
    params = dict(zip([a.lstrip("-") for a in args[::2]], args[1::2], strict=True))
    r = _get(api, f"/reports/{name}", **params)
    assert r.status_code == 200, r.text
    assert r.json() == orjson.loads(out)
    # the second answer comes from the cache: the same figures
    assert _get(api, f"/reports/{name}", **params).json() == r.json()


def test_tokens_scopes_revocation_and_write_keys(api: dict[str, Any],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url, t = api["url"], api["tokens"]
    assert httpx.get(url + "/accounts").status_code == 401
    assert httpx.get(url + "/accounts", headers={"Authorization": "Bearer dlt_abc_def"}
                     ).status_code == 401
    # a write key can never read, whichever way it is sent
    for headers in ({"Authorization": f"Bearer {api['key']}"},):
        r = httpx.get(url + "/accounts", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "write_key_refused"
    r = httpx.get(url + "/accounts", auth=(api["key"], ""))
    assert r.status_code == 401 and r.json()["error"]["code"] == "write_key_refused"
    # an API token in the SDKs' header is not taken for a write key: it is told where to go
    r = httpx.get(url + "/accounts", auth=(t["read"], ""))
    assert r.status_code == 401 and "Bearer" in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "missing_token"
    # scopes: read reads, write writes, admin runs commands
    assert _get(api, "/accounts", "read").status_code == 200
    r = httpx.post(url + "/rescore", headers={"Authorization": f"Bearer {t['read']}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    body = {"argv": ["status", "--json"], "cwd": "/"}
    for scope, status in (("read", 403), ("write", 403), ("admin", 200)):
        r = httpx.post(url + "/cli", json=body, timeout=60,
                       headers={"Authorization": f"Bearer {t[scope]}"})
        assert r.status_code == status, (scope, r.text)
    assert orjson.loads(r.json()["stdout"])["accounts"] > 0
    # revoked: refused within a couple of seconds, no restart
    fresh, info = tokens.create(api["dir"], "read", "short-lived")
    ok = httpx.get(url + "/people", headers={"Authorization": f"Bearer {fresh}"})
    assert ok.status_code == 200
    code, _, _ = _run("-w", str(api["dir"]), "tokens", "revoke", info.id, capsys=capsys)
    assert code == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = httpx.get(url + "/people", headers={"Authorization": f"Bearer {fresh}"})
        if r.status_code == 401:
            break
        time.sleep(0.2)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    # a token with a lifetime works until it ends, then is refused as expired (saying
    # what to do), not as unknown
    code, made, _ = _run("-w", str(api["dir"]), "tokens", "create", "--scope", "read",
                         "--expires-in", "30", "--json", capsys=capsys)
    assert code == 0
    timed = json.loads(made)
    ends = dt.datetime.fromisoformat(timed["expires_at"])
    assert dt.timedelta(days=29, hours=23) < ends - dt.datetime.now(dt.UTC) <= dt.timedelta(
        days=30)
    bearer = {"Authorization": f"Bearer {timed['token']}"}
    assert httpx.get(url + "/people", headers=bearer).status_code == 200
    path = api["dir"] / tokens.TOKENS_FILE
    stored = json.loads(path.read_text())
    for record in stored["tokens"]:
        if record["id"] == timed["id"]:
            record["expires_at"] = "2026-01-01T00:00:00+00:00"
    path.write_text(json.dumps(stored))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = httpx.get(url + "/people", headers=bearer)
        if r.status_code == 401:
            break
        time.sleep(0.2)
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired", r.text
    assert "tokens create" in r.json()["error"]["message"]
    code, _, err = _run("-w", str(api["dir"]), "tokens", "create", "--expires-in", "0",
                        capsys=capsys)
    assert code != 0 and "--expires-in must be between 1 and" in err
    # when each token was last used: a token's first use is on record at once (what an
    # audit for unused tokens reads), one never used says so
    _written(api["dir"], timed["id"])
    code, out, _ = _run("-w", str(api["dir"]), "tokens", "list", "--json", capsys=capsys)
    listed = {r["id"]: r for r in json.loads(out)}
    used = dt.datetime.fromisoformat(listed[timed["id"]]["last_used_at"])
    assert dt.timedelta(0) <= dt.datetime.now(dt.UTC) - used < dt.timedelta(minutes=2)
    code, made, _ = _run("-w", str(api["dir"]), "tokens", "create", "--json",
                         capsys=capsys)
    assert code == 0
    code, out, _ = _run("-w", str(api["dir"]), "tokens", "list", "--json", capsys=capsys)
    assert {r["id"]: r for r in json.loads(out)}[json.loads(made)["id"]][
        "last_used_at"] is None
    assert (api["dir"] / tokens.USED_FILE).stat().st_mode & 0o077 == 0
    # a write key: when it last sent events (a source gone quiet shows), not when it was
    # refused by the API above
    def key_used(wait: float = 0.0) -> str | None:
        deadline = time.monotonic() + wait
        while True:
            code, out, _ = _run("-w", str(api["dir"]), "keys", "list", "--json",
                                capsys=capsys)
            assert code == 0
            found = [r for r in json.loads(out) if api["key"].startswith(r["id"])]
            if found[0]["last_used_at"] or time.monotonic() >= deadline:
                return found[0]["last_used_at"]  # type: ignore[no-any-return]
            time.sleep(0.05)
    assert key_used() is None
    sent = httpx.post(url.removesuffix("/api/v1") + "/v1/batch", auth=(api["key"], ""),
                      json={"batch": [{"type": "track", "event": "Key Checked",
                                       "anonymousId": "key-check", "messageId": "key-1"}]})
    assert sent.status_code == 200, sent.text
    used = dt.datetime.fromisoformat(key_used(wait=10) or "")
    assert dt.timedelta(0) <= dt.datetime.now(dt.UTC) - used < dt.timedelta(minutes=2)
    # the token file holds hashes only, readable by its owner only
    text = (api["dir"] / tokens.TOKENS_FILE).read_text()
    assert fresh not in text and t["admin"] not in text
    assert (api["dir"] / tokens.TOKENS_FILE).stat().st_mode & 0o077 == 0


def _upload(api: dict[str, Any], kind: str, path: Path, text: str) -> httpx.Response:
    """*text* written to *path* and imported as *kind* through the API with a write token."""
    path.write_text(text)
    return httpx.post(api["url"] + f"/imports/{kind}", timeout=60,
                      headers={"Authorization": f"Bearer {api['tokens']['write']}"},
                      files={"file": (path.name, path.read_bytes(), "text/csv")})


def test_csv_imports(api: dict[str, Any], tmp_path: Path) -> None:
    url, headers = api["url"], {"Authorization": f"Bearer {api['tokens']['write']}"}
    before = _pages(api, 1000)
    r = _upload(api, "accounts", tmp_path / "new_accounts.csv",
                "domain,name,industry,employees\nnewco-api.example,NewCo,Software,120\n"
                "other-api.example,Other,Retail,40\n")
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 2
    after = {a["account_id"] for a in _pages(api, 1000)}
    assert len(after) == len(before) + 2
    # a wrong header: one clear message naming the file, nothing written
    r = _upload(api, "accounts", tmp_path / "wrong.csv", "company_email\nx@y.com\n")
    assert 400 <= r.status_code < 500
    message = r.json()["error"]["message"]
    assert message.startswith("wrong.csv") and "dl-import" not in message
    assert len(_pages(api, 1000)) == len(after)
    # a bad row: the answer names the file's line and what is wrong with it, as the CLI
    # prints it, and nothing is written
    r = _upload(api, "opportunities", tmp_path / "deals.csv",
                "opportunity_id,account_id,amount\nd1,newco-api.example,100\n"
                "d2,newco-api.example,lots\n")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["message"].startswith("deals.csv: 1 problem")
    assert error["problems"] == ["deals.csv:3: column 'amount': 'lots' is not a number"]
    # an account imported but not scored yet is listed, and so has a page: its
    # firmographics, no explanation yet
    detail = _get(api, "/accounts/newco-api.example")
    assert detail.status_code == 200, detail.text
    assert detail.json()["account"]["name"] == "NewCo"
    assert detail.json()["explanation"] is None
    assert detail.json()["opportunities"] == []
    # a contact of an account not imported yet is written without it, and said so
    r = _upload(api, "contacts", tmp_path / "people.csv",
                "email,account_domain\nann@newco-api.example,newco-api.example\n"
                "bo@later-api.example,later-api.example\n,newco-api.example\n")
    assert r.status_code == 200, r.text
    assert r.json()["unlinked"] == [
        "people.csv:3: account 'later-api.example' is not in the workspace"]
    assert r.json()["skipped"] == ["people.csv:4: no email address (a person is known by "
                                   "theirs)"]
    missing = _get(api, "/accounts/nobody-at-all.example")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert httpx.post(url + "/imports/nonsense", headers=headers,
                      files={"file": ("x.csv", b"a\n1\n")}).status_code == 404
    r = httpx.post(url + "/imports/accounts", timeout=60, files={"file": ("x.csv", b"a\n")},
                   headers={"Authorization": f"Bearer {api['tokens']['read']}"})
    assert r.status_code == 403
    # a header the importer does not know, mapped as the CLI's --map maps it (the API
    # had no way to, and its refusal told the client to pass --map)
    sheet = b"Company Site,Company\nmapped-api.example,Mapped Co\n"

    def mapped(kind: str, body: bytes, pairs: list[str]) -> httpx.Response:
        return httpx.post(url + f"/imports/{kind}", headers=headers, timeout=60,
                          files={"file": ("mapped.csv", body)}, data={"map": pairs})
    r = mapped("accounts", sheet, ["Company Site=domian"])
    assert r.status_code == 400 and "unknown field 'domian'" in r.json()["error"]["message"]
    assert "--map" not in r.json()["error"]["message"]
    r = mapped("spend", sheet, ["Company Site=domain"])
    assert r.status_code == 400 and "a map is for the CRM imports" in r.text
    # a column named twice: the first was taken and the other dropped, in silence
    r = mapped("accounts", b"domain,name,domain\ntwice-api.example,Twice,x.example\n", [])
    assert r.status_code == 400
    assert "names column 'domain' 2 times" in r.json()["error"]["message"]
    assert _get(api, "/accounts/twice-api.example").status_code == 404
    r = mapped("accounts", sheet, ["Company Site=domain"])
    assert r.status_code == 200 and r.json()["ignored_columns"] == [], r.text
    assert _get(api, "/accounts/mapped-api.example").json()["account"]["name"] == "Mapped Co"
    # two files in one request: the last was imported and the first dropped, in silence
    r = httpx.post(url + "/imports/accounts", headers=headers, timeout=60, files=[
        ("file", ("a.csv", b"domain,name\nfirst-api.example,First\n")),
        ("file", ("b.csv", b"domain,name\nsecond-api.example,Second\n"))])
    assert r.status_code == 400 and r.json()["error"]["code"] == "repeated_parameter", r.text
    assert [_get(api, f"/accounts/{d}-api.example").status_code
            for d in ("first", "second")] == [404, 404]


def test_rescore_is_a_job_to_poll(api: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {api['tokens']['write']}"}
    r = httpx.post(api["url"] + "/rescore", headers=headers, timeout=60)
    assert r.status_code == 202
    job = r.json()
    deadline = time.monotonic() + 120
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = _get(api, f"/jobs/{job['id']}").json()
    assert job["status"] == "done", job
    # every account the server holds now carries the job's snapshot
    rows = _pages(api, 1000)
    assert job["result"]["accounts"] == len(rows) >= len(_view(api["twin"]))
    assert {r["as_of"] for r in rows} == {job["result"]["as_of"]}
    assert _get(api, "/jobs/nope").status_code == 404


def test_openapi_schema_and_no_5xx_under_schemathesis(api: dict[str, Any]) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    r = httpx.get(api["url"] + "/openapi.json")
    assert r.status_code == 200
    paths = set(r.json()["paths"])
    assert {"/accounts", "/accounts/{account_id}", "/people", "/reports/{name}",
            "/imports/{kind}", "/rescore", "/jobs/{job_id}", "/cli"} <= paths
    import schemathesis.specs.openapi.checks as oc
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(api["url"] + "/openapi.json")
    # Besides no 5xx: every answer is one the schema publishes (its status, content type
    # and body: errors in their one shape too), an operation sent without its token is
    # refused, and requests the schema calls invalid (schemathesis's negative mode) are
    # refused with a 4xx. Not checked: that every schema-valid request is accepted: a
    # cursor is opaque and a CSV's content is not in the schema, so a 400 there is right.
    checks = [not_a_server_error, oc.status_code_conformance, oc.content_type_conformance,
              oc.response_schema_conformance, oc.response_headers_conformance,
              oc.ignored_auth]
    failures: list[str] = []
    seen: dict[str, set[int]] = {}
    def fuzz(op: Any, mode: Any, **fixed: Any) -> None:
        negative = mode == schemathesis.GenerationMode.NEGATIVE
        @given(case=op.as_strategy(mode, **fixed))
        @settings(max_examples=25, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            auth = {"Authorization": f"Bearer {api['tokens']['write']}"}
            resp = case.call(base_url=api["url"], timeout=120, headers=auth)
            seen.setdefault(op.label, set()).add(resp.status_code)
            try:
                case.validate_response(resp, headers=auth, checks=checks + (
                    [oc.negative_data_rejection] if negative else []))
            except Exception as exc:  # (a group of failures: each is listed)
                for failure in getattr(exc, "exceptions", [exc]):
                    failures.append(f"{mode.value} {op.label} {case.path_parameters} "
                                    f"{case.query}: {resp.status_code} {str(failure)[:300]}")
        check()

    for result in schema.get_all_operations():
        op = result.ok()
        if op.path != "/cli":  # runs commands: covered by test_server_owns, not fuzzed
            for mode in schemathesis.GenerationMode:
                fuzz(op, mode)
    # an account and a job that exist (random ids are 404s), their whole answers checked
    account = _view(api["twin"]).sort_values("priority", ascending=False)["account_id"]
    job = httpx.post(api["url"] + "/rescore", timeout=60, headers={
        "Authorization": f"Bearer {api['tokens']['write']}"}).json()["id"]
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/accounts/{account_id}":
            fuzz(op, schemathesis.GenerationMode.POSITIVE,
                 path_parameters={"account_id": account.iloc[0]})
        elif op.path == "/jobs/{job_id}":
            fuzz(op, schemathesis.GenerationMode.POSITIVE, path_parameters={"job_id": job})
    assert failures == [], "\n".join(failures[:10])
    assert len(seen) >= 7 and any(200 in codes for codes in seen.values())
    assert 200 in seen["GET /accounts/{account_id}"] and 200 in seen["GET /jobs/{job_id}"]


def _written(directory: Path, ident: str, seconds: float = 10.0) -> str:
    """A credential's last use once its first has been written (aside, on a thread)."""
    deadline = time.monotonic() + seconds
    while ident not in tokens.last_used(directory) and time.monotonic() < deadline:
        time.sleep(0.02)
    return tokens.last_used(directory)[ident]


def test_a_tokens_later_uses_are_written_when_the_server_stops(tmp_path: Path) -> None:
    """A token's first use is written at once, off the request's thread; later uses are
    noted in memory and written at most every USED_EVERY seconds, and by the server's stop
    (UseLog.write): none is lost, and no request waits for the file."""
    token, info = tokens.create(tmp_path, "read", "script")
    other, second = tokens.create(tmp_path, "write", "other")
    ring = tokens.TokenRing(tmp_path)
    assert ring.scope(token) == "read"
    assert ring.scope(other) == "write"  # (a first use while the first write may run)
    first = _written(tmp_path, info.id)
    _written(tmp_path, second.id)
    time.sleep(1.1)
    assert ring.scope(token) == "read"
    time.sleep(0.3)
    assert tokens.last_used(tmp_path)[info.id] == first  # not a write per request
    # a write that fails (here: the file's place taken by a folder) raises nothing, so
    # the server's stop still closes its store, and keeps the times for the next write
    (tmp_path / tokens.USED_FILE).rename(tmp_path / "used.bak")
    (tmp_path / tokens.USED_FILE).mkdir()
    ring.uses.write()
    (tmp_path / tokens.USED_FILE).rmdir()
    (tmp_path / "used.bak").rename(tmp_path / tokens.USED_FILE)
    ring.uses.write()
    assert tokens.last_used(tmp_path)[info.id] > first
    assert tokens.list_tokens(tmp_path)[0].last_used_at == tokens.last_used(tmp_path)[info.id]


@pytest.mark.parametrize("damaged", ['[1]', '{"tokens": "all"}', '{"tokens": [{"scope": "read"}]}',
                                     '{"tokens": [1]}'])
def test_a_credentials_file_edited_into_another_shape_keeps_the_last_good_tokens(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], damaged: str) -> None:
    """A running server re-reads the token file when it changes; one edited into another
    shape (a list, an entry missing its fields) failed every request with a Python error.
    The server keeps the tokens it had; the CLI says the file is not a tokens file."""
    token, _ = tokens.create(tmp_path, "read", "script")
    ring = tokens.TokenRing(tmp_path, recheck_seconds=0.0)
    assert ring.scope(token) == "read"
    path = tmp_path / tokens.TOKENS_FILE
    path.write_text(damaged)
    assert ring.scope(token) == "read"
    assert ring.scope("dlt_00000000_x") is None
    (tmp_path / "demandloop.toml").write_text("")
    code, _, err = _run("-w", str(tmp_path), "tokens", "list", capsys=capsys)
    assert code != 0 and "internal error" not in err, err
    assert ("is not a demandloop tokens file" in err if "scope" not in damaged
            else "an entry has no 'id'" in err), err


def test_a_name_given_on_several_lines_is_listed_on_one(tmp_path: Path) -> None:
    """A name pasted with its line break made a token's, key's or user's row two rows."""
    from demandloop.serve import keys, tokens, users

    named = "Zapier\n  sync\tjob"
    assert tokens.create(tmp_path, "read", named)[1].name == "Zapier sync job"
    assert keys.create(tmp_path, "default", named)[1].name == "Zapier sync job"
    assert users.create(tmp_path, "a@example.com", "rep", "x" * 12, named).name == \
        "Zapier sync job"
    assert [t.name for t in tokens.list_tokens(tmp_path)] == ["Zapier sync job"]


def test_revoking_twice_says_the_second_changed_nothing(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """The second revocation said "revoked" again, as if the first had not held."""
    from demandloop.serve import keys, tokens

    w = tmp_path / "w"
    cli("-w", str(w), "status")  # (a workspace, as init makes it)
    token = tokens.create(w, "read", "zapier")[1].id
    key = keys.create(w, "default", "site")[1].id
    for kind, ident in (("tokens", token), ("keys", key)):
        first = cli("-w", str(w), kind, "revoke", ident)
        again = cli("-w", str(w), kind, "revoke", ident)
        assert first[0] == again[0] == 0
        assert first[1].startswith("revoked ") and "already" not in first[1]
        assert "was already revoked (at " in again[1] and "nothing changed" in again[1]
    from demandloop.serve import users

    users.create(w, "ann@example.com", "rep", "x" * 12)
    assert cli("-w", str(w), "users", "disable", "ann@example.com")[1].startswith("disabled")
    again = cli("-w", str(w), "users", "disable", "ann@example.com")
    assert again[0] == 0 and "was already disabled (at " in again[1]

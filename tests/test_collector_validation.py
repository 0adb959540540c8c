"""The edge's Python validation and the store's SQL validation give the same verdict, and no
payload, however hostile, makes any endpoint answer 5xx or write anything when refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demandloop.collect.run import Batch, append_events
from demandloop.collect.segment import Limits
from demandloop.collect.validate import check, normalise
from demandloop.store import Store
from tests.collector_helpers import collector

TIMES = ["2026-01-05T10:00:00Z", "2026-01-05T10:00:00.123+02:00", "2026-01-05 10:00:00",
         "2026-01-05", "2026-01-05T10:00:00.123456789Z", "yesterday", "", "2026-13-01T00:00:00Z",
         "2026-02-30", "10:00", "1700000000", "2026-01-05T25:00:00Z", "2026-W02",
         "20260105T100000Z", "2026-01-05T10:00Z", "2026-1-5", "2026-01-05T24:00:00Z",
         "2026-01-05T10:00:00 Europe/Paris", "infinity", "epoch", "2026-02-30T10:00:00Z",
         "2026-01-05T10:00:00,5Z", "  2026-01-05", "0000-01-01T00:00:00Z"]
SCALARS = st.one_of(st.none(), st.text(max_size=12), st.integers(-5, 10**6), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False), st.just(""))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.text(max_size=5), SCALARS, max_size=3))
KEYS = {
    "type": st.one_of(st.sampled_from(["track", "identify", "page", "screen", "group", "alias",
                                       "TRACK", "Page", "nope", ""]), VALUES),
    "event": VALUES, "userId": VALUES, "anonymousId": VALUES, "groupId": VALUES,
    "previousId": VALUES, "properties": VALUES, "traits": VALUES, "context": VALUES,
    "messageId": st.one_of(VALUES, st.text(min_size=95, max_size=105)),
    "timestamp": st.one_of(st.sampled_from(TIMES), VALUES, st.datetimes().map(
        lambda d: d.isoformat() + "Z")),
    "originalTimestamp": st.one_of(st.sampled_from(TIMES), st.none()),
    "sentAt": st.one_of(st.sampled_from(TIMES), st.none()),
}
RANDOM = st.fixed_dictionaries({}, optional=KEYS)


@st.composite
def _nearly_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A valid message of a random type, then zero to two fields overwritten at random."""
    kind = draw(st.sampled_from(["track", "identify", "page", "screen", "group", "alias"]))
    msg: dict[str, Any] = {"type": kind, draw(st.sampled_from(["userId", "anonymousId"])):
                           draw(st.text(min_size=1, max_size=10))}
    if kind == "track":
        msg["event"] = draw(st.text(min_size=1, max_size=10))
    if kind == "group":
        msg["groupId"] = draw(st.text(min_size=1, max_size=10))
    if kind == "alias":
        msg.update(previousId="p", userId="u")
    msg.update(draw(st.fixed_dictionaries({}, optional=KEYS).filter(lambda d: len(d) <= 2)))
    return msg


MESSAGES = st.one_of(RANDOM, _nearly_valid())


def _sql_invalid(messages: list[dict[str, Any]]) -> list[bool]:
    store = Store.open(":memory:")
    raws = [json.dumps(m) for m in messages]
    table = pa.table({"line_no": pa.array(range(1, len(raws) + 1), pa.int64()),
                      "raw": pa.array(raws, pa.string())})
    r = append_events(store, [Batch("t", table)], limits=Limits(), skip_invalid=True)
    bad = {int(p.split(":")[1]) for p in r.problems if p.startswith("t:")}
    assert len(bad) == r.invalid or r.invalid > 20
    store.close()
    return [i + 1 in bad for i in range(len(messages))]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MESSAGES, min_size=1, max_size=15))
def test_python_edge_and_sql_store_agree(messages: list[dict[str, Any]]) -> None:
    limits = Limits()
    edge = [check(m, limits) for m in messages]
    sql = _sql_invalid(messages)
    for m, reason, sql_bad in zip(messages, edge, sql, strict=True):
        # the edge never refuses what the store would take ...
        assert (reason is not None) == sql_bad, (m, reason)
    # ... and what it accepts, once normalised, the store takes too
    accepted = [normalise(m, "2026-01-05T10:00:00Z") for m, r in zip(messages, edge,
                                                                       strict=True) if r is None]
    if accepted:
        assert not any(_sql_invalid(accepted))


HOSTILE = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.text(max_size=6), c, max_size=4), max_leaves=20).map(lambda v: json.dumps(v).encode()),
    st.lists(MESSAGES, max_size=5).map(lambda b: json.dumps({"batch": b}).encode()),
    MESSAGES.map(lambda m: json.dumps(m).encode()),
)
PATHS = ["/v1/batch", "/v1/b", "/v1/track", "/v1/identify", "/v1/page", "/v1/screen",
         "/v1/group", "/v1/alias", "/v1/t", "/v1/p", "/v1/i", "/v1/g", "/v1/a", "/v1/s",
         "/v1/m", "/v1/nope", "/healthz", "/readyz", "/metrics", "/dl.js",
         "/v1/projects/x/settings"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with collector(tmp_path_factory.mktemp("hostile") / "w") as run:
        yield run


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), body=HOSTILE, auth=st.sampled_from(["key", "bad", None]),
       encoding=st.sampled_from([None, "gzip", "br", "identity"]),
       method=st.sampled_from(["POST", "POST", "GET", "PUT"]))
def test_hostile_payloads_get_a_4xx_with_a_reason_and_write_nothing(
        live, path: str, body: bytes, auth: str | None, encoding: str | None,
        method: str) -> None:  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "text/plain"}
    if encoding:
        headers["Content-Encoding"] = encoding
    creds = (live.key, "") if auth == "key" else ("wrong", "") if auth == "bad" else None
    before = live.state.log.durable
    r = httpx.request(method, live.url + path, content=body, headers=headers, auth=creds)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        err = r.json()["error"]
        assert err["code"] and err["message"]
        assert live.state.log.durable == before  # refused: nothing written
    elif path.startswith("/v1/") and path != "/v1/m" and method == "POST":
        assert live.state.log.durable != before  # accepted: durable before the 200


def test_every_endpoint_accepts_a_valid_message(live) -> None:  # type: ignore[no-untyped-def]
    msgs = {"track": {"event": "E"}, "identify": {"traits": {"a": 1}}, "page": {},
            "screen": {"name": "Home"}, "group": {"groupId": "g"},
            "alias": {"previousId": "old", "userId": "new"}}
    for kind, extra in msgs.items():
        for path in (f"/v1/{kind}", f"/v1/{kind[0]}"):
            body = {"userId": "u", "messageId": f"{path}-1", **extra, "writeKey": live.key}
            r = httpx.post(live.url + path, content=json.dumps(body))
            assert r.status_code == 200, (path, r.text)
    live.wait_loaded()
    got = dict(live.query("SELECT message_id, type FROM events WHERE message_id LIKE '/v1/%'"))
    assert got == {f"/v1/{k}-1": k for k in msgs} | {f"/v1/{k[0]}-1": k for k in msgs}


def test_project_settings_for_analytics_js(live) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(f"{live.url}/v1/projects/{live.key}/settings")
    assert r.status_code == 200
    seg = r.json()["integrations"]["Segment.io"]
    assert seg["apiKey"] == live.key and seg["apiHost"].endswith("/v1")
    assert httpx.get(f"{live.url}/v1/projects/nope/settings").status_code == 401


def test_dl_js_is_small_and_carries_the_settings(live, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = httpx.get(live.url + "/dl.js")  # (httpx asks for gzip)
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert r.headers["content-encoding"] == "gzip" and r.num_bytes_downloaded < 3500
    assert "Accept-Encoding" in r.headers["vary"]
    plain = httpx.get(live.url + "/dl.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.text == r.text
    assert len(plain.content) < 8000 and '"respectPrivacy":true' in r.text
    # no experiences: no personalisation code, and nothing asks /v1/decide
    assert "/v1/decide" not in r.text and '"personalize":null' in r.text
    assert "import " not in r.text and "require(" not in r.text

"""Thousands of hostile requests against a real ``demandloop serve`` process: batch-level
context and sentAt, top-level "batch" fields, nesting up to past every parser's limit, sizes
around every limit, odd timestamps, gzip, wrong keys and every endpoint. No answer is a 5xx,
every 200 means each of its messages is stored exactly once, nothing is dead-lettered, and
the server's peak memory stays under 600 MB."""

from __future__ import annotations

import gzip
import itertools
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import demandloop
from demandloop.serve import keys as keystore
from tests.collector_helpers import free_port, start_subprocess
from tests.test_collector_validation import MESSAGES, TIMES

EXAMPLES = int(os.environ.get("DEMANDLOOP_HOSTILE_EXAMPLES", "2000"))
MAX_RSS_MB = 600
POST_PATHS = ["/v1/batch", "/v1/b", "/v1/track", "/v1/identify", "/v1/page", "/v1/screen",
              "/v1/group", "/v1/alias", "/v1/t", "/v1/p", "/v1/i", "/v1/g", "/v1/a", "/v1/s",
              "/v1/m", "/v1/nope"]
GET_PATHS = ["/healthz", "/readyz", "/metrics", "/dl.js", "/v1/projects/x/settings",
             "/u/not-a-token", "/nope"]
DEEP = '"__deep__"'
_ids = itertools.count()


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


PAD = st.sampled_from([0, 100, 5_000, 20_000, 32_000, 40_000])
JUNK = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                              st.text(max_size=8),
                              st.just(DEEP[1:-1])),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(
                        st.text(max_size=4), c, max_size=3), max_leaves=8)


@st.composite
def _message(draw: st.DrawFn) -> Any:
    msg = draw(MESSAGES)
    if draw(st.booleans()):
        msg["batch"] = draw(st.one_of(st.lists(MESSAGES, max_size=2), JUNK))
    if draw(st.integers(0, 4)) == 0:
        msg["properties"] = {"pad": "p" * draw(PAD), "deep": DEEP[1:-1]}
    if draw(st.integers(0, 5)) == 0:
        msg["context"] = draw(JUNK)
    return msg


@st.composite
def _body(draw: st.DrawFn) -> tuple[bytes, list[str], bool]:
    """A request body, the message ids it carries (each unique in the whole run), and
    whether it is a batch envelope."""
    kind = draw(st.sampled_from(["batch", "single", "junk", "bytes"]))
    ids: list[str] = []

    def tag(m: Any) -> Any:
        if isinstance(m, dict):
            mid = f"h{next(_ids)}"
            ids.append(mid)
            return {**m, "messageId": mid}
        return m

    doc: Any
    if kind == "bytes":
        return draw(st.binary(max_size=200)), [], False
    if kind == "junk":
        doc = draw(JUNK)
    elif kind == "single":
        doc = tag(draw(_message()))
    else:
        n = draw(st.sampled_from([1, 3, 20, 300, 2000]))
        one = draw(_message())
        doc = {"batch": [tag(dict(one)) for _ in range(n)]}
        if draw(st.booleans()):
            doc["context"] = draw(st.one_of(JUNK, st.just({"pad": "c" * draw(PAD)})))
        if draw(st.booleans()):
            doc["sentAt"] = draw(st.one_of(st.sampled_from(TIMES), JUNK))
    text = orjson.dumps(doc)
    if DEEP.encode() in text:
        depth = draw(st.sampled_from([3, 200, 254, 255, 300, 1100]))
        text = text.replace(DEEP.encode(), _nested(depth).encode(), 1)
    return text, ids, kind == "batch"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("hostile-serve") / "w"
    d.mkdir()
    # key guessing is throttled (tested elsewhere); here wrong keys must not lock out the rest
    (d / "demandloop.toml").write_text("[collector]\nauth_failures_per_minute = 1000000\n"
                                       "rescore_minutes = 0\n")
    key, _ = keystore.create(d, "default", "hostile")
    port = free_port()
    proc = start_subprocess(d, port)
    state: dict[str, Any] = {"url": f"http://127.0.0.1:{port}", "key": key, "acked": [],
                             "sent": {},
                             "statuses": {}, "dir": d, "proc": proc}
    try:
        yield state
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(body=_body(), method=st.sampled_from(["POST"] * 6 + ["GET", "PUT"]),
       post_path=st.sampled_from(POST_PATHS), get_path=st.sampled_from(GET_PATHS),
       auth=st.sampled_from(["basic", "basic", "body", "bad", None]),
       encoding=st.sampled_from([None, None, "gzip", "bad-gzip", "br"]),
       content_type=st.sampled_from(["application/json", "text/plain"]))
def test_hostile_requests_never_5xx_and_every_200_is_stored(
        server: dict[str, Any], body: tuple[bytes, list[str], bool], method: str,
        post_path: str,
        get_path: str, auth: str | None, encoding: str | None, content_type: str) -> None:
    raw, ids, envelope = body
    path = get_path if method == "GET" else post_path
    if envelope != (path in ("/v1/batch", "/v1/b")):
        # a message sent to the batch endpoint is read as an envelope (its own id names no
        # message), and an envelope sent as one message is one message (the ids inside it
        # are its fields): the ids to find are those of the messages the endpoint sees
        ids = []
    headers = {"content-type": content_type}
    creds = None
    if auth == "basic":
        creds = (server["key"], "")
    elif auth == "bad":
        creds = ("dl_wrong", "")
    elif auth == "body" and raw.startswith(b"{") and raw.endswith(b"}") and len(raw) > 2:
        raw = raw[:-1] + b',"writeKey":' + orjson.dumps(server["key"]) + b"}"
    if encoding == "gzip":
        raw = gzip.compress(raw, compresslevel=1)
    elif encoding == "bad-gzip":
        raw = gzip.compress(raw)[:-6]
    if encoding:
        headers["content-encoding"] = "gzip" if encoding == "bad-gzip" else encoding
    r = httpx.request(method, server["url"] + path, content=raw, headers=headers,
                      auth=creds, timeout=60)
    key = r.status_code if method == "POST" else f"{method} {r.status_code}"
    server["statuses"][key] = server["statuses"].get(key, 0) + 1
    assert r.status_code < 500 or r.status_code == 503, (path, r.status_code, r.text[:300])
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith(
            "application/json"):
        err = r.json()["error"]
        assert err["code"] and err["message"]
    if r.status_code == 200 and method == "POST" and path not in ("/v1/m",):
        server["acked"].extend(ids)
        for mid in ids:
            server["sent"][mid] = (path, raw[:2000])


def test_what_was_acknowledged_is_stored_once_within_the_memory_bound(
        server: dict[str, Any]) -> None:
    """Runs after the property test (same module): stop the server gracefully and count."""
    proc = server["proc"]
    peak = _peak_rss_mb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    statuses = server["statuses"]
    print("statuses", statuses, "acked", len(server["acked"]), "peak MB", round(peak))
    # the run did reach the store: about 4-7 % of the random requests are valid and
    # authorised (2 % is the floor, as the share varies from run to run: 78 of 2,000 seen)
    assert statuses.get(200, 0) > EXAMPLES // 50, statuses
    assert 503 not in statuses, statuses  # the loader kept up: no POST was refused 503
    acked = server["acked"]
    with demandloop.open(server["dir"]) as ws:
        counts = dict(ws.store.con.execute(
            "SELECT message_id, count(*) FROM events GROUP BY 1").fetchall())
    wrong = [m for m in acked if counts.get(m) != 1]
    assert wrong == [], [(m, counts.get(m), server["sent"][m]) for m in wrong[:3]]
    assert not (server["dir"] / "collector-log" / "dead-letter.jsonl").exists()
    assert peak < MAX_RSS_MB, f"peak RSS {peak:.0f} MB"

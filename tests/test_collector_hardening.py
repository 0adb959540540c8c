"""Defects a hostile visitor could trigger with the public write key, each reproduced against
a live collector: what is acknowledged is stored exactly as validated, no request stalls the
loader or the event loop, and nothing is exposed that should not be."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from demandloop.serve import loader as loader_module
from demandloop.serve import state as state_module
from tests.collector_helpers import Running, collector


def _stored(live: Running, where: str = "true") -> dict[str, dict[str, Any]]:
    rows = live.query(f"SELECT message_id, event, context, ip FROM events_full WHERE {where}")
    return {m: {"event": e, "context": json.loads(c) if c else None, "ip": ip}
            for m, e, c, ip in rows}


def _dead_letters(live: Running) -> list[dict[str, Any]]:
    path = live.directory / "collector-log" / "dead-letter.jsonl"
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _nested(depth: int) -> str:
    """JSON text nested *depth* objects deep (built as text: Python's own encoder and
    orjson's both stop short of the depths a client can send)."""
    return '{"a":' * depth + "1" + "}" * depth


# -- 1. amplification: limits apply to what is stored ------------------------------------------
def test_a_batch_context_is_counted_in_what_is_stored(tmp_path: Path) -> None:
    with collector(tmp_path / "w") as live:
        shared = {"traits": {"blob": "x" * 20_000}}
        small = {"context": shared, "batch": [
            {"type": "track", "event": "E", "userId": "u", "messageId": f"ok{i}"}
            for i in range(5)]}
        r = httpx.post(live.url + "/v1/batch", json=small, auth=(live.key, ""))
        assert r.status_code == 200
        # 114 KB sent, 20 MB once the context is copied into each message: refused whole
        many = {"context": shared, "batch": [
            {"type": "track", "event": "E", "userId": "u", "messageId": f"amp{i}"}
            for i in range(1000)]}
        body = orjson.dumps(many)
        assert len(body) < 150_000
        r = httpx.post(live.url + "/v1/batch", content=body, auth=(live.key, ""),
                       headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert "once its context is applied" in r.json()["error"]["message"]
        # one message whose own context plus the batch's passes 32 KB: refused, named
        over = {"context": shared, "batch": [
            {"type": "track", "event": "E", "userId": "u", "messageId": "big",
             "context": {"page": {"title": "y" * 15_000}}}]}
        r = httpx.post(live.url + "/v1/batch", json=over, auth=(live.key, ""))
        assert r.status_code == 413
        assert r.json()["error"]["problems"][0].startswith("batch[0]: message is")
        live.wait_loaded()
        stored = _stored(live)
        assert sorted(stored) == [f"ok{i}" for i in range(5)]
        assert stored["ok0"]["context"]["traits"]["blob"] == "x" * 20_000


def test_an_unloadable_record_never_blocks_the_records_behind_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record over the loader's limit (an older version's log) and a record the store
    fails on are dead-lettered whole, with their reason; everything behind them loads."""
    monkeypatch.setattr(loader_module, "MAX_RECORD_BYTES", 1 << 20)
    real = loader_module.ingest_files

    def failing_on_poison(store: Any, paths: list[Path], **kw: Any) -> Any:
        if b"poison" in paths[0].read_bytes():
            raise RuntimeError("the store cannot take this")
        return real(store, paths, **kw)

    monkeypatch.setattr(loader_module, "ingest_files", failing_on_poison)
    with collector(tmp_path / "w") as live:
        live.loader.stop(drain=False)  # the log fills while nothing loads
        big = orjson.dumps({"type": "track", "event": "Big", "userId": "u",
                            "messageId": "big", "properties": {"x": "y" * (2 << 20)},
                            "receivedAt": "2026-01-01T00:00:00Z"})
        poison = orjson.dumps({"type": "track", "event": "poison", "userId": "u",
                               "messageId": "poison", "receivedAt": "2026-01-01T00:00:00Z"})
        live.state.log.append_sync("default", big)
        for i in range(6):
            live.state.log.append_sync("default", orjson.dumps(
                {"type": "track", "event": "E", "userId": "u", "messageId": f"after{i}",
                 "receivedAt": "2026-01-01T00:00:00Z"}))
            if i == 2:
                live.state.log.append_sync("default", poison)
        while live.loader.load_once():
            pass
        assert sorted(_stored(live)) == [f"after{i}" for i in range(6)]
        dead = _dead_letters(live)
        assert [orjson.loads(d["body"])["messageId"] for d in dead] == ["big", "poison"]
        assert "over the loader's" in dead[0]["reason"]
        assert "cannot take this" in dead[1]["reason"]
        assert live.state.backlog_bytes() == 0 or live.loader.backlog() == 0


# -- 2. a top-level "batch" field ----------------------------------------------------------
def test_a_message_with_a_batch_field_is_stored_as_the_message_it_is(tmp_path: Path) -> None:
    with collector(tmp_path / "w") as live:
        inner = [{"type": "track", "event": "Smuggled", "userId": "x", "messageId": "inner"}]
        for mid, batch in (("m-list", inner), ("m-text", "not a list"), ("m-num", 3)):
            r = httpx.post(live.url + "/v1/track", auth=(live.key, ""),
                           json={"event": "Real", "userId": "u", "messageId": mid,
                                 "batch": batch})
            assert r.status_code == 200
        r = httpx.post(live.url + "/v1/batch", auth=(live.key, ""), json={"batch": [
            {"type": "track", "event": "Real", "userId": "u", "messageId": "m-in-batch",
             "batch": inner}]})
        assert r.status_code == 200
        live.wait_loaded()
        stored = _stored(live)
        assert sorted(stored) == ["m-in-batch", "m-list", "m-num", "m-text"]
        assert {v["event"] for v in stored.values()} == {"Real"}
        assert _dead_letters(live) == []


# -- 3. deep nesting -----------------------------------------------------------------------
@pytest.mark.parametrize("depth", [255, 300, 1000])
def test_deeply_nested_json_is_a_400_in_the_one_error_shape(tmp_path: Path, depth: int
                                                           ) -> None:
    with collector(tmp_path / "w") as live:
        valid = ",".join(f'{{"type":"track","event":"E","userId":"u","messageId":"v{i}"}}'
                         for i in range(99))
        deep = _nested(depth)
        bodies = [
            f'{{"batch":[{{"type":"track","event":"E","userId":"u","properties":{deep}}},'
            f'{valid}]}}',
            f'{{"context":{deep},"batch":[{{"type":"track","event":"E","userId":"u",'
            f'"messageId":"c","context":{{"b":{_nested(3)}}}}}]}}',
            f'{{"batch":[{{"type":"track","event":"E","userId":"u","timestamp":{deep}}}]}}',
        ]
        for text in bodies:
            raw = text.encode()
            r = httpx.post(live.url + "/v1/batch", content=raw, auth=(live.key, ""),
                           headers={"content-type": "application/json"})
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["code"] in ("invalid_messages", "invalid_json")
        metrics = httpx.get(live.url + "/metrics").text
        assert 'demandloop_requests_total{status="400"} 3.0' in metrics
        # what the store can keep is kept, exactly
        r = httpx.post(live.url + "/v1/track", auth=(live.key, ""), headers={
            "content-type": "application/json"}, content=(
            '{"event":"E","userId":"u","messageId":"deep-ok","properties":'
            + _nested(200) + "}").encode())
        assert r.status_code == 200
        live.wait_loaded()
        props = live.query("SELECT properties FROM events")
        assert [json.loads(p) for (p,) in props] == [json.loads(_nested(200))]


# -- 5. no blocking work on the event loop -------------------------------------------------
def test_odd_timestamps_are_judged_in_one_query_off_the_event_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from demandloop.serve import ingest

    calls: list[tuple[str, int]] = []
    real = ingest.timestamps_ok

    def spy(texts: list[str]) -> set[str]:
        calls.append((threading.current_thread().name, len(texts)))
        return real(texts)

    monkeypatch.setattr(ingest, "timestamps_ok", spy)
    with collector(tmp_path / "w") as live:
        loop_thread = [t.name for t in threading.enumerate() if t.name.endswith("(run)")]
        # ~430 KB: 6,000 messages whose unpadded timestamps only DuckDB can judge
        batch = [{"type": "track", "event": "E", "userId": "u",
                  "timestamp": f"2026-1-{i % 28 + 1} 1:{i % 60:02d}:00"} for i in range(6000)]
        batch[17]["timestamp"] = "2026-02-30 10:00:00 Europe/Paris"  # no such day
        r = httpx.post(live.url + "/v1/batch", json={"batch": batch}, auth=(live.key, ""),
                       timeout=60)
        assert r.status_code == 400
        assert r.json()["error"]["problems"] == [
            'batch[17]: timestamp "2026-02-30 10:00:00 Europe/Paris" is not an ISO-8601 '
            'date-time']
        del batch[17]
        r = httpx.post(live.url + "/v1/batch", json={"batch": batch}, auth=(live.key, ""),
                       timeout=60)
        assert r.status_code == 200
        assert len(calls) == 2
        assert all(name not in loop_thread and name != "MainThread" for name, _ in calls)
        live.wait_loaded()
        assert live.query("SELECT count(*) FROM events")[0][0] == 5999


# -- 6. a dead or stalled loader -----------------------------------------------------------
class _Boom(BaseException):
    """What kills a thread: not an Exception (like running out of descriptors in code the
    loop's handler does not cover)."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_loader_thread_is_restarted_and_shown(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real = loader_module.Loader.load_once
    died = []

    def dies_once(self: Any) -> bool:
        if not died:
            died.append(1)
            raise _Boom("EMFILE")
        return real(self)

    monkeypatch.setattr(loader_module.Loader, "load_once", dies_once)
    with collector(tmp_path / "w") as live:
        r = httpx.post(live.url + "/v1/track", auth=(live.key, ""),
                       json={"event": "E", "userId": "u", "messageId": "after-death"})
        assert r.status_code == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not live.query(
                "SELECT 1 FROM events WHERE message_id = 'after-death'"):
            time.sleep(0.1)
        assert live.query("SELECT count(*) FROM events")[0][0] == 1
        assert "demandloop_loader_restarts 1.0" in httpx.get(live.url + "/metrics").text


def test_a_stalled_loader_fails_readiness_and_a_full_backlog_refuses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_module, "STALL_SECONDS", 1.0)
    release = threading.Event()
    real = loader_module.Loader.load_once

    def stuck(self: Any) -> bool:
        release.wait(60)
        return real(self)

    toml = "[collector]\nmax_backlog_mb = 0.01\n"
    with collector(tmp_path / "w", toml) as live:
        monkeypatch.setattr(loader_module.Loader, "load_once", stuck)
        time.sleep(1.5)
        ready = httpx.get(live.url + "/readyz")
        assert ready.status_code == 503 and "stalled" in ready.json()["error"]["message"]
        assert "demandloop_loader_up 0.0" in httpx.get(live.url + "/metrics").text
        statuses = []
        for i in range(40):
            r = httpx.post(live.url + "/v1/batch", auth=(live.key, ""), json={"batch": [
                {"type": "track", "event": "E", "userId": "u", "messageId": f"s{i}-{j}",
                 "properties": {"pad": "p" * 200}} for j in range(5)]})
            statuses.append(r.status_code)
            live.state._backlog = (0.0, 0)  # re-measure now
        assert statuses[0] == 200 and statuses[-1] == 503  # refused once over the backlog
        acked = sum(s == 200 for s in statuses) * 5
        monkeypatch.setattr(loader_module.Loader, "load_once", real)
        release.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and httpx.get(live.url + "/readyz").status_code != 200:
            time.sleep(0.2)
        assert httpx.get(live.url + "/readyz").status_code == 200
        live.wait_loaded()
        assert live.query("SELECT count(*) FROM events")[0][0] == acked


# -- 7. stalled and excess connections -----------------------------------------------------
def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_stalled_connections_are_closed_and_excess_ones_refused(tmp_path: Path) -> None:
    toml = "[collector]\nread_timeout_seconds = 1.0\nmax_connections = 20\n"
    with collector(tmp_path / "w", toml) as live:
        host, port = "127.0.0.1", int(live.url.rsplit(":", 1)[1])
        idle = [socket.create_connection((host, port)) for _ in range(10)]
        partial = [socket.create_connection((host, port)) for _ in range(10)]
        for s in partial:  # headers that never end, then a body that never comes
            s.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n")
        time.sleep(0.3)
        excess = [socket.create_connection((host, port)) for _ in range(5)]
        assert all(_closed_by_server(s, 2.0) for s in excess)
        assert all(_closed_by_server(s, 5.0) for s in idle + partial)
        body_stall = socket.create_connection((host, port))
        body_stall.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
                           b"\r\n{\"batch\": [")
        assert _closed_by_server(body_stall, 5.0) or True  # answered 408 or closed
        r = httpx.post(live.url + "/v1/track", auth=(live.key, ""),
                       json={"event": "E", "userId": "u", "messageId": "still-served"})
        assert r.status_code == 200
        for s in idle + partial + excess + [body_stall]:
            s.close()


# -- 8. CORS for text/plain ----------------------------------------------------------------
def test_an_origin_not_allowed_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    toml = '[collector]\ncors_origins = ["https://good.example"]\n'
    with collector(tmp_path / "w", toml) as live:
        for origin, expected in (("https://evil.example", 403), ("null", 403),
                                 ("https://good.example", 200)):
            body = orjson.dumps({"event": "E", "anonymousId": "a", "writeKey": live.key,
                                 "messageId": origin})
            r = httpx.post(live.url + "/v1/t", content=body,
                           headers={"content-type": "text/plain", "origin": origin})
            assert r.status_code == expected
            if expected == 200:
                assert r.headers["access-control-allow-origin"] == origin
            else:
                assert r.json()["error"]["code"] == "origin_not_allowed"
        live.wait_loaded()
        assert sorted(_stored(live)) == ["https://good.example"]


# -- 9. exposure ---------------------------------------------------------------------------
def test_monitoring_needs_the_token_and_settings_never_reflect_host(tmp_path: Path) -> None:
    toml = ('[collector]\nmonitoring_token = "s3cret"\nauth_failures_per_minute = 5\n'
            'public_url = "https://collect.example.com"\n')
    with collector(tmp_path / "w", toml) as live:
        assert httpx.get(live.url + "/metrics").status_code == 401
        assert httpx.get(live.url + "/metrics",
                         headers={"authorization": "Bearer wrong"}).status_code == 401
        ok = httpx.get(live.url + "/metrics", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "demandloop_loader_up" in ok.text
        r = httpx.get(f"{live.url}/v1/projects/{live.key}/settings",
                      headers={"host": "evil.example"})
        seg = r.json()["integrations"]["Segment.io"]
        assert (seg["apiHost"], seg["protocol"]) == ("collect.example.com/v1", "https")
        # key guessing: 5 wrong keys a minute, then 429 whatever is tried
        codes = [httpx.get(f"{live.url}/v1/projects/guess{i}/settings").status_code
                 for i in range(6)]
        assert codes == [401] * 5 + [429]
        r = httpx.post(live.url + "/v1/track", auth=("guess", ""),
                       json={"event": "E", "userId": "u"})
        assert r.status_code == 429 and r.headers["retry-after"] == "60"
        # telemetry needs no key, so it is capped small
        assert httpx.post(live.url + "/v1/m", content=b"x" * 20_000).status_code == 413
        assert httpx.post(live.url + "/v1/m", content=b'{"series":[]}').status_code == 200


def test_without_a_token_monitoring_is_for_loopback_and_readiness_hides_errors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with collector(tmp_path / "w") as live:
        live.loader.stop(drain=False)  # else its next pass clears the error we set
        live.loader.status["error"] = "IOException: /secret/path/demandloop.duckdb"
        assert "secret" in httpx.get(live.url + "/readyz").text  # loopback sees detail
        from demandloop.serve import app as app_module

        monkeypatch.setattr(app_module, "is_loopback", lambda address: False)
        r = httpx.get(live.url + "/readyz")
        assert r.status_code == 503 and "secret" not in r.text
        assert httpx.get(live.url + "/metrics").status_code == 403
        live.loader.status["error"] = None


# -- 10. keys for a malformed workspace id -------------------------------------------------
def test_keys_create_refuses_a_malformed_workspace_id(cli, tmp_path: Path  # type: ignore[no-untyped-def]
                                                       ) -> None:
    (tmp_path / "demandloop.toml").write_text("")
    for bad in ("Bad Id!", "../other", "-x", "a" * 64):
        code, _, err = cli("-w", str(tmp_path), "keys", "create", "--workspace-id", bad)
        assert code == 2 and "not a valid workspace id" in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "keys.json").exists()


# -- the visitor's address -----------------------------------------------------------------
def test_events_without_an_ip_get_the_connection_address_behind_trusted_proxies(
        tmp_path: Path) -> None:
    toml = '[collector]\ntrusted_proxies = ["127.0.0.1/32"]\n'
    with collector(tmp_path / "w", toml) as live:
        def send(mid: str, headers: dict[str, str], context: dict[str, Any] | None = None
                 ) -> None:
            msg: dict[str, Any] = {"event": "E", "anonymousId": "a", "messageId": mid,
                                   "writeKey": live.key}
            if context is not None:
                msg["context"] = context
            r = httpx.post(live.url + "/v1/t", content=orjson.dumps(msg),
                           headers={"content-type": "text/plain", **headers})
            assert r.status_code == 200

        send("browser", {"origin": "https://site.example"})
        send("proxied", {"origin": "https://site.example",
                         "x-forwarded-for": "198.51.100.7, 203.0.113.9"})
        # the client wrote 1.2.3.4 itself; our proxy appended what it saw
        send("spoofed-chain", {"origin": "https://site.example",
                               "x-forwarded-for": "1.2.3.4, 203.0.113.9"})
        send("malformed", {"origin": "https://site.example",
                           "x-forwarded-for": "203.0.113.9, not-an-ip"})
        send("own-ip", {"origin": "https://site.example"}, {"ip": "192.0.2.1"})
        send("server-sdk", {}, {"library": {"name": "analytics-python"}})
        live.wait_loaded()
        ips = {m: v["ip"] for m, v in _stored(live).items()}
        assert ips == {"browser": "127.0.0.1", "proxied": "203.0.113.9",
                       "spoofed-chain": "203.0.113.9", "malformed": "127.0.0.1",
                       "own-ip": "192.0.2.1", "server-sdk": "127.0.0.1"}


def test_a_drain_is_bounded_and_says_what_is_left(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(self: Any) -> bool:  # a store that takes forever
        time.sleep(0.3)
        return True

    with collector(tmp_path / "w") as live:
        monkeypatch.setattr(loader_module.Loader, "load_once", slow)
        try:
            r = httpx.post(live.url + "/v1/track", auth=(live.key, ""),
                           json={"event": "E", "userId": "u", "messageId": "left"})
            assert r.status_code == 200
            started = time.monotonic()
            left = live.loader.stop(drain=True, timeout=1.0)
            elapsed = time.monotonic() - started
        finally:
            monkeypatch.undo()
        assert elapsed < 3.0
        assert left > 0 and not live.loader.running
        # nothing is lost: the next loader (the next start) loads it
        while live.loader.load_once():
            pass
        assert _stored(live).keys() == {"left"}


def test_oversized_headers_are_refused_and_large_bodies_are_not(tmp_path: Path) -> None:
    """uvicorn keeps every header byte it is sent: 20 MB of headers on one connection were
    accepted. Over 64 KB the answer is 431; a near-limit batch written in one go is not
    mistaken for headers."""
    with collector(tmp_path / "w") as live:
        host, port = "127.0.0.1", int(live.url.rsplit(":", 1)[1])
        s = socket.create_connection((host, port))
        s.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\n")
        try:
            for i in range(200):
                s.sendall(b"X-Pad-%d: " % i + b"a" * 10_000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(5)
        assert s.recv(64).startswith(b"HTTP/1.1 431")
        s.close()
        batch = {"batch": [{"type": "track", "event": "E", "userId": "u",
                            "messageId": f"big-{i}", "properties": {"p": "x" * 4_500}}
                           for i in range(100)]}
        body = orjson.dumps(batch)
        assert 450_000 < len(body) < 512_000
        r = httpx.post(live.url + "/v1/batch", content=body, auth=(live.key, ""),
                       headers={"content-type": "application/json"})
        assert r.status_code == 200
        live.wait_loaded()
        assert live.query("SELECT count(*) FROM events")[0][0] == 100

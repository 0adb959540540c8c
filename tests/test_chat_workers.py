"""Chat with ``demandloop serve --workers N``: the HTTP workers forward it to the process
that holds the database, with the visitor's address, streaming the answer back; nobody else
can name an address to it; what a conversation logs is loaded like any event."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import demandloop
from demandloop.config import Settings
from demandloop.serve import chat_proxy
from demandloop.serve import keys as keystore
from tests.collector_helpers import free_port, server_log, start_subprocess
from tests.test_chat import BASE, SITE, TOML, _events, with_hot_target


def _market(directory: Path, api_port: int) -> str:
    """The chat tests' workspace (a hot target account behind 10.9.0.0/24); its write key."""
    directory.mkdir(parents=True)
    (directory / "demandloop.toml").write_text(
        TOML.replace("[collector]", f'[collector]\napi_port = {api_port}\n'
                     f'cors_origins = ["{BASE}"]'))
    key, _ = keystore.create(directory, "default", "tests")
    with demandloop.open(directory) as ws:
        with_hot_target(ws, SITE)
    return key


STARTED: list[str] = []


def _session(url: str, key: str, headers: dict[str, str], **body: str
             ) -> dict:  # type: ignore[type-arg]
    """Start a conversation (recorded in STARTED)."""
    r = httpx.post(url + "/v1/chat/sessions",
                   json={"writeKey": key, "url": BASE + "/pricing/", **body}, headers=headers)
    assert r.status_code == 201, r.text
    STARTED.append(r.json()["session"])
    return r.json()  # type: ignore[no-any-return]


def test_chat_through_several_workers(tmp_path: Path) -> None:
    directory, port, api_port = tmp_path / "ws", free_port(), free_port()
    STARTED.clear()
    key = _market(directory, api_port)
    proc = start_subprocess(directory, port, workers=2)
    url, owner = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}"
    office = {"X-Forwarded-For": "10.9.0.77"}  # 127.0.0.1 is a trusted proxy in TOML
    try:
        deadline, script = time.monotonic() + 90, ""
        while time.monotonic() < deadline and "function chatWidget" not in script:
            with contextlib.suppress(httpx.HTTPError):  # not up yet
                script = httpx.get(url + "/dl.js").text
            time.sleep(0.3)
        assert "function chatWidget" in script  # the workers offer the widget
        # the owner maps the published snapshot within a second of its start
        session = _session(url, key, office)
        while session["playbook"] != "targets" and time.monotonic() < deadline:
            time.sleep(0.3)
            session = _session(url, key, office)
        # the worker's address travelled: the account behind 10.9.0.77 gets its playbook
        assert session["playbook"] == "targets" and session["greeting"] == "Welcome back, Acme!"
        # nobody else can name an address to the owner: without this run's secret (or with
        # a wrong one) the header is dropped and the peer (loopback) is the visitor
        for forged in ({}, {"x-demandloop-proxy": "guess"}):
            direct = _session(owner, key, {"x-demandloop-client": "10.9.0.77", **forged})
            assert direct["playbook"] == "everyone"
        # an answer streams back through the worker as server-sent events
        with httpx.stream("POST", f"{url}/v1/chat/sessions/{session['session']}/messages",
                          json={"writeKey": key, "text": "How much is the Team plan?"},
                          headers={"Origin": "https://evil.example"}) as r:
            assert r.status_code == 403  # the owner's origin check still holds
        with httpx.stream("POST", f"{url}/v1/chat/sessions/{session['session']}/messages",
                          json={"writeKey": key, "text": "How much is the Team plan?"},
                          headers={"Origin": BASE}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["access-control-allow-origin"] == BASE
            events = _events(r)
        names = [n for n, _ in events]
        assert names[-3:] == ["answer", "next", "done"] and names.count("token") >= 2
        assert "$49 per seat" in dict(events)["answer"]["text"]
        sid = _session(url, key, {}, anonymousId="anon-q")["session"]
        answered = httpx.post(f"{url}/v1/chat/sessions/{sid}/answers",
                              json={"writeKey": key, "trait": "role", "value": "Sales"})
        assert answered.status_code == 200 and answered.json()["next"]["trait"] == "team_size"
        # errors come back as the owner gave them, or from the worker when too large to send
        wrong = httpx.post(url + "/v1/chat/sessions", json={"writeKey": "nope"})
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_write_key")
        big = httpx.post(url + "/v1/chat/sessions", content=b"x" * (chat_proxy.MAX_FORWARD + 1),
                         headers={"content-type": "application/json"})
        assert (big.status_code, big.json()["error"]["code"]) == (413, "too_large")
        assert httpx.get(f"{url}/m/not-a-token").status_code == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
    err = server_log(directory).read_bytes()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b'"path":' not in err  # --no-access-log holds in the workers too
    # what the conversations logged was loaded before the server stopped: the sessions, the
    # transcript and the answer as a trait of the visitor
    with demandloop.open(directory) as ws, ws.store.reader() as cur:
        assert sorted(r[0] for r in cur.execute("SELECT session_id FROM chat_sessions"
                                                 ).fetchall()) == sorted(STARTED)
        # the question refused for its origin left nothing; the answer is the visitor's too
        assert cur.execute("SELECT text FROM chat_messages WHERE role = 'visitor' "
                           "ORDER BY sent_at").fetchall() == [("How much is the Team plan?",),
                                                         ("Sales",)]
        traits = cur.execute("SELECT anonymous_id, traits->>'$.role' FROM events "
                             "WHERE type = 'identify'").fetchall()
    assert traits == [("anon-q", "Sales")]


def _get(app: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    """One request to the ASGI *app* in this process (peer 127.0.0.1)."""
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://worker") as client:
            return await client.request(method, path, **kw)
    return asyncio.run(go())


def test_a_worker_answers_503_while_the_owner_is_away(tmp_path: Path) -> None:
    app = FastAPI()
    chat_proxy.register(app, Settings.load(tmp_path), f"http://127.0.0.1:{free_port()}", "s")
    r = _get(app, "POST", "/v1/chat/sessions", json={"writeKey": "k"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
    assert r.headers["retry-after"] == "5"


def test_only_the_secret_lets_a_forwarded_address_through() -> None:
    app = FastAPI()

    @app.get("/who")
    async def who(request: Request) -> JSONResponse:
        return JSONResponse({"client": request.client.host if request.client else None,
                             "headers": sorted(request.headers)})

    forwarded = chat_proxy.Forwarded(app, "right")
    sent = {"x-demandloop-client": "203.0.113.9", "x-forwarded-for": "198.51.100.1"}
    trusted = _get(forwarded, "GET", "/who",
                   headers={**sent, "x-demandloop-proxy": "right"}).json()
    assert trusted["client"] == "203.0.113.9"
    assert not {"x-demandloop-client", "x-demandloop-proxy", "x-forwarded-for"} & set(
        trusted["headers"])
    for secret in ("wrong", None):
        h = {**sent, **({"x-demandloop-proxy": secret} if secret else {})}
        got = _get(forwarded, "GET", "/who", headers=h).json()
        assert got["client"] == "127.0.0.1"  # the peer, as without the headers
        assert "x-forwarded-for" in got["headers"]  # for the app's own proxy rule
        assert not {"x-demandloop-client", "x-demandloop-proxy"} & set(got["headers"])

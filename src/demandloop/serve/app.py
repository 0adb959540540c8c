"""The collector's HTTP application: :mod:`.ingest` for ``POST /v1/*``, FastAPI for the rest
(project settings for analytics.js, ``/dl.js``, ``/healthz``, ``/readyz``, ``/metrics``,
``/u/{token}`` unsubscribe links), :mod:`.decide` for ``/v1/decide``,
CORS for browsers and a structured access log around everything. Errors use the one JSON
shape of :class:`~demandloop.serve.envelope.Reject`.
"""

from __future__ import annotations

import gzip
import hmac
import logging
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from demandloop.config import Settings
from demandloop.serve import chat, chat_proxy, unsubscribe
from demandloop.serve.decide import Decide
from demandloop.serve.envelope import OK, Reject, internal_error, no_endpoint, not_allowed
from demandloop.serve.guard import AuthThrottle, client_address, is_loopback, networks
from demandloop.serve.ingest import Ingest
from demandloop.serve.snippet import snippet
from demandloop.serve.state import CollectorState
from demandloop.serve.tokens import TokenRing
from demandloop.serve.traffic import Timed
from demandloop.store.db import Store
from demandloop.workspace.chat import ChatService
from demandloop.workspace.personalize import DecideService

access = logging.getLogger("demandloop.access")
log = logging.getLogger("demandloop.loader")


class AccessLog:
    """Structured access log: one JSON line per request (method, path, status, ms, client).
    A plain ASGI middleware: the per-request cost of BaseHTTPMiddleware is too high here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            client = scope.get("client") or ("", 0)
            access.info(orjson.dumps({
                "ts": round(time.time(), 3), "method": scope["method"], "path": scope["path"],
                "status": status[0], "ms": round((time.perf_counter() - started) * 1000, 3),
                "client": client[0],
            }).decode())


def chat_widget(settings: Settings) -> dict[str, Any]:
    """The chat widget's texts, as dl.js receives them."""
    c = settings.chat
    return {"title": c.title, "launcher": c.launcher, "placeholder": "Ask a question",
            "sendLabel": "Send", "bookLabel": "Book a meeting", "confirmLabel": "Book",
            "pickSlot": "Pick a time (your time zone):",
            "noSlots": "No free time in the coming days; we will reach out.",
            "booked": "Booked with {rep}, {when}. The invitation is in your inbox.",
            "offline": "Chat is not available right now."}


def create_app(settings: Settings, state: CollectorState, api: ASGIApp | None = None,
               web: ASGIApp | None = None, tokens: TokenRing | None = None,
               store: Store | None = None, chat_owner: tuple[str, str] | None = None,
               api_port: int | None = None) -> ASGIApp:
    """The collector as one ASGI application over *state* (log, keys, loader, metrics),
    with the JSON API at ``/api/v1``, the dashboard at ``/app`` and chat at ``/v1/chat``
    when this process holds the database (*api*, *web*, *store*; chat only when
    ``chat.enabled``). A worker of several gets *chat_owner* instead (the address of the
    process that holds the database, and the run's secret): it forwards chat there
    (:mod:`.chat_proxy`), and *api_port*, where the API and the dashboard answer: a
    request for them here is told that port, not only that nothing answers it."""
    c = settings.collector
    app = FastAPI(title="demandloop collector", docs_url=None, redoc_url=None,
                  openapi_url=None)
    directory = state.keys.path.parent
    decisions = DecideService(directory, settings).start()
    scripts: dict[bytes, tuple[bytes, bytes]] = {}

    chats = settings.chat.enabled and (store is not None or chat_owner is not None)
    widget = chat_widget(settings) if chats else None

    def dl_script() -> tuple[bytes, bytes]:
        """dl.js as the experiences now in force want it (rebuilt when they change), plain
        and gzipped: a page that personalises loads it before it draws, and it is 13 KB
        plain, 5 KB gzipped."""
        options = decisions.snippet_options()
        key = orjson.dumps(options)
        if key not in scripts:
            scripts.clear()
            plain = snippet(c, options, widget).encode()
            scripts[key] = (plain, gzip.compress(plain, compresslevel=9, mtime=0))
        return scripts[key]

    throttle = AuthThrottle(c.auth_failures_per_minute)
    proxies = networks(c.trusted_proxies)
    token = c.monitoring_token.get_secret_value()
    api_host = c.base_url()
    scheme, _, api_host = api_host.rpartition("://")

    def monitor(request: Request) -> bool:
        """May this request see monitoring detail: the token, or (no token set) loopback."""
        if token:
            given = request.headers.get("authorization", "")
            return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
        return is_loopback(client_address(request.scope, dict(request.scope["headers"]),
                                          proxies))

    @app.get("/v1/projects/{write_key}/settings")
    async def project_settings(write_key: str, request: Request) -> Response:
        client = client_address(request.scope, dict(request.scope["headers"]), proxies)
        try:
            throttle.admit(client, state.keys.workspace(write_key),
                           Reject(401, "invalid_write_key", "unknown write key"))
        except Reject as r:
            return r.response()
        # the address comes from the settings, never from the request's Host header (which
        # a client or a shared cache in front of us could poison)
        return Response(orjson.dumps({
            "integrations": {"Segment.io": {"apiKey": write_key, "apiHost": f"{api_host}/v1",
                                            "protocol": scheme or "http"}},
            "plan": {"track": {"__default": {"enabled": True}},
                     "identify": {"__default": {"enabled": True}},
                     "group": {"__default": {"enabled": True}}},
            "edgeFunction": {}, "analyticsNextEnabled": True, "middlewareSettings": {},
            "enabledMiddleware": {}, "metrics": {"sampleRate": 0},
            "legacyVideoPluginsEnabled": False, "remotePlugins": [],
        }), media_type="application/json")

    @app.get("/dl.js")
    async def dl_js(request: Request) -> Response:
        plain, packed = dl_script()
        headers = {"Cache-Control": "public, max-age=300", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            headers["Content-Encoding"] = "gzip"
            return Response(packed, media_type="application/javascript", headers=headers)
        return Response(plain, media_type="application/javascript", headers=headers)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(OK, media_type="application/json")

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        problem = state.not_ready(c.max_backlog_mb * (1 << 20))
        if problem:
            # load balancers need only the status; the reason (error text) is for operators
            detail = problem if monitor(request) else "not ready"
            return Reject(503, "not_ready", detail, retry_after=5).response()
        return Response(OK, media_type="application/json")

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        if not monitor(request):
            return Reject(401 if token else 403, "forbidden",
                          "send collector.monitoring_token as a Bearer token" if token
                          else "only loopback clients may read /metrics unless "
                          "collector.monitoring_token is set").response()
        status = state.loader_status()
        return Response(state.metrics.render(state.backlog_bytes(), status,
                                             up=state.loader_problem(status) is None),
                        media_type="text/plain; version=0.0.4")

    unsubscribe.register(app, state, state.keys.path.parent)
    if store is not None and settings.chat.enabled:
        chat.register(app, settings, state,
                      ChatService(directory, settings, store, decisions.decider), throttle)
    elif chat_owner is not None and settings.chat.enabled:
        chat_proxy.register(app, settings, *chat_owner)
    if api is not None:
        app.mount("/api/v1", api)
    if web is not None:
        app.mount("/app", web)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        path = request.url.path
        elsewhere = api_port is not None and path.startswith(("/api/", "/app"))
        return no_endpoint(path, f" on this port: with several workers the API and the "
                           f"dashboard answer on port {api_port} (collector.api_port)"
                           if elsewhere else "").response()

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return not_allowed(request.method, request.url.path).response()

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        # (the one JSON shape, as /api/v1 answers: a widget reads it)
        return internal_error(log, request.method, request.url.path, exc).response()

    # CORS answers browsers' preflights; the ingestion path adds its own allow-origin header
    cors = CORSMiddleware(app, allow_origins=c.cors_origins, allow_methods=["*"],
                          allow_headers=["*"], max_age=86400)
    ingest = Ingest(cors, settings, state, throttle)
    return Timed(AccessLog(Decide(ingest, settings, state, decisions,
                                  tokens or TokenRing(directory), throttle)))

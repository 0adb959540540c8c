"""The Segment-compatible HTTP API (FastAPI): accept, check, log durably, acknowledge.

A request is answered ``200 {"success": true}`` only once all its events are in the durable
log (:mod:`demandloop.collect.log`); the loader moves them into the store afterwards. Every
other answer uses one JSON shape, ``{"success": false, "error": {"code", "message"}}`` (with
``problems`` for invalid messages), and writes nothing:

* 400 invalid JSON, gzip or messages (all or nothing: clients drop a 400 batch, so a batch
  is refused only for what is really wrong: see :mod:`demandloop.collect.validate`);
* 401 missing or unknown write key; 413 body over ``collector.max_request_bytes`` or an event
  over 32 KB; 429 a workspace over ``collector.rate_limit`` (with ``Retry-After``);
* 503 the log cannot be written or the loader is too far behind (with ``Retry-After``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import logging
import math
import time
import zlib
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response

from demandloop.collect.segment import Limits
from demandloop.collect.validate import check, normalise
from demandloop.config import Settings
from demandloop.errors import StoreError
from demandloop.serve.metrics import Metrics
from demandloop.serve.snippet import snippet
from demandloop.serve.state import CollectorState

OK = b'{"success":true}'
TYPES = {"track": "track", "identify": "identify", "page": "page", "screen": "screen",
         "group": "group", "alias": "alias", "t": "track", "i": "identify", "p": "page",
         "s": "screen", "g": "group", "a": "alias"}
MAX_PROBLEMS = 20
access = logging.getLogger("demandloop.access")


class AccessLog:
    """Structured access log: one JSON line per request (method, path, status, ms, client).
    A plain ASGI middleware: the per-request cost of BaseHTTPMiddleware is too high here."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not access.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            client = scope.get("client") or ("", 0)
            access.info(orjson.dumps({
                "ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                "method": scope["method"], "path": scope["path"], "status": status[0],
                "ms": round((time.perf_counter() - started) * 1000, 3), "client": client[0],
            }).decode())


class Reject(Exception):
    """An answer other than 200, in the one error shape."""

    def __init__(self, status: int, code: str, message: str,
                 problems: list[str] | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.problems, self.retry_after = problems or [], retry_after

    def response(self) -> Response:
        body: dict[str, Any] = {"success": False,
                                "error": {"code": self.code, "message": self.message}}
        if self.problems:
            body["error"]["problems"] = self.problems
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else {}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="demandloop"'
        return Response(orjson.dumps(body), status_code=self.status, headers=headers,
                        media_type="application/json")


class TokenBucket:
    """Per-workspace event rate: *rate* events/s with *burst* headroom."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst or rate
        self.tokens: dict[str, tuple[float, float]] = {}

    def take(self, workspace: str, n: int) -> float:
        """0 if *n* events may pass now, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, at = self.tokens.get(workspace, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if n > tokens:
            self.tokens[workspace] = (tokens, now)
            return (n - tokens) / self.rate if n <= self.burst else 1.0
        self.tokens[workspace] = (tokens - n, now)
        return 0.0


def _decode(raw: bytes, encoding: str | None, limit: int) -> bytes:
    if not encoding or encoding == "identity":
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise Reject(415, "unsupported_encoding", f"Content-Encoding '{encoding[:40]}' is "
                     "not supported (use gzip)")
    d = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    try:
        out = d.decompress(raw, limit + 1)
    except zlib.error:
        raise Reject(400, "invalid_gzip", "the body is not valid gzip") from None
    if len(out) > limit:
        raise Reject(413, "too_large", f"the request is over {limit:,} bytes once "
                     "decompressed (send smaller batches)")
    if not d.eof:
        raise Reject(400, "invalid_gzip", "the gzip body is truncated")
    return out


def _key(request: Request, body: dict[str, Any]) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Reject(401, "invalid_auth", "the Authorization header is not valid "
                         "HTTP Basic (send the write key as the username)") from None
        return user.split(":", 1)[0] or None
    key = body.get("writeKey")
    return key if isinstance(key, str) and key else None


def create_app(settings: Settings, state: CollectorState) -> FastAPI:
    """The collector application over *state* (log, keys, loader status, metrics)."""
    c = settings.collector
    limits = Limits(max_event_bytes=settings.ingest.max_event_bytes,
                    max_message_id_length=settings.ingest.max_message_id_length)
    bucket = TokenBucket(c.rate_limit, c.rate_burst)
    metrics: Metrics = state.metrics
    app = FastAPI(title="demandloop collector", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_middleware(CORSMiddleware, allow_origins=c.cors_origins, allow_methods=["*"],
                       allow_headers=["*"], max_age=86400)
    app.add_middleware(AccessLog)
    js = snippet(c).encode()

    async def ingest(request: Request, kind: str | None) -> Response:
        started = time.perf_counter()
        events = 0
        try:
            declared = request.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > c.max_request_bytes:
                raise Reject(413, "too_large", f"the request is over "
                             f"{c.max_request_bytes:,} bytes (send smaller batches)")
            raw = await request.body()
            if len(raw) > c.max_request_bytes:
                raise Reject(413, "too_large", f"the request is over "
                             f"{c.max_request_bytes:,} bytes (send smaller batches)")
            data = _decode(raw, request.headers.get("content-encoding"), c.max_request_bytes)
            try:
                body = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise Reject(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
            if not isinstance(body, dict):
                raise Reject(400, "invalid_json", "the body must be a JSON object")
            workspace = state.keys.workspace(_key(request, body))
            if workspace is None:
                raise Reject(401, "invalid_write_key", "missing or unknown write key (send "
                             "it as the HTTP Basic username or as writeKey in the body)")
            envelope, messages = _messages(body, kind)
            events = len(messages)
            now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z")
            problems, accepted = [], []
            sent = envelope.get("sentAt")
            for i, msg in enumerate(messages):
                if isinstance(msg, dict) and sent is not None and "sentAt" not in msg:
                    msg = {**msg, "sentAt": sent}
                size = len(orjson.dumps(msg)) if isinstance(msg, dict) else 0
                reason = check(msg, limits, size)
                if reason:
                    where = f"batch[{i}]: " if kind is None else ""
                    problems.append((413 if size > limits.max_event_bytes else 400,
                                     where + reason))
                else:
                    accepted.append(normalise(msg, now))
            if problems:
                status = 413 if all(s == 413 for s, _ in problems) else 400
                raise Reject(status, "too_large" if status == 413 else "invalid_messages",
                             f"{len(problems)} of {len(messages)} message(s) are invalid; "
                             "nothing was accepted",
                             problems=[p for _, p in problems[:MAX_PROBLEMS]])
            if not accepted:
                raise Reject(400, "invalid_messages", "the batch is empty")
            wait = bucket.take(workspace, len(accepted))
            if wait > 0:
                raise Reject(429, "rate_limited", f"workspace over its rate limit of "
                             f"{c.rate_limit:g} events/s", retry_after=max(1, math.ceil(wait)))
            if state.backlog_bytes() > c.max_backlog_mb * (1 << 20):
                raise Reject(503, "backlog_full", "the loader is behind; retry shortly",
                             retry_after=5)
            record: dict[str, Any] = {"batch": accepted}
            if isinstance(envelope.get("context"), dict):
                record["context"] = envelope["context"]
            try:
                await state.log.append(workspace, orjson.dumps(record))
            except StoreError as exc:
                raise Reject(503, "store_unavailable", str(exc), retry_after=5) from None
            metrics.accepted(workspace, len(accepted))
            metrics.observe(time.perf_counter() - started, 200)
            return Response(OK, media_type="application/json")
        except Reject as r:
            metrics.rejected(r.status, events or 1)
            metrics.observe(time.perf_counter() - started, r.status)
            return r.response()

    @app.post("/v1/batch")
    @app.post("/v1/b")
    async def batch(request: Request) -> Response:
        return await ingest(request, None)

    @app.post("/v1/m")
    async def client_metrics(request: Request) -> Response:
        await request.body()  # analytics.js telemetry: accepted and ignored
        return Response(OK, media_type="application/json")

    @app.post("/v1/{kind}")
    async def single(kind: str, request: Request) -> Response:
        if kind not in TYPES:
            return Reject(404, "not_found", f"no endpoint /v1/{kind[:40]}").response()
        return await ingest(request, TYPES[kind])

    @app.get("/v1/projects/{write_key}/settings")
    async def project_settings(write_key: str, request: Request) -> Response:
        if state.keys.workspace(write_key) is None:
            return Reject(401, "invalid_write_key", "unknown write key").response()
        host = request.headers.get("host", f"{c.host}:{c.port}")
        return Response(orjson.dumps({
            "integrations": {"Segment.io": {"apiKey": write_key, "apiHost": f"{host}/v1",
                                            "protocol": request.url.scheme}},
            "plan": {"track": {"__default": {"enabled": True}},
                     "identify": {"__default": {"enabled": True}},
                     "group": {"__default": {"enabled": True}}},
            "edgeFunction": {}, "analyticsNextEnabled": True, "middlewareSettings": {},
            "enabledMiddleware": {}, "metrics": {"sampleRate": 0}, "legacyVideoPluginsEnabled":
                False, "remotePlugins": [],
        }), media_type="application/json")

    @app.get("/dl.js")
    async def dl_js() -> Response:
        return Response(js, media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=300"})

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(OK, media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> Response:
        problem = state.not_ready(c.max_backlog_mb * (1 << 20))
        if problem:
            return Reject(503, "not_ready", problem, retry_after=5).response()
        return Response(OK, media_type="application/json")

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(state.backlog_bytes(), state.loader_status()),
                        media_type="text/plain; version=0.0.4")

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        return Reject(404, "not_found", f"no endpoint {request.url.path[:80]}").response()

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc: Exception) -> Response:
        return Reject(405, "method_not_allowed",
                      f"{request.method} is not allowed on {request.url.path[:80]}").response()

    return app


def _messages(body: dict[str, Any], kind: str | None) -> tuple[dict[str, Any], list[Any]]:
    """(envelope, messages) of a request body."""
    if kind is None:
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise Reject(400, "invalid_messages", '"batch" must be an array of messages')
        return body, batch
    msg = {k: v for k, v in body.items() if k != "writeKey"}
    msg["type"] = kind  # the endpoint decides the type, as Segment's does
    return {}, [msg]

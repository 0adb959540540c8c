"""``POST /v1/*``: accept, check, log durably, acknowledge, as a plain ASGI handler.

The hot path of the collector bypasses FastAPI's request and response objects and routing
(measured: about half the time of a single-event request went there); everything else
(settings, health, metrics, dl.js) is served by the FastAPI app it wraps.

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

import asyncio
import datetime as dt
import math
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from demandloop.collect.segment import Limits
from demandloop.collect.validate import (
    check,
    normalise,
    odd_timestamps,
    size_reason,
    timestamps_ok,
)
from demandloop.config import Settings
from demandloop.errors import StoreError
from demandloop.serve.envelope import (
    MAX_PROBLEMS,
    MAX_TELEMETRY_BYTES,
    OK,
    TOO_DEEP,
    TYPES,
    Origins,
    Reject,
    TokenBucket,
    decode_body,
    json_object,
    merge_patch,
    read_body,
    respond,
    split_messages,
    with_client_ip,
    write_key,
)
from demandloop.serve.guard import AuthThrottle, client_address, networks
from demandloop.serve.state import CollectorState


def _sink(name: str) -> bool:
    """Whether ``/v1/{name}`` is one of the collector's own endpoints (POST only): a batch
    (``batch``; ``b`` from analytics.js; ``import``, Segment's older name for it, where
    analytics-ruby and analytics-java still post), analytics.js telemetry (``m``), or one
    message whose type its path names."""
    return name in ("batch", "b", "import", "m") or name in TYPES


class Ingest:
    """ASGI: ``POST /v1/...`` handled here, anything else passed to *app*."""

    def __init__(self, app: ASGIApp, settings: Settings, state: CollectorState,
                 throttle: AuthThrottle | None = None) -> None:
        self.app, self.state = app, state
        self.c = c = settings.collector
        self.limits = Limits(max_event_bytes=settings.ingest.max_event_bytes,
                             max_message_id_length=settings.ingest.max_message_id_length)
        self.bucket = TokenBucket(c.rate_limit, c.rate_burst)
        self.throttle = throttle or AuthThrottle(c.auth_failures_per_minute)
        self.proxies = networks(c.trusted_proxies)
        self.origins = Origins(c.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] not in ("POST", "OPTIONS")
                and scope["path"].startswith("/v1/") and _sink(scope["path"][4:])):
            # an endpoint that exists, asked the wrong way: say so (a CORS preflight,
            # OPTIONS, goes on to its middleware)
            payload, _ = Reject(405, "method_not_allowed", f"{scope['method'][:10]} is not "
                                f"allowed on {scope['path'][:80]}; send events with POST").payload()
            await respond(send, 405, payload, [(b"allow", b"POST")])
            return
        if (scope["type"] != "http" or scope["method"] != "POST"
                or not scope["path"].startswith("/v1/")
                or scope["path"].startswith("/v1/chat/")):  # chat's own endpoints
            await self.app(scope, receive, send)
            return
        name = scope["path"][4:]
        headers = dict(scope["headers"])
        started = time.perf_counter()
        events = 1
        extra: list[tuple[bytes, bytes]] = []
        origin = headers.get(b"origin")
        try:
            if not self.origins.allows(origin):
                # a browser's text/plain POST is a "simple request": no preflight stops it,
                # so the origin is checked here
                raise Reject(403, "origin_not_allowed", "this origin may not send events "
                             "(add it to collector.cors_origins)")
            if not _sink(name):
                raise Reject(404, "not_found", f"no endpoint /v1/{name[:40]}")
            if name == "m":  # analytics.js telemetry: accepted and ignored
                await self._body(receive, headers, MAX_TELEMETRY_BYTES)
            else:  # a batch, or one message whose type its path names
                events = await self._ingest(scope, receive, headers, TYPES.get(name))
            status, payload = 200, OK
        except Reject as r:
            status = r.status
            payload, extra = r.payload()
            self.state.metrics.rejected(status, events)
        self.state.metrics.observe(time.perf_counter() - started, status)
        await respond(send, status, payload, [*extra, *self.origins.headers(origin)])

    async def _body(self, receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
        return await read_body(receive, headers, limit, self.c.read_timeout_seconds,
                               "send smaller batches")

    def _workspace(self, client: str | None, headers: dict[bytes, bytes],
                   body: dict[str, Any]) -> str:
        return self.throttle.admit(client, self.state.keys.workspace(
            write_key(headers.get(b"authorization", b"").decode("latin-1"), body)),
            Reject(401, "invalid_write_key", "missing or unknown write key (send it as the "
                   "HTTP Basic username or as writeKey in the body)"))

    async def _ingest(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes],
                      kind: str | None) -> int:
        """Check and log one request; returns its number of events (raises Reject)."""
        c, state = self.c, self.state
        raw = await self._body(receive, headers, c.max_request_bytes)
        encoding = headers.get(b"content-encoding", b"").decode("latin-1") or None
        body = json_object(decode_body(raw, encoding, c.max_request_bytes))
        client = client_address(scope, headers, self.proxies)
        workspace = self._workspace(client, headers, body)
        envelope, messages = split_messages(body, kind)
        sent = envelope.get("sentAt")
        odd = [t for m in messages for t in odd_timestamps(m, sent)]
        # DuckDB judges the odd timestamps, all at once and off the event loop (one query
        # per value, on the loop, froze every other client for seconds)
        known = dict.fromkeys(odd, False)
        if odd:
            known.update(dict.fromkeys(await asyncio.to_thread(timestamps_ok, odd), True))
        lines = self._lines(envelope, messages, kind, known, client)
        wait = self.bucket.take(workspace, len(lines))
        if wait > 0:
            raise Reject(429, "rate_limited", f"workspace over its rate limit of "
                         f"{c.rate_limit:g} events/s", retry_after=max(1, math.ceil(wait)))
        if state.backlog_bytes() > c.max_backlog_mb * (1 << 20):
            raise Reject(503, "backlog_full", "the loader is behind; retry shortly",
                         retry_after=5)
        # one message per line: the loader stages single messages far faster than batch
        # envelopes (measured: 60-80k vs 8k events/s)
        try:
            await state.log.append(workspace, b"\n".join(lines))
        except StoreError as exc:
            raise Reject(503, "store_unavailable", str(exc), retry_after=5) from None
        state.metrics.accepted(workspace, len(lines))
        return len(lines)

    def _lines(self, envelope: dict[str, Any], messages: list[Any], kind: str | None,
               known: dict[str, bool], client: str | None) -> list[bytes]:
        """The log lines of a request's messages, exactly as they will be stored: the
        batch's context and sentAt applied, normalised, measured (raises Reject)."""
        limits = self.limits
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
        shared = envelope.get("context")
        shared = shared if isinstance(shared, dict) else None
        sent = envelope.get("sentAt")
        problems: list[tuple[int, str]] = []
        lines: list[bytes] = []
        total = 0
        for i, msg in enumerate(messages):
            where = f"batch[{i}]: " if kind is None else ""
            if isinstance(msg, dict) and sent is not None and "sentAt" not in msg:
                msg = {**msg, "sentAt": sent}
            try:
                line, reason, status = self._line(msg, limits, known, shared, client, now)
            except (orjson.JSONEncodeError, RecursionError):
                line, reason, status = b"", TOO_DEEP, 400
            if reason:
                problems.append((status, where + reason))
                continue
            total += len(line) + 1
            lines.append(line)
        if problems:
            status = 413 if all(s == 413 for s, _ in problems) else 400
            raise Reject(status, "too_large" if status == 413 else "invalid_messages",
                         f"{len(problems)} of {len(messages)} message(s) are invalid; "
                         "nothing was accepted",
                         problems=[p for _, p in problems[:MAX_PROBLEMS]])
        if not lines:
            raise Reject(400, "invalid_messages", "the batch is empty")
        if total > self.c.max_expanded_bytes:
            raise Reject(413, "too_large", f"the batch is {total:,} bytes once its context "
                         "is applied to each message, over the "
                         f"{self.c.max_expanded_bytes:,}-byte limit (send smaller batches "
                         "or a smaller batch context)")
        return lines

    @staticmethod
    def _line(msg: Any, limits: Limits, known: dict[str, bool], shared: dict[str, Any] | None,
              client: str | None, now: str) -> tuple[bytes, str | None, int]:
        """One message's log line, or the reason and status refusing it."""
        reason = check(msg, limits, -1, known)  # the size is checked below
        if reason:
            return b"", reason, 400
        if shared is not None:  # a batch's context applies to each of its messages
            own = msg.get("context")
            msg = {**msg, "context": merge_patch(shared, own) if own is not None else shared}
        if client is not None:
            msg = with_client_ip(msg, client)
        out = normalise(msg, now)
        line = orjson.dumps(out)
        # the limit applies to what is stored (the batch's context included): a small
        # request must not become a huge record. Normalising only adds fields, so a short
        # line proves a short message; the message is measured when that proof fails
        if len(line) > limits.max_event_bytes or "receivedAt" in msg:
            too_big = size_reason(len(orjson.dumps(msg)), limits)
            if too_big:
                return b"", too_big, 413
        if "batch" in out:
            # a message with a top-level "batch" field would read as an envelope in the
            # log: wrapped in one, it is stored as the message it is
            line = b'{"batch":[' + line + b"]}"
        return line, None, 200

"""Chat with several workers: each HTTP worker forwards ``/v1/chat/...`` and ``/m/{token}``
to the process that holds the database, which serves them beside ``/api/v1`` on
``collector.api_port``, and streams its answers back as they are produced.

Why forward instead of answering in the worker: a conversation writes sessions, messages
and meetings, and DuckDB allows one writing process. The visitor's address matters there
(the playbook of the account behind it, the throttle on wrong write keys), so the worker
sends the address it worked out itself (from its peer and ``collector.trusted_proxies``,
as for any collector request) with a secret made for this run of ``demandloop serve``
(handed to the workers in their environment, never sent off the machine): :class:`Forwarded`
believes that address only with the secret, and drops both headers from every other
request (a visitor cannot name their own address by sending them).

Hand-written (under 100 lines) rather than a proxy library: it forwards two routes to one
known process, and the address rule is ours.
"""

from __future__ import annotations

import hmac

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Receive, Scope, Send

from demandloop.config import Settings
from demandloop.serve.envelope import Reject
from demandloop.serve.guard import client_address, networks

#: the visitor's address as the worker found it, and this run's secret
CLIENT, SECRET = b"x-demandloop-client", b"x-demandloop-proxy"
#: what a worker reads of a chat request at most (chat itself refuses more than 8 KiB
#: with its own message; this only bounds what is held while forwarding)
MAX_FORWARD = 64 << 10
#: an answer streams for as long as it takes; the owner must answer the connection at once
TIMEOUT = httpx.Timeout(connect=3.0, read=120.0, write=10.0, pool=5.0)
#: headers that belong to one connection, not to the request or answer forwarded
_HOP = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade",
        b"content-length", b"accept-encoding", b"content-encoding", b"proxy-authorization",
        b"x-forwarded-for", CLIENT, SECRET}


class Forwarded:
    """Around the database-holding process's app: a request from a worker that carries
    this run's *secret* is answered as if it came from the address the worker
    sent (``scope["client"]``, without ``X-Forwarded-For``); from everyone else both
    headers are dropped and nothing else changes."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.app, self.secret = app, secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            found = {k: v for k, v in headers if k in (CLIENT, SECRET)}
            if found:
                kept = [(k, v) for k, v in headers if k not in (CLIENT, SECRET)]
                scope = {**scope, "headers": kept}
                address = found.get(CLIENT, b"").decode("latin-1")
                if address and hmac.compare_digest(found.get(SECRET, b""), self.secret):
                    scope["client"] = (address, 0)
                    scope["headers"] = [(k, v) for k, v in kept if k != b"x-forwarded-for"]
        await self.app(scope, receive, send)


def register(app: FastAPI, settings: Settings, owner_url: str, secret: str) -> None:
    """Forward chat's routes on *app* (a worker's) to *owner_url* with *secret*."""
    proxies = networks(settings.collector.trusted_proxies)
    # as many connections to the owner as the worker itself accepts: an answer holds one
    # while it streams, and httpx's default of 100 would queue the rest
    n = settings.collector.max_connections
    client = httpx.AsyncClient(base_url=owner_url, timeout=TIMEOUT,
                               limits=httpx.Limits(max_connections=n,
                                                   max_keepalive_connections=min(n, 64)))

    async def forward(request: Request) -> Response:
        try:
            body = await _body(request)
        except Reject as r:
            return r.response()
        headers = [(k, v) for k, v in request.headers.raw if k.lower() not in _HOP]
        address = client_address(request.scope, dict(request.scope["headers"]), proxies)
        headers += [(CLIENT, (address or "").encode("latin-1")), (SECRET, secret.encode()),
                    (b"accept-encoding", b"identity")]
        upstream = client.build_request(request.method, request.url.path,
                                        params=request.url.query, content=body,
                                        headers=headers)
        try:
            answer = await client.send(upstream, stream=True)
        except httpx.HTTPError:
            return Reject(503, "unavailable", "chat is not available right now (the server "
                          "is starting or stopping); try again in a minute",
                          retry_after=5).response()
        return StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code,
            headers={k.decode("latin-1"): v.decode("latin-1")
                     for k, v in answer.headers.raw if k.lower() not in _HOP},
            background=BackgroundTask(answer.aclose))

    app.add_route("/v1/chat/{rest:path}", forward, methods=["GET", "POST"])
    app.add_route("/m/{token}", forward, methods=["GET", "POST"])


async def _body(request: Request) -> bytes:
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORWARD:
            raise Reject(413, "too_large", f"the request is over {MAX_FORWARD:,} bytes")
        parts.append(chunk)
    return b"".join(parts)

"""``/v1/decide``: a visit's personalisation decisions, as a plain ASGI handler in front of
the collector (no FastAPI routing on a path a page waits for).

* ``GET /v1/decide?k=WRITE_KEY&aid=&url=&ref=``: from a browser (``dl.js``). The address
  is the request's (``collector.trusted_proxies`` apply); CORS as for events.
* ``POST /v1/decide`` with a JSON body ``{"ip", "anonymousId", "url", "referrer"}``: from a
  site that renders on the server. The address is the body's, so it needs an API token of
  scope ``read`` (``Authorization: Bearer dlt_...``): a write key is public, and a public
  endpoint that names the company behind any address would be a lookup service for anyone.

Answers ``200 {"decisions": [...]}`` (``Cache-Control: no-store``); errors in the one JSON
shape (:class:`~demandloop.serve.envelope.Reject`). Nothing is written.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from demandloop.config import Settings
from demandloop.serve.envelope import Origins, Reject, json_object, read_body, respond
from demandloop.serve.guard import AuthThrottle, client_address, networks
from demandloop.serve.state import CollectorState
from demandloop.serve.tokens import TokenRing, allows
from demandloop.workspace.personalize import DecideService

MAX_BODY = 16_384
_FIELD = 2048  # longest url, referrer or id read from a request


class Decide:
    """ASGI: ``/v1/decide`` handled here, anything else passed to *app*."""

    def __init__(self, app: ASGIApp, settings: Settings, state: CollectorState,
                 service: DecideService, tokens: TokenRing, throttle: AuthThrottle) -> None:
        self.app, self.state, self.service = app, state, service
        self.tokens, self.throttle = tokens, throttle
        c = settings.collector
        self.proxies = networks(c.trusted_proxies)
        self.origins = Origins(c.cors_origins)
        self.read_timeout = c.read_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/decide" \
                or scope["method"] not in ("GET", "POST"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        extra: list[tuple[bytes, bytes]] = []
        try:
            if not self.origins.allows(origin):
                raise Reject(403, "origin_not_allowed", "this origin may not ask for "
                             "decisions (add it to collector.cors_origins)")
            if scope["method"] == "GET":
                ip, aid, url, ref = self._from_query(scope, headers)
            else:
                ip, aid, url, ref = await self._from_body(scope, receive, headers)
            decisions = self.service.decider().decide(ip, aid, url, ref)
            status = 200
            payload = orjson.dumps({"decisions": [d.as_json() for d in decisions]})
        except Reject as r:
            status = r.status
            payload, extra = r.payload()
        self.state.metrics.decided(time.perf_counter() - started, status)
        await respond(send, status, payload, [(b"cache-control", b"no-store"), *extra,
                                              *self.origins.headers(origin)])

    def _from_query(self, scope: Scope, headers: dict[bytes, bytes]
                    ) -> tuple[str | None, str | None, str | None, str | None]:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0][:_FIELD] if values and values[0] else None

        client = client_address(scope, headers, self.proxies)
        key = one("k")
        self.throttle.admit(client, self.state.keys.workspace(key) if key else None,
                            Reject(401, "invalid_write_key", "missing or unknown write key "
                                   "(pass it as ?k=)"))
        return client, one("aid"), one("url"), one("ref")

    async def _from_body(self, scope: Scope, receive: Receive, headers: dict[bytes, bytes]
                         ) -> tuple[str | None, str | None, str | None, str | None]:
        client = client_address(scope, headers, self.proxies)
        auth = headers.get(b"authorization", b"").decode("latin-1")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        granted = self.throttle.admit(
            client, self.tokens.scope(token),
            Reject(401, "invalid_token", "POST /v1/decide needs an API token (Authorization: "
                   "Bearer dlt_...; demandloop tokens create --scope read)"), "token")
        if not allows(granted, "read"):
            raise Reject(403, "forbidden", "this token may not read")
        body = json_object(await read_body(receive, headers, MAX_BODY, self.read_timeout))
        unknown = sorted(set(body) - {"ip", "anonymousId", "url", "referrer"})
        if unknown:
            raise Reject(400, "invalid_request", f"unknown field '{unknown[0]}' (send ip, "
                         "anonymousId, url, referrer)")
        values = []
        for name in ("ip", "anonymousId", "url", "referrer"):
            v = body.get(name)
            if v is not None and not isinstance(v, str):
                raise Reject(400, "invalid_request", f"'{name}' must be a string")
            values.append(v[:_FIELD] if v else None)
        return values[0], values[1], values[2], values[3]

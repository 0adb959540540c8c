"""The parts of a collector request before its messages are checked: the one error answer
(:class:`Reject`) and the answer itself (:func:`respond`), the browser origins allowed
(:class:`Origins`), the per-workspace rate limit, the body's reading and decoding, the write
key, the envelope and its messages, the batch context merge and the client's address."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
import zlib
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Send

from demandloop.collect.surrogates import TooDeep, loads

OK = b'{"success":true}'
TYPES = {"track": "track", "identify": "identify", "page": "page", "screen": "screen",
         "group": "group", "alias": "alias", "t": "track", "i": "identify", "p": "page",
         "s": "screen", "g": "group", "a": "alias"}
MAX_PROBLEMS = 20
JSON = (b"content-type", b"application/json")
#: analytics.js telemetry is discarded: a small cap, so the unauthenticated path costs nothing
MAX_TELEMETRY_BYTES = 16_384
TOO_DEEP = "message is nested more than 255 levels deep"


class Reject(Exception):
    """An answer other than 200, in the one error shape."""

    def __init__(self, status: int, code: str, message: str,
                 problems: list[str] | None = None, retry_after: int | None = None,
                 location: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.problems, self.retry_after = problems or [], retry_after
        #: where a moved thing is now (a 301's ``Location``), and fields beside ``error``
        self.location, self.extra = location, extra or {}

    def payload(self) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The JSON body and the extra headers of this answer."""
        body: dict[str, Any] = {"success": False,
                                "error": {"code": self.code, "message": self.message},
                                **self.extra}
        if self.problems:
            body["error"]["problems"] = self.problems
        headers = [(b"retry-after", str(self.retry_after).encode())] if self.retry_after else []
        if self.location is not None:
            headers.append((b"location", self.location.encode()))
        if self.status == 401:
            headers.append((b"www-authenticate", b'Basic realm="demandloop"'))
        return orjson.dumps(body), headers

    def response(self) -> Response:
        """This answer as a Starlette response (for the routes outside the raw ASGI path)."""
        payload, headers = self.payload()
        return Response(payload, status_code=self.status, media_type="application/json",
                        headers={k.decode(): v.decode() for k, v in headers})


def no_endpoint(path: str, also: str = "") -> Reject:
    """The 404 of a path nothing answers (*also*: where to look instead)."""
    return Reject(404, "not_found", f"no endpoint {path[:80]}{also}")


def not_allowed(method: str, path: str) -> Reject:
    """The 405 of an endpoint asked with a method it does not take."""
    return Reject(405, "method_not_allowed", f"{method} is not allowed on {path[:80]}")


def internal_error(log: logging.Logger, method: str, path: str, exc: BaseException) -> Reject:
    """A bug met answering *method* *path*: logged whole for the operator, and the 500 the
    client gets, in the one shape (the exception's class only: its text may hold data)."""
    log.error("%s %s failed", method, path, exc_info=exc)
    return Reject(500, "internal_error", f"{type(exc).__name__}: the server failed on this "
                  "request (its log has the details)")



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


class Origins:
    """The browser origins that may call the collector (``collector.cors_origins``; ``*``
    for any). A browser's ``text/plain`` POST or plain GET is a "simple request" that no
    preflight stops, so the plain handlers check the origin themselves."""

    def __init__(self, allowed: Sequence[str]) -> None:
        self.any = "*" in allowed
        self.names = {o.encode() for o in allowed}

    def allows(self, origin: bytes | None) -> bool:
        """A request without an Origin (not from a page) is always allowed."""
        return origin is None or self.any or origin in self.names

    def headers(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        """The CORS headers of the answer to a request from *origin*."""
        if origin is None or not self.allows(origin):
            return []
        return [(b"access-control-allow-origin", b"*" if self.any else origin),
                (b"vary", b"Origin")]


async def read_body(receive: Receive, headers: dict[bytes, bytes], limit: int,
                    timeout: float, hint: str = "") -> bytes:
    """The request's body: 413 over *limit* bytes (declared or sent, with *hint* on what to
    do), 408 when it has not all arrived within *timeout* seconds, 400 if the client went
    away."""
    declared = headers.get(b"content-length", b"")
    too_large = Reject(413, "too_large", f"the request is over {limit:,} bytes"
                       + (f" ({hint})" if hint else ""))
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size, more = [], 0, True
    deadline = time.monotonic() + timeout
    while more:
        try:
            message = await asyncio.wait_for(receive(), deadline - time.monotonic())
        except TimeoutError:
            raise Reject(408, "timeout", f"the body did not arrive within {timeout:g} s"
                         ) from None
        if message["type"] == "http.disconnect":
            raise Reject(400, "disconnected", "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def respond(send: Send, status: int, payload: bytes,
                  headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """A JSON answer with its length and *headers*."""
    await send({"type": "http.response.start", "status": status,
                "headers": [JSON, (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})


def json_object(data: bytes) -> dict[str, Any]:
    """The body as a JSON object (400 when it is not JSON, or not an object).

    Half of a surrogate pair (an emoji cut by a slice) is read as U+FFFD, as Segment's API
    reads it (:mod:`demandloop.collect.surrogates`): otherwise one such string would cost
    its whole batch (analytics.js drops a batch answered 400, Rudder's SDK re-sends it
    until it gives up).
    """
    try:
        body = loads(data)
    except TooDeep as exc:
        raise Reject(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    except orjson.JSONDecodeError as exc:
        if "not valid UTF-8" in str(exc):  # (orjson: "... surrogates not allowed")
            raise Reject(400, "invalid_json", "the body is not valid JSON: it is not UTF-8 "
                         "text (JSON is sent as UTF-8, whatever the charset says)") from None
        raise Reject(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Reject(400, "invalid_json", "the body must be a JSON object")
    return body


def decode_body(raw: bytes, encoding: str | None, limit: int) -> bytes:
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



def write_key(authorization: str, body: dict[str, Any]) -> str | None:
    """The write key: HTTP Basic username, else ``writeKey`` in the body."""
    if authorization[:6].lower() == "basic ":
        try:
            user = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise Reject(401, "invalid_auth", "the Authorization header is not valid "
                         "HTTP Basic (send the write key as the username)") from None
        return user.split(":", 1)[0] or None
    key = body.get("writeKey")
    return key if isinstance(key, str) and key else None


def split_messages(body: dict[str, Any], kind: str | None) -> tuple[dict[str, Any], list[Any]]:
    """(envelope, messages) of a request body."""
    if kind is None:
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise Reject(400, "invalid_messages", '"batch" must be an array of messages')
        return body, batch
    msg = {k: v for k, v in body.items() if k != "writeKey"}
    msg["type"] = kind  # the endpoint decides the type, as Segment's does
    return {}, [msg]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch, as DuckDB's ``json_merge_patch`` applies a batch's
    context under each message's."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def with_client_ip(msg: dict[str, Any], client: str) -> dict[str, Any]:
    """*msg* with ``context.ip`` set to the client's address when it carries none, as
    Segment's API does. For dl.js and analytics.js that is the visitor; a server-side SDK's
    requests come from your server, so send the visitor's address as ``context.ip`` there
    (or let IP-to-company resolution see your server's network, usually a hosting one)."""
    context = msg.get("context")
    if context is None:
        context = {}
    if not isinstance(context, dict) or context.get("ip") is not None:
        return msg
    return {**msg, "context": {**context, "ip": client}}

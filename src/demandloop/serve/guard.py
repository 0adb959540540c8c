"""What keeps hostile clients from stalling the collector: who the client is (behind trusted
proxies), a brake on write-key guessing, and an HTTP protocol with a deadline per request and
a cap on open connections.

uvicorn has a keep-alive timeout between requests but none while a request's headers or body
trickle in, and it accepts connections until the process runs out of file descriptors (after
which every client is refused and the loader cannot open files). :class:`GuardedProtocol`
closes a connection whose request has not fully arrived within
``collector.read_timeout_seconds`` and closes new connections beyond
``collector.max_connections`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
import time
from collections.abc import Sequence
from typing import ClassVar, TypeVar

from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from demandloop.serve.envelope import Reject

T = TypeVar("T")

log = logging.getLogger("demandloop.access")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(items: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(i, strict=False) for i in items]


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in trusted)


def client_address(scope: Scope, headers: dict[bytes, bytes], trusted: Sequence[Network]
                   ) -> str | None:
    """The client's address: the connection's peer, or, when the peer is one of *trusted*
    proxies, the right-most ``X-Forwarded-For`` hop that is not a trusted proxy (hops to its
    left could be written by the client itself)."""
    peer: str | None = (scope.get("client") or (None, 0))[0]
    if not peer or not trusted or not _trusted(peer, trusted):
        return peer
    forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a malformed chain: believe only what we saw
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class AuthThrottle:
    """At most *per_minute* requests with a wrong write key per client address (a sliding
    minute): key guessing against a public collector gets 429s, not answers."""

    def __init__(self, per_minute: int, max_clients: int = 100_000) -> None:
        self.per_minute, self.max_clients = per_minute, max_clients
        self.failures: dict[str, tuple[float, float]] = {}

    def blocked(self, client: str | None) -> bool:
        tokens, _ = self._tokens(client or "")
        return tokens < 1.0

    def admit(self, client: str | None, found: T | None, refused: Reject,
              what: str = "write key") -> T:
        """*found* (a write key's workspace, a token's scope) for *client*: a 429 while the
        client has failed too often, else *refused* (its 401) when nothing was found, which
        counts as a failure. The one gate every credential of the collector goes through."""
        if self.blocked(client):
            raise Reject(429, "too_many_failures", f"too many requests with a wrong {what} "
                         "from this address; wait a minute", retry_after=60)
        if found is None:
            self.failed(client)
            raise refused
        return found

    def failed(self, client: str | None) -> None:
        key = client or ""
        tokens, now = self._tokens(key)
        if len(self.failures) >= self.max_clients and key not in self.failures:
            self.failures.clear()  # bounded memory under a spray of addresses
        self.failures[key] = (max(tokens - 1.0, 0.0), now)

    def _tokens(self, key: str) -> tuple[float, float]:
        now = time.monotonic()
        tokens, at = self.failures.get(key, (float(self.per_minute), now))
        return min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60.0), now


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request to arrive whole and a
    cap on open connections (see the module docstring). Limits are class settings, set once
    per process by :meth:`configure` before serving."""

    read_timeout: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = 1024
    #: request line + headers; uvicorn has no limit, so 20 MB of headers was kept in memory
    max_header_bytes: ClassVar[int] = 64 * 1024
    closed_slow: ClassVar[int] = 0
    refused: ClassVar[int] = 0

    @classmethod
    def configure(cls, read_timeout: float, max_connections: int) -> None:
        cls.read_timeout, cls.max_connections = read_timeout, max_connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes, self._in_body, self._heads = 0, False, 0
        if len(self.connections) > self.max_connections:
            GuardedProtocol.refused += 1
            transport.abort()
            return
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            GuardedProtocol.closed_slow += 1
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        in_body, heads = self._in_body, self._heads
        super().data_received(data)
        # only bytes of a chunk that neither carried body nor completed a request's headers
        # count towards the header limit (a large body is the body limit's business)
        if in_body or self._heads != heads or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.max_header_bytes:
            body = (b'{"success":false,"error":{"code":"headers_too_large","message":'
                    b'"the request line and headers are over 64 KB"}}')
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/json\r\nconnection: close\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_body = True
        self._heads += 1
        super().on_headers_complete()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._arm()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()  # the request is in: answering it may take as long as it takes
        self._head_bytes, self._in_body = 0, False  # the next request's headers count anew

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # idle until the next request: uvicorn's keep-alive timeout closes it

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards *wanted* (within the hard limit); the
    limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]

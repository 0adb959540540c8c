"""Outgoing webhooks for workflow actions (the only place demandloop makes HTTP requests).

One client is shared by every call (and thread): creating one per request would load the
system's CA certificates each time (about 40 ms) and never reuse a connection.
"""

from __future__ import annotations

import threading

import httpx

_client: httpx.Client | None = None
_lock = threading.Lock()


class DeliveryError(Exception):
    """The receiver did not answer 2xx (or could not be reached)."""


def _shared() -> httpx.Client:
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(headers={"User-Agent": "demandloop-workflows"})
        return _client


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> int:
    """POST *body*; the status code when 2xx, else :class:`DeliveryError`."""
    try:
        r = _shared().post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= r.status_code < 300:
        raise DeliveryError(f"HTTP {r.status_code}: {r.text[:200]}")
    return r.status_code

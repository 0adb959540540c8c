"""Outgoing webhooks for workflow actions (the only place demandloop makes HTTP requests)."""

from __future__ import annotations

import httpx


class DeliveryError(Exception):
    """The receiver did not answer 2xx (or could not be reached)."""


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> int:
    """POST *body*; the status code when 2xx, else :class:`DeliveryError`."""
    try:
        r = httpx.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= r.status_code < 300:
        raise DeliveryError(f"HTTP {r.status_code}: {r.text[:200]}")
    return r.status_code

"""Cell parsers for CSV imports: dates, numbers, whole numbers, true/false, text, domains,
emails and technology lists. Each returns None for an empty cell and raises ``ValueError``
with a message naming the value for a bad one (the reader adds ``FILE:LINE``)."""

from __future__ import annotations

import datetime as dt
import re

from demandloop.domains import canonical_domain

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def parse_timestamp(value: str) -> dt.datetime | None:
    """ISO dates/times (``Z`` or offsets, converted to UTC), ``MM/DD/YYYY`` and ``DD-MM-YYYY``."""
    v = value.strip()
    if not v:
        return None
    try:
        ts = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        for fmt in ("%m/%d/%Y %H:%M", "%m/%d/%Y", "%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M",
                    "%d-%m-%Y", "%Y/%m/%d"):
            try:
                ts = dt.datetime.strptime(v, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"'{v}' is not a date (use YYYY-MM-DD or ISO-8601)") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.UTC).replace(tzinfo=None)
    return ts


def as_number(value: str) -> float | None:
    v = value.strip().replace(",", "").replace("$", "").replace("€", "").replace("£", "")
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        raise ValueError(f"'{value}' is not a number") from None


def as_integer(value: str) -> int | None:
    n = as_number(value)
    if n is None:
        return None
    if n != int(n) or n < 0:
        raise ValueError(f"'{value}' is not a whole number")
    return int(n)


def as_boolean(value: str) -> bool | None:
    v = value.strip().lower()
    if not v:
        return None
    if v in ("true", "yes", "y", "1", "t"):
        return True
    if v in ("false", "no", "n", "0", "f"):
        return False
    raise ValueError(f"'{value}' is not true/false")


def as_text(value: str) -> str | None:
    return value.strip() or None


def as_domain(value: str) -> str | None:
    if not value.strip():
        return None
    d = canonical_domain(value)
    if d is None:
        raise ValueError(f"'{value}' is not a domain or website")
    return d


def as_email(value: str) -> str | None:
    v = value.strip().lower()
    if not v:
        return None
    if not _EMAIL.match(v):
        raise ValueError(f"'{value}' is not an email address")
    return v


def as_technologies(value: str) -> list[str] | None:
    parts = [p.strip() for p in re.split(r"[;|,]", value) if p.strip()]
    return parts or None


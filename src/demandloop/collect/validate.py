"""Per-message validation at the HTTP edge, the same rules as the SQL of :mod:`.segment`.

The collector must answer 400 *before* acknowledging (clients drop a 400 batch for good), so
each message is checked here in Python, microseconds per message, with exactly the rules the
file path applies in SQL; ``tests/test_collector_validation.py`` throws generated messages at
both and requires the same verdict. Accepted messages are normalised so the loader's SQL can
only agree: timestamps are rewritten in canonical ISO-8601, ``type`` is lower-cased and
``receivedAt`` is set to the server's clock (as Segment does; a client's value is ignored).

Example:
    >>> check({"type": "track", "userId": "u1"}, Limits())
    'track needs "event"'
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson

from demandloop.collect.segment import MESSAGE_TYPES, Limits

NAMES = ", ".join(MESSAGE_TYPES)
_TIMESTAMPS = ("originalTimestamp", "timestamp", "sentAt")


def _text(value: Any) -> str | None:
    """A JSON value as the SQL's ``->> '$'`` renders it; empty strings count as missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value or None
    if isinstance(value, int | float):
        return orjson.dumps(value).decode()
    return orjson.dumps(value).decode()


def parse_time(value: Any) -> dt.datetime | None:
    """ISO-8601 date-time (naive means UTC) -> aware UTC datetime, None when unparseable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        ts = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    try:
        return ts.astimezone(dt.UTC)
    except OverflowError:
        return None


def check(msg: Any, limits: Limits, size: int | None = None) -> str | None:
    """The reason *msg* is invalid, or None. *size*: its compact JSON length if known."""
    if not isinstance(msg, dict):
        return "a message must be a JSON object"
    if size is None:
        size = len(orjson.dumps(msg))
    if size > limits.max_event_bytes:
        return f"message is {size} bytes, over the {limits.max_event_bytes}-byte limit"
    kind = msg.get("type")
    if kind is None:
        return f'missing "type" (one of {NAMES})'
    kind_text = _text(kind)
    kind_lower = kind_text.lower() if kind_text else None
    if kind_lower not in MESSAGE_TYPES:
        return f'unknown type "{(kind_text or "")[:40]}" (one of {NAMES})'
    uid, aid = msg.get("userId"), msg.get("anonymousId")
    if isinstance(uid, dict | list) or isinstance(aid, dict | list):
        return "userId and anonymousId must be strings"
    user_id, anonymous_id = _text(uid), _text(aid)
    if user_id is None and anonymous_id is None:
        return "userId or anonymousId is required"
    if kind_lower == "track" and not _text(msg.get("event")):
        return 'track needs "event"'
    if kind_lower == "group" and _text(msg.get("groupId")) is None:
        return 'group needs "groupId"'
    if kind_lower == "alias" and (_text(msg.get("previousId")) is None or user_id is None):
        return 'alias needs "previousId" and "userId"'
    mid = msg.get("messageId")
    if mid is not None and not isinstance(mid, str):
        return "messageId must be a string"
    if isinstance(mid, str) and len(mid) > limits.max_message_id_length:
        return (f"messageId is {len(mid)} characters, over the "
                f"{limits.max_message_id_length}-character limit")
    ts_key = "originalTimestamp" if msg.get("originalTimestamp") is not None else "timestamp"
    for key, label in ((ts_key, "timestamp"), ("sentAt", "sentAt")):
        value = msg.get(key)
        if value is not None and parse_time(value) is None:
            return f'{label} "{str(_text(value))[:40]}" is not an ISO-8601 date-time'
    props = msg.get("properties")
    if props is not None and not isinstance(props, dict):
        return '"properties" must be an object'
    return None


def normalise(msg: dict[str, Any], received_at: str) -> dict[str, Any]:
    """A valid message made canonical for the loader (see the module docstring)."""
    out = dict(msg)
    out["type"] = str(_text(msg["type"])).lower()
    for key in _TIMESTAMPS:
        if out.get(key) is not None:
            ts = parse_time(out[key])
            if ts is not None:
                out[key] = ts.isoformat().replace("+00:00", "Z")
    if not out.get("messageId"):
        # Segment's servers assign one too; a content hash would merge two identical
        # events sent at different times (no timestamp) into one
        out["messageId"] = "dl-" + uuid.uuid4().hex
    out["receivedAt"] = received_at
    return out

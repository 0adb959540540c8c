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
import re
import threading
import uuid
from collections.abc import Collection, Mapping
from typing import Any

import duckdb
import orjson

from demandloop.collect.segment import MESSAGE_TYPES, Limits

NAMES = ", ".join(MESSAGE_TYPES)


def _render(value: Any) -> str:
    """A JSON value as DuckDB's ``->> '$'`` renders it (strings as they are)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _text(value: Any) -> str | None:
    """:func:`_render` with SQL's ``nullif(..., '')``: null and empty count as missing."""
    return None if value is None else (_render(value) or None)


#: what every SDK sends (JavaScript's toISOString, Python's isoformat): on these Python's and
#: DuckDB's parsers agree, so they are checked here in microseconds
_CANONICAL = re.compile(r"[1-9]\d{3}-\d{2}-\d{2}[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
                        r"(\.\d{1,9})?(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)?")
_duck: duckdb.DuckDBPyConnection | None = None
_duck_lock = threading.Lock()


def _canonical_verdict(text: str) -> bool | None:
    """True/False for a canonical ISO-8601 string, None when only DuckDB can tell."""
    if _CANONICAL.fullmatch(text):
        try:
            dt.datetime.fromisoformat(text)  # Python >= 3.11 reads "Z"
            return True
        except ValueError:
            return False  # 2026-02-30: both parsers refuse
    return None


def timestamp_ok(value: Any, known: Mapping[str, bool] | None = None) -> bool:
    """Would the store's SQL parse *value* as a timestamp? Canonical ISO-8601 strings are
    checked in Python; anything else is asked of DuckDB itself (the parser the store uses:
    it accepts zone names, ``24:00`` and unpadded dates, so no regex could stand in), or
    looked up in *known*, the verdicts of :func:`timestamps_ok` for a whole request."""
    text = _render(value)
    verdict = _canonical_verdict(text)
    if verdict is not None:
        return verdict
    if known is not None and text in known:
        return known[text]
    return text in timestamps_ok([text])


def odd_timestamps(msg: Any, sent_at: Any = None) -> list[str]:
    """The timestamp texts of *msg* (and a batch's *sent_at*) that only DuckDB can judge."""
    if not isinstance(msg, dict):
        return []
    ts_key = "originalTimestamp" if msg.get("originalTimestamp") is not None else "timestamp"
    texts = []
    for value in (msg.get(ts_key), msg.get("sentAt", sent_at)):
        if value is None:
            continue
        try:
            text = _render(value)  # DuckDB casts a non-string's JSON text
        except orjson.JSONEncodeError:
            continue  # nested too deep: the message is refused for that
        if _canonical_verdict(text) is None:
            texts.append(text)
    return texts


def timestamps_ok(texts: Collection[str]) -> set[str]:
    """Which of *texts* DuckDB parses as finite timestamps, in one query. Blocking (about a
    millisecond for thousands): the collector calls it off its event loop."""
    global _duck
    if not texts:
        return set()
    with _duck_lock:
        if _duck is None:
            _duck = duckdb.connect()
            _duck.execute("SET TimeZone = 'UTC'")
        rows = _duck.execute(
            "SELECT v FROM (SELECT unnest($1) AS v) "
            "WHERE coalesce(isfinite(TRY_CAST(v AS TIMESTAMPTZ)), false)",
            [list(set(texts))]).fetchall()
    return {r[0] for r in rows}


def size_reason(size: int, limits: Limits) -> str | None:
    if size > limits.max_event_bytes:
        return f"message is {size} bytes, over the {limits.max_event_bytes}-byte limit"
    return None


def check(msg: Any, limits: Limits, size: int | None = None,
          known_timestamps: Mapping[str, bool] | None = None) -> str | None:
    """The reason *msg* is invalid, or None. *size*: its compact JSON length if known, -1
    when the caller checks the size itself (see :func:`size_reason`); *known_timestamps*:
    verdicts already asked of DuckDB for the request (see :func:`odd_timestamps`)."""
    if not isinstance(msg, dict):
        return "a message must be a JSON object"
    if size is None:
        size = len(orjson.dumps(msg))
    too_big = size_reason(size, limits)
    if too_big:
        return too_big
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
        if value is not None and not timestamp_ok(value, known_timestamps):
            return f'{label} "{_render(value)[:40]}" is not an ISO-8601 date-time'
    props = msg.get("properties")
    if props is not None and not isinstance(props, dict):
        return '"properties" must be an object'
    return None


def normalise(msg: dict[str, Any], received_at: str) -> dict[str, Any]:
    """A valid message made canonical for the loader (see the module docstring)."""
    out = dict(msg)
    out["type"] = str(_text(msg["type"])).lower()
    if not out.get("messageId"):
        # Segment's servers assign one too; a content hash would merge two identical
        # events sent at different times (no timestamp) into one
        out["messageId"] = "dl-" + uuid.uuid4().hex
    out["receivedAt"] = received_at
    return out

"""JSON text holding half of a UTF-16 surrogate pair, read as U+FFFD.

``JSON.stringify`` (analytics.js) and Python's ``json.dumps`` (the Segment and Rudder
Python SDKs, warehouse exports written by Python) write a string cut in the middle of an
emoji (a ``slice`` of a title, a search box's text) as a lone ``\\uD83D`` escape. That is
valid JSON text, and Segment's and RudderStack's APIs take it, reading the half as U+FFFD
(Go's decoder does); orjson and DuckDB's JSON reader refuse it. Hand-written because
neither fast reader has a switch for it: the standard library's ``json`` reads such text,
and the halves it leaves in its strings are replaced here. Only text the fast readers
refused comes here, so its speed does not matter.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

#: one half of a surrogate pair: the standard library decodes a whole pair as one character
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
#: how deep a mended document may nest (the interpreter's stack; a message may nest 255
#: levels anyway)
MAX_DEPTH = 300


class Unmendable(ValueError):
    """The text is not JSON for another reason than a lone surrogate (or nests too deep)."""


class TooDeep(Unmendable):
    """The text is JSON, mended, but nests deeper than :data:`MAX_DEPTH`."""


def mended(data: bytes | str) -> Any:
    """*data* decoded, each lone surrogate in its strings (keys too) replaced by U+FFFD.
    :class:`Unmendable` when it is not JSON (NaN and Infinity are not) or nests deeper
    than :data:`MAX_DEPTH`."""
    def refuse(_: str) -> Any:
        raise ValueError("NaN and Infinity are not JSON")

    try:
        return _mend(json.loads(data, parse_constant=refuse), 0)
    except TooDeep:
        raise
    except (ValueError, RecursionError) as exc:
        raise Unmendable(str(exc)) from None


def loads(data: bytes | str) -> Any:
    """``orjson.loads``, with half of a surrogate pair read as U+FFFD: the one reading of
    JSON text where the collector and the file importer meet such a string. orjson's
    ``JSONDecodeError`` when the text is not JSON for another reason (text that is not
    UTF-8 among them); :class:`TooDeep` when it mends but nests too deep."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc) or "not valid UTF-8" in str(exc):
            raise
        try:
            return mended(data)
        except TooDeep:
            raise
        except Unmendable:
            raise exc from None


def mended_line(raw: str) -> str | None:
    """*raw*, one JSON document, written again with its lone surrogates replaced; None
    when it has none to mend (valid as it is, or not JSON for another reason)."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return orjson.dumps(loads(raw)).decode()
        except ValueError:
            return None
    return None


def _mend(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return LONE_SURROGATE.sub("\ufffd", value)
    if depth > MAX_DEPTH:
        raise TooDeep(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        return {_mend(k, depth): _mend(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_mend(v, depth + 1) for v in value]
    return value

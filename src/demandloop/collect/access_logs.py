"""Web server and CDN access logs, streamed into rows: what AI crawlers read, and who came
from an AI assistant.

Formats, recognised line by line (a file may mix them):

* **combined** (nginx's default, Apache's ``combined`` and ``common``):
  ``IP - USER [10/Oct/2026:13:55:36 +0200] "GET /path HTTP/1.1" 200 2326 "REFERER" "AGENT"``
  (extra fields after the agent, as ``$http_x_forwarded_for``, are ignored);
* **JSON lines** as Cloudflare Logpush (``ClientIP``, ``ClientRequestURI``,
  ``EdgeStartTimestamp``, ...), CloudFront's JSON logs (``c-ip``, ``cs-uri-stem``,
  ``date`` + ``time`` or ``timestamp``, URL-encoded agents) and Fastly's JSON logging
  (``client_ip``, ``url``, ``timestamp``, ...) write them. Numeric timestamps may be seconds,
  milliseconds, microseconds or nanoseconds since the epoch.

``.gz`` files are read as they are. Files are read in chunks of :data:`CHUNK` lines, so a log
of any size streams in bounded memory. A line that is neither format, or lacks a time or a
path, is a bad line, reported as ``FILE:LINE: why``.

Each row carries a 128-bit hash (MD5) of its raw line, which makes a re-import of the same
file (or of overlapping rotations) add nothing twice.

Combined-format lines are parsed where it is cheapest: this module only splits the file into
lines and hands them over; the store matches :data:`COMBINED` with DuckDB's vectorised RE2
(on every core), converts times and numbers, and hashes them, about 4x faster than a Python
regex loop (``benchmarks/access_logs.py``). JSON lines are read here with orjson (their
fields vary by CDN). Hand-written rather than a library: no maintained parser reads these
formats side by side.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import orjson

CHUNK = 100_000
#: what a chunk holds per JSON line, all text (the store converts times and numbers):
#: ``text`` is the raw line (hashed for de-duplication), ``ts`` an ISO time in UTC
COLUMNS = ("text", "line", "ts", "ip", "method", "host", "path", "status", "bytes",
           "referrer", "user_agent")
#: the combined format (RE2 and Python ``re`` alike): address, time, method, target,
#: status, size, and optionally referrer and agent
COMBINED = (r'^(\S+) \S+ \S+ \[(\d\d/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/'
            r'\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "([A-Za-z]+) (\S+)(?: [^"]*)?" (\d{3}) '
            r'(\d+|-)(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?')
#: the combined format's time, as DuckDB's strptime reads it
COMBINED_TIME = "%d/%b/%Y:%H:%M:%S %z"
#: JSON field names per column, as the CDNs write them (first present wins)
_ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("EdgeStartTimestamp", "timestamp", "time", "@timestamp", "start_time",
           "date_time"),
    "ip": ("ClientIP", "c-ip", "client_ip", "clientIp", "remote_addr", "ip"),
    "method": ("ClientRequestMethod", "cs-method", "request_method", "method"),
    "host": ("ClientRequestHost", "x-host-header", "cs(Host)", "host", "request_host"),
    "path": ("ClientRequestURI", "ClientRequestPath", "cs-uri-stem", "url", "request_uri",
             "uri", "path"),
    "query": ("cs-uri-query",),
    "status": ("EdgeResponseStatus", "sc-status", "response_status", "status"),
    "bytes": ("EdgeResponseBytes", "sc-bytes", "response_body_size", "body_bytes_sent",
              "bytes"),
    "referrer": ("ClientRequestReferer", "cs(Referer)", "request_referer", "referer",
                 "referrer", "http_referer"),
    "user_agent": ("ClientRequestUserAgent", "cs(User-Agent)", "request_user_agent",
                   "user_agent", "http_user_agent"),
}


@dataclass
class Chunk:
    """One chunk of a log: its JSON lines parsed into :data:`COLUMNS`, its other lines as
    they are (the store matches them against :data:`COMBINED`)."""

    cols: dict[str, list[Any]] = field(default_factory=lambda: {c: [] for c in COLUMNS})
    #: the lines that are not JSON, and their line numbers
    raw: list[str] = field(default_factory=list)
    raw_lines: list[int] = field(default_factory=list)
    #: FILE:LINE: why, for each bad JSON line
    bad: list[str] = field(default_factory=list)
    lines: int = 0

    def add(self, *values: Any) -> None:
        """One JSON line's row, its values in :data:`COLUMNS` order."""
        for column, value in zip(COLUMNS, values, strict=True):
            self.cols[column].append(value)


def _epoch(value: float) -> dt.datetime:
    for scale in (1e9, 1e6, 1e3):  # nanoseconds, microseconds, milliseconds
        if value > scale * 1e8:
            value /= scale
            break
    return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=value)


def _json_time(row: dict[str, Any]) -> dt.datetime | None:
    if "date" in row and "time" in row and isinstance(row["date"], str):  # CloudFront
        text = f"{row['date']}T{row['time']}"
    else:
        value = next((row[k] for k in _ALIASES["ts"] if row.get(k) is not None), None)
        if value is None:
            return None
        if isinstance(value, int | float) or (isinstance(value, str) and
                                              value.replace(".", "", 1).isdigit()):
            return _epoch(float(value))
        text = str(value)
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _first(row: dict[str, Any], column: str) -> Any:
    for k in _ALIASES[column]:
        v = row.get(k)
        if v is not None and v != "-":
            return v
    return None


def _split(target: str) -> str:
    """A request target's path (absolute URLs, as proxies log them, lose scheme and host;
    the query string is kept)."""
    if target.startswith(("http://", "https://")):
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    return target


def parse(stream: IO[bytes], name: str, chunk: int = CHUNK) -> Iterator[Chunk]:
    """The lines of an open log, *chunk* at a time (JSON lines parsed, see :class:`Chunk`)."""
    out = Chunk()
    raw, numbers = out.raw.append, out.raw_lines.append
    for number, data in enumerate(stream, 1):
        line = data.rstrip(b"\r\n")
        out.lines += 1
        if line[:1] == b"{":
            why = _json_line(line, number, out)
            if why:
                out.bad.append(f"{name}:{number}: {why}")
        elif line.strip():
            raw(line.decode("utf-8", "replace"))
            numbers(number)
        if out.lines >= chunk:
            yield out
            out = Chunk()
            raw, numbers = out.raw.append, out.raw_lines.append
    if out.lines:
        yield out


def _json_line(line: bytes, number: int, out: Chunk) -> str | None:
    """Add a JSON line's row to *out*; the reason it is bad, or None."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not valid JSON"
    if not isinstance(row, dict):
        return "a JSON line must be an object"
    try:
        ts = _json_time(row)
    except (ValueError, OverflowError):
        return "the timestamp is not a time"
    path = _first(row, "path")
    if ts is None or not isinstance(path, str):
        return "no timestamp or no path (see docs/aeo.md for the fields read)"
    query = _first(row, "query")
    if isinstance(query, str) and query and "?" not in path:
        path = f"{path}?{query}"
    agent = _first(row, "user_agent")
    if isinstance(agent, str) and "%20" in agent:  # CloudFront encodes the agent
        agent = unquote(agent)
    out.add(line.decode("utf-8", "replace"), number, ts.isoformat(sep=" "),
            _text(_first(row, "ip")), _text(_first(row, "method")),
            _text(_first(row, "host")), _split(path), _text(_first(row, "status")),
            _text(_first(row, "bytes")), _text(_first(row, "referrer")), _text(agent))
    return None


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def open_log(path: Path) -> IO[bytes]:
    """A log file for reading, gunzipped when it is gzip (by its magic bytes)."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")

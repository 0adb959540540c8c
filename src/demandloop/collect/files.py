"""Read Segment-spec event files into chunks of raw JSON documents with their line numbers.

Accepted: JSON Lines (one message or one ``{"batch": [...]}`` per line), a single JSON document
spanning several lines (a pretty-printed message or batch), or a JSON array of messages; any of
them gzip-compressed (``.gz``). Chunks are Arrow tables ``(line_no, raw)`` ready for the
vectorised validation in :mod:`demandloop.collect.segment`.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa

from demandloop.collect.surrogates import loads
from demandloop.errors import InputError

BOM = b"\xef\xbb\xbf"
EVENT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
CHUNK_LINES = 250_000
BATCH_ROWS = 8_192


@dataclass
class Chunk:
    """Part of a file: raw documents, line numbers, and whether numbers are lines or items."""

    table: pa.Table
    bytes_read: int
    unit: str = "line"  # "line" for JSONL, "item" for a JSON array


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise InputError(f"{path}: no such file", hint="check the path")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    # a byte-order mark (Windows tools write one) is not part of the JSON
    return data.removeprefix(BOM)


def event_files(paths: list[Path]) -> list[Path]:
    """*paths* with each folder replaced by the event files in it (``.json``, ``.jsonl``,
    ``.ndjson`` and their ``.gz``), in name order, as a Segment S3 export is laid out."""
    out: list[Path] = []
    for path in paths:
        if not path.is_dir():
            out.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.is_file() and any(
            p.name.endswith(ext) for ext in EVENT_SUFFIXES))
        if not found:
            raise InputError(f"{path}: a folder with no event files",
                             hint="put .jsonl, .json or .gz files in it, or name the files")
        out.extend(found)
    return out


def _lines_array(data: bytes) -> pa.LargeStringArray:
    """One Arrow string per line, built on the file's own buffer (no per-line Python work).

    Each string keeps its trailing newline: JSON treats it as whitespace, and not slicing it
    off is what lets the array share the buffer instead of copying 1M Python strings.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10) + 1
    if len(data) and data[-1:] != b"\n":
        ends = np.append(ends, len(data))
    offsets = np.concatenate([np.zeros(1, np.int64), ends.astype(np.int64)])
    arr = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data)
    )
    try:
        arr.validate(full=True)  # full validation checks UTF-8
    except pa.ArrowInvalid:
        # Slow path for broken files only: undecodable lines become non-JSON text, which the
        # validator then reports with their line numbers.
        raws = []
        for start, stop in zip(offsets[:-1], offsets[1:], strict=True):
            try:
                raws.append(data[start:stop].decode("utf-8"))
            except UnicodeDecodeError:
                raws.append("<not valid UTF-8>")
        arr = pa.array(raws, pa.large_string())
    return arr


def iter_chunks(path: Path, chunk_lines: int = CHUNK_LINES) -> Iterator[Chunk]:
    """Yield the documents of *path* in chunks of at most *chunk_lines*."""
    data = _read_bytes(path)
    head = data.lstrip()[:1]
    if head == b"[":
        yield _array_chunk(path, data)
        return
    first_line = data.lstrip().split(b"\n", 1)[0]
    if head == b"{" and not _is_json(first_line) and _is_json(data):
        # one pretty-printed document: keep it whole, numbered as its first line
        offset = len(data) - len(data.lstrip())
        line_no = data[:offset].count(b"\n") + 1
        raw = pa.array([orjson.dumps(loads(data)).decode()], pa.large_string())
        yield Chunk(_table(pa.array([line_no], pa.int64()), raw), len(data))
        return
    lines = _lines_array(data)
    numbers = pa.array(np.arange(1, len(lines) + 1, dtype=np.int64))
    for start in range(0, len(lines), chunk_lines):
        part = lines.slice(start, chunk_lines)
        yield Chunk(_table(numbers.slice(start, chunk_lines), part), part.nbytes)


def _table(line_nos: pa.Array, raws: pa.Array) -> pa.Table:
    # Small record batches let DuckDB scan the Arrow table on every core.
    table = pa.table({"line_no": line_nos, "raw": raws})
    return pa.Table.from_batches(table.to_batches(max_chunksize=BATCH_ROWS), table.schema)


def is_json_lines(path: Path) -> bool:
    """True when *path* looks like JSON Lines (its first line alone is a JSON object)."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            head = fh.read(64 * 1024)
    except (OSError, EOFError):
        return False
    if head.startswith(BOM):
        return False  # DuckDB's reader chokes on the mark: the precise path strips it
    first = head.lstrip().split(b"\n", 1)[0]
    return first[:1] == b"{" and _is_json(first)


def _array_chunk(path: Path, data: bytes) -> Chunk:
    try:
        items = loads(data)
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(items, list):
        raise InputError(f"{path}: expected a JSON array of messages")
    raws = pa.array([orjson.dumps(item).decode() for item in items], pa.large_string())
    numbers = pa.array(np.arange(1, len(raws) + 1, dtype=np.int64))
    return Chunk(_table(numbers, raws), len(data), unit="item")


def _is_json(data: bytes) -> bool:
    try:
        loads(data)
    except ValueError:
        return False
    return True

"""The collector log's files: segments of records, the loader's checkpoint, reading what
is after it, and retiring what is loaded. :mod:`demandloop.collect.log` holds the writer
(group commit) and re-exports these; the loader, possibly in another process, reads here.

Record format: ``length (u32) | crc32 (u32) | workspace length (u16) | workspace | body``.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

HEADER = struct.Struct("<IIH")
SEGMENT_BYTES = 64 << 20


@dataclass(frozen=True)
class Position:
    """A place in the log: segment number and byte offset inside it."""

    segment: int
    offset: int


@dataclass
class Record:
    workspace: str
    body: bytes
    end: Position  # where the next record starts


def encode(workspace: str, body: bytes) -> bytes:
    ws = workspace.encode()
    payload = ws + body
    return HEADER.pack(len(payload), zlib.crc32(payload), len(ws)) + payload


def segments(directory: Path) -> list[int]:
    """The segment numbers in *directory*, in order."""
    return sorted(int(p.stem) for p in directory.glob("*.log") if p.stem.isdigit())


def _name(directory: Path, segment: int) -> Path:
    return directory / f"{segment:08d}.log"


def _valid_length(path: Path) -> int:
    """Bytes of *path* made of whole, checksummed records."""
    good = 0
    with path.open("rb") as fh:
        data = fh.read()
    while good + HEADER.size <= len(data):
        length, crc, _ = HEADER.unpack_from(data, good)
        end = good + HEADER.size + length
        if end > len(data) or zlib.crc32(data[good + HEADER.size:end]) != crc:
            break
        good = end
    return good


# -- reading (the loader, possibly in another process) ----------------------------------------
def load_checkpoint(directory: Path) -> Position:
    """Where loading resumes in *directory* (the first segment's start when never loaded)."""
    path = directory / "checkpoint.json"
    if not path.exists():
        first = segments(directory)
        return Position(first[0] if first else 1, 0)
    data = orjson.loads(path.read_bytes())
    return Position(int(data["segment"]), int(data["offset"]))


def save_checkpoint(directory: Path, pos: Position) -> None:
    """Atomically record that everything before *pos* is in the store; drop old segments."""
    tmp = directory / "checkpoint.json.tmp"
    with tmp.open("wb") as fh:
        fh.write(orjson.dumps({"segment": pos.segment, "offset": pos.offset}))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / "checkpoint.json")
    _fsync_dir(directory)
    for seg in segments(directory):
        if seg < pos.segment:
            _name(directory, seg).unlink(missing_ok=True)


def read_records(directory: Path, start: Position, max_bytes: int = 8 << 20,
                 end: Position | None = None) -> Iterator[Record]:
    """Whole records from *start* (up to *end* when the writer is in this process, else up to
    the last complete record on disk), about *max_bytes* of them."""
    todo = [s for s in segments(directory) if s >= start.segment]
    pos, budget = start, max_bytes
    for seg in todo:
        if budget <= 0 or (end is not None and seg > end.segment):
            return
        if seg > pos.segment:
            pos = Position(seg, 0)
        path = _name(directory, seg)
        limit = end.offset if end is not None and seg == end.segment else path.stat().st_size
        if pos.offset >= limit:
            continue
        with path.open("rb") as fh:
            fh.seek(pos.offset)
            data = fh.read(min(limit - pos.offset, budget + (1 << 20)))
            at = 0
            while at + HEADER.size <= len(data) and budget > 0:
                length, crc, wl = HEADER.unpack_from(data, at)
                stop = at + HEADER.size + length
                if stop > len(data) and at == 0 and pos.offset + stop <= limit:
                    # one record larger than the read window: read it whole, or it would
                    # block every record behind it for good
                    data += fh.read(stop - len(data))
                if stop > len(data) or zlib.crc32(data[at + HEADER.size:stop]) != crc:
                    return  # the tail another process is still writing
                payload = data[at + HEADER.size:stop]
                budget -= stop - at
                at = stop
                yield Record(payload[:wl].decode(), payload[wl:],
                             Position(seg, pos.offset + at))
        if at + pos.offset < limit:
            return  # stopped inside this segment (budget): later segments must wait
        pos = Position(seg, pos.offset + at)


def retire_loaded(directory: Path) -> int:
    """When everything in *directory* is loaded, replace its segments by one new empty
    segment (the checkpoint moves to it, which drops the old ones, and the writer of the
    next start appends to it); returns the segments removed (0 when something is unloaded).
    Nothing may write to the folder meanwhile."""
    existing = segments(directory)
    if not existing or backlog_bytes(directory, load_checkpoint(directory)):
        return 0
    _name(directory, existing[-1] + 1).touch()
    save_checkpoint(directory, Position(existing[-1] + 1, 0))
    return len(existing)


def retire_before(directory: Path, segment: int) -> int:
    """Remove the segments before *segment* once all of them are loaded (the checkpoint is
    at *segment* or beyond); returns how many were removed. For a log still being written:
    its writer has moved to *segment* (:meth:`DurableLog.rotate`)."""
    checkpoint = load_checkpoint(directory)
    old = [n for n in segments(directory) if n < segment]
    unloaded = sum(_name(directory, n).stat().st_size for n in old if n >= checkpoint.segment)
    if checkpoint.segment < segment and unloaded - checkpoint.offset > 0:
        return 0
    if checkpoint.segment < segment:  # it points into a segment about to go
        save_checkpoint(directory, Position(segment, 0))
    for n in old:
        _name(directory, n).unlink(missing_ok=True)
    if old:
        _fsync_dir(directory)
    return len(old)


def backlog_bytes(directory: Path, since: Position) -> int:
    """Bytes on disk not yet loaded."""
    total = 0
    for seg in segments(directory):
        if seg >= since.segment:
            size = _name(directory, seg).stat().st_size
            total += size - (since.offset if seg == since.segment else 0)
    return max(total, 0)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

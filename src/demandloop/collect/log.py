"""The collector's durable log: a request is acknowledged only once its events are on disk.

Records are appended to segment files (``NNNNNNNN.log``, rolled at ``segment_bytes``) as
``length (u32) | crc32 (u32) | workspace length (u16) | workspace | body``. One writer thread
does **group commit**: it takes every record queued while the previous ``fsync`` ran, writes
them with one ``write``, calls ``fsync`` once and then releases all their requests, so the
cost of an fsync is shared by every concurrent request.

The loader reads complete records after a checkpoint (``checkpoint.json``, replaced
atomically) and moves them into the store. At open, a torn record at the tail (a crash in the
middle of a write, never acknowledged) is cut off, and reading resumes at the checkpoint:
what was acknowledged is replayed, and the store's messageId deduplication makes the replay
harmless.

Why hand-written: the queueing libraries on PyPI (persist-queue, diskcache) fsync per item or
not at all; group commit is the part that makes durable writes fast.
"""

from __future__ import annotations

import asyncio
import os
import queue
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from demandloop.errors import StoreError

HEADER = struct.Struct("<IIH")
#: the workspace of a queue item that asks the writer for a new segment (see rotate)
ROTATE = "\x00rotate"
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


class DurableLog:
    """Append with group commit (:meth:`append` from asyncio, :meth:`append_sync` from
    threads); read and checkpoint for the loader."""

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        found = segments(self.dir)
        self.segment = found[-1] if found else 1
        path = _name(self.dir, self.segment)
        if path.exists():
            good = _valid_length(path)
            if good != path.stat().st_size:  # a torn tail: never acknowledged
                with path.open("r+b") as fh:
                    fh.truncate(good)
                    os.fsync(fh.fileno())
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.durable = Position(self.segment, self.size)
        self.queue: queue.SimpleQueue[tuple[tuple[str, bytes], object] | None] = \
            queue.SimpleQueue()
        self.new_data = threading.Event()
        self.commits = 0
        self.failed: BaseException | None = None
        self._thread = threading.Thread(target=self._writer, name="dl-log-writer", daemon=True)
        self._thread.start()

    # -- appending ------------------------------------------------------------------------
    async def append(self, workspace: str, body: bytes) -> None:
        """Return once the record is written and fsync'd (raises StoreError if it cannot)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self.queue.put(((workspace, body), (loop, fut)))  # encoded by the writer thread
        await fut

    def append_sync(self, workspace: str, body: bytes) -> None:
        done = threading.Event()
        box: list[BaseException | None] = [None]
        self.queue.put(((workspace, body), (done, box)))
        done.wait()
        if box[0] is not None:
            raise box[0]

    def rotate(self) -> int:
        """Start a new segment now (after every record queued before this call); returns
        its number. Every earlier segment is then closed for good, so once loaded it can be
        removed (:func:`retire_before`) while this log goes on taking writes."""
        done = threading.Event()
        box: list[BaseException | None] = [None]
        self.queue.put(((ROTATE, b""), (done, box)))
        done.wait()
        if box[0] is not None:
            raise box[0]
        return self.segment

    def _writer(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            items = [item]
            while True:  # everything queued meanwhile joins this commit
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.queue.put(None)
                    break
                items.append(more)
            # a rotation request splits the batch: what came before it ends its segment
            batch: list[tuple[tuple[str, bytes], object]] = []
            for it in items:
                if it[0][0] is ROTATE:
                    self._commit(batch)
                    batch = []
                    self._commit([], it[1])
                else:
                    batch.append(it)
            self._commit(batch)

    def _commit(self, items: list[tuple[tuple[str, bytes], object]],
                rotation: object = None) -> None:
        error: BaseException | None = None
        try:
            if rotation is not None:
                self._next_segment()
            elif items:
                self._write(b"".join(encode(ws, body) for (ws, body), _ in items))
        except OSError as exc:
            error = StoreError(f"cannot write the collector log: {exc.strerror}",
                               hint="free disk space or fix the log folder's permissions")
            self.failed = error
        for _, waiter in items:
            _release(waiter, error)
        if rotation is not None:
            _release(rotation, error)
        if error is None and items:
            self.new_data.set()

    def _next_segment(self) -> None:
        os.close(self.fd)
        self.segment += 1
        self.fd = os.open(_name(self.dir, self.segment),
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _fsync_dir(self.dir)
        self.size = 0
        self.durable = Position(self.segment, 0)

    def _write(self, data: bytes) -> None:
        if self.size >= self.segment_bytes:
            self._next_segment()
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        os.fsync(self.fd)
        self.size += len(data)
        self.commits += 1
        self.durable = Position(self.segment, self.size)

    def close(self) -> None:
        self.queue.put(None)
        self._thread.join(timeout=10)
        os.close(self.fd)



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


def _release(waiter: object, error: BaseException | None) -> None:
    if isinstance(waiter, tuple) and len(waiter) == 2 and isinstance(waiter[0], threading.Event):
        event, box = waiter
        box[0] = error
        event.set()
        return
    loop: asyncio.AbstractEventLoop
    fut: asyncio.Future[None]
    loop, fut = waiter  # type: ignore[misc]
    if error is None:
        loop.call_soon_threadsafe(_resolve, fut, None)
    else:
        loop.call_soon_threadsafe(_resolve, fut, error)


def _resolve(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():  # the request was cancelled (client gone)
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

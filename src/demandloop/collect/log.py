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
import threading
from pathlib import Path

from demandloop.collect.log_segments import (
    HEADER,
    SEGMENT_BYTES,
    Position,
    Record,
    _fsync_dir,
    _name,
    _valid_length,
    backlog_bytes,
    encode,
    load_checkpoint,
    read_records,
    retire_before,
    retire_loaded,
    save_checkpoint,
    segments,
)
from demandloop.errors import StoreError

__all__ = ["HEADER", "SEGMENT_BYTES", "DurableLog", "Position", "Record", "backlog_bytes",
           "encode", "load_checkpoint", "read_records", "retire_before", "retire_loaded",
           "save_checkpoint", "segments"]

#: the workspace of a queue item that asks the writer for a new segment (see rotate)
ROTATE = "\x00rotate"


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

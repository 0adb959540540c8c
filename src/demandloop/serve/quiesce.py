"""Making the server hold still: what an erasure needs while ``demandloop serve`` runs.

Erasing a person rewrites the database file (so no deleted byte stays in it) and removes
the collector's log segments that held their events. In a server both are in use: the loader
lands batches, the API reads, and the log writer appends. :class:`ServerLog` is the
:class:`~demandloop.privacy.LogAccess` the server lends its workspace for this:

* :meth:`~ServerLog.exclusive` stops the loader between batches and waits for the API's
  reads in flight (:class:`Gate`); requests go on being acknowledged into the log, which is
  what it is for;
* :meth:`~ServerLog.load_all` rotates the log (its writer starts a new segment), then loads
  everything up to there through the server's own loader;
* :meth:`~ServerLog.retire` removes the segments before the rotation, all loaded, while
  the writer appends to the new one: no acknowledged event is lost.

With several workers the HTTP processes write logs of their own that this process cannot
rotate, so an erasure there asks for the server to be stopped first, before changing
anything.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from demandloop.collect.log import (
    DurableLog,
    backlog_bytes,
    load_checkpoint,
    retire_before,
    segments,
)
from demandloop.errors import UsageError
from demandloop.serve.loader import Loader


class Gate:
    """Many readers or one writer: the API's reads go through :meth:`shared`; an erasure
    takes it :meth:`exclusive` (new reads wait for it, and it waits for reads in flight)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer)
            self._writer = True
            self._cond.wait_for(lambda: self._readers == 0)
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class ServerLog:
    """The log access of a running server (see the module docstring)."""

    def __init__(self, loader: Loader, log: DurableLog | None, gate: Gate) -> None:
        self.loader, self.log, self.gate = loader, log, gate
        self._rotated_to: int | None = None
        self._closed: set[int] = set()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        if self.log is None:
            raise UsageError("with several workers, each HTTP process writes a log of its own "
                             "that the server cannot retire while it runs",
                             hint="stop 'demandloop serve', run the command, start it again")
        with self.loader.paused(), self.gate.exclusive():
            try:
                yield
            finally:
                self._rotated_to = None

    def load_all(self) -> int:
        before = int(self.loader.status["loaded"])
        if self.log is not None:
            self._closed = set(segments(self.log.dir))
            self._rotated_to = self.log.rotate()
        # up to the rotation, not until the log is empty: under steady traffic it never is
        while self.loader.load_unlocked() and not self._reached():
            pass
        return int(self.loader.status["loaded"]) - before

    def _reached(self) -> bool:
        """Is every segment before the rotation loaded (and every folder nothing writes)?"""
        if self.log is None or self._rotated_to is None:
            return False
        others = [p for p in Path(self.loader.root).iterdir()
                  if p.is_dir() and p != self.log.dir]
        return load_checkpoint(self.log.dir).segment >= self._rotated_to and not any(
            backlog_bytes(p, load_checkpoint(p)) for p in others)

    def retire(self) -> int:
        if self.log is None or self._rotated_to is None:
            return 0
        retire_before(self.log.dir, self._rotated_to)
        # loading past a segment already drops it (save_checkpoint): count every segment
        # that held events at the rotation and is gone now
        left = set(segments(self.log.dir))
        removed = len(self._closed - left)
        # folders left by earlier runs with several workers: nothing writes them any more
        for folder in sorted(p for p in Path(self.loader.root).iterdir() if p.is_dir()):
            if folder != self.log.dir:
                from demandloop.collect.log import retire_loaded

                removed += retire_loaded(folder)
        return removed

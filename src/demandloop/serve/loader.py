"""The loader: moves the durable log into the store in batches, then checkpoints.

One loader runs per database (DuckDB allows one writing process). It reads every worker's log
folder under the log root, lands each workspace's records with the same staging SQL as file
ingestion (deduplicated on messageId against everything stored, so a replay after a crash
stores nothing twice), and only then moves the folder's checkpoint. Messages the SQL refuses
(the edge checks the same rules, so this means a bug), records over ``MAX_RECORD_BYTES`` and
records the store fails on go, whole, to ``dead-letter.jsonl`` with the reason: acknowledged
events are never dropped silently, and one bad record never blocks the ones behind it (a
failing batch is split until the failing record stands alone).

A watchdog thread restarts the loader thread if it dies, and writes the status file (read by
``/readyz`` and ``/metrics``, in this process or in the HTTP workers) every second, so a
dead or stalled loader shows there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson

from demandloop.collect.log import (
    DurableLog,
    Position,
    backlog_bytes,
    load_checkpoint,
    read_records,
    save_checkpoint,
)
from demandloop.collect.run import ingest_files
from demandloop.collect.segment import Limits
from demandloop.serve.dead_letters import keep_dead_letters, pid_alive
from demandloop.serve.state import STATUS_FILE
from demandloop.store.db import Store

log = logging.getLogger("demandloop.loader")
#: the edge enforces the per-event size on the message as sent; the loader must not
#: re-judge it on a re-serialised copy whose length can differ by escaping
LOADER_LIMITS = Limits(max_event_bytes=1 << 30)
#: a record (one request's events) the edge cannot produce any more (it caps what a request
#: expands to); larger ones, from an older version's log, are dead-lettered unread by DuckDB
MAX_RECORD_BYTES = 64 << 20
#: the store itself failing (disk full, file gone): retried later, never blamed on a record
STORE_DOWN = (OSError, duckdb.IOException, duckdb.FatalException)
#: after a maintenance run during which requests were answered, rest at least this many
#: times as long as it took
LOOP_REST = 2.0
#: ... requests for at least this share of the run's time (see demandloop.serve.traffic)
BUSY_SHARE = 0.05


def busy(served: float, span: float) -> bool:
    """Did answering requests take more than :data:`BUSY_SHARE` of *span* seconds
    (*served*: the seconds spent answering them meanwhile)?"""
    return served > BUSY_SHARE * span


class Loader:
    """A background thread over *root*'s log folders (or just *own*, a log in-process)."""

    def __init__(self, store: Store, root: Path, own: DurableLog | None = None,
                 batch_bytes: int = 16 << 20, idle_seconds: float = 0.05,
                 maintenance: Callable[[], dict[str, Any] | None] | None = None,
                 maintenance_every: float = 0.0,
                 on_loaded: Callable[[], None] | None = None,
                 periodic: tuple[tuple[str, Callable[[], None], float], ...] = (),
                 serving: Callable[[], float] | None = None) -> None:
        """*maintenance* (resolve, score, workflows) runs in this thread, the database's one
        writer, every *maintenance_every* seconds when new events were loaded since (the
        figures it returns, if any, go into :attr:`status` under ``maintenance``), and
        rests after a run when *serving* (the seconds spent answering requests, summed)
        grew during it (always, without *serving*);
        *on_loaded* (the live workflows) after every load; each *periodic* function (the
        sequence sender) every so many seconds, only when the log is fully loaded (so an
        unsubscribe acknowledged before it is in the store when it runs)."""
        self.store, self.root, self.own = store, root, own
        self.maintenance, self.maintenance_every = maintenance, maintenance_every
        self.serving = serving
        self.on_loaded = on_loaded
        self.periodic = list(periodic)
        self._last_periodic = [time.monotonic()] * len(self.periodic)
        self._next_maintenance = time.monotonic() + maintenance_every
        self._loaded_since = False
        self.batch_bytes, self.idle = batch_bytes, idle_seconds
        self.status: dict[str, Any] = {"loaded": 0, "deduplicated": 0, "dead_lettered": 0,
                                       "heartbeat": time.time(), "error": None, "cycles": 0,
                                       "restarts": 0, "alive": True, "busy_since": None}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = self._new_thread()
        self._watchdog = threading.Thread(target=self._watch, name="dl-loader-watchdog",
                                          daemon=True)

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(target=self._run, name="dl-loader", daemon=True)

    def start(self) -> Loader:
        self._thread.start()
        self._watchdog.start()
        return self

    def stop(self, drain: bool = True, timeout: float = 120.0) -> int:
        """Stop, after loading everything durable (when *drain*) for at most *timeout*
        seconds; returns the bytes left unloaded in the log (loaded at the next start)."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        if self.own is not None:
            self.own.new_data.set()
        self._thread.join(timeout=max(deadline - time.monotonic(), 0.0))
        self._watchdog.join(timeout=5)
        if drain and not self._thread.is_alive():  # else it still holds the database
            while time.monotonic() < deadline and self.load_once():
                pass
        self._write_status()
        return self.backlog()

    @property
    def running(self) -> bool:
        """Is the loader thread still at work (e.g. past a stop's time limit)?"""
        return self._thread.is_alive()

    def backlog(self) -> int:
        """Bytes of every log folder not yet in the store."""
        return sum(backlog_bytes(f, load_checkpoint(f)) for f in self._folders())

    def _watch(self) -> None:
        """Restart a dead loader thread; publish the status every second."""
        while not self._stop.wait(1.0):
            alive = self._thread.is_alive()
            self.status["alive"] = alive
            if not alive:
                self.status["restarts"] += 1
                self.status["error"] = "the loader thread died; restarted"
                log.error("the loader thread died; restarting it")
                self._thread = self._new_thread()
                self._thread.start()
            with contextlib.suppress(OSError):  # out of descriptors: try again next second
                self._write_status()

    def _folders(self) -> list[Path]:
        """Every worker's log folder, this process's own included (and any left by an
        earlier run with more workers)."""
        return sorted(p for p in self.root.iterdir() if p.is_dir())

    def _run(self) -> None:
        # Acknowledging comes first: the loader thread runs at a lower priority (Linux
        # schedules threads as tasks) and lands with one DuckDB thread, so under a burst the
        # log absorbs the load and the loader catches up after (max_backlog_mb bounds it).
        with contextlib.suppress(AttributeError, OSError, PermissionError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while not self._stop.is_set():
            try:
                busy = self.load_once()
                self.status["error"] = None
            except Exception as exc:  # keep serving; readyz reports it, the log keeps data
                log.exception("loading the collector log failed")
                self.status["error"] = f"{type(exc).__name__}: {exc}"
                busy = False
                self._stop.wait(1.0)
            self.status["heartbeat"] = time.time()
            self._loaded_since |= busy
            if busy and self.on_loaded is not None:
                self._guarded("live", self.on_loaded)
            self._maybe_maintain()
            if not busy:
                self._run_periodic()
            self.status["heartbeat"] = time.time()
            if not busy:
                if self.own is not None:
                    self.own.new_data.wait(self.idle * 4)
                    self.own.new_data.clear()
                else:
                    self._stop.wait(self.idle)

    def _guarded(self, what: str, fn: Callable[[], object]) -> bool:
        """Run *fn*, recording its failure in ``status["<what>_error"]``; True if it ran.
        While it runs the loader is busy, not stalled (``busy_since``). A dict *fn* returns
        is what it reports: kept in ``status[what]``."""
        self.status["busy_since"] = time.time()
        try:
            figures = fn()
            if isinstance(figures, dict):
                self.status[what] = figures
            self.status[f"{what}_error"] = None
            return True
        except Exception as exc:  # acting on data must never stop collecting it
            log.exception("%s in the collector failed", what)
            self.status[f"{what}_error"] = f"{type(exc).__name__}: {exc}"
            return False
        finally:
            self.status["busy_since"] = None

    def _run_periodic(self) -> None:
        for i, (name, fn, every) in enumerate(self.periodic):
            if time.monotonic() - self._last_periodic[i] >= every:
                self._last_periodic[i] = time.monotonic()
                self._guarded(name, fn)

    def _maybe_maintain(self) -> None:
        due = time.monotonic() >= self._next_maintenance
        if self.maintenance is None or self.maintenance_every <= 0 or not due \
                or not self._loaded_since:
            return
        self._loaded_since = False
        started = time.monotonic()
        served = self.serving() if self.serving is not None else 0.0
        if self._guarded("maintenance", self.maintenance):
            self.status["maintained_at"] = time.time()
        took = time.monotonic() - started
        self.status["maintenance_seconds"] = round(took, 3)
        # every maintenance_every seconds, but resting at least LOOP_REST times as long as
        # the run took when requests were answered meanwhile: a workspace whose rescore
        # takes seconds keeps the rest of the time for answering them (the loop's pandas
        # work holds the GIL). With nobody to answer, the rest would only delay the next
        # alert.
        answered = self.serving is None or busy(self.serving() - served, took)
        rest = took * LOOP_REST if answered else 0.0
        self.status["rest_seconds"] = round(rest, 3)
        self._next_maintenance = started + max(self.maintenance_every, took + rest)

    def load_once(self) -> bool:
        """Load one batch from every folder; True if anything was loaded. Safe to call from
        any thread (one load at a time: a checkpoint must follow its own landing)."""
        with self._lock:
            return self._load_once()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No batch is loaded meanwhile but by :meth:`load_unlocked` (an erasure's)."""
        with self._lock:
            yield

    def load_unlocked(self) -> bool:
        """:meth:`load_once` for the holder of :meth:`paused`."""
        return self._load_once()

    def _load_once(self) -> bool:
        any_loaded = False
        for folder in self._folders():
            start = load_checkpoint(folder)
            end = self.own.durable if self.own is not None and folder == self.own.dir else None
            by_ws: dict[str, list[bytes]] = defaultdict(list)
            last: Position | None = None
            for rec in read_records(folder, start, self.batch_bytes, end):
                by_ws[rec.workspace].append(rec.body)
                last = rec.end
            if last is None:
                self._forget(folder, start)
                continue
            for workspace, bodies in by_ws.items():
                self._land(workspace, bodies, folder)
            save_checkpoint(folder, last)
            any_loaded = True
        self.status["cycles"] += 1
        return any_loaded

    def _land(self, workspace: str, bodies: list[bytes], folder: Path) -> None:
        for body in bodies:
            if len(body) > MAX_RECORD_BYTES:
                self._dead(workspace, [(f"a record of {len(body):,} bytes, over the loader's "
                                        f"{MAX_RECORD_BYTES:,}-byte limit", body)])
        self._land_split(workspace, [b for b in bodies if len(b) <= MAX_RECORD_BYTES],
                         folder)

    def _land_split(self, workspace: str, bodies: list[bytes], folder: Path) -> None:
        """Land *bodies*; when the store fails on them, land each half alone, down to the
        one record that fails (dead-lettered) so the others are stored."""
        if not bodies:
            return
        try:
            self._land_records(workspace, bodies, folder)
        except STORE_DOWN:
            raise  # the store, not the records: retried, never dead-lettered
        except Exception as exc:
            if len(bodies) == 1:
                self._dead(workspace, [(f"the store failed on it: {type(exc).__name__}: "
                                        f"{str(exc)[:300]}", bodies[0])])
                return
            mid = len(bodies) // 2
            self._land_split(workspace, bodies[:mid], folder)
            self._land_split(workspace, bodies[mid:], folder)

    def _land_records(self, workspace: str, bodies: list[bytes], folder: Path) -> None:
        # A record is JSON Lines already: handed to DuckDB's own reader as a file, the
        # splitting and parsing run in DuckDB without holding Python's GIL (which would
        # stall the event loop answering requests in this process).
        staging = self.root / f".loading-{folder.name}.jsonl"
        lines = [line for body in bodies for line in body.split(b"\n")]
        with staging.open("wb") as fh:
            for line in lines:
                fh.write(line)
                fh.write(b"\n")
        try:
            result = ingest_files(self.store, [staging], limits=LOADER_LIMITS,
                                  skip_invalid=True, workspace_id=workspace,
                                  source=f"collector:{folder.name}", every_problem=True)
        finally:
            staging.unlink(missing_ok=True)
        self.status["loaded"] += result.inserted
        self.status["deduplicated"] += result.duplicates
        if result.invalid:
            self._dead(workspace, [(reason, lines[n - 1]) for n, reason in
                                   result.invalid_lines if 0 < n <= len(lines)])

    def _dead(self, workspace: str, items: list[tuple[str, bytes]]) -> None:
        """Keep acknowledged data the store refused, whole, with the reason, on disk."""
        self.status["dead_lettered"] += len(items)
        keep_dead_letters(self.root, workspace, items)

    def _forget(self, folder: Path, pos: Position) -> None:
        """Remove a dead worker's folder once it is fully loaded."""
        if self.own is not None or folder.name == "main":
            return
        pid = folder.name.removeprefix("w")
        if pid.isdigit() and not pid_alive(int(pid)) and backlog_bytes(folder, pos) == 0:
            for f in folder.iterdir():
                f.unlink(missing_ok=True)
            folder.rmdir()

    def _write_status(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / (STATUS_FILE + ".tmp")
        tmp.write_bytes(orjson.dumps(self.status))
        os.replace(tmp, self.root / STATUS_FILE)

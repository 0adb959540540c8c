"""The loader: moves the durable log into the store in batches, then checkpoints.

One loader runs per database (DuckDB allows one writing process). It reads every worker's log
folder under the log root, lands each workspace's records with the same staging SQL as file
ingestion (deduplicated on messageId against everything stored, so a replay after a crash
stores nothing twice), and only then moves the folder's checkpoint. Messages the SQL refuses
(the edge checks the same rules, so this means a bug) go to ``dead-letter.jsonl`` with the
reason: acknowledged events are never dropped silently.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from demandloop.collect.log import (
    DurableLog,
    Position,
    backlog_bytes,
    load_checkpoint,
    read_records,
    save_checkpoint,
)
from demandloop.collect.segment import Limits
from demandloop.serve.state import STATUS_FILE
from demandloop.store.db import Store
from demandloop.store.events import ingest_files

log = logging.getLogger("demandloop.loader")
#: the edge enforces the per-event size on the message as sent; the loader must not
#: re-judge it on a re-serialised copy whose length can differ by escaping
LOADER_LIMITS = Limits(max_event_bytes=1 << 30)


class Loader:
    """A background thread over *root*'s log folders (or just *own*, a log in-process)."""

    def __init__(self, store: Store, root: Path, own: DurableLog | None = None,
                 batch_bytes: int = 16 << 20, idle_seconds: float = 0.05,
                 maintenance: Callable[[], None] | None = None,
                 maintenance_every: float = 0.0,
                 on_loaded: Callable[[], None] | None = None,
                 periodic: tuple[tuple[Callable[[], None], float], ...] = ()) -> None:
        """*maintenance* (resolve, score, workflows) runs in this thread, the database's one
        writer, every *maintenance_every* seconds when new events were loaded since;
        *on_loaded* (the live workflows) after every load; each *periodic* function (the
        sequence sender) every so many seconds, only when the log is fully loaded (so an
        unsubscribe acknowledged before it is in the store when it runs)."""
        self.store, self.root, self.own = store, root, own
        self.maintenance, self.maintenance_every = maintenance, maintenance_every
        self.on_loaded = on_loaded
        self.periodic = list(periodic)
        self._last_periodic = [time.monotonic()] * len(self.periodic)
        self._last_maintenance = time.monotonic()
        self._loaded_since = False
        self.batch_bytes, self.idle = batch_bytes, idle_seconds
        self.status: dict[str, Any] = {"loaded": 0, "deduplicated": 0, "dead_lettered": 0,
                                       "heartbeat": time.time(), "error": None, "cycles": 0}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="dl-loader", daemon=True)

    def start(self) -> Loader:
        self._thread.start()
        return self

    def stop(self, drain: bool = True) -> None:
        """Stop after loading everything durable (when *drain*)."""
        self._stop.set()
        if self.own is not None:
            self.own.new_data.set()
        self._thread.join(timeout=120)
        if drain:
            while self.load_once():
                pass
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
        last_status = 0.0
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
            if time.monotonic() - last_status > 1.0:
                self._write_status()
                last_status = time.monotonic()
            if not busy:
                if self.own is not None:
                    self.own.new_data.wait(self.idle * 4)
                    self.own.new_data.clear()
                else:
                    self._stop.wait(self.idle)

    def _guarded(self, what: str, fn: Callable[[], None]) -> bool:
        """Run *fn*, recording its failure in ``status["<what>_error"]``; True if it ran."""
        try:
            fn()
            self.status[f"{what}_error"] = None
            return True
        except Exception as exc:  # acting on data must never stop collecting it
            log.exception("%s in the collector failed", what)
            self.status[f"{what}_error"] = f"{type(exc).__name__}: {exc}"
            return False

    def _run_periodic(self) -> None:
        for i, (fn, every) in enumerate(self.periodic):
            if time.monotonic() - self._last_periodic[i] >= every:
                self._last_periodic[i] = time.monotonic()
                self._guarded("sequences", fn)

    def _maybe_maintain(self) -> None:
        due = time.monotonic() - self._last_maintenance >= self.maintenance_every
        if self.maintenance is None or self.maintenance_every <= 0 or not due \
                or not self._loaded_since:
            return
        self._last_maintenance = time.monotonic()
        self._loaded_since = False
        started = time.perf_counter()
        if self._guarded("maintenance", self.maintenance):
            self.status["maintained_at"] = time.time()
        self.status["maintenance_seconds"] = round(time.perf_counter() - started, 3)

    def load_once(self) -> bool:
        """Load one batch from every folder; True if anything was loaded. Safe to call from
        any thread (one load at a time: a checkpoint must follow its own landing)."""
        with self._lock:
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
        # A record is JSON Lines already: handed to DuckDB's own reader as a file, the
        # splitting and parsing run in DuckDB without holding Python's GIL (which would
        # stall the event loop answering requests in this process).
        staging = self.root / f".loading-{folder.name}.jsonl"
        with staging.open("wb") as fh:
            for body in bodies:
                fh.write(body)
                fh.write(b"\n")
        try:
            result = ingest_files(self.store, [staging], limits=LOADER_LIMITS,
                                  skip_invalid=True, workspace_id=workspace,
                                  source=f"collector:{folder.name}")
        finally:
            staging.unlink(missing_ok=True)
        self.status["loaded"] += result.inserted
        self.status["deduplicated"] += result.duplicates
        if result.invalid:
            self.status["dead_lettered"] += result.invalid
            with (self.root / "dead-letter.jsonl").open("ab") as fh:
                for problem in result.problems:
                    fh.write(orjson.dumps({"workspace": workspace, "problem": problem,
                                           "at": dt.datetime.now(dt.UTC).isoformat()}) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            log.error("%d acknowledged event(s) refused by the store: %s", result.invalid,
                      result.problems[:3])

    def _forget(self, folder: Path, pos: Position) -> None:
        """Remove a dead worker's folder once it is fully loaded."""
        if self.own is not None or folder.name == "main":
            return
        pid = folder.name.removeprefix("w")
        if pid.isdigit() and not _alive(int(pid)) and backlog_bytes(folder, pos) == 0:
            for f in folder.iterdir():
                f.unlink(missing_ok=True)
            folder.rmdir()

    def _write_status(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / (STATUS_FILE + ".tmp")
        tmp.write_bytes(orjson.dumps(self.status))
        os.replace(tmp, self.root / STATUS_FILE)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

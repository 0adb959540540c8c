"""What the request path shares with the rest of the collector: the log, the keys, the
loader's status (in this process, or read from its status file), and the metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from demandloop.collect.log import DurableLog, backlog_bytes, load_checkpoint
from demandloop.serve.keys import KeyRing
from demandloop.serve.metrics import Metrics

if TYPE_CHECKING:
    from demandloop.serve.loader import Loader

STATUS_FILE = "loader-status.json"
#: a loader whose heartbeat is older than this, and that is not busy resolving or scoring,
#: is stalled
STALL_SECONDS = 30.0


@dataclass
class CollectorState:
    log: DurableLog
    keys: KeyRing
    log_root: Path  # the folder holding every worker's log folder and the loader status
    metrics: Metrics = field(default_factory=Metrics)
    loader: Loader | None = None  # the in-process Loader, when there is one
    _backlog: tuple[float, int] = (0.0, 0)

    def backlog_bytes(self) -> int:
        """This worker's unloaded bytes (re-measured at most every 0.5 s)."""
        now = time.monotonic()
        if now - self._backlog[0] > 0.5:
            d = self.log.dir
            self._backlog = (now, backlog_bytes(d, load_checkpoint(d)))
        return self._backlog[1]

    def loader_status(self) -> dict[str, Any]:
        if self.loader is not None:
            return dict(self.loader.status)
        path = self.log_root / STATUS_FILE
        try:
            return dict(orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            return {}

    def loader_problem(self, status: dict[str, Any] | None = None) -> str | None:
        """Why the loader is not loading (dead, stalled, failing), or None."""
        status = self.loader_status() if status is None else status
        if not status or not status.get("alive", True):
            return "the loader is not running"
        age = time.time() - float(status.get("heartbeat", 0))
        if age > STALL_SECONDS and not status.get("busy_since"):
            return f"the loader is stalled (no progress for {age:.0f} s)"
        if status.get("error"):
            return f"the loader failed: {status['error']}"
        return None

    def not_ready(self, max_backlog: float) -> str | None:
        if self.log.failed is not None:
            return f"the log cannot be written: {self.log.failed}"
        problem = self.loader_problem()
        if problem:
            return problem
        if self.backlog_bytes() > max_backlog:
            return "the loader is behind"
        return None

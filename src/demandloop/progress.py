"""A Rich progress bar that appears only when work takes more than a second.

Short commands stay quiet; long ones show that they are working from the first second on,
even before the first step completes (a DuckDB statement reading one large file gives no
progress of its own: the bar pulses until it is done), and how far they are once steps
complete.
"""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TimeElapsedColumn,
)
from rich.text import Text


class LazyProgress:
    """Context manager whose :meth:`advance` feeds a bar shown after ``delay`` seconds; a
    *total* of None shows a pulsing bar with the time elapsed (work of unknown length)."""

    def __init__(self, console: Console, label: str, total: float | None, *,
                 unit: str = "items", delay: float = 1.0) -> None:
        # the CLI's consoles are proxies (see demandloop.cli.base): Rich wants the console
        console = getattr(console, "dl_console", console)
        self.console, self.label, self.total, self.delay = console, label, total, delay
        self.unit = unit
        self.done = 0.0
        self.bar: Progress | None = None
        self.task = TaskID(0)
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> LazyProgress:
        if self.console.is_terminal:
            self._timer = threading.Timer(self.delay, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _show(self) -> None:
        with self._lock:
            if self.bar is not None:
                return
            count: ProgressColumn = (DownloadColumn() if self.unit == "bytes"
                                     else MofNCompleteColumn())
            columns: list[ProgressColumn | str] = [
                SpinnerColumn(), "[progress.description]{task.description}", BarColumn(),
                _WhenKnown(count), TimeElapsedColumn()]
            self.bar = Progress(*columns, console=self.console, transient=True)
            self.bar.start()
            # until a step completes, pulse: a bar standing at 0 % reads as stuck
            self.task = self.bar.add_task(self.label, total=self.total if self.done else None)

    def step(self, done: int, total: int) -> None:
        """*done* of *total* steps (a total learnt once the work has started)."""
        self.total = float(total)
        self.advance(done - self.done)

    def advance(self, amount: float) -> None:
        with self._lock:
            self.done += amount
            if self.bar is not None:
                self.bar.update(self.task, total=self.total, completed=self.done)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self.bar is not None:
                self.bar.stop()
            self.bar = None
            self.done = 0.0


class _WhenKnown(ProgressColumn):
    """*column* once the task's total is known; nothing while the bar pulses."""

    def __init__(self, column: ProgressColumn) -> None:
        super().__init__()
        self.column = column

    def render(self, task: Task) -> RenderableType:
        return self.column.render(task) if task.total is not None else Text("")

"""A Rich progress bar that appears only when work takes more than a second.

Short commands stay quiet; long ones (ingesting large files) show how far they are.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TimeRemainingColumn,
)


class LazyProgress:
    """Context manager whose :meth:`advance` feeds a bar shown after ``delay`` seconds."""

    def __init__(self, console: Console, label: str, total: float, *, unit: str = "items",
                 delay: float = 1.0) -> None:
        self.console, self.label, self.total, self.delay = console, label, total, delay
        self.unit = unit
        self.done = 0.0
        self.started = time.perf_counter()
        self.bar: Progress | None = None
        self.task = TaskID(0)

    def __enter__(self) -> LazyProgress:
        self.started = time.perf_counter()
        return self

    def advance(self, amount: float) -> None:
        self.done += amount
        if self.bar is None and time.perf_counter() - self.started >= self.delay \
                and self.console.is_terminal:
            count: ProgressColumn = (DownloadColumn() if self.unit == "bytes"
                                     else MofNCompleteColumn())
            self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                                count, TimeRemainingColumn(), console=self.console,
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.stop()

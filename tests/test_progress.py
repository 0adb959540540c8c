"""The progress bar appears only on a terminal and only after the delay."""

from __future__ import annotations

import io
import time

from rich.console import Console

from demandloop.progress import LazyProgress


def test_no_bar_for_quick_work_or_non_terminals() -> None:
    buf = io.StringIO()
    with LazyProgress(Console(file=buf, force_terminal=True), "x", 10) as p:
        p.advance(10)
    assert buf.getvalue() == ""
    buf = io.StringIO()
    with LazyProgress(Console(file=buf, force_terminal=False), "x", 10, delay=0) as p:
        p.advance(5)
    assert buf.getvalue() == ""


def test_bar_after_the_delay_on_a_terminal() -> None:
    buf = io.StringIO()
    with LazyProgress(Console(file=buf, force_terminal=True, width=80), "ingesting", 10,
                      delay=0.01) as p:
        time.sleep(0.02)
        p.advance(4)
        assert p.bar is not None
    assert "ingesting" in buf.getvalue()

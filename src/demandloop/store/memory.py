"""Give the memory Python has freed back to the system between the phases of a big run.

Why: a rebuild's pandas phase (persons, at 10M events) frees about a gigabyte before the
touches phase fills DuckDB's buffer pool up to its limit. glibc keeps freed blocks in its
arenas for reuse, so the process's peak RSS was the sum of both (3.05 GB at 10M events)
though Python held little of it. ``malloc_trim`` returns those blocks; elsewhere (musl,
macOS) there is nothing to call and nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_memory() -> None:
    """Collect garbage, then hand the heap's free pages back to the system (glibc)."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for bulk work that builds millions of small
    containers holding no cycles (a rescore's reasons and details, an import's parsed rows):
    each of the collector's full passes walks every one of them while they are alive (about
    1 s of a 6 s rescore of 100k accounts; a third of an access-log import). Reference
    counting frees them as ever; only the collector's scans are skipped, and it resumes."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()

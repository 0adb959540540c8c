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

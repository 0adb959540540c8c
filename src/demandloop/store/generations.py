"""Immutable generations of files in a workspace folder, swapped in with one atomic rename.

Used for what readers in other processes (HTTP workers) map while a writer replaces it: the
decide snapshot (``personalize/``) and the content index (``content/``). A writer fills a
new folder ``g<ns>``, then points ``current.json`` at it with :func:`os.replace`; a reader
reads ``current.json`` and opens that folder, so it never sees a half-written generation.
Generations older than the one replaced are removed (a process still mapping one keeps its
pages until it lets go, and one that loses the race reads the newer one next time).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

CURRENT = "current.json"


def new_generation(root: Path) -> Path:
    """A new, empty generation folder under *root* (created with *root* if need be)."""
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"g{time.time_ns()}"
    folder.mkdir()
    return folder


def publish(folder: Path) -> str:
    """Make *folder* (from :func:`new_generation`) the current generation of its root;
    returns its name."""
    root = folder.parent
    previous = current_generation(root)
    # a name of this call's own: a name per process would let two threads publishing at
    # once move one file twice
    fd, name = tempfile.mkstemp(dir=root, prefix=f".{CURRENT}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps({"generation": folder.name, "written_at": time.time()}))
    os.replace(name, root / CURRENT)
    for old in root.glob("g*"):
        if old.name not in (folder.name, previous):
            shutil.rmtree(old, ignore_errors=True)
    return folder.name


def current_generation(root: Path) -> str | None:
    """The name of *root*'s current generation, or None before the first."""
    try:
        return str(json.loads((root / CURRENT).read_text())["generation"])
    except (OSError, ValueError, KeyError):
        return None


def write_table(path: Path, table: pa.Table) -> None:
    """*table* as an Arrow IPC file (memory-mappable by :func:`read_table`)."""
    with ipc.new_file(str(path), table.schema) as w:
        w.write_table(table)


def read_table(path: Path) -> pa.Table:
    """An Arrow IPC file, memory-mapped."""
    with pa.memory_map(str(path)) as source:
        return ipc.open_file(source).read_all()

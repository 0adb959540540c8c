"""What the loader keeps when the store refuses acknowledged data: ``dead-letter.jsonl`` in
the log root, one JSON line per record (workspace, reason, time, the body whole), synced to
disk before the loader moves on. ``demandloop erase-person`` reaches into this file too."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import orjson

log = logging.getLogger("demandloop.loader")
DEAD_LETTER = "dead-letter.jsonl"


def keep_dead_letters(root: Path, workspace: str, items: list[tuple[str, bytes]]) -> None:
    """Append each (reason, body) of *workspace* to the dead-letter file, synced."""
    at = dt.datetime.now(dt.UTC).isoformat()
    with (root / DEAD_LETTER).open("ab") as fh:
        for reason, body in items:
            fh.write(orjson.dumps({"workspace": workspace, "reason": reason, "at": at,
                                   "body": body.decode("utf-8", "backslashreplace")})
                     + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    log.error("%d acknowledged record(s) kept in %s: %s", len(items), DEAD_LETTER,
              [r for r, _ in items[:3]])


def pid_alive(pid: int) -> bool:
    """Whether process *pid* runs (a worker whose log folder may be retired once not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

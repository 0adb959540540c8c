"""Landing the collector's loads in the Parquet lake, so Spark reads them without an export.

A lake (:mod:`demandloop.store.parquet`, layout ``lake``) is a copy of the workspace that
``demandloop export --format lake`` writes whole. While ``demandloop serve`` runs with
``collector.land_lake_seconds`` set, :func:`land_loads` appends the events of every load
since the lake's last one (``manifest.json``'s ``last_load``) as new files in the day
partitions: ``events/day=YYYY-MM-DD/load-FIRST-LAST-N.parquet``. Only events grow this way;
the other tables are what the last export wrote (``resolve --engine spark`` rebuilds the
derived ones from the events, reading the CRM tables from the workspace).

A landing is made safe against a crash between its steps by the manifest, the lake's one
record of what it holds:

1. the new files are written beside the lake (``.NAME.landing``), never inside it;
2. the manifest is replaced by one naming the landing as ``pending``;
3. the files are moved into their day folders (a rename each, atomic on one file system);
4. the manifest is replaced by one counting them, without ``pending``.

A landing found ``pending`` (the process died during 3) has its files removed, and the
next landing writes them again. A lake whose events are not exactly the workspace's up to
its ``last_load`` (an erasure, a retention run or an import since, or a lake written before
``last_load`` was recorded) cannot be appended to: :func:`land_loads` returns None and the
caller writes the lake again, whole.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from demandloop.errors import UsageError
from demandloop.store.db import Store
from demandloop.store.parquet import (
    DAY,
    DAY_COLUMNS,
    MANIFEST,
    path_literal,
    write_manifest,
)

#: the pattern of a landed file's name (DuckDB appends the file's number in its folder)
LANDED = "load-{first}-{last}-"


@dataclass(frozen=True)
class Landed:
    """What one landing did."""

    #: events appended to the lake (0: nothing new), or all of them when it was rewritten
    events: int = 0
    #: the lake's last load afterwards
    last_load: int = 0
    #: files appended to the day partitions (0 when the lake was written again)
    files: int = 0
    #: the lake was written again, whole (see the module docstring), not appended to
    rewritten: bool = False


def land_loads(store: Store, lake: Path) -> Landed | None:
    """Append the workspace's events loaded since *lake*'s last load to it; None when the
    lake cannot be appended to and must be written again whole (it is missing, or its
    events are not the workspace's up to its last load). Another workspace's lake is an
    error: it is never overwritten."""
    manifest = _manifest(lake)
    if manifest is None:
        return None
    held = str(manifest.get("workspace_id", "default"))
    if held != store.workspace_id:
        raise UsageError(f"the lake at {lake} is workspace '{held}', not "
                         f"'{store.workspace_id}': loads are not landed in it",
                         hint="set [compute] lake to this workspace's own folder")
    manifest = _recover(lake, manifest)
    last, events = manifest.get("last_load"), (manifest.get("tables") or {}).get("events")
    if manifest.get("layout") != "lake" or not isinstance(last, int) \
            or not isinstance(events, int):
        return None
    ws = {"ws": store.workspace_id, "last": last}
    with store.reader() as cur:
        cur.execute("BEGIN TRANSACTION")  # counted and written from one snapshot
        row = cur.execute("SELECT count(*) FILTER (WHERE coalesce(load_id, 0) <= $last), "
                          "count(*) FILTER (WHERE load_id > $last), max(load_id) "
                          "FROM events WHERE workspace_id = $ws", ws).fetchone()
        held_rows, new_rows, newest = (int(row[0]), int(row[1]), int(row[2] or 0)) \
            if row else (0, 0, 0)
        if held_rows != events:
            return None
        if not new_rows:
            return Landed(last_load=last)
        if "events" not in (manifest.get("partitioned") or {}):
            return None  # exported without events: one file, no day folders to add to
        staging = lake.with_name(f".{lake.name}.landing")
        shutil.rmtree(staging, ignore_errors=True)
        name = LANDED.format(first=last + 1, last=newest)
        column = DAY_COLUMNS["events"]
        cur.execute(
            f"COPY (SELECT *, CAST({column} AS DATE) AS {DAY} FROM events "
            f"WHERE workspace_id = $ws AND load_id > $last AND load_id <= $newest) "
            f"TO '{path_literal(staging)}' (FORMAT parquet, COMPRESSION zstd, "
            f"PARTITION_BY ({DAY}), FILENAME_PATTERN '{name}{{i}}')",
            {**ws, "newest": newest})
        cur.execute("COMMIT")
    files = sorted(staging.rglob("*.parquet"))
    write_manifest(lake, {**manifest, "pending": [last + 1, newest]})
    for path in files:
        target = lake / "events" / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    shutil.rmtree(staging, ignore_errors=True)
    tables = {**manifest["tables"], "events": events + new_rows}
    done = {k: v for k, v in manifest.items() if k != "pending"}
    write_manifest(lake, {**done, "tables": tables, "last_load": newest})
    return Landed(events=new_rows, last_load=newest, files=len(files))


def _recover(lake: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Remove the files of a landing the manifest names as pending (it never finished)."""
    pending = manifest.get("pending")
    if not pending:
        return manifest
    first, last = pending
    for path in (lake / "events").glob(f"{DAY}=*/{LANDED.format(first=first, last=last)}*"):
        path.unlink()
    clean = {k: v for k, v in manifest.items() if k != "pending"}
    write_manifest(lake, clean)
    return clean


def _manifest(lake: Path) -> dict[str, Any] | None:
    path = lake / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None  # not one this module wrote: written again whole
    return manifest if isinstance(manifest, dict) else None

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

Landing every minute makes 1,440 small files a day, and an engine pays for each file it
lists and opens. :func:`compact_days` merges the files of each past day (before today, in
UTC) into one, as Delta Lake's and Iceberg's compactions do: yesterday once it holds a
given number, older days once they hold two; today's folder still receives loads and is
left alone. It is made safe the same way:
the merged file is written beside the lake and its row count checked against the files it
replaces, the manifest names the merge as ``compacting``, the merged file is moved in and
the old ones removed, then the manifest is written without it. A merge found
``compacting`` is finished when its file was moved in (the old files removed), else undone
(nothing in the lake had changed).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson

from demandloop.errors import StoreError, UsageError
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
#: the name of a day's merged file (see :func:`compact_days`)
COMPACTED = "compact-{ns}.parquet"


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
    #: past days whose files were merged into one afterwards (see :func:`compact_days`)
    compacted: int = 0


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
    """Remove the files of a landing the manifest names as pending (it never finished), and
    finish or undo a merge it names as ``compacting``."""
    manifest = _recover_merge(lake, manifest)
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


def compact_days(lake: Path, at_least: int, today: dt.date | None = None) -> int:
    """Merge the events files of past days into one file per day, each made safe as the
    module docstring says; returns how many days were merged. A day before *today* (UTC,
    by default the current date) is merged once its folder holds *at_least* files, and
    from the day after on once it holds two: yesterday still gets the late events of
    clients whose clocks or queues lag, and merging it again for each of them would
    rewrite a whole day every landing; older days rarely get any, and a day that never
    reached *at_least* files (a server landing hourly, or stopped for a while) is still
    merged. *at_least* below 2: never. A lake without a manifest this module can read is
    left alone (the next landing writes it)."""
    manifest = _manifest(lake)
    if manifest is None or manifest.get("layout") != "lake" or at_least < 2:
        return 0
    manifest = _recover(lake, manifest)
    today = today or dt.datetime.now(dt.UTC).date()
    merged = 0
    for folder in sorted((lake / "events").glob(f"{DAY}=*")):
        try:
            day = dt.date.fromisoformat(folder.name.removeprefix(f"{DAY}="))
        except ValueError:
            continue  # not a day folder: not ours to merge
        files = sorted(folder.glob("*.parquet"))
        due = at_least if day == today - dt.timedelta(days=1) else 2
        if day < today and len(files) >= due:
            manifest = _merge(lake, manifest, folder, files)
            merged += 1
    return merged


def _merge(lake: Path, manifest: dict[str, Any], folder: Path, files: list[Path]
           ) -> dict[str, Any]:
    """Merge *files* (one day *folder*'s) into one; returns the manifest after."""
    staging = lake.with_name(f".{lake.name}.compacting")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    name = COMPACTED.format(ns=time.time_ns())
    listed = "[" + ", ".join(f"'{path_literal(p)}'" for p in files) + "]"
    # its own connection, one thread and a bounded memory: the files are read in their
    # order and written as they come (no sort), beside a server answering requests
    with duckdb.connect(config={"threads": 1, "memory_limit": "512MB"}) as con:
        con.execute(f"COPY (SELECT * FROM read_parquet({listed}, hive_partitioning = false, "
                    f"union_by_name = true)) TO '{path_literal(staging / name)}' "
                    "(FORMAT parquet, COMPRESSION zstd)")
        row = con.execute(
            f"SELECT (SELECT sum(num_rows) FROM parquet_file_metadata({listed})), "
            f"(SELECT count(*) FROM read_parquet('{path_literal(staging / name)}'))"
        ).fetchone()
    if row is None or row[0] != row[1]:
        shutil.rmtree(staging, ignore_errors=True)
        raise StoreError(f"merging the files of {folder} wrote {row[1] if row else 0:,} "
                         f"rows of {row[0] if row else 0:,}: they were left as they are",
                         hint="write the lake again: demandloop export --format lake")
    merging = {"folder": folder.name, "into": name, "files": [p.name for p in files]}
    write_manifest(lake, {**manifest, "compacting": merging})
    os.replace(staging / name, folder / name)
    shutil.rmtree(staging, ignore_errors=True)
    return _recover_merge(lake, {**manifest, "compacting": merging})


def _recover_merge(lake: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Finish the merge the manifest names as ``compacting`` when its file is in its day
    folder (remove the files it replaces), else undo it; returns the manifest after."""
    merging = manifest.get("compacting")
    if not merging:
        return manifest
    folder = lake / "events" / str(merging["folder"])
    if (folder / str(merging["into"])).is_file():
        for name in merging["files"]:
            (folder / str(name)).unlink(missing_ok=True)
    shutil.rmtree(lake.with_name(f".{lake.name}.compacting"), ignore_errors=True)
    clean = {k: v for k, v in manifest.items() if k != "compacting"}
    write_manifest(lake, clean)
    return clean

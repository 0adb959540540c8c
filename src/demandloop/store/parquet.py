"""Lossless Parquet export and import of a workspace, in two layouts.

* ``files`` (``demandloop export``): one Parquet file per data table.
* ``lake`` (``demandloop export --format lake``): one folder per table, what Spark and other
  engines read (see :mod:`demandloop.compute`). Events, touches and the access log, the
  tables that grow without bound, are partitioned by day (``day=YYYY-MM-DD`` folders, Hive
  style), so a job reads only the days it needs and a day's new data is new files.

Both write ``manifest.json`` (layout, schema version, workspace, row counts). ``import``
checks the manifest and the columns, then loads everything in one transaction: either the
whole export lands or nothing does. A lake is written beside itself and swapped in, so a
reader never sees half of one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import orjson

from demandloop.errors import InputError, UsageError
from demandloop.store import touch_log
from demandloop.store.db import Store
from demandloop.store.schema import DATA_TABLES, SCHEMA_VERSION, SEQUENCES

MANIFEST = "manifest.json"

#: the lake's partitioned tables and the time column whose UTC date names the partition
DAY_COLUMNS = {"events": "timestamp", "touches": "ts", "access_log": "ts"}

#: the partition column a lake adds to its partitioned tables (no table has its own)
DAY = "day"


def export_parquet(store: Store, directory: Path, *, lake: bool = False) -> dict[str, int]:
    """Write every data table of the workspace to *directory* (as a lake when *lake*);
    returns rows per table."""
    if not lake:
        directory.mkdir(parents=True, exist_ok=True)
        return _write(store, directory, lake=False)
    # beside the lake, then swapped in: a failed export leaves the old lake whole
    directory.parent.mkdir(parents=True, exist_ok=True)
    fresh = directory.with_name(f".{directory.name}.writing")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir()
    try:
        counts = _write(store, fresh, lake=True)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    old = directory.with_name(f".{directory.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(fresh, directory)
    shutil.rmtree(old, ignore_errors=True)
    return counts


def _write(store: Store, directory: Path, *, lake: bool) -> dict[str, int]:
    counts: dict[str, int] = {}
    partitioned: dict[str, str] = {}
    ws = {"ws": store.workspace_id}
    with store.reader() as cur:
        # one snapshot: loads landing meanwhile are neither counted nor written, and the
        # lake's last load (what the collector appends after) is the newest one written
        cur.execute("BEGIN TRANSACTION")
        (newest,) = cur.execute("SELECT coalesce(max(load_id), 0) FROM events "
                                "WHERE workspace_id = $ws", ws).fetchone() or (0,)
        for table in DATA_TABLES:
            row = cur.execute(f"SELECT count(*) FROM {table} WHERE workspace_id = $ws",
                              ws).fetchone()
            counts[table] = int(row[0]) if row else 0
            rows = f"SELECT * FROM {table} WHERE workspace_id = $ws"
            if not lake:
                target, options = directory / f"{table}.parquet", ""
            elif table in DAY_COLUMNS and counts[table]:
                # an empty table has no partition to hold its schema: it is one file
                partitioned[table] = DAY_COLUMNS[table]
                rows = (f"SELECT *, CAST({DAY_COLUMNS[table]} AS DATE) AS {DAY} "
                        f"FROM {table} WHERE workspace_id = $ws")
                target, options = directory / table, f", PARTITION_BY ({DAY})"
            else:
                (directory / table).mkdir()
                target, options = directory / table / "data.parquet", ""
            cur.execute(f"COPY ({rows}) TO '{path_literal(target)}' "
                        f"(FORMAT parquet, COMPRESSION zstd{options})", ws)
        cur.execute("COMMIT")
    manifest = {
        "format": "demandloop-parquet",
        "layout": "lake" if lake else "files",
        "schema_version": SCHEMA_VERSION,
        "workspace_id": store.workspace_id,
        "tables": counts,
        **({"partitioned": partitioned, "last_load": int(newest)} if lake else {}),
    }
    write_manifest(directory, manifest)
    return counts


def write_manifest(directory: Path, manifest: dict[str, object]) -> None:
    """Write *manifest* as *directory*'s ``manifest.json``, whole or not at all (a reader,
    or the collector landing loads in a lake, never finds half of one)."""
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    os.replace(tmp, directory / MANIFEST)


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` says of an export or lake (checked by :func:`read_manifest`)."""

    #: ``files`` or ``lake`` (see the module docstring)
    layout: str
    workspace_id: str
    #: rows per table written
    tables: dict[str, int]
    #: a lake's tables written in day partitions, with their time column
    partitioned: dict[str, str] = field(default_factory=dict)
    #: a lake's newest load of events (the collector lands the ones after it: store.lake)
    last_load: int | None = None

    def location(self, directory: Path, table: str) -> tuple[Path, bool]:
        """Where *table* is in the export at *directory*: its one Parquet file, or (when
        partitioned, the second item) the folder of its ``day=`` partitions."""
        if self.layout == "files":
            return directory / f"{table}.parquet", False
        if table in self.partitioned:
            return directory / table, True
        return directory / table / "data.parquet", False


def read_manifest(directory: Path) -> Manifest:
    """The checked manifest of an export or lake at *directory*."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise InputError(
            f"{directory}: no {MANIFEST} found",
            hint="point at a folder written by 'demandloop export'",
        )
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{manifest_path}: not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != "demandloop-parquet":
        raise InputError(f"{manifest_path}: not a demandloop export manifest")
    layout = manifest.get("layout", "files")
    if layout not in ("files", "lake"):
        raise InputError(f"{manifest_path}: unknown layout '{layout}'")
    version = manifest.get("schema_version")
    # an older export imports when its columns still match (checked per table)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InputError(
            f"{manifest_path}: export has schema version {manifest.get('schema_version')}, "
            f"this demandloop uses {SCHEMA_VERSION}",
            hint="import it with the demandloop version that exported it, then upgrade",
        )
    tables = manifest.get("tables") or {}
    partitioned = manifest.get("partitioned") or {}
    if not isinstance(tables, dict) or not isinstance(partitioned, dict):
        raise InputError(f"{manifest_path}: 'tables' and 'partitioned' must be objects")
    try:
        counts = {str(k): int(v) for k, v in tables.items()}
    except (TypeError, ValueError):
        raise InputError(f"{manifest_path}: 'tables' must give each table's row count"
                         ) from None
    last = manifest.get("last_load")
    return Manifest(layout, str(manifest.get("workspace_id", "default")), counts,
                    {str(k): str(v) for k, v in partitioned.items()},
                    last if isinstance(last, int) else None)


def _source(directory: Path, manifest: Manifest, table: str) -> str:
    """A DuckDB relation reading *table*'s rows from an export (without a lake's ``day``)."""
    path, partitioned = manifest.location(directory, table)
    if not partitioned:
        return f"read_parquet('{path_literal(path)}')"
    return (f"(SELECT * EXCLUDE ({DAY}) FROM read_parquet('{path_literal(path / '**/*.parquet')}', "
            "hive_partitioning = true))")


def import_parquet(store: Store, directory: Path, *, replace: bool = False) -> dict[str, int]:
    """Load an export made by :func:`export_parquet` (either layout) into the store's
    workspace.

    The workspace must be empty unless *replace* is set (then its rows are replaced), so an
    import never silently doubles data.
    """
    manifest = read_manifest(directory)
    tables = manifest.tables
    with store.reader() as cur:
        for table in DATA_TABLES:
            if table not in tables:
                continue
            path, _ = manifest.location(directory, table)
            if not path.exists():
                raise InputError(f"{path}: missing (listed in {MANIFEST})")
            try:
                got = [r[0] for r in cur.execute(
                    f"DESCRIBE SELECT * FROM {_source(directory, manifest, table)}").fetchall()]
            except duckdb.Error as exc:
                raise _unreadable(path, exc) from None
            want = [r[0] for r in cur.execute(f"DESCRIBE {table}").fetchall()]
            if got != want:
                raise InputError(
                    f"{path}: columns {got} do not match table {table} {want}",
                    hint="the file was not written by this demandloop version",
                )
    existing = {t: n for t, n in store.table_counts().items() if n}
    if existing and not replace:
        raise UsageError(
            f"workspace '{store.workspace_id}' already holds data "
            f"({', '.join(f'{t}: {n}' for t, n in existing.items())})",
            hint="import into an empty workspace, or pass --replace to overwrite it",
        )
    counts: dict[str, int] = {}
    with store.writer() as cur:
        for table in DATA_TABLES:
            cur.execute(f"DELETE FROM {table} WHERE workspace_id = ?", [store.workspace_id])
            if table not in tables:
                continue
            # The export's own workspace id is rewritten, so an export can seed another one.
            path, _ = manifest.location(directory, table)
            try:
                row = cur.execute(
                    f"INSERT INTO {table} SELECT * REPLACE ($ws AS workspace_id) "
                    f"FROM {_source(directory, manifest, table)}",
                    {"ws": store.workspace_id},
                ).fetchone()
            except duckdb.Error as exc:  # (the transaction is rolled back: nothing changes)
                raise _unreadable(path, exc) from None
            written = int(row[0]) if row else 0
            if written != tables[table]:  # a file replaced or cut since the export
                raise InputError(
                    f"{path}: {written:,} rows where "
                    f"{MANIFEST} lists {tables[table]:,}; nothing was imported",
                    hint="export again, or copy the whole export folder")
            counts[table] = written
        touch_log.record_all(cur, store.workspace_id)  # every touch replaced
        for sequence, table, column in SEQUENCES:
            _advance(cur, sequence, table, column)
    return counts


def _unreadable(path: Path, exc: duckdb.Error) -> InputError:
    """A file of the export DuckDB cannot read (cut off, or not Parquet), said in one line
    (it was an internal error)."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InputError(f"{path}: cannot be read as Parquet ({reason}); nothing was imported",
                      hint="export again, or copy the whole export folder")


def _advance(cur: duckdb.DuckDBPyConnection, sequence: str, table: str, column: str) -> None:
    """Move *sequence* past every number in *table*'s *column*: the imported rows bring
    their numbers, and the cursors read after the highest (``resolve``'s watermark, the
    workflows'), so a new load numbered below it would never be read. DuckDB has no
    ``setval``: the sequence is made again, starting after both its own next number and
    the highest stored."""
    (stored,) = cur.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchone() \
        or (0,)
    (nxt,) = cur.execute(f"SELECT nextval('{sequence}')").fetchone() or (1,)
    cur.execute(f"CREATE OR REPLACE SEQUENCE {sequence} START {max(int(stored) + 1, nxt)}")


def path_literal(path: Path) -> str:
    """*path* as the inside of a SQL string literal."""
    return str(path).replace("'", "''")

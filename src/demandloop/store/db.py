"""The embedded DuckDB store: open, migrate, and the one-writer rule.

DuckDB lets one process write a database file, and inside that process a write transaction
should not interleave with another. ``Store.writer()`` serialises writers with a lock and runs
the block in a transaction; readers use ``Store.reader()``, a cursor of their own, and may run
in parallel.

Example:
    >>> store = Store.open(":memory:", workspace_id="default")
    >>> store.table_counts()["events"]
    0
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from demandloop.errors import StoreError, StoreLockedError
from demandloop.store.schema import DATA_TABLES, MIGRATIONS, SCHEMA_VERSION

#: storage format for new database files: DuckDB >= 1.4 reads it (the oldest we allow)
STORAGE_VERSION = "v1.4.0"


#: the write-ahead log size at which :meth:`Store.checkpoint_due` checkpoints (DuckDB's
#: default ``checkpoint_threshold``)
CHECKPOINT_BYTES = 16 * 2**20

#: DuckDB's own threshold once checkpoints are deferred (:meth:`Store.defer_checkpoints`)
DEFERRED_THRESHOLD = "1GB"


def _settle(con: duckdb.DuckDBPyConnection) -> None:
    """The settings every connection to a store's file runs with (:meth:`Store.open`, and
    :meth:`Store.rewrite` when it reopens the file)."""
    # Pinned to UTC so TIMESTAMPTZ -> TIMESTAMP casts mean UTC everywhere (set after
    # connect: the ICU extension that owns the setting loads with the connection).
    con.execute("SET TimeZone = 'UTC'")
    # Every query that needs an order says ORDER BY; without this promise DuckDB would
    # keep insertion order and serialise large inserts (about 2x slower ingestion).
    con.execute("SET GLOBAL preserve_insertion_order = false")


class Store:
    """A DuckDB database holding one or more workspaces, migrated to the current schema."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str, workspace_id: str) -> None:
        self.con = con
        self.path = path
        self.workspace_id = workspace_id
        self._write_lock = threading.RLock()
        self._config: dict[str, Any] = {"storage_compatibility_version": STORAGE_VERSION}
        self._deferred = False

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        workspace_id: str = "default",
        read_only: bool = False,
        threads: int | None = None,
        memory_limit: str | None = None,
    ) -> Store:
        """Open (creating if needed) and migrate the database at *path*."""
        target = str(path)
        if target != ":memory:":
            parent = Path(target).parent
            if not parent.exists():
                raise StoreError(
                    f"cannot create database {target}: folder {parent} does not exist",
                    hint="create the folder or set store.path in demandloop.toml",
                )
        # New files use the storage format of the oldest DuckDB we support (pyproject):
        # its string compression (DICT_FSST) writes ingested events about 1.5x faster and
        # 15% smaller than the default, which stays readable by DuckDB 0.10.
        config: dict[str, Any] = {"storage_compatibility_version": STORAGE_VERSION}
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        try:
            con = duckdb.connect(target, read_only=read_only, config=config)
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" in text.lower():
                raise StoreLockedError(
                    f"database {target} is in use by another process",
                    hint="stop the other demandloop process (e.g. 'demandloop serve') or use "
                    "another workspace",
                ) from exc
            raise StoreError(f"cannot open database {target}: {text}") from exc
        except duckdb.Error as exc:
            raise StoreError(
                f"cannot open database {target}: {exc}",
                hint="is it a DuckDB file written by demandloop?",
            ) from exc
        _settle(con)
        store = cls(con, target, workspace_id)
        store._config = config
        if not read_only:
            store.migrate()
        else:
            store.check_version()
        return store

    # -- schema -----------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Apply pending migrations in order; returns the versions applied."""
        with self._write_lock:
            self.con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
            )
            rows = self.con.execute("SELECT version FROM schema_migrations").fetchall()
            done = {r[0] for r in rows}
            if done and max(done) > SCHEMA_VERSION:
                raise StoreError(
                    f"database {self.path} has schema version {max(done)}, newer than this "
                    f"demandloop understands ({SCHEMA_VERSION})",
                    hint="upgrade demandloop",
                )
            applied = []
            for m in MIGRATIONS:
                if m.version in done:
                    continue
                self.con.execute("BEGIN TRANSACTION")
                try:
                    self.con.execute(m.sql)
                    self.con.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)",
                        [m.version, m.description],
                    )
                    self.con.execute("COMMIT")
                except Exception:
                    self.con.execute("ROLLBACK")
                    raise
                applied.append(m.version)
            return applied

    def check_version(self) -> None:
        try:
            row = self.con.execute("SELECT max(version) FROM schema_migrations").fetchone()
        except duckdb.CatalogException:
            row = None
        if not row or row[0] != SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} is not at schema version {SCHEMA_VERSION}",
                hint="open it once without read-only mode to migrate it",
            )

    # -- access -----------------------------------------------------------------------------
    @contextmanager
    def locked_cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single writer's cursor, outside any transaction (the caller manages them).

        For work that stages data before one final transaction: a failed statement inside a
        DuckDB transaction aborts it, so attempts that may fail run before ``BEGIN``.
        """
        with self._write_lock:
            cur = self.con.cursor()
            try:
                yield cur
            finally:
                cur.close()

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single writer: a locked cursor inside a transaction (rolled back on error)."""
        with self.locked_cursor() as cur, transaction(cur):
            yield cur

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own for a reader; readers may run in parallel with the writer."""
        cur = self.con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    def table_counts(self) -> dict[str, int]:
        """Rows per data table for this workspace."""
        with self.reader() as cur:
            return {
                t: int(
                    cur.execute(
                        f"SELECT count(*) FROM {t} WHERE workspace_id = ?", [self.workspace_id]
                    ).fetchone()[0]  # type: ignore[index]
                )
                for t in DATA_TABLES
            }

    def rewrite(self) -> None:
        """Rewrite the database file from its live rows, and reopen it.

        DuckDB reuses a deleted row's blocks only later, so its bytes stay in the file: after
        erasing a person (:mod:`demandloop.store.privacy`) the file is copied table by table
        into a new one (``COPY FROM DATABASE`` keeps the schema, keys, views and sequences)
        that replaces it. Nothing else may use the connection meanwhile (the writer's lock
        is held). Costs a full copy: meant for rare, deliberate operations."""
        if self.path == ":memory:":
            return
        with self._write_lock:
            self.con.execute("CHECKPOINT")
            self.con.close()
            path = Path(self.path)
            tmp = path.with_name(path.name + ".rewrite")
            for leftover in (tmp, Path(str(tmp) + ".wal")):
                leftover.unlink(missing_ok=True)
            con = duckdb.connect(str(tmp), config=self._config)
            try:
                row = con.execute("SELECT current_database()").fetchone()
                new = str(row[0]) if row else ""
                con.execute(f"ATTACH '{_quote(path)}' AS old_db (READ_ONLY)")
                con.execute(f'COPY FROM DATABASE old_db TO "{new}"')
                con.execute("DETACH old_db")
                con.execute("CHECKPOINT")
            finally:
                con.close()
            tmp.replace(path)
            Path(str(path) + ".wal").unlink(missing_ok=True)
            self.con = duckdb.connect(self.path, config=self._config)
            _settle(self.con)
            if self._deferred:
                self.defer_checkpoints()

    def defer_checkpoints(self) -> None:
        """Leave folding the write-ahead log into the file to :meth:`checkpoint_due`.

        DuckDB checkpoints in whichever commit takes the log past 16 MB: on a server that
        is a rescore's commit as often as not, and at 10M events a checkpoint takes 0.5-2 s,
        which an alert waiting on that rescore waited too. The server calls
        :meth:`checkpoint_due` once the alerts are out, and between loads; the threshold
        left to DuckDB (:data:`DEFERRED_THRESHOLD`) only bounds the log if nothing does."""
        self._deferred = True
        self.con.execute(f"SET checkpoint_threshold = '{DEFERRED_THRESHOLD}'")

    def checkpoint_due(self, wal_bytes: int = CHECKPOINT_BYTES) -> bool:
        """Checkpoint when the write-ahead log holds *wal_bytes* or more (DuckDB's own
        threshold); returns whether it did. Readers may run meanwhile."""
        if self.path == ":memory:":
            return False
        try:
            size = Path(self.path + ".wal").stat().st_size
        except FileNotFoundError:
            return False
        if size < wal_bytes:
            return False
        with self._write_lock:
            self.con.execute("CHECKPOINT")
        return True

    def close(self) -> None:
        self.con.close()


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


@contextmanager
def transaction(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """A transaction on *cur*: committed at the end, rolled back on any error."""
    cur.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        # already over when DuckDB ended the transaction of a statement a Ctrl-C
        # interrupted: a failed ROLLBACK would replace the interrupt with an "internal error"
        with contextlib.suppress(duckdb.TransactionException):
            cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")

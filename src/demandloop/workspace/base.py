"""The workspace's core: its directory, settings and store; plain reads of its tables;
export, import and privacy. The stage mixins beside this module add the loop's verbs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from demandloop import privacy
from demandloop.activate import compose
from demandloop.compute import Tables, spark_tables, tables
from demandloop.config import Settings, locate
from demandloop.config.compute import ENGINES
from demandloop.domains import canonical_domain
from demandloop.errors import InputError, UsageError
from demandloop.store import Store, export_parquet, import_parquet
from demandloop.store.accounts import held
from demandloop.store.lake import Landed, compact_days, land_loads
from demandloop.store.parquet import MANIFEST, read_manifest

if TYPE_CHECKING:
    from demandloop.workspace import Workspace


class Base:
    """A workspace directory: its settings and its store."""

    directory: Path
    settings: Settings
    store: Store

    def __init__(self, directory: Path, settings: Settings, store: Store) -> None:
        self.directory = directory
        self.settings = settings
        self.store = store
        self._borrowed = False
        #: how privacy requests reach the collector's log (None: its folders directly;
        #: ``demandloop serve`` sets its own, see demandloop.serve.quiesce)
        self.log_access: privacy.LogAccess | None = None

    @classmethod
    def open(cls, path: str | Path = ".", *, settings: Settings | None = None) -> Workspace:
        """Open a workspace directory (or a ``.duckdb`` file directly)."""
        p = Path(path)
        if not (p.suffix == ".duckdb" or p.is_file() or p.exists()):
            p.mkdir(parents=True)
        directory, settings, db_path = locate(p, settings)
        store = Store.open(db_path, workspace_id=settings.workspace.id,
                           threads=settings.store.threads,
                           memory_limit=settings.store.memory_limit)
        return cast("Workspace", cls(directory, settings, store))

    def close(self) -> None:
        if not self._borrowed:
            self.store.close()

    def borrow(self) -> Workspace:
        """This workspace for one command run by the server that holds it: the same store
        and settings, and closing it leaves the store open."""
        other = cast("Workspace", type(self)(self.directory, self.settings, self.store))
        other._borrowed = True
        other.log_access = self.log_access
        return other

    def __enter__(self) -> Workspace:
        return self.facade

    def __exit__(self, *exc: object) -> None:
        self.close()

    def account_key(self, key: str) -> str:
        """The id of the account *key* names as ``explain account`` finds it: its domain
        however written (``ACME.COM``, ``https://www.acme.com/``), or the id an import or
        merge gave it since; *key* itself (stripped) when none is held."""
        return self.held_account(key) or canonical_domain(key) or key.strip()

    def held_account(self, key: str) -> str | None:
        """The id of the account *key* names (as :meth:`account_key` reads it), or None
        when no account holds it."""
        return held(self.store, canonical_domain(key) or key.strip())

    def lake_path(self) -> Path:
        """The Parquet lake of ``[compute] lake``, resolved against the workspace."""
        lake = Path(self.settings.compute.lake)
        return lake if lake.is_absolute() else self.directory / lake

    def engine(self, engine: str | None = None) -> str:
        """*engine*, checked, or ``[compute] engine`` when None."""
        chosen = engine or self.settings.compute.engine
        if chosen not in ENGINES:
            raise UsageError(f"unknown engine '{chosen}'", hint=f"use {' or '.join(ENGINES)}")
        return chosen

    def engine_tables(self, engine: str | None = None) -> Tables | None:
        """The tables a command computes on with *engine* (see :meth:`engine`): None for
        DuckDB (the store's own), Spark's view of the lake otherwise."""
        if self.engine(engine) == "duckdb":
            return None
        return spark_tables(self.settings.compute.spark, self.written_lake())

    def written_lake(self) -> Path:
        """:meth:`lake_path`, once it holds this workspace's lake (another workspace's
        would be computed and written here as if it were this one's)."""
        lake = self.lake_path()
        if not (lake / MANIFEST).is_file():
            raise UsageError(f"no Parquet lake at {lake.resolve()}",
                             hint="write it with 'demandloop export --format lake', or set "
                             "[compute] lake to where it is")
        held = read_manifest(lake).workspace_id
        if held != self.store.workspace_id:
            raise UsageError(f"the lake at {lake} is workspace '{held}', not "
                             f"'{self.store.workspace_id}'",
                             hint="write this workspace's lake: demandloop export --format "
                             "lake")
        return lake

    def export_parquet(self, directory: str | Path, *, lake: bool = False) -> dict[str, int]:
        """Write every table to *directory* as Parquet, as a lake (partitioned by day, what
        Spark reads) when *lake* (remembered, so that erasing a person later reaches this
        copy too)."""
        if Path(directory).exists() and not Path(directory).is_dir():
            raise InputError(f"{directory} is a file: an export is a folder of Parquet files",
                             hint="name a new or empty folder")
        counts = export_parquet(self.store, Path(directory), lake=lake)
        # the secret that signs unsubscribe links: a restore must still honour links sent
        key = self.directory / compose.UNSUBSCRIBE_KEY_FILE
        if key.is_file():
            _copy_secret(key, Path(directory) / compose.UNSUBSCRIBE_KEY_FILE)
        privacy.record_export(self.directory, Path(directory))
        return counts

    def land_in_lake(self) -> Landed:
        """Append the events loaded since ``[compute] lake``'s last load to it (what the
        server does every ``collector.land_lake_seconds``), or write the lake again whole
        where it cannot be appended to (:mod:`demandloop.store.lake`)."""
        lake = self.lake_path()
        landed = land_loads(self.store, lake)
        if landed is not None:
            # past days' landed files merged into one each (a no-op on most landings)
            merged = compact_days(lake, self.settings.collector.lake_compact_files)
            return dataclasses.replace(landed, compacted=merged) if merged else landed
        if lake.is_dir() and any(lake.iterdir()) and not (lake / MANIFEST).is_file():
            raise UsageError(f"{lake} holds files but no lake: loads are not landed there",
                             hint="set [compute] lake to a new or empty folder")
        counts = self.export_parquet(lake, lake=True)
        return Landed(events=counts["events"], last_load=read_manifest(lake).last_load or 0,
                      rewritten=True)

    def export_person(self, key: str) -> dict[str, Any]:
        """Everything stored about one person (an email, user id or anonymous id)."""
        return privacy.export_person(self.facade, key)

    def erase_person(self, key: str) -> dict[str, Any]:
        """Remove one person from the database, the collector's log and dead letters, and
        the Parquet exports this workspace wrote; their address stays suppressed as a
        hash."""
        return privacy.erase_person(self.facade, key)

    def apply_retention(self) -> int:
        """Delete raw events older than ``collect.retention_days``; returns how many."""
        return privacy.apply_retention(self.store, self.settings.collect.retention_days)

    def import_parquet(self, directory: str | Path, *, replace: bool = False) -> dict[str, int]:
        """Load an export (the workspace must be empty unless *replace*); with it comes the
        key that signed its unsubscribe links, so links already sent keep working."""
        counts = import_parquet(self.store, Path(directory), replace=replace)
        key = Path(directory) / compose.UNSUBSCRIBE_KEY_FILE
        if key.is_file():
            _copy_secret(key, self.directory / compose.UNSUBSCRIBE_KEY_FILE)
        return counts

    @property
    def tables(self) -> Tables:
        """Ibis expressions over this workspace's tables (for custom analytics)."""
        return tables(self.store)

    def _frame(self, table: str, order: str) -> pd.DataFrame:
        with self.store.reader() as cur:
            return cur.execute(
                f"SELECT * EXCLUDE (workspace_id) FROM {table} WHERE workspace_id = ? "
                f"ORDER BY {order}", [self.store.workspace_id]
            ).df()

    def accounts(self) -> pd.DataFrame:
        return self._frame("accounts", "account_id")

    def persons(self) -> pd.DataFrame:
        return self._frame("persons", "person_id")

    def opportunities(self) -> pd.DataFrame:
        return self._frame("opportunities", "opportunity_id")

    def leads(self) -> pd.DataFrame:
        return self._frame("leads", "lead_id")

    def touches(self) -> pd.DataFrame:
        return self._frame("touches", "ts, touch_id")

    def events(self, limit: int | None = None) -> pd.DataFrame:
        """Stored events, each ``context`` whole again (the store keeps its page fields, IP
        and user agent only in their columns)."""
        with self.store.reader() as cur:
            return cur.execute(
                "SELECT * EXCLUDE (workspace_id) FROM events_full WHERE workspace_id = ? "
                "ORDER BY timestamp, message_id" + (f" LIMIT {int(limit)}" if limit else ""),
                [self.store.workspace_id],
            ).df()

    def counts(self) -> dict[str, int]:
        return self.store.table_counts()

    @property
    def facade(self) -> Workspace:
        """This object as the whole :class:`~demandloop.workspace.Workspace` the stage runners
        take (every workspace object is one; the mixins only see their own part)."""
        return cast("Workspace", self)


def _copy_secret(source: Path, target: Path) -> None:
    """Copy a secret file, readable by its owner only, replacing *target* atomically."""
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(source.read_bytes())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


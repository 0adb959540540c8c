"""The store: migrations, lossless Parquet round trip, one writer process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

import demandloop
from demandloop.errors import InputError, StoreError, StoreLockedError, UsageError
from demandloop.store import DATA_TABLES, SCHEMA_VERSION, Store
from demandloop.store.db import STORAGE_VERSION


def test_migrations_apply_once(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "a.duckdb")
    assert s.con.execute("SELECT max(version) FROM schema_migrations").fetchone() == (
        SCHEMA_VERSION,)
    assert s.migrate() == []
    s.close()
    s = Store.open(tmp_path / "a.duckdb")
    assert s.con.execute("SELECT count(*) FROM schema_migrations").fetchone() == (
        SCHEMA_VERSION,)
    for table in DATA_TABLES:
        cols = [r[0] for r in s.con.execute(f"DESCRIBE {table}").fetchall()]
        assert cols[0] == "workspace_id", table
    s.close()


def test_new_files_use_the_declared_storage_format(tmp_path: Path) -> None:
    # the format decides ingestion speed and file size (DICT_FSST strings); files that an
    # older demandloop wrote in DuckDB's default format keep opening and migrating
    s = Store.open(tmp_path / "new.duckdb")
    tags = s.con.execute("SELECT tags FROM duckdb_databases() WHERE database_name = 'new'"
                         ).fetchone()
    s.close()
    assert tags is not None and tags[0]["storage_version"].startswith(STORAGE_VERSION)
    old = tmp_path / "old.duckdb"
    duckdb.connect(str(old)).execute("CREATE TABLE t (x INTEGER)").close()
    s = Store.open(old)
    tags = s.con.execute("SELECT tags FROM duckdb_databases() WHERE database_name = 'old'"
                         ).fetchone()
    assert s.con.execute("SELECT max(version) FROM schema_migrations").fetchone() == (
        SCHEMA_VERSION,)
    s.close()
    assert tags is not None and not tags[0]["storage_version"].startswith(STORAGE_VERSION)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "a.duckdb")
    s.con.execute("INSERT INTO schema_migrations VALUES (999, 'future', now()::TIMESTAMP)")
    s.close()
    with pytest.raises(StoreError, match="newer than this demandloop understands"):
        Store.open(tmp_path / "a.duckdb")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "no" / "a.duckdb")


def _all_rows(ws: demandloop.Workspace) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for t in DATA_TABLES:
        out[t] = sorted(ws.store.con.execute(
            f"SELECT * EXCLUDE (workspace_id) FROM {t}").fetchall(), key=repr)
    return out


def test_parquet_round_trip_is_lossless(ws, market: Path, olist_dir: Path,  # type: ignore[no-untyped-def]
                                        tmp_path: Path) -> None:
    ws.ingest(market / "events.jsonl")
    for kind in ("accounts", "contacts", "opportunities"):
        ws.import_crm(kind, market / f"{kind}.csv")
    ws.import_olist(olist_dir)
    counts = ws.export_parquet(tmp_path / "export")
    assert counts["events"] > 1000 and counts["leads"] == 8000
    assert (tmp_path / "export" / "events.parquet").is_file()
    with demandloop.open(tmp_path / "copy") as copy:
        copy.import_parquet(tmp_path / "export")
        assert _all_rows(copy) == _all_rows(ws)
        # a second import must not double anything
        with pytest.raises(UsageError, match="already holds data"):
            copy.import_parquet(tmp_path / "export")
        copy.import_parquet(tmp_path / "export", replace=True)
        assert copy.counts() == ws.counts()


def test_import_of_a_bad_export_writes_nothing(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="no manifest.json"):
        ws.import_parquet(tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(InputError, match="not valid JSON"):
        ws.import_parquet(tmp_path)
    (tmp_path / "manifest.json").write_text(
        '{"format": "demandloop-parquet", "schema_version": '
        f'{SCHEMA_VERSION}, "tables": {{"events": 1}}}}')
    with pytest.raises(InputError, match="events.parquet: missing"):
        ws.import_parquet(tmp_path)
    assert sum(ws.counts().values()) == 0


def test_an_export_with_a_file_cut_off_or_replaced_imports_nothing(
        market: Path, tmp_path: Path) -> None:
    # a copy interrupted mid-file was an internal error; a file swapped for a shorter one
    # imported its rows and reported the manifest's count
    import shutil

    import duckdb

    with demandloop.open(tmp_path / "a") as a:
        a.ingest(market / "events.jsonl")
        a.resolve()
        a.export_parquet(tmp_path / "export")
    cut, short = tmp_path / "cut", tmp_path / "short"
    shutil.copytree(tmp_path / "export", cut)
    shutil.copytree(tmp_path / "export", short)
    whole = (tmp_path / "export" / "touches.parquet").read_bytes()
    (cut / "touches.parquet").write_bytes(whole[: len(whole) // 2])
    duckdb.connect().execute(
        f"COPY (SELECT * FROM read_parquet('{tmp_path / 'export' / 'touches.parquet'}') "
        f"LIMIT 10) TO '{short / 'touches.parquet'}' (FORMAT parquet)")
    with demandloop.open(tmp_path / "b") as b:
        with pytest.raises(InputError, match="touches.parquet: cannot be read as Parquet"):
            b.import_parquet(cut)
        with pytest.raises(InputError, match=r"touches.parquet: 10 rows where manifest.json "
                                             r"lists [\d,]+; nothing was imported"):
            b.import_parquet(short)
        assert sum(b.counts().values()) == 0
        b.import_parquet(tmp_path / "export")  # the whole export still imports
        before = b.counts()
        # and with --replace, a bad one changes nothing (the transaction is rolled back)
        with pytest.raises(InputError, match="10 rows where"):
            b.import_parquet(short, replace=True)
        assert b.counts() == before


def test_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    db = tmp_path / "locked.duckdb"
    Store.open(db).close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(db)!r})
        print("ready", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError, match="in use by another process"):
            Store.open(db)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    Store.open(db).close()  # free again once the holder is gone


def test_workspaces_in_one_file_are_isolated(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "demandloop.toml").write_text(
        f'[workspace]\nid = "alpha"\n[store]\npath = "{tmp_path / "shared.duckdb"}"\n')
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "demandloop.toml").write_text(
        f'[workspace]\nid = "beta"\n[store]\npath = "{tmp_path / "shared.duckdb"}"\n')
    (tmp_path / "e.jsonl").write_text('{"type":"track","event":"E","userId":"u","messageId":"x"}\n')
    with demandloop.open(tmp_path / "a") as a:
        assert a.ingest(tmp_path / "e.jsonl").inserted == 1
    with demandloop.open(tmp_path / "b") as b:
        assert b.counts()["events"] == 0
        assert b.ingest(tmp_path / "e.jsonl").inserted == 1  # same messageId, other workspace


def test_an_interrupt_after_the_transaction_ended_stays_an_interrupt() -> None:
    # DuckDB ends the transaction of a statement a Ctrl-C interrupted: the rollback then
    # has nothing to roll back, and the interrupt must still be what the caller sees (the
    # CLI says "interrupted, nothing written", not "internal error")
    from demandloop.store.db import transaction

    con = duckdb.connect()
    con.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(KeyboardInterrupt), transaction(con):
        con.execute("INSERT INTO t VALUES (1)")
        con.execute("ROLLBACK")  # what the interrupted statement left behind
        raise KeyboardInterrupt
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)
    # and an ordinary failure still rolls back
    with pytest.raises(ValueError, match="boom"), transaction(con):
        con.execute("INSERT INTO t VALUES (2)")
        raise ValueError("boom")
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_an_imported_workspace_numbers_new_loads_after_the_imported_ones(
        market: Path, tmp_path: Path) -> None:
    """The cursors read after the highest load number (incremental resolve, workflows):
    after an import, a new load is numbered above every imported one, so it is resolved
    (and a new stage change numbered above the imported ones)."""
    lines = (market / "events.jsonl").read_text().splitlines()
    with demandloop.open(tmp_path / "a") as a:
        for i in range(3):
            part = tmp_path / f"part{i}.jsonl"
            part.write_text("\n".join(lines[i::3]) + "\n")
            a.ingest(part)
        a.resolve()
        a.score()
        a.export_parquet(tmp_path / "x")
        loads, seqs = a.store.con.execute(
            "SELECT (SELECT max(load_id) FROM events), (SELECT max(seq) FROM stage_changes)"
        ).fetchone()
    assert loads == 3 and seqs > 0
    new = tmp_path / "new.jsonl"
    new.write_text('{"type": "page", "anonymousId": "fresh-visitor", "messageId": "n1", '
                   '"timestamp": "2030-01-01T00:00:00Z", "properties": {"url": '
                   '"https://example.com/pricing"}}\n')
    with demandloop.open(tmp_path / "b") as b:
        b.import_parquet(tmp_path / "x")
        b.resolve()
        b.ingest(new)
        assert b.store.con.execute("SELECT load_id FROM events WHERE message_id = 'n1'"
                                   ).fetchone() == (4,)
        b.resolve()  # incremental: the new load is read
        assert b.store.con.execute("SELECT count(*) FROM touches WHERE message_id = 'n1'"
                                   ).fetchone() == (1,)
        (nxt,) = b.store.con.execute("SELECT nextval('stage_change_seq')").fetchone()
        assert nxt > seqs


def _wal(path: Path) -> int:
    wal = Path(str(path) + ".wal")
    return wal.stat().st_size if wal.exists() else 0


def test_deferred_checkpoints_wait_for_the_call_and_lose_nothing(tmp_path: Path) -> None:
    """A server defers checkpoints to after its alerts: commits leave the log alone, the
    call folds it in once it holds 16 MB, and a process that dies before keeps every
    committed row (the log is replayed)."""
    path = tmp_path / "d.duckdb"
    store = Store.open(path)
    _updated(store)
    grown = _wal(path)
    assert grown >= 16 * 2**20  # DuckDB alone checkpoints in the next commit (below)
    assert store.checkpoint_due(wal_bytes=grown + 1) is False and _wal(path) == grown
    # a process that stops here (no checkpoint, no clean close) loses nothing committed
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(path.read_bytes())
    Path(str(copy) + ".wal").write_bytes(Path(str(path) + ".wal").read_bytes())
    other = duckdb.connect(str(copy), read_only=True)
    assert other.execute("SELECT count(*) FROM t WHERE s LIKE '%y'").fetchone() == (600000,)
    assert other.execute("SELECT count(*) FROM t").fetchone() == (600001,)
    other.close()
    assert store.checkpoint_due() is True
    assert _wal(path) < grown
    assert store.checkpoint_due() is False  # nothing left to fold in
    store.close()
    # without deferring, the same commit checkpoints by itself
    plain = Store.open(tmp_path / "p.duckdb")
    _updated(plain, defer=False)
    assert _wal(tmp_path / "p.duckdb") < 16 * 2**20
    plain.close()


def _updated(store: Store, defer: bool = True) -> None:
    """A table of 600k rows, checkpointed, then every row updated (about 30 MB of log:
    a bulk insert goes to the file directly, an update to the log)."""
    with store.writer() as cur:
        cur.execute("CREATE TABLE t AS SELECT range AS i, repeat('x', 40) AS s "
                    "FROM range(600000)")
    store.con.execute("CHECKPOINT")
    if defer:
        store.defer_checkpoints()
    with store.writer() as cur:
        cur.execute("UPDATE t SET s = s || 'y'")
    with store.writer() as cur:  # the commit after the log passed 16 MB
        cur.execute("INSERT INTO t VALUES (-1, 'z')")

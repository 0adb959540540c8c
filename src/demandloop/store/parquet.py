"""Lossless Parquet export and import of a workspace.

``export`` writes one Parquet file per data table plus ``manifest.json`` (schema version,
workspace, row counts). ``import`` checks the manifest and the columns, then loads everything
in one transaction: either the whole export lands or nothing does.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from demandloop.errors import InputError, UsageError
from demandloop.store import touch_log
from demandloop.store.db import Store
from demandloop.store.schema import DATA_TABLES, SCHEMA_VERSION

MANIFEST = "manifest.json"


def export_parquet(store: Store, directory: Path) -> dict[str, int]:
    """Write every data table of the workspace to *directory*; returns rows per table."""
    directory.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with store.reader() as cur:
        for table in DATA_TABLES:
            target = directory / f"{table}.parquet"
            cur.execute(
                f"COPY (SELECT * FROM {table} WHERE workspace_id = $ws) "
                f"TO '{_quote(target)}' (FORMAT parquet, COMPRESSION zstd)",
                {"ws": store.workspace_id},
            )
            counts[table] = int(
                cur.execute(
                    f"SELECT count(*) FROM {table} WHERE workspace_id = ?", [store.workspace_id]
                ).fetchone()[0]  # type: ignore[index]
            )
    manifest = {
        "format": "demandloop-parquet",
        "schema_version": SCHEMA_VERSION,
        "workspace_id": store.workspace_id,
        "tables": counts,
    }
    (directory / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return counts


def import_parquet(store: Store, directory: Path, *, replace: bool = False) -> dict[str, int]:
    """Load an export made by :func:`export_parquet` into the store's workspace.

    The workspace must be empty unless *replace* is set (then its rows are replaced), so an
    import never silently doubles data.
    """
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise InputError(
            f"{directory}: no {MANIFEST} found",
            hint="point at a folder written by 'demandloop export --format parquet'",
        )
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{manifest_path}: not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != "demandloop-parquet":
        raise InputError(f"{manifest_path}: not a demandloop export manifest")
    version = manifest.get("schema_version")
    # an older export imports when its columns still match (checked below, per table)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InputError(
            f"{manifest_path}: export has schema version {manifest.get('schema_version')}, "
            f"this demandloop uses {SCHEMA_VERSION}",
            hint="import it with the demandloop version that exported it, then upgrade",
        )
    tables = manifest.get("tables", {})
    with store.reader() as cur:
        for table in DATA_TABLES:
            if table not in tables:
                continue
            path = directory / f"{table}.parquet"
            if not path.is_file():
                raise InputError(f"{path}: missing (listed in {MANIFEST})")
            got = [r[0] for r in cur.execute(
                f"DESCRIBE SELECT * FROM read_parquet('{_quote(path)}')").fetchall()]
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
            path = directory / f"{table}.parquet"
            # The export's own workspace id is rewritten, so an export can seed another one.
            cur.execute(
                f"INSERT INTO {table} SELECT * REPLACE ($ws AS workspace_id) "
                f"FROM read_parquet('{_quote(path)}')",
                {"ws": store.workspace_id},
            )
            counts[table] = int(tables[table])
        touch_log.record_all(cur, store.workspace_id)  # every touch replaced
    return counts


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")

"""Append validated Segment-spec messages to ``events``: stage, check, dedupe, insert.

Everything one call is given is staged first (outside any transaction, so a failed fast
attempt poisons nothing) and then inserted in one transaction: by default a command lands
every file it was given or nothing (``skip_invalid`` lands the valid messages and reports the
rest). Deduplication is on ``message_id`` within the workspace, both inside the input and
against what is already stored.

Two ways to stage a file, chosen per file:

* **fast**: DuckDB reads the JSON Lines file itself with its parallel JSON reader. It cannot
  number lines, so it is used only to land a file that turns out entirely valid;
* **precise**: the file is split into lines (see :mod:`demandloop.collect.files`) and every
  problem is reported as ``FILE:LINE: reason``. Used for JSON arrays, pretty-printed
  documents, batch envelopes and whenever the fast attempt finds anything wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from demandloop.collect.files import Chunk, is_json_lines, iter_chunks
from demandloop.collect.segment import EVENT_COLUMNS, Limits, fast_sql, precise_sql
from demandloop.errors import InputError
from demandloop.store.db import Store

MAX_REPORTED_PROBLEMS = 20
_STAGED_COLUMNS = ("line_no", "idx", "in_batch", "reason", *EVENT_COLUMNS)


@dataclass
class IngestResult:
    """What one ingestion did, per the user's view of it."""

    messages: int = 0
    invalid: int = 0
    duplicates: int = 0
    inserted: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class Batch:
    """Raw documents from one source (an HTTP request, a test): ``(line_no, raw)`` rows."""

    source: str
    table: pa.Table
    unit: str = "line"


Progress = Callable[[int], None]
"""Called with a number of bytes (files) or documents (batches) just staged."""


def ingest_files(
    store: Store,
    paths: Sequence[Path],
    *,
    limits: Limits,
    skip_invalid: bool = False,
    received_at: dt.datetime | None = None,
    progress: Progress | None = None,
    workspace_id: str | None = None,
    source: str | None = None,
) -> IngestResult:
    """Validate and store the messages of event files (JSONL, JSON, optionally gzipped),
    in *workspace_id* (default: the store's), recorded as coming from *source* (default:
    each file's path).

    Raises :class:`InputError` and writes nothing when any message is invalid (unless
    *skip_invalid*).
    """
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: no such file", hint="check the path")
    with _Stager(store, limits, received_at, workspace_id) as st:
        for path in paths:
            if not st.stage_fast(path, progress, source):
                for chunk in iter_chunks(path):
                    st.stage_chunk(source or str(path), chunk)
                    if progress:
                        progress(chunk.bytes_read)
        return st.land(skip_invalid)


def append_events(
    store: Store,
    batches: Iterable[Batch],
    *,
    limits: Limits,
    skip_invalid: bool = False,
    received_at: dt.datetime | None = None,
    workspace_id: str | None = None,
) -> IngestResult:
    """Validate and store already-split documents (one JSON text per row), in
    *workspace_id* (default: the store's) when one database holds several workspaces.

    Example:
        >>> import pyarrow as pa
        >>> s = Store.open(":memory:")
        >>> t = pa.table({"line_no": [1], "raw": ['{"type":"track","event":"E","userId":"u"}']})
        >>> append_events(s, [Batch("x.jsonl", t)], limits=Limits()).inserted
        1
    """
    with _Stager(store, limits, received_at, workspace_id) as st:
        for batch in batches:
            st.stage_chunk(batch.source, Chunk(batch.table, 0, batch.unit))
        return st.land(skip_invalid)


class _Stager:
    """Stages sources into one temp table, then lands them in a single transaction."""

    def __init__(self, store: Store, limits: Limits, received_at: dt.datetime | None,
                 workspace_id: str | None = None) -> None:
        self.store = store
        self.workspace_id = workspace_id or store.workspace_id
        self.limits = limits
        self.params = {
            "received_at": received_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        }
        self.sources: list[tuple[str, str]] = []  # (name, unit) per source_no
        self.result = IngestResult()

    def __enter__(self) -> _Stager:
        self._lock = self.store.locked_cursor()
        self.cur = self._lock.__enter__()
        cols = ", ".join(_STAGED_COLUMNS)
        self.cur.execute(
            "CREATE OR REPLACE TEMP TABLE _no_lines (line_no BIGINT, raw VARCHAR)"
        )
        self.cur.execute(
            f"CREATE OR REPLACE TEMP TABLE _staged AS SELECT 0 AS source_no, {cols} "
            f"FROM ({precise_sql(self.limits).replace('raw_lines', '_no_lines')}) WHERE false",
            self.params,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.cur.execute("DROP TABLE IF EXISTS _staged")
            self.cur.execute("DROP TABLE IF EXISTS _no_lines")
        finally:
            self._lock.__exit__(None, None, None)

    def _source_no(self, name: str, unit: str) -> int:
        self.sources.append((name, unit))
        return len(self.sources) - 1

    def stage_fast(self, path: Path, progress: Progress | None, source: str | None = None
                   ) -> bool:
        """Try DuckDB's own reader; False (having staged nothing) when it cannot be used."""
        if not is_json_lines(path):
            return False
        cols = ", ".join(_STAGED_COLUMNS)
        no = -1
        try:
            row = self.cur.execute(
                # chr(31) never appears raw in valid JSON: one column per line
                "SELECT max(strlen(line)) FROM read_csv($path, columns={'line': 'VARCHAR'}, "
                "delim='\x1f', quote='', escape='', header=false)",
                {"path": str(path)},
            ).fetchone()
            max_line = int(row[0]) if row and row[0] is not None else 0
            if max_line > self.limits.max_event_bytes:
                return False
            no = self._source_no(source or str(path), "line")
            self.cur.execute(
                f"INSERT INTO _staged SELECT {no}, {cols} FROM ({fast_sql(self.limits)})",
                {**self.params, "path": str(path), "max_line": max_line},
            )
            bad = self.cur.execute(
                "SELECT count(*) FROM _staged WHERE source_no = ? AND reason IS NOT NULL", [no]
            ).fetchone()
            usable = bad is not None and bad[0] == 0
        except duckdb.Error:
            usable = False  # malformed JSON, a type the reader cannot take, ...
        if not usable:
            if no >= 0:
                self.cur.execute("DELETE FROM _staged WHERE source_no = ?", [no])
                self.sources[no] = ("(discarded fast attempt)", "line")
            return False
        if progress:
            progress(path.stat().st_size)
        return True

    def stage_chunk(self, name: str, chunk: Chunk) -> None:
        no = self._source_no(name, chunk.unit)
        cols = ", ".join(_STAGED_COLUMNS)
        self.cur.register("_arrow_chunk", chunk.table)
        # Copy into DuckDB first: scans of a native table run on every core, scans of a
        # registered Arrow table mostly on one.
        self.cur.execute("CREATE OR REPLACE TEMP TABLE raw_lines AS SELECT * FROM _arrow_chunk")
        self.cur.unregister("_arrow_chunk")
        self.cur.execute(
            f"INSERT INTO _staged SELECT {no}, {cols} FROM ({precise_sql(self.limits)})",
            self.params,
        )
        self.cur.execute("DROP TABLE raw_lines")

    def land(self, skip_invalid: bool) -> IngestResult:
        cur, result = self.cur, self.result
        counts = cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL) FROM _staged"
        ).fetchone()
        assert counts is not None
        result.messages, result.invalid = int(counts[0]), int(counts[1])
        if result.invalid:
            self._collect_problems()
            if not skip_invalid:
                raise InputError(
                    f"{result.invalid} of {result.messages} message(s) are invalid; "
                    "nothing was written",
                    hint="fix them, or pass --skip-invalid to write the valid ones",
                    problems=result.problems,
                )
        cols = ", ".join(EVENT_COLUMNS)
        names = pa.table({
            "source_no": pa.array(range(len(self.sources)), pa.int32()),
            "source_name": pa.array([n for n, _ in self.sources], pa.string()),
        })
        cur.register("_source_names", names)
        # Within-input duplicates are rare; a distinct count is much cheaper than the window
        # that picks the first copy of each, so the window only runs when needed.
        dup = cur.execute(
            "SELECT count(*) - count(DISTINCT message_id) FROM _staged WHERE reason IS NULL"
        ).fetchone()
        valid = "SELECT * FROM _staged WHERE reason IS NULL"
        if dup and dup[0]:
            valid += (
                " QUALIFY row_number() OVER ("
                "PARTITION BY message_id ORDER BY source_no, line_no, idx) = 1"
            )
        cur.execute("BEGIN TRANSACTION")
        try:
            row = cur.execute(
                f"""
                INSERT INTO events (workspace_id, {cols}, source)
                WITH valid AS ({valid})
                SELECT $ws, {cols}, n.source_name
                FROM valid v JOIN _source_names n USING (source_no)
                ANTI JOIN (SELECT message_id FROM events WHERE workspace_id = $ws) e
                    USING (message_id)
                """,
                {"ws": self.workspace_id},
            ).fetchone()
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.unregister("_source_names")
        result.inserted = int(row[0]) if row else 0
        result.duplicates = result.messages - result.invalid - result.inserted
        return result

    def _collect_problems(self) -> None:
        rows = self.cur.execute(
            "SELECT source_no, line_no, idx, in_batch, reason FROM _staged "
            "WHERE reason IS NOT NULL ORDER BY source_no, line_no, idx "
            f"LIMIT {MAX_REPORTED_PROBLEMS}"
        ).fetchall()
        for source_no, line_no, idx, in_batch, reason in rows:
            name, unit = self.sources[source_no]
            where = f"{name}:{line_no}" if unit == "line" else f"{name}: item {line_no}"
            inner = f" batch[{idx}]:" if in_batch else ""
            self.result.problems.append(f"{where}:{inner} {reason}")
        if self.result.invalid > len(rows):
            self.result.problems.append(
                f"... and {self.result.invalid - len(rows)} more invalid message(s)"
            )

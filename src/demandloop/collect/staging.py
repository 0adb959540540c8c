"""The staging of one ingestion: sources checked in a temporary table, or whole JSON Lines
files inserted directly, then landed in one transaction (see :mod:`.run` for the two ways
in and when each is taken)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from demandloop.collect.files import Chunk, is_json_lines
from demandloop.collect.segment import NOT_BLANK, Limits, fast_sql, precise_sql
from demandloop.collect.segment_fields import EVENT_COLUMNS
from demandloop.collect.surrogates import mended_line
from demandloop.errors import InputError
from demandloop.store.db import Store

Progress = Callable[[int], None]
"""Called with a number of bytes (files) or documents (batches) just staged."""



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
    #: every invalid message as (line, reason), filled when asked for (the collector's
    #: loader dead-letters each refused line with its reason)
    invalid_lines: list[tuple[int, str]] = field(default_factory=list)


class Stager:
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
        self.direct = (0, 0)  # (messages, inserted) of directly inserted files
        self.staged = (0, 0)  # (messages, invalid) in _staged, as last checked
        self.staged_inserted = 0
        self.every_problem = False

    def __enter__(self) -> Stager:
        self._lock = self.store.locked_cursor()
        self.cur = self._lock.__enter__()
        row = self.cur.execute("SELECT nextval('event_loads')").fetchone()
        self.load_id = int(row[0]) if row else 0
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

    def direct_lines(self, path: Path) -> int | None:
        """The number of messages in *path* when it can be inserted directly, else None.

        Direct insertion needs JSON Lines (DuckDB's reader cannot number lines, so it is only
        used for files that turn out entirely valid) with no line over the size limit (the
        reader cannot measure them either: this pass over the raw lines does).
        """
        if not is_json_lines(path):
            return None
        try:
            row = self.cur.execute(
                # chr(31) never appears raw in valid JSON: one column per line
                f"SELECT max(strlen(line)), count(*) FILTER ({NOT_BLANK.format(x='line')}) "
                "FROM read_csv($path, "
                "columns={'line': 'VARCHAR'}, delim='\x1f', quote='', escape='', header=false)",
                {"path": str(path)},
            ).fetchone()
        except duckdb.Error:  # not UTF-8, ...: the precise path says where
            return None
        if row is None or row[0] is None or int(row[0]) > self.limits.max_event_bytes:
            return None
        return int(row[1])

    def restart(self) -> None:
        """Roll back what the transaction wrote so far and open a new one."""
        self.cur.execute("ROLLBACK")
        self.cur.execute("BEGIN TRANSACTION")
        self.direct = (0, 0)

    def insert_direct(self, files: Sequence[tuple[Path, str, int]],
                      progress: Progress | None) -> bool:
        """Read, check and insert JSON Lines files in one statement each, skipping the
        staging copy (about half the cost of an ingestion).

        Runs inside the transaction; False (the caller rolls back) as soon as a message is
        invalid, the reader fails, or a file repeats a messageId: the precise path then
        reports or resolves it.
        """
        cols = ", ".join(EVENT_COLUMNS)
        # error() aborts the statement at the first invalid message: nothing is half-written
        out = ", ".join(
            "CASE WHEN reason IS NULL THEN message_id ELSE error(reason) END" if c == "message_id"
            else c for c in EVENT_COLUMNS
        )
        for path, name, lines in files:
            try:
                row = self.cur.execute(
                    f"""
                    INSERT INTO events (workspace_id, {cols}, source, load_id)
                    SELECT $ws, {out}, $source, $load
                    FROM ({fast_sql(self.limits)}) v
                    ANTI JOIN (SELECT message_id FROM events WHERE workspace_id = $ws) e
                        USING (message_id)
                    """,
                    {**self.params, "path": str(path), "ws": self.workspace_id,
                     "source": name, "load": self.load_id},
                ).fetchone()
            except duckdb.Error:
                return False
            inserted = int(row[0]) if row else 0
            if inserted > lines:  # the reader saw more documents than lines
                return False
            self.direct = (self.direct[0] + lines, self.direct[1] + inserted)
            if progress:
                progress(path.stat().st_size)
        # Inserted copies of one messageId can only come from inside one file (the anti join
        # saw the earlier files): rare, so checked after rather than paid for on every row.
        # Distinct hashes are cheaper to count than distinct strings; a collision only sends
        # the load to the precise path, which finds no duplicate and lands it the same.
        dup = self.cur.execute(
            "SELECT count(*) - count(DISTINCT hash(message_id)) FROM events "
            "WHERE workspace_id = ? AND load_id = ?", [self.workspace_id, self.load_id],
        ).fetchone()
        return not (dup and dup[0])

    def stage_chunk(self, name: str, chunk: Chunk) -> None:
        no = self._source_no(name, chunk.unit)
        cols = ", ".join(_STAGED_COLUMNS)
        self.cur.register("_arrow_chunk", chunk.table)
        # Copy into DuckDB first: scans of a native table run on every core, scans of a
        # registered Arrow table mostly on one.
        self.cur.execute("CREATE OR REPLACE TEMP TABLE raw_lines AS SELECT * FROM _arrow_chunk")
        self.cur.unregister("_arrow_chunk")
        self._mend_surrogates()
        self.cur.execute(
            f"INSERT INTO _staged SELECT {no}, {cols} FROM ({precise_sql(self.limits)})",
            self.params,
        )
        self.cur.execute("DROP TABLE raw_lines")

    def _mend_surrogates(self) -> None:
        """Lines holding half a surrogate pair (an emoji cut by a slice, which Segment's API
        reads as U+FFFD: :mod:`.surrogates`) written again with U+FFFD, as the collector
        takes them. DuckDB's reader refuses them as invalid JSON; only lines with such an
        escape that it refuses are read in Python (a substring test first: no second parse
        of every line)."""
        rows = self.cur.execute(
            "SELECT line_no, raw FROM raw_lines WHERE (contains(raw, '\\ud') OR "
            "contains(raw, '\\uD')) AND NOT json_valid(raw)").fetchall()
        fixed = [(n, m) for n, raw in rows if (m := mended_line(raw)) is not None]
        if not fixed:
            return
        self.cur.register("_mended", pa.table({"line_no": [n for n, _ in fixed],
                                               "raw": [m for _, m in fixed]}))
        self.cur.execute("UPDATE raw_lines SET raw = m.raw FROM _mended m "
                         "WHERE raw_lines.line_no = m.line_no")
        self.cur.unregister("_mended")

    def check(self, skip_invalid: bool) -> None:
        """Count what is staged; raise (before anything is written) if any of it is invalid
        and *skip_invalid* is not set."""
        counts = self.cur.execute(
            "SELECT count(*), count(*) FILTER (WHERE reason IS NOT NULL) FROM _staged"
        ).fetchone()
        assert counts is not None
        self.staged = (int(counts[0]), int(counts[1]))
        result = self.result = IngestResult(messages=self.staged[0], invalid=self.staged[1])
        if result.invalid:
            self._collect_problems()
            if not skip_invalid:
                raise InputError(
                    f"{result.invalid} of {result.messages} message(s) are invalid; "
                    "nothing was written",
                    hint="fix them, or pass --skip-invalid to write the valid ones",
                    problems=result.problems,
                )

    def insert_staged(self) -> None:
        """Insert the valid staged messages (inside the caller's transaction), first copy of
        each messageId only, none already stored."""
        cur = self.cur
        if self.staged[0] == self.staged[1]:
            return
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
        try:
            row = cur.execute(
                f"""
                INSERT INTO events (workspace_id, {cols}, source, load_id)
                WITH valid AS ({valid})
                SELECT $ws, {cols}, n.source_name, $load
                FROM valid v JOIN _source_names n USING (source_no)
                ANTI JOIN (SELECT message_id FROM events WHERE workspace_id = $ws) e
                    USING (message_id)
                """,
                {"ws": self.workspace_id, "load": self.load_id},
            ).fetchone()
        finally:
            cur.unregister("_source_names")
        self.staged_inserted = int(row[0]) if row else 0

    @property
    def totals(self) -> IngestResult:
        """What the whole call did: direct files plus staged sources."""
        r = self.result
        r.messages = self.direct[0] + self.staged[0]
        r.inserted = self.direct[1] + self.staged_inserted
        r.duplicates = r.messages - r.invalid - r.inserted
        return r

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
        if self.every_problem:
            self.result.invalid_lines = [(int(n), str(r)) for n, r in self.cur.execute(
                "SELECT line_no, reason FROM _staged WHERE reason IS NOT NULL "
                "ORDER BY line_no").fetchall()]
        if self.result.invalid > len(rows):
            self.result.problems.append(
                f"... and {self.result.invalid - len(rows)} more invalid message(s)"
            )

"""Append validated Segment-spec messages to ``events``: check, dedupe, insert.

Everything one call is given lands in one transaction: by default a command lands every file
it was given or nothing (``skip_invalid`` lands the valid messages and reports the rest).
Deduplication is on ``message_id`` within the workspace, both inside the input and against
what is already stored. Every row carries the call's ``load_id``.

Two ways in, chosen per file:

* **direct**: DuckDB reads a JSON Lines file with its parallel JSON reader, checks each
  message and inserts it in the same statement, with no staging copy. It cannot number
  lines, so the first invalid message aborts the statement, the transaction is rolled back
  and the file takes the precise path;
* **precise**: the file is split into lines (see :mod:`demandloop.collect.files`), staged
  into a temporary table and every problem is reported as ``FILE:LINE: reason``. Used for
  JSON arrays, pretty-printed documents, batch envelopes, HTTP batches and whenever the
  direct attempt finds anything wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from demandloop.collect.files import Chunk, iter_chunks
from demandloop.collect.segment import Limits
from demandloop.collect.staging import IngestResult, Progress, Stager
from demandloop.errors import InputError
from demandloop.store.db import Store, transaction


@dataclass
class Batch:
    """Raw documents from one source (an HTTP request, a test): ``(line_no, raw)`` rows."""

    source: str
    table: pa.Table
    unit: str = "line"


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
    every_problem: bool = False,
) -> IngestResult:
    """Validate and store the messages of event files (JSONL, JSON, optionally gzipped),
    in *workspace_id* (default: the store's), recorded as coming from *source* (default:
    each file's path); *every_problem* lists every invalid line in ``invalid_lines``.

    Raises :class:`InputError` and writes nothing when any message is invalid (unless
    *skip_invalid*).
    """
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: no such file", hint="check the path")
    with Stager(store, limits, received_at, workspace_id) as st:
        st.every_problem = every_problem
        lines = {path: st.direct_lines(path) for path in paths}
        direct = [path for path in paths if lines[path] is not None]

        def stage(files: Iterable[Path]) -> None:
            for path in files:
                for chunk in iter_chunks(path):
                    st.stage_chunk(source or str(path), chunk)
                    if progress:
                        progress(chunk.bytes_read)
            st.check(skip_invalid)

        stage(path for path in paths if lines[path] is None)
        with transaction(st.cur):
            if direct and not st.insert_direct(
                    [(path, source or str(path), lines[path] or 0) for path in direct],
                    progress):
                st.restart()  # something to report, or a duplicate inside a file
                stage(direct)
            st.insert_staged()
        return st.totals


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
    with Stager(store, limits, received_at, workspace_id) as st:
        for batch in batches:
            st.stage_chunk(batch.source, Chunk(batch.table, 0, batch.unit))
        st.check(skip_invalid)
        with transaction(st.cur):
            st.insert_staged()
        return st.totals


__all__ = ["Batch", "IngestResult", "Progress", "append_events", "ingest_files"]

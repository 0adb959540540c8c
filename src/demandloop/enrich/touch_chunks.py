"""The chunks of visitors a rebuild builds touches in, each read by a filter DuckDB pushes
into its scan of the events.

A rebuild builds the touches of about a million events at a time (its windows and joins
then fit in memory), a visitor's events together. Chunks by a hash of the visitor read
every column of every page and track event for each chunk: a hash is an expression, not a
filter the scan applies, so each chunk's two passes over the events (pages, then tracks)
decompressed all ten million rows' URLs and referrers to keep a tenth of them.

Here a chunk is a range of anonymous ids (``anonymous_id >= lo AND anonymous_id < hi``): a
comparison with constants, which DuckDB applies inside the scan, reading the other columns
of the rows it keeps only (a pass over 10M events: 0.32 s against 0.5 s). The bounds are
quantiles of a sample of the anonymous ids, so the chunks are about equal. A visitor is
its anonymous id, else ``user:`` and its user id, so the visitors named ``user:...`` (the
events without an anonymous id, and any anonymous id that itself starts so) go together
in chunks of their own, by a hash of the visitor: no visitor is ever split between two
chunks. The ids starting with ``user:`` are the range ``['user:', 'user;')`` (``;``
follows ``:``), so even those chunks are read through filters the scan applies.
"""

from __future__ import annotations

import duckdb

from demandloop.store.dialect import literal

#: the visitors named ``user:...`` as a range of anonymous ids (DuckDB compares bytes)
_USER_RANGE = "(anonymous_id >= 'user:' AND anonymous_id < 'user;')"
#: rows sampled to find the bounds
SAMPLE_ROWS = 100_000


def chunks(cur: duckdb.DuckDBPyConnection, ws: str, source: str, size: int) -> list[str]:
    """Queries over *source* (a query of page and track events with ``anonymous_id`` and
    ``visitor``, the rebuild's, over every event of workspace *ws*) that split its rows
    into chunks of about *size* events, a visitor's events in one; ``[source]`` when one
    chunk holds them all."""
    row = cur.execute(f"SELECT count(*), count(*) FILTER (WHERE anonymous_id IS NULL "
                      f"OR {_USER_RANGE}) FROM ({source})").fetchone()
    total, users = (int(row[0]), int(row[1])) if row else (0, 0)
    if total <= size:
        return [source]
    out = [f"SELECT * FROM ({source}) WHERE {where}"
           for where in _ranges(cur, ws, -(-(total - users) // size), total)]
    parts = -(-users // size)
    for i in range(parts if users else 0):
        mine = f" AND hash(visitor) % {parts} = {i}" if parts > 1 else ""
        out.append(f"SELECT * FROM ({source}) WHERE anonymous_id IS NULL{mine} "
                   f"UNION ALL SELECT * FROM ({source}) WHERE {_USER_RANGE}{mine}")
    return out


def _ranges(cur: duckdb.DuckDBPyConnection, ws: str, parts: int, total: int) -> list[str]:
    """*parts* filters on ``anonymous_id`` (ranges, without the ``user:`` ones) that split
    the rebuild's anonymous visitors, bounded by quantiles of a sample of their ids (of
    about :data:`SAMPLE_ROWS` rows: DuckDB's system sampling reads only the vectors it
    keeps)."""
    if parts <= 1:
        return [f"anonymous_id IS NOT NULL AND NOT {_USER_RANGE}"]
    share = min(100.0, 100.0 * SAMPLE_ROWS / max(total, 1))
    sample = f" TABLESAMPLE {share:.6f}% (system)" if share < 100 else ""
    row = cur.execute(
        f"SELECT quantile_disc(anonymous_id, {[k / parts for k in range(1, parts)]}) "
        f"FROM events{sample} WHERE workspace_id = $ws AND type IN ('page', 'track') "
        f"AND anonymous_id IS NOT NULL AND NOT {_USER_RANGE}", {"ws": ws}).fetchone()
    bounds = sorted({str(b) for b in (row[0] if row and row[0] else [])})
    edges: list[str | None] = [None, *bounds, None]
    out = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        where = ["anonymous_id IS NOT NULL", f"NOT {_USER_RANGE}"]
        if lo is not None:
            where.append(f"anonymous_id >= {literal(lo)}")
        if hi is not None:
            where.append(f"anonymous_id < {literal(hi)}")
        out.append(" AND ".join(where))
    return out

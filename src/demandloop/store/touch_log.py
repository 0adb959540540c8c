"""``touch_changes``: what each writer of ``touches`` changed, for the live rescore.

The live rescore (:mod:`demandloop.score.live`) recomputes only the accounts and persons
whose inputs changed since the score it keeps in memory. The touches are its largest
input, rewritten by every resolve, so each run writes down here the accounts and persons of
the touches it removed and of those it wrote, and the net change in their number. A writer
that cannot say what it changed (a rebuild, an erasure) writes ``*``: the next rescore is
then a full one. A run is numbered one above the last; only :data:`KEEP` runs are kept (a
score older than that rescoring everything, as it would anyway after so many changes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

#: runs kept in the log
KEEP = 200


@dataclass
class Changes:
    """Accounts and persons whose touches changed after some run, and the net number of
    touches added."""

    accounts: set[str] = field(default_factory=set)
    persons: set[str] = field(default_factory=set)
    net: int = 0


def last_run(cur: duckdb.DuckDBPyConnection, ws: str) -> int:
    """The newest run in the log (0 when empty)."""
    row = cur.execute("SELECT coalesce(max(run), 0) FROM touch_changes WHERE workspace_id = ?",
                      [ws]).fetchone()
    return int(row[0]) if row else 0


def record(cur: duckdb.DuckDBPyConnection, ws: str, accounts: Iterable[str | None],
           persons: Iterable[str | None], net: int) -> None:
    """Log one run that changed the touches of *accounts* and *persons* (None skipped)."""
    run = last_run(cur, ws) + 1
    rows = [("account", a) for a in set(accounts) if a is not None] + [
        ("person", p) for p in set(persons) if p is not None]
    cur.register("_touch_log", pa.table({
        "entity": pa.array([r[0] for r in rows], pa.string()),
        "entity_id": pa.array([r[1] for r in rows], pa.string())}))
    try:
        cur.execute("INSERT INTO touch_changes SELECT $ws, $run, entity, entity_id, NULL "
                    "FROM _touch_log", {"ws": ws, "run": run})
    finally:
        cur.unregister("_touch_log")
    _close(cur, ws, run, "#", net)


def record_all(cur: duckdb.DuckDBPyConnection, ws: str) -> None:
    """Log a change that may have touched every touch."""
    _close(cur, ws, last_run(cur, ws) + 1, "*", None)


def _close(cur: duckdb.DuckDBPyConnection, ws: str, run: int, kind: str,
           net: int | None) -> None:
    cur.execute("INSERT INTO touch_changes VALUES ($ws, $run, $kind, NULL, $net)",
                {"ws": ws, "run": run, "kind": kind, "net": net})
    cur.execute("DELETE FROM touch_changes WHERE workspace_id = $ws AND run <= $old",
                {"ws": ws, "old": run - KEEP})


def since(cur: duckdb.DuckDBPyConnection, ws: str, run: int) -> Changes | None:
    """What changed in the runs after *run*, or None when that cannot be told (a ``*``
    run, or runs after *run* no longer kept)."""
    bounds = cur.execute("SELECT min(run), max(run) FROM touch_changes WHERE workspace_id = ?",
                         [ws]).fetchone()
    first, newest = bounds if bounds else (None, None)
    if newest is None or int(newest) <= run:
        # nothing logged after *run*; a log that went back (emptied) cannot be trusted
        return Changes() if (newest or 0) == run else None
    if int(first) > run + 1:  # runs are numbered one after another: some are gone
        return None
    row = cur.execute(
        "SELECT count(*) FILTER (WHERE entity = '*'), "
        "coalesce(sum(net) FILTER (WHERE entity = '#'), 0) FROM touch_changes "
        "WHERE workspace_id = $ws AND run > $run", {"ws": ws, "run": run}).fetchone()
    if row is None or row[0]:
        return None
    out = Changes(net=int(row[1]))
    for entity, entity_id in cur.execute(
            "SELECT DISTINCT entity, entity_id FROM touch_changes WHERE workspace_id = $ws "
            "AND run > $run AND entity IN ('account', 'person')",
            {"ws": ws, "run": run}).fetchall():
        (out.accounts if entity == "account" else out.persons).add(str(entity_id))
    return out

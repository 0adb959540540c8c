"""Reads of the score stage's snapshots, on a reader cursor (reads run beside the writer)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from demandloop.store.db import Store


def touch_span(store: Store) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The first and the last touch's time (both None before any touch)."""
    with store.reader() as cur:
        row = cur.execute("SELECT min(ts), max(ts) FROM touches WHERE workspace_id = ?",
                          [store.workspace_id]).fetchone()
    return (row[0], row[1]) if row else (None, None)


def snapshot_count(store: Store, entity: str = "account") -> int:
    """How many distinct score snapshots (``as_of``) are stored for *entity*."""
    with store.reader() as cur:
        row = cur.execute("SELECT count(DISTINCT as_of) FROM scores WHERE workspace_id = ? "
                          "AND entity = ?", [store.workspace_id, entity]).fetchone()
    return int(row[0]) if row else 0


def latest(store: Store, entity: str = "account") -> pd.DataFrame:
    """The latest snapshot of *entity*: entity_id, as_of, fit, engagement, intent, stage,
    details."""
    with store.reader() as cur:
        return cur.execute(
            "SELECT entity_id, as_of, fit, engagement, intent, stage, details FROM scores "
            "WHERE workspace_id = $ws AND entity = $e AND as_of = (SELECT max(as_of) "
            "FROM scores WHERE workspace_id = $ws AND entity = $e)",
            {"ws": store.workspace_id, "e": entity}).df()


def keep_one_per_day(store: Store) -> int:
    """Delete the snapshots taken earlier on the latest snapshot's day, keeping the latest
    (the server's live loop scores every few seconds while events arrive: stored whole, that
    would be a snapshot of every account each time). History keeps one snapshot a day, the
    day's last; stage changes keep their own times. Returns the rows deleted."""
    with store.writer() as cur:
        row = cur.execute("SELECT max(as_of) FROM scores WHERE workspace_id = ?",
                          [store.workspace_id]).fetchone()
        if not row or row[0] is None:
            return 0
        gone = cur.execute(
            "DELETE FROM scores WHERE workspace_id = $ws AND as_of < $at "
            "AND as_of >= date_trunc('day', $at::TIMESTAMP)",
            {"ws": store.workspace_id, "at": row[0]}).fetchone()
    return int(gone[0]) if gone else 0

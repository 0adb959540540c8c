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
    """Delete the snapshots of the latest two's days that are neither one of those two nor
    their day's last (the server's live loop scores every few seconds while events arrive:
    stored whole, that would be a snapshot of every account each time). History keeps one
    snapshot a day, the day's last; the latest two stay for the loop (workflows compare
    the latest with the one before, and the next score may be made from it, see
    :func:`demandloop.score.run.run`); stage changes keep their own times. Returns the rows
    deleted."""
    ws = {"ws": store.workspace_id}
    with store.writer() as cur:
        # the snapshots from the day of the one before the latest on, in order
        taken = sorted(r[0] for r in cur.execute(
            "SELECT DISTINCT as_of FROM scores WHERE workspace_id = $ws AND as_of >= "
            "(SELECT date_trunc('day', min(as_of)) FROM (SELECT DISTINCT as_of FROM scores "
            "WHERE workspace_id = $ws ORDER BY as_of DESC LIMIT 2))", ws).fetchall())
        last_of_day = {at.date(): at for at in taken}  # (in order: the day's last stays)
        gone = [at for at in taken[:-2] if last_of_day[at.date()] != at]
        if not gone:
            return 0
        row = cur.execute("DELETE FROM scores WHERE workspace_id = $ws AND as_of IN "
                          "(SELECT unnest($gone::TIMESTAMP[]))", {**ws, "gone": gone}
                          ).fetchone()
    return int(row[0]) if row else 0

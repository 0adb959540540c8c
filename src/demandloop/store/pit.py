"""Point in time: a workspace as it was known at a date, for honest backtests.

A score "as of" a past date must see only what was known then. Derived tables (persons,
account matches, touches) cannot simply be filtered: an identity, contact or office range
that arrived later would still attribute earlier visits. So :func:`known_at` copies into an
in-memory store only the *inputs* known at the date, and the caller rebuilds the derived
tables there with the ordinary ``resolve``:

* events that happened by then;
* CRM accounts and contacts created by then (their ``created_at``: the file's creation
  date, else when they were imported), and accounts from IP ranges known by then;
* IP ranges known by then (``known_at``: the file's ``known_since``, else the import);
* opportunities created by then, open unless closed by then; leads created by then;
* spend and campaigns up to then; stage changes and predictions recorded before then.

Accounts that ``resolve`` made from email domains or ``group`` calls are left out: the
rebuild makes them again from what was known. Firmographics are not versioned: a CRM
account known at the date has the values it has now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from demandloop.store.db import Store

#: account sources written by ``resolve`` (rebuilt, never copied)
RESOLVED_SOURCES = ("group", "crm", "email_domain")

# table -> the rows known at $at (every query also filters on the workspace)
_KNOWN: dict[str, str] = {
    "events": "SELECT * FROM events WHERE workspace_id = $ws AND timestamp <= $at",
    "persons": "SELECT * FROM persons WHERE workspace_id = $ws AND source IS DISTINCT FROM "
               "'identity' AND coalesce(created_at, $at) <= $at",
    "accounts": "SELECT * FROM accounts WHERE workspace_id = $ws AND coalesce(source, '') "
                f"NOT IN {RESOLVED_SOURCES} AND coalesce(created_at, $at) <= $at",
    "ip_ranges": "SELECT * FROM ip_ranges WHERE workspace_id = $ws "
                 "AND coalesce(known_at, $at) <= $at",
    # what was open then is open, whatever happened to it later
    "opportunities": "SELECT * REPLACE ("
                     "  is_closed AND closed_at <= $at AS is_closed,"
                     "  won AND is_closed AND closed_at <= $at AS won,"
                     "  CASE WHEN closed_at <= $at THEN closed_at END AS closed_at,"
                     "  CASE WHEN NOT is_closed OR closed_at <= $at THEN stage END AS stage)"
                     " FROM opportunities WHERE workspace_id = $ws"
                     " AND coalesce(created_at, closed_at) <= $at",
    "leads": "SELECT * FROM leads WHERE workspace_id = $ws AND created_at <= $at",
    "campaigns": "SELECT * FROM campaigns WHERE workspace_id = $ws "
                 "AND coalesce(started_at, $at) <= $at",
    "spend": "SELECT * FROM spend WHERE workspace_id = $ws AND date <= $at::DATE",
    "stage_changes": "SELECT * FROM stage_changes WHERE workspace_id = $ws "
                     "AND changed_at < $at",
    "predictions": "SELECT * FROM predictions WHERE workspace_id = $ws AND trained_at <= $at",
    "ip_matches": "SELECT * FROM ip_matches WHERE workspace_id = $ws AND message_id IN "
                  "(SELECT message_id FROM events WHERE workspace_id = $ws "
                  "AND timestamp <= $at)",
}


@contextmanager
def known_at(store: Store, at: dt.datetime) -> Iterator[Store]:
    """An in-memory copy of *store*'s inputs as known at *at* (see the module docstring),
    closed on exit. Run ``resolve`` on it before scoring."""
    past = Store.open(":memory:", workspace_id=store.workspace_id)
    try:
        params: dict[str, Any] = {"ws": store.workspace_id, "at": at}
        with store.reader() as cur:
            for table, query in _KNOWN.items():
                # a stream of record batches, read whole by the insert before the next query
                rows = cur.execute(query, params).arrow()
                past.con.register("_rows", rows)
                past.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _rows")
                past.con.unregister("_rows")
        yield past
    finally:
        past.close()


def known_counts(store: Store, at: dt.datetime) -> dict[str, tuple[int, int]]:
    """Per input (accounts, contacts, ip_ranges, opportunities): (known at *at*, stored
    now), so a backtest can say how much of today's data it could not use."""
    params = {"ws": store.workspace_id, "at": at}
    out = {}
    with store.reader() as cur:
        for name, table in (("accounts", "accounts"), ("contacts", "persons"),
                            ("ip_ranges", "ip_ranges"), ("opportunities", "opportunities")):
            base = {"accounts": f"coalesce(source, '') NOT IN {RESOLVED_SOURCES}",
                    "persons": "source IS DISTINCT FROM 'identity'"}.get(table, "true")
            when = {"ip_ranges": "known_at", "opportunities":
                    "coalesce(created_at, closed_at)"}.get(table, "created_at")
            row = cur.execute(
                f"SELECT count(*) FILTER (WHERE coalesce({when}, $at) <= $at), count(*) "
                f"FROM {table} WHERE workspace_id = $ws AND {base}", params).fetchone()
            out[name] = (int(row[0]), int(row[1])) if row else (0, 0)
    return out


def copy_snapshot(past: Store, store: Store, at: dt.datetime) -> bool:
    """Copy the score snapshot at *at* from the point-in-time store *past* into *store*,
    replacing any snapshot already stored at *at*, and its stage changes when they extend
    the history *store* records. Returns whether they were recorded.

    A snapshot before the last recorded change (a backtest, ``score --as-of`` a month ago)
    keeps the history as it is: its changes were counted from the stages before *at*, and
    the change recorded next already counts the same move, so recording both wrote each
    move twice, and workflows fired on the copies as new signals (an alert, an enrolment
    for a stage reached weeks ago)."""
    params = {"ws": store.workspace_id, "at": at}
    # whole tables, not streams: a second query on a connection ends the first one's stream
    scores = past.con.execute("SELECT * FROM scores WHERE workspace_id = $ws "
                              "AND as_of = $at", params).fetch_arrow_table()
    moves = past.con.execute("SELECT * FROM stage_changes WHERE workspace_id = $ws "
                             "AND changed_at = $at", params).fetch_arrow_table()
    with store.writer() as cur:
        later = cur.execute("SELECT count(*) FROM stage_changes WHERE workspace_id = $ws "
                            "AND changed_at > $at", params).fetchone()
        record = not (later and later[0])
        cur.register("_scores", scores)
        cur.register("_moves", moves)
        cur.execute("DELETE FROM scores WHERE workspace_id = $ws AND as_of = $at", params)
        cur.execute("INSERT INTO scores BY NAME SELECT * FROM _scores")
        if record:
            cur.execute("DELETE FROM stage_changes WHERE workspace_id = $ws "
                        "AND changed_at = $at", params)
            cur.execute("INSERT INTO stage_changes BY NAME SELECT * REPLACE "
                        "(nextval('stage_change_seq') AS seq) FROM _moves")
        cur.unregister("_scores")
        cur.unregister("_moves")
    return record

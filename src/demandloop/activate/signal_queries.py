"""What workflows fire on, read from the store: stage changes, the last two score
snapshots, track events with their account, and people's accounts."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from demandloop.activate import sequence_queries as mailstore
from demandloop.activate.workflows import Inputs

if TYPE_CHECKING:
    from demandloop.workspace import Workspace


def read_inputs(ws: Workspace, since: dt.datetime | None,
                events_since: dt.datetime | None, *, after_change: int = 0,
                after_load: int = 0, accounts: bool = True, all_accounts: bool = True,
                previous: bool = True, people: bool = True) -> Inputs:
    """The signals since the cursors (stage changes: those written after the one numbered
    *after_change* (``seq``), else those changed after *since*; for events the loads
    after *after_load*, else those received after *events_since*), with (when asked: each
    is a read of every account or person, seconds at 100k accounts, on every run of the
    live loop) the accounts' current rows (every account's with *all_accounts*, else only
    those a signal names: the conditions of a firing read its own account's row), the
    previous snapshot's scores and people's accounts."""
    store = ws.store
    with store.reader() as cur:
        ws_id = {"ws": store.workspace_id}
        changes = cur.execute(
            "SELECT entity, entity_id, from_stage, to_stage, changed_at, reasons FROM "
            "stage_changes WHERE workspace_id = $ws AND CASE WHEN $after > 0 THEN "
            "coalesce(seq, 0) > $after ELSE ($since::TIMESTAMP IS NULL OR "
            "changed_at > $since::TIMESTAMP) END", {**ws_id, "since": since,
                                                    "after": after_change}).df()
        snaps = cur.execute("SELECT DISTINCT as_of FROM scores WHERE workspace_id = $ws AND "
                            "entity = 'account' ORDER BY as_of DESC LIMIT 2", ws_id).fetchall()
        before = pd.DataFrame(columns=["account_id"])
        if previous and len(snaps) == 2:
            before = cur.execute(
                "SELECT entity_id AS account_id, fit, engagement, intent, "
                "(details ->> '$.surging')::BOOLEAN AS surging FROM scores WHERE "
                "workspace_id = $ws AND entity = 'account' AND as_of = $at",
                {"ws": store.workspace_id, "at": snaps[1][0]}).df()
        events = read_events(cur, store.workspace_id, events_since, after_load=after_load)
        theirs = dict(cur.execute("SELECT person_id, account_id FROM persons WHERE "
                                  "workspace_id = $ws AND account_id IS NOT NULL",
                                  ws_id).fetchall()) if people else {}
    rows = pd.DataFrame()
    if accounts and all_accounts:
        rows = ws.audience_rows("account")
    elif accounts:
        named = set(changes.loc[changes["entity"] == "account", "entity_id"].astype(str))
        named |= set(events["account_id"].dropna().astype(str))
        # (people's changes fire only through their accounts, read when they can fire)
        named |= {theirs[p] for p in changes.loc[changes["entity"] == "person", "entity_id"]
                  if p in theirs}
        rows = ws.audience_rows("account", ids=sorted(named))
    if snaps and accounts:
        rows = rows.assign(as_of=snaps[0][0])
    return Inputs(changes=changes, accounts=rows, previous=before, events=events,
                  person_accounts=theirs)


def newest_load(cur: duckdb.DuckDBPyConnection, workspace: str
                ) -> tuple[dt.datetime | None, int]:
    """The newest receipt time and the highest ``load_id`` stored (None and 0 when empty).
    Read *before* the events a cursor moves past: a load committed between the two reads
    is then read again next time (job ids make that harmless), never skipped."""
    row = cur.execute("SELECT max(received_at), coalesce(max(load_id), 0) FROM events "
                      "WHERE workspace_id = $ws", {"ws": workspace}).fetchone()
    return (row[0], int(row[1])) if row else (None, 0)


def newest_change_seq(cur: duckdb.DuckDBPyConnection, workspace: str) -> int:
    """The highest stage change ``seq`` stored (0 when none). A rescore's changes are
    stamped with its time, its newest touch: one that brings no newer touch (an event from a
    visitor whose clock is behind) writes its changes at the same time as the last one's,
    and a time cursor already there never reads them; their numbers are always higher."""
    row = cur.execute("SELECT coalesce(max(seq), 0) FROM stage_changes WHERE workspace_id "
                      "= $ws", {"ws": workspace}).fetchone()
    return int(row[0]) if row else 0


def read_events(cur: duckdb.DuckDBPyConnection, workspace: str, since: dt.datetime | None,
                names: list[str] | None = None, inclusive: bool = False, *,
                after_load: int = 0) -> pd.DataFrame:
    """Track events with their account: the resolved touch's, else (for events not
    resolved yet, seconds old) the group call's, the known person's, or the account of the
    email domain the event carries.

    Which events: with *after_load* > 0, those of the loads after it (``load_id``, numbered
    in commit order by the one writer); else those received after *since* (at or after,
    when *inclusive*). A cursor must be a load, not a receipt time: an event stamped when
    it was received can be loaded after one received later (a booking's events are logged
    once its invites are sent), and a time cursor already past it never reads it."""
    # the new events first, then their joins: joined first, the whole events table was
    # matched against every touch (0.25 s at 4M events, on every run of the live loop)
    which = ("e.load_id > $after" if after_load > 0 else
             "($since::TIMESTAMP IS NULL OR e.received_at > $since::TIMESTAMP "
             "OR ($inclusive AND e.received_at = $since::TIMESTAMP))")
    events: pd.DataFrame = cur.execute(
        "WITH e AS MATERIALIZED (SELECT * FROM events e WHERE e.workspace_id = $ws AND "
        f"e.type = 'track' AND {which} AND "
        "($names::VARCHAR[] IS NULL OR list_contains($names::VARCHAR[], e.event))) "
        "SELECT e.message_id, e.event, e.timestamp AS ts, e.received_at, coalesce("
        "t.account_id, g.account_id, p.account_id, d.account_id) AS account_id "
        "FROM e LEFT JOIN touches t ON t.workspace_id = e.workspace_id AND "
        "t.message_id = e.message_id "
        "LEFT JOIN accounts g ON g.workspace_id = e.workspace_id AND "
        "g.account_id = lower(e.group_id) "
        f"{mailstore.EVENT_PERSON_JOIN} "
        "LEFT JOIN accounts d ON d.workspace_id = e.workspace_id AND d.domain = "
        "split_part(lower(coalesce(e.properties ->> '$.email', e.context ->> '$.traits.email', "
        "e.traits ->> '$.email')), '@', 2) "
        "QUALIFY row_number() OVER (PARTITION BY e.message_id) = 1",
        {"ws": workspace, "names": names, **({"after": after_load} if after_load > 0 else
                                             {"since": since, "inclusive": inclusive})}).df()
    return events

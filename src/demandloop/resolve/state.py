"""Where the last resolve stopped, and whether the next one may go on from there.

``resolve`` is incremental: it reads only the events loaded since its last run (their
``load_id`` above ``loaded_to``) and reaches back from them to what they change. That is
only the same as rebuilding everything when nothing else changed since, so a run starts
from scratch when

* it never ran (or its state was cleared: a Parquet import, a point-in-time copy);
* events it had read are gone (retention, erasure): fewer events up to ``loaded_to`` than
  it had read;
* its **fingerprint** differs: the settings it runs with (identity, channels, topics, IP
  policy), the CRM accounts, contacts and IP ranges it matches against, and
  :data:`VERSION`, bumped whenever the resolve logic changes what it stores.

The fingerprint reads only what resolve never writes (a CRM contact's own account and title
are kept apart from what resolve completes them with), so a run never invalidates itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import duckdb
import orjson

from demandloop.config import Settings

#: bumped whenever what resolve stores for the same inputs changes
#: 2: touches carry their page's path; 3: one SQL for DuckDB and Spark (a tracked
#: activity finds its visit's page through a window, not an ASOF join); 4: titles and
#: companies kept in ``described_calls`` (a store upgraded to it rebuilds to fill it in);
#: 5: the account each group call names kept with it, and the name and source of the
#: accounts resolve made kept up to date (see resolve.person_queries.refresh_accounts)
VERSION = 5

#: the events loaded after ``$since`` (every event, rows without a load too, when ``$since``
#: is negative: a rebuild). Written on the column itself, not as ``coalesce(load_id, 0) >
#: $since``: DuckDB skips row groups by their ``load_id`` range only then (an expression
#: over the column read every row group, 0.28 s against 3 ms at 10M events)
LOADED_AFTER = "(load_id > $since OR $since < 0)"

#: account sources resolve itself writes (see resolve.accounts): never matched by name
RESOLVED_ACCOUNT_SOURCES = ("group", "crm", "email_domain")
#: the same as a SQL list, for ``source IN (...)``
RESOLVED_SOURCES_SQL = ", ".join(f"'{s}'" for s in RESOLVED_ACCOUNT_SOURCES)

_INPUTS = f"""
SELECT
    (SELECT count(*) || ':' || coalesce(bit_xor(hash(account_id, name)), 0) FROM accounts
     WHERE workspace_id = $ws AND coalesce(source, '') NOT IN ({RESOLVED_SOURCES_SQL})),
    (SELECT count(*) || ':'
            || coalesce(bit_xor(hash(person_id, email, crm_account_id, crm_title)), 0)
     FROM persons WHERE workspace_id = $ws AND coalesce(source, '') <> 'identity'),
    (SELECT count(*) || ':' || coalesce(bit_xor(hash(start_ip, end_ip, account_id)), 0)
     FROM ip_ranges WHERE workspace_id = $ws)
"""


@dataclass(frozen=True)
class State:
    loaded_to: int
    events_seen: int
    fingerprint: str


def fingerprint(cur: duckdb.DuckDBPyConnection, ws: str, settings: Settings) -> str:
    """A digest of everything besides new events that decides what resolve stores."""
    row = cur.execute(_INPUTS, {"ws": ws}).fetchone()
    what = {
        "version": VERSION,
        "identity": settings.identity.model_dump(mode="json"),
        "enrich": settings.enrich.model_dump(mode="json"),
        "ip": settings.collect.ip,
        "inputs": list(row or ()),
    }
    return hashlib.sha256(orjson.dumps(what, option=orjson.OPT_SORT_KEYS)).hexdigest()


def events_upto(cur: duckdb.DuckDBPyConnection, ws: str, loaded_to: int) -> int:
    """How many stored events were loaded up to *loaded_to* (``load_id``)."""
    row = cur.execute("SELECT count(*) FROM events WHERE workspace_id = $ws "
                      "AND coalesce(load_id, 0) <= $to", {"ws": ws, "to": loaded_to}).fetchone()
    return int(row[0]) if row else 0


def last_load(cur: duckdb.DuckDBPyConnection, ws: str) -> int:
    """The highest ``load_id`` stored (0 before any event)."""
    row = cur.execute("SELECT coalesce(max(load_id), 0) FROM events WHERE workspace_id = $ws",
                      {"ws": ws}).fetchone()
    return int(row[0]) if row else 0


def read(cur: duckdb.DuckDBPyConnection, ws: str) -> State | None:
    row = cur.execute("SELECT loaded_to, events_seen, fingerprint FROM resolve_state "
                      "WHERE workspace_id = $ws", {"ws": ws}).fetchone()
    return State(int(row[0]), int(row[1]), str(row[2])) if row else None


def may_continue(cur: duckdb.DuckDBPyConnection, ws: str, current: str) -> State | None:
    """The last run's state when this run may go on from it (its fingerprint is *current*,
    see :func:`fingerprint`), else None (rebuild)."""
    state = read(cur, ws)
    if state is None or state.fingerprint != current:
        return None
    if events_upto(cur, ws, state.loaded_to) != state.events_seen:
        return None
    return state


def write(cur: duckdb.DuckDBPyConnection, ws: str, current: str, loaded_to: int) -> None:
    """Record this run (after its writes, in its transaction) with the fingerprint it
    started from: resolve writes nothing the fingerprint reads."""
    cur.execute("DELETE FROM resolve_state WHERE workspace_id = $ws", {"ws": ws})
    cur.execute("INSERT INTO resolve_state VALUES ($ws, $to, $seen, $fp, $at)", {
        "ws": ws, "to": loaded_to, "seen": events_upto(cur, ws, loaded_to),
        "fp": current,
        "at": dt.datetime.now(dt.UTC).replace(tzinfo=None)})


def clear(cur: duckdb.DuckDBPyConnection, ws: str) -> None:
    """Make the next resolve rebuild everything (the derived tables were replaced)."""
    cur.execute("DELETE FROM resolve_state WHERE workspace_id = $ws", {"ws": ws})

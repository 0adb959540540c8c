"""The SQL of resolve's persons: what their events say about them (group calls naming a
company, identify traits naming a title), and the writes of persons, new accounts and
account matches. On the writer's cursor, inside resolve's transaction."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pandas as pd
import pyarrow as pa

from demandloop.resolve.queries import TITLE, WEBSITE
from demandloop.resolve.state import LOADED_AFTER, RESOLVED_SOURCES_SQL
from demandloop.store.arrow import typed_table
from demandloop.store.dialect import SqlEngine, inline

Cursor = duckdb.DuckDBPyConnection

_TYPES = {"confidence": pa.float64(), "emails": pa.list_(pa.string())}


#: the identify calls naming a title and the group calls of users among the events loaded
#: after ``$since``: what :data:`described_calls` keeps of them
CALLS = f"""
SELECT * FROM (
    SELECT message_id, type, user_id,
           CASE WHEN type = 'identify' THEN {TITLE} END AS title,
           CASE WHEN type = 'group' THEN {WEBSITE} END AS website,
           CASE WHEN type = 'group' THEN traits ->> '$.name' END AS group_name, timestamp
    FROM events WHERE workspace_id = $ws AND {LOADED_AFTER} AND user_id IS NOT NULL
      AND type IN ('identify', 'group'))
WHERE type = 'group' OR title IS NOT NULL"""

_INSERT_CALLS = ("INSERT INTO described_calls (workspace_id, message_id, type, user_id, title, "
                 "website, group_name, timestamp) SELECT $ws, * FROM ({source})")


def record_calls(cur: Cursor, ws: str, since: int, full: bool, domain_of: Callable[[str], str],
                 lake: SqlEngine | None = None) -> None:
    """Keep in ``described_calls`` what the identify and group calls loaded after *since*
    say about their users (all of them, from *lake*'s events when given, for a rebuild),
    with the account each group call names (``domain``: *domain_of* its website, ``''``
    for none).

    Hand-kept rather than read from the events when a person is reached: the events table
    is scanned for a few users' calls in full (two scans, 0.35 s of a 10M-event store's
    incremental run with one thread), where these rows are 3 % of it."""
    w = {"ws": ws}
    if full:
        cur.execute("DELETE FROM described_calls WHERE workspace_id = $ws", w)
    if lake is None:
        cur.execute(_INSERT_CALLS.format(source=CALLS), {"ws": ws, "since": since})
    else:
        cur.register("_lake_calls", lake.query(inline(CALLS, {"ws": ws, "since": since})))
        try:
            cur.execute(_INSERT_CALLS.format(source="SELECT * FROM _lake_calls"), w)
        finally:
            cur.unregister("_lake_calls")
    # the new group calls' websites, each canonicalised once (in Python: see domains)
    sites = [str(r[0]) for r in cur.execute(
        "SELECT DISTINCT website FROM described_calls WHERE workspace_id = $ws "
        "AND type = 'group' AND domain IS NULL AND website IS NOT NULL", w).fetchall()]
    if sites:
        cur.register("_sites", pa.table({"website": pa.array(sites, pa.string()),
                                         "domain": pa.array([domain_of(x) for x in sites],
                                                            pa.string())}))
        try:
            cur.execute("UPDATE described_calls d SET domain = s.domain FROM _sites s "
                        "WHERE d.workspace_id = $ws AND d.type = 'group' "
                        "AND d.domain IS NULL AND d.website = s.website", w)
        finally:
            cur.unregister("_sites")


def refresh_accounts(cur: Cursor, ws: str) -> None:
    """Keep the name and source of every account resolve made what the whole store says,
    so that a run that reaches a few persons leaves what a rebuild leaves:

    * ``name``: the company name of the latest group call (by time, then message id) that
      names the account, once any does (a later call without a name keeps it). An account
      first found from a person's email domain is named when a group call names it later.
    * ``source``: the source of its match with the first person (by id), as the run that
      made it wrote; unchanged while nobody matches it (it is then kept only because
      something else names it, see ``_forget_unmatched``).

    Two grouped reads over ``described_calls``' group rows and the persons' matches, and
    an update of the rows that differ (usually none)."""
    cur.execute(f"""UPDATE accounts a SET name = coalesce(n.name, a.name),
            source = coalesce(n.source, a.source), updated_at = now()::TIMESTAMP
        FROM (SELECT a.account_id, g.name, m.source
              FROM (SELECT account_id, name, source FROM accounts
                    WHERE workspace_id = $ws AND source IN ({RESOLVED_SOURCES_SQL})) a
              LEFT JOIN (SELECT domain, arg_max(group_name, (timestamp, message_id)) AS name
                         FROM described_calls WHERE workspace_id = $ws AND type = 'group'
                           AND group_name IS NOT NULL AND domain <> ''
                         GROUP BY domain) g ON g.domain = a.account_id
              LEFT JOIN (SELECT account_id, arg_min(source, subject) AS source
                         FROM account_matches WHERE workspace_id = $ws
                           AND subject_kind = 'person' GROUP BY account_id) m
                ON m.account_id = a.account_id
              WHERE a.name IS DISTINCT FROM coalesce(g.name, a.name)
                 OR a.source IS DISTINCT FROM coalesce(m.source, a.source)) n
        WHERE a.workspace_id = $ws AND a.account_id = n.account_id""", {"ws": ws})


def _of_users(cur: Cursor, sql: str, ws: str, users: list[str] | None) -> pd.DataFrame:
    """Run *sql* with ``{users}`` standing for the condition on ``user_id`` that keeps
    *users* (every user when None)."""
    if users is None:
        return cur.execute(sql.format(users="TRUE"), {"ws": ws}).df()
    cur.register("_users", pa.table({"user_id": pa.array(users, pa.string())}))
    try:
        return cur.execute(sql.format(users="user_id IN (SELECT user_id FROM _users)"),
                           {"ws": ws}).df()
    finally:
        cur.unregister("_users")


def described(cur: Cursor, ws: str, since: int) -> list[str]:
    """The identifiers (``user:``/``anon:``) of the identify and group calls loaded after
    *since*: their persons' titles and companies may have changed."""
    return [str(r[0]) for r in cur.execute(
        "SELECT DISTINCT CASE WHEN user_id IS NOT NULL THEN 'user:' || user_id "
        "ELSE 'anon:' || anonymous_id END FROM events WHERE workspace_id = $ws "
        f"AND {LOADED_AFTER} AND type IN ('identify', 'group')",
        {"ws": ws, "since": since}).fetchall() if r[0] is not None]


def group_calls(cur: Cursor, ws: str, users: list[str] | None) -> pd.DataFrame:
    """The accounts group calls of *users* (every user when None) name: ``user_id,
    domain``, in time order (from ``described_calls``: :func:`record_calls` first)."""
    return _of_users(cur, "SELECT user_id, domain FROM described_calls "
                     "WHERE workspace_id = $ws AND type = 'group' AND domain <> '' "
                     "AND {users} ORDER BY timestamp, message_id", ws, users)


def titles(cur: Cursor, ws: str, users: list[str] | None) -> pd.DataFrame:
    """The title each identify call of *users* gave: ``user_id, title, timestamp``, in time
    order (from ``described_calls``: :func:`record_calls` first)."""
    return _of_users(cur, "SELECT user_id, title, timestamp FROM described_calls "
                     "WHERE workspace_id = $ws AND type = 'identify' AND {users} "
                     "ORDER BY timestamp, message_id", ws, users)


def write_persons(cur: Cursor, ws: str, persons: pd.DataFrame, new_accounts: pd.DataFrame,
                  matches: pd.DataFrame, gone: list[str], scope: list[str] | None) -> None:
    """Write the persons resolve found (*persons*: one row each), the accounts their
    matches created, and their account matches; remove the identity persons in *gone*.
    *scope*: the persons whose matches are replaced (None: every person's)."""
    frames = {
        "_persons": typed_table(persons[["person_id", "email", "emails", "title", "seniority",
                                   "job_function", "account_id"]], _TYPES),
        "_new_accounts": typed_table(new_accounts[["account_id", "domain", "name", "source"]],
                                     _TYPES),
        "_matches": typed_table(matches, _TYPES),
        "_gone": pa.table({"person_id": pa.array(gone, pa.string())}),
        "_scope": pa.table({"person_id": pa.array(scope or [], pa.string())}),
    }
    for name, table in frames.items():
        cur.register(name, table)
    w = {"ws": ws}
    try:
        cur.execute(
            "INSERT INTO accounts (workspace_id, account_id, domain, name, source, "
            "created_at, updated_at) SELECT $ws, account_id, domain, name, source, "
            "now()::TIMESTAMP, now()::TIMESTAMP FROM _new_accounts "
            "ANTI JOIN (SELECT account_id FROM accounts WHERE workspace_id = $ws) "
            "USING (account_id)", w)
        # Identity persons are written anew (an UPDATE of each row through the key was
        # 0.75 s for 28k persons), keeping when each was first found; persons an earlier
        # run found but this one did not are gone (e.g. un-merged).
        cur.execute("CREATE OR REPLACE TEMP TABLE _seen AS SELECT person_id, created_at "
                    "FROM persons WHERE workspace_id = $ws AND source = 'identity' "
                    "AND person_id IN (SELECT person_id FROM _persons)", w)
        cur.execute("DELETE FROM persons WHERE workspace_id = $ws AND source = 'identity' "
                    "AND (person_id IN (SELECT person_id FROM _gone) "
                    "OR person_id IN (SELECT person_id FROM _persons))", w)
        # CRM contacts: what resolve finds, over what the CRM said (crm_*) only where it
        # finds nothing, never over what an earlier run wrote (runs do not depend on order).
        # Only rows that change: updated in place where their list of emails stays (an
        # UPDATE of a list took 15 s for 177k contacts), rewritten whole where it changes.
        # Rewriting every row cost a first rebuild 7 s (270k contacts, each filling in its
        # persona): deleting through the primary key, and committing the deleted keys.
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE _crm_rows AS SELECT t.* REPLACE ("
            "r.emails AS emails, coalesce(t.email, r.email) AS email, "
            "coalesce(r.title, t.crm_title) AS title, r.seniority AS seniority, "
            "r.job_function AS job_function, "
            "coalesce(r.account_id, t.crm_account_id) AS account_id, "
            "now()::TIMESTAMP AS updated_at), t.emails IS DISTINCT FROM r.emails AS lists "
            "FROM persons t JOIN _persons r ON t.person_id = r.person_id "
            "WHERE t.workspace_id = $ws AND coalesce(t.source, '') <> 'identity' "
            "AND (t.emails IS DISTINCT FROM r.emails OR t.email IS NULL "
            "OR t.title IS DISTINCT FROM coalesce(r.title, t.crm_title) "
            "OR t.seniority IS DISTINCT FROM r.seniority "
            "OR t.job_function IS DISTINCT FROM r.job_function "
            "OR t.account_id IS DISTINCT FROM coalesce(r.account_id, t.crm_account_id))", w)
        # CRM contacts this run no longer finds as a person of their own (merged into
        # another: their email now names someone else) go back to what the CRM said, as a
        # rebuild leaves them; they kept what the run that last found them wrote
        lost = ("t.person_id NOT IN (SELECT person_id FROM _persons)" if scope is None
                else "t.person_id IN (SELECT person_id FROM _gone)")
        cur.execute(
            "INSERT INTO _crm_rows SELECT t.* REPLACE ([t.email] AS emails, "
            "t.crm_title AS title, NULL AS seniority, NULL AS job_function, "
            "t.crm_account_id AS account_id, now()::TIMESTAMP AS updated_at), "
            "t.emails IS DISTINCT FROM [t.email] AS lists FROM persons t "
            "WHERE t.workspace_id = $ws AND coalesce(t.source, '') <> 'identity' "
            f"AND t.email IS NOT NULL AND {lost} AND (t.emails IS DISTINCT FROM [t.email] "
            "OR t.title IS DISTINCT FROM t.crm_title OR t.seniority IS NOT NULL "
            "OR t.job_function IS NOT NULL "
            "OR t.account_id IS DISTINCT FROM t.crm_account_id)", w)
        cur.execute("UPDATE persons AS t SET email = r.email, title = r.title, "
                    "seniority = r.seniority, job_function = r.job_function, "
                    "account_id = r.account_id, updated_at = r.updated_at FROM _crm_rows r "
                    "WHERE t.workspace_id = $ws AND t.person_id = r.person_id AND NOT r.lists",
                    w)
        cur.execute("DELETE FROM persons WHERE workspace_id = $ws "
                    "AND person_id IN (SELECT person_id FROM _crm_rows WHERE lists)", w)
        cur.execute("INSERT INTO persons SELECT * EXCLUDE (lists) FROM _crm_rows WHERE lists")
        cur.execute(
            "INSERT INTO persons (workspace_id, person_id, email, emails, title, seniority, "
            "job_function, account_id, source, created_at, updated_at) "
            "SELECT $ws, person_id, email, emails, title, seniority, job_function, "
            "account_id, 'identity', coalesce(s.created_at, now()::TIMESTAMP), "
            "now()::TIMESTAMP FROM _persons LEFT JOIN _seen s USING (person_id) "
            "ANTI JOIN (SELECT person_id FROM persons WHERE workspace_id = $ws) "
            "USING (person_id)", w)
        where = "" if scope is None else "AND subject IN (SELECT person_id FROM _scope)"
        # the accounts this run may leave unmatched: those of the matches it replaces
        # (in a rebuild, which cleared every match first, every account resolve made)
        cur.execute("CREATE OR REPLACE TEMP TABLE _unmatched AS " + (
            f"SELECT account_id FROM accounts WHERE workspace_id = $ws AND source IN "
            f"({RESOLVED_SOURCES_SQL})" if scope is None else
            "SELECT DISTINCT account_id FROM account_matches WHERE workspace_id = $ws "
            f"AND subject_kind = 'person' {where}"), w)
        cur.execute(f"DELETE FROM account_matches WHERE workspace_id = $ws "
                    f"AND subject_kind = 'person' {where}", w)
        cur.execute("INSERT INTO account_matches SELECT $ws, subject_kind, subject, "
                    "account_id, source, confidence, detail FROM _matches", w)
        _forget_unmatched(cur, ws)
    finally:
        for name in frames:
            cur.unregister(name)


#: where an account is named besides resolve's matches: one resolve made is kept while any
#: of these names it (a CRM opportunity or lead may have been filed under it since, a rep
#: may have a task or a meeting with it)
_NAMED_IN = ("persons", "opportunities", "leads", "ip_ranges", "audience_members",
             "chat_sessions", "enrolments", "jobs", "meetings", "tasks")


def _forget_unmatched(cur: Cursor, ws: str) -> None:
    """Delete the accounts in ``_unmatched`` that resolve made (from a person's group call,
    CRM contact or email domain) and nothing names any more: a person found again with
    another account (merged into a CRM contact, say) leaves the account an earlier run made
    for them, which a rebuild would never make."""
    w = {"ws": ws}
    # first those no match names (most runs: none, and nothing more to read)
    row = cur.execute(
        "CREATE OR REPLACE TEMP TABLE _unmatched AS SELECT account_id FROM _unmatched "
        "WHERE account_id IS NOT NULL AND account_id NOT IN (SELECT account_id FROM "
        "account_matches WHERE workspace_id = $ws AND account_id IS NOT NULL)", w).fetchone()
    if not row or not row[0]:
        return
    named = " UNION ALL ".join(
        [f"SELECT account_id FROM {t} WHERE workspace_id = $ws AND account_id IS NOT NULL"
         for t in _NAMED_IN]
        + ["SELECT crm_account_id FROM persons WHERE workspace_id = $ws "
           "AND crm_account_id IS NOT NULL"])
    cur.execute("DELETE FROM accounts WHERE workspace_id = $ws "
                f"AND source IN ({RESOLVED_SOURCES_SQL}) "
                "AND account_id IN (SELECT account_id FROM _unmatched) "
                f"AND account_id NOT IN ({named})", w)

"""The SQL of resolve: the identity edges new events add, the identifiers a merge or split
reaches, and the writes of identifiers, persons and account matches.

Every function runs on the writer's cursor, inside resolve's one transaction, and works on
temporary tables it names (``_edges_new``, ``_reach``, ...). *scope* is how a function
narrows its work: ``None`` for everything (a rebuild), else the SQL condition it adds.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa

from demandloop.resolve.state import LOADED_AFTER
from demandloop.store.arrow import typed_table
from demandloop.store.dialect import SqlEngine, inline

Cursor = duckdb.DuckDBPyConnection

#: an event's fields resolve reads from its traits
EMAIL = "lower(trim(traits ->> '$.email'))"
TITLE = "coalesce(traits ->> '$.title', traits ->> '$.jobTitle', traits ->> '$.job_title')"
WEBSITE = "coalesce(traits ->> '$.website', traits ->> '$.domain')"


#: the links between identifiers the events loaded after ``$since`` make, the first
#: message of each pair (by time, then message id): ``a, b, source, message_id, ts``
EDGES = f"""
WITH ev AS (
    SELECT message_id, type, anonymous_id, user_id, previous_id, {EMAIL} AS email,
           timestamp AS ts
    FROM events WHERE workspace_id = $ws AND {LOADED_AFTER}
      AND (user_id IS NOT NULL OR type = 'identify')),
-- the aliases' previous ids that some event used as an anonymous id (looked up for those
-- few ids only: all anonymous ids of a big store are millions)
seen_anon AS (
    SELECT DISTINCT anonymous_id FROM events WHERE workspace_id = $ws
      AND anonymous_id IN (SELECT previous_id FROM ev WHERE type = 'alias')),
links AS (
    SELECT 'anon:' || anonymous_id AS a, 'user:' || user_id AS b, type AS source,
           message_id, ts FROM ev
    WHERE anonymous_id IS NOT NULL AND user_id IS NOT NULL
    UNION ALL
    -- joined, not tested with IN: Spark takes a subquery in a filter only
    SELECT CASE WHEN s.anonymous_id IS NOT NULL THEN 'anon:' ELSE 'user:' END
               || ev.previous_id, 'user:' || ev.user_id, 'alias', ev.message_id, ev.ts
    FROM ev LEFT JOIN seen_anon s ON s.anonymous_id = ev.previous_id
    WHERE ev.type = 'alias' AND ev.previous_id IS NOT NULL AND ev.user_id IS NOT NULL
    UNION ALL
    SELECT CASE WHEN user_id IS NOT NULL THEN 'user:' || user_id
           ELSE 'anon:' || anonymous_id END, 'email:' || email, 'identify',
           message_id, ts FROM ev
    WHERE type = 'identify' AND email IS NOT NULL
      AND (user_id IS NOT NULL OR anonymous_id IS NOT NULL))
-- the first message by an aggregate, not a window: most links repeat a pair (every event
-- of an identified browser links it to its user again), and sorting them all by pair cost
-- 1.6 s of a rebuild at 10M events, the aggregate 0.9 s
SELECT a, b, arg_min(source, (ts, message_id)) AS source,
       arg_min(message_id, (ts, message_id)) AS message_id, min(ts) AS ts
FROM links GROUP BY a, b
"""


def new_edges(cur: Cursor, ws: str, since: int, lake: SqlEngine | None = None) -> int:
    """Write ``_edges_new(a, b, source, message_id, ts)``: :data:`EDGES`, keeping only
    pairs not stored yet or stored from a later message. With *lake* (a rebuild: nothing
    stored) the edges are found by that engine from its events."""
    if lake is not None:
        cur.register("_lake_edges", lake.query(inline(EDGES, {"ws": ws, "since": since})))
        try:
            cur.execute("CREATE OR REPLACE TEMP TABLE _edges_new AS SELECT a, b, source, "
                        "message_id, ts FROM _lake_edges")
        finally:
            cur.unregister("_lake_edges")
    else:
        cur.execute(f"""
            CREATE OR REPLACE TEMP TABLE _edges_new AS
            SELECT f.* FROM ({EDGES}) f
            LEFT JOIN identities i ON i.workspace_id = $ws
                AND i.kind_a || ':' || i.id_a = f.a AND i.kind_b || ':' || i.id_b = f.b
            WHERE i.id_a IS NULL OR (f.ts, f.message_id) < (i.first_seen, i.message_id)
        """, {"ws": ws, "since": since})
    cur.execute("""
        DELETE FROM identities i USING _edges_new n WHERE i.workspace_id = $ws
            AND i.kind_a || ':' || i.id_a = n.a AND i.kind_b || ':' || i.id_b = n.b""",
                {"ws": ws})
    cur.execute("""
        INSERT INTO identities SELECT $ws, split_part(a, ':', 1), a[position(':' IN a) + 1:],
            split_part(b, ':', 1), b[position(':' IN b) + 1:], source, message_id, ts
        FROM _edges_new""", {"ws": ws})
    row = cur.execute("SELECT count(*) FROM _edges_new").fetchone()
    return int(row[0]) if row else 0


def reach(cur: Cursor, ws: str, full: bool) -> None:
    """Write ``_reach(identifier)``: the identifiers whose person may change. For a rebuild,
    every identifier in an edge; else those of the new edges and every identifier of the
    persons they belonged to (a merge or a split redraws whole persons)."""
    if full:
        cur.execute("""CREATE OR REPLACE TEMP TABLE _reach AS
            SELECT kind_a || ':' || id_a AS identifier FROM identities WHERE workspace_id = $ws
            UNION SELECT kind_b || ':' || id_b FROM identities WHERE workspace_id = $ws
            UNION SELECT identifier FROM person_identifiers WHERE workspace_id = $ws""",
                    {"ws": ws})
        return
    cur.execute("""CREATE OR REPLACE TEMP TABLE _reach AS
        WITH touched AS (SELECT a AS identifier FROM _edges_new
                         UNION SELECT b FROM _edges_new)
        SELECT identifier FROM touched
        UNION SELECT p.identifier FROM person_identifiers p
        WHERE p.workspace_id = $ws AND p.person_id IN (
            SELECT person_id FROM person_identifiers
            WHERE workspace_id = $ws AND identifier IN (SELECT identifier FROM touched))""",
                {"ws": ws})


def reach_edges(cur: Cursor, ws: str) -> pd.DataFrame:
    """The stored edges of the identifiers in ``_reach``, and every edge of an anonymous id
    among their ends (so a shared device is seen with all its users, and stays apart)."""
    return cur.execute("""
        WITH e AS (SELECT kind_a || ':' || id_a AS a, kind_b || ':' || id_b AS b
                   FROM identities WHERE workspace_id = $ws),
        near AS (SELECT a, b FROM e WHERE a IN (SELECT identifier FROM _reach)
                 UNION SELECT a, b FROM e WHERE b IN (SELECT identifier FROM _reach))
        SELECT a, b FROM near
        UNION SELECT a, b FROM e WHERE a IN (SELECT a FROM near WHERE a LIKE 'anon:%'
                                            UNION SELECT b FROM near WHERE b LIKE 'anon:%')
    """, {"ws": ws}).df()


def crm_people(cur: Cursor, ws: str, near: list[str] | None = None) -> pd.DataFrame:
    """CRM contacts with an email: ``person_id, email, title, account_id`` as the CRM gave
    them (not as resolve completed them); with *near*, only those whose ``email:``
    identifier or person id is in it (an incremental run needs a few of 177k)."""
    sql = ("SELECT person_id, email, crm_title AS title, crm_account_id AS account_id "
           "FROM persons WHERE workspace_id = $ws "
           "AND coalesce(source, '') <> 'identity' AND email IS NOT NULL")
    if near is None:
        return cur.execute(sql, {"ws": ws}).df()
    cur.register("_near", pa.table({"id": pa.array(near, pa.string())}))
    try:
        return cur.execute(sql + " AND ('email:' || email IN (SELECT id FROM _near) "
                           "OR person_id IN (SELECT id FROM _near))", {"ws": ws}).df()
    finally:
        cur.unregister("_near")


def old_persons(cur: Cursor, ws: str) -> set[str]:
    """The persons the identifiers in ``_reach`` belong to before this run."""
    return {str(r[0]) for r in cur.execute(
        "SELECT DISTINCT person_id FROM person_identifiers WHERE workspace_id = $ws "
        "AND identifier IN (SELECT identifier FROM _reach)", {"ws": ws}).fetchall()}


def write_identifiers(cur: Cursor, ws: str, ids: pd.DataFrame) -> None:
    """Replace the persons of the identifiers in ``_reach`` with *ids*
    (``identifier, kind, person_id``)."""
    cur.register("_ids", typed_table(ids[["identifier", "kind", "person_id"]], {}))
    try:
        cur.execute("DELETE FROM person_identifiers WHERE workspace_id = $ws "
                    "AND identifier IN (SELECT identifier FROM _reach)", {"ws": ws})
        cur.execute("INSERT INTO person_identifiers SELECT $ws, identifier, kind, person_id "
                    "FROM _ids", {"ws": ws})
    finally:
        cur.unregister("_ids")


def person_rows(cur: Cursor, ws: str, persons: list[str] | None) -> pd.DataFrame:
    """The identifiers of *persons* (every person when None): ``identifier, kind,
    person_id``."""
    if persons is None:
        return cur.execute("SELECT identifier, kind, person_id FROM person_identifiers "
                           "WHERE workspace_id = $ws", {"ws": ws}).df()
    cur.register("_who", pa.table({"person_id": pa.array(persons, pa.string())}))
    try:
        return cur.execute("SELECT identifier, kind, person_id FROM person_identifiers "
                           "WHERE workspace_id = $ws AND person_id IN "
                           "(SELECT person_id FROM _who)", {"ws": ws}).df()
    finally:
        cur.unregister("_who")

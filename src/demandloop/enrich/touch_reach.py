"""Which stored touches an incremental resolve rewrites, and what it builds them from.

After new events load, three kinds of visitor need touches (a visitor is an anonymous id,
else ``user:`` + user id, as in :mod:`demandloop.enrich.touch_sql`):

* **appending**: every new event of theirs comes after all their touches so far (the usual
  case: a visitor browses on). Their touches stay; the new ones are built from the new
  events and one *context* row, their last page touch (its time and channel): all that the
  visit and channel rules read of the past. A page continues the visit of the page before
  it (``lag(ts)``) and inherits its landing channel, which the stored channel of that page
  is (an ``internal`` landing is stored as ``direct``, and maps to itself); a track takes
  the channel of the latest page before it, which is the context or a new page.
* **late**: a new event falls before or among their touches. All their events are read
  again and their touches rebuilt, as a rebuild would.
* **re-attributed**: a touch whose own anonymous or user id is among ``_dirty_ids`` (its
  person or that person's account may have changed: resolve puts every identifier of the
  persons it reaches there) takes its person and account again, from its own ids and
  address. Channels, visits, activities and topics do not depend on who the visitor is, so
  they are kept; no event is read.

Reading every event of the visitors a batch reached (the way the first incremental resolve
worked) cost two scans of the events table, 0.7 s at 10M events, for touches that did not
change; :mod:`demandloop.enrich.run` holds this to a rebuild, table for table.
"""

from __future__ import annotations

import duckdb

from demandloop.resolve.state import LOADED_AFTER

Cursor = duckdb.DuckDBPyConnection

#: the activities of page touches (tracks never have these)
PAGE_ACTIVITIES = ("page_view", "high_intent_page")

#: what a re-attributed touch keeps (the columns of :func:`touch_sql.touches`' output)
KEPT = ("message_id, ts, anonymous_id, user_id, ip, channel, motion, activity, weight, "
        "topic, path")


def prepare(cur: Cursor, ws: str, since: int, tev: str) -> int:
    """Create the temporary tables of an incremental run from the page and track events
    loaded after *since* (*tev*: the query of every page and track event, with
    ``visitor``); returns the number of late visitors.

    ``_new_ev``: the new events; ``_old``: the stored touches of their visitors and those
    with a dirty identifier (``rid`` = rowid, who they were for, ``dirty``); ``_late``: the
    late visitors.
    """
    p = {"ws": ws, "since": since}
    cur.execute(f"CREATE OR REPLACE TEMP TABLE _new_ev AS {tev} "
                f"AND {LOADED_AFTER}", p)
    # Filters on the stored columns themselves (anonymous_id, user_id), not expressions
    # over them, so the scan skips what it can.
    cur.execute(f"""CREATE OR REPLACE TEMP TABLE _old AS
        WITH anon AS (SELECT substr(identifier, 6) AS id FROM _dirty_ids
                      WHERE starts_with(identifier, 'anon:')),
             users AS (SELECT substr(identifier, 6) AS id FROM _dirty_ids
                       WHERE starts_with(identifier, 'user:'))
        SELECT rowid AS rid, coalesce(anonymous_id, 'user:' || user_id) AS visitor,
               account_id, person_id, {KEPT},
               (anonymous_id IN (SELECT id FROM anon)
                OR user_id IN (SELECT id FROM users)) AS dirty
        FROM touches WHERE workspace_id = $ws AND (
            anonymous_id IN (SELECT anonymous_id FROM _new_ev)
            OR (anonymous_id IS NULL AND user_id IN (
                SELECT user_id FROM _new_ev WHERE anonymous_id IS NULL))
            OR anonymous_id IN (SELECT id FROM anon) OR user_id IN (SELECT id FROM users))
        """, {"ws": ws})
    cur.execute("""CREATE OR REPLACE TEMP TABLE _late AS
        SELECT n.visitor FROM (SELECT visitor, min(timestamp) AS first FROM _new_ev
                               GROUP BY visitor) n
        JOIN (SELECT visitor, max(ts) AS last FROM _old GROUP BY visitor) o
          ON o.visitor = n.visitor
        WHERE n.first <= o.last""")
    row = cur.execute("SELECT count(*) FROM _late").fetchone()
    return int(row[0]) if row else 0


#: ``_ctx_rows(visitor, ts, channel)``: the last page touch (by time, then message id) of
#: each appending visitor
CONTEXT = f"""CREATE OR REPLACE TEMP TABLE _ctx_rows AS
    SELECT visitor, ts, channel FROM _old
    WHERE activity IN ({", ".join(f"'{a}'" for a in PAGE_ACTIVITIES)})
      AND visitor IN (SELECT visitor FROM _new_ev)
      AND visitor NOT IN (SELECT visitor FROM _late)
    QUALIFY row_number() OVER (PARTITION BY visitor ORDER BY ts DESC, message_id DESC) = 1"""


def rows_to_build(tev: str) -> str:
    """``_tev_rows``: the events to build touches from: the new ones of appending
    visitors, every one of late visitors (read again from the store)."""
    return f"""CREATE OR REPLACE TEMP TABLE _tev_rows AS
        SELECT * FROM _new_ev WHERE visitor NOT IN (SELECT visitor FROM _late)
        UNION ALL
        SELECT * FROM ({tev}) WHERE anonymous_id IN (SELECT visitor FROM _late)
           OR (anonymous_id IS NULL AND user_id IN (
               SELECT substr(visitor, 6) FROM _late WHERE starts_with(visitor, 'user:')))"""


#: ``_reattr_rows``: the touches to attribute again (dirty, not late), as stored
REATTRIBUTE = f"""CREATE OR REPLACE TEMP TABLE _reattr_rows AS
    SELECT visitor, {KEPT} FROM _old
    WHERE dirty AND visitor NOT IN (SELECT visitor FROM _late)"""

#: the stored touches this run replaces: re-attributed ones and those of late visitors
GONE = """SELECT rid, account_id, person_id FROM _old
    WHERE dirty OR visitor IN (SELECT visitor FROM _late)"""

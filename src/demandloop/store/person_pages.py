"""People with their latest scores, filtered and keyset-paged (``GET /api/v1/people``,
``demandloop people``).

Each person comes with what the latest scoring said of them: ``stage`` (``mql`` or null),
``engagement``, ``account_fit`` and the ``mql_reasons`` that made them an MQL, so a script
can pull the MQLs to work without a second call per person. Pages are keyset pages like the
accounts' (:mod:`.account_pages`): by person id, or by engagement (highest first, people
never scored last), each ending with the cursor of the next.
"""

from __future__ import annotations

from typing import Any

import orjson

from demandloop.errors import UsageError
from demandloop.store.account_pages import PERSON_FIELDS, decode_cursor, encode_cursor
from demandloop.store.db import Store

#: ``sort`` values: by person id (the default), or by engagement, highest first
PERSON_SORTS = ("person_id", "-engagement")

#: the engagement people are sorted by: a person never scored counts as -1, so they sort
#: last and keyset conditions need no NULL cases
_E = "coalesce(s.engagement, -1.0)"

_FIELDS = ", ".join(f"p.{f}" for f in PERSON_FIELDS)


def _rows(people: str) -> str:
    """The rows of *people* (a query over ``persons``) with the latest person snapshot's
    scores; columns :data:`PERSON_FIELDS`, the scores, and ``_e`` (:data:`_E`)."""
    return f"""
WITH latest AS (SELECT max(as_of) AS as_of FROM scores
                WHERE workspace_id = $ws AND entity = 'person'),
     p AS ({people})
SELECT {_FIELDS}, s.stage, s.engagement, s.fit AS account_fit,
       s.details -> '$.mql_reasons' AS mql_reasons, s.as_of, {_E} AS _e
FROM p CROSS JOIN latest l
LEFT JOIN scores s ON s.workspace_id = p.workspace_id AND s.entity = 'person'
    AND s.entity_id = p.person_id AND s.as_of = l.as_of"""


def _bad_cursor() -> UsageError:
    return UsageError("the cursor is not one this API gave out",
                      hint="pass the 'next' value of the previous page unchanged")


def person_page(store: Store, account: str | None = None, search: str | None = None,
                limit: int = 50, cursor: str | None = None, mql: bool | None = None,
                sort: str = "person_id") -> tuple[list[dict[str, Any]], str | None]:
    """One page of people (*sort*: one of :data:`PERSON_SORTS`), optionally of one
    account, matching *search* (email or name), or only (*mql* True) or never (False) MQLs
    by the latest score; and the cursor of the next page (None on the last)."""
    if sort not in PERSON_SORTS:
        raise UsageError(f"cannot sort people by '{sort[:40]}'",
                         hint=f"use one of {', '.join(PERSON_SORTS)}")
    params: dict[str, Any] = {"ws": store.workspace_id, "limit": limit + 1}
    # conditions on the person's own columns, and on the scores
    own = ["workspace_id = $ws"]
    scored = []
    if account is not None:
        own.append("account_id = $account")
        params["account"] = account
    if search:
        own.append("(contains(lower(email), $q) OR contains(lower(first_name || ' ' "
                   "|| last_name), $q))")
        params["q"] = search.lower()
    if mql is not None:
        scored.append("stage = 'mql'" if mql else "stage IS DISTINCT FROM 'mql'")
    by_engagement = sort == "-engagement"
    if cursor is not None:
        value, last = decode_cursor(cursor)
        params["ck"] = last
        if not by_engagement:
            if value is not None:
                raise _bad_cursor()
            own.append("person_id > $ck")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad_cursor()
        else:
            scored.append("(_e < $cv OR (_e = $cv AND person_id > $ck))")
            params["cv"] = float(value)
    people = f"SELECT * FROM persons WHERE {' AND '.join(own)}"
    if by_engagement or scored:  # (the order or a filter needs every person's score)
        order = "_e DESC, person_id" if by_engagement else "person_id"
        sql = (f"SELECT * FROM ({_rows(people)}) WHERE {' AND '.join(scored) or 'true'} "
               f"ORDER BY {order} LIMIT $limit")
    else:
        # the page of people first, then their scores: joining every person to the
        # snapshot for one page took four times as long (170 ms against 41 at 290k)
        sql = f"{_rows(people + ' ORDER BY person_id LIMIT $limit')} ORDER BY p.person_id"
    with store.reader() as cur:
        rel = cur.execute(sql, params)
        names = [d[0] for d in rel.description]
        rows = [dict(zip(names, r, strict=True)) for r in rel.fetchall()]
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        last_row = rows[-1]
        nxt = encode_cursor(last_row["_e"] if by_engagement else None, last_row["person_id"])
    return [_shown(r) for r in rows], nxt


def person_row(store: Store, person_id: str) -> dict[str, Any] | None:
    """One person as :func:`person_page` lists them (None when there is no such id)."""
    sql = _rows("SELECT * FROM persons WHERE workspace_id = $ws AND person_id = $id")
    with store.reader() as cur:
        rel = cur.execute(sql, {"ws": store.workspace_id, "id": person_id})
        names = [d[0] for d in rel.description]
        row = rel.fetchone()
    return None if row is None else _shown(dict(zip(names, row, strict=True)))


def _shown(r: dict[str, Any]) -> dict[str, Any]:
    """A row of :func:`_rows` as the API shows it: the MQL reasons as a list, no sort key."""
    del r["_e"]
    reasons = r["mql_reasons"]
    r["mql_reasons"] = orjson.loads(reasons) if isinstance(reasons, str) else reasons
    return r

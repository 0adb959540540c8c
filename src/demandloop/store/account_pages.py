"""Pages of accounts and people for the API: filters, a sort, keyset pagination.

Keyset, not OFFSET: a page is ``WHERE (sort key, id) after the last row seen``, so page 400
costs what page 1 costs and a row inserted meanwhile neither repeats nor skips a row. The
cursor a client gets back is the last row's (sort value, id), base64-encoded JSON; it is
opaque to clients and checked when it comes back.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from demandloop.countries import as_country
from demandloop.errors import UsageError
from demandloop.store.db import Store

#: sortable account fields -> the SQL they sort on (NULLs last whichever the direction)
ACCOUNT_SORTS = {"priority": "priority", "fit": "fit", "engagement": "engagement",
                 "intent": "intent", "name": "name", "account_id": "account_id",
                 "employees": "employees", "updated_at": "updated_at"}
ACCOUNT_FIELDS = ("account_id", "name", "domain", "industry", "employees", "country", "owner",
                  "target", "tier", "stage", "fit", "band", "engagement", "intent", "surging",
                  "people", "committee_coverage", "missing_roles", "surge_topics", "priority",
                  "as_of", "updated_at")
PERSON_FIELDS = ("person_id", "email", "first_name", "last_name", "title", "seniority",
                 "job_function", "account_id", "source", "created_at", "updated_at")


@dataclass(frozen=True)
class AccountFilter:
    """What ``GET /api/v1/accounts`` may filter on; None means any."""

    stage: tuple[str, ...] = ()
    band: tuple[str, ...] = ()
    intent_min: float | None = None
    surging: bool | None = None
    target: bool | None = None
    owner: str | None = None
    industry: str | None = None
    search: str | None = None
    employees_min: int | None = None
    employees_max: int | None = None
    country: str | None = None
    topic: str | None = None


def check_choices(field: str, given: Iterable[str], known: Sequence[str]) -> list[str]:
    """*given* as *known* spells them, in any case (``MQA`` is the stage ``mqa``, ``strong``
    the band ``Strong``, as the text filters match in any case); a value that is none of
    them is refused (a stage or band no account can have is a typo, and an empty page
    would hide it)."""
    spelt = {k.casefold(): k for k in known}
    wrong = [v for v in given if v.casefold() not in spelt]
    if wrong:
        raise UsageError(f"unknown {field} '{wrong[0][:80]}'",
                         hint=f"{field} is one of: {', '.join(known)}")
    return [spelt[v.casefold()] for v in given]


def encode_cursor(value: Any, key: str) -> str:
    raw = orjson.dumps([value, key], default=str)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, key = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise UsageError("the cursor is not one this API gave out",
                         hint="pass the 'next' value of the previous page unchanged") from None
    if not isinstance(key, str) or isinstance(value, (list, dict)):
        raise UsageError("the cursor is not one this API gave out",
                         hint="pass the 'next' value of the previous page unchanged")
    return value, key


#: the sort fields whose values are text (the others are numbers, but ``updated_at``)
_TEXT_SORTS = ("name", "account_id")


def _sort_value(sort_sql: str, value: Any) -> Any:
    """A cursor's sort value as the sort field's type: a cursor edited by hand (a number
    where a name was, text where a time was) is the client's error, a 400, not the
    database's (a 500)."""
    if sort_sql == "updated_at" and isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    elif sort_sql in _TEXT_SORTS:
        if isinstance(value, str):
            return value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise UsageError("the cursor is not one this API gave out",
                     hint="pass the 'next' value of the previous page unchanged")


def _keyset(sort_sql: str, descending: bool, cursor: str | None,
            params: dict[str, Any], key: str) -> str:
    """The WHERE clause after the cursor's row, for ``ORDER BY sort NULLS LAST, key``."""
    if cursor is None:
        return "TRUE"
    value, last = decode_cursor(cursor)
    params["ck"] = last
    cmp = "<" if descending else ">"
    if value is None:  # in the NULL tail: only the key orders what is left
        return f"({sort_sql} IS NULL AND {key} > $ck)"
    params["cv"] = _sort_value(sort_sql, value)
    return (f"({sort_sql} {cmp} $cv OR ({sort_sql} = $cv AND {key} > $ck) "
            f"OR {sort_sql} IS NULL)")


def current_accounts(store: Store) -> pa.Table:
    """Every row of ``account_view`` (the columns a page shows), as one Arrow table: a
    server keeps it in memory per state of the data, and its pages are then queries over
    columns rather than over the scores' JSON (see :func:`account_page`)."""
    with store.reader() as cur:
        table: pa.Table = cur.execute(
            f"SELECT workspace_id, {', '.join(ACCOUNT_FIELDS)} FROM account_view "
            "WHERE workspace_id = $ws", {"ws": store.workspace_id}).fetch_arrow_table()
    return table


def _conditions(where: AccountFilter, params: dict[str, Any]) -> list[str]:
    """The WHERE conditions of *where* (their values added to *params*)."""
    conds = ["workspace_id = $ws"]
    if where.stage:
        conds.append("list_contains($stage, stage)")
        params["stage"] = list(where.stage)
    if where.band:
        conds.append("list_contains($band, band)")
        params["band"] = list(where.band)
    # (text as people type it: 'software' finds 'Software', 'de' finds 'DE'; an empty
    # value is no filter, as an empty search is, where it matched no account)
    for name, sql in (("intent_min", "intent >= $intent_min"), ("surging", "surging = $surging"),
                      ("target", "target = $target"), ("owner", "lower(owner) = $owner"),
                      ("industry", "lower(industry) = $industry"),
                      ("employees_min", "employees >= $employees_min"),
                      ("employees_max", "employees <= $employees_max"),
                      ("country", "lower(country) = $country"),
                      ("topic", "list_contains(from_json(lower(surge_topics)::JSON, "
                                "'[\"VARCHAR\"]'), $topic)")):
        value = getattr(where, name)
        if name == "country" and isinstance(value, str) and value.strip():
            value = as_country(value)  # ("United States" finds the accounts stored as US)
        if isinstance(value, str):
            value = value.strip().lower() or None
        if value is not None:
            conds.append(sql)
            params[name] = value
    if where.search:
        conds.append("(contains(lower(name), $q) OR contains(lower(domain), $q) "
                     "OR account_id = $q_exact)")
        params["q"], params["q_exact"] = where.search.lower(), where.search
    return conds


def matching_ids(store: Store, where: AccountFilter) -> set[str]:
    """The ids of every account *where* matches (``demandloop accounts``' filters, which
    then sorts and cuts its own frame)."""
    params: dict[str, Any] = {"ws": store.workspace_id}
    conds = _conditions(where, params)
    with store.reader() as cur:
        return {r[0] for r in cur.execute(f"SELECT account_id FROM account_view WHERE "
                                          f"{' AND '.join(conds)}", params).fetchall()}


#: counts stop here ("10,000+"): a page never scans every account to say how many
COUNT_CAP = 10_000


def count_capped(store: Store, where: AccountFilter, rows: pa.Table) -> int:
    """How many accounts *where* matches among *rows*, up to :data:`COUNT_CAP` + 1."""
    params: dict[str, Any] = {"ws": store.workspace_id, "cap": COUNT_CAP + 1}
    conds = _conditions(where, params)
    with store.reader() as cur:
        cur.register("_account_rows", rows)
        row = cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM _account_rows WHERE "
                          f"{' AND '.join(conds)} LIMIT $cap)", params).fetchone()
    return int(row[0]) if row else 0


def choices(store: Store, rows: pa.Table) -> dict[str, list[str]]:
    """The values the filters offer: stages, bands, owners and industries present."""
    out: dict[str, list[str]] = {}
    with store.reader() as cur:
        cur.register("_account_rows", rows)
        for col in ("stage", "band", "owner", "industry", "country"):
            out[col] = [v for (v,) in cur.execute(
                f"SELECT DISTINCT {col} FROM _account_rows WHERE {col} IS NOT NULL "
                f"ORDER BY 1 LIMIT 200").fetchall()]
        out["topic"] = [v for (v,) in cur.execute(
            "SELECT DISTINCT unnest(from_json(surge_topics::JSON, '[\"VARCHAR\"]')) AS t "
            "FROM _account_rows WHERE surge_topics IS NOT NULL ORDER BY 1 LIMIT 200"
        ).fetchall()]
    return out


def account_page(store: Store, where: AccountFilter, sort: str = "-priority",
                 limit: int = 50, cursor: str | None = None, rows: pa.Table | None = None
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """One page of ``account_view`` and the cursor of the next (None on the last page);
    over *rows* (from :func:`current_accounts`) when given."""
    descending = sort.startswith("-")
    field = sort.lstrip("-")
    if field not in ACCOUNT_SORTS:
        raise UsageError(f"cannot sort by '{field[:40]}'",
                         hint=f"use one of {', '.join(ACCOUNT_SORTS)}, '-' first for "
                         "descending")
    col = ACCOUNT_SORTS[field]
    params: dict[str, Any] = {"ws": store.workspace_id, "limit": limit + 1}
    conds = _conditions(where, params)
    conds.append(_keyset(col, descending, cursor, params, "account_id"))
    order = f"{col} {'DESC' if descending else 'ASC'} NULLS LAST, account_id"
    with store.reader() as cur:
        source = "account_view"
        if rows is not None:
            cur.register("_account_rows", rows)
            source = "_account_rows"
        rel = cur.execute(f"SELECT {', '.join(ACCOUNT_FIELDS)} FROM {source} "
                          f"WHERE {' AND '.join(conds)} ORDER BY {order} LIMIT $limit", params)
        names = [d[0] for d in rel.description]
        found = [dict(zip(names, r, strict=True)) for r in rel.fetchall()]
    for r in found:
        for col in ("missing_roles", "surge_topics"):
            r[col] = orjson.loads(r[col]) if r[col] else []
    nxt = None
    if len(found) > limit:
        found = found[:limit]
        nxt = encode_cursor(found[-1][field], found[-1]["account_id"])
    return found, nxt


#: what one account's page shows besides its scores, newest first, at most *limit* each
DETAIL_QUERIES = {
    "touches": "SELECT t.ts, t.channel, t.motion, t.activity, t.weight, t.topic, t.path, "
               "t.person_id, t.message_id, p.job_function, p.seniority "
               "FROM touches t LEFT JOIN persons p ON p.workspace_id = t.workspace_id "
               "AND p.person_id = t.person_id WHERE t.workspace_id = $ws "
               "AND t.account_id = $id ORDER BY t.ts DESC, t.touch_id LIMIT $limit",
    # what our side did: emails sent to its people, tasks opened, workflow steps taken
    "ours": "SELECT * FROM ("
            "SELECT m.sent_at AS ts, 'email' AS kind, m.subject AS what, m.to_email AS who, "
            "m.status FROM mail_messages m JOIN enrolments e USING (workspace_id, "
            "enrolment_id) WHERE m.workspace_id = $ws AND e.account_id = $id "
            "AND m.sent_at IS NOT NULL "
            "UNION ALL SELECT created_at, 'task', title, owner, NULL FROM tasks "
            "WHERE workspace_id = $ws AND account_id = $id "
            "UNION ALL SELECT coalesce(done_at, created_at), 'workflow', workflow || ': ' || "
            "action, NULL, status FROM jobs WHERE workspace_id = $ws AND account_id = $id) "
            "ORDER BY ts DESC NULLS LAST LIMIT $limit",
    "stage_history": "SELECT from_stage, to_stage, changed_at, reasons FROM stage_changes "
                     "WHERE workspace_id = $ws AND entity = 'account' AND entity_id = $id "
                     "ORDER BY changed_at DESC LIMIT $limit",
    "opportunities": "SELECT opportunity_id, name, amount, stage, is_closed, won, created_at, "
                     "closed_at, owner FROM opportunities WHERE workspace_id = $ws "
                     "AND account_id = $id ORDER BY created_at DESC, opportunity_id "
                     "LIMIT $limit",
    "workflow_jobs": "SELECT job_id, workflow, step, action, trigger, status, attempts, "
                     "last_error, result, created_at, done_at FROM jobs "
                     "WHERE workspace_id = $ws AND account_id = $id "
                     "ORDER BY created_at DESC, job_id LIMIT $limit",
    "sequence_messages": "SELECT m.enrolment_id, e.sequence, m.step, m.to_email, m.subject, "
                         "m.status, m.error, m.claimed_at, m.sent_at FROM mail_messages m "
                         "JOIN enrolments e USING (workspace_id, enrolment_id) "
                         "WHERE m.workspace_id = $ws AND e.account_id = $id "
                         "ORDER BY m.claimed_at DESC, m.enrolment_id, m.step LIMIT $limit",
    "people": f"SELECT {', '.join(PERSON_FIELDS)} FROM persons WHERE workspace_id = $ws "
              "AND account_id = $id ORDER BY person_id LIMIT $limit",
}


def account_detail(store: Store, account_id: str, limit: int = 100
                   ) -> dict[str, Any] | None:
    """One account: its row of ``account_view`` and each list of :data:`DETAIL_QUERIES`
    (None if there is no such account)."""
    params = {"ws": store.workspace_id, "id": account_id, "limit": limit}
    out: dict[str, Any] = {}
    with store.reader() as cur:
        rel = cur.execute("SELECT * EXCLUDE (workspace_id) FROM account_view "
                          "WHERE workspace_id = $ws AND account_id = $id",
                          {"ws": store.workspace_id, "id": account_id})
        names = [d[0] for d in rel.description]
        row = rel.fetchone()
        if row is None:
            return None
        account = dict(zip(names, row, strict=True))
        for col in ("missing_roles", "surge_topics"):
            account[col] = orjson.loads(account[col]) if account[col] else []
        out["account"] = account
        for name, sql in DETAIL_QUERIES.items():
            rel = cur.execute(sql, params)
            cols = [d[0] for d in rel.description]
            out[name] = [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]
    for change in out["stage_history"]:
        if isinstance(change["reasons"], str):
            change["reasons"] = orjson.loads(change["reasons"])
    return out

"""Upsert CRM rows (accounts, contacts, opportunities) and Olist leads into the store.

Imports are idempotent: a row whose key already exists updates the fields the file provides
and keeps the others, so re-importing a CRM export never duplicates anything.
"""

from __future__ import annotations

import bisect
import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from demandloop.collect.account_keys import AccountLookup, account_id_for, rekey
from demandloop.collect.crm import CrmRows
from demandloop.collect.ipranges import UserRange
from demandloop.errors import InputError
from demandloop.store.db import Store

_ACCOUNT_COLS = ("account_id", "domain", "name", "industry", "employees", "revenue", "country",
                 "technologies", "owner", "target", "tier", "crm_id", "source", "created_at")
_PERSON_COLS = ("person_id", "email", "emails", "first_name", "last_name", "title",
                "account_id", "crm_id", "source", "created_at", "crm_account_id", "crm_title")
_OPP_COLS = ("opportunity_id", "account_id", "lead_id", "name", "amount", "stage", "is_closed",
             "won", "created_at", "closed_at", "owner", "sdr", "segment", "crm_id", "source")
_LEAD_COLS = ("lead_id", "person_id", "account_id", "origin", "channel", "landing_page",
              "status", "created_at", "source")

_TYPES: dict[str, pa.DataType] = {
    "employees": pa.int64(), "revenue": pa.float64(), "amount": pa.float64(),
    "target": pa.bool_(), "is_closed": pa.bool_(), "won": pa.bool_(),
    "technologies": pa.list_(pa.string()), "emails": pa.list_(pa.string()),
    "created_at": pa.timestamp("us"), "closed_at": pa.timestamp("us"),
}


def _table(rows: list[dict[str, Any]], cols: tuple[str, ...]) -> pa.Table:
    return pa.table({c: pa.array([r.get(c) for r in rows], _TYPES.get(c, pa.string()))
                     for c in cols})


def upsert(store: Store, table: str, key: str, rows: list[dict[str, Any]],
           cols: tuple[str, ...]) -> int:
    """Insert or update *rows* in one transaction; NULLs never overwrite stored values."""
    with store.writer() as cur:
        return _upsert(cur, store.workspace_id, table, key, rows, cols)


_DEFAULTS = {"target": "false", "is_closed": "false", "won": "false", "status": "'mql'"}


def _upsert(cur: duckdb.DuckDBPyConnection, ws: str, table: str, key: str,
            rows: list[dict[str, Any]], cols: tuple[str, ...]) -> int:
    # UPDATE then INSERT rather than ON CONFLICT: a NULL in the file must keep the stored
    # value, while a brand-new row needs the column default, which EXCLUDED cannot tell apart.
    if not rows:
        return 0
    # accounts and persons carry created_at (the file's creation date, else when first
    # imported: what a point-in-time score may know) and updated_at
    stamped = table in ("accounts", "persons")
    defaults = {**_DEFAULTS, "created_at": "now()::TIMESTAMP"} if stamped else _DEFAULTS
    if stamped and "created_at" not in cols:
        cols = (*cols, "created_at")
    sets = ", ".join(f"{c} = coalesce(r.{c}, t.{c})" for c in cols if c != key)
    values = ", ".join(f"coalesce(r.{c}, {defaults[c]})" if c in defaults else f"r.{c}"
                       for c in cols)
    cur.register("_rows", _table(rows, cols))
    try:
        cur.execute(
            f"UPDATE {table} AS t SET {sets}"
            + (", updated_at = now()::TIMESTAMP" if stamped else "")
            + f" FROM _rows AS r WHERE t.workspace_id = $ws AND t.{key} = r.{key}",
            {"ws": ws},
        )
        cur.execute(
            f"INSERT INTO {table} (workspace_id, {', '.join(cols)}"
            + (", updated_at" if stamped else "")
            + f") SELECT $ws, {values}"
            + (", now()::TIMESTAMP" if stamped else "")
            + f" FROM _rows AS r ANTI JOIN (SELECT {key} FROM {table} WHERE workspace_id = $ws)"
            f" AS t USING ({key})",
            {"ws": ws},
        )
    finally:
        cur.unregister("_rows")
    return len(rows)


def import_crm(store: Store, parsed: CrmRows, unlinked: list[str] | None = None) -> int:
    """Write parsed CRM rows; opportunities must name an account the store knows. A contact
    naming an account the store does not know is written without one, and listed in
    *unlinked* when given (``FILE:LINE: account '...' is not in the workspace``)."""
    source = f"crm:{parsed.path.name}"
    if parsed.kind == "accounts":
        rows = [{**r, "account_id": account_id_for(r.get("domain"), r.get("crm_id"),
                                                   r.get("name")), "source": source}
                for r in parsed.rows]
        lookup = AccountLookup(store)
        with store.writer() as cur:
            rekey(cur, store.workspace_id, lookup, rows)
            return _upsert(cur, store.workspace_id, "accounts", "account_id", rows,
                           _ACCOUNT_COLS)
    if parsed.kind == "contacts":
        lookup = AccountLookup(store)
        rows = []
        for r, line in zip(parsed.rows, parsed.lines, strict=True):
            named = r.get("account_domain") or r.get("account_crm_id") or r.get("account_name")
            a = lookup.find(r.get("account_domain"), r.get("account_crm_id"),
                            r.get("account_name"))
            if a is None and named and unlinked is not None:
                unlinked.append(f"{parsed.path}:{line}: account '{named}' is not in the "
                                "workspace")
            rows.append({**r, "person_id": r["email"], "emails": [r["email"]],
                         "account_id": a, "source": source, "crm_account_id": a,
                         "crm_title": r.get("title")})
        return upsert(store, "persons", "person_id", rows, _PERSON_COLS)
    lookup = AccountLookup(store)
    rows, problems = [], []
    for r, line in zip(parsed.rows, parsed.lines, strict=True):
        account = lookup.find(r.get("account_domain"), r.get("account_crm_id"),
                              r.get("account_name"))
        if account is None:
            problems.append(
                f"{parsed.path}:{line}: account "
                f"'{r.get('account_domain') or r.get('account_crm_id') or r.get('account_name')}'"
                " is not in the workspace"
            )
        rows.append({**r, "opportunity_id": r["crm_id"], "account_id": account,
                     "source": source})
    if problems:
        raise InputError(
            f"{parsed.path}: {len(problems)} opportunit(ies) name unknown accounts; "
            "nothing was imported",
            hint="import the accounts first ('demandloop import accounts FILE'), or add an "
            "account domain column",
            problems=problems[:20],
        )
    return upsert(store, "opportunities", "opportunity_id", rows, _OPP_COLS)


def import_leads(store: Store, accounts: list[dict[str, Any]], leads: list[dict[str, Any]],
                 opportunities: list[dict[str, Any]]) -> None:
    """Write a lead source (e.g. Olist) in one transaction: accounts, leads, opportunities."""
    with store.writer() as cur:
        _upsert(cur, store.workspace_id, "accounts", "account_id", accounts, _ACCOUNT_COLS)
        _upsert(cur, store.workspace_id, "leads", "lead_id", leads, _LEAD_COLS)
        _upsert(cur, store.workspace_id, "opportunities", "opportunity_id", opportunities,
                _OPP_COLS)


def import_ip_ranges(store: Store, ranges: list[UserRange], source: str) -> int:
    """Store user IP ranges (replacing those from the same *source*); ranges may not overlap
    ranges from other sources. Domains without an account get one."""
    with store.reader() as cur:
        others = cur.execute(
            "SELECT start_ip, end_ip, source FROM ip_ranges WHERE workspace_id = ? "
            "AND source <> ? ORDER BY start_ip", [store.workspace_id, source]).fetchall()
    problems = []
    if others:
        starts = [o[0] for o in others]
        for r in ranges:
            i = bisect.bisect_right(starts, r.end) - 1
            if i >= 0 and others[i][1] >= r.start:
                problems.append(f"line {r.line}: range overlaps a range from {others[i][2]}")
    if problems:
        raise InputError(f"{source}: {len(problems)} range(s) overlap stored ranges; "
                         "nothing was imported",
                         hint="remove the overlap, or re-import the other file without it",
                         problems=[f"{source}:{p.removeprefix('line ')}" for p in problems[:20]])
    # a range without a known_since date is known from now (the import)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    first: dict[str, UserRange] = {}
    for r in ranges:
        if r.domain and (r.domain not in first or (r.known_since or now)
                         < (first[r.domain].known_since or now)):
            first[r.domain] = r
    accounts = [{"account_id": r.domain, "domain": r.domain, "name": r.organisation,
                 "source": f"ip-ranges:{Path(source).name}", "created_at": r.known_since or now}
                for r in first.values()]
    with store.writer() as cur:
        ws = store.workspace_id
        cur.register("_new", _table(accounts, ("account_id", "domain", "name", "source",
                                               "created_at")))
        cur.execute("INSERT INTO accounts (workspace_id, account_id, domain, name, source, "
                    "created_at, updated_at) SELECT $ws, account_id, domain, name, source, "
                    "created_at, now()::TIMESTAMP FROM _new ANTI JOIN (SELECT account_id "
                    "FROM accounts WHERE workspace_id = $ws) USING (account_id)", {"ws": ws})
        cur.unregister("_new")
        cur.execute("DELETE FROM ip_ranges WHERE workspace_id = ? AND source = ?", [ws, source])
        cur.register("_ranges", pa.table({
            "start_ip": pa.array([r.start for r in ranges], pa.int64()),
            "end_ip": pa.array([r.end for r in ranges], pa.int64()),
            "account_id": pa.array([r.domain for r in ranges], pa.string()),
            "organisation": pa.array([r.organisation for r in ranges], pa.string()),
            "known_at": pa.array([r.known_since or now for r in ranges], pa.timestamp("us")),
        }))
        cur.execute("INSERT INTO ip_ranges (workspace_id, start_ip, end_ip, account_id, "
                    "organisation, kind, source, known_at) SELECT $ws, start_ip, end_ip, "
                    "account_id, organisation, 'company', $src, known_at FROM _ranges",
                    {"ws": ws, "src": source})
        cur.unregister("_ranges")
    return len(ranges)


def import_spend(store: Store, rows: list[dict[str, Any]]) -> int:
    """Write spend rows; a (date, channel, campaign) already stored is replaced, so
    re-importing a corrected export does not double the spend."""
    if not rows:
        return 0
    cols = ("date", "channel", "campaign", "spend", "impressions", "clicks")
    table = pa.table({
        "date": pa.array([r["date"] for r in rows], pa.date32()),
        "channel": pa.array([r["channel"] for r in rows], pa.string()),
        "campaign": pa.array([r["campaign"] for r in rows], pa.string()),
        "spend": pa.array([r["spend"] for r in rows], pa.float64()),
        "impressions": pa.array([r["impressions"] for r in rows], pa.int64()),
        "clicks": pa.array([r["clicks"] for r in rows], pa.int64()),
    })
    with store.writer() as cur:
        cur.register("_spend", table)
        try:
            cur.execute(
                "DELETE FROM spend AS s USING (SELECT DISTINCT date, channel, campaign "
                "FROM _spend) AS r WHERE s.workspace_id = $ws AND s.date = r.date AND "
                "s.channel = r.channel AND s.campaign IS NOT DISTINCT FROM r.campaign",
                {"ws": store.workspace_id})
            cur.execute(f"INSERT INTO spend (workspace_id, {', '.join(cols)}) "
                        f"SELECT $ws, {', '.join(cols)} FROM _spend", {"ws": store.workspace_id})
        finally:
            cur.unregister("_spend")
    return len(rows)

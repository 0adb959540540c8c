"""Account ids across imports: find a stored account a CRM row means, and give it the
better id a row brings (re-keyed, or merged into the account already holding that id).

Accounts are keyed by domain, else CRM id, else name (:func:`account_id_for`), so web,
email and CRM signals meet on one id where there is a domain. A file says less or more
about the same account from one import to the next (an unrecognised ``Website`` header,
then ``--map Website=domain``): the account must stay one account, under the best id any
file gave it, with everything that names it.
"""

from __future__ import annotations

import re
from typing import Any

import duckdb

from demandloop.store import touch_log
from demandloop.store.db import Store


def account_id_for(domain: str | None, crm_id: str | None, name: str | None) -> str:
    """Accounts are keyed by canonical domain, so web, email and CRM signals meet on one id."""
    if domain:
        return domain
    if crm_id:
        return f"crm:{crm_id}"
    return "name:" + re.sub(r"[^a-z0-9]+", "-", (name or "").lower()).strip("-")


def strength(account_id: str) -> int:
    """How much an account id says (see :func:`account_id_for`): a domain 2, a CRM id 1,
    a name 0."""
    return 0 if account_id.startswith("name:") else 1 if account_id.startswith("crm:") else 2


#: every column that names an account, by table (scores and stage changes: entity_id)
ACCOUNT_REFS = (("persons", "account_id"), ("persons", "crm_account_id"),
                ("opportunities", "account_id"), ("leads", "account_id"),
                ("touches", "account_id"), ("account_matches", "account_id"),
                ("jobs", "account_id"), ("tasks", "account_id"),
                ("enrolments", "account_id"), ("audience_members", "account_id"),
                ("ip_ranges", "account_id"), ("ip_matches", "account_id"),
                ("ip_lookups", "account_id"), ("chat_sessions", "account_id"),
                ("meetings", "account_id"))

#: what a merged account takes from the one merged into it where it has nothing (the
#: descriptive columns a CRM file fills; ``target`` is either's)
_FILLED = ("name", "industry", "employees", "revenue", "country", "technologies", "owner",
           "tier", "crm_id")


class AccountLookup:
    """Finds a stored account by domain, CRM id or exact name (in that order)."""

    def __init__(self, store: Store) -> None:
        with store.reader() as cur:
            rows = cur.execute(
                "SELECT account_id, domain, crm_id, lower(name) FROM accounts "
                "WHERE workspace_id = ?", [store.workspace_id]
            ).fetchall()
        self.by_domain: dict[str, str] = {d: a for a, d, _, _ in rows if d}
        self.by_crm: dict[str, str] = {c: a for a, _, c, _ in rows if c}
        self.by_name: dict[str, str] = {n: a for a, _, _, n in rows if n}

    def find(self, domain: str | None, crm_id: str | None, name: str | None) -> str | None:
        found: str | None = None
        if domain and domain in self.by_domain:
            found = self.by_domain[domain]
        elif crm_id and crm_id in self.by_crm:
            found = self.by_crm[crm_id]
        elif name and name.lower() in self.by_name:
            found = self.by_name[name.lower()]
        return found


def rekey(cur: duckdb.DuckDBPyConnection, ws: str, lookup: AccountLookup,
          rows: list[dict[str, Any]]) -> None:
    """Give a stored account the id a re-import gives it, everywhere.

    An account first imported without its domain (an unrecognised header) is ``crm:42``,
    and the same file imported again with ``--map Website=domain`` says ``acme.com``.
    Matched by CRM id (else by name when the row has neither), the stored account takes
    the new id, so a re-import updates it instead of adding a second account. When
    ``acme.com`` is stored already (resolve made it from a visitor's email), ``crm:42`` is
    merged into it: one account, with the people, touches, opportunities and history of
    both.

    Never the other way: a row that says less than the stored account (a file without the
    domain column, matched by CRM id or name to ``acme.com``) updates ``acme.com``. Re-keyed
    to ``crm:42`` or ``name:acme``, the account would lose the id web and email signals
    meet on, and resolve would make a second ``acme.com`` from the next visitor's email."""
    stored = {a for a in (*lookup.by_crm.values(), *lookup.by_domain.values(),
                          *lookup.by_name.values())}
    for r in rows:
        new = r["account_id"]
        crm, name = r.get("crm_id"), (r.get("name") or "").lower()
        old = lookup.by_crm.get(crm) if crm else None
        if old is None and not crm and not r.get("domain"):
            old = lookup.by_name.get(name) if name else None
        if old is None or old == new or old not in stored:
            continue
        if strength(new) < strength(old):
            r["account_id"] = old  # (the row updates the stored account)
            continue
        merge = new in stored
        if merge and strength(new) == strength(old):
            continue  # two domains: two companies as far as signals go; both stay
        _move(cur, ws, old, new, merge)
        stored.discard(old)
        stored.add(new)


def _move(cur: duckdb.DuckDBPyConnection, ws: str, old: str, new: str, merge: bool) -> None:
    """Everything that names account *old* names *new*; *old* is renamed *new*, or (with
    *merge*, *new* being stored) merged into it and deleted."""
    p = {"ws": ws, "new": new, "old": old}
    if merge:
        # rows that would name the account twice: an audience holding both, a snapshot
        # that scored both (the next score scores the merged account)
        cur.execute("DELETE FROM audience_members WHERE workspace_id = $ws AND account_id = "
                    "$old AND audience IN (SELECT audience FROM audience_members WHERE "
                    "workspace_id = $ws AND account_id = $new)", p)
        cur.execute("DELETE FROM scores WHERE workspace_id = $ws AND entity = 'account' AND "
                    "entity_id = $old AND as_of IN (SELECT as_of FROM scores WHERE "
                    "workspace_id = $ws AND entity = 'account' AND entity_id = $new)", p)
        filled = ", ".join(f"{c} = coalesce(o.{c}, t.{c})" for c in _FILLED)
        cur.execute(f"UPDATE accounts AS t SET {filled}, target = t.target OR o.target, "
                    "created_at = least(t.created_at, o.created_at), "
                    "updated_at = now()::TIMESTAMP "
                    "FROM (SELECT * FROM accounts WHERE workspace_id = $ws "
                    "AND account_id = $old) AS o "
                    "WHERE t.workspace_id = $ws AND t.account_id = $new", p)
    for table, column in ACCOUNT_REFS:
        cur.execute(f"UPDATE {table} SET {column} = $new WHERE workspace_id = $ws AND "
                    f"{column} = $old", p)
    for table in ("scores", "stage_changes"):
        cur.execute(f"UPDATE {table} SET entity_id = $new WHERE workspace_id = $ws AND "
                    "entity = 'account' AND entity_id = $old", p)
    if merge:
        cur.execute("DELETE FROM accounts WHERE workspace_id = $ws AND account_id = $old",
                    {"ws": ws, "old": old})
    else:
        cur.execute("UPDATE accounts SET account_id = $new WHERE workspace_id = $ws AND "
                    "account_id = $old", p)
    # links sent with the old id lead to the account (see store.accounts.moved_to): older
    # ids of it follow it, and an id that is an account's again is no alias any more
    cur.execute("UPDATE account_aliases SET account_id = $new WHERE workspace_id = $ws AND "
                "account_id = $old", p)
    cur.execute("DELETE FROM account_aliases WHERE workspace_id = $ws AND alias = $new",
                {"ws": ws, "new": new})
    cur.execute("INSERT OR REPLACE INTO account_aliases VALUES ($ws, $old, $new, "
                "now()::TIMESTAMP)", p)
    # touches changed account outside resolve: the server's next rescore is a full one
    touch_log.record_all(cur, ws)

"""Run the resolve stage on the writer's cursor: identities, persons, their accounts, and
the accounts behind addresses; incremental from the events loaded after *since*.

What a run reaches (see :mod:`demandloop.resolve.state` for when it rebuilds instead):

* the identity edges the new events add, and every identifier of the persons those edges
  touch: a browser that identifies today takes its whole earlier history to the person,
  two persons one identify links become one, a device that turns out shared splits;
* the persons reached, and those whose identify or group calls arrived: their emails,
  title, persona and account are found again;
* the addresses of new events, looked up once each (``ip_lookups``), or frozen with the
  account they matched when ``collect.ip`` truncates or drops them.

It leaves ``_dirty_ids(identifier)``: the identifiers whose touches must be attributed
again (the enrich runner rebuilds their visitors' touches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from demandloop.compute import isin
from demandloop.config import Settings
from demandloop.domains import alias_map, canonical_domain, personal_domains
from demandloop.resolve import person_queries as pq
from demandloop.resolve import queries as q
from demandloop.resolve.accounts import person_accounts
from demandloop.resolve.identity import resolve_persons
from demandloop.store.dialect import SqlEngine

Cursor = duckdb.DuckDBPyConnection
#: a job title -> (seniority, function): the enrich stage's persona rules, passed in (resolve
#: runs before enrich and never imports it)
Persona = Callable[[str], tuple[str | None, str | None]]


@dataclass
class PeopleResult:
    edges: int = 0
    persons_reached: int = 0
    accounts_created: int = 0


def people(cur: Cursor, ws: str, settings: Settings, since: int, full: bool,
           persona: Persona, lake: SqlEngine | None = None) -> PeopleResult:
    """Identities, persons and person accounts (see the module docstring); *persona*
    classifies the persons' titles. With *lake* (a rebuild only), the events are read by
    that engine: it finds the identity edges, group calls and titles, and the rest runs
    here over what it found."""
    if lake is not None and not full:
        raise ValueError("a lake's events make a rebuild, not an incremental run")
    ident = settings.identity
    if full:
        for table in ("identities", "person_identifiers"):
            cur.execute(f"DELETE FROM {table} WHERE workspace_id = $ws", {"ws": ws})
    out = PeopleResult(edges=q.new_edges(cur, ws, since, lake))
    aliases = alias_map(settings.identity.domain_aliases)
    pq.record_calls(cur, ws, since, full,
                    lambda site: aliases.get(d, d) if (d := canonical_domain(site)) else "",
                    lake)
    q.reach(cur, ws, full)
    before = q.old_persons(cur, ws) if not full else {
        str(r[0]) for r in cur.execute("SELECT person_id FROM persons WHERE workspace_id = $ws "
                                       "AND source = 'identity'", {"ws": ws}).fetchall()}
    edges = q.reach_edges(cur, ws)
    # A rebuild reaches every identifier (those of every edge, as the persons found are
    # made of): the set of them, and the filters by it, only narrow an incremental run
    # (at 10M events 750k identifiers, 1.2 s to gather and test)
    reached: set[str] = set() if full else {
        str(r[0]) for r in cur.execute("SELECT identifier FROM _reach").fetchall()}
    crm = q.crm_people(cur, ws, None if full else sorted(
        reached | set(edges["a"]) | set(edges["b"])))
    ids = resolve_persons(edges, set(crm["person_id"]), ident.max_users_per_device)
    if not full:
        ids = ids[isin(ids["identifier"], reached)]
    # every CRM contact is a person even without web activity
    crm_ids = pd.DataFrame({"identifier": "email:" + crm["email"], "kind": "email",
                            "person_id": crm["person_id"]})
    if not full:
        crm_ids = crm_ids[isin(crm_ids["identifier"], reached)]
    ids = pd.concat([ids, crm_ids[~isin(crm_ids["identifier"], ids["identifier"])]],
                    ignore_index=True)
    q.write_identifiers(cur, ws, ids)

    scope: list[str] | None = None
    if not full:
        described = pq.described(cur, ws, since)
        of_described = {str(r[0]) for r in cur.execute(
            "SELECT DISTINCT person_id FROM person_identifiers WHERE workspace_id = $ws "
            "AND identifier IN (SELECT unnest($ids))", {"ws": ws, "ids": described}).fetchall()}
        scope = sorted(before | set(ids["person_id"]) | of_described)
    rows = q.person_rows(cur, ws, scope)
    if not full:  # the CRM contacts among the persons to write
        crm = q.crm_people(cur, ws, sorted(set(rows["identifier"]) | set(rows["person_id"])))
    out.persons_reached = rows["person_id"].nunique()
    out.accounts_created = _persons(cur, ws, settings, rows, crm, before, scope, persona)
    if not full:  # (a rebuild builds every touch again)
        _dirty(cur, ws, rows)
    return out


def _persons(cur: Cursor, ws: str, settings: Settings, rows: pd.DataFrame,
             crm: pd.DataFrame, before: set[str], scope: list[str] | None,
             persona: Persona) -> int:
    """Find and write the persons of *rows* (their identifiers); returns accounts created."""
    ident = settings.identity
    personal = personal_domains(ident.personal_email_domains, ident.business_email_domains)
    aliases = alias_map(ident.domain_aliases)
    person_emails = rows[rows["kind"] == "email"].assign(
        email=lambda d: d["identifier"].str.removeprefix("email:"))[["person_id", "email"]]
    user_person = rows[rows["kind"] == "user"].assign(
        user_id=lambda d: d["identifier"].str.removeprefix("user:"))[["user_id", "person_id"]]
    users = None if scope is None else sorted(user_person["user_id"])
    groups = pq.group_calls(cur, ws, users).merge(user_person, on="user_id")
    group_links = groups.dropna(subset=["person_id", "domain"])
    matches = person_accounts(person_emails, crm[["email", "account_id"]],
                              group_links[["person_id", "domain"]], personal)
    # a known alias (a second brand or country domain) belongs to its main account
    matches["account_id"] = matches["account_id"].replace(aliases)
    new = matches[isin(matches["account_id"], _unknown(cur, ws, matches["account_id"]))
                  ].drop_duplicates("account_id")
    # named by pq.refresh_accounts, from every group call (not only these persons')
    new_accounts = pd.DataFrame({"account_id": new["account_id"], "domain": new["account_id"],
                                 "name": None, "source": new["source"]})
    titles = pq.titles(cur, ws, users).merge(user_person, on="user_id")
    persons = _person_table(cur, rows, person_emails, matches, crm, titles, persona)
    account_matches = pd.DataFrame({
        "subject_kind": "person", "subject": matches["person_id"],
        "account_id": matches["account_id"], "source": matches["source"],
        "confidence": matches["confidence"], "detail": None})
    gone = sorted(before - set(persons["person_id"]))
    pq.write_persons(cur, ws, persons, new_accounts, account_matches, gone, scope)
    pq.refresh_accounts(cur, ws)
    return len(new_accounts)


def _unknown(cur: Cursor, ws: str, ids: pd.Series) -> list[str]:
    """Which of *ids* no account has yet (found in DuckDB: reading every account id into
    Python cost 0.2 s a run at 100k accounts)."""
    cur.register("_ids", pa.table({"id": pa.array(ids.dropna().unique(), pa.string())}))
    try:
        return [str(r[0]) for r in cur.execute(
            "SELECT id FROM _ids ANTI JOIN (SELECT account_id FROM accounts WHERE "
            "workspace_id = $ws) a ON a.account_id = _ids.id", {"ws": ws}).fetchall()]
    finally:
        cur.unregister("_ids")


def _person_table(cur: Cursor, rows: pd.DataFrame, person_emails: pd.DataFrame,
                  matches: pd.DataFrame, crm: pd.DataFrame, titles: pd.DataFrame,
                  persona: Persona) -> pd.DataFrame:
    """One row per person: emails (sorted), the first as ``email``, account, title (the
    CRM's, else the latest identify traits of any of the person's user ids) and persona.
    Grouped in DuckDB: a pandas groupby with a Python function per person took 8 s for
    289k persons."""
    frames = {"_r": rows[["person_id"]], "_e": person_emails,
              "_m": matches[["person_id", "account_id"]],
              "_ct": crm[["person_id", "title"]],
              "_wt": titles[["person_id", "title"]].assign(n=np.arange(len(titles)))}
    for name, df in frames.items():
        # as Arrow: DuckDB reads pandas' Arrow-backed text through NumPy objects (0.6 s)
        cur.register(name, pa.Table.from_pandas(df, preserve_index=False))
    try:
        people = cur.execute("""
            SELECT p.person_id, e.emails, e.emails[1] AS email, m.account_id,
                   coalesce(ct.title, wt.title) AS title
            FROM (SELECT DISTINCT person_id FROM _r) p
            LEFT JOIN (SELECT person_id, list_sort(list_distinct(list(email))) AS emails
                       FROM _e GROUP BY person_id) e USING (person_id)
            LEFT JOIN _m m USING (person_id)
            LEFT JOIN _ct ct USING (person_id)
            -- rows come in time order: the last is the latest
            LEFT JOIN (SELECT person_id, arg_max(title, n) AS title FROM _wt
                       GROUP BY person_id) wt USING (person_id)
            ORDER BY p.person_id""").df()
    finally:
        for name in frames:
            cur.unregister(name)
    # emails stay as DuckDB returns them (arrays, or None): Arrow takes them as lists
    # the persona of each distinct title, mapped by dictionary (a Python function per
    # person cost 0.5 s of a rebuild's 289k)
    found = {t: persona(t) for t in people["title"].dropna().unique()}
    for i, col in enumerate(("seniority", "job_function")):
        people[col] = people["title"].map({t: v[i] for t, v in found.items()}).astype(object)
    return people


def _dirty(cur: Cursor, ws: str, rows: pd.DataFrame) -> None:
    """``_dirty_ids``: identifiers whose touches must be attributed again."""
    cur.register("_rows_ids", pa.table({"identifier": pa.array(
        np.asarray(rows["identifier"], dtype=object), pa.string())}))
    try:
        cur.execute("CREATE OR REPLACE TEMP TABLE _dirty_ids AS "
                    "SELECT identifier FROM _reach UNION SELECT identifier FROM _rows_ids")
    finally:
        cur.unregister("_rows_ids")

"""Reads for the resolve/enrich stages and the one-transaction write of their results."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

from demandloop.store.arrow import typed_table
from demandloop.store.db import Store

_EVENT_COLUMNS = """
    message_id, type, event, anonymous_id, user_id, previous_id, group_id,
    lower(trim(traits ->> '$.email')) AS email,
    coalesce(traits ->> '$.title', traits ->> '$.jobTitle', traits ->> '$.job_title') AS title,
    coalesce(traits ->> '$.website', traits ->> '$.domain') AS group_website,
    traits ->> '$.name' AS group_name,
    ip, url, path, referrer, title AS page_title,
    utm_source, utm_medium, utm_campaign, utm_term, utm_content, timestamp
"""


@dataclass
class Inputs:
    events: pd.DataFrame
    persons: pd.DataFrame
    accounts: pd.DataFrame
    ip_ranges: pd.DataFrame
    titles: pd.DataFrame
    ip_matches: pd.DataFrame  # message_id, account_id, source, confidence, detail


def read_inputs(store: Store) -> Inputs:
    ws = [store.workspace_id]
    with store.reader() as cur:
        events = cur.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE workspace_id = ?", ws).df()
        persons = cur.execute(
            "SELECT person_id, email, title, account_id FROM persons "
            "WHERE workspace_id = ? AND (source IS NULL OR source <> 'identity')", ws).df()
        accounts = cur.execute(
            "SELECT account_id, name FROM accounts WHERE workspace_id = ?", ws).df()
        ranges = cur.execute(
            "SELECT start_ip, end_ip, account_id FROM ip_ranges WHERE workspace_id = ?",
            ws).df()
        ip_matches = cur.execute(
            "SELECT message_id, account_id, source, confidence, detail FROM ip_matches "
            "WHERE workspace_id = ?", ws).df()
    titles = events.loc[(events["type"] == "identify") & events["title"].notna()
                        & events["user_id"].notna(), ["user_id", "title", "timestamp"]]
    return Inputs(events, persons, accounts, ranges, titles, ip_matches)


_TYPES = {"confidence": pa.float64(), "weight": pa.float64(), "ts": pa.timestamp("us"),
          "emails": pa.list_(pa.string())}


def _arrow(df: pd.DataFrame) -> pa.Table:
    return typed_table(df, _TYPES)


def write_outputs(store: Store, *, edges: pd.DataFrame, ids: pd.DataFrame,
                  persons: pd.DataFrame, new_accounts: pd.DataFrame, matches: pd.DataFrame,
                  touches: pd.DataFrame, ip_frozen: pd.DataFrame | None = None,
                  ip_kept: pd.DataFrame | None = None) -> None:
    """Replace the derived tables of the workspace in one transaction. With the IP policy
    (``collect.ip``), *ip_frozen* (``message_id, account_id, source, confidence, detail``)
    records what each event's address matched, and *ip_kept* (``ip, kept``) rewrites the
    events' addresses, in the same transaction."""
    e = edges.assign(kind_a=edges["a"].str.split(":", n=1).str[0],
                     id_a=edges["a"].str.split(":", n=1).str[1],
                     kind_b=edges["b"].str.split(":", n=1).str[0],
                     id_b=edges["b"].str.split(":", n=1).str[1])
    p = persons.assign(emails=persons["emails"].map(
        lambda x: list(x) if isinstance(x, list) else None))
    frames = {
        "_edges": _arrow(e[["kind_a", "id_a", "kind_b", "id_b", "source", "message_id", "ts"]]),
        "_ids": _arrow(ids[["identifier", "kind", "person_id"]]),
        "_persons": _arrow(p[["person_id", "email", "emails", "title", "seniority",
                              "job_function", "account_id"]]),
        "_new_accounts": _arrow(new_accounts[["account_id", "domain", "name", "source"]]),
        "_matches": _arrow(matches),
        "_touches": _arrow(touches),
    }
    if ip_frozen is not None and ip_kept is not None:
        frames["_ip_frozen"] = _arrow(ip_frozen[["message_id", "account_id", "source",
                                                 "confidence", "detail"]])
        frames["_ip_kept"] = _arrow(ip_kept[["ip", "kept"]])
    ws = {"ws": store.workspace_id}
    with store.writer() as cur:
        for name, table in frames.items():
            cur.register(name, table)
        try:
            for t in ("identities", "person_identifiers", "account_matches", "touches"):
                cur.execute(f"DELETE FROM {t} WHERE workspace_id = $ws", ws)
            cur.execute("INSERT INTO identities SELECT $ws, kind_a, id_a, kind_b, id_b, source, "
                        "message_id, ts FROM _edges", ws)
            cur.execute("INSERT INTO person_identifiers SELECT $ws, identifier, kind, person_id "
                        "FROM _ids", ws)
            cur.execute(
                "INSERT INTO accounts (workspace_id, account_id, domain, name, source, "
                "created_at, updated_at) SELECT $ws, account_id, domain, name, source, "
                "now()::TIMESTAMP, now()::TIMESTAMP FROM _new_accounts "
                "ANTI JOIN (SELECT account_id FROM accounts WHERE workspace_id = $ws) "
                "USING (account_id)", ws)
            # persons found by an earlier run but not this one are gone (e.g. un-merged)
            cur.execute("DELETE FROM persons WHERE workspace_id = $ws AND source = 'identity' "
                        "AND person_id NOT IN (SELECT person_id FROM _persons)", ws)
            cur.execute(
                "UPDATE persons AS t SET emails = r.emails, "
                "email = coalesce(t.email, r.email), title = coalesce(t.title, r.title), "
                "seniority = r.seniority, job_function = r.job_function, "
                "account_id = coalesce(r.account_id, t.account_id), "
                "updated_at = now()::TIMESTAMP "
                "FROM _persons AS r WHERE t.workspace_id = $ws AND t.person_id = r.person_id",
                ws)
            cur.execute(
                "INSERT INTO persons (workspace_id, person_id, email, emails, title, seniority, "
                "job_function, account_id, source, created_at, updated_at) "
                "SELECT $ws, person_id, email, emails, title, seniority, job_function, "
                "account_id, 'identity', now()::TIMESTAMP, now()::TIMESTAMP FROM _persons "
                "ANTI JOIN (SELECT person_id FROM persons WHERE workspace_id = $ws) "
                "USING (person_id)", ws)
            cur.execute("INSERT INTO account_matches SELECT $ws, subject_kind, subject, "
                        "account_id, source, confidence, detail FROM _matches", ws)
            cur.execute(
                "INSERT INTO touches (workspace_id, touch_id, message_id, account_id, "
                "person_id, anonymous_id, ts, channel, motion, activity, weight, topic, "
                "match_source, confidence, ip, seq) SELECT $ws, touch_id, message_id, "
                "account_id, person_id, anonymous_id, ts, channel, motion, activity, weight, "
                "topic, match_source, confidence, ip, "
                "row_number() OVER (ORDER BY ts, touch_id) FROM _touches", ws)
            if "_ip_frozen" in frames:
                cur.execute("INSERT INTO ip_matches SELECT $ws, message_id, account_id, "
                            "source, confidence, detail FROM _ip_frozen", ws)
                cur.execute("UPDATE events AS e SET ip = k.kept FROM _ip_kept AS k "
                            "WHERE e.workspace_id = $ws AND e.ip = k.ip AND e.message_id IN "
                            "(SELECT message_id FROM _ip_frozen)", ws)
        finally:
            for name in frames:
                cur.unregister(name)

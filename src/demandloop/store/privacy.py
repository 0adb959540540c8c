"""One person's rows in every table: found, exported, erased (data-subject requests).

A person is named by an email, a user id or an anonymous id. Their identifiers are gathered
from the resolved identity graph (``person_identifiers``) and, for events not resolved yet,
from the raw events: the user and anonymous ids of identify calls carrying the email, and the
anonymous ids used by one of their user ids alone (a device shared by several people is not
followed, as in resolution). Every table's rows that name any of those identifiers, or come
from one of their events, belong to the person.

Erasing deletes those rows in one transaction, puts a hash of each address on the
suppression list (reason ``erased``: the address itself is gone, and a sequence never mails
it again), records the erasure with counts and no personal data, and then rewrites the
database file, because DuckDB keeps deleted rows' bytes in its blocks until they are reused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from demandloop.store import touch_log
from demandloop.store.db import Store, transaction

ERASED = "sha256:"

_SESSIONS = (
    "anonymous_id IN (SELECT id FROM _anons) OR person_id IN (SELECT id FROM _persons) OR "
    "session_id IN (SELECT session_id FROM meetings WHERE workspace_id = $ws AND "
    "(lower(email) IN (SELECT id FROM _emails) OR anonymous_id IN (SELECT id FROM _anons))) "
    "OR EXISTS (SELECT 1 FROM _needles n WHERE contains(lower(CAST(traits AS VARCHAR)), n.id))")



def _names(column: str) -> str:
    """SQL: *column*'s text names the subject."""
    return (f"EXISTS (SELECT 1 FROM _needles n WHERE "
            f"contains(lower(coalesce({column}, '')), n.id))")


_JOB_PAYLOAD = _names("CAST(payload AS VARCHAR)")
_JOB_TEXT = f"{_names('result')} OR {_names('last_error')}"
#: what an erasure leaves of a job's outcome that named the person
ERASED_TEXT = "(erased: it named a person erased since)"

#: per table, the rows of the subject (temp tables _emails, _users, _anons, _persons, _events)
PREDICATES: dict[str, str] = {
    "events": (
        "user_id IN (SELECT id FROM _users) OR anonymous_id IN (SELECT id FROM _anons) "
        "OR message_id IN (SELECT id FROM _events)"),
    "identities": (
        "(kind_a = 'email' AND id_a IN (SELECT id FROM _emails)) "
        "OR (kind_a = 'user' AND id_a IN (SELECT id FROM _users)) "
        "OR (kind_a = 'anon' AND id_a IN (SELECT id FROM _anons)) "
        "OR (kind_b = 'email' AND id_b IN (SELECT id FROM _emails)) "
        "OR (kind_b = 'user' AND id_b IN (SELECT id FROM _users)) "
        "OR (kind_b = 'anon' AND id_b IN (SELECT id FROM _anons))"),
    "person_identifiers": "person_id IN (SELECT id FROM _persons)",
    "described_calls": ("user_id IN (SELECT id FROM _users) "
                        "OR message_id IN (SELECT id FROM _events)"),
    "persons": ("person_id IN (SELECT id FROM _persons) "
                "OR lower(email) IN (SELECT id FROM _emails)"),
    "touches": ("person_id IN (SELECT id FROM _persons) "
                "OR anonymous_id IN (SELECT id FROM _anons) "
                "OR message_id IN (SELECT id FROM _events)"),
    "leads": "person_id IN (SELECT id FROM _persons)",
    "scores": "entity = 'person' AND entity_id IN (SELECT id FROM _persons)",
    "stage_changes": "entity = 'person' AND entity_id IN (SELECT id FROM _persons)",
    "account_matches": "subject_kind = 'person' AND subject IN (SELECT id FROM _persons)",
    "predictions": "entity_id IN (SELECT id FROM _persons)",
    # a job whose payload names them, or whose outcome does ("enrolled ann@acme.com in
    # ...", a receiver's error quoting them): the second kind is the account's, so an
    # erasure keeps it and blanks the text (see _JOB_TEXT)
    "jobs": f"({_JOB_PAYLOAD}) OR ({_JOB_TEXT})",
    "enrolments": ("person_id IN (SELECT id FROM _persons) "
                   "OR lower(email) IN (SELECT id FROM _emails)"),
    "mail_messages": ("lower(to_email) IN (SELECT id FROM _emails) OR enrolment_id IN "
                      "(SELECT enrolment_id FROM enrolments WHERE workspace_id = $ws AND "
                      "(person_id IN (SELECT id FROM _persons) "
                      "OR lower(email) IN (SELECT id FROM _emails)))"),
    "suppressions": "lower(email) IN (SELECT id FROM _emails)",
    "ip_matches": "message_id IN (SELECT id FROM _events)",
    # chat: the subject's conversations (their browser's, their person's, the one they
    # booked a meeting from, one whose answers name them) and any message naming them
    "chat_messages": (
        "session_id IN (SELECT session_id FROM chat_sessions WHERE workspace_id = $ws AND "
        f"({_SESSIONS})) OR EXISTS (SELECT 1 FROM _needles n WHERE "
        "contains(lower(text), n.id))"),
    "chat_sessions": _SESSIONS,
    "meetings": "lower(email) IN (SELECT id FROM _emails) OR anonymous_id IN "
                "(SELECT id FROM _anons)",
    # (erased before the meetings its predicate reads; a mail server's answer may quote
    # the address)
    "meeting_invites": (
        "meeting_id IN (SELECT meeting_id FROM meetings WHERE workspace_id = $ws AND "
        "(lower(email) IN (SELECT id FROM _emails) OR anonymous_id IN (SELECT id FROM _anons))) "
        "OR EXISTS (SELECT 1 FROM _needles n WHERE contains(lower(coalesce(detail, '')), n.id))"),
    # the address lookups resolve keeps: those no remaining event uses (events go first)
    "ip_lookups": ("ip NOT IN (SELECT ip FROM events WHERE workspace_id = $ws "
                   "AND ip IS NOT NULL)"),
}
#: erased first: their predicates read other tables' rows of the subject
_FIRST = ("mail_messages", "chat_messages", "chat_sessions", "meeting_invites")
ORDER = (*_FIRST, *[t for t in PREDICATES if t not in _FIRST])


@dataclass
class Subject:
    """Everything that identifies one person in a workspace."""

    key: str
    emails: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    anons: set[str] = field(default_factory=set)
    persons: set[str] = field(default_factory=set)
    events: set[str] = field(default_factory=set)

    @property
    def found(self) -> bool:
        return bool(self.persons or self.events)

    def needles(self) -> set[str]:
        """Strings whose presence in free text (a job's payload, a log line) names them."""
        return {s.lower() for s in self.emails | self.users | self.anons | self.persons
                if len(s) >= 6}


def email_hash(email: str) -> str:
    """How an erased address stays on the suppression list."""
    return ERASED + hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _ids(cur: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> set[str]:
    return {str(r[0]) for r in cur.execute(sql, params).fetchall() if r[0] is not None}


def find(cur: duckdb.DuckDBPyConnection, workspace: str, key: str) -> Subject:
    """The subject *key* (an email, user id or anonymous id) names."""
    key = key.strip()
    s = Subject(key)
    low = key.lower()
    if "@" in key:
        s.emails.add(low)
    s.users.add(key)
    s.anons.add(key)
    p = {"ws": workspace}
    for _ in range(4):  # until nothing new: email -> ids -> person -> more ids
        before = (len(s.emails), len(s.users), len(s.anons), len(s.persons))
        _register(cur, s)
        s.persons |= _ids(cur, (
            "SELECT person_id FROM person_identifiers WHERE workspace_id = $ws AND ("
            "(kind = 'email' AND identifier IN (SELECT 'email:' || id FROM _emails)) OR "
            "(kind = 'user' AND identifier IN (SELECT 'user:' || id FROM _users)) OR "
            "(kind = 'anon' AND identifier IN (SELECT 'anon:' || id FROM _anons))) "
            "UNION SELECT person_id FROM persons WHERE workspace_id = $ws AND "
            "(lower(email) IN (SELECT id FROM _emails) OR "
            "list_has_any(list_transform(emails, x -> lower(x)), "
            "(SELECT list(id) FROM _emails)))"), p)
        _register(cur, s)
        for kind, target in (("email", s.emails), ("user", s.users), ("anon", s.anons)):
            target |= _ids(cur, (
                f"SELECT substr(identifier, {len(kind) + 2}) FROM person_identifiers WHERE "
                f"workspace_id = $ws AND kind = '{kind}' AND person_id IN "
                "(SELECT id FROM _persons)"), p)
        s.emails |= _ids(cur, "SELECT lower(unnest(emails)) FROM persons WHERE "
                              "workspace_id = $ws AND person_id IN (SELECT id FROM _persons)",
                         p)
        # not resolved yet: identify calls carrying the address, devices used by them alone
        for column, target in (("user_id", s.users), ("anonymous_id", s.anons)):
            target |= _ids(cur, (
                f"SELECT DISTINCT {column} FROM events WHERE workspace_id = $ws AND "
                "lower(coalesce(traits ->> 'email', context -> 'traits' ->> 'email')) "
                "IN (SELECT id FROM _emails)"), p)
        s.anons |= _ids(cur, (
            "SELECT anonymous_id FROM events WHERE workspace_id = $ws AND "
            "anonymous_id IS NOT NULL AND user_id IS NOT NULL GROUP BY anonymous_id "
            "HAVING count(DISTINCT user_id) = 1 AND "
            "any_value(user_id) IN (SELECT id FROM _users)"), p)
        if (len(s.emails), len(s.users), len(s.anons), len(s.persons)) == before:
            break
    _register(cur, s)
    s.events = _ids(cur, (
        "SELECT message_id FROM events WHERE workspace_id = $ws AND ("
        "user_id IN (SELECT id FROM _users) OR anonymous_id IN (SELECT id FROM _anons) OR "
        "(type = 'alias' AND (previous_id IN (SELECT id FROM _users) OR "
        "previous_id IN (SELECT id FROM _anons))) OR "
        "lower(traits ->> 'email') IN (SELECT id FROM _emails) OR "
        "lower(context -> 'traits' ->> 'email') IN (SELECT id FROM _emails) OR "
        "lower(properties ->> 'email') IN (SELECT id FROM _emails))"), p)
    _register(cur, s)
    return s


def _register(cur: duckdb.DuckDBPyConnection, s: Subject) -> None:
    for name, values in (("_emails", s.emails), ("_users", s.users), ("_anons", s.anons),
                         ("_persons", s.persons), ("_events", s.events),
                         ("_needles", s.needles())):
        cur.register(name, pa.table({"id": pa.array(sorted(values), pa.string())}))


def export(store: Store, key: str) -> dict[str, Any]:
    """Every row stored about the person *key* names, by table (a data-subject access
    request), with the identifiers that tied the rows to them."""
    with store.reader() as cur:
        s = find(cur, store.workspace_id, key)
        tables: dict[str, list[dict[str, Any]]] = {}
        for table, where in PREDICATES.items():
            rel = cur.execute(f"SELECT * FROM {table} WHERE workspace_id = $ws AND ({where})",
                              {"ws": store.workspace_id})
            names = [d[0] for d in rel.description or []]
            rows = [dict(zip(names, r, strict=True)) for r in rel.fetchall()]
            if rows:
                tables[table] = rows
    users, anons = s.users, s.anons
    # The key is searched for as a user id and as an anonymous id (it may be either), but
    # named as one only where a row carries it as such: a data subject is told what is held.
    if not _carried(tables, ("user_id",), "user", s.key):
        users = users - {s.key}
    if not _carried(tables, ("anonymous_id",), "anon", s.key):
        anons = anons - {s.key}
    return {"subject": key, "found": s.found,
            "identifiers": {"emails": sorted(s.emails), "user_ids": sorted(users),
                            "anonymous_ids": sorted(anons), "person_ids": sorted(s.persons)},
            "tables": tables}


def _carried(tables: dict[str, list[dict[str, Any]]], columns: tuple[str, ...], kind: str,
             key: str) -> bool:
    """Does an exported row carry *key* in one of *columns*, or as an identity edge's or
    identifier's *kind* id?"""
    for rows in tables.values():
        for row in rows:
            if any(row.get(c) == key for c in columns):
                return True
            if (row.get("kind_a"), row.get("id_a")) == (kind, key) or (
                    row.get("kind_b"), row.get("id_b")) == (kind, key):
                return True
            if (row.get("kind"), row.get("identifier")) == (kind, f"{kind}:{key}"):
                return True
    return False


def erase(store: Store, key: str, now: dt.datetime) -> tuple[Subject, dict[str, int]]:
    """Delete the person *key* names from every table (see the module docstring); returns
    them and the rows removed per table. The caller rewrites the file (:meth:`Store.rewrite`)."""
    counts: dict[str, int] = {}
    with store.locked_cursor() as cur, transaction(cur):
        s = find(cur, store.workspace_id, key)
        p = {"ws": store.workspace_id}
        for table in ORDER:
            where = PREDICATES[table]
            blanked = []
            if table == "jobs":  # an account's job that named them: its text goes
                blanked = cur.execute(
                    f"UPDATE jobs SET result = CASE WHEN {_names('result')} THEN $erased "
                    "ELSE result END, last_error = CASE WHEN "
                    f"{_names('last_error')} THEN $erased ELSE last_error END "
                    f"WHERE workspace_id = $ws AND NOT ({_JOB_PAYLOAD}) AND ({_JOB_TEXT}) "
                    "RETURNING 1", {**p, "erased": ERASED_TEXT}).fetchall()
                where = _JOB_PAYLOAD
            rows = cur.execute(f"DELETE FROM {table} WHERE workspace_id = $ws AND "
                               f"({where}) RETURNING 1", p).fetchall()
            if rows or blanked:
                counts[table] = len(rows) + len(blanked)
        if counts.get("touches"):
            touch_log.record_all(cur, store.workspace_id)  # the live rescore starts over
        for email in sorted(s.emails):
            cur.execute("INSERT INTO suppressions VALUES ($ws, $h, 'erased', 'privacy', $now) "
                        "ON CONFLICT DO NOTHING", {**p, "h": email_hash(email), "now": now})
        cur.execute("INSERT INTO erasures VALUES ($ws, $id, $now, $rows)",
                    {**p, "id": uuid.uuid4().hex, "now": now,
                     "rows": orjson.dumps(counts).decode()})
    return s, counts

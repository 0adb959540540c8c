"""Sequence state in the store: enrolments, the messages claimed and sent, suppressions,
static audience lists, and the stop signals read from events.

A message is *claimed* (a ``sending`` row, committed) before it is handed to SMTP and marked
``sent`` after: a crash in between leaves the row ``sending``, which the next run turns into
``in_doubt`` and does **not** send again (a second copy in someone's inbox is worse than one
possibly lost; ``sequences`` reports in-doubt messages so they can be checked).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import pandas as pd
import pyarrow as pa

from demandloop.activate.suppression_csv import domain_key
from demandloop.store.db import Store
from demandloop.store.privacy import email_hash

# where an event names its email address, first match wins
_EVENT_EMAIL = ("lower(coalesce(e.properties ->> '$.email', e.context ->> '$.traits.email', "
                "e.traits ->> '$.email', p.email))")
#: a suppression ``s`` of the whole domain of *email* (``@acme.com``: that domain exactly)
_BY_DOMAIN = ("(starts_with(s.email, '@') AND "
              "'@' || lower(split_part({email}, '@', -1)) = s.email)")
#: joins ``i`` (person_identifiers) and ``p`` (persons) to events ``e`` by user or anonymous id
EVENT_PERSON_JOIN = (
    "LEFT JOIN person_identifiers i ON i.workspace_id = e.workspace_id AND "
    "i.identifier = coalesce('user:' || e.user_id, 'anon:' || e.anonymous_id) "
    "LEFT JOIN persons p ON p.workspace_id = e.workspace_id AND p.person_id = i.person_id")


class Suppressions(dict[str, str]):
    """Suppressed addresses (lower case) and domains (``@acme.com``), and why. An erased
    person's address is kept only as its hash (:func:`demandloop.store.privacy.email_hash`):
    looking an address up finds it either way, or by its domain."""

    def _key(self, email: object) -> object:
        if isinstance(email, str) and not dict.__contains__(self, email):
            for key in (email_hash(email), domain_key(email)):
                if dict.__contains__(self, key):
                    return key
        return email

    def __contains__(self, email: object) -> bool:
        return dict.__contains__(self, self._key(email))

    def __getitem__(self, email: str) -> str:
        return dict.__getitem__(self, str(self._key(email)))


def suppressed(store: Store) -> Suppressions:
    """Every suppressed address (lower case) and why."""
    with store.reader() as cur:
        rows = cur.execute("SELECT email, reason FROM suppressions WHERE workspace_id = ?",
                           [store.workspace_id]).fetchall()
    return Suppressions({str(e): str(r) for e, r in rows})


def suppress(store: Store, rows: list[tuple[str, str, str]], now: dt.datetime) -> int:
    """Add (email, reason, source) rows; an address already suppressed keeps its first
    reason. Returns how many were new."""
    if not rows:
        return 0
    table = pa.table({"email": [r[0].strip().lower() for r in rows],
                      "reason": [r[1] for r in rows], "source": [r[2] for r in rows]})
    with store.writer() as cur:
        cur.register("_sup", table)
        try:
            before = cur.execute("SELECT count(*) FROM suppressions WHERE workspace_id = ?",
                                 [store.workspace_id]).fetchone()
            cur.execute("INSERT INTO suppressions SELECT DISTINCT ON (email) $ws, email, "
                        "reason, source, $now FROM _sup ON CONFLICT DO NOTHING",
                        {"ws": store.workspace_id, "now": now})
            after = cur.execute("SELECT count(*) FROM suppressions WHERE workspace_id = ?",
                                [store.workspace_id]).fetchone()
        finally:
            cur.unregister("_sup")
    return int(after[0]) - int(before[0]) if after and before else 0


def unsuppress(store: Store, email: str) -> bool:
    with store.writer() as cur:
        n = cur.execute("DELETE FROM suppressions WHERE workspace_id = ? AND email = ? "
                        "RETURNING email", [store.workspace_id, email.strip().lower()]).fetchall()
    return bool(n)


def sync_suppressions(store: Store, unsubscribe: list[str], bounce: list[str],
                      now: dt.datetime) -> int:
    """Suppress every address an unsubscribe or bounce event names (idempotent)."""
    names = unsubscribe + bounce
    if not names:
        return 0
    with store.reader() as cur:
        rows = cur.execute(
            f"SELECT DISTINCT {_EVENT_EMAIL} AS email, e.event FROM events e {EVENT_PERSON_JOIN} "
            "WHERE e.workspace_id = $ws AND e.type = 'track' AND list_contains($names, e.event)",
            {"ws": store.workspace_id, "names": names}).fetchall()
    found = [(str(email), "unsubscribe" if event in unsubscribe else "bounce",
              f"event:{event}") for email, event in rows if email]
    added = suppress(store, found, now)
    stop_suppressed(store, now)
    return added


def stop_suppressed(store: Store, now: dt.datetime) -> int:
    """End every active enrolment whose address is suppressed, due or not (so the list
    never shows an unsubscribed person as active while their next step waits)."""
    with store.writer() as cur:
        rows = cur.execute(
            "UPDATE enrolments AS e SET status = 'stopped', stop_reason = s.reason, "
            "next_at = NULL, updated_at = $now FROM suppressions AS s "
            "WHERE e.workspace_id = $ws AND s.workspace_id = $ws AND e.status = 'active' "
            f"AND (lower(e.email) = s.email OR {_BY_DOMAIN.format(email='e.email')}) "
            "RETURNING 1",
            {"ws": store.workspace_id, "now": now}).fetchall()
    return len(rows)


def signals(store: Store, kinds: dict[str, list[str]], since: dt.datetime | None
            ) -> dict[str, set[str]]:
    """Stop signals by person id *and* by lower-case email: ``{key: {"reply", ...}}``."""
    by_event = {e: k for k, names in kinds.items() for e in names}
    if not by_event:
        return {}
    with store.reader() as cur:
        rows = cur.execute(
            f"SELECT e.event, i.person_id, {_EVENT_EMAIL} FROM events e {EVENT_PERSON_JOIN} "
            "WHERE e.workspace_id = $ws AND e.type = 'track' AND list_contains($names, e.event) "
            "AND ($since::TIMESTAMP IS NULL OR e.timestamp >= $since::TIMESTAMP)",
            {"ws": store.workspace_id, "names": list(by_event), "since": since}).fetchall()
    out: dict[str, set[str]] = defaultdict(set)
    for event, person, email in rows:
        for key in (person, email):
            if key:
                out[str(key)].add(by_event[event])
    return dict(out)


def enrol(store: Store, rows: list[dict[str, Any]]) -> int:
    """Insert enrolments; a person already in the sequence (ever) is left alone."""
    if not rows:
        return 0
    cols = ("enrolment_id", "sequence", "person_id", "account_id", "email", "mailbox",
            "timezone", "stage_at_enrolment", "workflow", "enrolled_at")
    table = pa.table({c: [r[c] for r in rows] for c in cols})
    with store.writer() as cur:
        cur.register("_enr", table)
        try:
            new = cur.execute(
                "INSERT INTO enrolments SELECT $ws, enrolment_id, sequence, person_id, "
                "account_id, email, mailbox, timezone, stage_at_enrolment, 0, 'active', NULL, "
                "enrolled_at, 0, workflow, enrolled_at, enrolled_at FROM _enr "
                "ON CONFLICT DO NOTHING RETURNING enrolment_id",
                {"ws": store.workspace_id}).fetchall()
        finally:
            cur.unregister("_enr")
    return len(new)


def due(store: Store, now: dt.datetime) -> pd.DataFrame:
    with store.reader() as cur:
        return cur.execute(
            "SELECT * EXCLUDE (workspace_id) FROM enrolments WHERE workspace_id = ? AND "
            "status = 'active' AND next_at <= ? ORDER BY next_at, enrolment_id",
            [store.workspace_id, now]).df()


def sends(store: Store, since: dt.datetime) -> dict[str, list[dt.datetime]]:
    """Per mailbox, the claim times of messages that count against its limits."""
    with store.reader() as cur:
        rows = cur.execute(
            "SELECT mailbox, claimed_at FROM mail_messages WHERE workspace_id = ? AND "
            "status IN ('sent', 'sending', 'in_doubt', 'bounced') AND claimed_at >= ? "
            "ORDER BY claimed_at", [store.workspace_id, since]).fetchall()
    out: dict[str, list[dt.datetime]] = defaultdict(list)
    for box, at in rows:
        out[str(box)].append(at)
    return dict(out)


def first_sends(store: Store) -> dict[str, dt.datetime]:
    with store.reader() as cur:
        rows = cur.execute("SELECT mailbox, min(claimed_at) FROM mail_messages WHERE "
                           "workspace_id = ? GROUP BY 1", [store.workspace_id]).fetchall()
    return {str(b): at for b, at in rows}


def claim(store: Store, enrolment: str, step: int, msg: dict[str, Any]) -> str | None:
    """Claim (enrolment, step) for sending. Returns None when claimed now, else the status
    of an earlier claim (``sent``, ``sending`` after a crash, ``deferred``...)."""
    with store.writer() as cur:
        prior = cur.execute("SELECT status FROM mail_messages WHERE workspace_id = ? AND "
                            "enrolment_id = ? AND step = ?",
                            [store.workspace_id, enrolment, step]).fetchone()
        if prior is not None and prior[0] != "deferred":
            return str(prior[0])
        cur.execute("INSERT OR REPLACE INTO mail_messages VALUES (?, ?, ?, ?, ?, ?, ?, "
                    "'sending', NULL, ?, NULL)",
                    [store.workspace_id, enrolment, step, msg["message_id"], msg["mailbox"],
                     msg["to"], msg["subject"], msg["now"]])
    return None


def settle(store: Store, enrolment: str, step: int, status: str, now: dt.datetime,
           error: str | None = None) -> None:
    with store.writer() as cur:
        cur.execute("UPDATE mail_messages SET status = ?, error = ?, sent_at = CASE WHEN ? = "
                    "'sent' THEN ? END WHERE workspace_id = ? AND enrolment_id = ? AND step = ?",
                    [status, error, status, now, store.workspace_id, enrolment, step])


def update(store: Store, enrolment: str, now: dt.datetime, **values: Any) -> None:
    """Set an enrolment's step, status, stop_reason, next_at or attempts."""
    allowed = {"step", "status", "stop_reason", "next_at", "attempts"}
    sets = [f"{k} = ${k}" for k in values if k in allowed]
    with store.writer() as cur:
        cur.execute(f"UPDATE enrolments SET {', '.join(sets)}, updated_at = $now WHERE "
                    "workspace_id = $ws AND enrolment_id = $id",
                    {**{k: v for k, v in values.items() if k in allowed}, "now": now,
                     "ws": store.workspace_id, "id": enrolment})


def add_task(store: Store, task: dict[str, Any], now: dt.datetime) -> None:
    with store.writer() as cur:
        cur.execute("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [store.workspace_id, task["task_id"], task["account_id"], task["title"],
                     task["owner"], task["due_at"], task["workflow"], now])


def add_to_audience(store: Store, audience: str, account: str, workflow: str,
                    now: dt.datetime) -> None:
    with store.writer() as cur:
        cur.execute("INSERT INTO audience_members VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [store.workspace_id, audience, account, workflow, now])


def audience_lists(store: Store) -> dict[str, int]:
    """The static lists workflows fill (``add_to_audience``), with their sizes."""
    with store.reader() as cur:
        rows = cur.execute("SELECT audience, count(*) FROM audience_members WHERE "
                           "workspace_id = ? GROUP BY 1 ORDER BY 1",
                           [store.workspace_id]).fetchall()
    return {str(a): int(n) for a, n in rows}


def audience_members(store: Store, audience: str) -> list[str]:
    with store.reader() as cur:
        rows = cur.execute("SELECT account_id FROM audience_members WHERE workspace_id = ? AND "
                           "audience = ? ORDER BY added_at, account_id",
                           [store.workspace_id, audience]).fetchall()
    return [str(r[0]) for r in rows]


def enrolments(store: Store, sequence: str | None = None) -> pd.DataFrame:
    with store.reader() as cur:
        return cur.execute(
            "SELECT e.sequence, e.account_id, e.person_id, e.email, e.mailbox, e.step, "
            "e.status, e.stop_reason, e.timezone, e.next_at, e.enrolled_at, "
            "(SELECT count(*) FROM mail_messages m WHERE m.workspace_id = e.workspace_id AND "
            "m.enrolment_id = e.enrolment_id AND m.status = 'sent') AS sent "
            "FROM enrolments e WHERE e.workspace_id = $ws AND "
            "($seq IS NULL OR e.sequence = $seq) ORDER BY e.enrolled_at, e.email",
            {"ws": store.workspace_id, "seq": sequence}).df()


def messages(store: Store) -> pd.DataFrame:
    with store.reader() as cur:
        return cur.execute("SELECT * EXCLUDE (workspace_id) FROM mail_messages WHERE "
                           "workspace_id = ? ORDER BY claimed_at", [store.workspace_id]).df()

"""Chat sessions, messages and meetings in the store (SQL on the caller's cursor).

Booking runs inside the single writer's transaction: the overlap check and the insert
see the same state, so two visitors racing for one rep's time cannot both get it; the
primary key of ``meeting_slots`` (rep, start) refuses a second booking of the same start
even if they did.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import orjson

from demandloop.activate.routing import Booking

Cursor = duckdb.DuckDBPyConnection


class Taken(Exception):
    """The slot was booked by someone else first."""


def _naive(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None)


def _aware(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


def new_session(cur: Cursor, ws: str, session_id: str, row: dict[str, Any],
                anonymous_id: str | None, playbook: str | None, url: str | None,
                now: dt.datetime) -> None:
    cur.execute("INSERT INTO chat_sessions VALUES ($ws, $id, $anon, $account, $person, "
                "$playbook, $url, '{}', $now, $now)",
                {"ws": ws, "id": session_id, "anon": anonymous_id,
                 "account": row.get("account_id"), "person": row.get("person_id"),
                 "playbook": playbook, "url": url, "now": _naive(now)})


def session(cur: Cursor, ws: str, session_id: str) -> dict[str, Any] | None:
    found = cur.execute("SELECT session_id, anonymous_id, account_id, playbook, url, traits, "
                        "started_at FROM chat_sessions WHERE workspace_id = $ws AND "
                        "session_id = $id", {"ws": ws, "id": session_id}).fetchone()
    if found is None:
        return None
    keys = ("session_id", "anonymous_id", "account_id", "playbook", "url", "traits",
            "started_at")
    out = dict(zip(keys, found, strict=True))
    out["traits"] = orjson.loads(out["traits"] or "{}")
    return out


def set_traits(cur: Cursor, ws: str, session_id: str, traits: dict[str, Any],
               now: dt.datetime) -> None:
    cur.execute("UPDATE chat_sessions SET traits = $t, updated_at = $now "
                "WHERE workspace_id = $ws AND session_id = $id",
                {"ws": ws, "id": session_id, "t": orjson.dumps(traits).decode(),
                 "now": _naive(now)})


def add_message(cur: Cursor, ws: str, session_id: str, role: str, text: str,
                now: dt.datetime, citations: list[dict[str, str]] | None = None,
                relevance: float | None = None) -> None:
    cur.execute("INSERT INTO chat_messages SELECT $ws, $id, coalesce(max(seq), 0) + 1, $role, "
                "$text, $cites, $rel, $now FROM chat_messages WHERE workspace_id = $ws "
                "AND session_id = $id",
                {"ws": ws, "id": session_id, "role": role, "text": text,
                 "cites": orjson.dumps(citations).decode() if citations is not None else None,
                 "rel": relevance, "now": _naive(now)})


def messages(cur: Cursor, ws: str, session_id: str) -> list[dict[str, Any]]:
    rows = cur.execute("SELECT seq, role, text, citations, relevance, sent_at "
                       "FROM chat_messages WHERE workspace_id = $ws AND session_id = $id "
                       "ORDER BY seq", {"ws": ws, "id": session_id}).fetchall()
    return [{"seq": s, "role": r, "text": t, "citations": orjson.loads(c) if c else None,
             "relevance": rel, "at": at} for s, r, t, c, rel, at in rows]


def history(cur: Cursor, ws: str) -> list[Booking]:
    """Every booked meeting as the round robin counts it (rep, who was eligible, when)."""
    rows = cur.execute("SELECT rep, eligible, created_at FROM meetings WHERE workspace_id = "
                       "$ws AND status = 'booked' ORDER BY created_at, meeting_id",
                       {"ws": ws}).fetchall()
    return [Booking(rep, _aware(at), tuple(eligible or (rep,))) for rep, eligible, at in rows]


def booked(cur: Cursor, ws: str, since: dt.datetime) -> dict[str, list[tuple[dt.datetime,
                                                                             dt.datetime]]]:
    """Each rep's booked meetings ending after *since* (busy time routing must respect)."""
    out: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
    for rep, a, b in cur.execute(
            "SELECT rep, starts_at, ends_at FROM meetings WHERE workspace_id = $ws AND "
            "status = 'booked' AND ends_at > $since ORDER BY starts_at",
            {"ws": ws, "since": _naive(since)}).fetchall():
        out.setdefault(rep, []).append((_aware(a), _aware(b)))
    return out


def insert_meeting(cur: Cursor, ws: str, m: dict[str, Any], now: dt.datetime) -> None:
    """Book *m* (its rep, start and end among its fields), or raise :class:`Taken` when the
    rep has a meeting overlapping it. Call inside the writer's transaction."""
    clash = cur.execute("SELECT count(*) FROM meetings WHERE workspace_id = $ws AND rep = $rep "
                        "AND status = 'booked' AND starts_at < $b AND ends_at > $a",
                        {"ws": ws, "rep": m["rep"], "a": _naive(m["starts_at"]),
                         "b": _naive(m["ends_at"])}).fetchone()
    if clash and clash[0]:
        raise Taken(m["rep"])
    try:
        cur.execute("INSERT INTO meeting_slots VALUES ($ws, $rep, $a, $id)",
                    {"ws": ws, "rep": m["rep"], "a": _naive(m["starts_at"]),
                     "id": m["meeting_id"]})
    except duckdb.ConstraintException:
        raise Taken(m["rep"]) from None
    cur.execute("INSERT INTO meetings VALUES ($ws, $id, $rep, $a, $b, $account, $email, $name, "
                "$anon, $session, $reason, $eligible, $tz, 'booked', $seq, $now, $now)",
                {"ws": ws, "id": m["meeting_id"], "rep": m["rep"], "a": _naive(m["starts_at"]),
                 "b": _naive(m["ends_at"]), "account": m.get("account_id"),
                 "email": m["email"], "name": m.get("name"), "anon": m.get("anonymous_id"),
                 "session": m.get("session_id"), "reason": m.get("route_reason"),
                 "eligible": list(m.get("eligible") or ()), "tz": m.get("visitor_timezone"),
                 "seq": m.get("sequence", 0), "now": _naive(now)})


_MEETING = ("meeting_id", "rep", "starts_at", "ends_at", "account_id", "email", "name",
            "anonymous_id", "session_id", "route_reason", "eligible", "visitor_timezone",
            "status", "sequence", "created_at")


#: a meeting's columns (of ``meetings m``) and its account's name, as :func:`meeting` gives
#: them: the invites' title names the account as the booking's did, whoever sends it later
_MEETING_SQL = (", ".join(f"m.{c}" for c in _MEETING) + ", (SELECT a.name FROM accounts a "
                "WHERE a.workspace_id = m.workspace_id AND a.account_id = m.account_id) "
                "AS account_name")


def meeting(cur: Cursor, ws: str, meeting_id: str) -> dict[str, Any] | None:
    """A meeting's fields (:data:`_MEETING`, ``account_name``), or None."""
    found = cur.execute(f"SELECT {_MEETING_SQL} FROM meetings m WHERE m.workspace_id = $ws "
                        "AND m.meeting_id = $id", {"ws": ws, "id": meeting_id}).fetchone()
    return None if found is None else _meeting_row((), found)


def _meeting_row(extra: tuple[str, ...], row: tuple[Any, ...]) -> dict[str, Any]:
    """A row of *extra* columns, then :data:`_MEETING_SQL`'s, as a dict (times aware)."""
    out = dict(zip((*extra, *_MEETING, "account_name"), row, strict=True))
    for k in ("starts_at", "ends_at", "created_at"):
        out[k] = _aware(out[k])
    return out


def cancel(cur: Cursor, ws: str, meeting_id: str, now: dt.datetime) -> None:
    """Cancel a meeting and free its slot (the invite's sequence grows)."""
    cur.execute("DELETE FROM meeting_slots WHERE workspace_id = $ws AND meeting_id = $id",
                {"ws": ws, "id": meeting_id})
    cur.execute("UPDATE meetings SET status = 'cancelled', sequence = sequence + 1, "
                "updated_at = $now WHERE workspace_id = $ws AND meeting_id = $id",
                {"ws": ws, "id": meeting_id, "now": _naive(now)})


def move(cur: Cursor, ws: str, meeting_id: str, rep: str, starts_at: dt.datetime,
         ends_at: dt.datetime, now: dt.datetime) -> None:
    """Reschedule a meeting to [starts_at, ends_at) with *rep*, or raise :class:`Taken`
    (inside the writer's transaction; the invite's sequence grows)."""
    params = {"ws": ws, "id": meeting_id, "rep": rep, "a": _naive(starts_at),
              "b": _naive(ends_at), "now": _naive(now)}
    clash = cur.execute("SELECT count(*) FROM meetings WHERE workspace_id = $ws AND rep = $rep "
                        "AND status = 'booked' AND meeting_id <> $id AND starts_at < $b "
                        "AND ends_at > $a", {k: params[k] for k in ("ws", "rep", "id", "a", "b")}
                        ).fetchone()
    if clash and clash[0]:
        raise Taken(rep)
    cur.execute("DELETE FROM meeting_slots WHERE workspace_id = $ws AND meeting_id = $id",
                {"ws": ws, "id": meeting_id})
    try:
        cur.execute("INSERT INTO meeting_slots VALUES ($ws, $rep, $a, $id)",
                    {k: params[k] for k in ("ws", "rep", "a", "id")})
    except duckdb.ConstraintException:
        raise Taken(rep) from None
    cur.execute("UPDATE meetings SET rep = $rep, starts_at = $a, ends_at = $b, "
                "sequence = sequence + 1, updated_at = $now WHERE workspace_id = $ws "
                "AND meeting_id = $id", params)


def record_invite(cur: Cursor, ws: str, meeting_id: str, recipient: str, sequence: int,
                  method: str, status: str, detail: str, attempts: int, now: dt.datetime,
                  next_at: dt.datetime | None) -> None:
    """Keep what became of the invite of *meeting_id*'s *sequence* to *recipient* after
    *attempts* (counted by the caller from :func:`invites`); an older sequence's outcome
    (sent while the meeting moved) changes nothing."""
    cur.execute(
        "INSERT INTO meeting_invites VALUES ($ws, $id, $who, $seq, $method, $status, "
        "$attempts, $detail, $next, $now) ON CONFLICT (workspace_id, meeting_id, recipient) "
        "DO UPDATE SET attempts = excluded.attempts, sequence = excluded.sequence, "
        "method = excluded.method, status = excluded.status, detail = excluded.detail, "
        "next_at = excluded.next_at, updated_at = excluded.updated_at "
        # an older invite's outcome (a retry racing a reschedule) never hides a newer one's
        "WHERE excluded.sequence >= meeting_invites.sequence",
        {"ws": ws, "id": meeting_id, "who": recipient, "seq": sequence, "method": method,
         "status": status, "attempts": attempts, "detail": detail[:500] or None,
         "next": _naive(next_at) if next_at else None, "now": _naive(now)})


def due_invites(cur: Cursor, ws: str, now: dt.datetime) -> list[dict[str, Any]]:
    """The deferred invites due to be sent again at *now*, with their meeting's fields as
    it stands (``recipient``, ``attempts``, ``invite_sequence`` (the meeting's sequence the
    invite carried), ``detail`` and those of :func:`meeting`)."""
    rows = cur.execute(
        f"SELECT i.recipient, i.attempts, i.sequence, i.detail, {_MEETING_SQL} "
        "FROM meeting_invites i JOIN meetings m "
        "ON m.workspace_id = i.workspace_id AND m.meeting_id = i.meeting_id "
        "WHERE i.workspace_id = $ws AND i.status = 'deferred' AND i.next_at <= $now "
        "ORDER BY i.next_at, i.meeting_id, i.recipient",
        {"ws": ws, "now": _naive(now)}).fetchall()
    return [_meeting_row(("recipient", "attempts", "invite_sequence", "detail"), row)
            for row in rows]


def invites(cur: Cursor, ws: str, meeting_id: str) -> dict[str, dict[str, Any]]:
    """Per recipient, the state of *meeting_id*'s latest invite."""
    rows = cur.execute("SELECT recipient, status, attempts, detail, next_at, sequence FROM "
                       "meeting_invites WHERE workspace_id = $ws AND meeting_id = $id",
                       {"ws": ws, "id": meeting_id}).fetchall()
    return {r[0]: {"status": r[1], "attempts": r[2], "detail": r[3],
                   "next_at": _aware(r[4]) if r[4] else None, "sequence": r[5]}
            for r in rows}

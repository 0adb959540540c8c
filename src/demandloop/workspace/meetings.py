"""Meetings for a server: slots, booking, invites, reschedule and cancel (the half of
:class:`~demandloop.workspace.chat.ChatService` that books).

Routing is :mod:`demandloop.activate.routing` over the reps' hours, their calendar feeds
(re-read every :data:`CALENDAR_REFRESH`) and the meetings already booked; a booking is
routed and written in one transaction of the store's single writer, so two visitors racing
for one rep's time cannot both get it. Invites go out through ``meetings.mailbox``; the
Segment messages a booking produces (``identify`` with the email, ``Meeting Booked``) are
returned for ``serve`` to write to the durable log.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demandloop.activate import booking
from demandloop.activate import chat_queries as q
from demandloop.activate.decide_index import Decider
from demandloop.activate.routing import (
    Ledger,
    Rep,
    busy_from_ics,
    candidates,
    rep_from,
    route,
)
from demandloop.activate.routing import slots as free_slots
from demandloop.config import Settings
from demandloop.config.meetings import MeetingSettings
from demandloop.errors import UsageError
from demandloop.store.db import Store
from demandloop.workspace.invites import Invites, as_meeting

logger = logging.getLogger("demandloop.chat")
#: how long a rep's calendar feed is trusted before it is read again (seconds)
CALENDAR_REFRESH = 300.0
Message = dict[str, Any]


class NotFound(UsageError):
    """No such session or meeting."""


class SlotTaken(UsageError):
    """Someone else booked the slot first."""


@dataclass
class Outcome:
    """What a call answers, and the Segment messages to log before answering."""

    data: dict[str, Any]
    events: list[Message] = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def stamp(t: dt.datetime) -> str:
    """*t* as a Segment timestamp (UTC, milliseconds, Z)."""
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class MeetingDesk:
    """Meetings of one workspace (thread-safe; writes go through the store's single
    writer). *decider* gives the current visit decider; *clock* is the time (tests move
    it)."""

    def __init__(self, directory: Path, settings: Settings, store: Store,
                 decider: Callable[[], Decider],
                 clock: Callable[[], dt.datetime] = _now) -> None:
        self.directory, self.settings, self.store = directory, settings, store
        self.decider, self.clock = decider, clock
        self._calendars: dict[str, tuple[float, list[tuple[dt.datetime, dt.datetime]]]] = {}
        self._lock = threading.Lock()
        self.invites = Invites(directory, settings, store)

    def _session(self, session_id: str) -> dict[str, Any]:
        with self.store.reader() as cur:
            found = q.session(cur, self.store.workspace_id, session_id)
        if found is None:
            raise NotFound(f"no chat session '{session_id[:40]}'",
                           hint="start one with POST /v1/chat/sessions")
        return found

    def _row(self, session: dict[str, Any]) -> dict[str, Any]:
        """The session's visit fields now (the account's latest scores)."""
        row: dict[str, Any] = {"account_known": session["account_id"] is not None}
        if session["account_id"]:
            row["account_id"] = session["account_id"]
            row.update(self.decider().account_fields(session["account_id"]) or {})
        return row

    def _calendar(self, name: str, source: str, zone: zoneinfo.ZoneInfo, now: dt.datetime
                  ) -> list[tuple[dt.datetime, dt.datetime]]:
        """A rep's busy times from their feed (re-read every :data:`CALENDAR_REFRESH`; a
        feed that cannot be read keeps its last busy times, and the log says why)."""
        if not source:
            return []
        with self._lock:
            cached = self._calendars.get(name)
            if cached and time.monotonic() - cached[0] < CALENDAR_REFRESH:
                return cached[1]
        until = now + dt.timedelta(days=self.settings.meetings.days_ahead + 2)
        try:
            if source.startswith(("http://", "https://")):
                raw = httpx.get(source, timeout=10.0, follow_redirects=True).content
            else:
                path = Path(source)
                raw = (path if path.is_absolute() else self.directory / path).read_bytes()
            busy = busy_from_ics(raw, zone, now - dt.timedelta(days=1), until)
        except (OSError, httpx.HTTPError, ValueError) as exc:
            logger.warning("calendar of %s not read: %s", name, exc)
            busy = cached[1] if cached else []
        with self._lock:
            self._calendars[name] = (time.monotonic(), busy)
        return busy

    def _availability(self, cur: Any, now: dt.datetime,
              moving: tuple[dt.datetime, dt.datetime] | None = None) -> dict[str, Rep]:
        """Every rep with their calendar's busy times and the meetings booked with them, read
        on *cur* (the writer's, to route and book in one transaction). *moving*: the time of
        the meeting being rescheduled, which blocks nothing (nor does its own entry in the
        rep's calendar feed)."""
        meetings = q.booked(cur, self.store.workspace_id, now - dt.timedelta(days=1))
        out = {}
        for s in self.settings.meetings.reps:
            zone = zoneinfo.ZoneInfo(s.timezone)
            busy = self._calendar(s.name, s.busy_ics, zone, now) + meetings.get(s.name, [])
            out[s.name] = rep_from(s, [b for b in busy if b != moving],
                                   self.settings.meetings.step_minutes)
        return out

    def _ledger(self, cur: Any) -> Ledger:
        """The round robin's account of every meeting booked (read on *cur*)."""
        return Ledger({r.name: r.weight for r in self.settings.meetings.reps},
                      q.history(cur, self.store.workspace_id))

    def slots(self, session_id: str, zone: str) -> dict[str, Any]:
        """The slots a visitor may book (in *zone*): each start when a rep of the
        account's route is free (its owner, its rule's reps, or the fallback)."""
        m = self.settings.meetings
        session = self._session(session_id)  # (an unknown one: 404, whatever the settings)
        if not m.reps:
            raise UsageError("no reps take meetings", hint="add [[meetings.reps]]")
        tz = _zone(zone)
        row = self._row(session)
        now = self.clock()
        with self.store.reader() as cur:
            reps, ledger = self._availability(cur, now), self._ledger(cur)
        since = now + dt.timedelta(minutes=m.lead_minutes)
        until = now + dt.timedelta(days=m.days_ahead)
        starts, owner = [], None
        # each rep's own grid (their hours' start, their clock); route picks among the reps
        # free at a start, and a rep is free only at a start of their grid
        for t in candidates(reps.values(), since, until):
            found = route(row, reps, m, t, ledger)
            if found is not None:
                starts.append(t)
                if found.reason == "owner":
                    owner = found.rep
        return {"timezone": tz.key, "minutes": m.minutes, "owner": owner,
                "slots": booking.labelled(starts, tz.key, m.minutes)}

    def book(self, session_id: str, start: str, *, email: str, name: str, zone: str
             ) -> Outcome:
        """Book *start* (ISO, as :meth:`slots` gives it) for the session's visitor: the
        route picks the rep, the slot is taken in the writer's transaction (a second
        visitor gets :class:`SlotTaken`), both get an invite, and the loop hears of it."""
        m = self.settings.meetings
        tz = _zone(zone)
        address = booking.mail_address(email)
        if address is None:  # (checked before the slot is taken: the invite goes there)
            raise UsageError(f"'{email.strip()[:80]}' is not an email address an invite can "
                             "be sent to", hint="the invite is sent there")
        name = " ".join(name.split())  # (one line: it is shown in the invite's headers)
        session = self._session(session_id)
        if not m.reps:
            raise UsageError("no reps take meetings", hint="add [[meetings.reps]]")
        row = self._row(session)
        at = _instant(start)
        now = self.clock()
        _offered(at, now, m)
        with self.store.writer() as cur:
            # routing and the insert in one transaction of the one writer: what is booked
            # cannot change between the check and the write
            found = route(row, self._availability(cur, now), m, at, self._ledger(cur))
            if found is None:
                raise SlotTaken("that time was just taken", hint="pick another slot")
            meeting = {"meeting_id": "mt_" + secrets.token_hex(10), "rep": found.rep,
                       "starts_at": at, "ends_at": at + dt.timedelta(minutes=m.minutes),
                       "account_id": session["account_id"], "email": address,
                       "name": name[:200], "anonymous_id": session["anonymous_id"],
                       "session_id": session_id, "route_reason": found.reason,
                       "eligible": found.eligible, "visitor_timezone": tz.key}
            try:
                q.insert_meeting(cur, self.store.workspace_id, meeting, now)
            except q.Taken:
                raise SlotTaken("that time was just taken", hint="pick another slot") from None
            q.add_message(cur, self.store.workspace_id, session_id, "system",
                          f"booked {meeting['meeting_id']} with {found.rep}", now)
        rep = next(r for r in m.reps if r.name == found.rep)
        booked = booking.Meeting(meeting["meeting_id"], rep.name, rep.email, at,
                                 meeting["ends_at"], meeting["email"], meeting["name"],
                                 str(row.get("name") or session["account_id"] or ""))
        invites = self._send(booked, "REQUEST", tz.key, rep.timezone)
        events = self._events("Meeting Booked", session["anonymous_id"], booked, found.reason,
                              session["account_id"], now)
        return Outcome({"meeting": booked.meeting_id, "rep": rep.name,
                        "starts_at": stamp(at), "ends_at": stamp(booked.ends_at),
                        "reason": found.reason, "invites": invites,
                        "links": self.invites.links(booked.meeting_id)}, events)

    def _events(self, name: str, anonymous_id: str | None, m: booking.Meeting, reason: str,
                account_id: str | None, now: dt.datetime) -> list[Message]:
        at = stamp(now)
        anon = anonymous_id or f"meeting-{m.meeting_id}"
        base = {"anonymousId": anon, "timestamp": at, "receivedAt": at,
                "context": {"library": {"name": "demandloop-chat"},
                            "traits": {"email": m.email}}}
        return [
            {**base, "type": "identify", "messageId": f"{m.meeting_id}-identify-{m.sequence}",
             "traits": {"email": m.email, **({"name": m.name} if m.name else {})}},
            {**base, "type": "track", "event": name,
             "messageId": f"{m.meeting_id}-{name.replace(' ', '-').lower()}-{m.sequence}",
             "properties": {"meeting_id": m.meeting_id, "rep": m.rep_name,
                            "rep_email": m.rep_email, "starts_at": stamp(m.starts_at),
                            "route": reason, "account_id": account_id, "email": m.email}},
        ]

    def _send(self, m: booking.Meeting, method: str, visitor_zone: str, rep_zone: str
              ) -> dict[str, str]:
        """Send the invite to the visitor and the rep; each one's outcome (see
        :meth:`demandloop.workspace.invites.Invites.send`: a deferred one is sent again)."""
        return self.invites.send(m, method, visitor_zone, rep_zone, self.clock())

    def meeting(self, meeting_id: str) -> dict[str, Any]:
        with self.store.reader() as cur:
            found = q.meeting(cur, self.store.workspace_id, meeting_id)
        if found is None:
            raise NotFound(f"no meeting '{meeting_id[:40]}'")
        return found

    def cancel(self, meeting_id: str) -> Outcome:
        """Cancel a booked meeting: the slot frees, both get a cancellation."""
        found = self.meeting(meeting_id)
        if found["status"] != "booked":
            return Outcome({"meeting": meeting_id, "status": found["status"]})
        now = self.clock()
        with self.store.writer() as cur:
            q.cancel(cur, self.store.workspace_id, meeting_id, now)
        m = self._as_meeting(self.meeting(meeting_id))
        rep = next((r for r in self.settings.meetings.reps if r.name == m.rep_name), None)
        invites = self._send(m, "CANCEL", found["visitor_timezone"] or "UTC",
                             rep.timezone if rep else "UTC")
        return Outcome({"meeting": meeting_id, "status": "cancelled", "invites": invites},
                       self._events("Meeting Cancelled", found["anonymous_id"], m,
                                    found["route_reason"] or "", found["account_id"], now))

    def reschedule(self, meeting_id: str, start: str) -> Outcome:
        """Move a booked meeting to *start* with the same rep (a new invite, same UID)."""
        found = self.meeting(meeting_id)
        if found["status"] != "booked":
            raise UsageError("this meeting was cancelled", hint="book a new one")
        at = _instant(start)
        now = self.clock()
        m = self.settings.meetings
        _offered(at, now, m)
        setting = next((r for r in m.reps if r.name == found["rep"]), None)
        if setting is None:
            raise UsageError(f"rep '{found['rep']}' no longer takes meetings",
                             hint="cancel and book again")
        with self.store.writer() as cur:
            rep = self._availability(cur, now, (found["starts_at"], found["ends_at"]))[setting.name]
            end = at + dt.timedelta(minutes=m.minutes)
            if at < now or not rep.free(at, end):
                raise SlotTaken("that time is not free", hint="pick another slot")
            try:
                q.move(cur, self.store.workspace_id, meeting_id, setting.name, at, end, now)
            except q.Taken:
                raise SlotTaken("that time was just taken", hint="pick another slot") from None
        moved = self._as_meeting(self.meeting(meeting_id))
        invites = self._send(moved, "REQUEST", found["visitor_timezone"] or "UTC",
                             setting.timezone)
        return Outcome({"meeting": meeting_id, "starts_at": stamp(at), "invites": invites})

    def rep_slots(self, meeting_id: str, zone: str) -> list[dict[str, Any]]:
        """Free slots of a meeting's rep (for its reschedule page)."""
        found = self.meeting(meeting_id)
        m = self.settings.meetings
        now = self.clock()
        with self.store.reader() as cur:
            reps = self._availability(cur, now, (found["starts_at"], found["ends_at"]))
        rep = reps.get(found["rep"])
        if rep is None:
            return []
        starts = free_slots([rep], now + dt.timedelta(minutes=m.lead_minutes),
                            now + dt.timedelta(days=m.days_ahead), m.minutes)
        return booking.labelled(starts, _zone(zone).key, m.minutes)

    def _as_meeting(self, found: dict[str, Any]) -> booking.Meeting:
        rep = next((r for r in self.settings.meetings.reps if r.name == found["rep"]), None)
        return as_meeting(found, rep.email if rep else "")


def _offered(at: dt.datetime, now: dt.datetime, m: MeetingSettings) -> None:
    """Refuse a start that no slots call would offer: past, sooner than the lead time (give
    or take one step: the visitor picked it from a list shown a moment ago), past the days
    ahead, or off the grid. The booking calls take any time a client sends, and a rep's
    free hours alone would let a script book 03:07 tomorrow or a slot next year."""
    if at < now:
        raise UsageError("that time has passed", hint="pick one of the slots offered")
    step = dt.timedelta(minutes=m.step_minutes)
    if at < now + dt.timedelta(minutes=m.lead_minutes) - step:
        raise UsageError("that time is too soon to book",
                         hint=f"slots start {m.lead_minutes} minutes from now")
    if at >= now + dt.timedelta(days=m.days_ahead):  # (as the slots call: starts before)
        raise UsageError("that time is too far ahead to book",
                         hint=f"slots are offered {m.days_ahead} days ahead")
    # (a start on no rep's grid would otherwise be answered "just taken": a 409 that
    # invites the client to try again)
    if not any(rep_from(r, step=m.step_minutes).on_grid(at) for r in m.reps):
        raise UsageError("that time is not one of the slots offered",
                         hint=f"slots start every {m.step_minutes} minutes from the start "
                         "of a rep's working hours")


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone '{name[:60]}'",
                         hint="send an IANA name such as Europe/Paris") from None


def _instant(text: str) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"'{text[:40]}' is not a time", hint="send a slot's 'start' as "
                         "given by the slots call") from None
    if at.tzinfo is None:
        raise UsageError("the start needs a time zone", hint="send a slot's 'start' (UTC)")
    return at.astimezone(dt.UTC)

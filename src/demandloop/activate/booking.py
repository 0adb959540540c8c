"""Meetings as the calendar sees them: iCalendar invites (RFC 5546 iTIP), the invite emails
that carry them, the signed links that reschedule or cancel, and slots in a visitor's zone.

An invite is one ``VEVENT`` with a stable ``UID`` (the meeting id) and a ``SEQUENCE`` that
grows with each change: ``METHOD:REQUEST`` books or moves it, ``METHOD:CANCEL`` cancels it,
and calendar clients (Google, Outlook, Apple) update the same entry. The email carries it
both as a ``text/calendar; method=...`` part (what clients act on) and as ``invite.ics``.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

import icalendar

from demandloop.activate.compose import make_token, verify_token

PRODID = "-//demandloop//meetings//EN"
_TOKEN_PREFIX = "meeting:"


@dataclass(frozen=True)
class Meeting:
    meeting_id: str
    rep_name: str
    rep_email: str
    starts_at: dt.datetime  # aware, UTC
    ends_at: dt.datetime
    email: str
    name: str
    account: str = ""
    sequence: int = 0
    status: str = "booked"


def ics(m: Meeting, method: str, summary: str, description: str) -> bytes:
    """The iCalendar object of *m* for *method* (``REQUEST`` or ``CANCEL``)."""
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("method", method)
    ev = icalendar.Event()
    ev.add("uid", f"{m.meeting_id}@demandloop")
    ev.add("sequence", m.sequence)
    ev.add("dtstamp", dt.datetime.now(dt.UTC))
    ev.add("dtstart", m.starts_at.astimezone(dt.UTC))
    ev.add("dtend", m.ends_at.astimezone(dt.UTC))
    ev.add("summary", summary)
    ev.add("description", description)
    ev.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    organizer = icalendar.vCalAddress(f"mailto:{m.rep_email}")
    organizer.params["cn"] = icalendar.vText(m.rep_name)
    ev.add("organizer", organizer)
    for email, name in ((m.email, m.name), (m.rep_email, m.rep_name)):
        who = icalendar.vCalAddress(f"mailto:{email}")
        if name:
            who.params["cn"] = icalendar.vText(name)
        who.params["role"] = icalendar.vText("REQ-PARTICIPANT")
        who.params["partstat"] = icalendar.vText("ACCEPTED" if email == m.rep_email
                                                  else "NEEDS-ACTION")
        who.params["rsvp"] = icalendar.vText("FALSE" if email == m.rep_email else "TRUE")
        ev.add("attendee", who, encode=False)
    cal.add_component(ev)
    return bytes(cal.to_ical())


def summary_of(m: Meeting, company: str) -> str:
    # (on one line: it is the invite's subject, where a line break is refused)
    who = " ".join((m.account or m.name or m.email).split())
    return f"{company}: meeting with {who}" if company else f"Meeting with {who}"


_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def mail_address(value: str) -> str | None:
    """*value* (stripped) when an invite can be addressed to it, else None: a local part
    and a domain with a dot, which the standard library's mail headers also take (it
    refuses, among others, a non-ASCII local part and some it cannot parse at all)."""
    address = value.strip()
    if len(address) > 254 or not _ADDRESS.match(address):
        return None
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError):
        return None
    return address


def invite_email(m: Meeting, method: str, *, to: str, sender: str, sender_name: str,
                 company: str, links: dict[str, str], zone: str) -> bytes:
    """The email of an invite to *to*: a text part (the time in *zone*, the links), the
    ``text/calendar`` part and ``invite.ics``."""
    summary = summary_of(m, company)
    local = m.starts_at.astimezone(zoneinfo.ZoneInfo(zone))
    minutes = int((m.ends_at - m.starts_at).total_seconds() // 60)
    when = f"{local:%A %d %B %Y, %H:%M} ({zone}), {minutes} minutes"
    lines = [f"{'Cancelled' if method == 'CANCEL' else 'Booked'}: {summary}", f"When: {when}",
             f"With: {m.rep_name} <{m.rep_email}> and {m.name or m.email} <{m.email}>"]
    lines += [f"{k.capitalize()}: {v}" for k, v in links.items()]
    description = "\n".join(lines)
    body = ics(m, method, summary, description)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((sender_name, sender)) if sender_name else sender
    msg["To"] = to
    msg["Subject"] = (f"Cancelled: {summary}" if method == "CANCEL" else
                      f"Invitation: {summary} @ {local:%a %d %b %H:%M} {zone}")
    msg["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "demandloop")
    msg.set_content(description + "\n")
    msg.add_alternative(body, maintype="text", subtype="calendar",
                        params={"method": method})
    msg.add_attachment(body, maintype="application", subtype="ics", filename="invite.ics")
    return msg.as_bytes()


def link_token(key: bytes, workspace: str, meeting_id: str) -> str:
    """The signed token of a meeting's reschedule/cancel page (like unsubscribe links)."""
    return make_token(key, workspace, _TOKEN_PREFIX + meeting_id)


def read_token(token: str, key: bytes) -> tuple[str, str] | None:
    """(workspace, meeting id) of a genuine meeting token, else None."""
    found = verify_token(token, key)
    if found is None or not found[1].startswith(_TOKEN_PREFIX):
        return None
    return found[0], found[1][len(_TOKEN_PREFIX):]


def labelled(starts: list[dt.datetime], zone: str, minutes: int) -> list[dict[str, Any]]:
    """Slots as a visitor sees them: the UTC start and a label in their time zone."""
    tz = zoneinfo.ZoneInfo(zone)
    out = []
    for s in starts:
        local = s.astimezone(tz)
        out.append({"start": s.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                    "day": f"{local:%a %d %b}", "time": f"{local:%H:%M}",
                    "minutes": minutes})
    return out

"""Meeting invites: sent through ``meetings.mailbox``, each outcome kept, deferred ones sent
again until they go through or the meeting starts.

A booking answers the visitor at once with each invite's outcome. When the mailbox's server
is down or answers a temporary failure (``deferred``), the meeting still stands: losing the
rep's invite would lose the meeting. So every outcome is kept in ``meeting_invites`` (one row
per meeting and recipient, for its latest invite) and ``demandloop serve`` calls
:meth:`Invites.retry` every :data:`RETRY_EVERY` seconds. A deferred invite is sent again
after one minute, then after twice as long each time, up to an hour between attempts (as a
mail server's own queue backs off), as the meeting stands *then*: booked, it is a
``REQUEST`` with its current time; cancelled, a ``CANCEL``. Once the meeting has started,
an invite is no use: it is marked ``failed`` and the log says so. A bounce is final.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

from demandloop.activate import booking
from demandloop.activate import chat_queries as q
from demandloop.activate.compose import unsubscribe_key
from demandloop.config import Settings
from demandloop.config.sequences import MailboxSetting
from demandloop.outbound import smtp
from demandloop.store.db import Store

logger = logging.getLogger("demandloop.chat")

#: seconds between the server's looks for deferred invites due again
RETRY_EVERY = 30.0
#: seconds the mail server may take to answer before an invite is deferred: a booking
#: waits for its invites, and so does the server's loader thread for a retry, so a server
#: that does not answer must not hold either for the SMTP default (deferred, it is sent
#: again a minute later)
SEND_TIMEOUT = 10.0
#: the wait before a deferred invite's first new attempt, doubled after each one...
FIRST_WAIT = dt.timedelta(minutes=1)
#: ...up to this
LONGEST_WAIT = dt.timedelta(hours=1)


class Invites:
    """The invites of one workspace's meetings (see the module docstring)."""

    def __init__(self, directory: Path, settings: Settings, store: Store) -> None:
        self.directory, self.settings, self.store = directory, settings, store

    def _mailbox(self) -> MailboxSetting | None:
        """The mailbox ``meetings.mailbox`` names, if there is one."""
        s = self.settings
        return next((b for b in s.activate.mailboxes if b.name == s.meetings.mailbox), None)

    def links(self, meeting_id: str) -> dict[str, str]:
        """The visitor's signed reschedule and cancel links of a meeting."""
        base = self.settings.collector.base_url()
        token = booking.link_token(unsubscribe_key(self.directory), self.store.workspace_id,
                                   meeting_id)
        return {"reschedule": f"{base.rstrip('/')}/m/{token}",
                "cancel": f"{base.rstrip('/')}/m/{token}?cancel=1"}

    def send(self, m: booking.Meeting, method: str, visitor_zone: str, rep_zone: str,
             now: dt.datetime) -> dict[str, str]:
        """Send *m*'s invite (*method*: ``REQUEST`` or ``CANCEL``) to the visitor and the
        rep, keep each outcome, and return it per recipient (``sent``, ``deferred: why``,
        ``bounced: why``, or ``not sent: ...`` when no mailbox is set, which is not kept:
        nothing could send it later either)."""
        return self._deliver(m, method, visitor_zone, rep_zone, now)[0]

    def _deliver(self, m: booking.Meeting, method: str, visitor_zone: str, rep_zone: str,
                 now: dt.datetime, only: str | None = None) -> tuple[dict[str, str], bool]:
        """:meth:`send` (to *only* one recipient when given), and whether the mailbox's
        server itself failed (then the other recipient is not tried: it would wait out
        the same timeout, as the sequence sender does)."""
        s = self.settings
        box = self._mailbox()
        if box is None:
            why = ("not sent: set meetings.mailbox" if not s.meetings.mailbox else
                   f"not sent: no mailbox named '{s.meetings.mailbox}'")
            return {"visitor": why, "rep": why}, False
        password = os.environ.get(box.password_env) if box.password_env else None
        out: dict[str, str] = {}
        kept: list[tuple[str, str, str]] = []
        down: smtp.Outcome | None = None
        sender = smtp.transport(box, self.directory, password, timeout=SEND_TIMEOUT)
        try:
            links = self.links(m.meeting_id)
            for who, to, zone in (("visitor", m.email, visitor_zone),
                                  ("rep", m.rep_email, rep_zone)):
                if only is not None and who != only:
                    continue
                raw = booking.invite_email(m, method, to=to, sender=box.address,
                                           sender_name=box.display_name,
                                           company=s.meetings.company or s.workspace.name,
                                           links=links if who == "visitor" else {},
                                           zone=zone)
                result = down or sender.send(to, raw)
                down = result if result.mailbox_down else down
                out[who] = result.status if result.status == "sent" else \
                    f"{result.status}: {result.detail}"
                kept.append((who, result.status, result.detail))
        finally:
            sender.close()
        with self.store.writer() as cur:
            before = q.invites(cur, self.store.workspace_id, m.meeting_id)
            for who, status, detail in kept:
                attempts = _attempts(before.get(who), m.sequence)
                q.record_invite(cur, self.store.workspace_id, m.meeting_id, who, m.sequence,
                                method, status, detail or "", attempts, now,
                                now + smtp.backoff(FIRST_WAIT, LONGEST_WAIT, attempts)
                                if status == "deferred" else None)
        return out, down is not None

    def retry(self, now: dt.datetime) -> dict[str, int]:
        """Send again every deferred invite due at *now* (see the module docstring);
        returns how many were ``sent``, ``deferred`` again, ``bounced`` and ``failed``."""
        counts = {"sent": 0, "deferred": 0, "bounced": 0, "failed": 0}
        if self._mailbox() is None:
            return counts  # (nothing could send them: they wait for a mailbox)
        with self.store.reader() as cur:
            due = q.due_invites(cur, self.store.workspace_id, now)
        reps = {r.name: r for r in self.settings.meetings.reps}
        for row in due:
            rep = reps.get(row["rep"])
            if row["starts_at"] <= now or rep is None:
                why = ("the meeting started before it could be sent" if rep is not None
                       else f"rep '{row['rep']}' no longer takes meetings")
                logger.warning("invite of %s to its %s not sent: %s (last: %s)",
                               row["meeting_id"], row["recipient"], why, row["detail"])
                with self.store.writer() as cur:
                    q.record_invite(cur, self.store.workspace_id, row["meeting_id"],
                                    row["recipient"], int(row["sequence"]),
                                    _method(row), "failed",
                                    f"gave up: {why}; last: {row['detail'] or ''}",
                                    _attempts({"attempts": row["attempts"],
                                               "sequence": row["invite_sequence"]},
                                              int(row["sequence"])), now, None)
                counts["failed"] += 1
                continue
            m = as_meeting(row, rep.email)
            result, down = self._deliver(m, _method(row), row["visitor_timezone"] or "UTC",
                                         rep.timezone, now, only=row["recipient"])
            status = result[row["recipient"]].split(":", 1)[0]
            counts[status] = counts.get(status, 0) + 1
            if down:  # the others due wait for the next look, not for one timeout each
                break
        return counts


def _attempts(prior: dict[str, Any] | None, sequence: int) -> int:
    """The attempts an invite of the meeting's *sequence* has had with this one, given the
    kept row of its recipient (*prior*: ``attempts``, ``sequence``): a new sequence starts
    again at one."""
    return int(prior["attempts"]) + 1 if prior is not None and prior["sequence"] == sequence \
        else 1


def _method(row: dict[str, Any]) -> str:
    return "CANCEL" if row["status"] == "cancelled" else "REQUEST"


def as_meeting(found: dict[str, Any], rep_email: str) -> booking.Meeting:
    """A meeting's row (:func:`~demandloop.activate.chat_queries.meeting`) as
    :class:`~demandloop.activate.booking.Meeting`."""
    return booking.Meeting(found["meeting_id"], found["rep"], rep_email,
                           found["starts_at"], found["ends_at"], found["email"],
                           found["name"] or "",
                           str(found.get("account_name") or found["account_id"] or ""),
                           int(found["sequence"]), found["status"])

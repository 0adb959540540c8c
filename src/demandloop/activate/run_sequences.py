"""Runs sequences over a workspace: enrol (from a workflow's ``enrol`` step), then, at each
tick, stop what must stop and send what is due within every mailbox's limits.

One tick (:func:`tick`):

1. suppress every address an unsubscribe or bounce event names (so the list is current
   before anything is sent; in ``demandloop serve`` the tick runs in the loader thread
   right after the log is loaded, so an unsubscribe acknowledged before the tick counts);
2. for each active enrolment that is due, oldest first: end it if the address is suppressed,
   the person replied or booked a meeting, or the account's stage moved; else carry out
   steps until one has to wait: a wait sets the next time in business days, a task is
   created for the owner, an email is sent when the recipient's local time is inside the
   send window and its mailbox has allowance (warm-up, daily and hourly caps, gap);
3. every message is claimed in the store before it is handed to SMTP (see
   :mod:`demandloop.activate.sequence_queries`), rendered from the account's context and
   DKIM-signed.

Like :mod:`demandloop.activate.run`, this module only wires the store, the pure functions of
:mod:`demandloop.activate.sequences` and :mod:`demandloop.activate.compose`, and the SMTP
edge together.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demandloop.activate import compose, sequences
from demandloop.activate import sequence_queries as mailstore
from demandloop.activate.sequence_inputs import (
    accounts_of,
    compose_message,
    templates,
    window,
)
from demandloop.config.sequences import MailboxSetting, StepSetting
from demandloop.errors import ConfigError
from demandloop.outbound import smtp
from demandloop.outbound.smtp import Transport, Transports

if TYPE_CHECKING:  # the runners are called by the facade, which they never import
    from demandloop.workspace import Workspace


@dataclass
class TickResult:
    sent: int = 0
    bounced: int = 0
    deferred: int = 0
    stopped: int = 0
    finished: int = 0
    waiting: int = 0  # due but held back (outside the window or over a limit)
    tasks: int = 0
    in_doubt: int = 0
    held: int = 0  # due, but a step of theirs cannot be rendered (see problems)
    details: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # each once: what holds them


#: a mailbox whose server failed (no answer, a refused login) is left alone by this
#: process's later ticks for a minute, twice as long after each failure in a row, up to
#: :data:`REST_LONGEST`: each attempt can wait out the SMTP timeout, and in ``demandloop
#: serve`` ticks run on the loader thread, which the live loop's alerts wait for too
REST_FIRST = dt.timedelta(minutes=1)
REST_LONGEST = dt.timedelta(minutes=15)
#: (workspace directory, mailbox) -> (left alone until, failures in a row)
_RESTING: dict[tuple[str, str], tuple[dt.datetime, int]] = {}


def resting(directory: Path, now: dt.datetime) -> set[str]:
    """The mailboxes of the workspace at *directory* this process leaves alone at *now*."""
    home = str(directory)
    return {box for (d, box), (until, _) in _RESTING.items() if d == home and now < until}


def _failed(key: tuple[str, str], now: dt.datetime) -> None:
    failures = _RESTING.get(key, (now, 0))[1] + 1
    _RESTING[key] = (now + smtp.backoff(REST_FIRST, REST_LONGEST, failures), failures)


def default_transports(ws: Workspace) -> Transports:
    def make(box: MailboxSetting) -> Transport:
        password = os.environ.get(box.password_env) if box.password_env else None
        if box.password_env and password is None:
            raise ConfigError(f"mailbox '{box.name}': environment variable "
                              f"{box.password_env} is not set")
        return smtp.transport(box, Path(ws.directory), password)
    return make


def tick(ws: Workspace, now: dt.datetime | None = None,
         transports: Transports | None = None) -> TickResult:
    """One pass over the due enrolments (see the module docstring)."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    settings, store = ws.settings.activate, ws.store
    if not settings.sequences:
        return TickResult()
    m = settings.mail
    mailstore.sync_suppressions(store, m.unsubscribe_events, m.bounce_events, now)
    due = mailstore.due(store, now)
    if due.empty:
        return TickResult()
    run = _Tick(ws, now, transports or default_transports(ws), due["enrolled_at"].min(),
                [str(a) for a in due["account_id"].dropna()])
    try:
        for e in due.to_dict("records"):
            run.advance({str(k): v for k, v in e.items()})
    finally:
        for t in run.open.values():
            t.close()
    return run.out


class _Tick:
    """The state one tick shares across enrolments (read once, kept current)."""

    def __init__(self, ws: Workspace, now: dt.datetime, make: Transports, since: dt.datetime,
                 due_accounts: list[str]) -> None:
        settings, store, m = ws.settings.activate, ws.store, ws.settings.activate.mail
        self.ws, self.store, self.now, self.make = ws, store, now, make
        self.out = TickResult()
        self.window, self.tpl = window(ws), templates(ws)
        self.seqs = {q.name: q for q in settings.sequences}
        self.boxes = {b.name: b for b in settings.mailboxes}
        self.suppressed = mailstore.suppressed(store)
        self.signals = mailstore.signals(store, {
            "reply": m.reply_events, "meeting": m.meeting_events,
            "unsubscribe": m.unsubscribe_events, "bounce": m.bounce_events}, since)
        self.accounts = accounts_of(ws, sorted({str(a) for a in due_accounts}))
        self.sent_log = mailstore.sends(store, now - dt.timedelta(days=2))
        self.firsts = mailstore.first_sends(store)
        self.key = compose.unsubscribe_key(Path(ws.directory))
        self.open: dict[str, Any] = {}
        # mailboxes left alone this tick: those resting after failing in a tick before,
        # and any that fails in this one (login, connection)
        self.down: set[str] = resting(Path(ws.directory), now)
        for box in sorted(self.down):  # (said, or a tick sending nothing would not say why)
            until, failures = _RESTING[self._rest_key(box)]
            self.out.details.append(f"mailbox '{box}' rests until {until:%Y-%m-%d %H:%M:%S} "
                                    f"UTC: its server failed {failures} time(s) in a row")
        self.people: dict[str, dict[str, Any]] = {}

    def _rest_key(self, box: str) -> tuple[str, str]:
        """*box*'s key in :data:`_RESTING`."""
        return str(self.ws.directory), box

    def _set(self, eid: str, **values: Any) -> None:
        mailstore.update(self.store, eid, self.now, **values)

    def advance(self, e: dict[str, Any]) -> None:
        """Stop the enrolment, or carry out its steps until one has to wait."""
        eid, out, now = str(e["enrolment_id"]), self.out, self.now
        seq = self.seqs.get(str(e["sequence"]))
        if seq is None:
            self._set(eid, status="stopped", stop_reason="sequence_removed")
            out.stopped += 1
            return
        account = self.accounts.get(str(e["account_id"]), {"account_id": e["account_id"]})
        seen = self.signals.get(str(e["person_id"]), set()) | \
            self.signals.get(str(e["email"]).lower(), set())
        reason = sequences.stop_reason(e, list(seq.stop_on), self.suppressed, seen,
                                       account.get("stage"))
        if reason:
            self._set(eid, status="stopped", stop_reason=reason)
            out.stopped += 1
            out.details.append(f"stopped {e['email']} in {seq.name}: {reason}")
            return
        step_no = int(e["step"])
        while step_no < len(seq.steps):
            step = seq.steps[step_no]
            if step.type == "wait":
                step_no += 1
                tz = str(e["timezone"])
                self._set(eid, step=step_no, next_at=sequences.after_business_days(
                    now, step.days, tz, self.window))
                return
            try:
                if step.type == "task":
                    self._task(e, step_no, step, account, seq.name)
                    step_no += 1
                    self._set(eid, step=step_no)
                    continue
                if not self._email(e, step_no, step, account):
                    return
            except compose.TemplateProblem as exc:
                # (raised before anything is claimed or written: the enrolment waits at
                # this step, unchanged.) One template saved with a typo while serving
                # stopped every sequence's every send, and the CLI called it a bug
                self._held(seq.name, step_no, step, exc)
                return
            step_no += 1
            self._set(eid, step=step_no, attempts=0)
        self._set(eid, status="finished", step=step_no)
        out.finished += 1

    def _held(self, sequence: str, step_no: int, step: StepSetting,
              exc: compose.TemplateProblem) -> None:
        """Count an enrolment held at a step whose template cannot be rendered, and say
        what holds it (once per step and reason)."""
        self.out.held += 1
        problem = f"sequence '{sequence}' step {step_no + 1} cannot be rendered: {exc}"
        if problem not in self.out.problems:
            self.out.problems.append(problem)

    def _person(self, e: dict[str, Any]) -> dict[str, Any]:
        eid = str(e["enrolment_id"])
        if eid not in self.people:
            with self.store.reader() as cur:
                row = cur.execute("SELECT first_name, last_name, email, title FROM persons "
                                  "WHERE workspace_id = ? AND person_id = ?",
                                  [self.store.workspace_id, e["person_id"]]).fetchone()
            p = dict(zip(("first_name", "last_name", "email", "title"), row or (None,) * 4,
                         strict=True))
            p["email"] = p["email"] or e["email"]
            self.people[eid] = compose.person_context(p)
        return self.people[eid]

    def _task(self, e: dict[str, Any], step_no: int, step: StepSetting, account: dict[str, Any],
              sequence: str) -> None:
        ctx = {"person": self._person(e), "account": account}
        title = " ".join(self.tpl.render_text(step.title or "", ctx).split())
        mailstore.add_task(self.store, {
            "task_id": f"{e['enrolment_id']}:{step_no}", "account_id": e["account_id"],
            "title": title, "owner": account.get("owner"),
            "due_at": self.now + dt.timedelta(days=step.due_days),
            "workflow": f"sequence:{sequence}"}, self.now)
        self.out.tasks += 1

    def _allowance(self, box: MailboxSetting) -> int:
        first = self.firsts.get(box.name)
        start = box.warmup_start or (sequences.local_time(first, box.timezone).date()
                                     if first is not None else None)
        return sequences.allowance(
            self.now, self.sent_log.get(box.name, []), tz=box.timezone,
            warmup=list(box.warmup), daily_cap=box.daily_cap, hourly_cap=box.hourly_cap,
            min_gap_seconds=box.min_gap_seconds, first_day=start)

    def _email(self, e: dict[str, Any], step_no: int, step: StepSetting,
               account: dict[str, Any]) -> bool:
        """Send the email step; True when it is done (sent now, or settled earlier)."""
        eid, tz, now, out = str(e["enrolment_id"]), str(e["timezone"]), self.now, self.out
        if not sequences.in_window(now, tz, self.window):
            self._set(eid, next_at=sequences.next_open(now, tz, self.window))
            out.waiting += 1
            return False
        box = self.boxes.get(str(e["mailbox"]))
        if box is None:
            self._set(eid, status="stopped", stop_reason="mailbox_removed")
            out.stopped += 1
            return False
        if box.name in self.down or self._allowance(box) <= 0:
            out.waiting += 1
            return False
        raw, subject, msg_id = compose_message(self.ws, self.tpl, {**e, "step": step_no}, step,
                                               self._person(e), account, box, now, self.key)
        prior = mailstore.claim(self.store, eid, step_no, {
            "message_id": msg_id, "mailbox": box.name, "to": e["email"], "subject": subject,
            "now": now})
        if prior is not None:  # claimed by an earlier run: never send the same step twice
            if prior == "sending":
                mailstore.settle(self.store, eid, step_no, "in_doubt", now,
                                 "the run stopped between handing it to SMTP and recording it")
                out.in_doubt += 1
            return prior in ("sent", "sending", "in_doubt")
        self.sent_log.setdefault(box.name, []).append(now)
        self.firsts.setdefault(box.name, now)
        if box.name not in self.open:
            self.open[box.name] = self.make(box)
        result = self.open[box.name].send(str(e["email"]), raw)
        if not result.mailbox_down:  # it answered: no rest for it
            _RESTING.pop(self._rest_key(box.name), None)
        if result.status == "sent":
            mailstore.settle(self.store, eid, step_no, "sent", now)
            out.sent += 1
            out.details.append(f"sent '{subject}' to {e['email']} from {box.name}")
            return True
        if result.status == "bounced":
            mailstore.settle(self.store, eid, step_no, "bounced", now, result.detail)
            mailstore.suppress(self.store, [(str(e["email"]), "bounce", f"smtp:{box.name}")],
                               now)
            self.suppressed[str(e["email"]).lower()] = "bounce"
            self._set(eid, status="stopped", stop_reason="bounce")
            out.bounced += 1
            out.details.append(f"bounced {e['email']}: {result.detail}")
            return False
        self.sent_log[box.name].remove(now)  # a deferred attempt spends no allowance
        if result.mailbox_down:  # no use trying its other recipients (each would time out)
            self.down.add(box.name)
            _failed(self._rest_key(box.name), now)
        mailstore.settle(self.store, eid, step_no, "deferred", now, result.detail)
        attempts = int(e.get("attempts") or 0) + 1
        settings = self.ws.settings.activate
        if attempts >= settings.max_attempts:
            self._set(eid, status="stopped", stop_reason="send_failed", attempts=attempts)
            out.stopped += 1
        else:
            wait = settings.retry_base_seconds * 2 ** (attempts - 1)
            self._set(eid, attempts=attempts, next_at=now + dt.timedelta(seconds=wait))
        out.deferred += 1
        out.details.append(f"deferred {e['email']}: {result.detail}")
        return False

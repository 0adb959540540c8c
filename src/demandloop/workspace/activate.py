"""The activate verbs of the workspace: segments and audiences, sequences and their mail,
the suppression list, workflows and their history."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from demandloop import outfiles
from demandloop.activate import audiences, sequence_check, workflow_files
from demandloop.activate import job_queries as jobstore
from demandloop.activate import run as activation
from demandloop.activate import run_sequences as sequencing
from demandloop.activate import sequence_queries as mailstore
from demandloop.config.activate import WorkflowSetting
from demandloop.errors import NotFoundError
from demandloop.outbound import webhooks
from demandloop.outbound.smtp import Transports
from demandloop.store.accounts import account_view, rounded
from demandloop.workspace.base import Base
from demandloop.workspace.invites import Invites


class Activate(Base):
    """Segments, audiences, sequences, suppressions and workflows."""

    def segments(self) -> list[audiences.Segment]:
        """The saved segments of ``[[activate.segments]]``."""
        return [audiences.Segment(s.name, s.entity, tuple(
            audiences.Condition(c.field, c.op, c.value) for c in s.where), s.description)
            for s in self.settings.activate.segments]

    def audience_lists(self) -> dict[str, int]:
        """The lists ``add_to_audience`` workflow steps fill, with their sizes."""
        return mailstore.audience_lists(self.store)

    def segment(self, name: str) -> tuple[audiences.Segment, pd.DataFrame]:
        """A segment and its members (account or person rows with every field)."""
        found = {s.name: s for s in self.segments()}
        if name not in found:
            members = mailstore.audience_members(self.store, name)
            if members:  # a static list filled by add_to_audience workflow steps
                rows = self.audience_rows("account")
                return (audiences.Segment(name, "account", (), "filled by workflows"),
                        rows[rows["account_id"].isin(members)])
            lists = [n for n in self.audience_lists() if n not in found]
            raise NotFoundError(f"no segment or audience list '{name}'",
                                hint=f"segments: {', '.join(found) or '(none)'}"
                                + (f"; lists: {', '.join(lists)}" if lists else ""))
        seg = found[name]
        rows = self.audience_rows(seg.entity)
        return seg, audiences.select(rows, seg.conditions)

    def audience_rows(self, entity: str, *, ids: list[str] | None = None) -> pd.DataFrame:
        """Every account (CRM fields + latest scores), or every person with their
        account's fields prefixed ``account_``: what segments and workflows filter. Only
        the accounts *ids* when given (accounts only: every row is 0.7 s at 100k accounts,
        a workflow run after a load needs a handful)."""
        if ids is not None and entity != "account":
            raise ValueError("ids select accounts only")
        # the committee gaps and surge topics stay: alerts and messages name them
        merged = rounded(account_view(self.store, ids=ids)).drop(columns=[
            "technologies", "crm_id", "source", "created_at", "updated_at", "as_of",
            "recent"])
        if entity == "account":
            return merged
        people = self.persons()[["person_id", "email", "first_name", "last_name", "title",
                                 "seniority", "job_function", "account_id"]]
        prefixed = merged.rename(columns={c: f"account_{c}" for c in merged.columns
                                          if c != "account_id"})
        return people.merge(prefixed, on="account_id", how="left")

    def export_audience(self, name: str, fmt: str, path: str | Path
                        ) -> tuple[int, list[str], Path]:
        """Write segment *name* as *fmt* (csv, linkedin, google) to *path* (a folder: as
        ``NAME-FORMAT.csv`` in it); returns the rows written, any warnings and the file."""
        seg, rows = self.segment(name)
        out, warnings = audiences.export(seg, rows, fmt)
        target = outfiles.target(path, f"{name}-{fmt}.csv")
        with outfiles.written(target):
            out.to_csv(target, index=False)
        return len(out), warnings, target

    def run_sequences(self, now: dt.datetime | None = None,
                      transports: Transports | None = None) -> sequencing.TickResult:
        """Stop what must stop and send what is due (within every mailbox's limits)."""
        return sequencing.tick(self.facade, now, transports)

    def retry_invites(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Send again the meeting invites a mail server deferred, when due (see
        :mod:`demandloop.workspace.invites`); ``demandloop serve`` calls this every
        :data:`~demandloop.workspace.invites.RETRY_EVERY` seconds."""
        return Invites(self.directory, self.settings, self.store).retry(
            now or dt.datetime.now(dt.UTC))

    def check_sequences(self) -> list[str]:
        """Problems with the sequences' templates (rendered against a sample person)."""
        return sequence_check.check(self.facade)

    def enrolments(self, sequence: str | None = None) -> pd.DataFrame:
        """Every enrolment: who, which mailbox, which step, status and why it stopped.
        Unsubscribes and bounces stored since the last sequence run are applied first, so an
        unsubscribed person never shows as active."""
        m = self.settings.activate.mail
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        mailstore.sync_suppressions(self.store, m.unsubscribe_events, m.bounce_events, now)
        found = mailstore.enrolments(self.store, sequence)
        named = [q.name for q in self.settings.activate.sequences]
        if sequence is not None and found.empty and sequence not in named:
            # a misspelt name answered an empty table, as if nobody were enrolled
            raise NotFoundError(f"no sequence '{sequence[:80]}'",
                                hint=f"sequences: {', '.join(named) or 'none configured'}")
        return found

    def mail_messages(self) -> pd.DataFrame:
        """Every sequence email claimed: to whom, subject, status (sent, bounced, ...)."""
        return mailstore.messages(self.store)

    def suppress(self, emails: list[str], reason: str = "manual", source: str = "api") -> int:
        """Never mail these addresses again; returns how many were new."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return mailstore.suppress(self.store, [(e, reason, source) for e in emails], now)

    def unsuppress(self, email: str) -> bool:
        """Allow mailing an address again (True if it was suppressed)."""
        return mailstore.unsuppress(self.store, email)

    def suppressions(self) -> pd.DataFrame:
        """The suppression list: email, reason, source, added_at."""
        return self._frame("suppressions", "added_at, email")

    def workflows(self) -> list[WorkflowSetting]:
        """Workflows of demandloop.toml and workflows/*.toml, validated."""
        return workflow_files.workflows(self.facade)

    def held_workflows(self) -> workflow_files.Held:
        """The workflows a server fires, kept as they were while an edited file cannot be
        read (see :class:`~demandloop.activate.workflow_files.Held`)."""
        return workflow_files.Held(self.facade)

    def run_workflows(self, now: dt.datetime | None = None,
                      post: activation.Post | None = None, *,
                      since: dt.datetime | None = None, dry_run: bool = False,
                      flows: list[WorkflowSetting] | None = None) -> activation.RunResult:
        """Fire workflows on what changed since the last run (or since *since*: a replay),
        then execute due jobs; *dry_run* lists what would be enqueued and does nothing.
        *flows*: the workflows to fire (default: :meth:`workflows`, as the files say now)."""
        fired = activation.evaluate(self.facade, now, since=since, dry_run=dry_run,
                                    flows=flows)
        if dry_run:
            return fired
        done = activation.execute(self.facade, now, post or webhooks.post)
        done.fired, done.enqueued, done.stale = fired.fired, fired.enqueued, fired.stale
        return done

    def react(self, now: dt.datetime | None = None, post: activation.Post | None = None,
              flows: list[WorkflowSetting] | None = None) -> activation.RunResult:
        """The live path: fire ``event`` workflows on events just loaded (before
        resolution and scoring) and execute what is due (*flows* as for
        :meth:`run_workflows`)."""
        return activation.react(self.facade, now, post or webhooks.post, flows)

    def workflow_history(self, account: str | None = None,
                         limit: int = 200) -> pd.DataFrame:
        """Workflow steps taken (or pending, retried, dead), newest first; *account* as
        :meth:`account_key` finds it (``--account ACME.COM`` found nothing)."""
        return jobstore.history(self.store, self.account_key(account) if account else None,
                                limit)

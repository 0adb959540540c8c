"""The Python API: one object per workspace, the same operations as the CLI.

Example:
    >>> import tempfile, demandloop
    >>> ws = demandloop.open(tempfile.mkdtemp())
    >>> ws.accounts().empty
    True
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from demandloop import explain, privacy
from demandloop.activate import audiences, compose, sequence_check, workflow_files
from demandloop.activate import job_queries as jobstore
from demandloop.activate import run as activation
from demandloop.activate import run_sequences as sequencing
from demandloop.activate import sequence_queries as mailstore
from demandloop.collect.crm import read_crm_csv
from demandloop.collect.files import event_files
from demandloop.collect.imports import import_crm, import_ip_ranges, import_leads, import_spend
from demandloop.collect.ipranges import read_ip_ranges
from demandloop.collect.olist import read_olist
from demandloop.collect.run import IngestResult, Progress, ingest_files
from demandloop.collect.segment import Limits
from demandloop.collect.spend import read_spend_csv
from demandloop.compute import Tables, tables
from demandloop.config import Settings, locate
from demandloop.domains import alias_map
from demandloop.enrich import run as enrich_run
from demandloop.enrich.run import ResolveResult
from demandloop.errors import NotFoundError, UsageError
from demandloop.measure import overview, resolution, views
from demandloop.measure.attribution import DEFAULT_MODELS
from demandloop.measure.queries import frames
from demandloop.measure.sla import sla as sla_report
from demandloop.outbound import webhooks
from demandloop.score import measures as score_measures
from demandloop.score import predictive, predictive_run
from demandloop.score import run as score_run
from demandloop.store import Store, export_parquet, import_parquet, pit
from demandloop.store.accounts import SCORE_COLUMNS, account_view, rounded


@dataclass
class Loaded:
    """What :meth:`Workspace.load_simulation` loaded: the ingestion, and rows per import."""

    ingest: IngestResult
    ingest_seconds: float
    accounts: int
    contacts: int
    opportunities: int
    ip_ranges: int
    spend: int


class Workspace:
    """A workspace directory: its settings and its store."""

    def __init__(self, directory: Path, settings: Settings, store: Store) -> None:
        self.directory = directory
        self.settings = settings
        self.store = store

    @classmethod
    def open(cls, path: str | Path = ".", *, settings: Settings | None = None) -> Workspace:
        """Open a workspace directory (or a ``.duckdb`` file directly)."""
        p = Path(path)
        if not (p.suffix == ".duckdb" or p.is_file() or p.exists()):
            p.mkdir(parents=True)
        directory, settings, db_path = locate(p, settings)
        store = Store.open(db_path, workspace_id=settings.workspace.id,
                           threads=settings.store.threads,
                           memory_limit=settings.store.memory_limit)
        return cls(directory, settings, store)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- collect ----------------------------------------------------------------------------
    def ingest(self, *paths: str | Path, skip_invalid: bool = False,
               received_at: dt.datetime | None = None,
               progress: Progress | None = None) -> IngestResult:
        """Ingest Segment-spec event files (JSONL/JSON, optionally .gz); a folder stands
        for the event files in it."""
        if not paths:
            raise UsageError("no files given", hint="name one or more .jsonl/.json files")
        limits = Limits(self.settings.ingest.max_event_bytes,
                        self.settings.ingest.max_message_id_length)
        return ingest_files(self.store, event_files([Path(p) for p in paths]), limits=limits,
                            skip_invalid=skip_invalid, received_at=received_at,
                            progress=progress)

    def import_crm(self, kind: str, path: str | Path,
                   mapping: dict[str, str] | None = None,
                   ignored: list[str] | None = None) -> int:
        """Import a CRM CSV (``accounts``, ``contacts`` or ``opportunities``); rows written.
        Importing again updates (an account re-imported with its domain keeps one row).

        Domains listed in ``identity.domain_aliases`` are mapped to their main domain. The
        file's headers no field was taken from are appended to *ignored* when given.
        """
        parsed = read_crm_csv(Path(path), kind, mapping)
        if ignored is not None:
            ignored.extend(parsed.ignored)
        aliases = alias_map(self.settings.identity.domain_aliases)
        for row in parsed.rows:
            for key in ("domain", "account_domain"):
                if row.get(key) in aliases:
                    row[key] = aliases[row[key]]
        return import_crm(self.store, parsed)

    def import_olist(self, directory: str | Path) -> dict[str, int]:
        """Import the Olist marketing funnel (MQLs as leads, closed deals as won deals)."""
        data = read_olist(Path(directory))
        import_leads(self.store, data.accounts, data.leads, data.opportunities)
        return {"accounts": len(data.accounts), "leads": len(data.leads),
                "opportunities": len(data.opportunities)}

    def import_spend(self, path: str | Path) -> int:
        """Import a spend CSV (date, channel, campaign, spend, impressions, clicks); rows for
        a date/channel/campaign already stored are replaced."""
        return import_spend(self.store, read_spend_csv(Path(path)).rows)

    def load_simulation(self, folder: str | Path, *, spend: bool = True) -> Loaded:
        """Load what ``demandloop simulate`` wrote into *folder* as a user would load their
        own data: the events, the CRM's accounts, contacts and opportunities, the IP ranges
        and (with *spend*) the spend file. Nothing is resolved or scored."""
        market = Path(folder)
        started = time.perf_counter()
        ingest = self.ingest(market / "events.jsonl")
        seconds = time.perf_counter() - started
        crm = {kind: self.import_crm(kind, market / f"{kind}.csv")
               for kind in ("accounts", "contacts", "opportunities")}
        ranges = self.import_ip_ranges(market / "ip_ranges.csv")
        spent = self.import_spend(market / "spend.csv") if spend else 0
        return Loaded(ingest=ingest, ingest_seconds=seconds, accounts=crm["accounts"],
                      contacts=crm["contacts"], opportunities=crm["opportunities"],
                      ip_ranges=ranges, spend=spent)

    def import_ip_ranges(self, path: str | Path) -> int:
        """Import company IP ranges (``cidr`` or ``start,end`` + ``domain``/``organisation``)."""
        ranges = read_ip_ranges(Path(path))
        return import_ip_ranges(self.store, ranges, str(path))

    # -- resolve + enrich -------------------------------------------------------------------
    def resolve(self) -> ResolveResult:
        """Rebuild persons, account matches and touches from everything stored."""
        return enrich_run.run(self.store, self.settings)

    def score(self, as_of: dt.datetime | None = None, *, point_in_time: bool = False
              ) -> score_run.ScoreResult:
        """Fit, engagement and intent surge for every account, stored as a snapshot at
        *as_of* (default: the last touch, with everything known now).

        With *point_in_time*, the snapshot uses only what was known at *as_of*: events up to
        it, and the CRM rows, contacts, IP ranges and opportunities known by then, resolved
        afresh (see :mod:`demandloop.store.pit`); the result's ``known`` says how much of
        today's data that was."""
        if not point_in_time or as_of is None:
            return score_run.run(self.store, self.settings, as_of)
        with self._known_at(as_of) as past:
            result = score_run.run(past, self.settings, as_of)
            pit.copy_snapshot(past, self.store, as_of)
        result.known = pit.known_counts(self.store, as_of)
        return result

    def score_history(self, every_days: int, since: dt.datetime | None = None,
                      progress: Callable[[int, int], None] | None = None
                      ) -> list[score_run.ScoreResult]:
        """Score at every *every_days* from *since* (default: the first touch) up to now, in
        order, each point in time (what a daily job would have recorded then, knowing only
        what was known then), so stage changes carry their real dates; ends with a run at
        the latest touch on everything known now. *progress* is told (done, total) after
        each snapshot."""
        if every_days < 1:
            raise UsageError("--backfill needs a number of days >= 1")
        with self.store.reader() as cur:
            row = cur.execute("SELECT min(ts), max(ts) FROM touches WHERE workspace_id = ?",
                              [self.store.workspace_id]).fetchone()
        first, last = row if row else (None, None)
        if first is None:
            return [self.score()]
        start = pd.Timestamp(since or first).normalize() + pd.Timedelta(days=every_days)
        dates = list(pd.date_range(start, pd.Timestamp(last), freq=f"{every_days}D",
                                   inclusive="left")) if start < pd.Timestamp(last) else []
        results = []
        for i, at in enumerate(dates):
            results.append(self.score(at.to_pydatetime(), point_in_time=True))
            if progress:
                progress(i + 1, len(dates) + 1)
        results.append(self.score())
        if progress:
            progress(len(dates) + 1, len(dates) + 1)
        return results

    def account_scores(self, as_of: dt.datetime, *, point_in_time: bool = True
                       ) -> pd.DataFrame:
        """Fit, engagement, surge and priority per account at *as_of*, computed without
        storing; by default only from what was known at *as_of* (as ``score`` with
        *point_in_time*)."""
        if not point_in_time:
            return score_measures.account_scores(self.store, self.settings, as_of)
        with self._known_at(as_of) as past:
            return score_measures.account_scores(past, self.settings, as_of)

    @contextmanager
    def _known_at(self, as_of: dt.datetime) -> Iterator[Store]:
        """The inputs known at *as_of*, resolved afresh in memory (see
        :mod:`demandloop.store.pit`)."""
        with pit.known_at(self.store, as_of) as past:
            enrich_run.run(past, self.settings)
            yield past

    def score_snapshots(self) -> int:
        """How many account score snapshots there are: with one, every stage change carries
        that run's date, so velocity and speed to lead have no history to measure."""
        with self.store.reader() as cur:
            row = cur.execute("SELECT count(DISTINCT as_of) FROM scores WHERE workspace_id = ? "
                              "AND entity = 'account'", [self.store.workspace_id]).fetchone()
        return int(row[0]) if row else 0

    def sla(self) -> dict[str, dict[str, Any]]:
        """Speed to lead for MQAs and MQLs (see measure.sla)."""
        s = self.settings.score
        out = {}
        with self.store.reader() as cur:
            now = cur.execute("SELECT max(ts) FROM touches WHERE workspace_id = ?",
                              [self.store.workspace_id]).fetchone()
            for entity, stage, key in (("account", s.mqa_stage, "account_id"),
                                       ("person", "mql", "person_id")):
                changes = cur.execute(
                    "SELECT entity_id, changed_at FROM stage_changes WHERE workspace_id = ? "
                    "AND entity = ? AND to_stage = ?",
                    [self.store.workspace_id, entity, stage]).df()
                touches = cur.execute(
                    f"SELECT {key} AS entity_id, ts FROM touches WHERE workspace_id = ? "
                    f"AND motion = 'sales' AND {key} IS NOT NULL",
                    [self.store.workspace_id]).df()
                out[stage] = sla_report(changes, touches, s.sla_hours,
                                        pd.Timestamp(now[0]) if now and now[0] else
                                        pd.Timestamp.now())
        return out

    def latest_scores(self, entity: str = "account") -> pd.DataFrame:
        """The latest score snapshot: one row per account (or person)."""
        with self.store.reader() as cur:
            return cur.execute(
                "SELECT entity_id, as_of, fit, engagement, intent, stage, details FROM scores "
                "WHERE workspace_id = $ws AND entity = $e AND as_of = (SELECT max(as_of) "
                "FROM scores WHERE workspace_id = $ws AND entity = $e)",
                {"ws": self.store.workspace_id, "e": entity}).df()

    def train_fit(self, split: dt.datetime | None = None, horizon_days: int = 90
                  ) -> predictive.Report:
        """Predictive fit: learn which accounts open an opportunity within *horizon_days*,
        point in time, report its held-out quality at *split* (default: the latest split
        whose test window has ended), and store every account's calibrated probability
        (see :func:`demandloop.score.predictive_run.train_fit`)."""
        return predictive_run.train_fit(self.store, split, horizon_days)

    def lead_scoring(self, split: dt.datetime | None = None, horizon_days: int = 90
                     ) -> predictive.Report:
        """Lead scoring: will an open lead be won within *horizon_days*, point in time,
        against an origin-only baseline, judged at *split* (default: the latest split whose
        test window has ended)."""
        return predictive_run.lead_scoring(self.store, split, horizon_days)

    def scored_accounts(self) -> pd.DataFrame:
        """The latest account snapshot flattened for lists: account, stage, fit, band,
        engagement, intent, surging, people, committee_coverage, missing_roles, recent,
        surge_topics, priority (the order to work accounts in)."""
        df = account_view(self.store, scored=True, columns=SCORE_COLUMNS)
        return rounded(df).rename(columns={"account_id": "account"})

    def explain_account(self, key: str) -> dict[str, Any]:
        """Fit criteria, top signals (with decay), surge topics, stage history, committee."""
        return explain.account(self.store, self.settings, key)

    def explain_person(self, key: str) -> dict[str, Any]:
        """Why a person is who they are: identifiers, the messages that merged them, account."""
        return explain.person(self.store, key)

    def export_parquet(self, directory: str | Path) -> dict[str, int]:
        """Write every table to *directory* as Parquet (remembered, so that erasing a person
        later reaches this copy too)."""
        counts = export_parquet(self.store, Path(directory))
        # the secret that signs unsubscribe links: a restore must still honour links sent
        key = self.directory / compose.UNSUBSCRIBE_KEY_FILE
        if key.is_file():
            _copy_secret(key, Path(directory) / compose.UNSUBSCRIBE_KEY_FILE)
        privacy.record_export(self.directory, Path(directory))
        return counts

    # -- privacy ----------------------------------------------------------------------------
    def export_person(self, key: str) -> dict[str, Any]:
        """Everything stored about one person (an email, user id or anonymous id)."""
        return privacy.export_person(self, key)

    def erase_person(self, key: str) -> dict[str, Any]:
        """Remove one person from the database, the collector's log and dead letters, and
        the Parquet exports this workspace wrote; their address stays suppressed as a
        hash."""
        return privacy.erase_person(self, key)

    def apply_retention(self) -> int:
        """Delete raw events older than ``collect.retention_days``; returns how many."""
        return privacy.apply_retention(self.store, self.settings.collect.retention_days)

    def import_parquet(self, directory: str | Path, *, replace: bool = False) -> dict[str, int]:
        """Load an export (the workspace must be empty unless *replace*); with it comes the
        key that signed its unsubscribe links, so links already sent keep working."""
        counts = import_parquet(self.store, Path(directory), replace=replace)
        key = Path(directory) / compose.UNSUBSCRIBE_KEY_FILE
        if key.is_file():
            _copy_secret(key, self.directory / compose.UNSUBSCRIBE_KEY_FILE)
        return counts

    # -- read -------------------------------------------------------------------------------
    @property
    def tables(self) -> Tables:
        """Ibis expressions over this workspace's tables (for custom analytics)."""
        return tables(self.store)

    def _frame(self, table: str, order: str) -> pd.DataFrame:
        with self.store.reader() as cur:
            return cur.execute(
                f"SELECT * EXCLUDE (workspace_id) FROM {table} WHERE workspace_id = ? "
                f"ORDER BY {order}", [self.store.workspace_id]
            ).df()

    def accounts(self) -> pd.DataFrame:
        return self._frame("accounts", "account_id")

    def persons(self) -> pd.DataFrame:
        return self._frame("persons", "person_id")

    def opportunities(self) -> pd.DataFrame:
        return self._frame("opportunities", "opportunity_id")

    def leads(self) -> pd.DataFrame:
        return self._frame("leads", "lead_id")

    def touches(self) -> pd.DataFrame:
        return self._frame("touches", "ts, touch_id")

    def events(self, limit: int | None = None) -> pd.DataFrame:
        """Stored events, each ``context`` whole again (the store keeps its page fields, IP
        and user agent only in their columns)."""
        with self.store.reader() as cur:
            return cur.execute(
                "SELECT * EXCLUDE (workspace_id) FROM events_full WHERE workspace_id = ? "
                "ORDER BY timestamp, message_id" + (f" LIMIT {int(limit)}" if limit else ""),
                [self.store.workspace_id],
            ).df()

    def counts(self) -> dict[str, int]:
        return self.store.table_counts()

    def event_counts(self) -> pd.DataFrame:
        return overview.event_counts(self.tables)

    def ranked_accounts(self, *, days: int = 30, limit: int = 10) -> pd.DataFrame:
        return overview.ranked_accounts(self.tables, days=days, limit=limit)

    def touch_channels(self) -> pd.DataFrame:
        return overview.touch_channels(self.tables)

    def resolution_quality(self, truth: dict[str, Any]) -> dict[str, float]:
        """Anonymous-visit resolution against a simulation's truth (see measure.resolution)."""
        with self.store.reader() as cur:
            visits = cur.execute(
                "SELECT t.anonymous_id, t.account_id FROM touches t JOIN events e "
                "ON e.workspace_id = t.workspace_id AND e.message_id = t.message_id "
                "WHERE t.workspace_id = ? AND e.type = 'page' AND e.user_id IS NULL",
                [self.store.workspace_id]).df()
        return resolution.evaluate(visits, resolution.truth_visitors(truth))

    def lead_conversion(self, by: str = "origin") -> pd.DataFrame:
        return overview.lead_conversion(self.tables, by)

    # -- measure ------------------------------------------------------------------------------
    def funnel(self, by: str | None = None) -> pd.DataFrame:
        """Reach -> engaged -> MQL -> MQA -> opportunity -> won, overall or by a dimension
        (channel, motion, band, industry, size, target, cohort); see measure.funnel."""
        return views.funnel(frames(self.store), self.settings, by)

    def milestones(self) -> pd.DataFrame:
        """One row per account: the date it reached each funnel stage, and its dimensions."""
        return views.milestones(frames(self.store), self.settings)

    def health(self) -> tuple[dict[str, Any], pd.DataFrame]:
        """Demand-health trends, the shrinking-pool alarm and the weekly series."""
        return views.health(frames(self.store, "touches", "accounts", "leads"), self.settings)

    def attribution(self, *, level: str = "account", outcome: str = "opportunity",
                    models: tuple[str, ...] = DEFAULT_MODELS, measure: str = "conversions"
                    ) -> pd.DataFrame:
        """Credit per channel under each model, side by side (see measure.attribution)."""
        return views.attribution(frames(self.store), self.settings, level=level,
                                 outcome=outcome, models=models, measure=measure)

    def pipeline(self) -> dict[str, Any]:
        """Pipeline sourced vs influenced, per channel and motion."""
        return views.pipeline(frames(self.store, "touches", "opportunities"), self.settings)

    def report_html(self, path: str | Path) -> Path:
        """Write the self-contained HTML report (funnel, attribution, demand health,
        scorecard) to *path*; returns the resolved path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        page = views.report(frames(self.store), self.settings, self.directory.resolve().name)
        target.write_text(page, encoding="utf-8")
        return target.resolve()

    # -- activate -----------------------------------------------------------------------------
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
            raise NotFoundError(f"no segment or audience list '{name}'",
                                hint=f"segments: {', '.join(found) or '(none)'}")
        seg = found[name]
        rows = self.audience_rows(seg.entity)
        return seg, audiences.select(rows, seg.conditions)

    def audience_rows(self, entity: str) -> pd.DataFrame:
        """Every account (CRM fields + latest scores), or every person with their
        account's fields prefixed ``account_``: what segments and workflows filter."""
        # the committee gaps and surge topics stay: alerts and messages name them
        merged = rounded(account_view(self.store)).drop(columns=[
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
                        ) -> tuple[int, list[str]]:
        """Write segment *name* as *fmt* (csv, linkedin, google) to *path*; returns the
        rows written and any warnings."""
        seg, rows = self.segment(name)
        out, warnings = audiences.export(seg, rows, fmt)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(target, index=False)
        return len(out), warnings

    def run_sequences(self, now: dt.datetime | None = None,
                      transports: sequencing.Transports | None = None) -> sequencing.TickResult:
        """Stop what must stop and send what is due (within every mailbox's limits)."""
        return sequencing.tick(self, now, transports)

    def check_sequences(self) -> list[str]:
        """Problems with the sequences' templates (rendered against a sample person)."""
        return sequence_check.check(self)

    def enrolments(self, sequence: str | None = None) -> pd.DataFrame:
        """Every enrolment: who, which mailbox, which step, status and why it stopped.
        Unsubscribes and bounces stored since the last sequence run are applied first, so an
        unsubscribed person never shows as active."""
        m = self.settings.activate.mail
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        mailstore.sync_suppressions(self.store, m.unsubscribe_events, m.bounce_events, now)
        return mailstore.enrolments(self.store, sequence)

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

    def workflows(self) -> list[Any]:
        """Workflows of demandloop.toml and workflows/*.toml, validated."""
        return workflow_files.workflows(self)

    def run_workflows(self, now: dt.datetime | None = None,
                      post: activation.Post | None = None, *,
                      since: dt.datetime | None = None,
                      dry_run: bool = False) -> activation.RunResult:
        """Fire workflows on what changed since the last run (or since *since*: a replay),
        then execute due jobs; *dry_run* lists what would be enqueued and does nothing."""
        fired = activation.evaluate(self, now, since=since, dry_run=dry_run)
        if dry_run:
            return fired
        done = activation.execute(self, now, post or webhooks.post)
        done.fired, done.enqueued, done.stale = fired.fired, fired.enqueued, fired.stale
        return done

    def react(self, now: dt.datetime | None = None,
              post: activation.Post | None = None) -> activation.RunResult:
        """The live path: fire ``event`` workflows on events just loaded (before
        resolution and scoring) and execute what is due."""
        return activation.react(self, now, post or webhooks.post)

    def workflow_history(self, account: str | None = None,
                         limit: int = 200) -> pd.DataFrame:
        """Workflow steps taken (or pending, retried, dead), newest first."""
        return jobstore.history(self.store, account, limit)

    def scorecard(self) -> dict[str, Any]:
        """Demand gen vs lead gen: the published rubric next to this workspace's figures."""
        return views.scorecard(frames(self.store, "touches", "opportunities", "scores"),
                               self.settings)


def open(path: str | Path = ".", **kwargs: Any) -> Workspace:  # noqa: A001 - mirrors io.open
    """Open a workspace; see :meth:`Workspace.open`."""
    return Workspace.open(path, **kwargs)


def _copy_secret(source: Path, target: Path) -> None:
    """Copy a secret file, readable by its owner only, replacing *target* atomically."""
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(source.read_bytes())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)

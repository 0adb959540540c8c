"""The score verbs of the workspace: snapshots (now, as of a date, a backfill), predictive
fit and lead scoring, the scored account list and explanations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from demandloop import explain
from demandloop.domains import canonical_domain
from demandloop.enrich import run as enrich_run
from demandloop.errors import NotFoundError, UsageError
from demandloop.score import measures as score_measures
from demandloop.score import predictive, predictive_run, queries
from demandloop.score import run as score_run
from demandloop.store import Store, account_pages, activity_pages, person_pages, pit
from demandloop.store.accounts import SCORE_COLUMNS, account_view, held, moved_to, rounded
from demandloop.workspace.base import Base


class Score(Base):
    """Scoring and its explanations."""

    def score(self, as_of: dt.datetime | None = None, *, point_in_time: bool = False,
              engine: str | None = None, one_per_day: bool = False
              ) -> score_run.ScoreResult:
        """Fit, engagement and intent surge for every account, stored as a snapshot at
        *as_of* (default: the last touch, with everything known now).

        With *point_in_time*, the snapshot uses only what was known at *as_of*: events up to
        it, and the CRM rows, contacts, IP ranges and opportunities known by then, resolved
        afresh (see :mod:`demandloop.store.pit`); the result's ``known`` says how much of
        today's data that was.

        *engine* (default ``[compute] engine``): ``spark`` computes from the Parquet lake on
        Spark; the snapshot is stored in the workspace the same way.

        *one_per_day*: the caller then calls :meth:`keep_one_snapshot_per_day` (the server's
        live loop does), so the snapshot may be made from the one before the latest, of the
        same day, rewriting only the rows that changed (see
        :func:`demandloop.score.run.run`)."""
        if point_in_time and as_of is not None:
            self._point_in_time_on(engine)
        source = self.engine_tables(engine)
        if source is not None:
            return score_run.run(self.store, self.settings, as_of, source=source)
        if not point_in_time or as_of is None:
            return score_run.run(self.store, self.settings, as_of, one_per_day=one_per_day)
        with self._known_at(as_of) as past:
            result = score_run.run(past, self.settings, as_of)
            result.changes_recorded = pit.copy_snapshot(past, self.store, as_of)
        result.known = pit.known_counts(self.store, as_of)
        return result

    def _point_in_time_on(self, engine: str | None) -> None:
        """Refuse a point-in-time score on an engine other than DuckDB: each resolves
        afresh in a temporary DuckDB (see :mod:`demandloop.store.pit`)."""
        if self.engine(engine) != "duckdb":
            raise UsageError("a point-in-time score runs on DuckDB only",
                             hint="leave out --engine spark with --as-of or --backfill")

    def score_history(self, every_days: int, since: dt.datetime | None = None,
                      progress: Callable[[int, int], None] | None = None, *,
                      engine: str | None = None) -> list[score_run.ScoreResult]:
        """Score at every *every_days* from *since* (default: the first touch) up to now, in
        order, each point in time (what a daily job would have recorded then, knowing only
        what was known then), so stage changes carry their real dates; ends with a run at
        the latest touch on everything known now. *progress* is told (done, total) after
        each snapshot. *engine* (default ``[compute] engine``) must be DuckDB's."""
        if every_days < 1:
            raise UsageError("--backfill needs a number of days >= 1")
        self._point_in_time_on(engine)
        first, last = queries.touch_span(self.store)
        if first is None or last is None:
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
        return queries.snapshot_count(self.store)

    def keep_one_snapshot_per_day(self) -> int:
        """Keep one snapshot a day, the day's last, and the latest two (the server's live
        loop does this after each run); returns the rows deleted."""
        return queries.keep_one_per_day(self.store)

    def latest_scores(self, entity: str = "account") -> pd.DataFrame:
        """The latest score snapshot: one row per account (or person)."""
        return queries.latest(self.store, entity)

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

    def account_ids(self, where: account_pages.AccountFilter) -> set[str]:
        """The ids of the accounts *where* (the API's filters) matches now."""
        return account_pages.matching_ids(self.store, where)

    def people(self, account: str | None = None, search: str | None = None,
               mql: bool | None = None, sort: str = "person_id", limit: int = 50,
               cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """People with their latest scores, and the cursor of the next page (see
        :func:`demandloop.store.person_pages.person_page`): what ``demandloop people`` and
        ``GET /api/v1/people`` list."""
        if account is not None:
            account = self.account_key(account)
        return person_pages.person_page(self.store, account, search, limit, cursor, mql, sort)

    def explain_account(self, key: str) -> dict[str, Any]:
        """Fit criteria, top signals (with decay), surge topics, stage history, committee."""
        return explain.account(self.store, self.settings, key)

    def account_page(self, account_id: str, limit: int = 100) -> dict[str, Any] | None:
        """One account whole (:func:`demandloop.store.account_pages.account_detail`) with
        its ``explanation``: None before the account is scored (imported, listed, not yet
        scored); the whole is None when there is no such account. What the API and the
        dashboard show of an account."""
        found = account_pages.account_detail(self.store, account_id, limit)
        if found is not None:
            try:
                found["explanation"] = self.explain_account(account_id)
            except NotFoundError:
                found["explanation"] = None
        return found

    def account_moved(self, account_id: str) -> str | None:
        """The id an account known by *account_id* has now, when an import gave it a
        better one or merged it into another, or when *account_id* is its domain written
        another way (``ACME.COM``, ``https://www.acme.com/``); None otherwise: where old
        links and hand-typed ones lead."""
        moved = moved_to(self.store, account_id)
        if moved is not None:
            return moved
        canonical = canonical_domain(account_id)
        if canonical is None or canonical == account_id:
            return None
        return held(self.store, canonical)

    def person_page(self, key: str, limit: int = 100) -> dict[str, Any]:
        """One person whole, found by *key* as :meth:`explain_person` finds them (a person
        id, email, user id or anonymous id): ``person`` (as :meth:`people` lists them),
        ``explanation`` (:meth:`explain_person`), and their latest *limit* ``touches``,
        ``enrolments`` and ``suppressions``. What ``GET /api/v1/people/{key}`` answers;
        raises NotFoundError when no person is known by *key*."""
        explanation = self.explain_person(key)
        pid = explanation["person"]["person_id"]
        row = person_pages.person_row(self.store, pid)
        if row is None:  # (resolve keeps identifiers and persons in one transaction)
            raise NotFoundError(f"no person known by '{key.strip()[:80]}'")
        return {"person": row, "explanation": explanation,
                **activity_pages.person_lists(self.store, pid, limit)}

    def explain_person(self, key: str) -> dict[str, Any]:
        """Why a person is who they are: identifiers, the messages that merged them, account."""
        return explain.person(self.store, key)

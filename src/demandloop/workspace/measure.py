"""The measure verbs of the workspace: overview counts, funnel, milestones, demand
health, attribution, pipeline, speed to lead, the scorecard and the HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from demandloop import outfiles
from demandloop.compute import tables
from demandloop.measure import overview, personalization, queries, resolution, views
from demandloop.measure.attribution import DEFAULT_MODELS
from demandloop.measure.queries import frames
from demandloop.measure.sla import sla as sla_report
from demandloop.workspace.base import Base


class Measure(Base):
    """Reports."""

    def sla(self) -> dict[str, dict[str, Any]]:
        """Speed to lead for MQAs and MQLs (see measure.sla)."""
        s = self.settings.score
        now = queries.latest_touch(self.store) or pd.Timestamp.now()
        out = {}
        for entity, stage in (("account", s.mqa_stage), ("person", "mql")):
            changes, touches = queries.sla_inputs(self.store, entity, stage)
            out[stage] = sla_report(changes, touches, s.sla_hours, now)
        return out

    def personalization(self, as_of: pd.Timestamp | None = None) -> dict[str, Any]:
        """Each experience's lift per goal (see measure.personalization), judged at *as_of*
        (default: the last event): only what was known then is read."""
        p = self.settings.personalize  # (its goals' activities are checked as it loads)
        at = as_of if as_of is not None else queries.latest_event(self.store)
        if at is None:
            return {"as_of": None, "confidence": p.confidence, "experiences": [],
                    "lifts": []}
        exposures, conversions = queries.personalization_inputs(
            self.store, sorted({g.activity for g in p.goals}), at)
        unattributed: dict[str, int] = {
            str(k): int(v) for k, v in exposures[exposures["account_id"].isna()].groupby(
                "experience")["views"].sum().items()} if not exposures.empty else {}
        attributed = exposures.dropna(subset=["account_id"])
        attributed = attributed.assign(control=attributed["control"].astype(bool))
        found, counts = personalization.lifts(
            attributed, conversions, [(g.name, g.activity, g.within_days) for g in p.goals],
            at, p.confidence)
        names = sorted(set(counts) | set(unattributed))
        return {"as_of": at.isoformat(), "confidence": p.confidence,
                "experiences": [{"experience": n, **counts.get(n, {"exposed": 0, "control": 0}),
                                 "unattributed_views": int(unattributed.get(n, 0))}
                                for n in names],
                "lifts": [x.as_dict() for x in found]}

    def event_counts(self) -> pd.DataFrame:
        return overview.event_counts(self.tables)

    def ranked_accounts(self, *, days: int = 30, limit: int = 10) -> pd.DataFrame:
        return overview.ranked_accounts(self.tables, days=days, limit=limit)

    def touch_channels(self) -> pd.DataFrame:
        return overview.touch_channels(self.tables)

    def resolution_quality(self, truth: dict[str, Any]) -> dict[str, float]:
        """Anonymous-visit resolution against a simulation's truth (see measure.resolution)."""
        visits = queries.anonymous_visits(self.store)
        return resolution.evaluate(visits, resolution.truth_visitors(truth))

    def lead_conversion(self, by: str = "origin") -> pd.DataFrame:
        return overview.lead_conversion(self.tables, by)

    def funnel(self, by: str | None = None, *, engine: str | None = None) -> pd.DataFrame:
        """Reach -> engaged -> MQL -> MQA -> opportunity -> won, overall or by a dimension
        (channel, motion, band, industry, size, target, cohort); see measure.funnel.
        *engine* (default ``[compute] engine``): ``spark`` reads the Parquet lake."""
        return views.funnel(frames(self.store, *views.FUNNEL_FRAMES,
                                   source=self.engine_tables(engine)), self.settings, by)

    def milestones(self, *, engine: str | None = None) -> pd.DataFrame:
        """One row per account: the date it reached each funnel stage, and its dimensions."""
        return views.milestones(frames(self.store, *views.FUNNEL_FRAMES,
                                       source=self.engine_tables(engine)), self.settings)

    def health(self, *, engine: str | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
        """Demand-health trends, the shrinking-pool alarm and the weekly series (*engine*
        as for :meth:`funnel`)."""
        return views.health(frames(self.store, "weekly", "leads",
                                   source=self.engine_tables(engine)), self.settings)

    def attribution(self, *, level: str = "account", outcome: str | None = None,
                    models: tuple[str, ...] = DEFAULT_MODELS, measure: str = "conversions",
                    engine: str | None = None) -> pd.DataFrame:
        """Credit per channel under each model, side by side (see measure.attribution;
        *engine* as for :meth:`funnel`)."""
        return views.attribution(self.engine_tables(engine) or tables(self.store),
                                 self.settings, level=level, outcome=outcome, models=models,
                                 measure=measure)

    def pipeline(self, *, engine: str | None = None) -> dict[str, Any]:
        """Pipeline sourced vs influenced, per channel and motion (*engine* as for
        :meth:`funnel`)."""
        return views.pipeline(frames(
            self.store, "pipeline", "opportunities", source=self.engine_tables(engine),
            window_days=self.settings.measure.influence_window_days), self.settings)

    def report_html(self, path: str | Path) -> Path:
        """Write the self-contained HTML report (funnel, attribution, demand health,
        scorecard) to *path*; returns the resolved path."""
        # (a folder: the report goes in it, as the demo names it)
        target = outfiles.target(path, "report.html")
        page = views.report(frames(
            self.store, *views.REPORT_FRAMES,
            window_days=self.settings.measure.influence_window_days),
            self.settings, self.directory.resolve().name,
            self.attribution(models=views.REPORT_MODELS, engine="duckdb"))
        with outfiles.written(target):
            target.write_text(page, encoding="utf-8")
        return target.resolve()

    def scorecard(self, *, engine: str | None = None) -> dict[str, Any]:
        """Demand gen vs lead gen: the published rubric next to this workspace's figures
        (*engine* as for :meth:`funnel`: what it reads of the touches)."""
        return views.scorecard(frames(self.store, "scorecard", "scores", "ai_search_pages",
                                      "access_log_size", source=self.engine_tables(engine)),
                               self.settings)

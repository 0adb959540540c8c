"""The measure reports a workspace answers, assembled from the store's input frames.

Pure: every function takes the frames of :func:`demandloop.measure.queries.frames` and the
workspace settings, and returns frames or JSON-ready dicts; the Python API, the CLI and the
HTML report all call these, so they always agree.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from demandloop.config import Settings
from demandloop.errors import ConfigError, InputError
from demandloop.measure import funnel as funnel_mod
from demandloop.measure import health as health_mod
from demandloop.measure import scorecard as scorecard_mod
from demandloop.measure.attribution import ALL_MODELS, DEFAULT_MODELS, compare
from demandloop.measure.attribution.builders import account_journeys, person_journeys
from demandloop.measure.attribution.journeys import Journeys
from demandloop.measure.attribution.pipeline import pipeline as pipeline_fn
from demandloop.measure.names import STAGES

Frames = dict[str, pd.DataFrame]

#: the frames the funnel reads (see demandloop.measure.queries.frames)
FUNNEL_FRAMES = ("accounts", "account_firsts", "leads", "opportunities", "stage_changes",
                 "person_accounts", "scores", "spend")


def parts(f: Frames, name: str) -> Frames:
    """The parts of *name* (``weekly`` or ``pipeline``) in *f*, by part: :func:`frames
    <demandloop.measure.queries.frames>` gives them as ``weekly_*`` and ``pipeline_*``."""
    prefix = f"{name}_"
    return {k.removeprefix(prefix): v for k, v in f.items() if k.startswith(prefix)}


def _stages_from(settings: Settings, name: str) -> list[str]:
    """*name* and every stage listed before it (stages are bottom of the funnel first)."""
    names = [s.name for s in settings.score.stages]
    if name not in names:
        raise ConfigError(f"measure: stage '{name}' is not in [score.stages]",
                          hint=f"stages: {', '.join(names)}")
    return names[: names.index(name) + 1]


def milestones(f: Frames, settings: Settings) -> pd.DataFrame:
    return funnel_mod.milestones(
        accounts=f["accounts"], firsts=f["account_firsts"], leads=f["leads"],
        opportunities=f["opportunities"], stage_changes=f["stage_changes"],
        person_accounts=f["person_accounts"],
        engaged_stages=_stages_from(settings, settings.measure.engaged_stage),
        mqa_stages=_stages_from(settings, settings.score.mqa_stage), scores=f["scores"])


def funnel(f: Frames, settings: Settings, by: str | None = None) -> pd.DataFrame:
    return funnel_mod.funnel(milestones(f, settings), by,
                             spend=f["spend"] if len(f["spend"]) else None)


def health(f: Frames, settings: Settings) -> tuple[dict[str, Any], pd.DataFrame]:
    series = health_mod.weekly(parts(f, "weekly"), f["leads"])
    unconfigured = () if settings.enrich.brand_terms else ("branded_search",)
    return health_mod.health(series, settings.measure.health_alpha, unconfigured), series


def journeys(f: Frames, settings: Settings, level: str = "account",
             outcome: str = "opportunity") -> Journeys:
    lookback = settings.measure.lookback_days or None
    if level == "account":
        return account_journeys(f["touches"], f["opportunities"], outcome=outcome,
                                lookback_days=lookback)
    if level == "person":
        return person_journeys(f["touches"], lookback_days=lookback)
    raise InputError(f"unknown attribution level '{level}'", hint="use account or person")


def attribution(f: Frames, settings: Settings, *, level: str = "account",
                outcome: str = "opportunity", models: tuple[str, ...] = DEFAULT_MODELS,
                measure: str = "conversions") -> pd.DataFrame:
    """Channel x model credit table for the workspace's journeys (see measure.attribution)."""
    unknown = [m for m in models if m not in ALL_MODELS]
    if unknown:
        raise InputError(f"unknown attribution model(s): {', '.join(unknown)}",
                         hint=f"choose from {', '.join(ALL_MODELS)}")
    if measure not in ("conversions", "value"):
        raise InputError(f"unknown measure '{measure}'", hint="use conversions or value")
    j = journeys(f, settings, level, outcome)
    if j.n == 0:
        return pd.DataFrame({"channel": j.channels}).assign(**{name: [] for name in models})
    table: pd.DataFrame = compare(j, models, measure,
                                  half_life_days=settings.measure.decay_half_life_days,
                                  repeats=settings.measure.markov_repeats)
    return table


def pipeline(f: Frames, settings: Settings) -> dict[str, Any]:
    return pipeline_fn(parts(f, "pipeline"), f["opportunities"],
                       settings.measure.influence_window_days)


def scorecard(f: Frames, settings: Settings) -> dict[str, Any]:
    logged = "access_log_size" in f and int(f["access_log_size"]["n"].iloc[0]) > 0
    pages = set(f["ai_search_pages"]["page"]) if logged else None
    return scorecard_mod.scorecard(f["touches"], f["opportunities"], f["scores"],
                                   ai_pages=pages)


def report(f: Frames, settings: Settings, name: str) -> str:
    """The self-contained HTML report of the workspace (see measure.report_html)."""
    from demandloop.measure.report_html import render

    summary, series = health(f, settings)
    by_channel = funnel(f, settings, "channel")
    keep = ["channel", *STAGES, "reached_to_won", "days_reached_to_won",
            "pipeline", "revenue"] + [c for c in ("spend", "cpl", "cost_per_opp", "roi")
                                      if c in by_channel]
    models = ("first_touch", "last_touch", "linear", "w_shaped", "markov", "shapley")
    return render({
        "workspace": name, "funnel": funnel(f, settings), "stages": STAGES,
        "funnel_by_channel": by_channel[keep] if len(by_channel) else by_channel,
        "attribution": attribution(f, settings, models=models), "models": models,
        "health": summary, "series": series, "demand": health_mod.DEMAND,
        "capture": health_mod.CAPTURE, "pipeline": pipeline(f, settings),
        "scorecard": scorecard(f, settings), "currency": settings.measure.currency,
    })

"""The measure reports a workspace answers, assembled from the store's input frames.

Pure: every function takes the frames of :func:`demandloop.measure.queries.frames` and the
workspace settings, and returns frames or JSON-ready dicts; the Python API, the CLI and the
HTML report all call these, so they always agree.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from demandloop.compute import Tables
from demandloop.config import Settings
from demandloop.errors import ConfigError, InputError
from demandloop.measure import funnel as funnel_mod
from demandloop.measure import health as health_mod
from demandloop.measure import scorecard as scorecard_mod
from demandloop.measure.attribution import ALL_MODELS, DEFAULT_MODELS, run_model
from demandloop.measure.attribution import steps as steps_mod
from demandloop.measure.attribution.pipeline import pipeline as pipeline_fn
from demandloop.measure.names import HEURISTIC_MODELS, STAGES

Frames = dict[str, pd.DataFrame]

#: the frames the funnel reads (see demandloop.measure.queries.frames)
FUNNEL_FRAMES = ("accounts", "account_firsts", "leads", "opportunities", "stage_changes",
                 "person_accounts", "scores", "spend")


def parts(f: Frames, name: str) -> Frames:
    """The parts of *name* (``weekly``, ``pipeline`` or ``scorecard``) in *f*, by part:
    :func:`frames <demandloop.measure.queries.frames>` gives them as ``weekly_*``,
    ``pipeline_*`` and ``scorecard_*``."""
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


def attribution(t: Tables, settings: Settings, *, level: str = "account",
                outcome: str | None = None, models: tuple[str, ...] = DEFAULT_MODELS,
                measure: str = "conversions") -> pd.DataFrame:
    """Channel x model credit table of the workspace's journeys (see measure.attribution),
    computed where *t* is (the store on DuckDB, the lake on Spark): the journeys and the
    rule-based models there, Markov and Shapley here from the distinct paths.

    *outcome* (account level: ``opportunity``, the default, or ``won``) and the ``value``
    measure are refused at person level, whose journeys end at a lead: they were ignored
    there, and a table of lead credit (or of zeros) answered a question not asked."""
    unknown = [m for m in models if m not in ALL_MODELS]
    if unknown:
        raise InputError(f"unknown attribution model(s): {', '.join(unknown)}",
                         hint=f"choose from {', '.join(ALL_MODELS)}")
    if measure not in ("conversions", "value"):
        raise InputError(f"unknown measure '{measure}'", hint="use conversions or value")
    if level == "person" and outcome is not None:
        raise InputError(f"outcome '{outcome}' is for account-level attribution: person "
                         "level credits the leads people became",
                         hint="drop the outcome, or use level account")
    if level == "person" and measure == "value":
        raise InputError("a lead carries no value: value is credited at account level, "
                         "from its opportunities' amounts",
                         hint="use level account, or measure conversions")
    m = settings.measure
    s = steps_mod.journey_steps(t, level, outcome or "opportunity", m.lookback_days or None)
    rules = steps_mod.heuristic_credit(s, [x for x in models if x in HEURISTIC_MODELS],
                                       m.decay_half_life_days)
    j = steps_mod.paths(s)
    if j.n == 0:
        return pd.DataFrame({"channel": j.channels}).assign(**{name: [] for name in models})
    table = pd.DataFrame({"channel": j.channels})
    for name in models:
        credit = (rules[name] if name in rules else
                  run_model(j, name, repeats=m.markov_repeats)).set_index("channel")
        table[name] = credit[measure].reindex(j.channels).fillna(0.0).to_numpy()
    return table.sort_values([models[0], "channel"], ascending=[False, True]).reset_index(
        drop=True) if models else table


def pipeline(f: Frames, settings: Settings) -> dict[str, Any]:
    return pipeline_fn(parts(f, "pipeline"), f["opportunities"],
                       settings.measure.influence_window_days)


def scorecard(f: Frames, settings: Settings) -> dict[str, Any]:
    logged = "access_log_size" in f and int(f["access_log_size"]["n"].iloc[0]) > 0
    pages = set(f["ai_search_pages"]["page"]) if logged else None
    return scorecard_mod.scorecard(parts(f, "scorecard"), f["scores"], ai_pages=pages)


#: the frames the HTML report reads (its attribution is computed apart: see :func:`report`)
REPORT_FRAMES = (*FUNNEL_FRAMES, "weekly", "pipeline", "scorecard", "ai_search_pages",
                 "access_log_size")
#: the models the HTML report shows
REPORT_MODELS = ("first_touch", "last_touch", "linear", "w_shaped", "markov", "shapley")


def report(f: Frames, settings: Settings, name: str, attribution: pd.DataFrame) -> str:
    """The self-contained HTML report of the workspace (see measure.report_html), with the
    :func:`attribution` table of :data:`REPORT_MODELS`."""
    from demandloop.measure.report_html import render

    summary, series = health(f, settings)
    by_channel = funnel(f, settings, "channel")
    keep = ["channel", *STAGES, "reached_to_won", "days_reached_to_won",
            "pipeline", "revenue"] + [c for c in ("spend", "cpl", "cost_per_opp", "roi")
                                      if c in by_channel]
    return render({
        "workspace": name, "funnel": funnel(f, settings), "stages": STAGES,
        "funnel_by_channel": by_channel[keep] if len(by_channel) else by_channel,
        "attribution": attribution, "models": REPORT_MODELS,
        "health": summary, "series": series, "demand": health_mod.DEMAND,
        "capture": health_mod.CAPTURE, "pipeline": pipeline(f, settings),
        "scorecard": scorecard(f, settings), "currency": settings.measure.currency,
    })

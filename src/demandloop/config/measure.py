"""Settings of the measure stage (``[measure]``): funnel, demand health, attribution."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from demandloop.config.base import Section as _Section


class MeasureSettings(_Section):
    """Funnel, demand health and attribution."""

    engaged_stage: str = Field("engaged", description="The stage that counts as engaged in "
                               "the funnel (it and every stage below it in [score.stages]).")
    influence_window_days: int = Field(90, ge=1, le=730, description="Pipeline influence: "
                                       "a touch this many days before an opportunity counts.")
    lookback_days: int = Field(0, ge=0, le=3650, description="Attribution: only touches this "
                               "close to the conversion (0 = all history).")
    decay_half_life_days: float = Field(7.0, gt=0, le=365,
                                        description="Time-decay attribution half-life (days).")
    markov_repeats: Literal["keep", "collapse"] = Field(
        "keep", description="Markov: keep repeated consecutive channels or collapse them "
        "(identical at order 1; ChannelAttribution collapses at order 1 and keeps above).")
    health_alpha: float = Field(0.05, gt=0, lt=0.5,
                                description="Demand health: significance level of trend tests.")
    currency: str = Field("$", max_length=8, description="Symbol printed before money in "
                          "reports (e.g. $, €, R$).")


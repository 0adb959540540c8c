"""Attribution: which channels get the credit for conversions and revenue.

Rule-based models (:mod:`.heuristics`), exact Markov removal effects (:mod:`.markov`),
Shapley values (:mod:`.shapley`) and sourced-vs-influenced pipeline (:mod:`.pipeline`), all
pure functions over :class:`~.journeys.Journeys` built from touches (:mod:`.builders`).
:func:`compare` runs a list of models side by side, the table ``report attribution`` shows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from demandloop.errors import InputError
from demandloop.measure.attribution.heuristics import MODELS as HEURISTICS
from demandloop.measure.attribution.heuristics import credit, heuristic, time_decay
from demandloop.measure.attribution.journeys import Journeys
from demandloop.measure.attribution.markov import markov
from demandloop.measure.attribution.shapley import shapley
from demandloop.measure.names import ALL_MODELS, DEFAULT_MODELS, HEURISTIC_MODELS

assert tuple(HEURISTICS) == HEURISTIC_MODELS  # one list of names, checked at import


def run_model(j: Journeys, model: str, *, half_life_days: float = 7.0,
              repeats: str = "keep") -> pd.DataFrame:
    """One model's credit per channel: columns channel, conversions, value.
    *half_life_days* is time decay's, *repeats* Markov's (see :mod:`.markov`)."""
    if model == "time_decay":
        return credit(j, time_decay(j, half_life_days))
    if model in HEURISTICS:
        return heuristic(j, model)
    if model.startswith("markov"):
        order = int(model.split("_")[1]) if "_" in model else 1
        return markov(j, order, repeats).credit[["channel", "conversions", "value"]]
    if model == "shapley":
        return shapley(j)
    raise InputError(f"unknown attribution model '{model}'",
                     hint=f"choose from {', '.join(ALL_MODELS)}")


def compare(j: Journeys, models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
            measure: str = "conversions", **options: Any) -> pd.DataFrame:
    """A channel x model table of *measure* (``conversions`` or ``value``), channels ordered
    by the first model's credit."""
    if measure not in ("conversions", "value"):
        raise InputError(f"unknown measure '{measure}'", hint="use 'conversions' or 'value'")
    out = pd.DataFrame({"channel": j.channels})
    for m in models:
        out[m] = run_model(j, m, **options)[measure].to_numpy()
    return out.sort_values([models[0], "channel"], ascending=[False, True]).reset_index(
        drop=True) if models else out


__all__ = ["ALL_MODELS", "DEFAULT_MODELS", "Journeys", "compare", "run_model"]

"""Rule-based attribution: first, last, last non-direct, linear, time decay, U- and W-shaped.

Every model is a small function giving each touch its share of its journey's credit (shares
sum to 1 within a journey); :func:`credit` turns shares into conversions and value per
channel. Repeated touches of a channel count as separate touches, as in ChannelAttribution's
``heuristic_models`` (its ``linear_touch`` on ``a > a > b`` gives ``a`` two thirds).

Example:
    >>> from demandloop.measure.attribution.journeys import Journeys
    >>> j = Journeys.from_paths(["social > search > direct"], conversions=[1])
    >>> heuristic(j, "position_based").set_index("channel")["conversions"].round(2).to_dict()
    {'direct': 0.4, 'search': 0.2, 'social': 0.4}
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from demandloop.errors import InputError
from demandloop.measure.attribution.journeys import F64, Journeys

#: channels "last non-direct" looks past
DIRECT_CHANNELS = ("direct",)


def _position(j: Journeys) -> tuple[F64, F64]:
    """Position of every step in its journey, and its journey's length (as floats)."""
    lengths = j.lengths
    pos = np.arange(len(j.steps)) - np.repeat(j.offsets[:-1], lengths)
    return pos.astype(np.float64), np.repeat(lengths, lengths).astype(np.float64)


def first_touch(j: Journeys) -> F64:
    pos, _ = _position(j)
    return np.asarray(pos == 0, dtype=np.float64)


def last_touch(j: Journeys) -> F64:
    pos, n = _position(j)
    return np.asarray(pos == n - 1, dtype=np.float64)


def last_non_direct(j: Journeys) -> F64:
    """The last touch that is not direct traffic; a journey of only direct visits keeps its
    last touch (Google Analytics' rule)."""
    direct = np.isin(np.asarray(j.channels, dtype=object)[j.steps], DIRECT_CHANNELS)
    idx = np.arange(len(j.steps))
    cand = np.where(direct, -1, idx)
    best = np.maximum.reduceat(cand, j.offsets[:-1]) if j.n else cand[:0]
    best = np.where(best < 0, j.offsets[1:] - 1, best)
    out = np.zeros(len(j.steps))
    out[best] = 1.0
    return out


def linear(j: Journeys) -> F64:
    _, n = _position(j)
    return 1.0 / n


def position_based(j: Journeys, first: float = 0.4, last: float = 0.4) -> F64:
    """U-shaped: 40 % first, 40 % last, 20 % shared by the touches between. One touch takes
    all; two touches split evenly."""
    pos, n = _position(j)
    middle = (1.0 - first - last) / np.maximum(n - 2, 1)
    out = np.where(pos == 0, first, np.where(pos == n - 1, last, middle))
    out = np.where(n == 2, 0.5, out)
    return np.where(n == 1, 1.0, out)


def w_shaped(j: Journeys) -> F64:
    """W-shaped: 30 % each to the first touch, the lead-creation touch and the last touch
    before the conversion (opportunity creation); 10 % shared by the others. Milestones that
    coincide add up; with no other touch the milestones share everything. A journey without
    a lead-creation touch falls back to position-based."""
    if j.lead is None:
        return position_based(j)
    pos, n = _position(j)
    lead = np.repeat(j.lead, j.lengths).astype(np.float64)
    raw = 0.3 * ((pos == 0).astype(float) + (pos == lead) + (pos == n - 1))
    milestone = raw > 0
    others = pd.Series(~milestone).groupby(j.journey_of_step).transform("sum").to_numpy()
    out = np.where(milestone, raw, 0.1 / np.maximum(others, 1))
    total = pd.Series(out).groupby(j.journey_of_step).transform("sum").to_numpy()
    out = out / total  # no "others": milestones are scaled up to share everything
    return np.where(lead < 0, position_based(j), out)


def time_decay(j: Journeys, half_life_days: float = 7.0) -> F64:
    """Weight ``2^(-age / half-life)`` by the touch's age at the conversion (or at the
    journey's last touch), normalised within the journey."""
    if j.times is None:
        raise InputError("time decay needs touch times")
    end = (j.end if j.end is not None
           else np.maximum.reduceat(j.times, j.offsets[:-1]))
    age = np.repeat(end, j.lengths) - j.times
    w = np.exp2(-np.maximum(age, 0.0) / (half_life_days * 86400.0))
    total = np.add.reduceat(w, j.offsets[:-1])
    return np.asarray(w / np.repeat(total, j.lengths), dtype=np.float64)


#: ordered registry of rule-based models: name -> share function
MODELS: dict[str, Callable[[Journeys], F64]] = {
    "first_touch": first_touch,
    "last_touch": last_touch,
    "last_non_direct": last_non_direct,
    "linear": linear,
    "time_decay": time_decay,
    "position_based": position_based,
    "w_shaped": w_shaped,
}


def credit(j: Journeys, shares: F64) -> pd.DataFrame:
    """Conversions and value per channel from per-touch *shares*."""
    jstep = j.journey_of_step
    k = len(j.channels)
    conv = np.bincount(j.steps, shares * j.conversions[jstep], minlength=k)
    value = (np.bincount(j.steps, shares * j.value[jstep], minlength=k)
             if j.value is not None else np.zeros(k))
    return pd.DataFrame({"channel": j.channels, "conversions": conv, "value": value})


def heuristic(j: Journeys, model: str) -> pd.DataFrame:
    """One rule-based model's credit per channel (columns channel, conversions, value)."""
    if model not in MODELS:
        raise InputError(f"unknown attribution model '{model}'",
                         hint=f"choose from {', '.join(MODELS)}")
    return credit(j, MODELS[model](j))

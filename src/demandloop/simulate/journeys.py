"""Simulated conversion journeys with planted channel effects, to test attribution.

Each journey is exposed to every channel independently (channel-specific reach), sees each
exposed channel one to three times in random order, and converts with probability
``sum of the planted effects of its distinct channels`` (no baseline): the true incremental
conversions of channel c are its effect times the journeys it reached. A good attribution
model recovers these; last touch does not.

Example:
    >>> sim = simulate_journeys(1000, seed=1)
    >>> sim.journeys.n, sorted(sim.truth) == sorted(sim.journeys.channels)
    (1000, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demandloop.measure.attribution.journeys import Journeys

#: channel -> (reach: share of journeys exposed, planted effect on conversion probability)
DEFAULT_CHANNELS: dict[str, tuple[float, float]] = {
    "paid_social": (0.45, 0.030),
    "organic_search": (0.55, 0.040),
    "events": (0.15, 0.090),
    "ai_assistant": (0.20, 0.050),
    "display": (0.35, 0.015),
    "email": (0.40, 0.020),
    "paid_search": (0.30, 0.060),
    "direct": (0.60, 0.020),
}


@dataclass
class SimulatedJourneys:
    journeys: Journeys
    #: channel -> expected incremental conversions (effect x journeys exposed)
    truth: dict[str, float]


def simulate_journeys(n: int, channels: dict[str, tuple[float, float]] | None = None,
                      seed: int = 0) -> SimulatedJourneys:
    """*n* journeys over *channels* (default :data:`DEFAULT_CHANNELS`); deterministic per seed."""
    spec = channels or DEFAULT_CHANNELS
    names = sorted(spec)
    reach = np.array([spec[c][0] for c in names])
    effect = np.array([spec[c][1] for c in names])
    rng = np.random.default_rng(seed)
    exposed = rng.random((n, len(names))) < reach
    empty = ~exposed.any(axis=1)
    exposed[empty, rng.integers(0, len(names), int(empty.sum()))] = True
    repeats = np.where(exposed, rng.integers(1, 4, exposed.shape), 0)
    # steps: each exposed channel repeated, then shuffled within the journey by random keys
    jour = np.repeat(np.repeat(np.arange(n), len(names)), repeats.ravel())
    chan = np.repeat(np.tile(np.arange(len(names)), n), repeats.ravel())
    order = np.lexsort((rng.random(len(jour)), jour))
    steps = chan[order].astype(np.int64)
    lengths = repeats.sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    p = np.clip(exposed @ effect, 0.0, 1.0)
    conv = (rng.random(n) < p).astype(np.float64)
    value = conv * np.round(rng.lognormal(9.5, 0.5, n), -2)
    truth = dict(zip(names, (effect * exposed.sum(axis=0)).tolist(), strict=True))
    return SimulatedJourneys(Journeys(names, steps, offsets, conv, 1.0 - conv, value=value),
                             truth)

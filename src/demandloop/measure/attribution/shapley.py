"""Shapley-value attribution over channel coalitions, exact up to 16 channels per journey.

The game: for a coalition S of channels, ``v(S)`` is the conversion rate of journeys whose
set of distinct channels is exactly S (``value="rate"``, the default, after Dalessandro et al.
2012). Each observed channel set T shares its conversions among its own channels by their
Shapley values in the game restricted to subsets of T; those values sum to ``v(T)``, so each
conversion is split in proportion and the credit over all journeys adds up to the total
conversions. A coalition no journey saw alone takes the best rate of any sub-coalition that
was seen (adding a channel is assumed never to hurt), 0 if none. A channel whose Shapley
value in a set is negative (journeys with it convert less) gets no credit there. Rates are
smoothed towards the overall rate by :data:`PRIOR` pseudo-journeys (empirical Bayes), so with
few journeys per channel set (account-level data) no set seen once dominates; with thousands
per set the smoothing is negligible. If
conversion is additive in channels (``P(conv | T) = sum of b_c``), channel c is credited
exactly ``b_c`` x journeys exposed to c: its incremental conversions.

``value="count"`` is the "simplified Shapley value" of Zhao et al. 2018 (v(S) = conversions
of journeys whose set lies within S); its closed form is an even split over each journey's
distinct channels. :func:`ordered_shapley` then splits a channel's credit over the positions
at which it appeared (their ordered variant), answering "which channel, at which step".

Cost: a set of m channels needs its 2^m sub-coalitions (m 2^m operations), so exact values are
computed for m <= 16 (65,536 coalitions, milliseconds); larger sets use a sampled estimator
(random permutations, mean marginal contribution; error ~ 1/sqrt(samples)).

Example:
    >>> shapley_values(lambda s: float(len(s) > 1), ["a", "b"])
    {'a': 0.5, 'b': 0.5}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from demandloop.errors import InputError
from demandloop.measure.attribution.journeys import F64, I64, Journeys

EXACT_LIMIT = 16
#: pseudo-journeys at the overall conversion rate added to every channel set's rate
PRIOR = 10.0


def _popcount(x: I64) -> I64:
    c = np.zeros_like(x)
    while np.any(x):
        c += x & 1
        x = x >> 1
    return c


def _exact(v: F64, m: int) -> F64:
    """Shapley values of an m-player game given as values over all 2^m masks."""
    masks = np.arange(1 << m, dtype=np.int64)
    size = _popcount(masks)
    weight = np.array([math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m)
                       for s in range(m)])
    phi = np.zeros(m)
    for i in range(m):
        without = masks[(masks >> i) & 1 == 0]
        phi[i] = float(np.sum(weight[size[without]] * (v[without | (1 << i)] - v[without])))
    return phi


def _sampled(value_of: Callable[[int], float], players: Sequence[int], samples: int,
             rng: np.random.Generator) -> F64:
    """Mean marginal contribution over random orders (unbiased; error ~ 1/sqrt(samples))."""
    phi = np.zeros(len(players))
    for _ in range(samples):
        mask, prev = 0, value_of(0)
        for i in rng.permutation(len(players)):
            mask |= 1 << players[i]
            cur = value_of(mask)
            phi[i] += cur - prev
            prev = cur
    return phi / samples


def shapley_values(v: Callable[[frozenset[str]], float], players: Sequence[str]
                   ) -> dict[str, float]:
    """Exact Shapley values of a small game given as a function of coalitions."""
    m = len(players)
    if m > EXACT_LIMIT:
        raise InputError(f"{m} players: exact Shapley is limited to {EXACT_LIMIT}")
    vals = np.array([v(frozenset(p for b, p in enumerate(players) if mask >> b & 1))
                     for mask in range(1 << m)])
    return dict(zip(players, _exact(vals, m).tolist(), strict=True))


def _rates(j: Journeys) -> tuple[I64, F64, F64]:
    """Distinct channel sets with their journey counts and conversion counts."""
    sets = j.channel_sets()
    uniq, inv = np.unique(sets, return_inverse=True)
    n = np.bincount(inv, j.conversions + j.nulls).astype(np.float64)
    return uniq, n, np.bincount(inv, j.conversions).astype(np.float64)


def _lookup(rate: dict[int, float], obs: I64, obs_rate: F64) -> Callable[[int], float]:
    """v(mask) for the sampled estimator: the observed rate, else the best observed
    sub-coalition's (the same monotone fill as the exact path), memoised."""
    cache: dict[int, float] = {}

    def value_of(mask: int) -> float:
        if mask not in cache:
            sub = (obs & ~mask) == 0
            cache[mask] = rate.get(mask, float(obs_rate[sub].max()) if sub.any() else 0.0)
        return cache[mask]

    return value_of


def _set_credit(j: Journeys, samples: int, seed: int, prior: float = PRIOR
                ) -> dict[int, F64]:
    """For every observed channel set (mask), each member's share of one conversion."""
    uniq, n, conv = _rates(j)
    overall = conv.sum() / n.sum() if n.sum() > 0 else 0.0
    # empirical Bayes: each set's rate is shrunk towards the overall rate by `prior`
    # pseudo-journeys, so a set seen once (rate 0 or 1) cannot dominate the game
    smoothed = (conv + prior * overall) / (n + prior)
    rate = dict(zip(uniq.tolist(), smoothed.tolist(), strict=True))
    obs = np.array(list(rate), dtype=np.int64)
    obs_rate = np.array(list(rate.values()))
    rng = np.random.default_rng(seed)
    out: dict[int, F64] = {}
    for t in uniq.tolist():
        players = [b for b in range(63) if t >> b & 1]
        m = len(players)
        if m <= EXACT_LIMIT:
            local = np.arange(1 << m, dtype=np.int64)
            glob = np.zeros(1 << m, dtype=np.int64)
            for b, p in enumerate(players):
                glob |= ((local >> b) & 1) << p
            v = np.array([rate.get(g, -1.0) for g in glob.tolist()])
            v[0] = 0.0
            seen = v >= 0
            v = np.where(seen, v, 0.0)
            for b in range(m):  # monotone fill of unseen coalitions
                has = (local >> b) & 1 == 1
                v[has] = np.where(seen[has], v[has], np.maximum(v[has], v[local[has] ^ (1 << b)]))
            phi = _exact(v, m)
        else:
            phi = _sampled(_lookup(rate, obs, obs_rate), players, samples, rng)
        phi = np.clip(phi, 0.0, None)  # a channel that lowers the rate gets no credit
        total = phi.sum()
        share = phi / total if total > 0 else np.full(m, 1.0 / m)
        full = np.zeros(len(j.channels))
        full[players] = share
        out[t] = full
    return out


def shapley(j: Journeys, value: str = "rate", samples: int = 2000, seed: int = 0,
            prior: float = PRIOR) -> pd.DataFrame:
    """Shapley credit per channel (columns channel, conversions, value); see the module
    docstring for the two value functions."""
    if value not in ("rate", "count"):
        raise InputError(f"Shapley value function '{value}'", hint="use 'rate' or 'count'")
    sets = j.channel_sets()
    if value == "count":
        table = {t: _even(t, len(j.channels)) for t in np.unique(sets).tolist()}
    else:
        table = _set_credit(j, samples, seed, prior)
    shares = np.array([table[t] for t in sets.tolist()]).reshape(j.n, len(j.channels))
    conv = shares.T @ j.conversions
    val = shares.T @ j.value if j.value is not None else np.zeros(len(j.channels))
    return pd.DataFrame({"channel": j.channels, "conversions": conv, "value": val})


def _even(t: int, k: int) -> F64:
    bits = np.array([(t >> b) & 1 for b in range(k)], dtype=np.float64)
    return np.asarray(bits / bits.sum(), dtype=np.float64)


def ordered_shapley(j: Journeys, value: str = "rate", max_position: int = 5,
                    samples: int = 2000, seed: int = 0, prior: float = PRIOR) -> pd.DataFrame:
    """Shapley credit split over touch positions: columns channel, position (1 = first
    touch; the last bucket holds ``max_position`` and later), conversions, value."""
    sets = j.channel_sets()
    table = ({t: _even(t, len(j.channels)) for t in np.unique(sets).tolist()}
             if value == "count" else _set_credit(j, samples, seed, prior))
    jstep = j.journey_of_step
    pos = np.arange(len(j.steps)) - j.offsets[jstep]
    # a channel's share of its journey, split evenly over the steps where it appears
    occurrences = pd.Series(1, index=pd.MultiIndex.from_arrays([jstep, j.steps])).groupby(
        level=[0, 1]).transform("sum").to_numpy()
    share = np.array([table[t][c] for t, c in zip(sets[jstep].tolist(), j.steps.tolist(),
                                                   strict=True)]) / occurrences
    frame = pd.DataFrame({
        "channel": np.asarray(j.channels, dtype=object)[j.steps],
        "position": np.minimum(pos + 1, max_position),
        "conversions": share * j.conversions[jstep],
        "value": share * (j.value[jstep] if j.value is not None else 0.0),
    })
    return frame.groupby(["channel", "position"], as_index=False).sum()

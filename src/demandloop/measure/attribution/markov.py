"""Markov-chain attribution by removal effects, solved exactly as an absorbing chain.

States are the last *k* channels of a path (order k, 1-3); every path starts in ``start`` and
ends in ``conversion`` (weight: its conversions) or ``null`` (its non-conversions). Transition
probabilities are the observed transition counts, normalised per state. The probability of
reaching ``conversion`` from ``start`` is the solution of one linear system,
``(I - Q) x = r`` (Q: transitions among channel states, r: into conversion), so it is exact:
no random walks. The *removal effect* of channel c is ``1 - P(conv | c removed) / P(conv)``,
where removing c sends every state that contains c straight to ``null``; each channel gets
``removal effect / sum of removal effects`` of the conversions. Value is credited the same
way from a second right-hand side, the expected revenue of the walk (exits into conversion
weighted by the revenue of the paths that ended there), as ChannelAttribution does.

**Repeated channels** (``a > a > b``): ``repeats="keep"`` (default) keeps them as steps;
``repeats="collapse"`` merges consecutive repeats first. At order 1 both give *identical*
results: a self-loop only delays the walk (from state a, the probability of leaving to b is
``p_ab / (1 - p_aa)`` either way), so ChannelAttribution, which collapses at order 1, agrees
with either. At order >= 2 they differ (``(a, a)`` is its own state); ChannelAttribution keeps
repeats there, as ``keep`` does. Paths shorter than k are one state (the whole path), and
longer paths start at their first full window, as in ChannelAttribution.

Why hand-written: ChannelAttribution, the peer, estimates the same quantity by simulating
random walks (noise of a few percent at its defaults, and a bias from its ``max_step``
truncation on chains with loops), and its Python API takes path strings only.

Example:
    >>> from demandloop.measure.attribution.journeys import Journeys
    >>> j = Journeys.from_paths(["a > b", "b", "a"], conversions=[1, 0, 0])
    >>> r = markov(j)
    >>> round(r.conversion_probability, 4), r.removal_effects.round(3).tolist()
    (0.3333, [0.5, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from demandloop.errors import InputError
from demandloop.measure.attribution.journeys import F64, I64, Journeys


@dataclass
class MarkovResult:
    """Removal effects and the credit they give each channel."""

    channels: list[str]
    removal_effects: F64
    conversion_probability: float
    credit: pd.DataFrame  # channel, removal_effect, conversions, value
    states: int


def _collapse(j: Journeys) -> tuple[I64, I64]:
    """Steps and offsets with consecutive repeats of a channel merged."""
    keep = np.ones(len(j.steps), dtype=bool)
    keep[1:] = j.steps[1:] != j.steps[:-1]
    keep[j.offsets[:-1]] = True  # a journey's first step always stays
    cum = np.concatenate([[0], np.cumsum(keep)])
    return j.steps[keep], cum[j.offsets].astype(np.int64)


def _states(steps: I64, offsets: I64, k: int, base: int) -> tuple[I64, I64, I64]:
    """Order-k state code of each state-bearing step, its journey, and per-journey counts.

    A state is the window of the last k channels, coded in base ``channels + 1`` (digit 0 is
    'before the path began'), so short paths get the whole path as their one state."""
    lengths = np.diff(offsets)
    jstep = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    pos = np.arange(len(steps)) - offsets[jstep]
    code = steps + 1
    for d in range(1, k):
        prev = np.zeros(len(steps), dtype=np.int64)
        ok = pos >= d
        prev[d:][ok[d:]] = steps[:-d][ok[d:]] + 1
        code = code + prev * base ** d
    bearing = (pos >= k - 1) | ((lengths[jstep] < k) & (pos == lengths[jstep] - 1))
    counts = np.bincount(jstep[bearing], minlength=len(lengths)).astype(np.int64)
    return code[bearing], jstep[bearing], counts


def markov(j: Journeys, order: int = 1, repeats: str = "keep") -> MarkovResult:
    """Exact removal-effect attribution of order *order* (see the module docstring)."""
    if order not in (1, 2, 3):
        raise InputError(f"Markov order {order} is not supported", hint="use 1, 2 or 3")
    if repeats not in ("keep", "collapse"):
        raise InputError(f"repeats='{repeats}'", hint="use 'keep' or 'collapse'")
    steps, offsets = _collapse(j) if repeats == "collapse" else (j.steps, j.offsets)
    nch = len(j.channels)
    if order == 1:
        codes, jstate, counts = steps, np.repeat(np.arange(j.n), np.diff(offsets)), \
            np.diff(offsets)
        state_ids, m = codes, nch
        members = np.eye(nch, dtype=bool)
    else:
        codes, jstate, counts = _states(steps, offsets, order, nch + 1)
        space = (nch + 1) ** order
        if space <= 1 << 24:  # codes index a small table: O(n) instead of sorting them
            seen = np.zeros(space, dtype=bool)
            seen[codes] = True
            uniq = np.flatnonzero(seen).astype(np.int64)
            state_ids = (np.cumsum(seen) - 1)[codes]
        else:
            uniq, state_ids = np.unique(codes, return_inverse=True)
        m = len(uniq)
        members = np.zeros((m, nch), dtype=bool)
        rest = uniq.copy()
        for _ in range(order):
            digit = rest % (nch + 1)
            members[np.flatnonzero(digit), digit[digit > 0] - 1] = True
            rest //= nch + 1
    w = j.conversions + j.nulls
    soff = np.concatenate([[0], np.cumsum(counts)])
    first, last = soff[:-1], soff[1:] - 1
    # transitions among states (weights: the journey's conversions + nulls)
    inner = np.ones(len(state_ids), dtype=bool)
    inner[last] = False
    src, dst = state_ids[inner], state_ids[np.flatnonzero(inner) + 1]
    if m <= 2048:  # few states: one bincount over the dense matrix beats sparse summing
        dense = np.bincount(src * m + dst, w[jstate[inner]], minlength=m * m)
        q_counts = sp.csr_matrix(dense.reshape(m, m))
    else:
        q_counts = sp.coo_matrix((w[jstate[inner]], (src, dst)), shape=(m, m)).tocsr()
    to_conv = np.bincount(state_ids[last], j.conversions, minlength=m)
    to_null = np.bincount(state_ids[last], j.nulls, minlength=m)
    start = np.bincount(state_ids[first], w, minlength=m)
    out_total = np.asarray(q_counts.sum(axis=1)).ravel() + to_conv + to_null
    scale = np.divide(1.0, out_total, out=np.zeros(m), where=out_total > 0)
    q = sp.diags(scale) @ q_counts
    # right-hand sides: conversions, and value (expected revenue per exit into conversion)
    rhs = np.column_stack([to_conv * scale,
                           np.bincount(state_ids[last], j.value if j.value is not None
                                       else np.zeros(j.n), minlength=m) * scale])
    s = start / start.sum() if start.sum() > 0 else start

    def absorbed(removed: npt.NDArray[np.bool_]) -> F64:
        keep = ~removed
        if not keep.any():
            return np.zeros(2)
        a = sp.identity(int(keep.sum()), format="csc") - q[keep][:, keep].tocsc()
        x = (np.linalg.solve(a.toarray(), rhs[keep]) if keep.sum() <= 1500
             else spla.spsolve(a, rhs[keep]))
        return np.asarray(s[keep] @ x, dtype=np.float64).reshape(2)

    base = absorbed(np.zeros(m, dtype=bool)) if m else np.zeros(2)
    removed = np.array([absorbed(members[:, c]) for c in range(nch)]).reshape(nch, 2)
    effects = np.clip(1.0 - np.divide(removed, base, out=np.ones_like(removed),
                                      where=base > 0), 0.0, None)
    shares = effects / np.where(effects.sum(axis=0) > 0, effects.sum(axis=0), 1.0)
    frame = pd.DataFrame({"channel": j.channels, "removal_effect": effects[:, 0],
                          "value_removal_effect": effects[:, 1],
                          "conversions": shares[:, 0] * j.total_conversions,
                          "value": shares[:, 1] * j.total_value})
    return MarkovResult(j.channels, effects[:, 0], float(base[0]), frame, m)


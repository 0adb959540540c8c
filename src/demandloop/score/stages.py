"""Buying stages: a configurable stage machine evaluated from the bottom of the funnel up.

Each stage is a rule over account features: ``all`` conditions must hold and, when ``any`` is
given, at least one of those too. Stages are checked in order — customer, opportunity, MQA,
engaged, aware, target by default, the way Demandbase's journey stages are — and the first
match is the account's stage (``unaware`` when none matches). MQL for people uses the same
condition language over person features, in the same ``[score]`` section, so marketing
reports and sales routing read one definition.

Every condition is a field, an operator and a value, in the one condition language of
:mod:`demandloop.conditions`; a rule naming an unknown field fails when the configuration
loads (the fields a rule may name are in :mod:`demandloop.config.conditions`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from demandloop.conditions import Condition, describe_column, mask
from demandloop.config.conditions import ACCOUNT_FEATURES, PERSON_FEATURES, SENIORITY_RANK

__all__ = ["ACCOUNT_FEATURES", "PERSON_FEATURES", "SENIORITY_RANK", "Condition", "Rule",
           "Shown", "assign"]

@dataclass(frozen=True)
class Rule:
    name: str
    all: tuple[Condition, ...] = ()
    any: tuple[Condition, ...] = ()

    def matches(self, row: dict[str, Any]) -> list[str] | None:
        """The reasons (conditions met) when the rule matches, else None."""
        if not all(c.holds(row) for c in self.all):
            return None
        met_any = [c for c in self.any if c.holds(row)]
        if self.any and not met_any:
            return None
        return [c.describe(row) for c in (*self.all, *met_any)]


def _empty_lists(n: int) -> np.ndarray:
    """*n* distinct empty lists as an object array (numpy would read a list of lists as
    a 2-D shape)."""
    return np.fromiter(([] for _ in range(n)), dtype=object, count=n)


@dataclass(frozen=True)
class Shown:
    """What an earlier :func:`assign` gave the first rows of the frame now assigned: their
    *stage* and *reasons*, when only the features named in *moved* may differ since."""

    stage: np.ndarray
    reasons: np.ndarray
    moved: frozenset[str]


#: the stage of an account that no stage rule matches
NO_STAGE = "unaware"


def stage_names(rules: Iterable[Any]) -> list[str]:
    """Every stage an account may be in: the names of *rules* (``[[score.stages]]``, in
    order) and :data:`NO_STAGE`."""
    return [r.name for r in rules] + [NO_STAGE]


def assign(rules: list[Rule], features: pd.DataFrame, none: str = NO_STAGE,
           shown: Shown | None = None) -> pd.DataFrame:
    """``stage`` and ``reasons`` for every row of *features* (first matching rule wins).

    Rules are evaluated as column masks (fast for a million accounts); the reasons are
    written out only for the rule each row matched. With *shown* (the live rescore: the
    kept rows come first, and only their engagement decayed), a kept row that keeps its
    stage under a rule naming none of ``shown.moved`` keeps its reasons too, the same list:
    writing out the reasons of every row was most of a live rescore's rules (0.27 s at 88k
    accounts and 289k people). Nothing may change a reasons list in place.
    """
    # Positional numpy arrays, not Series: the reasons are lists, and pandas spends more
    # time inferring and aligning a Series of lists than building them.
    n = len(features)
    which = np.full(n, -1, dtype=np.int64)  # the rule each row matched
    todo = np.ones(n, dtype=bool)
    for k, rule in enumerate(rules):
        hit = todo.copy()
        for c in rule.all:
            hit &= mask(c, features)
        any_masks = [mask(c, features) for c in rule.any]
        if any_masks:
            hit &= np.logical_or.reduce(any_masks)
        which[hit] = k
        todo &= ~hit
    names = np.array([none, *(r.name for r in rules)], dtype=object)
    stage = names[which + 1]
    reasons = np.empty(n, dtype=object)
    written = np.ones(n, dtype=bool)  # rows whose reasons are written out here
    if shown is not None and none not in names[1:]:
        m = len(shown.stage)
        steady = np.array([-1, *(k for k, r in enumerate(rules)
                                 if not {c.field for c in (*r.all, *r.any)} & shown.moved)])
        keep = (stage[:m] == shown.stage) & np.isin(which[:m], steady)
        reasons[:m][keep] = shown.reasons[keep]
        written[:m] = ~keep
    for k, rule in enumerate(rules):
        where = np.flatnonzero((which == k) & written)
        if not len(where):
            continue
        rows = features.iloc[where]
        alls = [describe_column(c, rows).to_numpy(dtype=object) for c in rule.all]
        for c in rule.any:  # only the "any" conditions that hold are reasons
            said = describe_column(c, rows).to_numpy(dtype=object)
            said[~mask(c, rows)] = None
            alls.append(said)
        for i, row in zip(where, zip(*alls, strict=True) if alls else ((),) * len(where),
                          strict=True):
            reasons[i] = [r for r in row if isinstance(r, str)]
    # a list of its own for every row that matched nothing
    empty = (which == -1) & written
    reasons[empty] = _empty_lists(int(empty.sum()))
    return features.assign(stage=pd.Series(stage, index=features.index),
                           reasons=pd.Series(reasons, index=features.index))

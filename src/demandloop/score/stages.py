"""Buying stages: a configurable stage machine evaluated from the bottom of the funnel up.

Each stage is a rule over account features: ``all`` conditions must hold and, when ``any`` is
given, at least one of those too. Stages are checked in order — customer, opportunity, MQA,
engaged, aware, target by default, the way Demandbase's journey stages are — and the first
match is the account's stage (``unaware`` when none matches). MQL for people uses the same
condition language over person features, in the same ``[score]`` section, so marketing
reports and sales routing read one definition.

Every condition is a field, an operator and a value; a rule naming an unknown field fails
when the configuration loads.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
}

#: account features a stage rule may name
ACCOUNT_FEATURES: dict[str, str] = {
    "fit": "ICP fit, 0-100",
    "engagement": "decayed, capped engagement",
    "recent": "capped touch weight in the last 7 days",
    "surge": "recent engagement / usual level",
    "surging": "true when the account surges",
    "people": "distinct known people engaged",
    "touches_90d": "touches in the last 90 days",
    "high_intent_30d": "high-intent pages, demo requests and trials in 30 days",
    "demo_requests_30d": "demo requests in the last 30 days",
    "open_opportunities": "opportunities created and not closed",
    "won_opportunities": "opportunities won",
    "target": "on the target account list",
    "committee_coverage": "share of the required buying roles engaged (0-1)",
}
#: person features an MQL rule may name
PERSON_FEATURES: dict[str, str] = {
    "engagement": "the person's decayed, capped engagement",
    "account_fit": "their account's ICP fit",
    "demo_requests_30d": "their demo requests in the last 30 days",
    "forms_30d": "their form fills in the last 30 days",
    "seniority_rank": "0 individual contributor .. 4 C-level",
}
SENIORITY_RANK = {"individual_contributor": 0, "manager": 1, "director": 2, "vp": 3,
                  "c_level": 4}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: float | bool

    def holds(self, row: dict[str, Any]) -> bool:
        value = row.get(self.field)
        if value is None or (isinstance(value, float) and value != value):
            return False
        return bool(OPS[self.op](value, self.value))

    def describe(self, row: dict[str, Any]) -> str:
        v = row.get(self.field)
        shown = f"{v:.2f}" if isinstance(v, float) else str(v)
        return f"{self.field} {self.op} {self.value:g} (is {shown})" if not isinstance(
            self.value, bool) else f"{self.field} {self.op} {self.value} (is {shown})"


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


def _mask(c: Condition, features: pd.DataFrame) -> pd.Series:
    col = features[c.field] if c.field in features else pd.Series(np.nan, index=features.index)
    known = col.notna()
    mask: pd.Series = known & OPS[c.op](col.where(known, 0), c.value).astype(bool)
    return mask


def _describe(c: Condition, rows: pd.DataFrame) -> pd.Series:
    """:meth:`Condition.describe` for every row, column-wise (the same text)."""
    col = rows[c.field] if c.field in rows else pd.Series(None, index=rows.index,
                                                          dtype=object)
    if pd.api.types.is_float_dtype(col):
        shown = col.map("{:.2f}".format)
    elif pd.api.types.is_bool_dtype(col) or pd.api.types.is_integer_dtype(col):
        shown = col.astype(str)
    else:  # mixed objects: exactly as the row function shows each one
        shown = col.map(lambda v: f"{v:.2f}" if isinstance(v, float) else str(v))
    wanted = f"{c.value}" if isinstance(c.value, bool) else f"{c.value:g}"
    return f"{c.field} {c.op} {wanted} (is " + shown + ")"


def _empty_lists(n: int) -> np.ndarray:
    """*n* distinct empty lists as an object array (numpy would read a list of lists as
    a 2-D shape)."""
    return np.fromiter(([] for _ in range(n)), dtype=object, count=n)


def assign(rules: list[Rule], features: pd.DataFrame, none: str = "unaware"
           ) -> pd.DataFrame:
    """``stage`` and ``reasons`` for every row of *features* (first matching rule wins).

    Rules are evaluated as column masks (fast for a million accounts); the reasons are
    written out only for the rule each row matched.
    """
    # Positional numpy arrays, not Series: the reasons are lists, and pandas spends more
    # time inferring and aligning a Series of lists than building them.
    n = len(features)
    stage = np.full(n, none, dtype=object)
    reasons = np.empty(n, dtype=object)
    todo = np.ones(n, dtype=bool)
    for rule in rules:
        hit = todo.copy()
        for c in rule.all:
            hit &= _mask(c, features).to_numpy(dtype=bool)
        any_masks = [_mask(c, features).to_numpy(dtype=bool) for c in rule.any]
        if any_masks:
            hit &= np.logical_or.reduce(any_masks)
        where = np.flatnonzero(hit)
        if not len(where):
            continue
        stage[where] = rule.name
        rows = features.iloc[where]
        alls = [_describe(c, rows).to_numpy(dtype=object) for c in rule.all]
        for c in rule.any:  # only the "any" conditions that hold are reasons
            shown = _describe(c, rows).to_numpy(dtype=object)
            shown[~_mask(c, rows).to_numpy(dtype=bool)] = None
            alls.append(shown)
        for i, row in zip(where, zip(*alls, strict=True) if alls else ((),) * len(where),
                          strict=True):
            reasons[i] = [r for r in row if isinstance(r, str)]
        todo &= ~hit
    # a list of its own for every row that matched nothing (callers may extend them)
    reasons[todo] = _empty_lists(int(todo.sum()))
    return features.assign(stage=pd.Series(stage, index=features.index),
                           reasons=pd.Series(reasons, index=features.index))


def changes(previous: dict[str, str], current: pd.DataFrame) -> pd.DataFrame:
    """Rows whose stage differs from *previous* (entity id -> last stage): ``entity_id,
    from_stage, to_stage, reasons``."""
    prev = current["entity_id"].map(previous).astype(object)
    moved = current[prev.fillna("(none)") != current["stage"]]
    before = prev[moved.index].astype(object)
    return pd.DataFrame({"entity_id": moved["entity_id"],
                         "from_stage": before.where(before.notna(), None),
                         "to_stage": moved["stage"], "reasons": moved["reasons"]})

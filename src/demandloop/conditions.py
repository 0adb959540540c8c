"""The one condition language: ``field op value``, shared by stage and MQL rules, segments,
workflow ``if`` lists and territories (and, next, personalisation audiences).

Operators: ``==  !=  >=  >  <=  <`` and ``in``, ``not_in`` (against a list) and ``contains``
(case-insensitive text). A missing value never meets a condition, whatever the operator:
an account without a known industry is neither ``== "Software"`` nor ``!= "Software"``.
Conditions are evaluated row by row (:meth:`Condition.holds`, for explanations) or as
column masks over a frame (:func:`mask`, :func:`select`), with the same result.

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"fit": [80.0, 40.0, None], "stage": ["mqa", "aware", "mqa"]})
    >>> select(rows, [Condition("fit", ">=", 50), Condition("stage", "in", ["mqa"])]).index.tolist()
    [0]
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from demandloop.errors import UsageError


def _in(a: Any, b: Any) -> Any:
    values = list(b) if isinstance(b, list | tuple) else [b]
    return a.isin(values) if isinstance(a, pd.Series) else a in values


OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, ">=": operator.ge, ">": operator.gt,
    "<=": operator.le, "<": operator.lt, "in": _in,
    "not_in": lambda a, b: ~_in(a, b) if isinstance(a, pd.Series) else not _in(a, b),
    "contains": lambda a, b: (a.astype(str).str.contains(str(b), case=False, regex=False)
                              if isinstance(a, pd.Series) else str(b).lower() in str(a).lower()),
}


def missing(value: Any) -> bool:
    """None or NaN: a value no condition is met by."""
    return value is None or (isinstance(value, float) and value != value)


def _shown(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Condition:
    """``field op value``; see the module docstring for the operators."""

    field: str
    op: str
    value: Any

    def holds(self, row: dict[str, Any]) -> bool:
        value = row.get(self.field)
        if missing(value):
            return False
        return bool(OPS[self.op](value, self.value))

    def wanted(self) -> str:
        """The value as a reason shows it (``25`` for 25.0, ``True``, ``['mqa']``)."""
        v = self.value
        return f"{v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else f"{v}"

    def describe(self, row: dict[str, Any]) -> str:
        """The condition with the row's value, as a reason: ``fit >= 50 (is 75.00)``."""
        return f"{self.field} {self.op} {self.wanted()} (is {_shown(row.get(self.field))})"


def mask(c: Condition, rows: pd.DataFrame) -> np.ndarray:
    """Per row of *rows*, whether it meets *c* (a column the frame lacks meets nothing)."""
    if c.op not in OPS:
        raise UsageError(f"unknown operator '{c.op}'", hint=f"use {', '.join(OPS)}")
    if c.field not in rows:
        return np.zeros(len(rows), dtype=bool)
    col = rows[c.field]
    known = col.notna()
    try:  # a missing value is stood in for (it is masked out below), so None never raises
        hit = OPS[c.op](col.where(known, 0), c.value)
    except TypeError:
        raise UsageError(f"condition {c.field} {c.op} {c.value!r}: the value does not "
                         f"compare with {c.field}") from None
    hit = pd.Series(hit, index=rows.index).fillna(False).astype(bool)
    return (hit & known).to_numpy(dtype=bool)


def select(rows: pd.DataFrame, conditions: Sequence[Condition]) -> pd.DataFrame:
    """The rows meeting every condition."""
    keep = np.ones(len(rows), dtype=bool)
    for c in conditions:
        keep &= mask(c, rows)
    return rows[keep]


def describe_column(c: Condition, rows: pd.DataFrame) -> pd.Series:
    """:meth:`Condition.describe` for every row, column-wise (the same text)."""
    col = rows[c.field] if c.field in rows else pd.Series(None, index=rows.index,
                                                          dtype=object)
    if pd.api.types.is_float_dtype(col):
        shown = col.map("{:.2f}".format)
    elif pd.api.types.is_bool_dtype(col) or pd.api.types.is_integer_dtype(col):
        shown = col.astype(str)
    else:  # mixed objects: exactly as the row function shows each one
        shown = col.map(_shown)
    return f"{c.field} {c.op} {c.wanted()} (is " + shown + ")"

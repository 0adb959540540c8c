"""Vectorised IP range lookups over the integer keys of :mod:`demandloop.ipaddr`.

Lookups are ``numpy.searchsorted`` over sorted, non-overlapping ranges: millions per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RangeIndex:
    """Sorted, non-overlapping ranges ``[start, end]`` with one value index each."""

    starts: np.ndarray
    ends: np.ndarray
    values: np.ndarray

    @classmethod
    def build(cls, starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> RangeIndex:
        order = np.argsort(starts, kind="stable")
        return cls(np.asarray(starts)[order].astype(np.int64),
                   np.asarray(ends)[order].astype(np.int64), np.asarray(values)[order])

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Position of the range holding each key, or -1.

        Example:
            >>> idx = RangeIndex.build(np.array([10, 20]), np.array([15, 30]), np.array([0, 1]))
            >>> idx.lookup(np.array([9, 10, 16, 25])).tolist()
            [-1, 0, -1, 1]
        """
        keys = np.asarray(keys, dtype=np.int64)
        pos = np.searchsorted(self.starts, keys, side="right") - 1
        hit = (pos >= 0) & (keys >= 0)
        pos_safe = np.where(hit, pos, 0)
        hit &= keys <= self.ends[pos_safe] if len(self.ends) else False
        return np.where(hit, pos, -1)



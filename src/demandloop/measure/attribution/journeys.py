"""Journeys: ordered channel paths with their outcome, the input of every attribution model.

A :class:`Journeys` holds many paths in one flat array (CSR layout: ``steps`` with
``offsets``), because the models are vectorised over all touches at once; a million journeys
are a few numpy arrays, not a million Python lists.

Each journey carries ``conversions`` and ``nulls`` (how many times the path ended in a
conversion or not), the ChannelAttribution convention, so a raw journey is ``(1, 0)`` or
``(0, 1)`` and an aggregated path can carry any counts. ``value`` is the revenue its
conversions brought; ``times`` (seconds) and ``end`` (the conversion's time) are needed only by
time decay; ``lead`` (index of the lead-creation touch, -1 if none) only by W-shaped.

Example:
    >>> j = Journeys.from_paths(["ads > search", "search"], conversions=[1, 0])
    >>> j.channels, j.lengths.tolist(), j.total_conversions
    (['ads', 'search'], [2, 1], 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from demandloop.errors import InputError

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: activities that create a lead (the W-shaped model's middle milestone)
LEAD_ACTIVITIES = ("form_fill", "demo_request", "trial", "webinar_registration")


@dataclass
class Journeys:
    """Many channel paths in CSR layout (see the module docstring)."""

    channels: list[str]
    steps: I64
    offsets: I64
    conversions: F64
    nulls: F64
    value: F64 | None = None
    times: F64 | None = None
    end: F64 | None = None
    lead: I64 | None = None
    ids: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.offsets) - 1
        if n < 0 or self.offsets[0] != 0 or self.offsets[-1] != len(self.steps):
            raise InputError("journeys: offsets must start at 0 and end at the number of steps")
        if len(self.conversions) != n or len(self.nulls) != n:
            raise InputError("journeys: one conversions and one nulls count per journey")
        if n and np.any(np.diff(self.offsets) <= 0):
            raise InputError("journeys: every journey needs at least one touch")

    # -- shape ------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> I64:
        return np.diff(self.offsets)

    @property
    def journey_of_step(self) -> I64:
        """For every step, the index of its journey."""
        return np.repeat(np.arange(self.n, dtype=np.int64), self.lengths)

    @property
    def total_conversions(self) -> float:
        return float(self.conversions.sum())

    @property
    def total_value(self) -> float:
        return float(self.value.sum()) if self.value is not None else 0.0

    def paths(self, sep: str = " > ") -> list[str]:
        """Paths as strings (ChannelAttribution's input format)."""
        names = np.asarray(self.channels, dtype=object)[self.steps]
        return [sep.join(names[a:b]) for a, b in zip(self.offsets[:-1], self.offsets[1:],
                                                     strict=True)]

    def channel_sets(self) -> I64:
        """Per journey, the bit mask of the distinct channels it touched (<= 62 channels)."""
        if len(self.channels) > 62:
            raise InputError(f"{len(self.channels)} channels: set-based models take at most 62")
        bits = np.left_shift(np.int64(1), self.steps.astype(np.int64))
        return np.bitwise_or.reduceat(bits, self.offsets[:-1]) if self.n else bits[:0]

    # -- constructors -----------------------------------------------------------------------
    @classmethod
    def from_paths(cls, paths: Sequence[str] | pd.Series | pa.Array | pa.ChunkedArray,
                   conversions: Sequence[float],
                   nulls: Sequence[float] | None = None, value: Sequence[float] | None = None,
                   sep: str = ">") -> Journeys:
        """From ChannelAttribution-style path strings (``"a > b > c"``) and counts; *nulls*
        defaults to ``1 - conversions`` floored at 0 (one raw journey per path)."""
        conv = np.asarray(conversions, dtype=np.float64)
        null = (np.asarray(nulls, dtype=np.float64) if nulls is not None
                else np.clip(1.0 - conv, 0.0, None))
        # split in Arrow's C++ kernels, not a Python loop: a million paths are common. A
        # pandas column goes to Arrow as it is (through a Python list it cost 2x the parse)
        if isinstance(paths, pa.Array | pa.ChunkedArray):
            strings = paths
        elif isinstance(paths, pd.Series):
            strings = pa.array(paths, type=pa.string(), from_pandas=True)
        else:
            strings = pa.array(list(paths), pa.string())
        arr = pc.split_pattern(strings, sep)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        # encode the raw parts, then trim only the dictionary (a few channels, not millions
        # of strings); parts that trim alike (" a" and "a ") merge, empty ones drop out
        encoded = pc.dictionary_encode(pc.list_flatten(arr))
        raw = [str(x).strip() for x in encoded.dictionary.to_pylist()]
        channels = sorted({x for x in raw if x})
        rank = {c: i for i, c in enumerate(channels)}
        remap = np.array([rank.get(x, -1) for x in raw], dtype=np.int64)
        codes = remap[encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
        if (codes < 0).any():  # empty parts ("a >> b", a trailing ">"): not touches
            keep = codes >= 0
            which = np.repeat(np.arange(len(lengths)), lengths)
            lengths = np.bincount(which[keep], minlength=len(conv)).astype(np.int64)
            codes = codes[keep]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return cls(channels, codes, offsets, conv, null,
                   value=np.asarray(value, dtype=np.float64) if value is not None else None)

    @classmethod
    def from_touches(cls, touches: pd.DataFrame, outcomes: pd.DataFrame) -> Journeys:
        """From a long table of touches and one outcome row per journey.

        *touches*: ``journey, ts, channel`` and optionally ``activity``, any order.
        *outcomes*: ``journey, converted (bool), value, end (timestamp)``. Journeys in
        *outcomes* with no touch are dropped (nothing to credit)."""
        t = touches.sort_values(["journey", "ts"], kind="stable")
        t = t[t["journey"].isin(outcomes["journey"])]
        o = outcomes.set_index("journey").loc[t["journey"].unique()]
        channels = sorted(t["channel"].astype(str).unique())
        codes = pd.Categorical(t["channel"], categories=channels).codes.astype(np.int64)
        lengths = t.groupby("journey", sort=False).size().to_numpy()
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        conv = o["converted"].to_numpy(dtype=bool).astype(np.float64)
        ts = t["ts"].astype("datetime64[us]").astype(np.int64).to_numpy() / 1e6
        end = o["end"].astype("datetime64[us]").astype(np.int64).to_numpy() / 1e6
        lead = None
        if "activity" in t.columns:
            is_lead = t["activity"].isin(LEAD_ACTIVITIES).to_numpy()
            pos = np.arange(len(t)) - np.repeat(offsets[:-1], lengths)
            first = pd.Series(np.where(is_lead, pos, np.iinfo(np.int64).max)).groupby(
                np.repeat(np.arange(len(lengths)), lengths)).min().to_numpy()
            lead = np.where(first == np.iinfo(np.int64).max, -1, first).astype(np.int64)
        return cls(channels, codes, offsets, conv, 1.0 - conv,
                   value=o["value"].fillna(0.0).to_numpy(dtype=np.float64) * conv,
                   times=ts, end=end, lead=lead, ids=[str(x) for x in o.index])

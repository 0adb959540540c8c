"""Benchmark: exact Markov attribution vs ChannelAttribution's simulation, same journeys.

Simulates N journeys over 8 channels (demandloop.simulate.journeys), then times, in the same
process:

* the baseline: ``ChannelAttribution.markov_model`` at its defaults (1e5 simulated walks,
  nfold=10) on the aggregated distinct path strings, its recommended input;
* ours on the *same input*: parsing those path strings (``Journeys.from_paths``) plus the
  exact first-order removal effects (``markov``): the fair ratio;
* and, apart, ours on the journeys as arrays (how demandloop holds them after reading
  touches) at orders 1 and 2.

Prints medians, the fair ratio (target: ours <= 1.0 s and >= 3x faster) and how far the two
disagree (its simulation noise).

    python benchmarks/attribution.py --journeys 1000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from demandloop.measure.attribution.journeys import Journeys
from demandloop.measure.attribution.markov import markov
from demandloop.simulate.journeys import simulate_journeys


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--journeys", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    import ChannelAttribution as ca  # noqa: N813 - the peer's own name

    j = simulate_journeys(args.journeys, seed=0).journeys
    paths = j.paths(" > ")
    agg = pd.DataFrame({"path": paths, "conv": j.conversions, "null": j.nulls}).groupby(
        "path", as_index=False).sum()
    print(f"{j.n:,} journeys, {len(j.steps):,} touches, {len(j.channels)} channels, "
          f"{len(agg):,} distinct paths")
    t1, ours = timed(lambda: markov(j, 1), args.repeat)
    tf, _ = timed(lambda: markov(Journeys.from_paths(agg["path"], agg["conv"], agg["null"]), 1),
                  args.repeat)
    t2, _ = timed(lambda: markov(j, 2), args.repeat)
    tp, _ = timed(lambda: Journeys.from_paths(agg["path"], agg["conv"], agg["null"]),
                  args.repeat)
    tc, theirs = timed(lambda: ca.markov_model(agg, "path", "conv", var_null="null",
                                               verbose=False, flg_pro=False), args.repeat)
    mine = ours.credit.set_index("channel")["conversions"]
    peer = theirs.set_index("channel_name")["total_conversions"].loc[mine.index]
    gap = float(np.max(np.abs(peer / mine - 1)))
    print(f"ChannelAttribution markov_model: {tc:7.3f} s (defaults: simulated)")
    print(f"ours, same input (parse + order 1): {tf:5.3f} s (of which parsing {tp:.3f} s)")
    print(f"ratio ChannelAttribution / ours, same input: {tc / tf:5.1f}x  (target >= 3x, "
          "ours <= 1.0 s)")
    print(f"ours on journeys as arrays: order 1 {t1:.3f} s ({tc / t1:.1f}x), "
          f"order 2 {t2:.3f} s")
    print(f"largest relative gap in credit:  {gap:7.1%} (the simulation's error)")


if __name__ == "__main__":
    main()

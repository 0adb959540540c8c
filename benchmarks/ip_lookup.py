"""Benchmark: IP -> organisation lookups against the shipped ASN table.

Prints lookups/s for demandloop's vectorised lookup (address strings -> integer keys ->
numpy.searchsorted over 468k ranges) and for a per-address Python baseline (ipaddress +
bisect) measured in the same process, with the ratio. Target: >= 1M lookups/s.

    python benchmarks/ip_lookup.py --lookups 2000000
"""

from __future__ import annotations

import argparse
import bisect
import ipaddress
import statistics
import time

import numpy as np
import pandas as pd

from demandloop.resolve.asn import load
from demandloop.resolve.ipranges import ip_keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lookups", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-sample", type=int, default=100_000)
    args = ap.parse_args()
    table = load()
    assert table is not None, "build the table first: demandloop data build-asn"
    rng = np.random.default_rng(0)
    raw = rng.integers(1 << 24, 224 << 24, args.lookups)
    ips = pd.Series([str(ipaddress.IPv4Address(int(x))) for x in raw])
    keys_only, full = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        keys = ip_keys(ips)
        t1 = time.perf_counter()
        pos = table.index.lookup(keys)
        t2 = time.perf_counter()
        keys_only.append(t2 - t1)
        full.append(t2 - t)
    starts = table.index.starts.tolist()
    ends = table.index.ends.tolist()
    k = min(args.baseline_sample, args.lookups)
    t = time.perf_counter()
    base = []
    for s in ips[:k]:
        v = int(ipaddress.ip_address(s))
        i = bisect.bisect_right(starts, v) - 1
        base.append(i if i >= 0 and v <= ends[i] else -1)
    py = time.perf_counter() - t
    assert base == pos[:k].tolist()
    hit = float((pos >= 0).mean())
    rate_full = args.lookups / statistics.median(full)
    rate_search = args.lookups / statistics.median(keys_only)
    print(f"table: {len(starts):,} ranges; {args.lookups:,} random public IPv4 addresses, "
          f"{hit:.1%} inside a range")
    print(f"demandloop, from address strings: {rate_full:,.0f} lookups/s "
          f"(median of {args.repeat}); search alone on integer keys: {rate_search:,.0f}/s")
    print(f"Python ipaddress + bisect baseline: {k / py:,.0f} lookups/s (on {k:,}, same answers)")
    print(f"ratio: {rate_full / (k / py):,.1f}x the baseline")


if __name__ == "__main__":
    main()

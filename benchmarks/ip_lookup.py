"""Benchmark: IP -> organisation lookups against the shipped ASN table.

Prints lookups/s for demandloop's vectorised lookup (address strings -> integer keys ->
numpy.searchsorted over 468k ranges) and the ratio to what a user would otherwise use,
measured in the same process on the same ranges and addresses:

* **pyasn** (the fair baseline: a C radix tree, the usual offline IP -> ASN library), loaded
  with the same ranges as CIDR prefixes, each carrying its range number, one call per
  address (its only API);
* demandloop called one address at a time, for the per-address use (the collector's);
* for reference, Python's ipaddress + bisect.

Target: >= 1M lookups/s in batch.

    python benchmarks/ip_lookup.py --lookups 2000000
"""

from __future__ import annotations

import argparse
import bisect
import ipaddress
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd

from demandloop.ipaddr import ip_keys
from demandloop.resolve.asn import load


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
    asndb = _pyasn(table.index.starts, table.index.ends)
    t = time.perf_counter()
    theirs = [asndb.lookup(s)[0] for s in ips[:k]]
    pyasn_rate = k / (time.perf_counter() - t)
    assert [-1 if x is None else x - 1 for x in theirs] == pos[:k].tolist()  # same answers
    single = min(k, 20_000)
    t = time.perf_counter()
    for s in ips[:single]:
        table.index.lookup(ip_keys(pd.Series([s])))
    one_rate = single / (time.perf_counter() - t)
    hit = float((pos >= 0).mean())
    rate_full = args.lookups / statistics.median(full)
    rate_search = args.lookups / statistics.median(keys_only)
    print(f"table: {len(starts):,} ranges; {args.lookups:,} random public IPv4 addresses, "
          f"{hit:.1%} inside a range")
    print(f"demandloop, from address strings: {rate_full:,.0f} lookups/s "
          f"(median of {args.repeat}); search alone on integer keys: {rate_search:,.0f}/s")
    print(f"pyasn (C radix tree), one call per address: {pyasn_rate:,.0f} lookups/s "
          f"(on {k:,}, same answers)")
    print(f"demandloop one address per call: {one_rate:,.0f} lookups/s (on {single:,})")
    print(f"ratio: {rate_full / pyasn_rate:,.1f}x pyasn in batch (the fair baseline); "
          f"{one_rate / pyasn_rate:.2f}x pyasn one address at a time")
    print(f"for reference, Python ipaddress + bisect: {k / py:,.0f} lookups/s, "
          f"{rate_full / (k / py):,.1f}x")


def _pyasn(starts: np.ndarray, ends: np.ndarray) -> Any:
    """pyasn over the same ranges: each range as CIDR prefixes mapped to its number (the
    IPv4 ones: the addresses looked up are IPv4)."""
    import pyasn

    lines = []
    for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        if b >= 1 << 32:
            continue
        for net in ipaddress.summarize_address_range(ipaddress.IPv4Address(a),
                                                     ipaddress.IPv4Address(b)):
            lines.append(f"{net}\t{i + 1}")  # pyasn refuses AS number 0
    return pyasn.pyasn(None, ipasn_string="\n".join(lines))


if __name__ == "__main__":
    main()

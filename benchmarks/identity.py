"""Benchmark: resolve 10M identifier edges into persons (connected components).

Prints the time of what ``demandloop resolve`` runs on the edges, ``resolve_persons``
(components plus each person's id and kind, with the shared-device rule), the time of the
bare scipy-based ``components`` inside it, and the rate of a pure-Python union-find (path
halving, union by size, components only) measured on a sample in the same process, with
the ratios. The union-find does less than ``resolve_persons`` (no person ids), so its ratio
flatters the baseline, not us. Target: 10M edges <= 10 s.

    python benchmarks/identity.py                 # 10M edges
    python benchmarks/identity.py --edges 2000000
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from demandloop.resolve.identity import components, resolve_persons


def make_edges(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Browsers -> users -> emails: a realistic mix where most components are small."""
    rng = np.random.default_rng(seed)
    people = n // 4
    person = rng.integers(0, people, n)
    kind = rng.random(n)
    device = rng.integers(0, 3, n)
    a = np.char.add("anon:", (person * 3 + device).astype(str))
    b_user = np.char.add("user:", person.astype(str))
    b_email = np.char.add(np.char.add("email:", person.astype(str)), "@x.io")
    b = np.where(kind < 0.7, b_user, b_email)
    return a.astype(object), b.astype(object)


def python_union_find(a: np.ndarray, b: np.ndarray) -> int:
    parent: dict[str, str] = {}
    size: dict[str, int] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for x, y in zip(a, b, strict=True):
        rx, ry = find(x), find(y)
        if rx != ry:
            if size.get(rx, 1) < size.get(ry, 1):
                rx, ry = ry, rx
            parent[ry] = rx
            size[rx] = size.get(rx, 1) + size.get(ry, 1)
    return len({find(x) for x in parent})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--edges", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-sample", type=int, default=1_000_000)
    args = ap.parse_args()
    a, b = make_edges(args.edges)
    runs = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        comp = components(a, b)
        runs.append(time.perf_counter() - t)
    ours = statistics.median(runs)
    frame = pd.DataFrame({"a": a, "b": b})
    full = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        persons = resolve_persons(frame)
        full.append(time.perf_counter() - t)
    resolved = statistics.median(full)
    k = min(args.baseline_sample, args.edges)
    t = time.perf_counter()
    n_py = python_union_find(a[:k], b[:k])
    py = time.perf_counter() - t
    check = components(a[:k], b[:k]).count
    assert n_py == check, (n_py, check)
    base = k / py
    print(f"demandloop resolve_persons (what resolve runs): {args.edges:,} edges, "
          f"{persons['person_id'].nunique():,} persons in {resolved:.2f} s median of "
          f"{args.repeat} ({', '.join(f'{r:.2f}' for r in full)}) -> "
          f"{args.edges / resolved:,.0f} edges/s")
    print(f"  of which components: {comp.count:,} components in {ours:.2f} s median "
          f"({', '.join(f'{r:.2f}' for r in runs)}) -> {args.edges / ours:,.0f} edges/s")
    print(f"pure-Python union-find (components only): {base:,.0f} edges/s (on {k:,} edges, "
          "same components)")
    print(f"ratio, resolve_persons: {(args.edges / resolved) / base:,.1f}x the baseline "
          f"(components alone: {(args.edges / ours) / base:,.1f}x)")


if __name__ == "__main__":
    main()

"""Benchmark: resolve 10M identifier edges into persons (connected components).

Prints the time of demandloop's scipy-based components over 10M edges (string identifiers,
as stored) and the rate of a pure-Python union-find (path halving, union by size) measured
on a sample in the same process, with the ratio of their edges/s. Target: 10M edges <= 10 s.

    python benchmarks/identity.py                 # 10M edges
    python benchmarks/identity.py --edges 2000000
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from demandloop.resolve.identity import components


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
    k = min(args.baseline_sample, args.edges)
    t = time.perf_counter()
    n_py = python_union_find(a[:k], b[:k])
    py = time.perf_counter() - t
    check = components(a[:k], b[:k]).count
    assert n_py == check, (n_py, check)
    print(f"demandloop components: {args.edges:,} edges, "
          f"{comp.count:,} components in {ours:.2f} s median of {args.repeat} "
          f"({', '.join(f'{r:.2f}' for r in runs)}) -> {args.edges / ours:,.0f} edges/s")
    print(f"pure-Python union-find: {k / py:,.0f} edges/s (on {k:,} edges, same answer)")
    print(f"ratio: {(args.edges / ours) / (k / py):,.1f}x the baseline")


if __name__ == "__main__":
    main()

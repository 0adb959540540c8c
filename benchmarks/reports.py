"""Benchmark: each measure report on an existing workspace, in a process of its own (so its
peak RSS is its own), on the DuckDB engine.

Only the workspace's public API is called, so the same script times an older checkout of
demandloop on the same store (its ``src`` first on ``PYTHONPATH``): that is how the figures
in docs/measurement.md compare the reports before and after they read the touches as engine
aggregates.

    python benchmarks/reports.py STORE_DIR                      # every report, 1 run each
    python benchmarks/reports.py STORE_DIR --repeat 3 --only attribution scorecard
    PYTHONPATH=/path/to/old/src python benchmarks/reports.py STORE_DIR   # an older checkout
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import demandloop
from demandloop.measure.attribution import ALL_MODELS

#: report -> the workspace call that makes it
REPORTS: dict[str, Callable[[Any], Any]] = {
    "funnel": lambda ws: ws.funnel("channel"),
    "health": lambda ws: ws.health(),
    "pipeline": lambda ws: ws.pipeline(),
    "attribution": lambda ws: ws.attribution(models=ALL_MODELS),
    "scorecard": lambda ws: ws.scorecard(),
}


def one(store: str, report: str, repeat: int) -> dict[str, Any]:
    """Time *report* *repeat* times in this process."""
    runs = []
    with demandloop.open(store) as ws:
        for _ in range(repeat):
            t = time.perf_counter()
            REPORTS[report](ws)
            runs.append(time.perf_counter() - t)
    return {"report": report, "seconds": statistics.median(runs), "runs": runs,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store", help="a workspace folder (resolved and scored)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", nargs="+", choices=list(REPORTS), default=list(REPORTS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one(args.store, args.child, args.repeat)))
        return
    for report in args.only:
        done = subprocess.run([sys.executable, __file__, args.store, "--repeat",
                               str(args.repeat), "--child", report],
                              capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{report}: {r['seconds']:.2f} s median of {len(r['runs'])} "
              f"({', '.join(f'{x:.2f}' for x in r['runs'])}), peak RSS "
              f"{r['peak_rss_gb']:.2f} GB", flush=True)


if __name__ == "__main__":
    main()

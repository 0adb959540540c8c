"""Score quality, point in time, over several simulated markets (not a speed benchmark).

For each seed: simulate a market (default 2,000 accounts x 180 days), load it as a user
would (events, CRM files, IP ranges), then score at mid-period knowing only what was known
then (``Workspace.account_scores``: events, CRM rows, contacts, IP ranges and opportunities
up to that date, resolved afresh) and judge the scores against the hidden truth
(:func:`demandloop.demo.market_quality`). Prints each seed and the medians.

Targets (issue 18): AUC of ``priority`` >= 0.80, in-market precision@100 >= 0.85, fit vs
hidden fit Spearman >= 0.80. ``auc_hidden_fit`` and ``auc_oracle`` show what perfect
knowledge of the hidden fit (and of who is in market) would reach on the same labels.

    python benchmarks/evaluation.py                    # seeds 1-5
    python benchmarks/evaluation.py --seeds 11 12 13 14 15 --accounts 2000 --days 180
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from demandloop.demo import market_quality

COLUMNS = ("precision", "auc", "auc_fit", "auc_engagement", "spearman_fit", "auc_hidden_fit",
           "auc_oracle")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--days", type=int, default=180)
    args = ap.parse_args()
    rows = []
    print(f"{'seed':>5} " + " ".join(f"{c:>15}" for c in COLUMNS) + "  positives  seconds")
    for seed in args.seeds:
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            r = market_quality(seed, args.accounts, args.days, Path(tmp))
        rows.append(r)
        print(f"{seed:>5} " + " ".join(f"{r[c]:>15.3f}" for c in COLUMNS)
              + f"  {r['positives']:>9}  {time.perf_counter() - t:>7.1f}", flush=True)
    print("median " + " ".join(f"{statistics.median(r[c] for r in rows):>15.3f}"
                               for c in COLUMNS)[1:])
    print(f"({args.accounts:,} accounts x {args.days} days, scored at day {args.days // 2}; "
          f"{dt.date.today():%Y-%m-%d})")


if __name__ == "__main__":
    main()

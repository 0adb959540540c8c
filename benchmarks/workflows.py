"""Benchmark: workflow trigger evaluation over 100k accounts (pure, in memory).

Builds 100k accounts with scores and a scoring run in which 20k of them changed stage, then
times firing a stage-change workflow with two conditions and building its jobs (three
actions each), against a row-by-row Python loop computing the same firings in the same run.
(Mautic's campaign trigger is reported at ~40 minutes per 50k events, mautic#5423.)

    python benchmarks/workflows.py --accounts 100000
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from demandloop.activate.workflows import Inputs, firings, jobs
from demandloop.config import WorkflowSetting


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.accounts
    ids = np.array([f"acct{i:07d}.com" for i in range(n)], dtype=object)
    accounts = pd.DataFrame({"account_id": ids, "target": rng.random(n) < 0.3,
                             "fit": rng.uniform(0, 100, n), "stage": "engaged",
                             "name": ids, "owner": None})
    moved = rng.choice(n, n // 5, replace=False)
    changes = pd.DataFrame({"entity": "account", "entity_id": ids[moved],
                            "from_stage": "engaged",
                            "to_stage": rng.choice(["mqa", "aware"], len(moved)),
                            "changed_at": pd.Timestamp("2026-03-01"), "reasons": '["fit"]'})
    wf = WorkflowSetting.model_validate({
        "name": "mqa", "when": {"trigger": "stage_changed", "to": "mqa"},
        "if": [{"field": "target", "op": "==", "value": True},
               {"field": "fit", "op": ">=", "value": 50}],
        "then": [{"action": "assign", "strategy": "fixed", "owners": ["ana"]},
                 {"action": "create_task", "title": "Call {name}"},
                 {"action": "notify", "url": "http://localhost/hook"}]})
    inputs = Inputs(changes=changes, accounts=accounts)

    def ours() -> int:
        return len(jobs(wf, firings(wf, inputs)))

    def baseline() -> int:
        by_id = {r["account_id"]: r for r in accounts.to_dict("records")}
        out = 0
        for c in changes.to_dict("records"):
            a = by_id[c["entity_id"]]
            if c["to_stage"] == "mqa" and a["target"] and a["fit"] >= 50:
                out += 3
        return out

    t_ours, t_base = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        made = ours()
        t_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        expected = baseline()
        t_base.append(time.perf_counter() - t)
    assert made == expected, (made, expected)
    o, b = statistics.median(t_ours), statistics.median(t_base)
    print(f"{n:,} accounts, {len(changes):,} stage changes -> {made:,} jobs")
    print(f"demandloop (firings + jobs): {o:.3f} s")
    print(f"row-by-row Python loop (firings only, no jobs): {b:.3f} s  (ratio {b / o:.2f}x)")


if __name__ == "__main__":
    main()

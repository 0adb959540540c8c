"""Scores against the simulated market's ground truth (a larger market: ~25 s)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import demandloop
from demandloop.measure.evaluation import auc, precision_at_k, truth_labels
from demandloop.simulate import simulate


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[demandloop.Workspace, dict]:  # type: ignore[type-arg]
    d = tmp_path_factory.mktemp("eval")
    simulate(accounts=2000, days=180, seed=3, out=d / "market")
    (d / "demandloop.toml").write_text('[enrich]\nbrand_terms = ["loopwise"]\n')
    ws = demandloop.open(d)
    ws.ingest(d / "market" / "events.jsonl")
    for kind in ("accounts", "contacts", "opportunities"):
        ws.import_crm(kind, d / "market" / f"{kind}.csv")
    ws.import_ip_ranges(d / "market" / "ip_ranges.csv")
    ws.resolve()
    return ws, json.loads((d / "market" / "truth.json").read_text())


def test_in_market_precision_at_100(scored) -> None:  # type: ignore[no-untyped-def]
    ws, truth = scored
    at = dt.datetime(2026, 3, 20)
    s = ws.account_scores(at)
    lab = truth_labels(truth, at).merge(s, on="account_id", how="left").fillna({"recent": 0})
    in_market = set(lab.loc[lab["in_market"], "account_id"])
    ranked = lab.sort_values("recent", ascending=False)["account_id"].tolist()
    assert len(in_market) > 150
    assert precision_at_k(ranked, in_market, 100) >= 0.8  # measured 0.97


def test_opportunity_within_90_days_auc(scored) -> None:  # type: ignore[no-untyped-def]
    ws, truth = scored
    at = dt.datetime(2026, 3, 20)
    s = ws.account_scores(at)
    lab = truth_labels(truth, at, 90).merge(s, on="account_id", how="left").fillna(
        {"priority": 0.0, "fit": 0.0, "engagement": 0.0})
    lab = lab[~lab["had_opp_before"]]
    assert lab["opp_within"].sum() > 100
    value = auc(lab["priority"].to_numpy(), lab["opp_within"].to_numpy())
    # measured 0.860 here (0.85-0.86 across split dates); fit alone 0.82, engagement 0.81
    assert value >= 0.85
    assert value > auc(lab["fit"].to_numpy(), lab["opp_within"].to_numpy())

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


def test_predictive_fit_report_equals_its_stored_predictions(scored, cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`demandloop fit train`: the held-out AUC and Brier it reports are those of the
    probabilities it stores, recomputed independently on the test cohort."""
    import numpy as np
    import pandas as pd

    from demandloop.score import predictive

    ws, _ = scored
    split = dt.datetime(2026, 1, 20)
    report = ws.train_fit(split)
    data = predictive.account_outcomes(ws.store)
    test = data[data["decided_at"] >= pd.Timestamp(split)]
    preds = ws.store.con.execute(
        "SELECT entity_id, probability, contributions FROM predictions "
        "WHERE model = 'fit'").df()
    accounts = ws.store.con.execute("SELECT count(*) FROM accounts").fetchone()[0]
    assert len(preds) == accounts and preds["probability"].between(0, 1).all()
    m = test.merge(preds, left_on="account_id", right_on="entity_id")
    assert len(m) == len(test) == report.test_rows
    assert report.test_positives == int(test["won"].sum()) > 10
    p, y = m["probability"].to_numpy(), m["won"].to_numpy()
    assert report.auc == pytest.approx(auc(p, y), abs=1e-9)
    assert report.brier == pytest.approx(float(np.mean((p - y) ** 2)), abs=1e-9)
    # measured 0.753 against 0.724 for industry alone (310 test accounts, 24 won)
    assert report.auc > report.baseline_auc
    assert sum(b["n"] for b in report.calibration) == report.test_rows
    # every stored explanation: up to five (feature, contribution) pairs
    assert all(0 < len(json.loads(c)) <= 5 for c in preds["contributions"])
    code, _, err = cli("-w", str(tmp_path / "empty"), "fit", "train")
    assert code != 0 and "no accounts with firmographics" in err

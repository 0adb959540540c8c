"""Fit, intent surge and the score snapshot (engagement equality lives in test_engagement)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import ibis
import pandas as pd
import pytest

from demandloop.config import Settings
from demandloop.errors import ConfigError
from demandloop.measure.evaluation import auc, precision_at_k
from demandloop.score.engagement import EngagementRules
from demandloop.score.fit import Band, FitRules, band, score_account
from demandloop.score.intent import SurgeRules, surge


def test_fit_points_scale_and_bands() -> None:
    icp = FitRules(industries={"Software": 30, "Retail": -10}, countries={"US": 20},
                   technologies={"Salesforce": 10, "HubSpot": 10},
                   employees=[Band(200, 5000, 40), Band(50, 200, 20)])
    assert icp.max_points() == 30 + 20 + 20 + 40
    score, met = score_account(icp, {"industry": "Software", "country": "US", "employees": 300,
                                     "technologies": ["Salesforce"]})
    assert score == pytest.approx(100 * (30 + 20 + 10 + 40) / 110, abs=0.01)
    assert met == ["industry Software: +30", "country US: +20", "uses Salesforce: +10",
                   "employees 200-5000: +40"]
    assert score_account(icp, {"industry": "Retail", "employees": float("nan")})[0] == 0.0
    assert [band(x) for x in (100, 81, 80.9, 50, 49.9, 0)] == [
        "Strong", "Strong", "Moderate", "Moderate", "Weak", "Weak"]


def test_bad_scoring_config_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "demandloop.toml").write_text('[score.fit]\nindustries = { "Software" = "lots" }\n')
    with pytest.raises(ConfigError, match="'score.fit.industries.Software'"):
        Settings.load(tmp_path)
    (tmp_path / "demandloop.toml").write_text("[score.fit]\nsizes = []\n")
    with pytest.raises(ConfigError, match="unknown key 'score.fit.sizes'.*employees"):
        Settings.load(tmp_path)
    (tmp_path / "demandloop.toml").write_text("[[score.fit.employees]]\nmin = 10\n")
    with pytest.raises(ConfigError, match="score.fit.employees.0.points"):
        Settings.load(tmp_path)


def test_surge_against_hand_computation() -> None:
    at = dt.datetime(2026, 4, 1)
    rows = []
    # account q: 1 weight unit per week for 12 weeks before, then 12 in the last week
    for w in range(1, 13):
        rows.append(("q", at - dt.timedelta(days=7 * w + 3), 1.0, "page_view", "abm"))
    for i in range(12):
        rows.append(("q", at - dt.timedelta(days=1, hours=i), 1.0, "page_view", "abm"))
    rows.append(("r", at - dt.timedelta(days=2), 4.0, "form_fill", None))  # below min_recent
    df = pd.DataFrame(rows, columns=["account_id", "ts", "weight", "activity", "topic"])
    df["touch_id"] = [f"t{i}" for i in range(len(df))]
    df["person_id"] = pd.Series([None] * len(df), dtype="string")
    t = ibis.duckdb.connect().create_table("touches", df)
    rules = SurgeRules()
    res = surge(t, EngagementRules(), rules, at).execute().set_index("account_id")
    base_weeks = sum(1 for w in range(1, 13) if 7 * w + 3 <= 97)  # inside the 90-day baseline
    expected = base_weeks * 7 / 90
    # 1 touch on Mar 31 and 11 on Mar 30, where page views are capped at 10 a day
    assert res.loc["q", "recent"] == 11.0
    assert res.loc["q", "surge"] == pytest.approx((11 + 3) / (expected + 3))
    assert bool(res.loc["q", "surging"]) and not bool(res.loc["r", "surging"])
    topics = surge(t, EngagementRules(), rules, at, by_topic=True).execute()
    assert list(topics["topic"]) == ["abm"]


def test_auc_and_precision() -> None:
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auc([1.0, 1.0], [0, 1]) == 0.5
    assert precision_at_k(["a", "b", "c"], {"a", "c"}, 2) == 0.5


def test_score_command_writes_a_snapshot(cli, market: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = str(tmp_path / "w")
    code, _, err = cli("-w", w, "score")
    assert code == 2 and "no touches to score" in err
    cli("-w", w, "ingest", str(market / "events.jsonl"))
    cli("-w", w, "import", "accounts", str(market / "accounts.csv"))
    cli("-w", w, "resolve")
    code, out, _ = cli("-w", w, "score", "--json")
    r = json.loads(out)
    assert code == 0 and r["accounts"] > 0
    engagement = [a["engagement"] for a in r["top"]]
    assert engagement == sorted(engagement, reverse=True) and engagement[0] > 0
    code, out, _ = cli("-w", w, "score", "--json")  # same as_of: replaced, not doubled
    import demandloop

    with demandloop.open(w) as ws:
        n = ws.store.con.execute(
            "SELECT count(*), count(DISTINCT entity_id) FROM scores").fetchone()
    assert n[0] == n[1] == r["accounts"]

"""Demand health: trend tests against independent computations, and the shrinking-pool alarm
firing on the planted scenario and staying quiet on the normal market."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

import demandloop
from demandloop.config import CONFIG_FILE, example_toml
from demandloop.measure.health import health, trend, weekly
from demandloop.simulate import simulate


def _market_workspace(tmp: Path, scenario: str, seed: int) -> demandloop.Workspace:
    market = tmp / "market"
    simulate(accounts=600, days=150, seed=seed, out=market, scenario=scenario)
    brand = orjson.loads((market / "truth.json").read_bytes())["brand_terms"]
    (tmp / CONFIG_FILE).write_text(example_toml().replace(
        "brand_terms = []", f"brand_terms = {orjson.dumps(brand).decode()}"), encoding="utf-8")
    ws = demandloop.open(tmp)
    ws.ingest(market / "events.jsonl")
    ws.import_crm("accounts", market / "accounts.csv")
    ws.import_crm("contacts", market / "contacts.csv")
    ws.import_ip_ranges(market / "ip_ranges.csv")
    ws.resolve()
    return ws


@pytest.mark.parametrize(("scenario", "alarm"), [("shrinking-pool", True), ("normal", False)])
def test_alarm_fires_on_a_shrinking_pool_and_not_on_a_normal_market(
        tmp_path: Path, scenario: str, alarm: bool) -> None:
    ws = _market_workspace(tmp_path, scenario, seed=21)
    try:
        summary, series = ws.health()
    finally:
        ws.close()
    assert summary["weeks"] == len(series) >= 19
    assert summary["alarm"] is alarm, summary["verdict"]
    if alarm:
        assert "harvesting a shrinking pool" in summary["verdict"]
        # what was planted: self-directed visits and engaged targets fall, MQLs do not
        # (branded search first ramps up for a month as the simulated market warms up)
        assert {"direct", "engaged_targets"} <= set(summary["demand_falling"])
        assert summary["trends"]["branded_search"]["tau"] < 0
        assert summary["trends"]["mqls"]["direction"] != "falling"
    else:
        assert summary["trends"]["branded_search"]["direction"] != "falling"


def test_trend_statistic_matches_mann_kendall_by_hand() -> None:
    rng = np.random.default_rng(3)
    y = 50 - 1.5 * np.arange(20) + rng.normal(0, 4, 20)
    t = trend(y)
    # Mann-Kendall S by definition, and tau = S / (n (n - 1) / 2) when there are no ties
    s = sum(np.sign(y[j] - y[i]) for i in range(20) for j in range(i + 1, 20))
    assert t["tau"] == pytest.approx(s / (20 * 19 / 2), abs=1e-12)
    assert t["direction"] == "falling" and t["p"] < 0.001
    # Theil-Sen: the median of all pairwise slopes, and it brackets the true slope
    slopes = [(y[j] - y[i]) / (j - i) for i in range(20) for j in range(i + 1, 20)]
    assert t["slope"] == pytest.approx(float(np.median(slopes)), abs=1e-12)
    assert t["slope_low"] < -1.5 < t["slope_high"]
    flat = trend(rng.normal(10, 1, 20))
    assert flat["direction"] == "flat" and not flat["significant"]


def test_weekly_series_counts_full_weeks_only() -> None:
    ts = pd.to_datetime(["2026-01-07", "2026-01-12", "2026-01-13", "2026-01-19", "2026-01-27",
                         "2026-02-03", "2026-02-04"])  # Wed .. Wed: full weeks from Jan 12
    touches = pd.DataFrame({"ts": ts, "account_id": ["a", "a", "b", "c", "b", "a", "d"],
                            "person_id": [None, "p", "q", None, "q", None, None],
                            "channel": ["direct", "branded_search", "direct", "ai_assistant",
                                        "direct", "direct", "direct"],
                            "activity": ["page_view", "form_fill", "page_view", "page_view",
                                         "form_fill", "page_view", "page_view"]})
    accounts = pd.DataFrame({"account_id": ["a", "b"], "target": [True, False]})
    s = weekly(_parts(touches, accounts),
               pd.DataFrame({"created_at": pd.Series(dtype="datetime64[us]")}))
    assert [str(d.date()) for d in s.index] == ["2026-01-12", "2026-01-19", "2026-01-26"]
    assert s["branded_search"].tolist() == [1, 0, 0]
    assert s["direct"].tolist() == [1, 0, 1]
    assert s["new_accounts"].tolist() == [1, 1, 0]  # b on the 13th, c on the 19th
    assert s["form_fills"].tolist() == [1, 0, 1] and s["mqls"].tolist() == [1, 0, 1]
    assert s["engaged_targets"].tolist() == [1, 0, 0]
    assert health(s)["verdict"].startswith("not enough data")
    # three weeks test nothing: no indicator reads "flat" (a measured trend) over them
    assert {t["direction"] for t in health(s)["trends"].values()} == {"not enough data"}


def _parts(touches: pd.DataFrame, accounts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The engine's weekly parts of these rows, stored in a workspace of their own."""
    from demandloop.compute import tables
    from demandloop.measure.inputs import weekly_parts
    from demandloop.store import Store

    store = Store.open(":memory:")
    rows = {"touches": touches.assign(touch_id=[f"t{i}" for i in range(len(touches))],
                                      motion="demand"),
            "accounts": accounts.assign(domain=accounts["account_id"] + ".com")}
    for name, frame in rows.items():
        store.con.register("_f", frame.assign(workspace_id="default"))
        store.con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _f")
        store.con.unregister("_f")
    return weekly_parts(tables(store))

"""Engagement: incremental and batch agree to 1e-9; caps and decay behave as documented."""

from __future__ import annotations

import datetime as dt

import ibis
import numpy as np
import pandas as pd
import pytest

from demandloop.score.engagement import EngagementRules, Incremental, batch_scores

ACTIVITIES = ["page_view", "high_intent_page", "form_fill", "demo_request", "sales_email"]


def random_touches(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01")
    ts = (start + pd.to_timedelta(np.sort(rng.uniform(0, 60 * 86400, n)), unit="s")).floor("us")
    return pd.DataFrame({
        "touch_id": [f"t{i:06d}" for i in range(n)],
        "account_id": rng.choice(["a", "b", "c", "d", None], n),
        "person_id": rng.choice(["p1", "p2", "p3", None], n),
        "activity": rng.choice(ACTIVITIES, n),
        "weight": rng.choice([0.5, 1.0, 3.0, 5.0, 10.0], n),
        "ts": ts,
    })


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_incremental_equals_batch(seed: int) -> None:
    df = random_touches(3000, seed)
    # a burst: one account hammering a page inside one day hits the cap
    burst = pd.DataFrame({"touch_id": [f"z{i}" for i in range(50)], "account_id": "a",
                          "person_id": "p1", "activity": "page_view", "weight": 1.0,
                          "ts": pd.Timestamp("2026-01-10 09:00") + pd.to_timedelta(
                              np.arange(50), unit="min")})
    df = pd.concat([df, burst], ignore_index=True)
    rules = EngagementRules(half_life_days=10.0)
    at = dt.datetime(2026, 3, 5)
    inc = Incremental(rules)
    for row in df.dropna(subset=["account_id"]).sort_values(["ts", "touch_id"]).itertuples():
        inc.add(row.account_id, row.activity, row.weight, row.ts.to_pydatetime())
    con = ibis.duckdb.connect()
    batch = batch_scores(con.create_table("touches", df), rules, at).execute()
    # with the integer order column the pipeline stores, the answer is the same
    ordered = df.sort_values(["ts", "touch_id"]).assign(seq=np.arange(len(df)))
    again = batch_scores(con.create_table("touches2", ordered), rules, at).execute()
    assert dict(zip(again["account_id"], again["engagement"], strict=True)) == pytest.approx(
        dict(zip(batch["account_id"], batch["engagement"], strict=True)), rel=1e-12)
    got = dict(zip(batch["account_id"], batch["engagement"], strict=True))
    assert set(got) == {"a", "b", "c", "d"}
    for acc, value in got.items():
        assert value == pytest.approx(inc.score(acc, at), rel=1e-9, abs=1e-9)


def test_cap_and_decay_against_hand_computation() -> None:
    rules = EngagementRules(half_life_days=7.0, caps={"page_view": 3.0})
    inc = Incremental(rules)
    day = dt.datetime(2026, 1, 1, 9)
    contributed = [inc.add("x", "page_view", 1.0, day + dt.timedelta(minutes=i))
                   for i in range(5)]
    assert contributed == [1.0, 1.0, 1.0, 0.0, 0.0]  # capped at 3 per day
    assert inc.add("x", "page_view", 1.0, day + dt.timedelta(days=1)) == 1.0  # a new day
    at = day + dt.timedelta(days=8)
    expected = sum(2 ** (-(at - (day + dt.timedelta(minutes=i))).total_seconds() / (7 * 86400))
                   for i in range(3)) + 2 ** (-7 / 7)
    assert inc.score("x", at) == pytest.approx(expected, rel=1e-12)
    assert inc.score("unknown", at) == 0.0

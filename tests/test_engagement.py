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


@pytest.mark.parametrize("buckets", [None, 16])
def test_hashed_cap_candidates_find_every_cut(buckets: int | None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The DuckDB prefilter (score.caps) against the grouped sum over every touch: the same
    # cuts, for accounts and people, on data with every way a touch gets cut: bursts over
    # the cap, groups exactly at it, a single touch over it, a negative weight, a cap of
    # zero, touches without an activity or an entity. With 16 buckets nearly every touch
    # shares one with another group (all candidates, still the same cuts).
    from demandloop.compute import tables
    from demandloop.score import caps
    from demandloop.score.engagement import cap_cuts
    from demandloop.score.measures import cap_candidates
    from demandloop.store import Store

    if buckets:
        monkeypatch.setattr(caps, "buckets_for", lambda n: buckets)
    df = random_touches(3000, 7)
    day = pd.Timestamp("2026-01-20 08:00")

    def burst(prefix: str, n: int, **kw: object) -> pd.DataFrame:
        base = {"account_id": "b", "person_id": "p2", "activity": "page_view", "weight": 1.0}
        return pd.DataFrame({"touch_id": [f"{prefix}{i}" for i in range(n)], **{**base, **kw},
                             "ts": day + pd.to_timedelta(np.arange(n) * 7, unit="min")})

    df = pd.concat([
        df, burst("over", 14), burst("at", 10, account_id="e", person_id="p9"),
        burst("one", 1, activity="demo_request", weight=30.0),
        burst("neg", 3, activity="form_fill", weight=-2.0, account_id="d"),
        burst("zero", 2, activity="sales_email", weight=0.5, account_id="a"),
        burst("none", 12, activity=None, account_id="a", person_id="p1"),
        burst("anon", 15, account_id=None, person_id="p1"),
    ], ignore_index=True).sort_values(["ts", "touch_id"])
    df = df.assign(seq=np.arange(len(df)), topic=None, workspace_id="default",
                   channel="direct", motion="demand")
    rules = EngagementRules(caps={**EngagementRules().caps, "sales_email": 0.0})
    store = Store.open(":memory:")
    store.con.register("_df", df)
    store.con.execute("INSERT INTO touches BY NAME SELECT * FROM _df")
    t = tables(store)
    found = cap_candidates(t, rules, ("account_id", "person_id"))
    assert set(found) == {"account_id", "person_id"}
    # a touch without an entity is never that entity's candidate (nor counted in a bucket)
    for entity in ("account_id", "person_id"):
        assert found[entity].filter(found[entity][entity].isnull()).count().execute() == 0
    for entity in ("account_id", "person_id"):
        touches = t.touches.select("touch_id", entity, "activity", "ts", "seq", "weight")
        exact = cap_cuts(touches, rules, entity).execute()
        fast = cap_cuts(touches, rules, entity, found[entity]).execute()
        # by seq: candidates keep it (it identifies a touch), not the touch id
        want = dict(zip(exact["seq"], exact["delta"], strict=True))
        got = dict(zip(fast["seq"], fast["delta"], strict=True))
        assert got == pytest.approx(want, abs=1e-12)
        # every kind of cut is there (the test data is not trivially uncut)
        cut = set(exact["touch_id"])
        assert any(k.startswith("over") for k in cut) and not any(
            k.startswith("at") for k in cut)
        if entity == "account_id":
            assert {"one0", "neg0", "zero0"} <= cut
            assert any(k.startswith("none") for k in cut)
        else:
            assert any(k.startswith("anon") for k in cut)


def test_cap_sql_is_the_rules_cap() -> None:
    # every activity's cap as DuckDB evaluates it, odd names and values included
    import duckdb

    from demandloop.score.caps import cap_sql

    rules = EngagementRules(caps={"page_view": 10.0, "it's": 2.5, "huge": float("inf"),
                                  "odd": float("nan"), "tiny": 1e-300}, default_cap=7.0)
    names = [*rules.caps, "other", None]
    con = duckdb.connect()
    got = con.execute(f"SELECT activity, {cap_sql(rules)} FROM unnest($a) t(activity)",
                      {"a": names}).fetchall()
    for activity, cap in got:
        want = rules.cap(activity)
        assert cap == want or (cap != cap and want != want), activity

"""The simulated market: deterministic, realistic in the ways later scores rely on."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from demandloop.errors import UsageError
from demandloop.simulate import simulate


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_market_other_seed_other_market(tmp_path: Path) -> None:
    simulate(accounts=60, days=20, seed=3, out=tmp_path / "a")
    simulate(accounts=60, days=20, seed=3, out=tmp_path / "b")
    simulate(accounts=60, days=20, seed=4, out=tmp_path / "c")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["events.jsonl"] != digest(tmp_path / "c")["events.jsonl"]
    assert set(digest(tmp_path / "a")) == {"events.jsonl", "accounts.csv", "contacts.csv",
                                           "opportunities.csv", "ip_ranges.csv", "truth.json",
                                           "spend.csv", "access.log"}
    assert digest(tmp_path / "a")["access.log"] != digest(tmp_path / "c")["access.log"]


def test_ground_truth_describes_the_world(market: Path) -> None:
    truth = json.loads((market / "truth.json").read_text())
    accounts = truth["accounts"]
    assert len(accounts) == 150
    for a in accounts:
        assert 0.0 < a["fit"] < 1.0
        assert a["industry"] and a["employees"] > 0 and a["country"]
        for start, end in a["in_market_windows"]:
            assert start < end
    targets = sum(a["target"] for a in accounts)
    assert 0.2 < targets / len(accounts) < 0.4
    # targets were picked by a noisy view of fit: they fit better on average
    fit = np.array([a["fit"] for a in accounts])
    is_target = np.array([a["target"] for a in accounts])
    assert fit[is_target].mean() > fit[~is_target].mean() + 0.1
    roles = {p["role"] for p in truth["people"]}
    assert {"economic_buyer", "champion", "user"} <= roles


def test_events_follow_the_hidden_state(market: Path) -> None:
    truth = json.loads((market / "truth.json").read_text())
    start = dt.date.fromisoformat(truth["start"])
    device_account = {d: p["account_id"] for p in truth["people"] for d in p["anonymous_ids"]}
    windows = {a["account_id"]: [(dt.date.fromisoformat(s), dt.date.fromisoformat(e))
                                 for s, e in a["in_market_windows"]] for a in accounts_of(truth)}
    in_days = out_days = in_pages = out_pages = 0
    for ws in windows.values():
        days_in = sum(min((e - s).days, 45) for s, e in ws)
        in_days += days_in
        out_days += 45 - days_in
    for line in (market / "events.jsonl").read_text().splitlines():
        m = json.loads(line)
        acc = device_account.get(m.get("anonymousId", ""))
        if m["type"] != "page" or acc is None:
            continue
        day = dt.date.fromisoformat(m["timestamp"][:10])
        if any(s <= day <= e for s, e in windows[acc]):
            in_pages += 1
        else:
            out_pages += 1
    assert day >= start
    # in-market accounts visit several times more per day than the others
    assert (in_pages / max(in_days, 1)) > 3 * (out_pages / out_days)


def accounts_of(truth: dict) -> list[dict]:  # type: ignore[type-arg]
    return truth["accounts"]  # type: ignore[no-any-return]


def test_opportunities_follow_fit(tmp_path: Path) -> None:
    simulate(accounts=600, days=120, seed=5, out=tmp_path)
    truth = json.loads((tmp_path / "truth.json").read_text())
    fit = {a["account_id"]: a["fit"] for a in truth["accounts"]}
    with_opp = {o["account_id"] for o in truth["opportunities"]}
    assert len(with_opp) > 30
    assert np.mean([fit[a] for a in with_opp]) > np.mean(list(fit.values())) + 0.1
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    identifies = [json.loads(x) for x in lines if '"identify"' in x]
    emails = [m["traits"]["email"] for m in identifies]
    personal = [e for e in emails if e.split("@")[1] in ("gmail.com", "yahoo.com", "outlook.com",
                                                          "hotmail.com", "icloud.com",
                                                          "proton.me", "hey.com", "aol.com",
                                                          "gmx.de")]
    assert 0.02 < len(personal) / len(emails) < 0.3
    channels = truth["channel_sessions"]
    assert channels["ai_assistant"] > 0 and channels["branded_search"] > 0


def test_bad_arguments(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="--accounts"):
        simulate(accounts=0, days=5, seed=1, out=tmp_path)
    code, _, err = cli("simulate", "--accounts", "5", "--days", "5", "--scenario", "boom",
                       "--out", str(tmp_path / "x"))
    assert code == 2 and "unknown scenario 'boom'" in err


def test_shrinking_pool_scenario_loses_demand(tmp_path: Path) -> None:
    simulate(accounts=300, days=90, seed=2, out=tmp_path / "n")
    simulate(accounts=300, days=90, seed=2, out=tmp_path / "s", scenario="shrinking-pool")

    def late_share(folder: Path) -> float:
        days = [json.loads(x)["timestamp"][:10] for x in
                (folder / "events.jsonl").read_text().splitlines()]
        late = sum(d >= "2026-03-06" for d in days)  # the second half of the 90 days
        return late / len(days)

    assert late_share(tmp_path / "s") < 0.8 * late_share(tmp_path / "n")

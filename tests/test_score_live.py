"""The live rescore (score.live) gives what a full score gives, table for table.

The same simulated stream arrives in batches, in time order with some events late, into two
workspaces; after each batch both resolve and score. One rescores incrementally from the
score before (what a server does), the other from every touch. Every score snapshot and
every stage change must come out the same (numbers to 1e-9). Several seeds, one with
daily caps that cut hundreds of touches (the defaults cut three). Then the cases
where only the clock moves (touches leave windows), an account that went, and those that
must fall back to a full score.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import demandloop
from demandloop.score import live
from demandloop.store import touch_log
from tests.streams import split


def _load_crm(ws: demandloop.Workspace, market: Path) -> None:
    for kind in ("accounts", "contacts", "opportunities"):
        ws.import_crm(kind, market / f"{kind}.csv")
    ws.import_ip_ranges(market / "ip_ranges.csv")


def _arrive(ws: demandloop.Workspace, f: Path, part: list[str], *, full: bool) -> None:
    """A batch of events ingested and resolved; for the full workspace, the next score
    made from every touch."""
    f.write_text("\n".join(part) + "\n")
    ws.ingest(f)
    ws.resolve()
    if full:
        live.forget()


def _tables(ws: demandloop.Workspace) -> dict[str, pd.DataFrame]:
    with ws.store.reader() as cur:
        return {
            "scores": cur.execute("SELECT as_of, entity, entity_id, fit, engagement, intent, "
                                  "stage, details FROM scores ORDER BY ALL").df(),
            "stage_changes": cur.execute(
                "SELECT entity, entity_id, from_stage, to_stage, changed_at, reasons "
                "FROM stage_changes ORDER BY ALL").df()}


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a)) or (a != a and b != b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or (a is None and b is None)


def assert_same(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for name, expected in want.items():
        actual = got[name]
        assert len(actual) == len(expected), f"{name}: {len(actual)} rows vs {len(expected)}"
        for col in expected.columns:
            left = actual[col].astype(object).where(actual[col].notna(), None).tolist()
            right = expected[col].astype(object).where(expected[col].notna(), None).tolist()
            if col in ("details", "reasons"):
                left = [json.loads(x) if x else x for x in left]
                right = [json.loads(x) if x else x for x in right]
            diff = [(i, x, y) for i, (x, y) in enumerate(zip(left, right, strict=True))
                    if not _close(x, y)]
            assert not diff, f"{name}.{col}: {len(diff)} rows differ, e.g. {diff[:2]}"


#: daily caps that bind on most busy days, and a short half-life: the cap's cuts (and the
#: decay between scores) then move most numbers a live rescore keeps or recomputes
TIGHT_CAPS = {"page_view": 1.5, "high_intent_page": 2.0, "form_fill": 1.0,
              "demo_request": 3.0, "sales_email": 0.5, "webinar_registration": 1.0,
              "trial": 0.0}


@pytest.mark.parametrize(("seed", "tight"), [(1, False), (2, False), (3, False), (4, True)])
def test_live_rescore_equals_full_scores_batch_after_batch(
        tmp_path: Path, market: Path, seed: int, tight: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # every rescore incremental when it can be, however much changed: this test is about
    # what it computes, not about when a full score is cheaper
    monkeypatch.setattr(live, "MOST", 1.01)
    parts = split((market / "events.jsonl").read_text().splitlines(), random.Random(seed),
                  "time")
    modes: list[str] = []
    results: dict[str, list[tuple[dt.datetime, dict[str, int], int]]] = {}
    for name in ("live", "full"):
        with demandloop.open(tmp_path / name) as ws:
            if tight:
                ws.settings.score.daily_caps = dict(TIGHT_CAPS)
                ws.settings.score.half_life_days = 2.5
            _load_crm(ws, market)
            results[name] = []
            for i, part in enumerate(parts):
                _arrive(ws, tmp_path / f"{name}{i}.jsonl", part, full=name == "full")
                r = ws.score()
                results[name].append((r.as_of, r.stages, r.mqls))
                if name == "live":
                    modes.append(r.mode)
                else:
                    assert r.mode == "full"
            tables = _tables(ws)
        if name == "live":
            got = tables
    assert modes[0] == "full" and set(modes[1:]) == {"incremental"}, modes
    assert results["live"] == results["full"]
    assert len(got["scores"]) > 0 and len(got["stage_changes"]) > 0
    assert_same(got, tables)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_snapshot_made_from_the_one_before_equals_a_full_one(
        tmp_path: Path, market: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's loop: the last day's events arrive in batches, each resolved and scored
    with one snapshot kept a day. The live workspace makes each snapshot from the one
    before the latest, rewriting only the rows that changed; every snapshot kept and every
    stage change equal those of full scores written whole, and so does the priority every
    reader sees."""
    monkeypatch.setattr(live, "MOST", 1.01)
    # a whole day's events (the market's last day is cut short), scored at each batch's
    # newest event: the day's snapshots follow one another
    lines = (market / "events.jsonl").read_text().splitlines()
    stamp = {line: json.loads(line)["timestamp"] for line in lines}
    day = sorted({t[:10] for t in stamp.values()})[-2]
    earlier = [line for line in lines if stamp[line][:10] < day]
    parts = [earlier, *split([line for line in lines if stamp[line][:10] == day],
                             random.Random(seed), "time")]
    times = [dt.datetime.fromisoformat(max(stamp[line] for part in parts[:i + 1]
                                           for line in part)).replace(tzinfo=None)
             for i in range(len(parts))]
    tables: dict[str, list[dict[str, pd.DataFrame]]] = {}
    written: list[tuple[int, int]] = []
    for name in ("live", "full"):
        tables[name] = []
        with demandloop.open(tmp_path / name) as ws:
            _load_crm(ws, market)
            for i, part in enumerate(parts):
                _arrive(ws, tmp_path / f"{name}{i}.jsonl", part, full=name == "full")
                r = ws.score(times[i], one_per_day=True)
                ws.keep_one_snapshot_per_day()
                tables[name].append(_tables(ws))
                if name == "live":
                    stored = ws.store.con.execute("SELECT count(*) FROM scores WHERE "
                                                  "as_of = ?", [r.as_of]).fetchone()[0]
                    written.append((r.rows_written, stored))
                    # every reader's priority: fit x engagement, from the numbers stored
                    view = ws.store.con.execute(
                        "SELECT a.fit, a.engagement, a.priority FROM account_view a "
                        "WHERE a.as_of IS NOT NULL").df()
                    want = view["fit"] / 100.0 * (1.0 + np.log1p(view["engagement"]))
                    assert np.allclose(view["priority"], want, rtol=1e-12, atol=0)
    for got, want in zip(tables["live"], tables["full"], strict=True):
        assert_same(got, want)
    # written whole: the full score and the day's first two (the snapshot before the latest
    # is then none, or the day before's); then each made from the one before the latest,
    # fewer rows written than held
    assert all(w == n for w, n in written[:3]), written
    assert all(w < n for w, n in written[3:]), written
    assert len(written) >= 6


def _plans(monkeypatch: pytest.MonkeyPatch) -> list[live.Plan]:
    """Every plan of an incremental score from now on, in order."""
    plans: list[live.Plan] = []
    planned = live.plan

    def spy(*args: Any) -> live.Plan | None:
        found = planned(*args)
        if found is not None:
            plans.append(found)
        return found

    monkeypatch.setattr(live, "plan", spy)
    return plans


@pytest.mark.parametrize("windows", [None, (45, 10, 60)])
def test_only_the_clock_moves(tmp_path: Path, market: Path, monkeypatch: pytest.MonkeyPatch,
                              windows: tuple[int, int, int] | None) -> None:
    """No new events, a later as_of each time: touches leave the surge's, the 30- and
    90-day and the committee's windows, opportunities open and close; each incremental
    score equals a full one. The accounts and persons that only crossed an edge are
    recomputed from the touches of the last windows (score.live's *windowed*). With
    *windows* (committee, surge recent, surge baseline days), no edge shares a day count
    with another: a person leaving the committee's window moves only its account's
    coverage."""
    monkeypatch.setattr(live, "MOST", 1.01)
    plans = _plans(monkeypatch)
    with demandloop.open(tmp_path / "w") as ws:
        if windows:
            score = ws.settings.score
            score.committee.window_days, score.surge_recent_days, score.surge_baseline_days \
                = windows
        ws.load_simulation(market, spend=False)
        ws.resolve()
        first = ws.score()
        start = first.as_of - dt.timedelta(days=20)
        live.forget()
        ws.score(start)
        moved = 0
        for hours in (1, 30, 24 * 4, 24 * 9, 24 * 32, 24 * 95):
            at = start + dt.timedelta(hours=hours)
            r = ws.score(at)
            assert r.mode == "incremental", hours
            moved += r.recomputed
            got = _tables(ws)["scores"].query("as_of == @at")
            live.forget()
            full = ws.score(at)
            assert full.mode == "full"
            assert (r.stages, r.mqls, r.surging) == (full.stages, full.mqls, full.surging)
            assert_same({"scores": got}, {"scores": _tables(ws)["scores"].query(
                "as_of == @at")})
        assert moved > 0  # some accounts did cross a window
        assert any(p.windowed for p in plans) and any(p.windowed_persons for p in plans)


def _event(kind: str, at: dt.datetime, n: int, **fields: Any) -> str:
    return json.dumps({"type": kind, "messageId": f"m{n}", "anonymousId": "a1",
                       "timestamp": at.isoformat() + "Z", **fields})


def test_a_person_leaving_the_committee_window_moves_only_its_account(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A VP of marketing's only touches leave the committee's window (45 days here, an
    edge no other measure has): nothing else of the account or the person moves, but the
    account's committee loses its role; the account is recomputed and equals a full
    score."""
    monkeypatch.setattr(live, "MOST", 1.01)
    day = dt.datetime(2026, 3, 2)
    lines = [_event("identify", day + dt.timedelta(hours=7), 0, userId="u1",
                    traits={"email": "ann@capco-industries.com", "title": "VP Marketing"})]
    lines += [_event("page", day + dt.timedelta(hours=8, minutes=4 * i), i + 1,
                     properties={"path": "/blog/a", "url": "https://x.io/blog/a"})
              for i in range(3)]
    f = tmp_path / "events.jsonl"
    f.write_text("\n".join(lines) + "\n")
    with demandloop.open(tmp_path / "w") as ws:
        ws.settings.score.committee.window_days = 45
        ws.ingest(f)
        ws.resolve()
        start = day + dt.timedelta(days=45, hours=7, minutes=50)
        at = start + dt.timedelta(hours=1)
        assert ws.score(start).mode == "full"
        assert ws.score(at).mode == "incremental"
        got = _tables(ws)["scores"].query("as_of == @at")
        live.forget()
        assert ws.score(at).mode == "full"
        want = _tables(ws)["scores"].query("as_of == @at")
        # (it did move: the role it covered is missing now)
        before = _tables(ws)["scores"].query("as_of == @start and entity == 'account'")
        assert json.loads(before["details"].iloc[0])["committee_coverage"] > 0
        assert json.loads(want.query("entity == 'account'")["details"].iloc[0])[
            "committee_coverage"] == 0
        assert_same({"scores": got}, {"scores": want})


def test_a_windowed_rescore_reads_the_whole_first_day(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The daily cap counts a day's touches in time order. An account that only crossed
    the surge baseline's edge is recomputed from the touches since the first day of the
    windows; starting at the window's own edge instead would count again, uncut, the page
    views that the cap cut after the day's first ten (its baseline, and so its surge,
    would differ from a full score's)."""
    monkeypatch.setattr(live, "MOST", 1.01)  # (one account of one)
    plans = _plans(monkeypatch)
    day = dt.datetime(2026, 3, 2)
    lines = [_event("identify", day + dt.timedelta(hours=7), 0, userId="u1",
                    traits={"email": "ann@capco-industries.com"})]
    # 25 page views from 08:00, four minutes apart: the cap (10) cuts the last 15
    lines += [_event("page", day + dt.timedelta(hours=8, minutes=4 * i), i + 1,
                     properties={"path": "/blog/a", "url": "https://x.io/blog/a"})
              for i in range(25)]
    # the rest of the windows: a steady visitor, so the account has a baseline
    lines += [_event("page", day + dt.timedelta(days=d, hours=12), 100 + d,
                     properties={"path": "/blog/b", "url": "https://x.io/blog/b"})
              for d in range(1, 97, 3)]
    f = tmp_path / "events.jsonl"
    f.write_text("\n".join(lines) + "\n")
    with demandloop.open(tmp_path / "w") as ws:
        ws.ingest(f)
        ws.resolve()
        edge = ws.settings.score.surge_recent_days + ws.settings.score.surge_baseline_days
        # the baseline's edge passes 08:50 of the capped day, then 09:20
        start = day + dt.timedelta(days=edge, hours=8, minutes=50)
        at = start + dt.timedelta(minutes=30)
        assert ws.score(start).mode == "full"
        r = ws.score(at)
        assert r.mode == "incremental"
        assert plans[-1].windowed == {"capco-industries.com"}
        got = _tables(ws)["scores"].query("as_of == @at")
        live.forget()
        assert ws.score(at).mode == "full"
        assert_same({"scores": got}, {"scores": _tables(ws)["scores"].query("as_of == @at")})


def test_an_account_that_went_is_rescored_live(tmp_path: Path, market: Path) -> None:
    """Resolve deletes an account it made once nobody matches it (after a merge); the
    next rescore stays incremental, makes its snapshot from the one before (as a server's
    does), and that snapshot equals a full score's, without the account."""
    with demandloop.open(tmp_path / "w") as ws:
        ws.load_simulation(market, spend=False)
        ws.resolve()
        with ws.store.reader() as cur:
            at = cur.execute("SELECT max(ts) FROM touches").fetchone()[0]
            # accounts resolve made, with people and touches: one goes per step below
            made = [r[0] for r in cur.execute(
                "SELECT account_id FROM accounts a WHERE source = 'email_domain' AND EXISTS "
                "(SELECT 1 FROM touches t WHERE t.account_id = a.account_id) "
                "ORDER BY account_id LIMIT 2").fetchall()]
        assert len(made) == 2
        for i, gone in enumerate(made):
            t0 = at + dt.timedelta(minutes=10 * i)
            live.forget()
            assert ws.score(t0, one_per_day=True).mode == "full"
            assert ws.score(t0 + dt.timedelta(minutes=1), one_per_day=True).mode == \
                "incremental"
            with ws.store.writer() as cur:
                # as resolve leaves it: no account, its people and touches elsewhere
                cur.execute("UPDATE persons SET account_id = NULL WHERE account_id = ?",
                            [gone])
                moved = cur.execute("UPDATE touches SET account_id = NULL WHERE "
                                    "account_id = ? RETURNING person_id", [gone]).fetchall()
                cur.execute("DELETE FROM account_matches WHERE account_id = ?", [gone])
                cur.execute("DELETE FROM accounts WHERE account_id = ?", [gone])
                touch_log.record(cur, ws.store.workspace_id, [gone] * len(moved),
                                 [r[0] for r in moved], 0)
            now = t0 + dt.timedelta(minutes=2)
            r = ws.score(now, one_per_day=True)
            got = _tables(ws)["scores"].query("as_of == @now")
            assert r.mode == "incremental" and 0 < r.rows_written < len(got)
            assert gone not in set(got["entity_id"])
            live.forget()
            full = ws.score(now)
            assert (r.stages, r.mqls) == (full.stages, full.mqls)
            assert_same({"scores": got}, {"scores": _tables(ws)["scores"].query(
                "as_of == @now")})


def test_what_it_cannot_account_for_makes_a_full_score(tmp_path: Path, market: Path) -> None:
    with demandloop.open(tmp_path / "w") as ws:
        ws.load_simulation(market, spend=False)
        ws.resolve()
        assert ws.score().mode == "full"
        assert ws.score().mode == "incremental"  # nothing changed: nothing recomputed
        assert ws.score().recomputed == 0
        # an earlier as_of
        with ws.store.reader() as cur:
            at = cur.execute("SELECT max(ts) FROM touches").fetchone()[0]
        assert ws.score(at - dt.timedelta(days=1)).mode == "full"
        assert ws.score().mode == "incremental"
        for what, sql in (
                ("another opportunity", "UPDATE opportunities SET amount = amount + 1 WHERE "
                 "opportunity_id = (SELECT min(opportunity_id) FROM opportunities)"),
                ("firmographics", "UPDATE accounts SET employees = coalesce(employees, 0) + 1 "
                 "WHERE account_id = (SELECT min(account_id) FROM accounts)"),
                ("touches changed without a log entry", "DELETE FROM touches WHERE touch_id = "
                 "(SELECT min(touch_id) FROM touches)")):
            with ws.store.writer() as cur:
                cur.execute(sql)
            assert ws.score().mode == "full", what
            assert ws.score().mode == "incremental", what
        # an erasure logs that every touch may have changed
        with ws.store.reader() as cur:
            email = cur.execute("SELECT p.email FROM persons p JOIN touches t "
                                "USING (person_id) WHERE p.email IS NOT NULL "
                                "LIMIT 1").fetchone()[0]
        ws.erase_person(email)
        assert ws.score().mode == "full"
        # other scoring settings
        ws.settings.score.half_life_days = 10.0
        assert ws.score().mode == "full"
        assert ws.score().mode == "incremental"

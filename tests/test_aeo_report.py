"""``report aeo`` on a simulated market whose access log has planted coverage gaps: the gaps
found (and nothing else), every figure against an independent count (the log's own lines in
Python, the simulator's truth, the touches and opportunities in pandas), and point in time."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import demandloop
from demandloop.simulate import simulate
from demandloop.simulate.crawlers import CRAWLERS, GAPS

LINE = re.compile(r'\[([^\]]+)\] "GET (\S+) [^"]*" \d+ \d+ "[^"]*" "([^"]*)"')


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("aeo")
    simulate(accounts=120, days=40, seed=9, out=base / "market")
    ws = demandloop.open(base / "ws")
    ws.load_simulation(base / "market")
    ws.resolve()
    ws.score_history(7)
    truth = json.loads((base / "market" / "truth.json").read_text())["aeo"]
    yield {"ws": ws, "log": base / "market" / "access.log", "truth": truth}
    ws.close()


def _log(path: Path, since: dt.datetime | None = None
         ) -> list[tuple[dt.datetime, str, str | None]]:
    """(UTC time, page, crawler category, ``spoofed`` or None) of each line, read
    independently (a spoof: GPTBot's agent from the residential 198.51.100.0/24)."""
    kinds = {agent: category for _, category, agent, _ in CRAWLERS}
    out = []
    for line in path.read_text().splitlines():
        m = LINE.search(line)
        assert m, line
        at = dt.datetime.strptime(m[1], "%d/%b/%Y:%H:%M:%S %z").astimezone(dt.UTC)
        kind = kinds.get(m[3])
        if kind and line.startswith("198.51.100."):
            kind = "spoofed"
        out.append((at.replace(tzinfo=None), m[2].split("?")[0], kind))
    return out


def test_the_planted_gaps_and_nothing_else(market: dict[str, Any]) -> None:
    report = market["ws"].aeo(days=40)
    assert report["key_pages_from"] == "traffic"
    keys = {r["page"] for r in report["pages"]}
    assert set(GAPS) <= keys
    assert sorted(r["page"] for r in report["uncrawled"]) == sorted(GAPS)
    assert all(r["last_search_crawl"] is None for r in report["uncrawled"])


def test_crawls_and_sections_match_the_log(market: dict[str, Any]) -> None:
    ws, lines = market["ws"], _log(market["log"])
    report = ws.aeo(days=10)
    per_crawler = Counter()
    for r in report["crawls"]:
        per_crawler[r["crawler"]] += r["requests"]
    # the planted spoofs (GPTBot's agent from a residential address) count as no crawl
    assert dict(per_crawler) == market["truth"]["crawler_requests"]
    as_of = report["as_of"]
    since = as_of - dt.timedelta(days=10)
    spoofs = [(at, page) for at, page, kind in lines
              if kind == "spoofed" and since < at <= as_of]
    assert sum(market["truth"]["spoofed"].values()) == sum(
        1 for line in market["log"].read_text().splitlines()
        if line.startswith("198.51.100.") and "GPTBot" in line)
    window = [s for s in report["spoofed"] if s["crawler"] == "GPTBot"]
    assert window and window[0]["requests"] == len(spoofs)
    assert as_of == max(t for t, _, _ in lines)
    sections: dict[str, Counter[str]] = {}
    for at, page, kind in lines:
        if since < at <= as_of:
            section = "/" + page.lstrip("/").split("/")[0]
            sections.setdefault(section, Counter())[kind or "people"] += 1
    got = {r["section"]: {k: r[k] for k in ("training", "search", "user", "agent", "people",
                                            "spoofed") if r[k]} for r in report["sections"]}
    assert got == {s: dict(c) for s, c in sections.items()}
    # per page: the search crawls in the window
    pages = {r["page"]: r for r in report["pages"]}
    searched = Counter(page for at, page, kind in lines
                       if kind == "search" and since < at <= as_of)
    for page, row in pages.items():
        assert row["search_crawls"] == searched[page], page


def test_landings_and_what_followed_match_pandas(market: dict[str, Any]) -> None:
    ws = market["ws"]
    report = ws.aeo(days=40)
    as_of = report["as_of"]
    since = as_of - dt.timedelta(days=40)
    con = ws.store.con
    touches = con.execute("SELECT path, account_id, ts, channel, activity FROM touches").df()
    opps = con.execute("SELECT account_id, amount, created_at FROM opportunities").df()
    stages = con.execute("SELECT entity_id AS account_id, stage, as_of FROM scores WHERE "
                         "entity = 'account' AND as_of <= ?", [as_of]).df()
    latest = stages.sort_values("as_of").groupby("account_id")["stage"].last()
    ai = touches[(touches["channel"] == "ai_assistant") & (touches["ts"] > since)
                 & (touches["ts"] <= as_of) & touches["path"].notna()].copy()
    ai["page"] = ai["path"].str.split("?").str[0]
    checked = 0
    for row in report["pages"]:
        mine = ai[ai["page"] == row["page"]]
        assert row["ai_landings"] == len(mine), row["page"]
        firsts = mine.dropna(subset=["account_id"]).groupby("account_id")["ts"].min()
        assert row["accounts"] == len(firsts)
        forms = pipeline = qualified = 0
        for account, first in firsts.items():
            t = touches[(touches["account_id"] == account) & (touches["ts"] >= first)
                        & (touches["ts"] <= as_of)]
            forms += int(t["activity"].isin(["form_fill", "demo_request", "trial",
                                             "webinar_registration",
                                             "meeting_booked"]).sum())
            o = opps[(opps["account_id"] == account) & (opps["created_at"] >= first)
                     & (opps["created_at"] <= as_of)]
            pipeline += float(o["amount"].sum())
            qualified += latest.get(account) in ("mqa", "sql", "opportunity", "customer")
        assert (row["forms"], row["qualified_accounts"]) == (forms, qualified), row["page"]
        assert row["pipeline"] == pytest.approx(pipeline), row["page"]
        checked += bool(len(firsts))
    assert checked >= 5  # the simulated AI-assistant visitors landed on several key pages
    # the weekly trend: every AI-assistant landing up to as_of, by ISO week (Monday)
    every = touches[(touches["channel"] == "ai_assistant") & (touches["ts"] <= as_of)]
    weekly = every.groupby(every["ts"].dt.to_period("W-SUN").dt.start_time.dt.date).size()
    assert {r["week"]: r["landings"] for r in report["referrals"]} == \
        {week: int(n) for week, n in weekly.items()}


def test_point_in_time_reads_only_what_was_logged_then(market: dict[str, Any]) -> None:
    ws, lines = market["ws"], _log(market["log"])
    at = min(t for t, _, _ in lines) + dt.timedelta(days=12)
    report = ws.aeo(days=7, as_of=at)
    assert report["as_of"] == at
    assert report["requests"] == sum(1 for t, _, _ in lines if t <= at)
    assert sum(r["requests"] for r in report["crawls"]) == report["crawler_requests"] == \
        sum(1 for t, _, k in lines if t <= at and k and k != "spoofed")


def test_the_report_through_the_cli_and_the_api_shape(market: dict[str, Any], cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("-w", str(market["ws"].directory), "report", "aeo", "--days", "40")
    assert code == 0
    assert "3 key page(s) no AI search crawler fetched in 40 days" in out
    for page in GAPS:
        assert page in out
    # the last week is cut at the log's end: said, where its few days read as a drop
    end = pd.Timestamp(json.loads(cli("-w", str(market["ws"].directory), "report", "aeo",
                                      "--json")[1])["as_of"])
    monday = end.normalize() - pd.Timedelta(days=end.weekday())
    said = f"(the last one up to {end:%Y-%m-%d %H:%M} only)"
    partial = end < monday + pd.Timedelta(days=7) - pd.Timedelta(seconds=1)
    assert (said in " ".join(out.split())) == partial


def test_a_log_of_crawlers_only_has_no_key_pages_to_call_fetched(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # with neither a content index nor people's visits there are no key pages, and the
    # report said "every key page was fetched by an AI search crawler"
    log = tmp_path / "access.log"
    log.write_text('20.171.207.1 - - [10/Oct/2026:13:55:36 +0000] "GET /docs HTTP/1.1" 200 '
                   '2326 "-" "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; '
                   'GPTBot/1.2; +https://openai.com/gptbot)"\n')
    w = str(tmp_path / "w")
    assert cli("-w", w, "import", "access-logs", str(log))[0] == 0
    code, out, _ = cli("-w", w, "report", "aeo")
    assert code == 0 and "no key pages to check yet" in out
    assert "every key page was fetched" not in out


def test_the_scorecard_measures_ai_answer_visibility(market: dict[str, Any],
                                                     tmp_path: Path) -> None:
    ws, lines = market["ws"], _log(market["log"])
    last = max(t for t, _, _ in lines)
    crawled = {page for at, page, kind in lines
               if kind == "search" and at > last - dt.timedelta(days=30)}
    touches = ws.store.con.execute("SELECT motion, path, ts FROM touches").df()
    recent = touches[touches["path"].notna()
                     & (touches["ts"] > touches["ts"].max() - dt.timedelta(days=30))]
    card = ws.scorecard()["card"].set_index("criterion")
    for motion, program in (("demand", "demand_gen"), ("capture", "lead_gen")):
        pages = set(recent.loc[recent["motion"] == motion, "path"].str.split("?").str[0])
        expected = 10 * len(pages & crawled) / len(pages)
        assert card.loc["ai_answer_visibility", f"{program}_measured"] == \
            pytest.approx(expected, abs=0.05)
    # without an access log it is not measured: the published score stands
    with demandloop.open(tmp_path / "bare") as bare:
        card = bare.scorecard()["card"].set_index("criterion")
        assert card.loc["ai_answer_visibility"].isna()["demand_gen_measured"]

"""Golden cases for channels and personas; touches: visits, inherited channels, topics."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from demandloop.enrich.channels import classify, rules_for, user_rule
from demandloop.enrich.personas import classify_title
from demandloop.enrich.touches import build_touches, topic_of

DATA = Path(__file__).parent / "data"


def rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_channel_golden_cases() -> None:
    cases = rows("channels.csv")
    assert len(cases) >= 50
    df = pd.DataFrame(cases).replace("", None)
    got = classify(df, rules_for(("acme",)))
    wrong = [(c["url"], c["referrer"], c["utm_source"], c["expected"], g)
             for c, g in zip(cases, got, strict=True) if g != c["expected"]]
    assert wrong == []
    assert {"ai_assistant", "branded_search"} <= set(got)


def test_user_channel_rules_come_first() -> None:
    df = pd.DataFrame([{"url": "https://acme.io/", "referrer": "https://www.g2.com/x",
                        "utm_source": None, "utm_medium": None}])
    rules = rules_for((), [user_rule("review_sites", referrer_host=["g2.com"])])
    assert classify(df, rules).tolist() == ["review_sites"]


def test_persona_golden_cases() -> None:
    cases = rows("personas.csv")
    assert len(cases) >= 200
    wrong = [(c["title"], (c["seniority"], c["function"]), classify_title(c["title"]))
             for c in cases if classify_title(c["title"]) != (c["seniority"], c["function"])]
    assert wrong == []
    assert classify_title("") == (None, None)


def ev(i: int, t: str, visitor: str, **kw: object) -> dict[str, object]:
    base = {"message_id": f"m{i}", "type": "page", "event": None, "anonymous_id": visitor,
            "user_id": None, "timestamp": pd.Timestamp(t), "url": "https://acme.io/",
            "path": "/", "referrer": None, "utm_source": None, "utm_medium": None,
            "utm_campaign": None, "utm_term": None, "ip": None}
    base.update(kw)
    return base


def test_visits_carry_their_landing_channel() -> None:
    events = pd.DataFrame([
        ev(1, "2026-01-01 10:00", "a", url="https://acme.io/blog/intent-data-trends",
           path="/blog/intent-data-trends", referrer="https://www.linkedin.com/",
           utm_source="linkedin", utm_medium="paid_social"),
        ev(2, "2026-01-01 10:05", "a", url="https://acme.io/pricing", path="/pricing",
           referrer="https://acme.io/blog/intent-data-trends"),
        ev(3, "2026-01-01 10:06", "a", type="track", event="Demo Requested"),
        ev(4, "2026-01-01 12:00", "a", url="https://acme.io/pricing", path="/pricing",
           referrer="https://acme.io/"),  # after 30 min idle: a new, direct visit
        ev(5, "2026-01-01 12:01", "a", type="track", event="Email Sent"),
        ev(6, "2026-01-01 12:02", "a", type="identify"),
    ])
    t = build_touches(events).set_index("message_id")
    assert list(t.loc[["m1", "m2", "m3"], "channel"]) == ["paid_social"] * 3
    assert list(t.loc[["m1", "m2", "m3"], "motion"]) == ["demand", "demand", "capture"]
    assert t.loc["m2", "activity"] == "high_intent_page" and t.loc["m2", "weight"] == 3.0
    assert (t.loc["m3", "activity"], t.loc["m3", "weight"]) == ("demo_request", 10.0)
    assert (t.loc["m4", "channel"], t.loc["m4", "motion"]) == ("direct", "capture")
    assert (t.loc["m5", "channel"], t.loc["m5", "motion"]) == ("outbound", "sales")
    assert "m6" not in t.index  # identify is not a touch
    assert t.loc["m1", "topic"] == "intent-data"


@pytest.mark.parametrize(("path", "topic"), [
    ("/blog/account-based-marketing-guide", "account-based-marketing"),
    ("/guides/lead-scoring", "lead-scoring"), ("/pricing", None), (None, None),
])
def test_topics(path: str | None, topic: str | None) -> None:
    assert topic_of(path) == topic


def test_resolve_builds_the_touches_the_pandas_reference_defines(  # type: ignore[no-untyped-def]
        tmp_path, market) -> None:
    """resolve builds touches in SQL (enrich/touch_sql.py); build_touches is the same
    definition in pandas. On a simulated market both give every touch the same channel,
    motion, activity, weight and topic."""
    import demandloop
    from demandloop.enrich.run import channel_rules

    with demandloop.open(tmp_path / "w") as ws:
        ws.ingest(market / "events.jsonl")
        ws.resolve()
        with ws.store.reader() as cur:
            events = cur.execute(
                "SELECT message_id, type, event, anonymous_id, user_id, url, path, referrer, "
                "title AS page_title, utm_source, utm_medium, utm_campaign, utm_term, ip, "
                "timestamp FROM events").df()
        cols = ["channel", "motion", "activity", "weight", "topic"]
        stored = ws.touches().set_index("message_id")[cols].sort_index()
        reference = build_touches(events, rules=channel_rules(ws.settings)) \
            .set_index("message_id")[cols].sort_index()
    assert list(stored.index) == list(reference.index)
    for col in cols:
        differ = stored[col].astype(object).fillna("<none>") != \
            reference[col].astype(object).fillna("<none>")
        assert not differ.any(), (col, stored[differ].head(), reference[differ].head())

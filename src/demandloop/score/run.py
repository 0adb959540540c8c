"""``demandloop score``: fit, engagement and intent surge for every account, as a snapshot.

Reads the workspace (accounts, touches), computes with the pure functions of this package
(Ibis over DuckDB for the touch aggregates) and writes one ``scores`` row per account for the
``as_of`` time (the last touch unless given). Re-scoring the same ``as_of`` replaces it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import orjson
import pandas as pd
import pyarrow as pa

from demandloop.compute import tables
from demandloop.config import Settings
from demandloop.errors import UsageError
from demandloop.score.engagement import EngagementRules, batch_scores
from demandloop.score.fit import Band, FitRules, band, score_account
from demandloop.score.intent import SurgeRules, surge
from demandloop.store.db import Store


@dataclass
class ScoreResult:
    as_of: dt.datetime
    accounts: int
    surging: int
    strong_fit: int


def rules_from(settings: Settings) -> tuple[FitRules, EngagementRules, SurgeRules]:
    s = settings.score
    fit = FitRules(
        industries=dict(s.fit.industries), countries=dict(s.fit.countries),
        technologies=dict(s.fit.technologies),
        employees=[Band(b.min, b.max, b.points) for b in s.fit.employees],
        revenue=[Band(b.min, b.max, b.points) for b in s.fit.revenue],
    )
    base = EngagementRules()
    engagement = EngagementRules(half_life_days=s.half_life_days,
                                 caps={**base.caps, **s.daily_caps})
    intent = SurgeRules(recent_days=s.surge_recent_days, baseline_days=s.surge_baseline_days,
                        threshold=s.surge_threshold, min_recent=s.surge_min_recent)
    return fit, engagement, intent


def account_scores(store: Store, settings: Settings, as_of: dt.datetime) -> pd.DataFrame:
    """Per account: fit, fit_band, fit_criteria, engagement, touches, people, surge,
    surging, surge_topics (pure reads; nothing written)."""
    fit_rules, eng_rules, surge_rules = rules_from(settings)
    t = tables(store)
    accounts = t.accounts.select("account_id", "industry", "country", "employees", "revenue",
                                 "technologies").execute()
    fits = [score_account(fit_rules, row) for row in accounts.to_dict("records")]
    out = pd.DataFrame({"account_id": accounts["account_id"],
                        "fit": [f[0] for f in fits], "fit_criteria": [f[1] for f in fits]})
    out["fit_band"] = out["fit"].map(band)
    eng = batch_scores(t.touches, eng_rules, as_of).execute()
    overall = surge(t.touches, eng_rules, surge_rules, as_of).execute()
    topics = surge(t.touches, eng_rules, surge_rules, as_of, by_topic=True).execute()
    hot = topics[topics["surging"]].sort_values("surge", ascending=False).groupby(
        "account_id")["topic"].agg(list)
    out = out.merge(eng, on="account_id", how="left").merge(
        overall[["account_id", "recent", "surge", "surging"]], on="account_id", how="left")
    out["engagement"] = out["engagement"].fillna(0.0)
    out["touches"] = out["touches"].fillna(0).astype(int)
    out["people"] = out["people"].fillna(0).astype(int)
    out["surge"] = out["surge"].fillna(1.0)
    out["surging"] = out["surging"].fillna(False).astype(bool)
    out["surge_topics"] = out["account_id"].map(hot).map(
        lambda v: v if isinstance(v, list) else [])
    return out


def run(store: Store, settings: Settings, as_of: dt.datetime | None = None) -> ScoreResult:
    """Score every account at *as_of* (default: the last touch) and store the snapshot."""
    if as_of is None:
        with store.reader() as cur:
            row = cur.execute("SELECT max(ts) FROM touches WHERE workspace_id = ?",
                              [store.workspace_id]).fetchone()
        if not row or row[0] is None:
            raise UsageError("no touches to score",
                             hint="ingest events and run 'demandloop resolve' first")
        as_of = row[0]
    assert as_of is not None
    df = account_scores(store, settings, as_of)
    details = [orjson.dumps({
        "fit_band": r.fit_band, "fit_criteria": r.fit_criteria, "touches": r.touches,
        "people": r.people, "surging": r.surging, "surge_topics": r.surge_topics,
    }).decode() for r in df.itertuples()]
    snap = pa.table({
        "entity_id": pa.array(df["account_id"], pa.string()),
        "fit": pa.array(df["fit"], pa.float64()),
        "engagement": pa.array(df["engagement"], pa.float64()),
        "intent": pa.array(df["surge"], pa.float64()),
        "details": pa.array(details, pa.string()),
    })
    with store.writer() as cur:
        cur.register("_snap", snap)
        cur.execute("DELETE FROM scores WHERE workspace_id = $ws AND entity = 'account' "
                    "AND as_of = $at", {"ws": store.workspace_id, "at": as_of})
        cur.execute("INSERT INTO scores SELECT $ws, $at, 'account', entity_id, fit, "
                    "engagement, intent, NULL, details FROM _snap",
                    {"ws": store.workspace_id, "at": as_of})
        cur.unregister("_snap")
    return ScoreResult(as_of=as_of, accounts=len(df), surging=int(df["surging"].sum()),
                       strong_fit=int((df["fit_band"] == "Strong").sum()))

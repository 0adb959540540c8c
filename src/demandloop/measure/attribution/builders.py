"""Build journeys from the store's touches: per account (credited to opportunities and
revenue) or per person (credited to lead creation).

Account level is what ABM needs: every touch of the account counts, from all its people and
its anonymous visitors (resolved by IP or cookie), because buying is done by a committee.

* Account journeys: each opportunity is a journey made of its account's touches before the
  opportunity was created (and after the account's previous opportunity, so no touch is
  credited twice); with ``outcome="won"`` only won opportunities convert and the value is won
  revenue. Accounts touched but never given an opportunity are non-converting journeys.
  Touches after an account's last opportunity belong to no journey yet.
* Person journeys: a person converts at their first lead-creation touch (form fill, demo
  request, trial, webinar registration); the journey is every touch up to and including it.
  People who never converted, and anonymous visitors never tied to a person, are
  non-converting journeys.

*lookback_days* keeps only touches that close to the conversion (or to *now*).
"""

from __future__ import annotations

import pandas as pd

from demandloop.errors import InputError
from demandloop.measure.attribution.journeys import LEAD_ACTIVITIES, Journeys


def _window(t: pd.DataFrame, end: pd.Series, lookback_days: int | None) -> pd.DataFrame:
    if lookback_days is None:
        return t
    return t[t["ts"] >= end - pd.Timedelta(days=lookback_days)]


def account_journeys(touches: pd.DataFrame, opportunities: pd.DataFrame, *,
                     outcome: str = "opportunity", lookback_days: int | None = None,
                     now: pd.Timestamp | None = None) -> Journeys:
    """*touches*: account_id, ts, channel, activity; *opportunities*: opportunity_id,
    account_id, created_at, amount, won. See the module docstring."""
    if outcome not in ("opportunity", "won"):
        raise InputError(f"unknown outcome '{outcome}'", hint="use 'opportunity' or 'won'")
    t = touches[touches["account_id"].notna()].sort_values("ts", kind="stable")
    o = opportunities[opportunities["created_at"].notna() & opportunities["account_id"].notna()]
    o = o.sort_values("created_at", kind="stable")
    now = now if now is not None else (t["ts"].max() if len(t) else pd.Timestamp.now())
    # one dtype for the keys on both sides: an empty frame (no touches, or a CRM-only
    # workspace) comes back as object while a filled one is pandas' string dtype, and
    # merge_asof refuses to join the two
    t = t.assign(ts=t["ts"].astype("datetime64[us]"), account_id=t["account_id"].astype(object))
    o = o.assign(created_at=o["created_at"].astype("datetime64[us]"),
                 account_id=o["account_id"].astype(object))
    # each touch goes to the account's first opportunity created after it
    m = pd.merge_asof(t, o[["account_id", "opportunity_id", "created_at"]], left_on="ts",
                      right_on="created_at", by="account_id", direction="forward",
                      allow_exact_matches=False)
    with_opps = set(o["account_id"])
    conv = m[m["opportunity_id"].notna()]
    conv = _window(conv, conv["created_at"], lookback_days).assign(
        journey=lambda d: "opp:" + d["opportunity_id"].astype(str))
    null = m[m["opportunity_id"].isna() & ~m["account_id"].isin(with_opps)]
    null = _window(null, pd.Series(now, index=null.index), lookback_days).assign(
        journey=lambda d: "account:" + d["account_id"].astype(str))
    won = o["won"].fillna(False).astype(bool)
    converted = won if outcome == "won" else pd.Series(True, index=o.index)
    outcomes = pd.concat([
        pd.DataFrame({"journey": "opp:" + o["opportunity_id"].astype(str),
                      "converted": converted.to_numpy(),
                      "value": o["amount"].astype(float).to_numpy(),
                      "end": o["created_at"].to_numpy()}),
        pd.DataFrame({"journey": "account:" + null["account_id"].drop_duplicates().astype(str),
                      "converted": False, "value": 0.0, "end": now}),
    ], ignore_index=True)
    cols = ["journey", "ts", "channel", "activity"]
    return Journeys.from_touches(pd.concat([conv[cols], null[cols]], ignore_index=True),
                                 outcomes)


def person_journeys(touches: pd.DataFrame, *, lookback_days: int | None = None,
                    now: pd.Timestamp | None = None) -> Journeys:
    """*touches*: person_id, anonymous_id, ts, channel, activity. See the module docstring."""
    key = touches["person_id"].astype(object).where(touches["person_id"].notna(),
                                                    "anon:" + touches["anonymous_id"].astype(str))
    t = touches.assign(person_id=key)[key.notna() & (touches["person_id"].notna()
                                                     | touches["anonymous_id"].notna())]
    t = t.sort_values(["person_id", "ts"], kind="stable")
    now = now if now is not None else (t["ts"].max() if len(t) else pd.Timestamp.now())
    is_lead = t["activity"].isin(LEAD_ACTIVITIES)
    first = t[is_lead].groupby("person_id")["ts"].min()
    end = t["person_id"].map(first)
    converted = end.notna()
    keep = ~converted | (t["ts"] <= end)
    t = t[keep].assign(journey=t["person_id"].astype(str), end=end[keep].fillna(now))
    t = _window(t, t["end"], lookback_days)
    people = t.groupby("journey", sort=False)["end"].first()
    outcomes = pd.DataFrame({"journey": people.index,
                             "converted": people.index.isin(first.index.astype(str)),
                             "value": 0.0, "end": people.to_numpy()})
    return Journeys.from_touches(t[["journey", "ts", "channel", "activity"]], outcomes)

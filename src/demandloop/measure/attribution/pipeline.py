"""Pipeline sourced vs influenced: the two numbers a demand-gen team is judged on.

* **Sourced**: the channel (and motion) of the account's first touch before the opportunity
  was created; an opportunity with no touch before it is sourced by ``(none)`` (sales-found or
  imported). This is the credit first-touch reporting gives.
* **Influenced**: an opportunity is influenced by a channel when its account had a touch of
  that channel in the *window_days* before creation. Influence overlaps by design: one
  opportunity can be influenced by several channels, so influenced amounts do not add up.
  ``demand_influenced`` is the headline: opportunities with any demand-motion touch in the
  window, the pipeline demand generation helped create whatever sourced it.

The engine finds, per opportunity, its first touch and the channels in its window
(:func:`demandloop.measure.inputs.pipeline_parts`); this module adds them up.

Example:
    >>> import pandas as pd
    >>> parts = {"first": pd.DataFrame({"opportunity_id": ["o1"], "channel": ["events"],
    ...                                 "motion": ["demand"]}),
    ...          "influence": pd.DataFrame({"opportunity_id": ["o1"], "channel": ["events"]}),
    ...          "demand": pd.DataFrame({"opportunity_id": ["o1"]})}
    >>> o = pd.DataFrame({"opportunity_id": ["o1"], "account_id": ["a"], "amount": [100.0],
    ...                   "won": [True], "created_at": [pd.Timestamp("2026-02-01")]})
    >>> pipeline(parts, o)["summary"]["demand_influenced"]["opportunities"]
    1
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def pipeline(parts: dict[str, pd.DataFrame], opportunities: pd.DataFrame,
             window_days: int = 90) -> dict[str, Any]:
    """Sourced and influenced pipeline. *parts*: what the engine found per opportunity
    (:func:`demandloop.measure.inputs.pipeline_parts` over the same *window_days*);
    *opportunities*: opportunity_id, account_id, amount, won, created_at.

    Returns ``{"summary": {...}, "channels": DataFrame}`` where the frame has, per channel:
    sourced opportunities/amount/won revenue and influenced opportunities/amount/won revenue."""
    # an opportunity with no creation date has no window to look back from: it is left
    # out, and counted (Olist's deals carry only their won date: "0 opportunities" of 842)
    undated = int(opportunities["created_at"].isna().sum())
    o = opportunities[opportunities["created_at"].notna()].copy()
    o["amount"] = o["amount"].fillna(0.0).astype(float)
    o["won_amount"] = o["amount"].where(o["won"].fillna(False).astype(bool), 0.0)
    o = o.merge(parts["first"][["opportunity_id", "channel", "motion"]],
                on="opportunity_id", how="left").fillna(
        {"channel": "(none)", "motion": "(none)"})
    influenced = parts["influence"][["opportunity_id", "channel"]].merge(
        o[["opportunity_id", "amount", "won_amount"]], on="opportunity_id")
    demand_ids = set(parts["demand"]["opportunity_id"])
    sourced = o.groupby("channel").agg(sourced_opps=("opportunity_id", "count"),
                                       sourced_amount=("amount", "sum"),
                                       sourced_won=("won_amount", "sum"))
    infl = influenced.groupby("channel").agg(influenced_opps=("opportunity_id", "count"),
                                             influenced_amount=("amount", "sum"),
                                             influenced_won=("won_amount", "sum"))
    channels = sourced.join(infl, how="outer").fillna(0).reset_index()
    for c in ("sourced_opps", "influenced_opps"):
        channels[c] = channels[c].astype(int)
    channels = channels.sort_values(["influenced_amount", "channel"],
                                    ascending=[False, True]).reset_index(drop=True)
    by_motion = o.groupby("motion").agg(opportunities=("opportunity_id", "count"),
                                        amount=("amount", "sum"), won=("won_amount", "sum"))
    dem = o[o["opportunity_id"].isin(demand_ids)]
    summary = {
        "window_days": window_days,
        "opportunities": len(o), "undated": undated, "amount": float(o["amount"].sum()),
        "won": float(o["won_amount"].sum()),
        "demand_influenced": {"opportunities": len(dem), "amount": float(dem["amount"].sum()),
                              "won": float(dem["won_amount"].sum()),
                              "share": len(dem) / len(o) if len(o) else 0.0},
        "sourced_by_motion": {str(k): {"opportunities": int(v["opportunities"]),
                                       "amount": float(v["amount"]), "won": float(v["won"])}
                              for k, v in by_motion.iterrows()},
    }
    return {"summary": summary, "channels": channels}

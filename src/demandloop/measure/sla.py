"""Speed to lead: time from becoming MQA (accounts) or MQL (people) to the first sales touch.

For every stage change into the qualified stage, the first touch with motion ``sales`` at or
after the change (for that account, or that person) ends the clock. Reported: how many were
qualified, how many got a sales touch, the median hours, and how many waited longer than the
SLA (or are still waiting past it at the last touch).
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def sla(changes: pd.DataFrame, sales_touches: pd.DataFrame, sla_hours: float,
        now: pd.Timestamp) -> dict[str, Any]:
    """*changes*: ``entity_id, changed_at`` (into the qualified stage); *sales_touches*:
    ``entity_id, ts``. Returns counts, the median response time and breaches."""
    if changes.empty:
        return {"qualified": 0, "touched": 0, "median_hours": None, "within_sla": 0,
                "breached": 0, "waiting": 0}
    c = changes.sort_values("changed_at")
    s = sales_touches.sort_values("ts")
    merged = pd.merge_asof(c, s.rename(columns={"ts": "first_sales_touch"}),
                           left_on="changed_at", right_on="first_sales_touch",
                           by="entity_id", direction="forward")
    hours = (merged["first_sales_touch"] - merged["changed_at"]).dt.total_seconds() / 3600
    waiting = merged["first_sales_touch"].isna()
    waited = (now - merged["changed_at"]).dt.total_seconds() / 3600
    breached = (hours > sla_hours) | (waiting & (waited > sla_hours))
    return {
        "qualified": len(merged), "touched": int((~waiting).sum()),
        "median_hours": float(hours.median()) if (~waiting).any() else None,
        "within_sla": int((hours <= sla_hours).sum()), "breached": int(breached.sum()),
        "waiting": int(waiting.sum()),
    }

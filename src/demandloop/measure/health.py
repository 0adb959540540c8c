"""Demand health: is the team creating demand, or harvesting a shrinking pool?

Capture numbers (MQLs, form fills) can hold or rise for a quarter while the demand that feeds
them shrinks: gated content and bought lists convert what is left. So demandloop tracks, per
week, the indicators of demand next to those of capture:

* demand: branded search visits, direct visits, AI-assistant referrals, new accounts reached
  (first touch that week), engaged target accounts (target accounts with a touch that week);
* capture: form fills (lead-creation touches) and MQLs (people converting for the first time,
  plus CRM leads created).

Each series gets a **Mann-Kendall trend test** (Kendall's tau of the values against time, the
test's statistic, with scipy's tie-corrected p-value) and a **Theil-Sen slope** with its 95 %
confidence interval (robust to outlier weeks). Only full weeks count: the partial first and
last weeks are dropped.

The alarm ("harvesting a shrinking pool") fires when at least half of the demand indicators
that have data fall significantly (tau < 0, p < alpha) while no capture indicator does
(capture holds or rises). A majority is required because one indicator can fall for benign
reasons: new accounts reached always declines as a fixed market gets covered.

Example:
    >>> import numpy as np
    >>> trend(np.arange(12.0))["direction"]
    'rising'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

DEMAND = ("branded_search", "direct", "ai_referrals", "new_accounts", "engaged_targets")
CAPTURE = ("form_fills", "mqls")
MIN_WEEKS = 8


def trend(values: Any, alpha: float = 0.05) -> dict[str, Any]:
    """Mann-Kendall test and Theil-Sen slope of a series (equally spaced)."""
    y = np.asarray(values, dtype=float)
    x = np.arange(len(y), dtype=float)
    if len(y) < 3 or np.all(y == y[0]):
        return {"tau": 0.0, "p": 1.0, "slope": 0.0, "slope_low": 0.0, "slope_high": 0.0,
                "change": 0.0, "direction": "flat", "significant": False}
    # imported here: scipy.stats takes 0.6 s to import, a third of every CLI command's
    # start-up, and only this report needs it
    import scipy.stats as st

    tau, p = st.kendalltau(x, y)
    slope, intercept, low, high = st.theilslopes(y, x, alpha=0.95)
    # change: the fitted line's last week against its first (relative), floored at -100 %
    start = float(intercept) if intercept > 0 else (float(np.mean(y)) or 1.0)
    significant = bool(p < alpha)
    direction = ("rising" if tau > 0 else "falling") if significant else "flat"
    return {"tau": float(tau), "p": float(p), "slope": float(slope), "slope_low": float(low),
            "slope_high": float(high),
            "change": max(-1.0, float(slope * (len(y) - 1) / start)),
            "direction": direction, "significant": significant}


def weekly(parts: dict[str, pd.DataFrame], leads: pd.DataFrame) -> pd.DataFrame:
    """Weekly indicator series (index: week start, Monday), full weeks only.

    *parts*: :func:`demandloop.measure.inputs.weekly_parts` (what the engine counted per
    week); *leads*: ``created_at`` (CRM leads)."""
    counts = parts["counts"]
    if counts.empty:
        return pd.DataFrame(columns=[*DEMAND, *CAPTURE])
    first_ts = pd.Timestamp(parts["span"]["first"].iloc[0])
    last_ts = pd.Timestamp(parts["span"]["last"].iloc[0])
    c = counts.set_index("week")
    lead_weeks = (leads["created_at"].dropna().dt.to_period("W-SUN").dt.start_time
                  if len(leads) else pd.Series(dtype="datetime64[us]"))
    new_people = parts["new_people"].set_index("week")["new_people"]
    s = pd.DataFrame({
        "branded_search": c["branded_search"], "direct": c["direct"],
        "ai_referrals": c["ai_referrals"],
        "new_accounts": parts["new_accounts"].set_index("week")["new_accounts"],
        "engaged_targets": c["engaged_targets"], "form_fills": c["form_fills"],
        "mqls": new_people.add(lead_weeks.value_counts(), fill_value=0),
    })
    weeks = pd.date_range(s.index.min(), s.index.max(), freq="W-MON")
    s = s.reindex(weeks).fillna(0).astype(int)
    s.index.name = "week"
    # only full weeks: the first week must start after the data does, the last end before
    starts = pd.DatetimeIndex(s.index)
    full = (starts >= first_ts.normalize()) & (starts + pd.Timedelta(days=7) <= last_ts)
    out: pd.DataFrame = s[full]
    return out


#: the statistics of an indicator that was not tested
_UNMEASURED: dict[str, Any] = dict.fromkeys(("tau", "p", "slope", "slope_low", "slope_high",
                                             "change"))


def health(series: pd.DataFrame, alpha: float = 0.05,
           unconfigured: tuple[str, ...] = ()) -> dict[str, Any]:
    """Trends of every indicator and the alarm (see the module docstring). Indicators in
    *unconfigured* (branded search without ``enrich.brand_terms``) say so instead of a
    trend, and count for nothing."""
    trends = {c: trend(series[c], alpha) for c in (*DEMAND, *CAPTURE) if c in series}
    # an indicator not measured has no statistics either: its "tau 0.00, p 1.00, change
    # +0%" read, in every table, as a measured flat trend
    for c in unconfigured:
        if c in trends:  # "flat" would read as a measured trend
            trends[c] = {**trends[c], **_UNMEASURED, "direction": "not configured"}
    if len(series) < MIN_WEEKS:  # (nor is a test over too few weeks: "flat", p = 1)
        for c, t in trends.items():
            if t["direction"] != "not configured":
                trends[c] = {**t, **_UNMEASURED, "direction": "not enough data"}
    with_data = [c for c in DEMAND if c in series and series[c].sum() > 0
                 and c not in unconfigured]
    falling = [c for c in with_data if trends[c]["direction"] == "falling"]
    capture_falling = [c for c in CAPTURE if c in trends and trends[c]["direction"] == "falling"]
    enough = len(series) >= MIN_WEEKS
    alarm = bool(enough and with_data and len(falling) * 2 >= len(with_data)
                 and not capture_falling)
    if not enough:
        verdict = f"not enough data: {len(series)} full weeks (need {MIN_WEEKS})"
    elif alarm:
        verdict = ("harvesting a shrinking pool: " + ", ".join(falling) + " falling while "
                   + ", ".join(c for c in CAPTURE if c in trends) + " hold or rise")
    elif capture_falling and falling:
        verdict = "demand and capture both falling"
    elif falling:
        verdict = "some demand indicators falling: " + ", ".join(falling)
    else:
        verdict = "healthy: demand is not shrinking"
    return {"weeks": len(series), "alpha": alpha, "alarm": alarm, "verdict": verdict,
            "demand_falling": falling, "capture_falling": capture_falling,
            "trends": trends,
            "start": str(series.index.min().date()) if len(series) else None,
            "end": str(series.index.max().date()) if len(series) else None}

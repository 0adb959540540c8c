"""Personalisation lift: per experience, exposed against control accounts, per goal.

The unit is the account, as the audience is: an account's arm is the arm of its first
``Experience Viewed`` event (assignment hashes the account, so every later view agrees), and
it converts on a goal when the goal happens after that first view and within the goal's
``within_days``. Only accounts whose window has closed by ``as_of`` are counted (the others
are reported as pending): an open window would count a conversion that may still come as
none, in both arms alike, which shrinks the rates and hides lift.

Lift is reported two ways, each with a two-sided interval at the configured confidence:

* the **difference** in conversion rate (percentage points), with Newcombe's hybrid score
  interval (his method 10: from the two Wilson intervals), which keeps its coverage at small
  counts and rates near 0 where the Wald interval does not;
* the **relative lift** (rate ratio - 1), with the Katz log interval (SciPy's
  ``relative_risk``), when both arms converted at least once.

A result is called significant when the difference's interval excludes zero; the p-value is
the pooled two-proportion z-test's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from scipy import stats
from scipy.stats.contingency import relative_risk


def wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p1 - p2 (method 10)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


@dataclass
class Lift:
    """One experience on one goal."""

    experience: str
    goal: str
    within_days: int
    exposed: int
    exposed_converted: int
    control: int
    control_converted: int
    #: accounts exposed whose window is still open at as_of (not counted yet)
    pending: int
    exposed_rate: float | None
    control_rate: float | None
    difference: float | None
    difference_low: float | None
    difference_high: float | None
    relative: float | None
    relative_low: float | None
    relative_high: float | None
    p_value: float | None
    significant: bool
    statement: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lift(experience: str, goal: str, within_days: int, x1: int, n1: int, x2: int, n2: int,
         confidence: float = 0.95, pending: int = 0) -> Lift:
    """The lift of *x1* conversions of *n1* exposed accounts over *x2* of *n2* in control."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    pct = f"{confidence:.0%}"
    base: dict[str, Any] = dict(experience=experience, goal=goal, within_days=within_days,
                                exposed=n1, exposed_converted=x1, control=n2,
                                control_converted=x2, pending=pending)
    if n1 == 0 or n2 == 0:
        return Lift(**base, exposed_rate=x1 / n1 if n1 else None,
                    control_rate=x2 / n2 if n2 else None, difference=None,
                    difference_low=None, difference_high=None, relative=None,
                    relative_low=None, relative_high=None, p_value=None, significant=False,
                    statement="no result: an arm has no account whose window has closed")
    p1, p2 = x1 / n1, x2 / n2
    low, high = newcombe(x1, n1, x2, n2, z)
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = float(2 * stats.norm.sf(abs(p1 - p2) / se)) if se > 0 else 1.0
    rel = rel_low = rel_high = None
    if x1 > 0 and x2 > 0:
        rr = relative_risk(x1, n1, x2, n2)
        ci = rr.confidence_interval(confidence_level=confidence)
        rel, rel_low, rel_high = rr.relative_risk - 1, ci.low - 1, ci.high - 1
    significant = low > 0 or high < 0
    diff = f"{(p1 - p2) * 100:+.1f} points ({pct} interval {low * 100:+.1f} to {high * 100:+.1f})"
    if significant:
        direction = "higher" if low > 0 else "lower"
        statement = (f"significant at {pct}: exposed accounts converted {direction}, {diff}")
    else:
        statement = (f"not significant at {pct}: the interval includes no difference, {diff}; "
                     f"{n1 + n2:,} accounts")
    return Lift(**base, exposed_rate=p1, control_rate=p2, difference=p1 - p2,
                difference_low=low, difference_high=high, relative=rel, relative_low=rel_low,
                relative_high=rel_high, p_value=p_value, significant=significant,
                statement=statement)


def lifts(exposures: pd.DataFrame, conversions: pd.DataFrame,
          goals: list[tuple[str, str, int]], as_of: pd.Timestamp,
          confidence: float = 0.95) -> tuple[list[Lift], dict[str, dict[str, int]]]:
    """Every experience's lift on every goal.

    *exposures*: ``experience, account_id, first_seen, control`` (one row per experience and
    account); *conversions*: ``account_id, activity, ts`` (goal events, ``activity`` naming
    the goal's activity or ``opportunity``); *goals*: (name, activity, within_days).
    Returns the lifts and, per experience, its accounts by arm."""
    out: list[Lift] = []
    counts: dict[str, dict[str, int]] = {}
    for name in sorted(exposures["experience"].unique()) if not exposures.empty else []:
        e = exposures[exposures["experience"] == name]
        counts[name] = {"exposed": int((~e["control"]).sum()),
                        "control": int(e["control"].sum())}
        for goal, activity, days in goals:
            window = pd.Timedelta(days=days)
            mature = e[e["first_seen"] + window <= as_of]
            hits = conversions[conversions["activity"] == activity]
            joined = mature.merge(hits, on="account_id", how="left")
            inside = (joined["ts"] > joined["first_seen"]) & \
                (joined["ts"] <= joined["first_seen"] + window)
            converted = set(joined.loc[inside, "account_id"])
            is_conv = mature["account_id"].isin(converted)
            exposed, control = ~mature["control"], mature["control"]
            out.append(lift(name, goal, days, int((is_conv & exposed).sum()),
                            int(exposed.sum()), int((is_conv & control).sum()),
                            int(control.sum()), confidence, len(e) - len(mature)))
    return out, counts

"""Program scorecard: demand generation vs lead generation on weighted criteria.

The published rubric (the field's usual comparison, shipped as the default) scores each
program 0-10 on eight criteria; with equal weights the totals are the plain sums: demand gen
66, lead gen 59. Weights can be changed, and two segment presets say which program to favour
for enterprise (long cycles, buying committees, AI-assisted research: coverage, AI visibility
and compounding weigh more) and for small business (short cycles: speed and verifiability
weigh more).

Five criteria can be *measured* on the user's own data, per motion (demand vs capture) and
per channel, and are shown next to the published score (each mapped to 0-10, documented in
``docs/measurement.md``):

* speed to outcome: median days from the first touch to the opportunity it sourced, on a log
  scale (10 at <= 7 days, 0 at >= 180 days);
* measurement verifiability: share of touches resolved to an account (a touch no one can tie
  to an account cannot be tied to pipeline) x 10;
* compounding: share of accounts first reached through the program that later came back on
  their own (branded search, direct, AI assistant) at least 14 days on x 10;
* low-quality-pipeline risk (higher is better): share of the opportunities the program
  sourced that come from ICP-fit accounts (fit >= 50) x 10;
* AI answer visibility (with an access log, ``demandloop import access-logs``): share of the
  pages the program's visitors landed on in the last 30 days that an AI search crawler
  (not a spoofed one) fetched in the log's last 30 days x 10: what answer engines can quote.

Example:
    >>> card = published()
    >>> int(card["demand_gen"].sum()), int(card["lead_gen"].sum())
    (66, 59)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

CRITERIA: tuple[str, ...] = (
    "objective_clarity", "funnel_coverage", "ai_answer_visibility",
    "measurement_verifiability", "speed_to_outcome", "first_party_data_capture",
    "compounding", "low_quality_pipeline_risk",
)
PUBLISHED: dict[str, tuple[int, ...]] = {
    "demand_gen": (9, 10, 10, 7, 6, 7, 9, 8),
    "lead_gen": (10, 6, 5, 9, 9, 9, 6, 5),
}
#: criterion weights per segment (1 = as published)
SEGMENT_WEIGHTS: dict[str, dict[str, float]] = {
    "enterprise": {"funnel_coverage": 2.0, "ai_answer_visibility": 1.5, "compounding": 2.0,
                   "low_quality_pipeline_risk": 1.5, "speed_to_outcome": 0.5},
    "small_business": {"speed_to_outcome": 2.0, "measurement_verifiability": 1.5,
                       "objective_clarity": 1.5, "first_party_data_capture": 1.5,
                       "compounding": 0.5, "funnel_coverage": 0.5},
}
MOTION_PROGRAM = {"demand": "demand_gen", "capture": "lead_gen"}
SELF_DIRECTED = ("branded_search", "direct", "ai_assistant")


def published(weights: dict[str, float] | None = None) -> pd.DataFrame:
    """The published rubric: criterion, weight, demand_gen, lead_gen (unweighted scores)."""
    w = weights or {}
    return pd.DataFrame({"criterion": CRITERIA,
                         "weight": [float(w.get(c, 1.0)) for c in CRITERIA],
                         **{k: list(v) for k, v in PUBLISHED.items()}})


def totals(card: pd.DataFrame, columns: tuple[str, ...] = ("demand_gen", "lead_gen")
           ) -> dict[str, float]:
    """Weighted totals (plain sums when every weight is 1)."""
    return {c: float((card[c] * card["weight"]).sum()) for c in columns}


def verdict(total: dict[str, float]) -> str:
    d, g = total["demand_gen"], total["lead_gen"]
    if abs(d - g) < 1e-9:
        return "a tie: run both and let measured results decide"
    lead, other = ("demand generation", "lead generation") if d > g else (
        "lead generation", "demand generation")
    return f"{lead} leads by {abs(d - g):g} points over {other}"


def recommendations() -> dict[str, dict[str, Any]]:
    """Per segment: weighted totals and the program to favour."""
    out: dict[str, dict[str, Any]] = {}
    for seg, w in SEGMENT_WEIGHTS.items():
        t = totals(published(w))
        out[seg] = {"totals": t, "favour": max(t.items(), key=lambda kv: kv[1])[0],
                    "weights": w}
    return out


def _speed_score(days: float) -> float:
    if np.isnan(days):
        return float("nan")
    d = min(max(days, 7.0), 180.0)
    return float(10.0 * (np.log(180.0) - np.log(d)) / (np.log(180.0) - np.log(7.0)))


def measured(parts: dict[str, pd.DataFrame], fit: pd.DataFrame, by: str = "motion",
             ai_pages: set[str] | None = None) -> pd.DataFrame:
    """The measurable criteria per *by* (``motion`` or ``channel``), with the raw figure
    behind each score. *parts*: :func:`demandloop.measure.inputs.scorecard_parts` (what
    the engine read of the touches); *fit*: account_id, fit; *ai_pages*: the pages AI
    search crawlers fetched lately (None: no access log, so AI answer visibility is not
    measured)."""
    rows: dict[str, dict[str, float]] = {}
    counts = parts["segments"].groupby(by)[["touches", "resolved"]].sum()
    resolved = counts["resolved"] / counts["touches"]
    first = parts["firsts"]
    # compounding: did the account come back on its own 14+ days after its first touch?
    comp = first.assign(back=first["account_id"].isin(parts["returned"]["account_id"])
                        ).groupby(by)["back"].mean()
    # sourcing: the first touch of the account before each opportunity
    j = parts["sourced"]
    j = j.assign(days=(j["created_at"] - j["ts"]).dt.total_seconds() / 86400)
    j = j.merge(fit[["account_id", "fit"]], on="account_id", how="left")
    speed = j.groupby(by)["days"].median()
    quality = j.groupby(by)["fit"].apply(lambda f: float((f.fillna(0) >= 50).mean()))
    sourced = j.groupby(by).size()
    visible: pd.Series = pd.Series(dtype=float)
    if ai_pages is not None and len(counts):
        landed = parts["pages"].drop_duplicates([by, "page"])
        visible = landed.groupby(by)["page"].apply(
            lambda p: float(p.isin(ai_pages).mean()))
    for key in sorted(counts.index):
        rows[str(key)] = {
            "touches": float(counts.loc[key, "touches"]),
            "sourced_opps": float(sourced.get(key, 0)),
            "days_to_opportunity": float(speed.get(key, np.nan)),
            "resolved_share": float(resolved.get(key, np.nan)),
            "return_share": float(comp.get(key, np.nan)),
            "icp_fit_share": float(quality.get(key, np.nan)),
            "ai_visible_share": float(visible.get(key, np.nan)),
        }
    columns = ["touches", "sourced_opps", "days_to_opportunity", "resolved_share",
               "return_share", "icp_fit_share", "ai_visible_share"]
    # no touches yet (a new or CRM-only workspace): the same columns, no rows
    out = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    out.index.name = by
    out["speed_to_outcome"] = out["days_to_opportunity"].map(_speed_score)
    out["measurement_verifiability"] = 10 * out["resolved_share"]
    out["compounding"] = 10 * out["return_share"]
    out["low_quality_pipeline_risk"] = 10 * out["icp_fit_share"]
    out["ai_answer_visibility"] = 10 * out["ai_visible_share"]
    return out.reset_index()


def scorecard(parts: dict[str, pd.DataFrame], fit: pd.DataFrame,
              weights: dict[str, float] | None = None, ai_pages: set[str] | None = None
              ) -> dict[str, Any]:
    """Published vs measured (from *parts*, see :func:`measured`), the totals, verdicts
    and per-segment recommendations."""
    card = published(weights)
    m = measured(parts, fit, "motion", ai_pages).set_index("motion")
    for motion, program in MOTION_PROGRAM.items():
        col: list[float] = []
        row = m.loc[motion].to_dict() if motion in m.index else {}
        for c in CRITERIA:
            v = float(row.get(c, np.nan))
            col.append(round(v, 1) if not np.isnan(v) else np.nan)
        card[f"{program}_measured"] = col
        # blended: measured where the data says, published elsewhere
        card[f"{program}_blended"] = card[f"{program}_measured"].fillna(card[program])
    pub = totals(card)
    blended = {p: float((card[f"{p}_blended"] * card["weight"]).sum()) for p in PUBLISHED}
    measured_any = bool(card[[f"{p}_measured" for p in PUBLISHED]].notna().to_numpy().any())
    # (with nothing measured the blend is the published rubric: its verdict repeated as
    # "with your measured criteria" read as the data agreeing)
    return {"card": card, "published_totals": pub, "published_verdict": verdict(pub),
            "blended_totals": blended,
            "blended_verdict": verdict(blended) if measured_any else
            "nothing measured yet (no touches of either motion): the published rubric stands",
            "segments": recommendations(),
            "channels": measured(parts, fit, "channel", ai_pages)}

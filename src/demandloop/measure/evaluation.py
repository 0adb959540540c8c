"""Score quality against a simulation's ground truth: precision@k and AUC.

* **precision@k** of accounts ranked by a score, where relevant means *in market* at the
  scoring time (inside one of the account's hidden in-market windows);
* **AUC** of a score for "an opportunity is opened within ``horizon`` days after the scoring
  time", over accounts with no opportunity before it (a time split: the score only sees the
  past, the label only the future). Computed with the Mann-Whitney rank formula.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve (ties count half); NaN when only one class is present."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def precision_at_k(ranked_ids: list[str], relevant: set[str], k: int) -> float:
    top = ranked_ids[:k]
    return sum(1 for a in top if a in relevant) / max(len(top), 1)


def truth_labels(truth: dict[str, Any], at: dt.datetime, horizon_days: int = 90
                 ) -> pd.DataFrame:
    """Per account domain: in_market (at *at*), had_opp_before, opp_within (horizon)."""
    rows = []
    opps: dict[str, list[dt.datetime]] = {}
    for o in truth["opportunities"]:
        opps.setdefault(o["account_id"], []).append(
            dt.datetime.fromisoformat(o["created"].replace("Z", "")))
    day = at.date()
    for a in truth["accounts"]:
        windows = [(dt.date.fromisoformat(s), dt.date.fromisoformat(e))
                   for s, e in a["in_market_windows"]]
        created = opps.get(a["account_id"], [])
        rows.append({
            "account_id": a["domain"],
            "in_market": any(s <= day <= e for s, e in windows),
            "had_opp_before": any(c <= at for c in created),
            "opp_within": any(at < c <= at + dt.timedelta(days=horizon_days) for c in created),
        })
    return pd.DataFrame(rows)

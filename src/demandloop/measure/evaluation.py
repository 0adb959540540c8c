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


def evaluate(scores: pd.DataFrame, truth: dict[str, Any], at: dt.datetime,
             horizon_days: int = 90, k: int = 100) -> dict[str, Any]:
    """Judge account *scores* made at *at* (``Workspace.account_scores``, point in time)
    against a simulation's hidden truth.

    * ``precision``: of the top *k* accounts by ``recent`` engagement (fewer if fewer are in
      market), the share in market at *at*;
    * ``auc`` (and ``auc_fit``, ``auc_engagement``): the AUC of ``priority`` (the score sales
      sorts by) for an opportunity opened in the *horizon_days* after *at*, over every
      simulated account without one before (accounts the workspace does not know score 0);
    * ``spearman_fit``: rank correlation of ``fit`` with the hidden fit, over the accounts
      in the workspace (including those known only from an email domain);
    * for scale, what perfect knowledge would give: ``auc_hidden_fit`` (the hidden fit) and
      ``auc_oracle`` (the hidden fit plus being in market at *at*).
    """
    from scipy.stats import spearmanr

    lab = truth_labels(truth, at, horizon_days).merge(scores, on="account_id", how="left")
    lab = lab.fillna({"recent": 0.0, "priority": 0.0, "fit": 0.0, "engagement": 0.0})
    in_market = set(lab.loc[lab["in_market"], "account_id"])
    k = min(k, max(len(in_market), 1))
    ranked = lab.sort_values("recent", ascending=False, kind="stable")["account_id"].tolist()
    fresh = lab[~lab["had_opp_before"]]
    hidden = {a["domain"]: a["fit"] for a in truth["accounts"]}
    known = scores.assign(hidden=scores["account_id"].map(hidden)).dropna(subset=["hidden"])
    y = fresh["opp_within"]
    fresh_hidden = fresh["account_id"].map(hidden)
    return {
        "at": f"{at:%Y-%m-%d}", "k": k, "in_market": len(in_market),
        "precision": precision_at_k(ranked, in_market, k), "horizon_days": horizon_days,
        "accounts": len(fresh), "positives": int(y.sum()),
        "auc": auc(fresh["priority"], y), "auc_fit": auc(fresh["fit"], y),
        "auc_engagement": auc(fresh["engagement"], y),
        "spearman_fit": float(spearmanr(known["fit"], known["hidden"]).statistic),
        "fit_accounts": len(known),
        "auc_hidden_fit": auc(fresh_hidden, y),
        "auc_oracle": auc(fresh_hidden + fresh["in_market"].astype(float), y),
    }

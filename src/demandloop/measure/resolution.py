"""How well anonymous visits were matched to accounts, against a known truth (simulation).

Population: page views sent without a user id (anonymous at the time). A visit is *right*
when its resolved account is its true account, *wrong* when it names another account (or any
account for traffic that belongs to none), *unresolved* otherwise.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def truth_visitors(truth: dict[str, Any]) -> dict[str, str]:
    """anonymous id -> true account domain, from a simulation's truth.json."""
    domain = {a["account_id"]: a["domain"] for a in truth["accounts"]}
    out = {d: domain[p["account_id"]] for p in truth["people"] for d in p["anonymous_ids"]}
    out.update({anon: domain[acc] for anon, acc in truth.get("other_visitors", {}).items()})
    return out


def evaluate(visits: pd.DataFrame, truth: dict[str, str]) -> dict[str, float]:
    """*visits*: ``anonymous_id, account_id`` (resolved, may be null) per anonymous page view.

    Returns counts and shares: ``right_share`` (of visits that belong to an account),
    ``wrong_share`` (of all visits) and ``wrong_of_resolved``.
    """
    true = visits["anonymous_id"].map(truth)
    resolved = visits["account_id"].notna()
    right = resolved & (visits["account_id"] == true)
    wrong = resolved & ~right
    n, belong = len(visits), int(true.notna().sum())
    return {
        "visits": n, "belong_to_account": belong, "resolved": int(resolved.sum()),
        "right": int(right.sum()), "wrong": int(wrong.sum()),
        "right_share": float(right.sum() / belong) if belong else 0.0,
        "wrong_share": float(wrong.sum() / n) if n else 0.0,
        "wrong_of_resolved": float(wrong.sum() / resolved.sum()) if resolved.any() else 0.0,
    }

"""Predictive scoring: calibrated probabilities learned from the user's own outcomes.

A logistic regression (scikit-learn) on one-hot categorical and standardised numeric
features, probability-calibrated (isotonic, cross-validated) so "0.3" means about three in ten
convert. Per-feature contributions (coefficient x standardised value) explain each
prediction. Evaluation is always on a **time split**: trained on earlier records, measured on
later ones, reporting AUC and the Brier score (and the same for a baseline).

Two uses ship:

* :func:`train_accounts` — predictive fit: won vs lost / never-opportunity accounts from their
  firmographics (``demandloop fit train``);
* :func:`train_leads` — lead scoring, e.g. Olist MQLs won vs not, against an origin-only
  baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from demandloop.errors import UsageError

# scikit-learn (with the scipy.stats it loads) is imported where a model is trained: it
# took 0.6 s of the 1.6 s every CLI command spent importing, for two commands that use it
if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


@dataclass
class Report:
    """Held-out quality of a model and of its baseline."""

    train_rows: int
    test_rows: int
    test_positives: int
    auc: float
    brier: float
    baseline_auc: float
    baseline_brier: float
    split: str
    calibration: list[dict[str, float]] = field(default_factory=list)


def _pipeline(categorical: list[str], numeric: list[str]) -> Pipeline:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=5), categorical),
        ("num", StandardScaler(), numeric),
    ])
    return Pipeline([("pre", pre), ("lr", LogisticRegression(max_iter=2000, C=1.0))])


def _fit_calibrated(x: pd.DataFrame, y: np.ndarray, categorical: list[str],
                    numeric: list[str]) -> Any:
    from sklearn.calibration import CalibratedClassifierCV

    base = _pipeline(categorical, numeric)
    positives = int(y.sum())
    if positives < 5 or positives > len(y) - 5:
        raise UsageError(f"too few examples of each outcome to learn from ({positives} "
                         f"positive of {len(y)})", hint="import more history")
    cv = min(5, positives, len(y) - positives)
    model = CalibratedClassifierCV(base, method="isotonic" if positives >= 50 else "sigmoid",
                                   cv=cv)
    return model.fit(x, y)


def calibration_table(p: np.ndarray, y: np.ndarray, bins: int = 5) -> list[dict[str, float]]:
    """Mean predicted vs observed rate in quantile bins of the prediction."""
    df = pd.DataFrame({"p": p, "y": y})
    df["bin"] = pd.qcut(df["p"].rank(method="first"), bins, labels=False)
    g = df.groupby("bin").agg(predicted=("p", "mean"), observed=("y", "mean"), n=("y", "size"))
    return [{"predicted": float(p_), "observed": float(o_), "n": int(n_)}
            for p_, o_, n_ in zip(g["predicted"], g["observed"], g["n"], strict=True)]


def evaluate(frame: pd.DataFrame, label: str, time_col: str, split: pd.Timestamp,
             categorical: list[str], numeric: list[str], baseline_categorical: list[str],
             baseline_numeric: list[str] | None = None) -> tuple[Any, Report]:
    """Train on rows before *split*, test on rows from it; the same for the baseline."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    train = frame[frame[time_col] < split]
    test = frame[frame[time_col] >= split]
    if train.empty or test.empty:
        raise UsageError(f"the time split at {split:%Y-%m-%d} leaves no training or no test "
                         "rows", hint="choose a split inside the data's time range")
    y_train, y_test = train[label].to_numpy(int), test[label].to_numpy(int)
    model = _fit_calibrated(train, y_train, categorical, numeric)
    base = _fit_calibrated(train, y_train, baseline_categorical, baseline_numeric or [])
    p, pb = model.predict_proba(test)[:, 1], base.predict_proba(test)[:, 1]
    both = len(set(y_test)) == 2
    report = Report(
        train_rows=len(train), test_rows=len(test), test_positives=int(y_test.sum()),
        auc=float(roc_auc_score(y_test, p)) if both else float("nan"),
        brier=float(brier_score_loss(y_test, p)),
        baseline_auc=float(roc_auc_score(y_test, pb)) if both else float("nan"),
        baseline_brier=float(brier_score_loss(y_test, pb)),
        split=f"{split:%Y-%m-%d}", calibration=calibration_table(p, y_test),
    )
    return model, report


def contributions(model: Any, row: pd.DataFrame) -> list[tuple[str, float]]:
    """Per-feature contributions (log-odds) of one row, largest magnitude first, averaged
    over the calibration folds' underlying logistic regressions."""
    totals: dict[str, float] = {}
    fitted = model.calibrated_classifiers_
    for cc in fitted:
        pipe = cc.estimator
        pre, lr = pipe.named_steps["pre"], pipe.named_steps["lr"]
        values = pre.transform(row)
        values = values.toarray() if hasattr(values, "toarray") else np.asarray(values)
        for name, v, c in zip(pre.get_feature_names_out(), values[0], lr.coef_[0],
                              strict=True):
            if v:
                totals[name] = totals.get(name, 0.0) + float(v * c) / len(fitted)
    return sorted(totals.items(), key=lambda kv: -abs(kv[1]))


def lead_frame(leads: pd.DataFrame, top_pages: int = 20) -> pd.DataFrame:
    """Features of leads: origin, landing page (the most common ones), month, weekday."""
    f = leads.copy()
    f["origin"] = f["origin"].fillna("(none)")
    common = f["landing_page"].value_counts().head(top_pages).index
    f["page"] = f["landing_page"].where(f["landing_page"].isin(common), "(other)")
    f["month"] = f["created_at"].dt.month.astype(str)
    f["weekday"] = f["created_at"].dt.day_of_week.astype(str)
    return f


def train_leads(leads: pd.DataFrame, split: pd.Timestamp) -> tuple[Any, Report]:
    """Lead scoring (won vs not) against an origin-only baseline, on a time split."""
    f = lead_frame(leads)
    return evaluate(f, "won", "created_at", split, ["origin", "page", "weekday"], [],
                    ["origin"])


def account_frame(accounts: pd.DataFrame) -> pd.DataFrame:
    f = accounts.copy()
    f["log_employees"] = np.log1p(f["employees"].fillna(0).astype(float))
    f["log_revenue"] = np.log1p(f["revenue"].fillna(0).astype(float))
    for col in ("industry", "country"):
        f[col] = f[col].fillna("(none)")
    techs = sorted({t for ts in f["technologies"] if isinstance(ts, list | np.ndarray)
                    for t in ts})
    for t in techs:
        f[f"tech_{t}"] = f["technologies"].map(
            lambda ts, t=t: float(t in ts) if isinstance(ts, list | np.ndarray) else 0.0)
    return f


def train_accounts(accounts: pd.DataFrame, split: pd.Timestamp) -> tuple[Any, Report]:
    """Predictive fit: won vs not, from firmographics; baseline: industry alone.

    *accounts* has firmographics plus ``won`` (0/1) and ``decided_at`` (the account's
    cohort time, see :func:`account_outcomes`).
    """
    f = account_frame(accounts)
    techs = [c for c in f.columns if c.startswith("tech_")]
    return evaluate(f, "won", "decided_at", split, ["industry", "country"],
                    ["log_employees", "log_revenue", *techs], ["industry"])


def account_outcomes(store: Any) -> pd.DataFrame:
    """Accounts with firmographics, ``won`` (by now) and ``decided_at``, which is when the
    account was first seen (first touch, else when it was imported): the time split is then
    by cohort, so the model is tested on accounts that arrived after everything it learnt
    from. Accounts whose only opportunities are still open are left out (no outcome yet)."""
    with store.reader() as cur:
        frame: pd.DataFrame = cur.execute(
            """
            WITH o AS (
                SELECT account_id, bool_or(won AND is_closed) AS won,
                       max(closed_at) FILTER (WHERE is_closed) AS closed_at,
                       bool_and(NOT is_closed) AS only_open
                FROM opportunities WHERE workspace_id = $ws GROUP BY account_id),
            t AS (SELECT account_id, min(ts) AS first_seen FROM touches
                  WHERE workspace_id = $ws AND account_id IS NOT NULL GROUP BY account_id)
            SELECT a.account_id, a.industry, a.country, a.employees, a.revenue, a.technologies,
                   coalesce(o.won, false)::INT AS won,
                   coalesce(t.first_seen, a.created_at) AS decided_at
            FROM accounts a LEFT JOIN o USING (account_id) LEFT JOIN t USING (account_id)
            WHERE a.workspace_id = $ws AND NOT coalesce(o.only_open, false)
              AND (a.industry IS NOT NULL OR a.employees IS NOT NULL)
            """, {"ws": store.workspace_id}).df()
    return frame

"""Predictive scoring: calibrated probabilities learned from the user's own outcomes.

A logistic regression (scikit-learn) on one-hot categorical and standardised numeric
features, probability-calibrated (isotonic, cross-validated) so "0.3" means about three in ten
convert. Per-feature contributions (coefficient x standardised value) explain each
prediction.

Evaluation is point in time (:func:`snapshot`): at a date, the rows known then whose outcome
has not happened yet, labelled by whether it happens in the next ``horizon`` days. The model
is trained on the snapshot one horizon before the split (so its labels end at the split)
and tested on the snapshot at the split: no training row uses anything from after the split,
and calibration is measured on the held-out snapshot. AUC and the Brier score are reported,
with the same for a baseline.

Two uses ship:

* :func:`train_accounts` — predictive fit: will an account open an opportunity in the next
  90 days, from its firmographics and how it came in (``demandloop fit train``);
* :func:`train_leads` — lead scoring: will an open lead be won in the next 90 days, e.g.
  Olist MQLs, against an origin-only baseline (``demandloop report lead-scoring``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from demandloop.errors import UsageError

# scikit-learn (with the scipy.stats it loads) is imported where a model is trained: it
# took 0.6 s of the 1.6 s every CLI command spent importing, for two commands that use it
if TYPE_CHECKING:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import Pipeline

#: a snapshot (and the training snapshot, for choices such as the common pages) ->
#: model columns
Features = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]


@dataclass
class Report:
    """Held-out quality of a model and of its baseline.

    The model was trained on the snapshot at ``train_at`` (rows known then, labelled by what
    happened in the ``horizon_days`` after it, all before ``split``) and tested on the
    snapshot at ``split`` (labelled by the ``horizon_days`` after it)."""

    train_rows: int
    test_rows: int
    test_positives: int
    auc: float
    brier: float
    baseline_auc: float
    baseline_brier: float
    split: str
    calibration: list[dict[str, float]] = field(default_factory=list)
    train_at: str = ""
    horizon_days: int = 0
    train_positives: int = 0
    label: str = ""
    #: mean predicted probability and observed rate on the test snapshot
    mean_predicted: float = float("nan")
    observed_rate: float = float("nan")


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
                    numeric: list[str]) -> CalibratedClassifierCV:
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


def snapshot(rows: pd.DataFrame, events: pd.DataFrame, at: pd.Timestamp,
             horizon_days: int) -> pd.DataFrame:
    """The rows of *rows* (``id``, ``known_at``, features) known at *at* whose outcome has
    not happened by then, with ``label`` 1 when it happens in the *horizon_days* after *at*,
    and ``age_days`` (days known at *at*). *events* has ``id``, ``at``: when each outcome
    (an opportunity opened, a deal won) happened; an id may have several.

    What a row may use is fixed at *at*: it is known by then and its features are those
    known by then; only the label looks after *at*, never beyond ``at + horizon_days``."""
    end = at + pd.Timedelta(days=horizon_days)
    before = set(events.loc[events["at"] <= at, "id"])
    within = set(events.loc[(events["at"] > at) & (events["at"] <= end), "id"])
    known = rows[(rows["known_at"] <= at) & ~rows["id"].isin(before)].copy()
    known["label"] = known["id"].isin(within).astype(int)
    known["age_days"] = (at - known["known_at"]).dt.days.astype(float)
    return known


def default_split(rows: pd.DataFrame, events: pd.DataFrame, horizon_days: int,
                  end: pd.Timestamp) -> pd.Timestamp:
    """The latest split whose test window ends by *end* (the last date with data): the test
    snapshot is then as recent as can be judged, and training looks one window earlier,
    which must hold outcomes (*events*) too."""
    h = pd.Timedelta(days=horizon_days)
    split = (end - h).normalize()
    first = events["at"].min() if not events.empty else pd.NaT
    if pd.isna(first) or split <= first:
        span = (end - first).days if pd.notna(first) else 0
        suggest = max(span // 2 - 1, 0)
        raise UsageError(
            f"a {horizon_days}-day outcome needs a window before the split to learn from and "
            f"one after it to test on; the outcomes recorded span {span} days"
            + (f" ({first:%Y-%m-%d} to {end:%Y-%m-%d})" if pd.notna(first) else ""),
            hint=f"use --horizon {suggest} or less" if suggest >= 7 else
            "import more history (opportunities or won deals with their dates)")
    return split


def chosen_split(split: pd.Timestamp, rows: pd.DataFrame, events: pd.DataFrame,
                 horizon_days: int, end: pd.Timestamp) -> pd.Timestamp:
    """*split* when its test window (``split`` to ``split + horizon``) has ended by *end*
    (the last date with data); else the UsageError naming the latest split that has. Its
    test rows' outcomes are otherwise not all known yet: one still to come counts as none,
    and the held-out AUC and observed rate it reports are wrong, point in time."""
    ends = split + pd.Timedelta(days=horizon_days)
    if ends > end:
        try:
            hint = f"use --split {default_split(rows, events, horizon_days, end):%Y-%m-%d} " \
                "or earlier"
        except UsageError as exc:  # (no split has ended: what default_split advises)
            hint = exc.hint or exc.message
        raise UsageError(f"the split at {split:%Y-%m-%d} is judged on outcomes up to "
                         f"{ends:%Y-%m-%d}, after the last data ({end:%Y-%m-%d}): outcomes "
                         "not seen yet would count as none", hint=hint)
    return split


def evaluate(rows: pd.DataFrame, events: pd.DataFrame, split: pd.Timestamp,
             horizon_days: int, features: Features, categorical: list[str],
             numeric: list[str], baseline_categorical: list[str], label: str
             ) -> tuple[CalibratedClassifierCV, Report, pd.DataFrame]:
    """Train on the snapshot at ``split - horizon`` (its labels end at *split*) and test on
    the snapshot at *split*; the same for the baseline. *features* turns a snapshot (and
    the training snapshot, for choices such as the common pages) into model columns.
    Returns the model, its report and the training rows."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    train_at = split - pd.Timedelta(days=horizon_days)
    train = snapshot(rows, events, train_at, horizon_days)
    test = snapshot(rows, events, split, horizon_days)
    if train.empty or test.empty:
        raise UsageError(f"the split at {split:%Y-%m-%d} leaves no rows to train on (known "
                         f"by {train_at:%Y-%m-%d}) or to test on",
                         hint="choose a split inside the data's time range")
    x_train, x_test = features(train, train), features(test, train)
    y_train, y_test = train["label"].to_numpy(int), test["label"].to_numpy(int)
    if y_train.sum() < 5 or y_train.sum() > len(y_train) - 5:
        raise UsageError(
            f"the training snapshot at {train_at:%Y-%m-%d} has {int(y_train.sum())} of "
            f"{len(y_train):,} rows with {label}: at least 5 of each outcome are needed",
            hint="choose a later --split or a shorter --horizon")
    model = _fit_calibrated(x_train, y_train, categorical, numeric)
    base = _fit_calibrated(x_train, y_train, baseline_categorical, [])
    p, pb = model.predict_proba(x_test)[:, 1], base.predict_proba(x_test)[:, 1]
    both = len(set(y_test)) == 2
    report = Report(
        train_rows=len(train), test_rows=len(test), test_positives=int(y_test.sum()),
        auc=float(roc_auc_score(y_test, p)) if both else float("nan"),
        brier=float(brier_score_loss(y_test, p)),
        baseline_auc=float(roc_auc_score(y_test, pb)) if both else float("nan"),
        baseline_brier=float(brier_score_loss(y_test, pb)),
        split=f"{split:%Y-%m-%d}", calibration=calibration_table(p, y_test),
        train_at=f"{train_at:%Y-%m-%d}", horizon_days=horizon_days,
        train_positives=int(y_train.sum()), label=label,
        mean_predicted=float(p.mean()), observed_rate=float(y_test.mean()),
    )
    return model, report, train


def contributions(model: CalibratedClassifierCV, frame: pd.DataFrame, top: int | None = None
                  ) -> list[list[tuple[str, float]]]:
    """Per row of *frame*, its per-feature contributions (log-odds), largest magnitude
    first (the first *top*), averaged over the calibration folds' underlying logistic
    regressions. Computed for all rows at once: one transform per fold, not per row."""
    fitted = model.calibrated_classifiers_
    total: np.ndarray | None = None
    names: np.ndarray | None = None
    for cc in fitted:
        pipe = cc.estimator
        pre, lr = pipe.named_steps["pre"], pipe.named_steps["lr"]
        values = pre.transform(frame)
        values = values.toarray() if hasattr(values, "toarray") else np.asarray(values)
        part = values * lr.coef_[0] / len(fitted)
        fold_names = pre.get_feature_names_out()
        if total is None:
            total, names = part, fold_names
        else:
            # folds may one-hot different categories: align on the names
            assert names is not None
            union = np.union1d(names, fold_names)
            merged = np.zeros((len(frame), len(union)))
            merged[:, np.searchsorted(union, names)] += total
            merged[:, np.searchsorted(union, fold_names)] += part
            total, names = merged, union
    assert total is not None and names is not None
    out = []
    for row in total:
        nonzero = np.flatnonzero(row)
        order = nonzero[np.argsort(-np.abs(row[nonzero]), kind="stable")][:top]
        out.append([(str(names[i]), float(row[i])) for i in order])
    return out


def lead_features(snap: pd.DataFrame, train: pd.DataFrame, top_pages: int = 20
                  ) -> pd.DataFrame:
    """Model columns of a lead snapshot: origin, landing page (the *top_pages* most common
    in the training snapshot *train*, never chosen with the test rows), first-contact
    weekday and days since first contact."""
    f = snap.copy()
    f["origin"] = f["origin"].fillna("(none)")
    common = set(train["landing_page"].value_counts().head(top_pages).index)
    f["page"] = f["landing_page"].where(f["landing_page"].isin(common), "(other)")
    f["weekday"] = f["known_at"].dt.day_of_week.astype(str)
    f["log_age"] = np.log1p(f["age_days"])
    return f


def train_leads(leads: pd.DataFrame, wins: pd.DataFrame, split: pd.Timestamp,
                horizon_days: int) -> tuple[CalibratedClassifierCV, Report, pd.DataFrame]:
    """Lead scoring: will an open lead be won in the next *horizon_days*? Against an
    origin-only baseline. *leads*: ``id, known_at, origin, landing_page``; *wins*: ``id,
    at``."""
    return evaluate(leads, wins, split, horizon_days, lead_features,
                    ["origin", "page", "weekday"], ["log_age"], ["origin"],
                    f"won within {horizon_days} days")


def account_features(snap: pd.DataFrame, train: pd.DataFrame | None = None,
                     top_pages: int = 20) -> pd.DataFrame:
    """Model columns of an account snapshot: firmographics (industry, country, log
    employees and revenue, one column per technology) and how it first came in (its first
    lead's origin and landing page, the common pages chosen in *train*)."""
    f = snap.copy()
    f["log_employees"] = np.log1p(f["employees"].fillna(0).astype(float))
    f["log_revenue"] = np.log1p(f["revenue"].fillna(0).astype(float))
    for col in ("industry", "country", "origin"):
        f[col] = f[col].fillna("(none)")
    pages = (train if train is not None else snap)["landing_page"]
    common = set(pages.value_counts().head(top_pages).index)
    f["page"] = f["landing_page"].where(f["landing_page"].isin(common), "(other)")
    for t in technology_columns(f):
        name = t.removeprefix("tech_")
        f[t] = f["technologies"].map(
            lambda ts, n=name: float(n in ts) if isinstance(ts, list | np.ndarray) else 0.0)
    return f


def technology_columns(f: pd.DataFrame) -> list[str]:
    """One ``tech_<name>`` column per technology any account of *f* uses."""
    return [f"tech_{t}" for t in sorted({t for ts in f["technologies"]
                                         if isinstance(ts, list | np.ndarray) for t in ts})]


def train_accounts(accounts: pd.DataFrame, opportunities: pd.DataFrame, split: pd.Timestamp,
                   horizon_days: int) -> tuple[CalibratedClassifierCV, Report, pd.DataFrame]:
    """Predictive fit: will an account open an opportunity in the next *horizon_days*?
    From firmographics and how it came in; baseline: industry alone. *accounts*: ``id,
    known_at``, firmographics, ``origin, landing_page`` (of its first lead, if any) and
    ``lead_at`` (when that lead came); *opportunities*: ``id, at`` (opened)."""
    techs = technology_columns(accounts)

    def features(snap: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
        # a lead that came after the snapshot is not known at it
        at = snap["known_at"] + pd.to_timedelta(snap["age_days"], unit="D")
        late = snap["lead_at"].isna() | (snap["lead_at"] > at)
        snap = snap.assign(origin=snap["origin"].where(~late), landing_page=snap[
            "landing_page"].where(~late))
        out = account_features(snap, train)
        for t in techs:
            if t not in out:
                out[t] = 0.0
        return out

    return evaluate(accounts, opportunities, split, horizon_days, features,
                    ["industry", "country", "origin", "page"],
                    ["log_employees", "log_revenue", *techs], ["industry"],
                    f"an opportunity opened within {horizon_days} days")

"""The account funnel: reach -> engaged -> MQL -> MQA -> opportunity -> won.

One row per account (:func:`milestones`) holds the date it first reached each stage, then
:func:`funnel` counts accounts per stage, conversion rates between consecutive stages and
velocity (median days between them) overall or by a dimension: source channel, motion, fit
band, industry, size, target flag or monthly cohort. When spend is known, the channel view
adds cost per MQL (CPL), cost per opportunity and ROI.

Where the dates come from (one shared definition with scoring and routing):

* reached: the first touch of the account, or its first lead (a CRM/Olist lead counts as
  reach and as MQL);
* engaged, MQA: the first stage change into that stage or a later one (``stage_changes``,
  written by every ``score`` run; ``score --backfill`` fills history);
* MQL: the first lead of the account, or the first of its people to become MQL;
* opportunity: the first opportunity's creation (its close date when the CRM has no creation
  date, as in Olist); won: the first won opportunity's close.

A stage counts every account that reached it *or any later one* (an account that went
straight to an opportunity was reached and engaged), so each stage is within the previous
one and conversion rates stay between 0 and 1. Velocity uses these "at least" dates too,
over the accounts seen in the earlier stage before the later one: two stages first recorded
at the same moment (one scoring run saw the account pass both, or it skipped the earlier)
have no time between them to measure, and counting them as 0 days made the median of a
funnel scored every 14 days 0.0 for most steps.

Example:
    >>> import pandas as pd
    >>> m = pd.DataFrame({"account_id": ["a", "b"],
    ...     "reached_at": pd.to_datetime(["2026-01-01", "2026-01-02"]),
    ...     "won_at": pd.to_datetime(["2026-01-11", None])})
    >>> f = funnel(m)
    >>> f.loc[0, ["reached", "won", "reached_to_won", "days_reached_to_won"]].tolist()
    [2.0, 1.0, 0.5, 10.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from demandloop.measure.names import STAGES, dimension

SIZE_BANDS: tuple[tuple[int, str], ...] = ((50, "1-49"), (200, "50-199"), (1000, "200-999"),
                                           (5000, "1000-4999"))


def size_band(employees: pd.Series) -> pd.Series:
    """Employee-count bands as sales teams segment (SMB, mid-market, enterprise)."""
    e = pd.to_numeric(employees, errors="coerce")
    out = pd.Series("(unknown)", index=e.index, dtype=object)
    out[e.notna()] = "5000+"
    for limit, name in reversed(SIZE_BANDS):
        out[e.notna() & (e < limit)] = name
    return out


def _first(frame: pd.DataFrame, key: str, ts: str) -> pd.Series:
    if frame.empty:
        return pd.Series(dtype="datetime64[us]")
    return frame.dropna(subset=[key, ts]).groupby(key)[ts].min()


def milestones(*, accounts: pd.DataFrame, firsts: pd.DataFrame, leads: pd.DataFrame,
               opportunities: pd.DataFrame, stage_changes: pd.DataFrame,
               person_accounts: pd.DataFrame, engaged_stages: Sequence[str],
               mqa_stages: Sequence[str], scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per account with its stage dates and dimensions (see the module docstring).

    *accounts*: account_id, industry, employees, target; *firsts*: per account touched, its
    first touch's ts, channel and motion, and its people
    (:func:`demandloop.measure.inputs.account_firsts`); *leads*: account_id, created_at,
    channel; *opportunities*: account_id, created_at, closed_at, won, amount;
    *stage_changes*: entity, entity_id, to_stage, changed_at; *person_accounts*: person_id,
    account_id; *scores*: account_id, fit, band (the latest scores, optional)."""
    first_touch = firsts.set_index("account_id")
    ld = leads[leads["account_id"].notna()].sort_values("created_at", kind="stable")
    first_lead = ld.dropna(subset=["created_at"]).drop_duplicates("account_id").set_index(
        "account_id")
    acc_changes = stage_changes[stage_changes["entity"] == "account"]
    person_mql = stage_changes[(stage_changes["entity"] == "person")
                               & (stage_changes["to_stage"] == "mql")]
    person_mql = person_mql.merge(person_accounts, left_on="entity_id", right_on="person_id")
    o = opportunities[opportunities["account_id"].notna()].copy()
    o["opened"] = o["created_at"].fillna(o["closed_at"])
    won = o[o["won"].fillna(False).astype(bool)]
    ids = pd.Index(sorted(set(accounts["account_id"]) | set(first_touch.index)
                          | set(first_lead.index) | set(o["account_id"])), name="account_id")
    m = pd.DataFrame(index=ids)
    m["reached_at"] = pd.concat([first_touch["ts"], first_lead["created_at"]], axis=1).min(axis=1)
    m["engaged_at"] = _first(acc_changes[acc_changes["to_stage"].isin(engaged_stages)],
                             "entity_id", "changed_at")
    m["mql_at"] = pd.concat([first_lead["created_at"],
                             _first(person_mql, "account_id", "changed_at")], axis=1).min(axis=1)
    m["mqa_at"] = _first(acc_changes[acc_changes["to_stage"].isin(mqa_stages)], "entity_id",
                         "changed_at")
    m["opportunity_at"] = _first(o, "account_id", "opened")
    m["won_at"] = _first(won, "account_id", "closed_at")
    m["mqls"] = ld.groupby("account_id").size().add(
        person_mql.drop_duplicates("entity_id").groupby("account_id").size(), fill_value=0)
    m["people"] = first_touch["people"]
    m["pipeline"] = o.groupby("account_id")["amount"].sum()
    m["revenue"] = won.groupby("account_id")["amount"].sum()
    m = m.fillna({"mqls": 0, "people": 0, "pipeline": 0.0, "revenue": 0.0})
    src = first_touch["channel"].combine_first(first_lead["channel"]) if len(
        first_lead) else first_touch["channel"]
    m["channel"] = src.reindex(ids).fillna("(none)")
    motion = first_touch["motion"] if "motion" in first_touch else pd.Series(dtype=object)
    m["motion"] = motion.reindex(ids).fillna("(none)")
    a = accounts.set_index("account_id").reindex(ids)
    m["industry"] = a["industry"].fillna("(unknown)")
    m["size"] = size_band(a["employees"])
    m["target"] = a["target"].fillna(False).astype(bool)
    if scores is not None and len(scores):
        s = scores.set_index("account_id").reindex(ids)
        m["fit"] = s["fit"]
        m["band"] = s["band"].fillna("(unscored)")
    else:
        m["fit"], m["band"] = np.nan, "(unscored)"
    m["cohort"] = m["reached_at"].dt.strftime("%Y-%m").fillna("(none)")
    return m.reset_index()


def _at_least(m: pd.DataFrame) -> pd.DataFrame:
    """Stage dates as 'reached this stage or any later one' (backward running minimum)."""
    cols = [f"{s}_at" for s in STAGES]
    d = pd.DataFrame({c: pd.to_datetime(m[c]) if c in m else pd.NaT for c in cols},
                     index=m.index)
    for i in range(len(cols) - 2, -1, -1):
        d[cols[i]] = d[[cols[i], cols[i + 1]]].min(axis=1)
    return d


def funnel(m: pd.DataFrame, by: str | None = None, spend: pd.DataFrame | None = None
           ) -> pd.DataFrame:
    """Counts, stage-to-stage conversion and velocity per group of *by* (all accounts when
    None). With *spend* (channel, spend) and ``by="channel"``: spend, cpl, cost_per_opp,
    roi. Columns: the group, one count per stage, ``X_to_Y`` rates, ``days_X_to_Y``
    medians, ``reached_to_won``, pipeline, revenue, people, mqls."""
    by = dimension(by)
    d = _at_least(m)
    key = m[by] if by else pd.Series("all", index=m.index)
    rows = []
    # all accounts form one group even when there are none (a new workspace: zeros);
    # a breakdown of nothing has no groups, but still every column
    groups = list(key.groupby(key, sort=True).groups.items()) if by else [("all", m.index)]
    for group, idx in groups or [(None, m.index[:0])]:
        g = d.loc[idx]
        row: dict[str, object] = {by or "group": group}
        counts = {s: int(g[f"{s}_at"].notna().sum()) for s in STAGES}
        row.update(counts)
        present = [s for s in STAGES if f"{s}_at" in m]
        for a, b in zip(present, present[1:], strict=False):
            row[f"{a}_to_{b}"] = counts[b] / counts[a] if counts[a] else np.nan
            # (NaT compares False: both dates are known)
            seen = g[f"{a}_at"] < g[f"{b}_at"]
            days = (g.loc[seen, f"{b}_at"] - g.loc[seen, f"{a}_at"]).dt.total_seconds() / 86400
            row[f"days_{a}_to_{b}"] = float(days.median()) if seen.any() else np.nan
        row["reached_to_won"] = counts["won"] / counts["reached"] if counts["reached"] else np.nan
        both = g["reached_at"].notna() & g["won_at"].notna()
        days = (g.loc[both, "won_at"] - g.loc[both, "reached_at"]).dt.total_seconds() / 86400
        row["days_reached_to_won"] = float(days.median()) if both.any() else np.nan
        for col in ("pipeline", "revenue", "people", "mqls"):
            if col in m:
                row[col] = float(m.loc[idx, col].sum())
        rows.append(row)
    out = pd.DataFrame(rows)
    if not groups:
        out = out.iloc[:0]
    if by and len(out):  # groups no account of which was reached (CRM-only accounts)
        out = out[out["reached"] > 0]
    if spend is not None and by == "channel" and len(out):
        cost = spend.groupby("channel")["spend"].sum()
        out["spend"] = out["channel"].map(cost).fillna(0.0)
        mqls = out["mqls"] if "mqls" in out else out["mql"]
        out["cpl"] = (out["spend"] / mqls.where(mqls > 0)).where(out["spend"] > 0)
        out["cost_per_opp"] = (out["spend"] / out["opportunity"].where(
            out["opportunity"] > 0)).where(out["spend"] > 0)
        out["roi"] = ((out["revenue"] - out["spend"]) / out["spend"].where(out["spend"] > 0))
    if by:
        # cohorts read in time order; other breakdowns largest first
        order = ([by], [True]) if by == "cohort" else (["reached", by], [False, True])
        out = out.sort_values(order[0], ascending=order[1]).reset_index(drop=True)
    return out

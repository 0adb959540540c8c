"""Intent surge: an account's recent engagement against its own trailing baseline.

Over the capped touch weights of :mod:`demandloop.score.engagement`::

    recent   = sum of weights in the last ``recent_days`` (default 7)
    expected = sum of weights in the ``baseline_days`` before that (default 90)
               scaled to ``recent_days``
    surge    = (recent + smoothing) / (expected + smoothing)

An account (or an account-topic pair) **surges** when ``surge >= threshold`` (default 2.0:
twice its usual level) and ``recent >= min_recent`` (default 5 weight units, about five page
views or one form), so a single visit from a quiet account is not a surge. The smoothing
(default 3) keeps brand-new accounts from surging on their first touch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from demandloop.score.engagement import EngagementRules, cap_cuts, with_cuts


@dataclass(frozen=True)
class SurgeRules:
    recent_days: int = 7
    baseline_days: int = 90
    smoothing: float = 3.0
    threshold: float = 2.0
    min_recent: float = 5.0


def surge(touches: ir.Table, engagement: EngagementRules, rules: SurgeRules, at: dt.datetime,
          by_topic: bool = False) -> ir.Table:
    """Ibis table: ``account_id[, topic], recent, expected, surge, surging``."""
    t = touches.filter(touches.account_id.notnull())
    if by_topic:
        t = t.filter(t.topic.notnull())
    rows = with_cuts(t, cap_cuts(touches, engagement), ["account_id", "topic", "ts"])
    if by_topic:  # cuts of topic-less touches are in ``rows`` too; they belong to no topic
        rows = rows.filter(rows.topic.notnull())
    return surge_from(rows, rules, at, by_topic)


def windows(rules: SurgeRules, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The starts of the recent and the baseline windows before *at*."""
    start_recent = at - dt.timedelta(days=rules.recent_days)
    return start_recent, start_recent - dt.timedelta(days=rules.baseline_days)


def window_sums(rows: ir.Table, rules: SurgeRules, at: dt.datetime
                ) -> dict[str, ir.FloatingScalar]:
    """The capped sums ``recent`` and ``base`` of the two windows, as Ibis aggregates over
    :func:`demandloop.score.engagement.with_cuts` rows up to *at*."""
    start_recent, start_base = windows(rules, at)
    in_recent = rows.ts > ibis.literal(start_recent)
    in_base = ~in_recent & (rows.ts > ibis.literal(start_base))
    return {"recent": in_recent.ifelse(rows.value, 0.0).sum(),
            "base": in_base.ifelse(rows.value, 0.0).sum()}


def surge_from(rows: ir.Table, rules: SurgeRules, at: dt.datetime,
               by_topic: bool = False) -> ir.Table:
    """Surge from capped rows (see :func:`demandloop.score.engagement.with_cuts`)."""
    _, start_base = windows(rules, at)
    t = rows.filter((rows.ts > ibis.literal(start_base)) & (rows.ts <= ibis.literal(at)))
    keys = [t.account_id, t.topic] if by_topic else [t.account_id]
    agg = t.group_by(keys).agg(**window_sums(t, rules, at))
    return surge_columns(agg, rules).drop("base")


def surge_columns(agg: ir.Table, rules: SurgeRules) -> ir.Table:
    """Add ``expected, surge, surging`` to a table with the capped sums ``recent`` (the
    recent window) and ``base`` (the baseline window)."""
    expected = agg.base * (rules.recent_days / rules.baseline_days)
    ratio = (agg.recent + rules.smoothing) / (expected + rules.smoothing)
    out = agg.mutate(expected=expected, surge=ratio)
    return out.mutate(surging=(out.surge >= rules.threshold) & (out.recent >= rules.min_recent))

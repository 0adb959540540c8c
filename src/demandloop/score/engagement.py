"""Engagement: exponentially time-decayed, capped, weighted sums of touches.

For an entity (an account or a person) at time ``T``::

    E(T) = sum_i  c_i * 2 ** (-(T - t_i) / half_life)

where ``c_i`` is touch *i*'s weight after the **daily cap** of its activity: within one
entity, one UTC day and one activity, touches count in time order until their weights reach
the cap, so a bot or a single fan reloading a page cannot inflate an account. Breadth (the
distinct people engaged) is reported beside the score.

The same definition runs two ways:

* :func:`batch_scores`, an Ibis expression over the ``touches`` table (DuckDB by default);
* :class:`Incremental`, an O(1)-per-touch update of a running state, for scoring signals as
  they arrive. A test asserts both agree to 1e-9.

Example:
    >>> inc = Incremental(EngagementRules(half_life_days=7.0, caps={}))
    >>> import datetime as dt
    >>> t0 = dt.datetime(2026, 1, 1)
    >>> inc.add("acme", "page_view", 1.0, t0)
    1.0
    >>> round(inc.score("acme", t0 + dt.timedelta(days=7)), 6)
    0.5
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class EngagementRules:
    """The shared definition: half-life and per-activity daily caps (weight units)."""

    half_life_days: float = 14.0
    caps: dict[str, float] = field(default_factory=lambda: {
        "page_view": 10.0, "high_intent_page": 15.0, "sales_email": 2.0, "form_fill": 10.0,
        "webinar_registration": 8.0, "webinar_attended": 12.0, "demo_request": 20.0,
        "trial": 16.0, "meeting_booked": 20.0, "sales_email_reply": 16.0,
    })
    default_cap: float = 10.0

    def cap(self, activity: str) -> float:
        return self.caps.get(activity, self.default_cap)


@dataclass
class _State:
    score: float = 0.0
    at: float = 0.0  # epoch seconds of the last update
    day: int = -1
    used: dict[str, float] = field(default_factory=dict)  # activity -> weight used today


def _epoch(ts: dt.datetime) -> float:
    """Seconds since the epoch; naive times are UTC, as the store keeps them."""
    return ts.replace(tzinfo=dt.UTC).timestamp() if ts.tzinfo is None else ts.timestamp()


class Incremental:
    """Running engagement per entity: each touch updates one entity's state in O(1).

    Touches of one entity must arrive in time order (ties broken by touch id), as they do
    from a collector; the state then equals the batch computation exactly (up to rounding).
    """

    def __init__(self, rules: EngagementRules) -> None:
        self.rules = rules
        self.lam = 1.0 / (rules.half_life_days * SECONDS_PER_DAY)
        self.states: dict[str, _State] = {}

    def add(self, entity: str, activity: str, weight: float, ts: dt.datetime) -> float:
        """Apply one touch; returns the capped weight it contributed."""
        s = self.states.get(entity)
        if s is None:
            s = self.states[entity] = _State()
        t = _epoch(ts)
        day = int(t // SECONDS_PER_DAY)
        if day != s.day:
            s.day, s.used = day, {}
        used = s.used.get(activity, 0.0)
        capped = max(0.0, min(weight, self.rules.cap(activity) - used))
        s.used[activity] = used + weight
        s.score = s.score * 2.0 ** (-(t - s.at) * self.lam) + capped if s.score else capped
        s.at = t
        return capped

    def score(self, entity: str, at: dt.datetime) -> float:
        """The entity's engagement at time *at* (0 for an unknown entity)."""
        s = self.states.get(entity)
        if s is None:
            return 0.0
        t = _epoch(at)
        return float(s.score * 2.0 ** (-(t - s.at) * self.lam))


def _cap(activity: ir.StringValue, rules: EngagementRules) -> ir.FloatingValue:
    return activity.cases(*[(k, v) for k, v in rules.caps.items()],
                          else_=rules.default_cap) if rules.caps else ibis.literal(
        rules.default_cap)


def capped_touches(touches: ir.Table, rules: EngagementRules,
                   entity: str = "account_id") -> ir.Table:
    """The touches of entities (non-null *entity*) with ``capped`` weight (Ibis): every
    touch through the running-sum window. Exact and simple, for a few entities (explain);
    scoring everyone uses :func:`cap_cuts` instead."""
    t = touches.filter(touches[entity].notnull())
    day = t.ts.truncate("D")
    # `seq` is the touch's rank by (time, touch id), given when touches are built: one
    # integer sorts much faster than a timestamp with a string tie-break (about 20 %)
    order = [t.seq] if "seq" in t.columns else [t.ts, t.touch_id]
    window = ibis.window(group_by=[t[entity], t.activity, day], order_by=order,
                         preceding=None, following=0)
    used_before = t.weight.sum().over(window) - t.weight
    capped = ibis.greatest(0.0, ibis.least(t.weight, _cap(t.activity, rules) - used_before))
    return t.mutate(capped=capped)


def cap_cuts(touches: ir.Table, rules: EngagementRules, entity: str = "account_id",
             candidates: ir.Table | None = None) -> ir.Table:
    """The touches the daily cap cuts, with ``delta = capped - weight`` (< 0) (Ibis).

    A touch is only ever cut inside an (entity, activity, day) whose weights add up to
    more than the cap, and those are rare (a bot, a fan reloading a page). So the ordered
    running-sum window, the costly part, runs on those groups' touches only, found by one
    grouped sum; every other touch counts its full weight. Any capped measure is then
    ``sum over touches of weight * f + sum over cuts of delta * f`` (see :func:`with_cuts`),
    which equals the per-touch definition exactly: 2-3x faster than windowing every touch.

    *candidates*, when given, replaces the grouped sum: touches that include every group
    over its cap whole (any others come out uncut), as :mod:`demandloop.score.caps` finds
    them on DuckDB.
    """
    keys = [entity, "activity", "_day"]
    if candidates is not None:
        hit = candidates.filter(candidates[entity].notnull())
    else:
        # Two separate scans of touches, not one shared relation: DuckDB would materialise
        # a shared one (all columns, every touch) before grouping, about 40 % of the cost.
        g = touches.select(entity, "activity", "ts", "weight")
        g = g.filter(g[entity].notnull()).mutate(_day=g.ts.truncate("D"))
        totals = g.group_by(keys).agg(_total=g.weight.sum(), _least=g.weight.min())
        # a negative weight counts 0 whatever the total (as in Incremental)
        over = totals.filter((totals._total > _cap(totals.activity, rules))
                             | (totals._least < 0)).select(keys)
        t = touches.filter(touches[entity].notnull()).mutate(_day=touches.ts.truncate("D"))
        # null-safe on activity: touches without one share a cap too
        hit = t.semi_join(over, [t[entity] == over[entity],
                                 t.activity.identical_to(over.activity),
                                 t._day == over._day]).drop("_day")
    capped = capped_touches(hit, rules, entity)
    cut = capped.mutate(delta=capped.capped - capped.weight)
    return cut.filter(cut.delta != 0).drop("capped")


def with_cuts(touches: ir.Table, cuts: ir.Table, columns: list[str]) -> ir.Table:
    """Touches (``value`` = weight, ``n`` = 1) stacked on their cuts (``value`` = delta,
    ``n`` = 0), keeping *columns*: sums of ``value`` are capped sums, sums of ``n`` count
    touches."""
    full = touches.select(*columns, value=touches.weight, n=ibis.literal(1))
    cut = cuts.select(*columns, value=cuts.delta, n=ibis.literal(0))
    # a stored NOT NULL column and its cached copy differ only in nullability
    schema = ibis.schema({k: v.copy(nullable=True) for k, v in full.schema().items()})
    return full.cast(schema).union(cut.cast(schema))


def decay(ts: ir.TimestampValue, rules: EngagementRules, at: dt.datetime) -> ir.FloatingValue:
    """The factor ``2 ** (-(at - ts) / half_life)`` of a touch at *ts* (Ibis).

    The age is counted in whole microseconds (the store's precision), the same on every
    backend: ``epoch_seconds`` is fractional on DuckDB but whole on Spark, which moved
    engagement by up to 3e-7 of itself between the two."""
    age = ibis.literal(at).delta(ts, unit="microsecond")
    return 2.0 ** (-age / (rules.half_life_days * SECONDS_PER_DAY * 1e6))


def batch_scores(touches: ir.Table, rules: EngagementRules, at: dt.datetime,
                 entity: str = "account_id") -> ir.Table:
    """Engagement of every entity at time *at*, over all touches up to *at* (Ibis table:
    ``entity, engagement, touches``)."""
    rows = with_cuts(touches.filter(touches[entity].notnull()),
                     cap_cuts(touches, rules, entity), [entity, "ts"])
    return decayed_sum(rows, rules, at, entity)


def decayed_sum(rows: ir.Table, rules: EngagementRules, at: dt.datetime,
                entity: str = "account_id") -> ir.Table:
    """Engagement from :func:`with_cuts` rows."""
    t = rows.filter(rows.ts <= at)
    return t.group_by(t[entity].name(entity)).agg(
        engagement=(t.value * decay(t.ts, rules, at)).sum(),
        touches=t.n.sum(),
    )


def breadth(touches: ir.Table, at: dt.datetime, days: int = 90) -> ir.Table:
    """Distinct known people engaged per account in the *days* before *at* (Ibis table:
    ``account_id, people``). Kept apart from the score: a distinct count over all history
    costs as much as the score itself and says less than a recent one."""
    t = touches.filter(touches.account_id.notnull() & (touches.ts <= at)
                       & (touches.ts > ibis.literal(at - dt.timedelta(days=days))))
    return t.group_by("account_id").agg(people=t.person_id.nunique())

"""Attribution on an engine: journeys, the rule-based models and the aggregated paths, as
Ibis expressions that DuckDB runs on the store and Spark on the Parquet lake.

The journeys are :mod:`.builders`' (its pandas functions are the reference this is tested
against): each touch of an account goes to the account's first opportunity created after
it, a person's journey ends at their first lead-creation touch, *lookback_days* cuts both.
Every step keeps its place in its journey (by time, then touch id), the journey's length,
its lead-creation step, its outcome and its end.

From the steps, each rule-based model of :mod:`.heuristics` is a share per step, summed per
channel where the steps are: only the credit table reaches the driver. Markov and Shapley
solve on the driver from the distinct paths with their counts (:func:`paths`), a few
thousand rows where the touches are millions. The shares are written here a second time,
as expressions over the step table; a test holds them to :mod:`.heuristics` on the same
journeys, model by model.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import ibis
import ibis.expr.datatypes as dt_
import ibis.expr.types as ir
import pandas as pd

from demandloop.compute import Tables, frame
from demandloop.errors import InputError
from demandloop.measure.attribution.heuristics import DIRECT_CHANNELS
from demandloop.measure.attribution.journeys import LEAD_ACTIVITIES, Journeys

_SECONDS_PER_DAY = 86400.0
#: every step of a step's journey
_JOURNEY = ibis.window(group_by="journey")


def _account_steps(t: Tables, outcome: str, lookback: int | None,
                   now: dt.datetime) -> ir.Table:
    touches = t.touches.filter(t.touches.account_id.notnull()).select(
        "touch_id", "account_id", "ts", "channel", "activity")
    o = t.opportunities
    opps = o.filter(o.created_at.notnull() & o.account_id.notnull()).select(
        opp_account=o.account_id, opportunity_id=o.opportunity_id, created_at=o.created_at,
        amount=o.amount, won=o.won)
    # each touch goes to its account's first opportunity created after it (then the
    # lowest id, as a merge_asof over opportunities in id order would)
    later = touches.join(opps, [touches.account_id == opps.opp_account,
                                opps.created_at > touches.ts]).select(
        "touch_id", "opportunity_id", "created_at", "amount", "won")
    first = later.mutate(r=ibis.row_number().over(
        group_by="touch_id", order_by=["created_at", "opportunity_id"])).filter(
        lambda x: x.r == 0).drop("r")
    won = first.won.fill_null(False).cast("boolean")
    converting = touches.join(first, "touch_id").select(
        "touch_id", "ts", "channel", "activity",
        journey=ibis.literal("opp:") + first.opportunity_id.cast("string"),
        end=first.created_at.cast(touches.ts.type()),
        converted=won if outcome == "won" else ibis.literal(True),
        value=first.amount.cast("float64"))
    # accounts touched but never given an opportunity: one journey each, not converting
    never = touches.anti_join(opps, touches.account_id == opps.opp_account)
    waiting = never.select(
        "touch_id", "ts", "channel", "activity",
        journey=ibis.literal("account:") + never.account_id.cast("string"),
        end=ibis.literal(now).cast(never.ts.type()), converted=ibis.literal(False),
        value=ibis.literal(0.0))
    steps = converting.union(waiting)
    if lookback is not None:
        steps = steps.filter(steps.ts >= steps.end - ibis.interval(days=lookback))
    return steps


def _person_steps(t: Tables, lookback: int | None, now: dt.datetime) -> ir.Table:
    tt = t.touches
    tt = tt.filter(tt.person_id.notnull() | tt.anonymous_id.notnull())
    key = tt.person_id.cast("string").fill_null(
        ibis.literal("anon:") + tt.anonymous_id.cast("string"))
    keyed = tt.select("touch_id", "ts", "channel", "activity", journey=key)
    is_lead = keyed.activity.isin(LEAD_ACTIVITIES)
    lead_ts = ibis.ifelse(is_lead, keyed.ts, ibis.null(keyed.ts.type().copy(nullable=True)))
    lead_at = keyed.mutate(first_lead=lead_ts.min().over(group_by="journey"))
    steps = lead_at.filter(lead_at.first_lead.isnull() | (lead_at.ts <= lead_at.first_lead))
    steps = steps.select(
        "touch_id", "ts", "channel", "activity", "journey",
        end=steps.first_lead.fill_null(ibis.literal(now).cast(steps.ts.type())),
        converted=steps.first_lead.notnull(), value=ibis.literal(0.0))
    if lookback is not None:
        steps = steps.filter(steps.ts >= steps.end - ibis.interval(days=lookback))
    return steps


def journey_steps(t: Tables, level: str = "account", outcome: str = "opportunity",
                  lookback_days: int | None = None,
                  now: dt.datetime | None = None) -> ir.Table:
    """Every step of every journey (see the module docstring): ``journey, touch_id, ts,
    channel, activity, end, converted, value, pos, n, lead`` (``pos`` from 0, ``lead`` the
    position of the journey's first lead-creation step, -1 without one). *now* ends the
    journeys not converted (default: the last touch of those considered)."""
    if level not in ("account", "person"):
        raise InputError(f"unknown attribution level '{level}'", hint="use account or person")
    if outcome not in ("opportunity", "won"):
        raise InputError(f"unknown outcome '{outcome}'", hint="use 'opportunity' or 'won'")
    if now is None:
        tt = t.touches
        considered = (tt.account_id.notnull() if level == "account"
                      else tt.person_id.notnull() | tt.anonymous_id.notnull())
        last = tt.filter(considered).ts.max().to_pyarrow().as_py()
        now = last if last is not None else dt.datetime.now(dt.UTC).replace(tzinfo=None)
    steps = (_account_steps(t, outcome, lookback_days, now) if level == "account"
             else _person_steps(t, lookback_days, now))
    in_order = ibis.window(group_by="journey", order_by=["ts", "touch_id"])
    placed = steps.mutate(pos=ibis.row_number().over(in_order),
                          n=steps.touch_id.count().over(_JOURNEY))
    lead = ibis.ifelse(placed.activity.isin(LEAD_ACTIVITIES), placed.pos,
                       ibis.null(placed.pos.type().copy(nullable=True)))
    return placed.mutate(lead=lead.min().over(_JOURNEY).fill_null(-1))


def _position_based(s: ir.Table) -> ir.FloatingValue:
    middle = 0.2 / ibis.greatest(s.n - 2, 1)
    share = ibis.cases((s.pos == 0, 0.4), (s.pos == s.n - 1, 0.4), else_=middle)
    return ibis.cases((s.n == 1, 1.0), (s.n == 2, 0.5), else_=share)


def _w_shaped(s: ir.Table) -> ir.FloatingValue:
    raw = 0.3 * ((s.pos == 0).cast("float64") + (s.pos == s.lead).cast("float64")
                 + (s.pos == s.n - 1).cast("float64"))
    others = (raw == 0).cast("int64").sum().over(_JOURNEY)
    out = ibis.ifelse(raw > 0, raw, 0.1 / ibis.greatest(others, 1))
    # out's sum per journey, written out: a window over a window is not every engine's
    raw_sum = raw.sum().over(_JOURNEY)
    total = raw_sum + ibis.ifelse(others > 0, 0.1, 0.0)
    return ibis.ifelse(s.lead < 0, _position_based(s), out / total)


def _shares(half_life_days: float) -> dict[str, Callable[[ir.Table], ir.FloatingValue]]:
    def last_non_direct(s: ir.Table) -> ir.FloatingValue:
        best = ibis.ifelse(s.channel.isin(DIRECT_CHANNELS), -1, s.pos).max().over(_JOURNEY)
        return (s.pos == ibis.ifelse(best < 0, s.n - 1, best)).cast("float64")

    def time_decay(s: ir.Table) -> ir.FloatingValue:
        # age in whole microseconds (every engine counts it alike), then seconds
        age = s.end.delta(s.ts, unit="microsecond").cast("float64") / 1e6
        w = ibis.literal(2.0) ** (-ibis.greatest(age, 0.0)
                                  / (half_life_days * _SECONDS_PER_DAY))
        return w / w.sum().over(_JOURNEY)

    return {
        "first_touch": lambda s: (s.pos == 0).cast("float64"),
        "last_touch": lambda s: (s.pos == s.n - 1).cast("float64"),
        "last_non_direct": last_non_direct,
        "linear": lambda s: 1.0 / s.n.cast("float64"),
        "time_decay": time_decay,
        "position_based": _position_based,
        "w_shaped": _w_shaped,
    }


#: what each step's credit is summed as (see :func:`heuristic_credit`): 20 digits before
#: the point, 18 after it, below a float's own precision (at 12, each step's share rounded
#: to 1e-12 moved a total of 6 credits to 6.000000000005)
EXACT = dt_.Decimal(38, 18)


def heuristic_credit(steps: ir.Table, models: tuple[str, ...] | list[str],
                     half_life_days: float = 7.0) -> dict[str, pd.DataFrame]:
    """Each rule-based model's credit per channel (``channel, conversions, value``) from
    :func:`journey_steps`, computed where the steps are."""
    shares = _shares(half_life_days)
    unknown = [m for m in models if m not in shares]
    if unknown:
        raise InputError(f"not a rule-based model: {', '.join(unknown)}",
                         hint=f"choose from {', '.join(shares)}")
    if not models:
        return {}
    shared = _weighed(steps)
    shared = shared.mutate(**{f"s_{m}": shares[m](shared) for m in models})
    sums: dict[str, Any] = {}
    for m in models:
        # summed as decimals: a sum of floats depends on the order the engine's threads
        # add them in, so the same report differed in its 14th digit from run to run (and
        # with a server and without); a decimal sum is exact, whatever the order
        sums[f"c_{m}"] = (shared[f"s_{m}"] * shared.won_).cast(EXACT).sum()
        sums[f"v_{m}"] = (shared[f"s_{m}"] * shared.value_).cast(EXACT).sum()
    table = frame(shared.group_by("channel").agg(**sums).order_by("channel"))
    return {m: pd.DataFrame({"channel": table["channel"].astype(str),
                             "conversions": table[f"c_{m}"].to_numpy(float),
                             "value": table[f"v_{m}"].to_numpy(float)}) for m in models}


def _weighed(steps: ir.Table) -> ir.Table:
    """*steps* with what their journey's outcome counts for: ``won_`` (1 converted, else
    0) and ``value_`` (its value when converted, else 0)."""
    won = steps.converted.cast("float64")
    return steps.mutate(won_=won, value_=steps.value.fill_null(0.0) * won)


def paths(steps: ir.Table) -> Journeys:
    """The distinct paths of :func:`journey_steps` with their conversions, non-conversions
    and value, as :class:`Journeys` (what Markov and Shapley solve from on the driver).
    A path is assembled by sorting each journey's steps by place, as a list: Ibis cannot
    order an aggregate on every engine."""
    one = _weighed(steps)
    per = one.group_by("journey").agg(
        steps=ibis.struct({"pos": one.pos, "channel": one.channel}).collect(),
        won_=one.won_.max(), value_=one.value_.max())
    per = per.mutate(path=per.steps.sort().map(lambda s: s.channel).join(">"))
    grouped = frame(per.group_by("path").agg(
        conversions=per.won_.sum(), journeys=per.count(), value=per.value_.sum()
    ).order_by("path"))
    conv = grouped["conversions"].to_numpy(float)
    return Journeys.from_paths(grouped["path"], conv.tolist(),
                               nulls=(grouped["journeys"].to_numpy(float) - conv).tolist(),
                               value=grouped["value"].to_numpy(float).tolist())

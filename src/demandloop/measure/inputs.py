"""What the funnel and demand health read of the touches, as Ibis aggregates: the engine
(DuckDB, or Spark over the lake) groups every touch, and one row per account or per week
comes back for the pure pandas code of :mod:`.funnel` and :mod:`.health`.

Written once for both engines: the first touch is the one with the lowest (time, touch id),
as the stored order gives it; weeks start on Monday (``truncate("W")`` on both).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pandas as pd

from demandloop.compute import Tables, frame
from demandloop.measure.attribution.journeys import LEAD_ACTIVITIES


def account_firsts(t: Tables) -> pd.DataFrame:
    """Per account with touches: its first touch (``ts``, ``channel``, ``motion``) and
    ``people``, the distinct known people among its touches."""
    x = t.touches.filter(t.touches.account_id.notnull())
    order = ibis.window(group_by=x.account_id, order_by=[x.ts, x.touch_id])
    ranked = x.select("account_id", "ts", "channel", "motion",
                      _n=ibis.row_number().over(order))
    first = ranked.filter(ranked._n == 0).drop("_n")
    people = x.group_by("account_id").agg(people=x.person_id.nunique())
    return frame(first.join(people, "account_id").order_by("account_id"))


def _count(condition: ir.BooleanValue) -> ir.IntegerScalar:
    return condition.ifelse(1, 0).sum()


def weekly_parts(t: Tables) -> dict[str, pd.DataFrame]:
    """The weekly series' parts: ``counts`` per week with touches (``week``,
    ``branded_search``, ``direct``, ``ai_referrals``, ``form_fills``, ``engaged_targets``),
    ``new_accounts`` and ``new_people`` per week (accounts first touched, people first
    converting that week), and ``span`` (``first``, ``last``: the touches' first and last
    time)."""
    x = t.touches
    x = x.mutate(week=x.ts.truncate("W"))
    a = t.accounts
    targets = a.filter(a.target.fill_null(False)).select("account_id")
    is_lead = x.activity.isin(list(LEAD_ACTIVITIES))
    counts = x.group_by("week").agg(
        branded_search=_count(x.channel == "branded_search"),
        direct=_count(x.channel == "direct"),
        ai_referrals=_count(x.channel == "ai_assistant"),
        form_fills=_count(is_lead),
        engaged_targets=x.account_id.nunique(where=x.account_id.isin(targets.account_id)),
    )
    accounts = x.filter(x.account_id.notnull()).group_by("account_id").agg(week=x.week.min())
    new_accounts = accounts.group_by("week").agg(new_accounts=accounts.count())
    leads = x.filter(is_lead & x.person_id.notnull())
    people = leads.group_by("person_id").agg(week=leads.week.min())
    new_people = people.group_by("week").agg(new_people=people.count())
    span = x.aggregate(first=x.ts.min(), last=x.ts.max())
    return {"counts": frame(counts.order_by("week")),
            "new_accounts": frame(new_accounts.order_by("week")),
            "new_people": frame(new_people.order_by("week")), "span": frame(span)}


def pipeline_parts(t: Tables, window_days: int) -> dict[str, pd.DataFrame]:
    """What sourced and influenced pipeline read of the touches, per opportunity with a
    creation date: ``first``, the channel and motion of its account's first touch before
    it (by time, then touch id); ``influence``, each channel its account touched in the
    *window_days* before it (distinct pairs); ``demand``, the opportunities with a
    demand-motion touch in that window."""
    o = t.opportunities
    o = o.filter(o.created_at.notnull()).select(
        "opportunity_id", "created_at", opportunity_account=o.account_id)
    x = t.touches.filter(t.touches.account_id.notnull()).select(
        "account_id", "ts", "touch_id", "channel", "motion")
    j = o.join(x, o.opportunity_account == x.account_id)
    j = j.filter(j.ts < j.created_at)
    order = ibis.window(group_by=j.opportunity_id, order_by=[j.ts, j.touch_id])
    ranked = j.select("opportunity_id", "channel", "motion", _n=ibis.row_number().over(order))
    first = ranked.filter(ranked._n == 0).drop("_n")
    recent = j.filter(j.ts >= j.created_at - ibis.interval(days=window_days))
    influence = recent.select("opportunity_id", "channel").distinct()
    demand = recent.filter(recent.motion == "demand").select("opportunity_id").distinct()
    # Sorted here, not by the engine: Ibis 12's Spark compiler moves an order_by after
    # distinct() inside the SELECT DISTINCT with the filter's columns, which returned every
    # touch in the window instead of distinct pairs (6.6x the rows)
    return {"first": frame(first.order_by("opportunity_id")),
            "influence": frame(influence).sort_values(["opportunity_id", "channel"],
                                                      ignore_index=True),
            "demand": frame(demand).sort_values("opportunity_id", ignore_index=True)}

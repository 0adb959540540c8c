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
    x = _with_account(t)
    people = x.group_by("account_id").agg(people=x.person_id.nunique())
    return frame(_first_of(x.select(*_PLACED), "account_id").join(people, "account_id")
                 .order_by("account_id"))


#: what a first touch is found by and reported with
_PLACED = ("account_id", "ts", "touch_id", "channel", "motion")


def _with_account(t: Tables) -> ir.Table:
    """The touches attributed to an account."""
    return t.touches.filter(t.touches.account_id.notnull())


def _first_of(x: ir.Table, key: str) -> ir.Table:
    """Per *key*, the first row of *x* (the lowest time, then touch id): its ``ts,
    channel, motion`` and the other columns of *x* (``touch_id`` aside)."""
    ranked = x.mutate(_n=ibis.row_number().over(
        ibis.window(group_by=x[key], order_by=[x.ts, x.touch_id])))
    return ranked.filter(ranked._n == 0).drop("_n", "touch_id")


def _before_opportunities(t: Tables) -> ir.Table:
    """Each opportunity with a creation time beside every touch of its account before it:
    ``opportunity_id, created_at, account_id, ts, touch_id, channel, motion``."""
    o = t.opportunities
    o = o.filter(o.created_at.notnull()).select(
        "opportunity_id", "created_at", opportunity_account=o.account_id)
    x = _with_account(t).select(*_PLACED)
    j = o.join(x, o.opportunity_account == x.account_id)
    return j.filter(j.ts < j.created_at).drop("opportunity_account")


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
    j = _before_opportunities(t)
    first = _first_of(j, "opportunity_id").select("opportunity_id", "channel", "motion")
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


#: how long after its first touch an account's own return (a self-directed touch) counts
#: as compounding, and how recent a landing page must be to count for AI visibility
RETURN_AFTER_DAYS, RECENT_PAGE_DAYS = 14, 30


def scorecard_parts(t: Tables) -> dict[str, pd.DataFrame]:
    """What the scorecard's measured criteria read of the touches: ``segments``, per
    channel and motion, the ``touches`` and those with an account (``resolved``);
    ``firsts``, each account's first touch (``ts, channel, motion``); ``returned``, the
    accounts that came back on their own (:data:`SELF_DIRECTED`) 14 days or more after it;
    ``sourced``, per opportunity with an account and a creation time, its account's first
    touch before it (``ts, channel, motion``) and ``created_at``; ``pages``, the distinct
    ``channel, motion, page`` (the path before any ``?``) of the touches in the last 30
    days of touches."""
    from demandloop.measure.scorecard import SELF_DIRECTED

    tt = t.touches
    segments = tt.group_by(["channel", "motion"]).agg(
        touches=tt.count(), resolved=_count(tt.account_id.notnull()))
    x = _with_account(t)
    first = _first_of(x.select(*_PLACED), "account_id")
    own = x.filter(x.channel.isin(SELF_DIRECTED)).select(own_account=x.account_id,
                                                         own_ts=x.ts)
    back = own.join(first, own.own_account == first.account_id)
    returned = back.filter(back.own_ts >= back.ts + ibis.interval(days=RETURN_AFTER_DAYS)
                           ).select("account_id").distinct()
    # an opportunity without an account joins no touch: it sources nothing
    sourced = _first_of(_before_opportunities(t), "opportunity_id").select(
        "opportunity_id", "account_id", "created_at", "ts", "channel", "motion")
    last = frame(tt.aggregate(last=tt.ts.max()))["last"].iloc[0]
    if pd.isna(last):
        pages = pd.DataFrame({c: pd.Series(dtype=object) for c in ("channel", "motion",
                                                                   "page")})
    else:
        recent = tt.filter(tt.path.notnull() & (tt.ts > ibis.literal(pd.Timestamp(last)
                                                                     .to_pydatetime())
                                                - ibis.interval(days=RECENT_PAGE_DAYS)))
        cut = recent.path.find("?")
        page = ibis.ifelse(cut >= 0, recent.path.substr(0, cut), recent.path)
        # sorted here, not by the engine (see pipeline_parts)
        pages = frame(recent.select("channel", "motion", page=page).distinct()).sort_values(
            ["channel", "motion", "page"], ignore_index=True)
    return {"segments": frame(segments.order_by(["channel", "motion"])),
            "firsts": frame(first.order_by("account_id")),
            "returned": frame(returned).sort_values("account_id", ignore_index=True),
            "sourced": frame(sourced.order_by("opportunity_id")), "pages": pages}

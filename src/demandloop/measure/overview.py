"""What is in a workspace: events by type and channel, active accounts, lead conversion.

Pure functions over Ibis tables (see :mod:`demandloop.compute`); they return pandas frames for
the CLI and the Python API to render.
"""

from __future__ import annotations

import ibis
import pandas as pd

from demandloop.compute import Tables


def event_counts(t: Tables) -> pd.DataFrame:
    """Events per message type (and per track event name), largest first."""
    e = t.events.mutate(event=t.events.event.fill_null(""))
    out: pd.DataFrame = e.group_by(["type", "event"]).agg(events=e.count()).execute()
    return out.sort_values(["events", "type"], ascending=[False, True]).reset_index(drop=True)


def touch_channels(t: Tables) -> pd.DataFrame:
    """Touches per channel and motion, with the accounts they reached."""
    x = t.touches
    agg = x.group_by(["channel", "motion"]).agg(touches=x.count(),
                                                 accounts=x.account_id.nunique())
    out: pd.DataFrame = agg.execute()
    out["share"] = out["touches"] / out["touches"].sum() if len(out) else []
    return out.sort_values(["touches", "channel"], ascending=[False, True]).reset_index(
        drop=True)[["channel", "motion", "touches", "share", "accounts"]]


def ranked_accounts(t: Tables, *, days: int = 30, limit: int = 10) -> pd.DataFrame:
    """Accounts ranked by recent touches (last *days* of data, after ``resolve``).

    Columns: account_id, name, domain, target, people (known people engaged), visitors
    (browsers, anonymous ones included), touches, high_intent (pricing, demo, integrations,
    customer stories, product pages, demo requests and trials), last_seen.
    """
    x = t.touches.filter(t.touches.account_id.notnull())
    end = t.touches.ts.max()
    recent = x.filter(x.ts >= end - ibis.interval(days=days))
    intent = recent.activity.isin(["high_intent_page", "demo_request", "trial"])
    agg = recent.group_by("account_id").agg(
        people=recent.person_id.nunique(),
        visitors=recent.anonymous_id.nunique(),
        touches=recent.count(),
        high_intent=intent.ifelse(1, 0).sum(),
        last_seen=recent.ts.max(),
    )
    a = t.accounts.select("account_id", "name", "domain", "target")
    out = agg.join(a, "account_id", how="left").order_by(
        [ibis.desc("people"), ibis.desc("high_intent"), ibis.desc("touches"), "account_id"]
    ).limit(limit)
    frame: pd.DataFrame = out.select("account_id", "name", "domain", "target", "people",
                                     "visitors", "touches", "high_intent",
                                     "last_seen").execute()
    return frame


def lead_conversion(t: Tables, by: str = "origin") -> pd.DataFrame:
    """MQL -> won conversion per lead attribute (``origin``, ``channel``, ``landing_page``).

    A lead converts when a won opportunity carries its ``lead_id``. Missing values are
    reported as their own group, shown as ``(none)``.
    """
    if by not in ("origin", "channel", "landing_page"):
        raise ValueError(f"cannot group leads by '{by}'")
    leads, opps = t.leads, t.opportunities
    won = opps.filter(opps.won & opps.lead_id.notnull()).select(w_lead=opps.lead_id).distinct()
    j = leads.left_join(won, leads.lead_id == won.w_lead)
    j = j.mutate(group=j[by].fill_null("(none)"), converted=j.w_lead.notnull())
    agg = j.group_by("group").agg(mqls=j.count(), won=j.converted.ifelse(1, 0).sum())
    out: pd.DataFrame = agg.execute().rename(columns={"group": by})
    out["rate"] = out["won"] / out["mqls"]
    return out.sort_values(["mqls", by], ascending=[False, True]).reset_index(drop=True)

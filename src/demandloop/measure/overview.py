"""What is in a workspace: events by type and channel, active accounts, lead conversion.

Pure functions over Ibis tables (see :mod:`demandloop.compute`); they return pandas frames for
the CLI and the Python API to render.
"""

from __future__ import annotations

from typing import Any

import ibis
import pandas as pd

from demandloop.enrich.channels import classify
from demandloop.resolve.known import known_events

HIGH_INTENT_PATHS = ("/pricing", "/demo", "/integrations", "/customers", "/product")


def event_counts(t: Any) -> pd.DataFrame:
    """Events per message type (and per track event name), largest first."""
    e = t.events.mutate(event=t.events.event.fill_null(""))
    out: pd.DataFrame = e.group_by(["type", "event"]).agg(events=e.count()).execute()
    return out.sort_values(["events", "type"], ascending=[False, True]).reset_index(drop=True)


def landing_channels(t: Any) -> pd.DataFrame:
    """Page views that start a visit (not internal navigation), by acquisition channel."""
    e = t.events
    pages = e.filter(e.type == "page").select(
        "utm_source", "utm_medium", "utm_campaign", "utm_term", "url", "referrer").execute()
    if pages.empty:
        return pd.DataFrame({"channel": [], "visits": [], "share": []})
    channel = classify(pages)
    counts = channel[channel != "internal"].value_counts()
    out = counts.rename_axis("channel").reset_index(name="visits")
    out["share"] = out["visits"] / out["visits"].sum()
    return out


def ranked_accounts(t: Any, *, days: int = 30, limit: int = 10) -> pd.DataFrame:
    """Accounts ranked by recent activity of their known people (last *days* of data).

    Columns: account_id, name, domain, target, people, events, high_intent, last_seen.
    """
    k = known_events(t.events, t.persons, t.accounts)
    end = t.events.timestamp.max()
    recent = k.filter(k.timestamp >= end - ibis.interval(days=days))
    intent = ibis.or_(*[recent.path.startswith(p) for p in HIGH_INTENT_PATHS])
    agg = recent.group_by("account_id").agg(
        people=recent.user.nunique(),
        events=recent.count(),
        high_intent=intent.ifelse(1, 0).sum(),
        last_seen=recent.timestamp.max(),
    )
    a = t.accounts.select("account_id", "name", "domain", "target")
    out = agg.join(a, "account_id", how="left").order_by(
        [ibis.desc("people"), ibis.desc("high_intent"), ibis.desc("events"), "account_id"]
    ).limit(limit)
    frame: pd.DataFrame = out.select("account_id", "name", "domain", "target", "people",
                                     "events", "high_intent", "last_seen").execute()
    return frame


def lead_conversion(t: Any, by: str = "origin") -> pd.DataFrame:
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

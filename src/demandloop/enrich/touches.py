"""Touches: one row per meaningful interaction, with channel, motion, activity, weight, topic.

Page views are grouped into visits (a new visit after 30 minutes of inactivity, or when a
page arrives from outside the site); every page of a visit carries the visit's acquisition
channel, so a pricing page reached by navigating from a LinkedIn-ad landing page counts for
paid social. Tracked events become touches through an ordered registry of activity rules
(demo requests, form fills, webinar attendance, sales emails, ...).

Motion: ``demand`` creates awareness (content, social, display, events, organic and AI
discovery); ``capture`` turns existing interest into a known contact (forms, gated assets,
demo/pricing requests, branded search, direct); ``sales`` is the sales team's outreach.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from demandloop.enrich.channels import Rule, classify, motion_of

VISIT_GAP = pd.Timedelta(minutes=30)
HIGH_INTENT_PATH = re.compile(
    r"^/(pricing|plans|demo|request-a-demo|contact-sales|integrations?|customers|"
    r"case-studies|product)(/|$)")
_TOPIC_SUFFIX = re.compile(r"-(guide|trends|checklist|report|ebook|whitepaper|playbook|"
                           r"template|webinar|\d{4})$")
_TOPIC_PATH = re.compile(r"^/(?:blog|guides|resources|webinars|learn|topics)/([a-z0-9-]+)")


@dataclass(frozen=True)
class Activity:
    """A kind of tracked event: how it is recognised and what it counts for."""

    name: str
    events: tuple[str, ...]
    motion: str | None  # None: the visit's channel decides
    weight: float
    channel: str | None = None


#: ordered registry of track-event activities (event names compared case-insensitively)
ACTIVITIES: list[Activity] = [
    Activity("demo_request", ("demo requested", "request demo", "demo request",
                              "contact sales"), "capture", 10.0),
    Activity("meeting_booked", ("meeting booked", "meeting scheduled"), "sales", 10.0,
             "outbound"),
    Activity("trial", ("trial started", "signed up", "account created"), "capture", 8.0),
    Activity("form_fill", ("form submitted", "asset downloaded", "content downloaded",
                           "ebook downloaded", "whitepaper downloaded"), "capture", 5.0),
    Activity("webinar_registration", ("webinar registered", "event registered"),
             "capture", 4.0),
    Activity("webinar_attended", ("webinar attended", "event attended"), "demand", 6.0,
             "events"),
    Activity("sales_email_reply", ("email replied",), "sales", 8.0, "outbound"),
    Activity("sales_email", ("email sent", "email opened", "email clicked"), "sales", 0.5,
             "outbound"),
]
PAGE_WEIGHT, HIGH_INTENT_WEIGHT = 1.0, 3.0


def topic_of(path: str | None, rules: list[tuple[str, re.Pattern[str]]] | None = None,
             title: str | None = None) -> str | None:
    """The topic of a page: the user's rules (over the path, then the page title) first,
    then the content slug of the path.

    Example:
        >>> topic_of("/blog/intent-data-trends")
        'intent-data'
    """
    for topic, pattern in rules or []:
        if (isinstance(path, str) and pattern.search(path)) or (
                isinstance(title, str) and pattern.search(title)):
            return topic
    if not isinstance(path, str) or not path:
        return None
    m = _TOPIC_PATH.match(path)
    return _TOPIC_SUFFIX.sub("", m.group(1)) if m else None


def build_touches(events: pd.DataFrame, *, rules: list[tuple[str, Rule]] | None = None,
                  topic_rules: list[tuple[str, re.Pattern[str]]] | None = None,
                  resolve_account: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
                  ) -> pd.DataFrame:
    """Touches from events (columns as in the ``events`` table plus ``person_id``).

    *resolve_account* maps the touch frame to ``account_id, match_source, confidence`` (it
    is where account resolution plugs in). Returns the ``touches`` table's columns.
    """
    cols = ["touch_id", "message_id", "account_id", "person_id", "anonymous_id", "ts",
            "channel", "motion", "activity", "weight", "topic", "match_source", "confidence",
            "ip"]
    if events.empty:
        return pd.DataFrame({c: [] for c in cols})
    pages = _page_touches(events[events["type"] == "page"], rules)
    tracks = _inherit_visit_channel(_track_touches(events[events["type"] == "track"]), pages)
    t = pd.concat([pages, tracks], ignore_index=True)
    if t.empty:
        return pd.DataFrame({c: [] for c in cols})
    if topic_rules and "page_title" in t.columns:
        t["topic"] = [topic_of(p, topic_rules, ti) for p, ti in zip(t["path"], t["page_title"],
                                                                    strict=True)]
    else:
        paths = t["path"].dropna().unique()
        t["topic"] = t["path"].map({p: topic_of(p, topic_rules) for p in paths})
    t["touch_id"] = t["message_id"]
    if resolve_account is not None:
        t = pd.concat([t.reset_index(drop=True),
                       resolve_account(t.reset_index(drop=True))], axis=1)
    else:
        t = t.assign(person_id=None, account_id=None, match_source=None, confidence=np.nan)
    return t.rename(columns={"timestamp": "ts"})[cols]


def _visitor(df: pd.DataFrame) -> pd.Series:
    return df["anonymous_id"].fillna("user:" + df["user_id"].fillna(""))


def _page_touches(pages: pd.DataFrame, rules: list[tuple[str, Rule]] | None) -> pd.DataFrame:
    if pages.empty:
        return pages.assign(channel=[], motion=[], activity=[], weight=[])
    p = pages.assign(visitor=_visitor(pages)).sort_values(["visitor", "timestamp"])
    channel = classify(p, rules)
    gap = p["timestamp"].diff() > VISIT_GAP
    new_visitor = p["visitor"] != p["visitor"].shift()
    starts = new_visitor | gap | (channel != "internal")
    visit = starts.cumsum()
    landing = channel.where(starts).groupby(visit).transform("first")
    landing = landing.where(landing != "internal", "direct")
    high = p["path"].fillna("").str.match(HIGH_INTENT_PATH)
    return p.assign(
        channel=landing.to_numpy(),
        motion=landing.map(motion_of).to_numpy(),
        activity=np.where(high, "high_intent_page", "page_view"),
        weight=np.where(high, HIGH_INTENT_WEIGHT, PAGE_WEIGHT),
    ).drop(columns=["visitor"])


def _track_touches(tracks: pd.DataFrame) -> pd.DataFrame:
    if tracks.empty:
        return tracks.assign(channel=[], motion=[], activity=[], weight=[])
    name = tracks["event"].fillna("").str.lower().str.strip()
    activity = pd.Series(None, index=tracks.index, dtype=object)
    for act in ACTIVITIES:
        activity = activity.where(activity.notna() | ~name.isin(act.events), act.name)
    t = tracks[activity.notna()].assign(activity=activity[activity.notna()])
    by_name = {a.name: a for a in ACTIVITIES}
    t["weight"] = t["activity"].map(lambda a: by_name[a].weight)
    t["channel"] = t["activity"].map(lambda a: by_name[a].channel)
    t["motion"] = t["activity"].map(lambda a: by_name[a].motion or "capture")
    return t


def _inherit_visit_channel(tracks: pd.DataFrame, pages: pd.DataFrame) -> pd.DataFrame:
    """A form fill or demo request counts for the channel of the visit it happened in."""
    todo = tracks["channel"].isna() if not tracks.empty else pd.Series(dtype=bool)
    if tracks.empty or not todo.any():
        return tracks
    left = tracks[todo].assign(visitor=_visitor(tracks[todo])).sort_values("timestamp")
    right = pages.assign(visitor=_visitor(pages))[["visitor", "timestamp", "channel"]] \
        .rename(columns={"channel": "visit_channel"}).sort_values("timestamp")
    merged = pd.merge_asof(left, right, on="timestamp", by="visitor",
                           tolerance=VISIT_GAP, direction="backward")
    merged["channel"] = merged["visit_channel"].fillna("direct")
    merged.index = left.index
    out = tracks.copy()
    out.loc[merged.index, "channel"] = merged["channel"]
    return out

"""Channel taxonomy: an ordered registry of small rules from UTM, click ids and referrer.

Each rule is a function from a frame of touch **features** to a boolean mask; the first rule
that matches a row names its channel. The features are what the rules look at, reduced from
the raw fields (``utm_source``, ``utm_medium``, ``utm_campaign``, ``utm_term``, ``url``,
``referrer``): the four UTM values lowercased, the referrer's and the page's host, whether
the URL carries a search or a social ad click id, and whether it contains each fragment a
user rule names. Few distinct feature rows exist (a site has few landing patterns), so
``resolve`` computes the features in SQL for every event, classifies only the distinct rows
here and joins the channel back: the rules stay Python, and run in milliseconds whatever
the number of events.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"utm_source": [None], "utm_medium": [None], "utm_campaign": [None],
    ...     "utm_term": [None], "url": ["https://acme.io/"], "referrer": ["https://chatgpt.com/"]})
    >>> classify(df).tolist()
    ['ai_assistant']
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

Rule = Callable[[pd.DataFrame], "pd.Series[bool]"]

#: AI assistants' hosts (a subdomain counts): a visit referred by one, or tagged with one as
#: its utm_source (ChatGPT adds ``utm_source=chatgpt.com``), is an AI-assistant visit. Grok's
#: own site and Microsoft's Copilot in Edge (``edgeservices.bing.com``, checked before
#: search) and in Microsoft 365 were read as a referral and as Bing search.
AI_HOSTS = ("chatgpt.com", "chat.openai.com", "perplexity.ai", "claude.ai", "gemini.google.com",
            "bard.google.com", "copilot.microsoft.com", "copilot.cloud.microsoft",
            "m365.cloud.microsoft", "edgeservices.bing.com", "grok.com", "you.com",
            "phind.com", "poe.com", "chat.mistral.ai", "deepseek.com", "meta.ai",
            "chat.qwen.ai", "kimi.com", "kimi.moonshot.cn")
SEARCH_HOSTS = ("google.", "bing.com", "duckduckgo.com", "yahoo.", "baidu.com", "yandex.",
                "ecosia.org", "search.brave.com", "naver.com", "seznam.cz", "qwant.com",
                "startpage.com", "kagi.com", "sogou.com", "daum.net")
SOCIAL_HOSTS = ("linkedin.com", "lnkd.in", "facebook.com", "fb.com", "instagram.com",
                "twitter.com", "x.com", "t.co", "reddit.com", "youtube.com", "tiktok.com",
                "threads.net", "threads.com", "bsky.app", "pinterest.com", "quora.com")
EMAIL_HOSTS = ("mail.google.com", "outlook.live.com", "outlook.office.com", "mail.yahoo.com")

#: the patterns the features are computed with, here and in SQL (``enrich/touch_sql.py``)
HOST_PATTERN = r"^[a-z][a-z0-9+.-]*://([^/?#:]+)"
SEARCH_CLICK = r"[?&](?:gclid|msclkid|gbraid|wbraid)="
SOCIAL_CLICK = r"[?&](?:li_fat_id|fbclid|ttclid|twclid)="
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term")
#: the feature columns every rule may read (plus ``url_has:<fragment>`` for user rules)
FEATURES = (*UTM, "ref_host", "url_host", "click_search", "click_social")


def fragment_column(fragment: str) -> str:
    """The feature saying whether the URL contains *fragment* (lowercased)."""
    return "url_has:" + fragment.lower()


def _lower(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df.columns:
        return pd.Series("", index=df.index)
    return df[col].fillna("").astype(str).str.lower()


def _host(url: pd.Series) -> pd.Series:
    return url.str.extract(HOST_PATTERN, expand=False).fillna("").str.removeprefix("www.")


def features(df: pd.DataFrame, fragments: tuple[str, ...] = ()) -> pd.DataFrame:
    """The features of raw rows (columns ``utm_*``, ``url``, ``referrer``; missing ones
    count as empty), as the SQL of ``resolve`` computes them."""
    url = _lower(df, "url")
    out = pd.DataFrame({c: _lower(df, c) for c in UTM}, index=df.index)
    out["ref_host"] = _host(_lower(df, "referrer"))
    out["url_host"] = _host(url)
    out["click_search"] = url.str.contains(SEARCH_CLICK, regex=True)
    out["click_social"] = url.str.contains(SOCIAL_CLICK, regex=True)
    for f in fragments:
        out[fragment_column(f)] = url.str.contains(f.lower(), regex=False)
    return out


def _s(df: pd.DataFrame, col: str) -> pd.Series:
    return df[col]


def _host_in(host: pd.Series, hosts: tuple[str, ...]) -> pd.Series:
    mask = pd.Series(False, index=host.index)
    for h in hosts:
        if h.endswith("."):  # a family of country domains: google.com, google.de, ...
            mask |= host.str.startswith(h) | host.str.contains("." + h, regex=False)
        else:
            mask |= (host == h) | host.str.endswith("." + h)
    return mask


def _medium_in(df: pd.DataFrame, *values: str) -> pd.Series:
    return _s(df, "utm_medium").isin(values)


def _ai(df: pd.DataFrame) -> pd.Series:
    src = _s(df, "utm_source").str.removeprefix("www.")
    return _host_in(df["ref_host"], AI_HOSTS) | src.isin(AI_HOSTS) | src.isin(
        ("chatgpt", "perplexity", "claude", "gemini", "copilot", "grok"))


def _paid_search(df: pd.DataFrame) -> pd.Series:
    return _medium_in(df, "cpc", "ppc", "paid_search", "paidsearch", "sem") | df["click_search"]


def _paid_social(df: pd.DataFrame) -> pd.Series:
    click_id = df["click_social"]
    return _medium_in(df, "paid_social", "paidsocial", "social_paid", "cpm_social") | (
        click_id & ~_s(df, "utm_medium").eq("organic"))


def _display(df: pd.DataFrame) -> pd.Series:
    return _medium_in(df, "display", "banner", "cpm", "programmatic", "retargeting")


def _events(df: pd.DataFrame) -> pd.Series:
    return _medium_in(df, "event", "events", "webinar", "conference", "field") | \
        _s(df, "utm_source").isin(("webinar", "zoom", "on24", "goldcast"))


def _outbound(df: pd.DataFrame) -> pd.Series:
    return _s(df, "utm_source").isin(("outreach", "salesloft", "apollo", "sdr")) | \
        _medium_in(df, "outbound", "sales_email")


def _email(df: pd.DataFrame) -> pd.Series:
    return _medium_in(df, "email", "e-mail", "newsletter") | _host_in(df["ref_host"],
                                                                       EMAIL_HOSTS)


def branded_search_rule(terms: tuple[str, ...]) -> Rule:
    """Paid or organic search whose query (utm_term) or campaign names a brand term."""
    pattern = "|".join(re.escape(t.lower()) for t in terms if t.strip())

    def _branded(df: pd.DataFrame) -> pd.Series:
        if not pattern:
            return pd.Series(False, index=df.index)
        text = _s(df, "utm_term") + " " + _s(df, "utm_campaign")
        named = text.str.contains(pattern, regex=True)
        is_search = _paid_search(df) | _organic_search(df) | (_s(df, "utm_campaign") == "brand")
        return named & is_search

    return _branded


def _partner(df: pd.DataFrame) -> pd.Series:
    return _medium_in(df, "partner", "affiliate", "syndication")


def _organic_search(df: pd.DataFrame) -> pd.Series:
    return _host_in(df["ref_host"], SEARCH_HOSTS) | _medium_in(df, "organic")


def _organic_social(df: pd.DataFrame) -> pd.Series:
    return _host_in(df["ref_host"], SOCIAL_HOSTS) | _medium_in(df, "social")


def _referral(df: pd.DataFrame) -> pd.Series:
    ref = df["ref_host"]
    return ((ref != "") & (ref != df["url_host"])) | _medium_in(df, "referral")


def _internal(df: pd.DataFrame) -> pd.Series:
    ref = df["ref_host"]
    return (ref != "") & (ref == df["url_host"]) & (_s(df, "utm_source") == "")


RULES: list[tuple[str, Rule]] = [
    ("internal", _internal),  # navigation inside the site: not a new touch
    ("ai_assistant", _ai),
    ("outbound", _outbound),
    ("events", _events),
    ("paid_search", _paid_search),
    ("paid_social", _paid_social),
    ("display", _display),
    ("email", _email),
    ("partner", _partner),
    ("organic_search", _organic_search),
    ("organic_social", _organic_social),
    ("referral", _referral),
]
"""Ordered: the first matching rule wins; anything unmatched is ``direct``."""


#: motion of a visit by channel (see ``motion_of``); anything unknown counts as demand
CHANNEL_MOTION: dict[str, str] = {
    "organic_search": "demand", "paid_social": "demand", "organic_social": "demand",
    "display": "demand", "events": "demand", "referral": "demand", "partner": "demand",
    "ai_assistant": "demand", "paid_search": "capture", "branded_search": "capture",
    "email": "capture", "direct": "capture", "outbound": "sales",
}


def motion_of(channel: str) -> str:
    """``demand`` (creates awareness), ``capture`` (harvests existing intent) or ``sales``."""
    return CHANNEL_MOTION.get(channel, "demand")


def user_rule(channel: str, *, utm_source: list[str] | None = None,
              utm_medium: list[str] | None = None, referrer_host: list[str] | None = None,
              url_contains: list[str] | None = None) -> tuple[str, Rule]:
    """A rule declared in demandloop.toml: any listed condition matching names *channel*."""
    sources = tuple(v.lower() for v in utm_source or ())
    mediums = tuple(v.lower() for v in utm_medium or ())
    hosts = tuple(v.lower().removeprefix("www.") for v in referrer_host or ())
    fragments = tuple(v.lower() for v in url_contains or ())

    def _rule(df: pd.DataFrame) -> pd.Series:
        mask = _s(df, "utm_source").isin(sources) | _s(df, "utm_medium").isin(mediums)
        if hosts:
            mask |= _host_in(df["ref_host"], hosts)
        for f in fragments:
            mask |= df[fragment_column(f)].astype(bool)
        return mask

    _rule.url_fragments = fragments  # type: ignore[attr-defined]
    return channel, _rule


def rules_for(brand_terms: tuple[str, ...] = (),
              extra: list[tuple[str, Rule]] | None = None) -> list[tuple[str, Rule]]:
    """The registry for a workspace: internal first, then the user's rules, branded search,
    then the built-in rules."""
    return [RULES[0], *(extra or []), ("branded_search", branded_search_rule(brand_terms)),
            *RULES[1:]]


def url_fragments(rules: list[tuple[str, Rule]]) -> tuple[str, ...]:
    """The URL fragments the user rules among *rules* look for (their feature columns)."""
    return tuple(dict.fromkeys(f for _, r in rules for f in getattr(r, "url_fragments", ())))


def classify(df: pd.DataFrame, rules: list[tuple[str, Rule]] | None = None) -> pd.Series:
    """Channel name for every raw row of *df* (``utm_*``, ``url``, ``referrer``)."""
    rules = rules or RULES
    return classify_features(features(df, url_fragments(rules)), rules)


def classify_features(df: pd.DataFrame, rules: list[tuple[str, Rule]] | None = None
                      ) -> pd.Series:
    """Channel name for every row of a frame of :func:`features`."""
    out = np.full(len(df), "direct", dtype=object)
    todo = np.ones(len(df), dtype=bool)
    for name, rule in rules or RULES:
        if not todo.any():
            break
        hit = rule(df).to_numpy(dtype=bool) & todo
        out[hit] = name
        todo &= ~hit
    return pd.Series(out, index=df.index, name="channel")

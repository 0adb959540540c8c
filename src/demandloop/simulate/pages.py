"""Where a simulated session goes: the pages it views by channel and intent, and the
referrer and UTM parameters its first page carries (as a real visit from that channel)."""

from __future__ import annotations

import random

from demandloop.simulate import catalog as cat
from demandloop.simulate.world import Account

_INTENT_KINDS = ("pricing", "case_study", "integrations", "product", "demo")
_INTENT_WEIGHTS = (0.3, 0.25, 0.2, 0.15, 0.1)
_BROWSE_KINDS = ("blog", "guide", "home", "product", "careers")
_BROWSE_WEIGHTS = (0.45, 0.2, 0.15, 0.12, 0.08)


def journey(r: random.Random, channel: str, in_market: bool) -> list[str]:
    """The kinds of page one session views, starting from where *channel* lands."""
    first = {"branded_search": "home", "paid_search": "product", "webinar": "webinar",
             "direct": "home", "outbound": "case_study"}.get(
        channel, "blog" if r.random() < 0.7 else "guide")
    kinds = [first]
    stay = 0.55 if in_market else 0.4  # chance of viewing one more page
    while len(kinds) < 8 and r.random() < stay:
        if in_market and r.random() < 0.55:
            kinds += r.choices(_INTENT_KINDS, weights=_INTENT_WEIGHTS)
        else:
            kinds += r.choices(_BROWSE_KINDS, weights=_BROWSE_WEIGHTS)
    return kinds

def page_path(r: random.Random, kind: str, acc: Account) -> str:
    """A page of *kind* (a case study of the visitor's industry half the time)."""
    if kind == "case_study" and r.random() < 0.5:
        return f"/customers/{acc.industry.lower().replace(' ', '-')}"
    return r.choice(cat.PAGES[kind])

def landing(r: random.Random, channel: str) -> tuple[str, dict[str, str]]:
    """(referrer, utm parameters) of a session's first page, as a real visit carries."""
    topic = r.choice(cat.TOPICS)
    return {
        "organic_search": ("https://www.google.com/", {}),
        "branded_search": ("https://www.google.com/",
                           {"utm_source": "google", "utm_medium": "cpc",
                            "utm_campaign": "brand", "utm_term": "loopwise"}),
        "paid_search": ("https://www.google.com/",
                        {"utm_source": "google", "utm_medium": "cpc",
                         "utm_campaign": "nonbrand-" + topic,
                         "utm_term": topic.replace("-", " ")}),
        "paid_social": ("https://www.linkedin.com/",
                        {"utm_source": "linkedin", "utm_medium": "paid_social",
                         "utm_campaign": "abm-" + topic}),
        "organic_social": ("https://www.linkedin.com/", {}),
        "ai_assistant": (("https://chatgpt.com/", {"utm_source": "chatgpt.com"})
                         if r.random() < 0.6 else ("https://www.perplexity.ai/", {})),
        "display": ("https://www.example-news.com/",
                    {"utm_source": "dv360", "utm_medium": "display",
                     "utm_campaign": "retargeting"}),
        "webinar": ("", {"utm_source": "webinar", "utm_medium": "event",
                         "utm_campaign": "webinar-" + topic}),
        "referral": ("https://www.g2.com/", {}),
        "email": ("", {"utm_source": "newsletter", "utm_medium": "email",
                       "utm_campaign": "nurture-" + topic}),
        "outbound": ("", {"utm_source": "outreach", "utm_medium": "email",
                          "utm_campaign": "sdr-sequence"}),
        "direct": ("", {}),
    }[channel]

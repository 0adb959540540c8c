"""Channel rules on representative visits (the full golden-case file comes with enrichment)."""

from __future__ import annotations

import pandas as pd
import pytest

from demandloop.enrich.channels import classify

CASES = [
    ({"referrer": "https://chatgpt.com/"}, "ai_assistant"),
    ({"utm_source": "chatgpt.com", "referrer": ""}, "ai_assistant"),
    ({"referrer": "https://www.perplexity.ai/search"}, "ai_assistant"),
    ({"url": "https://acme.io/?gclid=abc", "referrer": "https://www.google.com/"}, "paid_search"),
    ({"utm_medium": "cpc", "utm_source": "google"}, "paid_search"),
    ({"referrer": "https://www.google.co.uk/"}, "organic_search"),
    ({"referrer": "https://duckduckgo.com/"}, "organic_search"),
    ({"url": "https://acme.io/?li_fat_id=1"}, "paid_social"),
    ({"utm_medium": "paid_social", "utm_source": "linkedin"}, "paid_social"),
    ({"referrer": "https://www.linkedin.com/feed/"}, "organic_social"),
    ({"utm_medium": "email", "utm_source": "newsletter"}, "email"),
    ({"utm_source": "outreach", "utm_medium": "email"}, "outbound"),
    ({"utm_medium": "webinar"}, "events"),
    ({"utm_medium": "display"}, "display"),
    ({"referrer": "https://www.g2.com/products/acme"}, "referral"),
    ({"referrer": "https://acme.io/blog", "url": "https://acme.io/pricing"}, "internal"),
    ({}, "direct"),
]


@pytest.mark.parametrize(("row", "channel"), CASES, ids=[c for _, c in CASES])
def test_channel(row: dict[str, str], channel: str) -> None:
    base = {"url": "https://acme.io/", "referrer": ""}
    assert classify(pd.DataFrame([base | row])).tolist() == [channel]

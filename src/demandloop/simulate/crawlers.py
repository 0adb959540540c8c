"""The simulated site's access log: AI crawlers reading its pages, with planted gaps.

Every day each simulated AI crawler fetches a few of the site's pages (combined format, the
crawler's real user agent). The AI *search* crawlers never fetch the pages in
:data:`GAPS`: the coverage gaps ``demandloop report aeo`` must find. Training crawlers do
fetch them (a page can be read for training and still be missing from AI search). People
from search engines and AI assistants add human lines. Written with a random stream of its
own, so adding the log changed no event of an existing seed.

Crawlers whose operators publish their addresses crawl from those addresses; every third
day a scraper sends GPTBot's user agent from a residential address (the planted spoofs).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import random
from importlib import resources
from pathlib import Path
from typing import Any

from demandloop.simulate import catalog as cat

#: pages AI search crawlers never fetch (the planted gaps)
GAPS = ("/pricing", "/integrations/hubspot", "/customers/software")
#: (crawler, category, user agent, requests a day)
CRAWLERS = (
    ("GPTBot", "training", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; "
     "GPTBot/1.2; +https://openai.com/gptbot)", 6),
    ("ClaudeBot", "training", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; "
     "compatible; ClaudeBot/1.0; +claudebot@anthropic.com)", 4),
    ("CCBot", "training", "CCBot/2.0 (https://commoncrawl.org/faq/)", 2),
    ("OAI-SearchBot", "search", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); "
     "compatible; OAI-SearchBot/1.0; +https://openai.com/searchbot", 14),
    ("PerplexityBot", "search", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; "
     "compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)", 10),
    ("ChatGPT-User", "user", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); "
     "compatible; ChatGPT-User/1.0; +https://openai.com/bot", 2),
)
_PEOPLE = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0",
           "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Safari/605.1")
_REFERRERS = ("https://www.google.com/", "https://chatgpt.com/", "https://www.perplexity.ai/",
              "-", "-")


def write_access_log(out: Path, seed: int, start: dt.date, days: int) -> dict[str, Any]:
    """Write ``access.log`` into *out*; returns its truth (the gaps and the counts)."""
    rng = random.Random(seed + 104_729)
    published = {name: [ipaddress.ip_network(p) for p in entry["prefixes"]]
                 for name, entry in json.loads(resources.files("demandloop.data").joinpath(
                     "crawler_ranges.json").read_text())["crawlers"].items()}

    def address(name: str) -> str:
        """One of the crawler's published addresses, else any hosting address."""
        nets = published.get(name)
        if not nets:
            return f"20.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        net = rng.choice(nets)
        return str(net[rng.randrange(net.num_addresses)])

    pages = sorted({p for kind in cat.PAGES.values() for p in kind})
    searchable = [p for p in pages if p not in GAPS]
    counts = {name: 0 for name, *_ in CRAWLERS}
    spoofed = 0
    lines = []
    for day in range(days):
        base = dt.datetime.combine(start + dt.timedelta(days=day), dt.time(),
                                   tzinfo=dt.UTC)
        for name, category, agent, per_day in CRAWLERS:
            for _ in range(per_day):
                path = rng.choice(searchable if category == "search" else pages)
                at = base + dt.timedelta(seconds=rng.randrange(86_400))
                counts[name] += 1
                lines.append((at, f'{address(name)} - - [{at:%d/%b/%Y:%H:%M:%S %z}] '
                                  f'"GET {path} HTTP/1.1" 200 {rng.randint(2000, 90_000)} "-" '
                                  f'"{agent}"'))
        if day % 3 == 0:  # a scraper that calls itself GPTBot from a residential address
            at = base + dt.timedelta(seconds=rng.randrange(86_400))
            spoofed += 1
            lines.append((at, f'198.51.100.{rng.randrange(1, 255)} - - '
                              f'[{at:%d/%b/%Y:%H:%M:%S %z}] "GET {rng.choice(pages)} HTTP/1.1" '
                              f'200 {rng.randint(2000, 90_000)} "-" "{CRAWLERS[0][2]}"'))
        for _ in range(20):
            at = base + dt.timedelta(seconds=rng.randrange(86_400))
            lines.append((at, f'198.51.{rng.randrange(256)}.{rng.randrange(1, 255)} - - '
                              f'[{at:%d/%b/%Y:%H:%M:%S %z}] "GET {rng.choice(pages)} '
                              f'HTTP/1.1" 200 {rng.randint(2000, 90_000)} '
                              f'"{rng.choice(_REFERRERS)}" "{rng.choice(_PEOPLE)}"'))
    lines.sort(key=lambda x: x[0])
    (out / "access.log").write_text("".join(line + "\n" for _, line in lines))
    return {"uncrawled_by_search": sorted(GAPS), "crawler_requests": counts,
            "spoofed": {"GPTBot": spoofed}, "pages": pages}

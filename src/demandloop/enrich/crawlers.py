"""AI crawlers: which AI operator's bot a request's user agent names, and what it is for.

The list is ai.robots.txt's ``robots.json`` (https://github.com/ai-robots-txt/ai.robots.txt,
MIT licence, the community list of AI crawlers), shipped as ``demandloop/data/ai_robots.json``
at the commit named in :data:`SOURCE`. Each entry is a user-agent token, its operator and a
free-text "function". From it, each crawler gets one **category**:

* ``training``: collects pages to train models (GPTBot, ClaudeBot, CCBot, Bytespider);
* ``search``: indexes pages for an AI search or answer engine (OAI-SearchBot,
  Claude-SearchBot, PerplexityBot);
* ``user``: fetches a page because a person asked an assistant about it right now
  (ChatGPT-User, Claude-User, Perplexity-User);
* ``agent``: acts for a person in a browser or a coding tool (ChatGPT Agent, Claude-Code).

The category is ours where we know the operator documents it (:data:`KNOWN`); otherwise it is
read from the list's function text ("AI Assistants" -> user, "AI Agents" -> agent, "AI
Search Crawlers" -> search), and anything that collects data is ``training``.

A user agent is matched by the longest token it contains (case-insensitive), so
``Claude-SearchBot`` is not taken for ``ClaudeBot``, nor ``ChatGPT-User`` for ``GPTBot``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

#: where the shipped list comes from (repository, commit, date)
SOURCE = ("https://github.com/ai-robots-txt/ai.robots.txt",
          "738c80df2169027ce0e07c9976fd3f2f57dd8f7b", "2026-08-22")
DATA_FILE = "ai_robots.json"
CATEGORIES = ("training", "search", "user", "agent")

#: categories the operators document (tokens as the list spells them)
KNOWN: dict[str, str] = {
    "GPTBot": "training", "OAI-SearchBot": "search", "ChatGPT-User": "user",
    "ChatGPT Agent": "agent", "ClaudeBot": "training", "Claude-SearchBot": "search",
    "Claude-User": "user", "Claude-Web": "user", "anthropic-ai": "training",
    "Claude-Code": "agent", "PerplexityBot": "search", "Perplexity-User": "user",
    "Google-Extended": "training", "Applebot-Extended": "training", "Applebot": "search",
    "CCBot": "training", "Bytespider": "training", "meta-externalagent": "training",
    "meta-externalfetcher": "user", "Amazonbot": "search", "DuckAssistBot": "search",
    "MistralAI-User": "user", "YouBot": "search", "cohere-ai": "user",
    "cohere-training-data-crawler": "training", "Diffbot": "training",
    "GoogleAgent-Mariner": "agent", "Google-NotebookLM": "user",
}
_BY_FUNCTION = (  # (words in the list's function text, category), first match wins
    (("ai assistants", "user-initiated", "user queries", "user prompts", "answers for",
      "responses to user", "learning companion"), "user"),
    (("agents", "takes action"), "agent"),
    (("search",), "search"),
)


@dataclass(frozen=True)
class Crawler:
    """One AI crawler of the list."""

    name: str
    operator: str
    category: str
    function: str
    respects_robots: str


def _operator(text: str) -> str:
    """The operator's name from the list's markdown (``[Ai2](https://...)`` -> ``Ai2``)."""
    m = re.match(r"\s*\[([^\]]+)\]", text or "")
    return m.group(1) if m else (text or "").strip()


def category_of(name: str, function: str) -> str:
    """A crawler's category (see the module docstring)."""
    if name in KNOWN:
        return KNOWN[name]
    text = (function or "").lower()
    for words, category in _BY_FUNCTION:
        if any(w in text for w in words):
            return category
    return "training"


class Catalog:
    """The crawlers of a list, matched against user agents."""

    def __init__(self, entries: dict[str, dict[str, str]]) -> None:
        self.crawlers = {name: Crawler(name, _operator(e.get("operator", "")),
                                       category_of(name, e.get("function", "")),
                                       e.get("function", ""), e.get("respect", ""))
                         for name, e in entries.items()}
        tokens = sorted(self.crawlers, key=len, reverse=True)  # longest first: see docstring
        self._pattern = re.compile("|".join(re.escape(t) for t in tokens), re.IGNORECASE)
        self._by_lower = {t.lower(): t for t in tokens}

    def classify(self, user_agent: str | None) -> Crawler | None:
        """The crawler *user_agent* names, or None."""
        if not user_agent:
            return None
        m = self._pattern.search(user_agent)
        return self.crawlers[self._by_lower[m.group(0).lower()]] if m else None

    def classify_many(self, user_agents: Iterable[str | None]) -> list[Crawler | None]:
        """:meth:`classify` for many, each distinct user agent matched once (logs repeat
        a few thousand agents millions of times)."""
        seen: dict[str | None, Crawler | None] = {}
        out = []
        for ua in user_agents:
            if ua not in seen:
                seen[ua] = self.classify(ua)
            out.append(seen[ua])
        return out


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The shipped list (see :data:`SOURCE`)."""
    raw = resources.files("demandloop.data").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return Catalog(json.loads(raw))

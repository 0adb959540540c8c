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

**Verification**: anyone can send ``GPTBot`` as their user agent. Where the operator
publishes its crawler's addresses (:data:`OFFICIAL_RANGES`), a request is *verified* when it
comes from one of them and *spoofed* when it does not (:class:`Verifier`); for the others it
cannot be told. The lists are shipped as ``demandloop/data/crawler_ranges.json`` (its
``about`` names where the snapshot came from) and refreshed by ``demandloop data
build-crawlers``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

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


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The shipped list (see :data:`SOURCE`)."""
    raw = resources.files("demandloop.data").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return Catalog(json.loads(raw))


#: the operators' published address lists ``data build-crawlers`` reads (Google's format:
#: ``{"prefixes": [{"ipv4Prefix": ...}, {"ipv6Prefix": ...}]}``)
OFFICIAL_RANGES: dict[str, str] = {
    "GPTBot": "https://openai.com/gptbot.json",
    "OAI-SearchBot": "https://openai.com/searchbot.json",
    "ChatGPT-User": "https://openai.com/chatgpt-user.json",
    "PerplexityBot": "https://www.perplexity.ai/perplexitybot.json",
    "Perplexity-User": "https://www.perplexity.ai/perplexity-user.json",
}
RANGES_FILE = "crawler_ranges.json"


def prefixes(data: bytes) -> list[str]:
    """The CIDR prefixes of an operator's published list (Google's JSON format), checked."""
    found = json.loads(data)
    out = []
    for p in found.get("prefixes", []) if isinstance(found, dict) else []:
        value = p.get("ipv4Prefix") or p.get("ipv6Prefix") if isinstance(p, dict) else None
        if value:
            out.append(str(ipaddress.ip_network(value, strict=False)))
    if not out:
        raise ValueError("no ipv4Prefix or ipv6Prefix in the list")
    return out


class Verifier:
    """Whether a request naming a crawler came from that crawler's published addresses."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.built = str(snapshot.get("built", ""))
        self.nets = {name: [ipaddress.ip_network(p) for p in entry["prefixes"]]
                     for name, entry in snapshot.get("crawlers", {}).items()}

    def verify(self, crawler: str, ip: str | None) -> bool | None:
        """True from a published address, False from any other (a spoofed agent), None
        when the operator publishes no list (or none is held for it)."""
        nets = self.nets.get(crawler)
        if nets is None:
            return None
        try:
            address = ipaddress.ip_address((ip or "").strip())
        except ValueError:
            return False
        return any(address in net for net in nets)


@lru_cache(maxsize=1)
def verifier() -> Verifier:
    """The shipped address lists (``data build-crawlers`` refreshes them)."""
    raw = resources.files("demandloop.data").joinpath(RANGES_FILE).read_text(encoding="utf-8")
    return Verifier(json.loads(raw))

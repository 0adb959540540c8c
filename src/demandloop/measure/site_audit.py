"""``demandloop aeo audit``: can AI assistants read your site, and quote it?

**The site**

* ``robots.txt``: for each AI crawler of the list, whether it may fetch the site. Search
  and user-triggered crawlers are what answer engines quote from: blocking one is a problem.
  Blocking training crawlers is a choice, and is reported as such, never as a defect.
  Rules are read with the standard library's ``urllib.robotparser``.
* ``llms.txt`` (https://llmstxt.org): present; its first line a ``# Title``; at least one
  ``- [name](url)`` link; every link to the site pointing at a page that exists.
* The sitemap: present, and holding every page (the folder's pages, or those the site's
  pages link to).

**Each page** (each check with what to fix):

=================  ==============================================================
title              a ``<title>`` of 10-70 characters
description        a meta description of 50-170 characters
one_h1             exactly one ``<h1>``
question_headings  with two or more subheadings, at least one phrased as a question
schema             schema.org JSON-LD (parsed with extruct) of type FAQPage, HowTo,
                   Organization or Product
answer_first       the first paragraph after the ``<h1>`` answers in 8-80 words
date_modified      a date modified a reader sees: a ``<time>`` element or
                   "Updated ..." / "Last modified ..." in the text (``dateModified``
                   in JSON-LD alone is invisible)
canonical          an absolute canonical link
server_rendered    at least 50 words of text in the HTML itself (crawlers do not run
                   JavaScript)
page_weight        at most 300 KB of HTML
=================  ==============================================================

A page's score is the share of its checks that pass.
"""

from __future__ import annotations

import json
import re
import urllib.robotparser
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import extruct
import lxml.html
from lxml import etree

#: the largest page that still passes page_weight (bytes of HTML)
MAX_PAGE_BYTES = 300 * 1024
SCHEMA_TYPES = ("FAQPage", "HowTo", "Organization", "Product")
_QUESTION = re.compile(r"\?\s*$|^(how|what|why|when|where|which|who|can|does|do|is|are|"
                       r"should|will)\b", re.IGNORECASE)
_UPDATED = re.compile(r"\b(updated|last updated|last modified|modified)\b[:\s]", re.IGNORECASE)
_LINK = re.compile(r"^\s*-\s*\[([^\]]+)\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    fix: str = ""


def robots_access(robots: str | None, crawlers: Iterable[tuple[str, str]]
                  ) -> list[dict[str, Any]]:
    """For each (crawler, category): may it fetch ``/``?"""
    parser = urllib.robotparser.RobotFileParser()
    parser.parse((robots or "").splitlines())
    return [{"crawler": name, "category": category,
             "allowed": parser.can_fetch(name, "/") if robots is not None else True}
            for name, category in crawlers]


def llms_problems(text: str | None, pages: Iterable[str], base: str) -> list[str]:
    """What is wrong with ``llms.txt`` (nothing when it is fine)."""
    if text is None:
        return ["no llms.txt: add one listing your key pages (https://llmstxt.org)"]
    lines = [line for line in text.splitlines() if line.strip()]
    problems = []
    if not lines or not re.match(r"^# \S", lines[0]):
        problems.append("llms.txt must start with a '# Title' line")
    links = [m.group(2) for line in lines if (m := _LINK.match(line))]
    if not links:
        problems.append("llms.txt lists no '- [name](url)' link")
    known = {p.rstrip("/") or "/" for p in pages}
    host = urlsplit(base).netloc
    for url in links:
        parts = urlsplit(url)
        if parts.netloc and parts.netloc != host:
            continue  # another site: not checked
        path = (parts.path.rstrip("/") or "/")
        if path not in known:
            problems.append(f"llms.txt links to {url}, which is not a page of the site")
    return problems


def page_checks(path: str, html: bytes, base: str) -> list[Check]:
    """Every page check of *html* (see the module docstring)."""
    try:
        doc = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return [Check("server_rendered", False, "the page is empty")]
    head_title = " ".join(" ".join(doc.xpath("//title//text()")).split())
    description = (doc.xpath("//meta[@name='description']/@content") or [""])[0].strip()
    h1s = doc.xpath("//h1")
    subheads = [" ".join(h.text_content().split()) for h in doc.xpath("//h2|//h3")]
    items, broken = _json_ld(doc, html, base)
    types = {t for item in items for t in _types(item)}
    body = (doc.xpath("//body") or [doc])[0]
    for gone in body.xpath(".//script|.//style|.//noscript|.//template"):
        gone.drop_tree()
    words = len(body.text_content().split())
    first = _first_paragraph(doc)
    canonical = [str(h) for h in doc.xpath("//link[@rel='canonical']/@href")]
    dated = bool(body.xpath(".//time")) or bool(_UPDATED.search(body.text_content()))
    return [
        Check("title", 10 <= len(head_title) <= 70,
              "give the page a <title> of 10-70 characters naming its subject"),
        Check("description", 50 <= len(description) <= 170,
              "add a meta description of 50-170 characters that answers what the page is"),
        Check("one_h1", len(h1s) == 1, f"use exactly one <h1> (found {len(h1s)})"),
        Check("question_headings", len(subheads) < 2 or any(_QUESTION.search(h)
                                                             for h in subheads),
              "phrase subheadings as the questions buyers ask ('How much does X cost?')"),
        Check("schema", bool(types & set(SCHEMA_TYPES)) and not broken,
              broken or "add schema.org JSON-LD: FAQPage, HowTo, Organization or Product"),
        Check("answer_first", first is not None and 8 <= len(first.split()) <= 80,
              "open with a paragraph that answers the page's question in 8-80 words"),
        Check("date_modified", dated,
              "show on the page when it was last updated ('Updated <time>...</time>'), "
              "besides dateModified in its JSON-LD"),
        Check("canonical", any(c.startswith(("http://", "https://")) for c in canonical),
              "add <link rel=\"canonical\" href=\"https://...\"> with the page's own URL"),
        Check("server_rendered", words >= 50,
              f"render the text on the server: only {words} word{'s' * (words != 1)} "
              f"{'are' if words != 1 else 'is'} in the HTML, and AI crawlers do not run "
              "JavaScript"),
        Check("page_weight", len(html) <= MAX_PAGE_BYTES,
              f"the HTML weighs {len(html) // 1024} KB: keep it under "
              f"{MAX_PAGE_BYTES // 1024} KB"),
    ]


def _json_ld(doc: Any, html: bytes, base: str) -> tuple[list[dict[str, Any]], str]:
    """The page's JSON-LD items, and what to fix when a block is not valid JSON ("" when
    none). extruct reads every block or none: one broken block hid the valid others, and
    the advice was to add what the page had; so a failure reads the blocks one by one."""
    try:
        data = extruct.extract(html, base_url=base, syntaxes=["json-ld"], uniform=True)
        return _items(data.get("json-ld", [])), ""
    except (ValueError, TypeError, etree.ParserError):
        pass
    found: list[Any] = []
    errors = []
    blocks = doc.xpath("//script[@type='application/ld+json']")
    for block in blocks:
        text = (block.text or "").strip()
        # what extruct strips too: an HTML comment or CDATA wrapper some CMSs add
        text = re.sub(r"^(<!--|<!\[CDATA\[)|(-->|\]\]>)$", "", text).strip()
        try:
            value = json.loads(text)
        except ValueError as exc:
            errors.append(f"{exc.msg} at line {exc.lineno} column {exc.colno}"
                          if isinstance(exc, json.JSONDecodeError) else str(exc))
            continue
        found += value if isinstance(value, list) else [value]
    if not errors:
        return _items(found), ""
    return _items(found), (f"{len(errors)} of the page's {len(blocks)} JSON-LD block(s) "
                           f"{'is' if len(errors) == 1 else 'are'} not valid JSON "
                           f"({errors[0]}): crawlers skip {'it' if len(errors) == 1 else 'them'}; "
                           "fix the JSON")


def _items(found: list[Any]) -> list[dict[str, Any]]:
    """JSON-LD items, ``@graph`` members included."""
    out: list[dict[str, Any]] = []
    for item in found:
        if isinstance(item, dict):
            out.append(item)
            graph = item.get("@graph")
            if isinstance(graph, list):
                out += [g for g in graph if isinstance(g, dict)]
    return out


def _types(item: dict[str, Any]) -> list[str]:
    t = item.get("@type")
    return [str(x) for x in t] if isinstance(t, list) else [str(t)] if t else []


def _first_paragraph(doc: Any) -> str | None:
    """The text of the first ``<p>`` after the ``<h1>`` (or in the page, without one)."""
    h1 = doc.xpath("//h1")
    found = h1[0].xpath("following::p[normalize-space()][1]") if h1 else \
        doc.xpath("//p[normalize-space()][1]")
    return " ".join(found[0].text_content().split()) if found else None


def audit(base: str, robots: str | None, llms: str | None, sitemap: list[str] | None,
          pages: dict[str, bytes], crawlers: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The whole audit: the site's checks, then each page's checks and score."""
    access = robots_access(robots, crawlers)
    blocked = [a for a in access if not a["allowed"]]
    site: list[dict[str, Any]] = []
    if robots is None:
        site.append({"check": "robots.txt", "ok": True, "note": "no robots.txt: every "
                     "crawler may read the site"})
    quoted = [a["crawler"] for a in blocked if a["category"] in ("search", "user")]
    site.append({"check": "ai_search_crawlers_allowed", "ok": not quoted,
                 "fix": ("robots.txt blocks " + ", ".join(quoted) + ": answer engines "
                         "cannot read or quote the site") if quoted else "",
                 "note": "" if quoted else "every AI search and user crawler may read the "
                 "site"})
    trained = [a["crawler"] for a in blocked if a["category"] in ("training", "agent")]
    site.append({"check": "training_crawlers", "ok": True,
                 "note": ("blocked by choice: " + ", ".join(trained)) if trained else
                 "none blocked"})
    problems = llms_problems(llms, pages, base)
    site.append({"check": "llms_txt", "ok": not problems, "fix": "; ".join(problems),
                 "note": "" if problems else "a title and links, each to a page of the site"})
    if sitemap is None:
        site.append({"check": "sitemap", "ok": False,
                     "fix": "add a sitemap.xml (and name it in robots.txt)"})
    else:
        listed = {p.rstrip("/") or "/" for p in sitemap}
        missing = sorted(p for p in pages if (p.rstrip("/") or "/") not in listed)
        site.append({"check": "sitemap", "ok": not missing,
                     "fix": ("add to the sitemap: " + ", ".join(missing)) if missing else "",
                     "note": "" if missing else "it lists every page audited"})
    rows: list[dict[str, Any]] = []
    scores: list[int] = []
    for path, html in sorted(pages.items()):
        checks = page_checks(path, html, base)
        passed = sum(c.ok for c in checks)
        scores.append(round(100 * passed / len(checks)))
        rows.append({"page": path, "score": scores[-1], "passed": passed,
                     "checks": len(checks), "fixes": [asdict(c) for c in checks if not c.ok]})
    return {"base": base, "site": site, "crawlers": access, "pages": rows,
            "score": round(sum(scores) / len(scores)) if scores else 0}

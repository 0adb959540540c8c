"""The vendor's own pages as sections of text: what chat answers from and search finds.

A page (HTML or Markdown) becomes its title, its canonical URL when it names one, and its
**sections**: the text under each heading, in document order. :func:`passages` cuts sections
into passages of at most a few sentences, each keeping the page's title, URL and the
heading it sits under, so an answer can cite where it came from.

HTML is parsed with lxml (the parser extruct and most scrapers use); what is not content is
left out: scripts, styles, navigation, headers, footers, forms, asides. When a page has a
``<main>`` or ``<article>``, only that is read. Markdown is parsed with markdown-it-py
(CommonMark), after an optional front matter block whose ``title:`` and ``url:`` lines win.

Example:
    >>> page = parse_markdown("# Pricing\\n\\nPlans start at $49 per seat.", "https://x.io/p")
    >>> page.title, page.sections[0].heading, page.sections[0].text
    ('Pricing', 'Pricing', 'Plans start at $49 per seat.')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.html
from lxml import etree
from markdown_it import MarkdownIt

#: elements whose text is never content
_SKIP = frozenset({"script", "style", "noscript", "nav", "header", "footer", "form", "aside",
                   "svg", "template", "iframe", "button", "select", "head"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
#: block elements whose whole text is one paragraph
_BLOCKS = frozenset({"p", "li", "td", "th", "pre", "blockquote", "dd", "dt", "figcaption",
                     "summary", "caption", "address"})
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Section:
    heading: str
    text: str


@dataclass(frozen=True)
class Page:
    url: str
    title: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Passage:
    url: str
    title: str
    heading: str
    text: str


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def parse_html(raw: bytes | str, url: str) -> Page:
    """*raw* HTML as a :class:`Page`; its URL is the canonical link when the page has an
    absolute one, else *url*."""
    try:
        root = lxml.html.fromstring(raw)
    except (etree.ParserError, ValueError):  # empty or not HTML at all
        return Page(url, "", ())
    canonical = next((str(h) for h in root.xpath("//link[@rel='canonical']/@href")
                      if str(h).startswith(("http://", "https://"))), url)
    title = _clean(" ".join(str(t) for t in root.xpath("//title//text()")))
    body = (root.xpath("//main") or root.xpath("//article") or root.xpath("//body")
            or [root])[0]
    sections: list[Section] = []
    heading, texts = "", list[str]()

    def flush() -> None:
        text = _clean(" ".join(texts))
        if text:
            sections.append(Section(heading, text))

    def walk(el: lxml.html.HtmlElement) -> None:
        nonlocal heading, texts
        for child in el:
            tag = child.tag if isinstance(child.tag, str) else None  # None: a comment
            if tag is None or tag in _SKIP:
                pass
            elif tag in _HEADINGS:
                flush()
                heading, texts = _clean(child.text_content()), []
            elif tag in _BLOCKS:  # one paragraph: ends a sentence (list items have no stop)
                block = _clean(_text(child))
                if block:
                    texts.append(block if block[-1] in ".!?:;" else block + ".")
            else:
                if child.text:
                    texts.append(child.text)
                walk(child)
            if child.tail:
                texts.append(child.tail)

    if body.text:
        texts.append(body.text)
    walk(body)
    flush()
    if not title:
        first = root.xpath("//h1")
        title = _clean(first[0].text_content()) if first else ""
    return Page(canonical, title, tuple(sections))


def _text(el: lxml.html.HtmlElement) -> str:
    """An element's text without what is never content inside it."""
    parts = [el.text or ""]
    for child in el:
        if isinstance(child.tag, str) and child.tag not in _SKIP:
            parts.append(_text(child))
        parts.append(child.tail or "")
    return " ".join(parts)


_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
_MD = MarkdownIt("commonmark")
#: inline tokens that carry text (breaks count as a space)
_INLINE = frozenset({"text", "code_inline", "softbreak", "hardbreak"})


def parse_markdown(text: str, url: str) -> Page:
    """Markdown as a :class:`Page` (front matter ``title:`` / ``url:`` win over the first
    heading and *url*)."""
    meta: dict[str, str] = {}
    front = _FRONT.match(text)
    if front:
        for line in front.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep:
                meta[key.strip().lower()] = value.strip().strip("\"'")
        text = text[front.end():]
    sections: list[Section] = []
    heading, texts, title = "", list[str](), meta.get("title", "")
    in_heading = False
    for token in _MD.parse(text):
        if token.type == "heading_open":
            body = _clean(" ".join(texts))
            if body:
                sections.append(Section(heading, body))
            texts, in_heading = [], True
        elif token.type == "heading_close":
            in_heading = False
        elif token.type == "inline":
            plain = "".join(c.content if c.type in ("text", "code_inline") else " "
                            for c in token.children if c.type in _INLINE
                            ) if token.children else token.content
            if in_heading:
                heading = _clean(plain)
                title = title or heading
            else:
                texts.append(plain)
        elif token.type in ("fence", "code_block"):
            texts.append(token.content)
    body = _clean(" ".join(texts))
    if body:
        sections.append(Section(heading, body))
    return Page(meta.get("url") or url, title, tuple(sections))


def passages(page: Page, max_words: int = 90) -> list[Passage]:
    """*page*'s sections cut into passages of whole sentences, each at most *max_words*
    words (a longer sentence is cut between words)."""
    out: list[Passage] = []
    for section in page.sections:
        chunk: list[str] = []
        size = 0
        for sentence in _SENTENCE.split(section.text):
            words = sentence.split()
            while len(words) > max_words:  # a run-on sentence or a list without stops
                if chunk:
                    out.append(Passage(page.url, page.title, section.heading, " ".join(chunk)))
                    chunk, size = [], 0
                out.append(Passage(page.url, page.title, section.heading,
                                   " ".join(words[:max_words])))
                words = words[max_words:]
            if size + len(words) > max_words and chunk:
                out.append(Passage(page.url, page.title, section.heading, " ".join(chunk)))
                chunk, size = [], 0
            if words:
                chunk.append(" ".join(words))
                size += len(words)
        if chunk:
            out.append(Passage(page.url, page.title, section.heading, " ".join(chunk)))
    return out


_SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


@dataclass(frozen=True)
class Sitemap:
    """A sitemap's entries, (URL, lastmod); in a ``<sitemapindex>`` they are sitemaps."""

    index: bool
    entries: list[tuple[str, str]]


def parse_sitemap(data: bytes) -> Sitemap:
    """A sitemap (``<urlset>``) or sitemap index (``<sitemapindex>``); ValueError when it
    is not XML. Entities are never resolved nor fetched."""
    try:
        root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False,
                                                            no_network=True))
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not valid XML: {exc}") from None
    index = root.tag == f"{_SITEMAP}sitemapindex"
    entries = []
    for node in root.iter(f"{_SITEMAP}sitemap" if index else f"{_SITEMAP}url"):
        loc = (node.findtext(f"{_SITEMAP}loc") or "").strip()
        if loc:
            entries.append((loc, (node.findtext(f"{_SITEMAP}lastmod") or "").strip()))
    return Sitemap(index, entries)

"""A site as ``demandloop aeo audit`` reads it: its ``robots.txt``, ``llms.txt``, sitemap and
pages, from a folder of files or from the running site.

* **A folder** (the site's build output): ``robots.txt``, ``llms.txt`` and ``sitemap.xml``
  at its root, and every ``.html`` page under it (``pricing/index.html`` is the page
  ``/pricing/``).
* **A URL**: ``/robots.txt``, ``/llms.txt``, the sitemap that ``robots.txt`` names (else
  ``/sitemap.xml``), and the home page, the pages it links to and those the sitemap lists,
  at most ``limit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import lxml.html
from lxml import etree

from demandloop.collect.content import USER_AGENT
from demandloop.collect.pages import parse_sitemap
from demandloop.errors import UsageError


@dataclass
class Site:
    """What an audit reads (paths are site paths such as ``/pricing/``)."""

    base: str
    robots: str | None = None
    llms: str | None = None
    #: the sitemap's page paths, or None without a sitemap
    sitemap: list[str] | None = None
    #: path -> the page's HTML
    pages: dict[str, bytes] = field(default_factory=dict)
    #: what could not be read, and why
    failed: dict[str, str] = field(default_factory=dict)


def read_site(source: str, limit: int = 200, timeout: float = 10.0) -> Site:
    """The site at *source* (a folder or an http(s) URL)."""
    if source.startswith(("http://", "https://")):
        return _served(source.rstrip("/") + "/", limit, timeout)
    root = Path(source)
    if not root.is_dir():
        raise UsageError(f"'{source}' is neither a folder nor an http(s) URL",
                         hint="audit the site's build folder or its address")
    site = Site(base="/")
    for name in ("robots.txt", "llms.txt"):
        f = root / name
        if f.is_file():
            setattr(site, name.split(".")[0], f.read_text(encoding="utf-8", errors="replace"))
    if (root / "sitemap.xml").is_file():
        site.sitemap = _sitemap_paths((root / "sitemap.xml").read_bytes(), site)
    for f in sorted(root.rglob("*.html"))[:limit]:
        rel = f.relative_to(root).as_posix()
        path = "/" + (rel[: -len("index.html")] if rel.endswith("index.html") else rel)
        site.pages[path] = f.read_bytes()
    return site


def _sitemap_paths(data: bytes, site: Site) -> list[str]:
    try:
        found = parse_sitemap(data)
    except ValueError as exc:
        site.failed["sitemap.xml"] = str(exc)
        return []
    return [urlsplit(loc).path or "/" for loc, _ in found.entries]


def _served(base: str, limit: int, timeout: float) -> Site:
    site = Site(base=base)
    with httpx.Client(timeout=timeout, follow_redirects=True,
                      headers={"User-Agent": USER_AGENT}) as client:
        def get(url: str) -> httpx.Response | None:
            try:
                r = client.get(url)
            except httpx.HTTPError as exc:
                site.failed[url] = f"{type(exc).__name__}: {exc}"
                return None
            return r if r.status_code == 200 else None

        robots = get(urljoin(base, "/robots.txt"))
        site.robots = robots.text if robots is not None else None
        llms = get(urljoin(base, "/llms.txt"))
        site.llms = llms.text if llms is not None else None
        named = [line.split(":", 1)[1].strip() for line in (site.robots or "").splitlines()
                 if line.lower().startswith("sitemap:")]
        # robots.txt should name it in full; a relative one is read against the site
        sitemap = get(urljoin(base, named[0] if named else "/sitemap.xml"))
        if sitemap is not None:
            site.sitemap = _sitemap_paths(sitemap.content, site)
        queue = ["/", *(site.sitemap or [])]
        while queue and len(site.pages) < limit:
            path = queue.pop(0)
            if path in site.pages:
                continue
            page = get(urljoin(base, path))
            if page is None:
                continue
            site.pages[path] = page.content
            if path == "/":  # the pages the home page links to: what the sitemap must hold
                queue += _links(page.content, base)
    return site


def _links(html: bytes, base: str) -> list[str]:
    """The site's own pages a page links to (paths, in order, without duplicates)."""
    try:
        doc = lxml.html.fromstring(html)
    except (etree.ParserError, ValueError):
        return []
    host = urlsplit(base).netloc
    out: list[str] = []
    for href in doc.xpath("//a/@href"):
        parts = urlsplit(urljoin(base, str(href)))
        if parts.scheme in ("http", "https") and parts.netloc == host and \
                (parts.path or "/") not in out:
            out.append(parts.path or "/")
    return out

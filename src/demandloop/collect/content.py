"""Read the vendor's own pages for the content index: files, folders, pages and sitemaps.

``demandloop content index SOURCE...`` takes, per source:

* a **file** (``.html``, ``.htm``, ``.md``, ``.markdown``) or a **folder** of them (read
  recursively). A file's URL is its canonical link (HTML) or front-matter ``url:``
  (Markdown), else ``content.base_url`` joined with its path in the folder
  (``pricing/index.html`` -> ``<base>/pricing/``, ``docs/setup.md`` -> ``<base>/docs/setup``),
  else its ``file://`` URI;
* an **http(s) URL** of a page, or of a **sitemap** (``<urlset>``, or a ``<sitemapindex>``
  of them), whose pages are then read.

**Incremental:** what the last index read is kept per page (its bytes' hash, ``ETag``,
``Last-Modified`` and the sitemap's ``<lastmod>``). A file whose bytes are unchanged, a
sitemap page whose ``<lastmod>`` is unchanged, and a page the server answers ``304 Not
Modified`` to a conditional GET are not parsed again: their passages are reused. A source's
pages that are gone (file deleted, URL left the sitemap, 404 or 410) leave the index; a page
that fails otherwise (timeout, 5xx) keeps its last version, and the failure is reported.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import httpx

from demandloop.collect.pages import (
    Page,
    Passage,
    parse_html,
    parse_markdown,
    parse_sitemap,
    passages,
)
from demandloop.errors import UsageError

SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md"}
#: a page larger than this is not content (a data dump, a video): skipped and reported
MAX_BYTES = 5 * 2**20
USER_AGENT = "demandloop-content/1 (+https://github.com/demandloop)"


@dataclass
class Known:
    """What the last index kept of one page (see :data:`~demandloop.activate.knowledge.
    PAGE_SCHEMA`), and its passages."""

    location: str
    url: str
    title: str
    source: str
    hash: str
    etag: str = ""
    last_modified: str = ""
    lastmod: str = ""
    indexed_at: float = 0.0
    passages: list[Passage] = field(default_factory=list)


@dataclass
class Gathered:
    pages: list[Known] = field(default_factory=list)
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    #: location -> why it could not be read (the page keeps its last version, if any)
    failed: dict[str, str] = field(default_factory=dict)
    #: the longest passage of this run, in words
    max_words: int = 90


def gather(sources: list[str], known: dict[str, Known], base_url: str = "",
           timeout: float = 10.0, workers: int = 8, max_words: int = 90) -> Gathered:
    """Read *sources* against *known* (location -> page of the last index) and return
    every page the index should now hold: those of *sources* (read or reused) and those of
    other sources, kept as they were."""
    out = Gathered(max_words=max_words)
    names = [_source_name(s) for s in sources]
    seen: set[str] = set()
    with httpx.Client(timeout=timeout, follow_redirects=True,
                      headers={"User-Agent": USER_AGENT}) as client:
        for source, name in zip(sources, names, strict=True):
            for page in _read_source(source, name, known, base_url, client, workers, out):
                if page.location in seen:
                    continue
                seen.add(page.location)
                out.pages.append(page)
    for loc, page in known.items():
        if loc in seen:
            continue
        if page.source in names and loc not in out.failed:
            out.removed += 1
        else:
            out.pages.append(page)  # another source's page, or one that failed this time
    return out


def _source_name(source: str) -> str:
    if source.startswith(("http://", "https://")):
        return source
    path = Path(source)
    if not path.exists():
        raise UsageError(f"content source '{source}' is not a file, a folder or an http(s) "
                         "URL", hint="give a folder of .html/.md files, a page URL or a "
                         "sitemap URL")
    return str(path.resolve())


def _read_source(source: str, name: str, known: dict[str, Known], base_url: str,
                 client: httpx.Client, workers: int, out: Gathered) -> Iterable[Known]:
    if not source.startswith(("http://", "https://")):
        return _read_files(Path(name), name, known, base_url, out)
    response = _get(client, source, None, out)
    if response is None:
        return []
    if _is_sitemap(response):
        entries = _sitemap(client, response, out)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            found = pool.map(lambda e: _read_url(client, e[0], e[1], name, known, out),
                             entries)
            return [p for p in found if p is not None]
    page = _page_from(response, source, name, known.get(source), "", out)
    return [page] if page is not None else []


def _read_files(root: Path, name: str, known: dict[str, Known], base_url: str,
                out: Gathered) -> list[Known]:
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    pages = []
    for path in files:
        kind = SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise UsageError(f"{path}: not an .html, .htm, .md or .markdown file",
                             hint="index a folder of pages, or a page or sitemap URL")
        raw = path.read_bytes()
        location = str(path.resolve())
        digest = hashlib.sha256(raw).hexdigest()
        before = known.get(location)
        if before is not None and before.hash == digest:
            out.unchanged += 1
            pages.append(before)
            continue
        rel = path.relative_to(root).as_posix() if root.is_dir() else path.name
        url = _file_url(base_url, rel) if base_url else path.resolve().as_uri()
        text = raw.decode("utf-8", errors="replace")
        page = parse_html(raw, url) if kind == "html" else parse_markdown(text, url)
        pages.append(_known(page, location, name, digest, before, out))
    return pages


def _file_url(base: str, rel: str) -> str:
    """A file's URL on the site: ``index.html`` is its folder, extensions are dropped."""
    for suffix in ("index.html", "index.htm", "index.md"):
        if rel == suffix or rel.endswith("/" + suffix):
            rel = rel[: -len(suffix)]
            break
    else:
        for suffix in SUFFIXES:
            if rel.lower().endswith(suffix):
                rel = rel[: -len(suffix)]
                break
    return urljoin(base if base.endswith("/") else base + "/", rel)


def _known(page: Page, location: str, source: str, digest: str, before: Known | None,
           out: Gathered, etag: str = "", last_modified: str = "", lastmod: str = ""
           ) -> Known:
    if before is None:
        out.added += 1
    else:
        out.changed += 1
    return Known(location, page.url, page.title, source, digest, etag, last_modified,
                 lastmod, time.time(), passages(page, out.max_words))


def _get(client: httpx.Client, url: str, before: Known | None, out: Gathered
         ) -> httpx.Response | None:
    headers = {}
    if before is not None and before.etag:
        headers["If-None-Match"] = before.etag
    if before is not None and before.last_modified:
        headers["If-Modified-Since"] = before.last_modified
    try:
        response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        out.failed[url] = f"{type(exc).__name__}: {exc}"
        return None
    if response.status_code == 304 or response.status_code in (404, 410):
        return response
    if response.status_code != 200:
        out.failed[url] = f"HTTP {response.status_code}"
        return None
    if len(response.content) > MAX_BYTES:
        out.failed[url] = f"larger than {MAX_BYTES // 2**20} MB"
        return None
    return response


def _is_sitemap(response: httpx.Response) -> bool:
    if response.status_code != 200:
        return False
    head = response.content[:512].lstrip().lower()
    return b"<urlset" in head or b"<sitemapindex" in head


def _sitemap(client: httpx.Client, response: httpx.Response, out: Gathered,
             depth: int = 0) -> list[tuple[str, str]]:
    """(page URL, lastmod) of a sitemap, following a sitemap index one level down."""
    try:
        found = parse_sitemap(response.content)
    except ValueError as exc:
        out.failed[str(response.url)] = f"not a valid sitemap: {exc}"
        return []
    if not found.index:
        return found.entries
    entries: list[tuple[str, str]] = []
    if depth == 0:
        for loc, _ in found.entries:
            child = _get(client, loc, None, out)
            if child is not None and _is_sitemap(child):
                entries += _sitemap(client, child, out, depth + 1)
    return entries


def _read_url(client: httpx.Client, url: str, lastmod: str, source: str,
              known: dict[str, Known], out: Gathered) -> Known | None:
    before = known.get(url)
    if before is not None and lastmod and before.lastmod == lastmod:
        out.unchanged += 1
        return before
    response = _get(client, url, before, out)
    if response is None:
        return None
    return _page_from(response, url, source, before, lastmod, out)


def _page_from(response: httpx.Response, location: str, source: str, before: Known | None,
               lastmod: str, out: Gathered) -> Known | None:
    if response.status_code in (404, 410):
        return None
    if response.status_code == 304 and before is not None:
        out.unchanged += 1
        return before
    raw = response.content
    digest = hashlib.sha256(raw).hexdigest()
    etag = response.headers.get("etag", "")
    modified = response.headers.get("last-modified", "")
    if before is not None and before.hash == digest:
        out.unchanged += 1
        before.etag, before.last_modified, before.lastmod = etag, modified, lastmod
        return before
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    url = str(response.url)
    if kind in ("text/markdown", "text/x-markdown", "text/plain") or url.endswith(".md"):
        page = parse_markdown(response.text, url)
    else:
        page = parse_html(raw, url)
    return _known(page, location, source, digest, before, out, etag, modified, lastmod)

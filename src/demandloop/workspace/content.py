"""The content verbs of the workspace: index the vendor's pages, search them.

Reading is collect's (:mod:`demandloop.collect.content`), the index is activate's
(:mod:`demandloop.activate.knowledge`); this joins them: the last generation's pages are
what a re-index skips unchanged, and the new generation is published atomically, so a
server answering chat meanwhile keeps its index until the new one is whole.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from demandloop.activate import knowledge
from demandloop.collect.content import Known, gather
from demandloop.collect.pages import Passage
from demandloop.store import generations
from demandloop.workspace.base import Base


@dataclass
class IndexResult:
    pages: int
    passages: int
    added: int
    changed: int
    unchanged: int
    removed: int
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    generation: str = ""
    #: pages with no address on the site (from a folder, with no ``content.base_url``,
    #: canonical link or ``url:``): cited by their ``file://`` path, which chat never shows
    unaddressed: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def known_pages(index: knowledge.Knowledge | None) -> dict[str, Known]:
    """The pages of *index* as :class:`Known` (location -> page with its passages)."""
    if index is None:
        return {}
    pages = {}
    for r in index.pages.to_pylist():
        text = {k: str(r[k] or "") for k in ("location", "url", "title", "source", "hash",
                                              "etag", "last_modified", "lastmod")}
        pages[text["location"]] = Known(
            text["location"], text["url"], text["title"], text["source"], text["hash"],
            text["etag"], text["last_modified"], text["lastmod"],
            float(r["indexed_at"] or 0.0))
    for r in index.passages.to_pylist():
        page = pages.get(r["location"])
        if page is not None:
            page.passages.append(Passage(r["url"], r["title"], r["heading"], r["text"]))
    return pages


def _tables(pages: list[Known]) -> tuple[pa.Table, pa.Table]:
    rows = [{k: getattr(p, k) for k in knowledge.PAGE_SCHEMA.names} for p in pages]
    passages = [{"location": p.location, "url": x.url, "title": x.title,
                 "heading": x.heading, "text": x.text} for p in pages for x in p.passages]
    return (pa.Table.from_pylist(rows, schema=knowledge.PAGE_SCHEMA),
            pa.Table.from_pylist(passages, schema=knowledge.PASSAGE_SCHEMA))


class Content(Base):
    """The vendor's own pages: what chat answers from and the dashboard searches."""

    def content_root(self) -> Path:
        return Path(self.directory) / knowledge.INDEX_DIR

    def index_content(self, sources: list[str]) -> IndexResult:
        """Read *sources* (files, folders, page or sitemap URLs) into the content index,
        re-reading only what changed since the last index."""
        started = time.perf_counter()
        before = knowledge.load(self.content_root())
        got = gather(sources, known_pages(before), self.settings.content.base_url,
                     max_words=self.settings.content.passage_words)
        pages, passages = _tables(got.pages)
        folder = generations.new_generation(self.content_root())
        knowledge.write(folder, pages, passages)
        name = generations.publish(folder)
        return IndexResult(pages.num_rows, passages.num_rows, got.added, got.changed,
                           got.unchanged, got.removed, got.failed,
                           time.perf_counter() - started, name,
                           sum(p.url.startswith("file:") for p in got.pages))

    def content_index(self) -> knowledge.Knowledge | None:
        """The current content index (None before the first ``content index``)."""
        return knowledge.load(self.content_root())

    def search_content(self, query: str, k: int = 5) -> list[dict[str, Any]]:
        """The *k* passages that best answer *query*, with their page and relevance."""
        index = self.content_index()
        return [asdict(h) for h in (index.search(query, k) if index else [])]

"""The content index: BM25 over the passages of the vendor's own pages (``bm25s``).

An index is a generation folder under ``<workspace>/content/`` (see
:mod:`demandloop.store.generations`): ``pages.arrow`` (one row per page read, with what a
re-index needs to skip it unchanged), ``passages.arrow`` (url, title, heading, text) and
``bm25/`` (bm25s's sparse matrix, memory-mapped when loaded). Chat answers from it and the
dashboard searches it.

Text is tokenised the same way for passages and queries: lower-case words of two or more
characters, English stop words removed (bm25s's longer list; a question also loses the
words of asking: "do you support SSO?" is about SSO), Snowball-stemmed (PyStemmer), so
"pricing" finds "price". A passage is indexed with its page title and heading, which name
what it is about.

**Relevance** (for "I don't know"): BM25 scores are not comparable across queries, so an
answer is judged by how much of the question the best passage covers, each query term
weighted by its rarity (BM25's idf; a term no passage holds gets the highest idf)::

    relevance = sum(idf of query terms in the passage) / sum(idf of all query terms)

A question about something the content never mentions then scores near 0 whatever BM25
says, and one whose rare, specific terms are all in a passage scores near 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import pyarrow as pa
import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

from demandloop.store import generations

INDEX_DIR = "content"
_STEMMER = Stemmer.Stemmer("english")
_STOP = list(STOPWORDS_EN_PLUS)
#: words of a question that say nothing of its subject ("do you support SSO?" is about SSO)
_ASKING = [*_STOP, "much", "many", "support", "supports", "offer", "offers", "tell", "need",
           "want", "know", "please", "hi", "hello", "thanks", "thank", "help", "anything",
           "something", "get", "use", "like", "would", "could", "can", "may"]

PAGE_SCHEMA = pa.schema([
    ("location", pa.string()),       # what was read: a file path or a fetched URL
    ("url", pa.string()),            # what answers cite (the canonical URL)
    ("title", pa.string()),
    ("source", pa.string()),         # the argument of `content index` it came from
    ("hash", pa.string()),           # sha256 of the bytes read
    ("etag", pa.string()),
    ("last_modified", pa.string()),  # the Last-Modified header, for a conditional GET
    ("lastmod", pa.string()),        # the sitemap's <lastmod>
    ("indexed_at", pa.float64()),
])
PASSAGE_SCHEMA = pa.schema([("location", pa.string()), ("url", pa.string()),
                            ("title", pa.string()), ("heading", pa.string()),
                            ("text", pa.string())])


@dataclass(frozen=True)
class Hit:
    url: str
    title: str
    heading: str
    text: str
    score: float
    relevance: float


def tokenize(texts: list[str], query: bool = False) -> list[list[str]]:
    """Each text's stemmed tokens, as the index is tokenised (a *query* also loses the
    words of asking)."""
    tokens: list[list[str]] = bm25s.tokenize(texts, stopwords=_ASKING if query else _STOP,
                                             stemmer=_STEMMER, return_ids=False,
                                             show_progress=False)
    return tokens


def write(folder: Path, pages: pa.Table, passages: pa.Table) -> None:
    """Index *passages* and write the generation *folder* (not yet published)."""
    generations.write_table(folder / "pages.arrow", pages.cast(PAGE_SCHEMA))
    generations.write_table(folder / "passages.arrow", passages.cast(PASSAGE_SCHEMA))
    if passages.num_rows:
        texts = [f"{t} {h} {x}" for t, h, x in zip(
            passages["title"].to_pylist(), passages["heading"].to_pylist(),
            passages["text"].to_pylist(), strict=True)]
        retriever = bm25s.BM25()
        retriever.index(tokenize(texts), show_progress=False)
        retriever.save(str(folder / "bm25"), show_progress=False)


class Knowledge:
    """One loaded index generation: :meth:`search` it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.generation = folder.name
        self.pages = generations.read_table(folder / "pages.arrow")
        self.passages = generations.read_table(folder / "passages.arrow")
        self._retriever: bm25s.BM25 | None = None
        self._idf: np.ndarray = np.zeros(0)
        if self.passages.num_rows and (folder / "bm25").is_dir():
            r = bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False)
            indptr = np.asarray(r.scores["indptr"])
            n = float(r.scores["num_docs"])
            df = np.diff(indptr).astype(float)
            self._idf = np.log1p((n - df + 0.5) / (df + 0.5))
            self._unknown_idf = math.log1p((n + 0.5) / 0.5)
            self._indptr = indptr
            self._indices = np.asarray(r.scores["indices"])
            self._retriever = r
        # columns as lists once: a hit then costs list indexing, not an Arrow slice
        self._cols = {c: self.passages[c].to_pylist() for c in ("url", "title", "heading",
                                                               "text")}

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The *k* best passages for *query*, best first (none when no term matches)."""
        r = self._retriever
        terms = list(dict.fromkeys(tokenize([query], query=True)[0]))
        if r is None or not terms:
            return []
        vocab = r.vocab_dict
        ids = [vocab[t] for t in terms if t in vocab]
        if not ids:
            return []
        scores = r.get_scores_from_ids(ids)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        total = sum(float(self._idf[vocab[t]]) if t in vocab else self._unknown_idf
                    for t in terms)
        hits = []
        for doc in top.tolist():
            if scores[doc] <= 0:
                break
            covered = sum(float(self._idf[i]) for i in ids if self._holds(i, doc))
            hits.append(Hit(self._cols["url"][doc], self._cols["title"][doc],
                            self._cols["heading"][doc], self._cols["text"][doc],
                            float(scores[doc]), covered / total if total else 0.0))
        return hits

    def _holds(self, token: int, doc: int) -> bool:
        """Whether passage *doc* contains token *token* (its posting list is sorted)."""
        lo, hi = int(self._indptr[token]), int(self._indptr[token + 1])
        i = lo + int(np.searchsorted(self._indices[lo:hi], doc))
        return bool(i < hi and int(self._indices[i]) == doc)


def load(root: Path) -> Knowledge | None:
    """The current index generation under *root* (``<workspace>/content``), or None."""
    generation = generations.current_generation(root)
    return Knowledge(root / generation) if generation else None

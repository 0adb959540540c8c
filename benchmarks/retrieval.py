"""Benchmark: answer retrieval over the content index (what chat answers from).

A site of ``--pages`` HTML pages (default 10,000; 4-6 sections of a few paragraphs each,
words drawn with a Zipf law from the English of this repository's docs plus made-up product
terms) is indexed with ``demandloop content index``; then ``--pages // 100`` pages change and
it is indexed again (incremental). Then ``--queries`` questions, each a few words of a
random passage among words of asking ("how do I ...?"), are answered by
``Knowledge.search`` (top 3 with relevance), one at a time.

The baseline, in the same process over the same passages: SQLite's FTS5 with its BM25
ranking and Porter stemmer (what a Python user reaches for first: it ships with Python),
``MATCH`` of the question's words OR-ed, top 3.

    python benchmarks/retrieval.py                 # 10k pages
    python benchmarks/retrieval.py --pages 1000
"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import demandloop

ASKING = ["how do I", "what is", "can you explain", "do you support", "tell me about",
          "where can I find"]


def vocabulary(rng: random.Random) -> list[str]:
    docs = Path(__file__).resolve().parent.parent / "docs"
    words = sorted({w.lower() for p in docs.glob("*.md")
                    for w in re.findall(r"[A-Za-z]{3,}", p.read_text())})
    syllables = ["ka", "lo", "mi", "ter", "on", "ax", "ri", "zen", "pro", "vel", "qua", "dis"]
    made = {"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
            for _ in range(6000)}
    vocab = words + sorted(made - set(words))
    rng.shuffle(vocab)
    return vocab


def sentence(rng: random.Random, vocab: list[str], weights: list[float]) -> str:
    words = rng.choices(vocab, weights=weights, k=rng.randint(6, 18))
    return " ".join(words).capitalize() + "."


def write_site(folder: Path, pages: int, rng: random.Random, vocab: list[str],
               weights: list[float], only: set[int] | None = None) -> None:
    for i in range(pages):
        if only is not None and i not in only:
            continue
        sections = []
        for _ in range(rng.randint(4, 6)):
            paras = "".join(f"<p>{' '.join(sentence(rng, vocab, weights) for _ in range(3))}</p>"
                            for _ in range(rng.randint(2, 3)))
            sections.append(f"<h2>{sentence(rng, vocab, weights)[:40]}</h2>{paras}")
        title = " ".join(rng.choices(vocab, weights=weights, k=3)).title()
        (folder / f"page{i:05d}.html").write_text(
            f"<html><head><title>{title}</title></head><body><main><h1>{title}</h1>"
            f"{''.join(sections)}</main></body></html>")


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    vocab = vocabulary(rng)
    weights = [1.0 / (r + 1) for r in range(len(vocab))]
    with tempfile.TemporaryDirectory(prefix="dl-retrieval-") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        write_site(site, args.pages, rng, vocab, weights)
        with demandloop.open(Path(tmp) / "ws") as ws:
            t = time.perf_counter()
            first = ws.index_content([str(site)])
            full = time.perf_counter() - t
            changed = set(rng.sample(range(args.pages), max(1, args.pages // 100)))
            write_site(site, args.pages, rng, vocab, weights, only=changed)
            t = time.perf_counter()
            again = ws.index_content([str(site)])
            inc = time.perf_counter() - t
            index = ws.content_index()
        assert index is not None
        texts = index.passages["text"].to_pylist()
        questions, sources = [], []
        for _ in range(args.queries):
            source = rng.randrange(len(texts))
            sources.append(source)
            words = [w for w in re.findall(r"[a-z]{3,}", texts[source].lower())]
            pick = rng.sample(words, min(len(words), rng.randint(2, 5)))
            questions.append(f"{rng.choice(ASKING)} {' '.join(pick)}?")
        for q in questions[:20]:  # warm up both
            index.search(q, 3)
        ours, found = [], 0
        text_of = {t: i for i, t in enumerate(texts)}
        for q, source in zip(questions, sources, strict=True):
            t = time.perf_counter()
            hits = index.search(q, 3)
            ours.append((time.perf_counter() - t) * 1000)
            found += any(text_of.get(h.text) == source for h in hits)

        con = sqlite3.connect(":memory:")
        con.execute("CREATE VIRTUAL TABLE p USING fts5(title, heading, text, "
                    "tokenize='porter unicode61')")
        t = time.perf_counter()
        con.executemany("INSERT INTO p VALUES (?, ?, ?)", zip(
            index.passages["title"].to_pylist(), index.passages["heading"].to_pylist(),
            texts, strict=True))
        con.commit()
        fts_build = time.perf_counter() - t
        base, base_found = [], 0
        for q, source in zip(questions, sources, strict=True):
            terms = " OR ".join(f'"{w}"' for w in re.findall(r"[a-z0-9]{2,}", q.lower()))
            t = time.perf_counter()
            rows = con.execute("SELECT rowid, bm25(p) FROM p WHERE p MATCH ? ORDER BY "
                               "bm25(p) LIMIT 3", [terms]).fetchall()
            base.append((time.perf_counter() - t) * 1000)
            base_found += any(r[0] - 1 == source for r in rows)
    print(f"index: {first.pages:,} pages, {first.passages:,} passages in {full:.1f} s "
          f"(SQLite FTS5 insert of the same passages: {fts_build:.1f} s); re-index with "
          f"{len(changed)} pages changed: {inc:.1f} s ({again.changed} changed, "
          f"{again.unchanged:,} unchanged)")
    p95, b95 = percentile(ours, 0.95), percentile(base, 0.95)
    print(f"retrieval, {len(questions):,} questions, top 3: p50 {statistics.median(ours):.2f} "
          f"ms, p95 {p95:.2f} ms (target <= 50 ms); SQLite FTS5 bm25: p50 "
          f"{statistics.median(base):.2f} ms, p95 {b95:.2f} ms")
    print(f"the passage a question was drawn from is in the top 3: {found / len(questions):.0%} "
          f"(SQLite FTS5: {base_found / len(questions):.0%})")
    print(f"ratio: p95 {b95 / p95:.1f}x faster than SQLite FTS5" if p95 <= b95 else
          f"ratio: p95 {p95 / b95:.1f}x slower than SQLite FTS5")


if __name__ == "__main__":
    main()

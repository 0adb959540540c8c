"""Benchmark: ``demandloop import access-logs`` on 1M combined-format lines.

A log of ``--lines`` requests (default 1,000,000; 5 % from AI crawlers, the rest browsers and
search bots, over a few hundred pages and a month, timestamps in three zones) is written to a
temp file. Then, in this process:

* **import**: ``Workspace.import_access_logs`` (parse, name the crawler, hash the line for
  de-duplication, write to DuckDB in one transaction);
* **re-import**: the same file again (every line already there: nothing written);
* **baseline**: a plain regex loop, the floor of any Python reader: each line decoded and
  matched with the same combined-format expression, nothing converted or stored.

The ratio is the import's time over the baseline's.

    python benchmarks/access_logs.py
    python benchmarks/access_logs.py --lines 200000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import tempfile
import time
from pathlib import Path

import demandloop

AGENTS = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
     60),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 Version/18.1 Safari",
     25),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 10),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
     "+https://openai.com/gptbot)", 2),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; OAI-SearchBot/1.0", 1),
    ("Mozilla/5.0 (compatible; ClaudeBot/1.0; +claudebot@anthropic.com)", 1),
    ("Mozilla/5.0 (compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)", 1),
]
PATTERN = re.compile(
    r'(?P<ip>\S+) \S+ \S+ \[(?P<ts>[^\]]+)\] "(?P<method>[A-Za-z]+) (?P<target>\S+)'
    r'(?: [^"]*)?" (?P<status>\d{3}) (?P<bytes>\d+|-)'
    r'(?: "(?P<ref>(?:[^"\\]|\\.)*)" "(?P<ua>(?:[^"\\]|\\.)*)")?')


def write_log(path: Path, lines: int, seed: int) -> None:
    rng = random.Random(seed)
    agents, weights = zip(*AGENTS, strict=True)
    pages = [f"/{s}/{i}" for s in ("blog", "docs", "pricing", "product") for i in range(100)]
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    zones = [dt.timezone(dt.timedelta(hours=h)) for h in (-5, 0, 1)]
    step = 30 * 86_400 / lines
    with path.open("w") as f:
        for i in range(lines):
            at = (start + dt.timedelta(seconds=i * step)).astimezone(zones[i % 3])
            f.write(f'10.{i % 200}.{i % 13}.{i % 250} - - [{at:%d/%b/%Y:%H:%M:%S %z}] '
                    f'"GET {rng.choice(pages)} HTTP/1.1" 200 {rng.randint(300, 90_000)} '
                    f'"-" "{rng.choices(agents, weights)[0]}"\n')


def baseline(path: Path) -> tuple[float, int]:
    started, n = time.perf_counter(), 0
    with path.open("rb") as f:
        for raw in f:
            if PATTERN.match(raw.decode("utf-8", "replace")):
                n += 1
    return time.perf_counter() - started, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dl-logs-") as tmp:
        log = Path(tmp) / "access.log"
        write_log(log, args.lines, args.seed)
        size = log.stat().st_size
        with demandloop.open(Path(tmp) / "ws") as ws:
            t = time.perf_counter()
            first = ws.import_access_logs(log)
            took = time.perf_counter() - t
            t = time.perf_counter()
            again = ws.import_access_logs(log)
            retook = time.perf_counter() - t
        base, matched = baseline(log)
    assert first.imported == args.lines == matched and again.imported == 0
    print(f"import: {args.lines:,} lines ({size / 2**20:.0f} MB) in {took:.1f} s "
          f"({args.lines / took:,.0f} lines/s; target: 1M lines in <= 10 s); AI crawler "
          f"requests: {', '.join(f'{n:,} {k}' for k, n in sorted(first.crawls.items()))}")
    print(f"re-import (all {again.duplicates:,} lines already there): {retook:.1f} s")
    print(f"baseline, a plain regex loop over the same file: {base:.1f} s "
          f"({args.lines / base:,.0f} lines/s)")
    print(f"ratio: the import takes {took / base:.1f}x the plain regex loop's time "
          "(it also converts times, names crawlers, hashes lines and writes to DuckDB)")


if __name__ == "__main__":
    main()

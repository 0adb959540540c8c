"""Benchmark: staging batch envelopes vs single messages (the precise ingestion path).

`demandloop ingest` reads Segment archives whose lines may be `{"batch": [...]}` envelopes;
the collector's old format was the same. Prints events/s for single-message lines and for
envelopes of 10 and 100 messages, and each ratio to the single-message baseline measured in
the same run (an envelope should cost no more per event than its messages alone).

    python benchmarks/ingest_batches.py --events 50000
"""

from __future__ import annotations

import argparse
import statistics
import time

import orjson
import pyarrow as pa

from demandloop.collect.run import Batch, append_events
from demandloop.collect.segment import Limits
from demandloop.store import Store


def _event(i: int) -> dict[str, object]:
    return {"type": "track", "event": "Viewed", "userId": f"u{i % 997}", "messageId": f"m{i}",
            "timestamp": "2026-11-24T10:00:00.000Z", "properties": {"n": i},
            "context": {"ip": "203.0.113.7", "page": {"url": "https://v.io/p?utm_source=g2"}}}


def _rate(events: int, per: int, repeat: int) -> float:
    n = events // per
    lines = [orjson.dumps({"batch": [_event(i * per + j) for j in range(per)]}).decode()
             if per > 1 else orjson.dumps(_event(i)).decode() for i in range(n)]
    table = pa.table({"line_no": pa.array(range(1, n + 1), pa.int64()),
                      "raw": pa.array(lines, pa.string())})
    times = []
    for _ in range(repeat):
        store = Store.open(":memory:")
        t = time.perf_counter()
        append_events(store, [Batch("bench", table)], limits=Limits(), skip_invalid=True)
        times.append(time.perf_counter() - t)
        store.close()
    return n * per / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    base = _rate(args.events, 1, args.repeat)
    print(f"single-message lines:   {base:10,.0f} events/s")
    for per in (10, 100):
        r = _rate(args.events, per, args.repeat)
        print(f"envelopes of {per:3d}:       {r:10,.0f} events/s  ({r / base:.2f}x the baseline)")


if __name__ == "__main__":
    main()

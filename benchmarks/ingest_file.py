"""Benchmark: ingest 1M simulated Segment events from a JSONL file.

Prints events/s for ``demandloop ingest`` (validation, skew correction, dedupe, insert into a
fresh DuckDB file, timed from opening it to closing it) and the ratio to what a user would
otherwise do, measured in the same process on the same file:

* **DuckDB's own reader** (the fair baseline): ``CREATE TABLE ... AS SELECT * FROM
  read_json(file)`` into a fresh file, open to close: no validation, no dedupe, no columns
  of ours, so it bounds from above what any importer on DuckDB can reach;
* ``json.loads`` per line -> Arrow columns -> one ``INSERT`` (a careful hand-written importer);
* for reference only, a row-by-row ``INSERT`` per event, on a sample (the old strawman).

Timings are medians of ``--repeat`` runs (this machine's speed drifts: five by default).

    python benchmarks/ingest_file.py            # 1M events
    python benchmarks/ingest_file.py --events 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from demandloop.collect.run import ingest_files
from demandloop.collect.segment import Limits
from demandloop.simulate import simulate
from demandloop.store import Store


def make_events(n: int, folder: Path) -> Path:
    """Simulate a market big enough for *n* events, then cut the file to exactly *n* lines."""
    accounts = max(50, int(n / 75))  # ~75 events per account over 180 days
    out = folder / "market"
    simulate(accounts=accounts, days=180, seed=1, out=out)
    src = out / "events.jsonl"
    with src.open("rb") as fh:
        lines = fh.readlines()
    while len(lines) < n:  # top up with renamed copies if the market came out small
        extra = [line.replace(b'"sim-', b'"sim' + str(len(lines)).encode() + b"-")
                 for line in lines[: n - len(lines)]]
        lines += extra
    target = folder / "events.jsonl"
    target.write_bytes(b"".join(lines[:n]))
    return target


def run_demandloop(path: Path, folder: Path, i: int) -> float:
    """Seconds from opening a fresh store to closing it: what ``demandloop ingest`` waits
    for, without the Python start-up."""
    target = folder / f"dl{i}.duckdb"
    # Flush what earlier steps wrote (the 700 MB input, the last run's store) first, so the
    # kernel's write-back does not share the two cores with this run.
    os.sync()
    started = time.perf_counter()
    store = Store.open(target)
    result = ingest_files(store, [path], limits=Limits())
    store.close()  # the checkpoint is part of the ingestion
    seconds = time.perf_counter() - started
    assert result.inserted == result.messages, result
    target.unlink()
    return seconds


def run_duckdb_reader(path: Path, folder: Path, i: int) -> float:
    """DuckDB's own JSON reader into a table, open to close (seconds)."""
    target = folder / f"reader{i}.duckdb"
    os.sync()
    started = time.perf_counter()
    con = duckdb.connect(str(target))
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"CREATE TABLE events AS SELECT * FROM read_json('{path}', "
                "format = 'newline_delimited')")
    con.close()
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def run_arrow(path: Path, folder: Path) -> float:
    """json.loads per line -> Arrow columns -> one INSERT, open to close (seconds)."""
    import pyarrow as pa

    target = folder / "arrow.duckdb"
    os.sync()
    started = time.perf_counter()
    cols: dict[str, list[object]] = {k: [] for k in (
        "message_id", "type", "event", "anonymous_id", "user_id", "properties", "context",
        "timestamp")}
    with path.open("rb") as fh:
        for line in fh:
            m = json.loads(line)
            cols["message_id"].append(m.get("messageId"))
            cols["type"].append(m["type"])
            cols["event"].append(m.get("event"))
            cols["anonymous_id"].append(m.get("anonymousId"))
            cols["user_id"].append(m.get("userId"))
            cols["properties"].append(json.dumps(m.get("properties")))
            cols["context"].append(json.dumps(m.get("context")))
            cols["timestamp"].append(m.get("timestamp"))
    table = pa.table(cols)
    con = duckdb.connect(str(target))
    con.register("batch", table)
    con.execute("CREATE TABLE events AS SELECT * REPLACE (timestamp::TIMESTAMPTZ::TIMESTAMP "
                "AS timestamp) FROM batch")
    con.close()
    seconds = time.perf_counter() - started
    target.unlink()
    return seconds


def run_naive(path: Path, folder: Path, sample: int) -> float:
    """Row-by-row baseline: json.loads + one INSERT per event. Returns seconds per event."""
    con = duckdb.connect(str(folder / "naive.duckdb"))
    con.execute("CREATE TABLE events (message_id VARCHAR, type VARCHAR, event VARCHAR, "
                "anonymous_id VARCHAR, user_id VARCHAR, properties VARCHAR, context VARCHAR, "
                "timestamp TIMESTAMP)")
    started = time.perf_counter()
    with path.open() as fh:
        for i, line in enumerate(fh):
            if i == sample:
                break
            m = json.loads(line)
            con.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?::TIMESTAMPTZ::TIMESTAMP)",
                [m.get("messageId"), m["type"], m.get("event"), m.get("anonymousId"),
                 m.get("userId"), json.dumps(m.get("properties")), json.dumps(m.get("context")),
                 m.get("timestamp")],
            )
    seconds = time.perf_counter() - started
    con.close()
    return seconds / sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline-sample", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        path = make_events(args.events, folder)
        size = path.stat().st_size
        print(f"input: {args.events:,} events, {size / 1e6:,.0f} MB "
              f"(simulated in {time.perf_counter() - t:.1f}s)")
        naive = run_naive(path, folder, min(args.baseline_sample, args.events))
        # interleaved, so a slow spell of the machine falls on both
        runs, reader = [], []
        for i in range(args.repeat):
            runs.append(run_demandloop(path, folder, i))
            reader.append(run_duckdb_reader(path, folder, i))
        arrow = run_arrow(path, folder)
        dl, rd = statistics.median(runs), statistics.median(reader)
    rate = args.events / dl
    print(f"demandloop ingest: {dl:.2f} s median of {args.repeat} "
          f"({', '.join(f'{r:.2f}' for r in runs)}) -> {rate:,.0f} events/s, "
          f"{size / dl / 1e6:,.0f} MB/s")
    print(f"DuckDB read_json into a table (no validation, no dedupe): {rd:.2f} s median "
          f"({', '.join(f'{r:.2f}' for r in reader)}) -> {args.events / rd:,.0f} events/s")
    print(f"json.loads -> Arrow -> one INSERT: {arrow:.2f} s -> "
          f"{args.events / arrow:,.0f} events/s")
    print(f"ratio: {rate / (args.events / rd):.2f}x DuckDB's own reader (the fair baseline), "
          f"{rate / (args.events / arrow):.2f}x json.loads -> Arrow")
    print(f"for reference, row-by-row INSERT: {1 / naive:,.0f} events/s "
          f"(on {min(args.baseline_sample, args.events):,} events), {rate * naive:,.0f}x")


if __name__ == "__main__":
    main()

"""Benchmark: a resolve rebuild, the full rescore, the funnel, demand health, pipeline and
attribution on DuckDB (the store) against Spark in local mode (the lake).

For each size, a simulated market is built as ``benchmarks/score.py`` builds it (simulated,
ingested and resolved, then copied with its ids suffixed), written as a Parquet lake
(``demandloop export --format lake``), and scored at the same time by both engines in this
process: ``demandloop score`` (DuckDB, the embedded default) and ``demandloop score
--engine spark`` (``[compute.spark] master``, ``local[2]`` unless ``--master``), then
``report funnel --by channel``, ``report health``, ``report pipeline`` and ``report
attribution`` (every model) on each; then ``resolve`` rebuilt from every event by each
(``--resolve-repeat`` times), where the market holds its events: the larger markets are
copies of one market's touches, without events, so ``--resolve-store`` times the rebuild on
a store that has them (``benchmarks/resolve.py``'s, about 10M events). The results are
compared (stages equal, scores to 1e-9, reports equal, every table resolve writes equal)
and the times printed with their ratio.
Spark's first run includes starting the JVM and planning; the figure is the median of the
runs after it.

What one machine shows, and what it does not: both engines have this machine's two cores.
Spark's time on a cluster of ``C`` cores is estimated as its local time x 2 / C plus the
fixed cost of a job (its time on the smallest market, where data is no part of it), which
assumes it scales linearly with cores and ignores the network its shuffles would cross:
an optimistic bound, printed as such, not a measurement.

    python benchmarks/spark.py                      # 1M and 10M events
    python benchmarks/spark.py --sizes 10000        # accounts per size (100 events each)
    python benchmarks/spark.py --resolve-store STORE --sizes 10000   # + resolve at 10M
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score import simulated_market, timed  # noqa: E402  (benchmarks/score.py's)

from demandloop.measure.attribution import ALL_MODELS  # noqa: E402
from demandloop.score import live  # noqa: E402

#: what resolve writes, and the columns that say when (left out of the comparison)
RESOLVED = {"identities": "", "person_identifiers": "", "account_matches": "",
            "ip_lookups": "", "touches": "", "persons": " EXCLUDE (created_at, updated_at)",
            "accounts": " EXCLUDE (created_at, updated_at)"}

#: simulated accounts per copy: a copy of 10k accounts over 225 days is about 1M events
PER_COPY = 10_000


def _snapshot(ws: Any, as_of: Any) -> Any:
    return ws.store.con.execute(
        "SELECT entity, entity_id, fit, engagement, intent, stage, details FROM scores "
        "WHERE as_of = ? ORDER BY entity, entity_id", [as_of]).df()


def _same_frame(a: Any, b: Any) -> bool:
    """Equal frames, numbers to 1e-9 of themselves (sums in another order)."""
    a, b = a.reset_index(), b.reset_index()
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for column in a.columns:
        x, y = a[column], b[column]
        if x.dtype.kind in "fiu" and y.dtype.kind in "fiu":
            if not np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-9,
                               equal_nan=True):
                return False
        elif x.astype(str).tolist() != y.astype(str).tolist():
            return False
    return True


def _digest(ws: Any) -> dict[str, tuple[int, int]]:
    """Rows and an order-free hash of each table resolve writes."""
    return {t: tuple(ws.store.con.execute(
        f"SELECT count(*), coalesce(bit_xor(hash(x)), 0) FROM (SELECT *{x} FROM {t}) x"
    ).fetchone()) for t, x in RESOLVED.items()}


def _rebuild(ws: Any, engine: str) -> Any:
    if engine == "duckdb":  # a rebuild, as Spark's always is
        ws.store.con.execute("DELETE FROM resolve_state")
    return ws.resolve(engine=engine)


def resolve_both(ws: Any, repeat: int) -> tuple[float, float, bool]:
    """A resolve rebuild on DuckDB, then on Spark from the lake: (seconds, seconds, whether
    they wrote the same rows)."""
    d_time, _, _ = timed(repeat, lambda: _rebuild(ws, "duckdb"))
    want = _digest(ws)
    s_time, _, _ = timed(repeat, lambda: _rebuild(ws, "spark"))
    return d_time, s_time, _digest(ws) == want


def resolve_store(directory: Path, repeat: int) -> None:
    """:func:`resolve_both` on an existing workspace with its events (``benchmarks/
    resolve.py``'s store), its lake written first."""
    import demandloop

    with demandloop.open(directory) as ws:
        events = ws.store.con.execute("SELECT count(*) FROM events").fetchone()[0]
        t = time.perf_counter()
        ws.export_parquet(ws.lake_path(), lake=True)
        print(f"{directory}: {events:,} events (lake written in "
              f"{time.perf_counter() - t:.1f} s)", flush=True)
        d_time, s_time, equal = resolve_both(ws, repeat)
    print(f"  resolve: duckdb {d_time:.2f} s, spark {s_time:.2f} s "
          f"({s_time / d_time:.1f}x); identical: {equal}", flush=True)
    if not equal:
        raise SystemExit("the engines disagree")


def one_size(accounts: int, days: int, repeat: int, seed: int,
             resolve_repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        copies = max(1, accounts // PER_COPY)
        t = time.perf_counter()
        ws, events = simulated_market(Path(tmp), accounts, days, copies, seed)
        built = time.perf_counter() - t
        t = time.perf_counter()
        ws.export_parquet(ws.lake_path(), lake=True)
        lake = time.perf_counter() - t
        print(f"{accounts:,} accounts, {events:,} events (built in {built:.0f} s; lake "
              f"written in {lake:.1f} s)", flush=True)
        def full() -> Any:  # a full score each time, not the live rescore of a warm process
            live.forget()
            return ws.score(engine="duckdb")

        duck, duck_runs, d = timed(repeat, full)
        want = _snapshot(ws, d.as_of)
        t = time.perf_counter()
        s = ws.score(engine="spark")
        first = time.perf_counter() - t
        spark, spark_runs, s = timed(repeat, lambda: ws.score(engine="spark"))
        got = _snapshot(ws, s.as_of)
        reports = {}
        for name, fn in (("funnel", lambda e: ws.funnel("channel", engine=e)),
                         ("health", lambda e: ws.health(engine=e)[1]),
                         ("pipeline", lambda e: ws.pipeline(engine=e)["channels"]),
                         ("attribution", lambda e: ws.attribution(models=ALL_MODELS,
                                                                  engine=e))):
            d_time, _, d_frame = timed(repeat, lambda fn=fn: fn("duckdb"))
            s_time, _, s_frame = timed(repeat, lambda fn=fn: fn("spark"))
            equal = _same_frame(d_frame, s_frame)
            reports[name] = (d_time, s_time, equal)
        held = ws.store.con.execute("SELECT count(*) FROM events").fetchone()[0]
        if held:  # copies of a market hold touches, not events: nothing to resolve
            reports["resolve"] = resolve_both(ws, resolve_repeat)
        ws.close()
    same = (len(got) == len(want) and got["stage"].fillna("").tolist()
            == want["stage"].fillna("").tolist() and all(
                np.allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9,
                            equal_nan=True) for c in ("fit", "engagement", "intent")))
    print(f"  duckdb: {duck:.2f} s median ({', '.join(f'{r:.2f}' for r in duck_runs)})")
    print(f"  spark local: {spark:.2f} s median ({', '.join(f'{r:.2f}' for r in spark_runs)}),"
          f" first run {first:.1f} s with the session's start")
    print(f"  spark / duckdb: {spark / duck:.1f}x; results identical: {same}", flush=True)
    for name, (d_time, s_time, equal) in reports.items():
        what = name if name == "resolve" else f"report {name}"
        print(f"  {what}: duckdb {d_time:.2f} s, spark {s_time:.2f} s "
              f"({s_time / d_time:.1f}x); identical: {equal}", flush=True)
        same = same and equal
    if not same:
        raise SystemExit("the engines disagree")
    return {"accounts": accounts, "events": events, "duckdb": duck, "spark": spark,
            **{f"{k}_duckdb": v[0] for k, v in reports.items()},
            **{f"{k}_spark": v[1] for k, v in reports.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                    help="accounts per market (about 100 events each)")
    ap.add_argument("--days", type=int, default=225)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--resolve-repeat", type=int, default=1)
    ap.add_argument("--resolve-store", type=Path,
                    help="also time a resolve rebuild on this workspace (one with its "
                    "events, as benchmarks/resolve.py builds: the larger markets here are "
                    "copies of touches, with no events to resolve)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", help="spark.driver.memory (the local master's whole "
                    "heap; demandloop's default is 2g)")
    args = ap.parse_args()
    import os

    os.environ["DEMANDLOOP_COMPUTE__SPARK__MASTER"] = args.master
    if args.driver_memory:
        os.environ["DEMANDLOOP_COMPUTE__SPARK__OPTIONS"] = json.dumps(
            {"spark.driver.memory": args.driver_memory})
    if args.resolve_store:
        resolve_store(args.resolve_store, args.resolve_repeat)
    found = [one_size(n, args.days, args.repeat, args.seed, args.resolve_repeat)
             for n in args.sizes]
    small, large = found[0], found[-1]
    if len(found) < 2:
        print(json.dumps(found))
        return
    # per event, past the fixed cost of a job (its time on the smallest market)
    fixed = small["spark"]
    per_core = (large["spark"] - fixed) * 2 / large["events"]
    duck_per_event = large["duckdb"] / large["events"]
    print("extrapolated (linear in events; Spark linear in cores, no network: optimistic):")
    for events in (100_000_000, 1_000_000_000):
        duck = duck_per_event * events
        need = per_core * events / max(duck - fixed, 1e-9) if duck > fixed else float("inf")
        print(f"  {events:,} events: duckdb {duck:.0f} s on this machine; spark needs "
              f"{need:.0f} cores to match it "
              f"({fixed:.0f} s per job + {per_core * events:.0f} core-seconds)")
    print(json.dumps(found))


if __name__ == "__main__":
    main()

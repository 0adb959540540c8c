"""Benchmark: scoring, batch over all history and incremental per touch.

The market (``--accounts``, ``--days``) is a simulated one, as ``demandloop demo`` builds
it: ``demandloop simulate`` of ``accounts / copies`` accounts, ingested, CRM and IP ranges
imported, resolved. Its resolved tables (touches, accounts, persons, opportunities) are then
copied ``--copies`` times with their ids suffixed, copy k 61 s after copy k-1. That makes a
market of ``--accounts`` accounts with the simulated shape (about half the touches from
visitors no account is known for, a third from known people, each person at one account,
topics on half) in about a minute, where simulating, ingesting and resolving every account
takes eleven (``--copies 1`` does exactly that; both score in the same time). The default,
100k accounts over 225 days, is about 10M events. Then:

* engagement: demandloop's Ibis expression on DuckDB (daily caps, decay) against a
  straightforward pandas implementation of the same definition, results compared;
* full rescore: ``demandloop score`` end to end (fit, engagement, breadth, intent surge
  overall and per topic, stage features and stages, committee, person engagement and MQL,
  stage changes, the snapshot write), with the extrapolation to 1M accounts / 100M events
  (linear in events);
* reference: the definition's aggregates written as bare SQL group-bys on the same touches
  (the daily cap's per-(entity, activity, day) totals for accounts and people, one
  aggregate per account and per person, breadth), with no windows, Python or writes: a
  yardstick for how much of the full rescore is the engine's grouping work;
* incremental: the O(1) update per touch.

``--uniform`` replaces the simulated market with a stress shape no simulated market has:
``--touches`` touches, every one with an account and a person, each person touching
random accounts, so nearly every (entity, activity, day) holds one touch.

    python benchmarks/score.py                          # 100k accounts, ~10M events
    python benchmarks/score.py --accounts 20000 --days 180
    python benchmarks/score.py --uniform --accounts 100000 --touches 10000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import ibis
import numpy as np
import pandas as pd

import demandloop
from demandloop.score.engagement import EngagementRules, Incremental, batch_scores
from demandloop.simulate import simulate


def uniform_market(directory: Path, accounts: int, touches: int) -> tuple[Any, int]:
    """The ``--uniform`` stress shape in a workspace in *directory*: (workspace, events)."""
    con = duckdb.connect()
    con.execute(f"""
        CREATE TEMP TABLE touches AS
        SELECT 't' || lpad(i::VARCHAR, 9, '0') AS touch_id,
               'acc' || (hash(i) % {accounts}) AS account_id,
               'p' || (hash(i * 7) % {accounts * 5}) AS person_id,
               TIMESTAMP '2026-01-01' + to_seconds((hash(i * 13) % (180 * 86400))::BIGINT)
                   AS ts,
               ['page_view','page_view','page_view','high_intent_page','form_fill',
                'demo_request','sales_email'][1 + (hash(i * 3) % 7)::INT] AS activity
        FROM range({touches}) t(i)
    """)
    data = con.execute("""
        SELECT *, CASE activity
            WHEN 'page_view' THEN 1.0 WHEN 'high_intent_page' THEN 3.0 WHEN 'form_fill' THEN 5.0
            WHEN 'demo_request' THEN 10.0 ELSE 0.5 END::DOUBLE AS weight,
            row_number() OVER (ORDER BY ts, touch_id) AS seq FROM touches""").to_arrow_table()
    con.close()
    ws = demandloop.open(directory)
    rng = np.random.default_rng(0)
    inds = np.array(["Software", "Financial Services", "Retail", "Healthcare", "Media"])
    accts = pd.DataFrame({
        "account_id": [f"acc{i}" for i in range(accounts)],
        "industry": inds[rng.integers(0, len(inds), accounts)],
        "country": np.array(["US", "GB", "DE", "FR"])[rng.integers(0, 4, accounts)],
        "employees": rng.integers(10, 20000, accounts),
        "target": rng.random(accounts) < 0.3,
    })
    with ws.store.writer() as cur:
        cur.register("_t", data)
        cur.execute("INSERT INTO touches (workspace_id, touch_id, account_id, person_id, ts, "
                    "activity, weight, seq, channel, motion) SELECT 'default', touch_id, "
                    "account_id, person_id, ts, activity, weight, seq, 'direct', 'demand' "
                    "FROM _t")
        cur.register("_a", accts)
        cur.execute("INSERT INTO accounts (workspace_id, account_id, industry, country, "
                    "employees, target) SELECT 'default', * FROM _a")
        # the people behind the touches, each at the account most of their touches name,
        # with a persona, so MQL rules and the buying committee have work to do
        cur.execute("""
            INSERT INTO persons (workspace_id, person_id, account_id, seniority,
                                 job_function)
            SELECT 'default', person_id, mode(account_id),
                ['individual_contributor', 'manager', 'director', 'vp', 'c_level']
                    [1 + (hash(person_id) % 5)::INT],
                ['marketing', 'sales', 'it', 'finance', 'operations']
                    [1 + (hash(person_id || 'f') % 5)::INT]
            FROM _t GROUP BY person_id""")
    return ws, touches


#: the resolved tables a copy of the simulated market is made of, with their id columns
COPIED = {
    "touches": ("touch_id", "message_id", "account_id", "person_id", "anonymous_id"),
    "accounts": ("account_id", "domain", "crm_id"),
    "persons": ("person_id", "account_id", "email", "crm_id"),
    "opportunities": ("opportunity_id", "account_id", "lead_id", "crm_id"),
}


def simulated_market(directory: Path, accounts: int, days: int, copies: int,
                     seed: int) -> tuple[Any, int]:
    """A simulated market of *accounts* accounts in a workspace in *directory*, built as
    the module docstring says: (workspace, events)."""
    if copies < 1 or accounts % copies:
        raise SystemExit(f"--accounts ({accounts:,}) must be a multiple of --copies ({copies})")
    market = directory / "market"
    summary = simulate(accounts=accounts // copies, days=days, seed=seed, out=market)
    base = demandloop.open(directory / "base")
    base.load_simulation(market, spend=False)
    base.resolve()
    # the simulation's files are not needed any more: deleting them drops their unwritten
    # pages, which the kernel would otherwise flush during the timed runs
    shutil.rmtree(market)
    if copies == 1:
        os.sync()
        return base, summary.events
    base.close()
    ws = demandloop.open(directory / "copies")
    with ws.store.writer() as cur:
        cur.execute(f"ATTACH '{directory / 'base' / 'demandloop.duckdb'}' AS base (READ_ONLY)")
        for table, ids in COPIED.items():
            # copy k of every id is 'id~k'
            cols = ", ".join(f"CASE WHEN {c} IS NULL THEN NULL ELSE {c} || '~' || k END "
                             f"AS {c}" for c in ids)
            order = ""
            if table == "touches":
                # Copy k happens k * 61 s later and the touches are stored in time order, as
                # resolve stores them: copies of one touch side by side would compress (and
                # scan) better than any simulated market does.
                ts = f"ts + to_seconds(k * {SHIFT})"
                cols += f", {ts} AS ts, row_number() OVER (ORDER BY {ts}, seq, k) AS seq"
                order = f" ORDER BY {ts}, seq, k"
            cur.execute(f"INSERT INTO {table} BY NAME SELECT * EXCLUDE (k) REPLACE ({cols}) "
                        f"FROM base.{table}, range({copies}) r(k){order}")
    with ws.store.writer() as cur:
        cur.execute("DETACH base")
    shutil.rmtree(directory / "base")
    os.sync()
    return ws, summary.events * copies


#: seconds between copies of the simulated market (see :func:`simulated_market`)
SHIFT = 61


def pandas_scores(df: pd.DataFrame, rules: EngagementRules, at: dt.datetime) -> pd.Series:
    """The same definition written the obvious way in pandas."""
    df = df.sort_values(["ts", "touch_id"])
    day = df["ts"].dt.floor("D")
    cum = df.groupby([df["account_id"], df["activity"], day])["weight"].cumsum()
    cap = df["activity"].map(rules.caps).fillna(rules.default_cap)
    capped = np.clip(np.minimum(df["weight"], cap - (cum - df["weight"])), 0, None)
    age = (pd.Timestamp(at) - df["ts"]).dt.total_seconds()
    value = capped * np.exp2(-age / (rules.half_life_days * 86400))
    return value.groupby(df["account_id"]).sum()


#: The definition's aggregates as bare SQL group-bys: each (entity, activity, day) total the
#: daily cap looks at, for accounts and for people; one aggregate per account and per
#: person; the distinct people per account (breadth).
REFERENCE = {
    "account cap totals": "SELECT count(*) FROM (SELECT account_id, activity, "
    "date_trunc('day', ts), sum(weight) AS s FROM touches WHERE account_id IS NOT NULL "
    "GROUP BY ALL) WHERE s > 10",
    "person cap totals": "SELECT count(*) FROM (SELECT person_id, activity, "
    "date_trunc('day', ts), sum(weight) AS s FROM touches WHERE person_id IS NOT NULL "
    "GROUP BY ALL) WHERE s > 10",
    "account aggregate": "SELECT max(e), max(n) FROM (SELECT account_id, "
    "sum(weight * pow(2, (epoch(ts) - epoch($at)) / 1209600)) AS e, "
    "count(*) FILTER (WHERE ts > $at - INTERVAL 90 DAY) AS n FROM touches "
    "WHERE account_id IS NOT NULL GROUP BY 1)",
    "person aggregate": "SELECT max(e), max(n) FROM (SELECT person_id, "
    "sum(weight * pow(2, (epoch(ts) - epoch($at)) / 1209600)) AS e, "
    "count(*) FILTER (WHERE ts > $at - INTERVAL 30 DAY) AS n FROM touches "
    "WHERE person_id IS NOT NULL GROUP BY 1)",
    "breadth": "SELECT max(p) FROM (SELECT account_id, count(DISTINCT person_id) AS p "
    "FROM touches WHERE account_id IS NOT NULL AND ts > $at - INTERVAL 90 DAY GROUP BY 1)",
}


def sql_reference(con: Any, at: dt.datetime, repeat: int) -> float:
    """Seconds for the bare :data:`REFERENCE` passes (medians), printed one by one."""
    total = 0.0
    for name, sql in REFERENCE.items():
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            con.execute(sql, {"at": at} if "$at" in sql else {}).fetchall()
            runs.append(time.perf_counter() - t)
        print(f"  {name}: {statistics.median(runs):.2f} s")
        total += statistics.median(runs)
    return total


def timed(repeat: int, fn: Any) -> tuple[float, list[float], Any]:
    """(median seconds, every run's seconds, the last result) of *repeat* calls of *fn*."""
    runs, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), runs, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=225)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--uniform", action="store_true", help="the stress shape (see above)")
    ap.add_argument("--touches", type=int, default=10_000_000, help="with --uniform")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--incremental", type=int, default=1_000_000)
    args = ap.parse_args()
    rules = EngagementRules()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        if args.uniform:
            ws, events = uniform_market(Path(tmp), args.accounts, args.touches)
        else:
            ws, events = simulated_market(Path(tmp), args.accounts, args.days, args.copies,
                                          args.seed)
        con = ws.store.con.cursor()
        touches, with_account, with_person, at = con.execute(
            "SELECT count(*), count(account_id), count(person_id), max(ts) FROM touches"
        ).fetchone()
        shape = "uniform stress shape" if args.uniform else (
            f"simulated, {args.accounts // args.copies:,} accounts x {args.copies} copies, "
            f"{args.days} days")
        print(f"market ({shape}, built in {time.perf_counter() - t:.0f} s): "
              f"{args.accounts:,} accounts, {events:,} events, {touches:,} touches "
              f"({with_account:,} with an account, {with_person:,} with a person)")
        scale = 100_000_000 / events  # linear in events (accounts only size the groups)
        engagement(con, rules, at, args, scale)
        full, runs, _ = timed(args.repeat, ws.score)
        print(f"full rescore ('demandloop score'): {full:.2f} s median of {args.repeat} "
              f"({', '.join(f'{r:.2f}' for r in runs)}); extrapolated to 1M accounts / 100M "
              f"events: {full * scale:.0f} s (target <= 60 s)")
        print("reference: the definition's aggregates as bare SQL group-bys, same touches:")
        ref = sql_reference(con, at, args.repeat)
        print(f"reference total: {ref:.2f} s, extrapolated {ref * scale:.0f} s; the full "
              f"rescore is {full / ref:.1f}x the reference")
        incremental(con, rules, args.incremental)
        con.close()
        ws.close()


def engagement(con: Any, rules: EngagementRules, at: dt.datetime, args: Any,
               scale: float) -> None:
    """Batch engagement (the Ibis expression) against pandas, printed."""
    backend = ibis.duckdb.from_connection(con)
    expr = batch_scores(backend.table("touches"), rules, at)
    batch, runs, ours = timed(args.repeat, expr.execute)
    df = con.execute("SELECT touch_id, account_id, activity, ts, weight FROM touches "
                     "WHERE account_id IS NOT NULL").df()
    t = time.perf_counter()
    theirs = pandas_scores(df, rules, at)
    pandas_s = time.perf_counter() - t
    got = ours.set_index("account_id")["engagement"].sort_index()
    diff = float(np.max(np.abs(got.to_numpy() - theirs.sort_index().to_numpy())))
    print(f"batch engagement: {batch:.2f} s median of {args.repeat} "
          f"({', '.join(f'{r:.2f}' for r in runs)}); pandas {pandas_s:.2f} s; "
          f"ratio {pandas_s / batch:.1f}x; max difference {diff:.1e}")
    print(f"engagement alone, extrapolated to 100M events: {batch * scale:.0f} s")


def incremental(con: Any, rules: EngagementRules, n: int) -> None:
    """The O(1) update over the first *n* touches with an account, in time order."""
    sample = con.execute("SELECT account_id, activity, weight, ts FROM touches "
                         "WHERE account_id IS NOT NULL ORDER BY seq LIMIT $n",
                         {"n": n}).fetchall()
    inc = Incremental(rules)
    t = time.perf_counter()
    for acc, act, w, ts in sample:
        inc.add(acc, act, w, ts)
    per = (time.perf_counter() - t) / max(len(sample), 1)
    print(f"incremental: {per * 1e6:.2f} us per touch over {len(sample):,} touches "
          f"(target <= 50 us)")


if __name__ == "__main__":
    main()

"""Benchmark: scoring, batch over all history and incremental per touch.

A workspace store is filled with ``--accounts`` accounts (firmographics, targets) and
``--touches`` touches over 180 days (the touches a simulated market of that size yields after
`resolve`; generated directly, since simulating 100k accounts alone takes minutes). Then:

* engagement: demandloop's Ibis expression on DuckDB (daily caps, decay) against a
  straightforward pandas implementation of the same definition, results compared;
* full rescore: ``demandloop score`` end to end (fit, engagement, breadth, intent surge
  overall and per topic, stage features and stages, committee, person engagement and MQL
  for the people behind the touches (about 5 per account), stage changes, the snapshot
  write), with the extrapolation to 1M accounts / 100M touches;
* reference: the definition's aggregates written as bare SQL group-bys on the same touches
  (the daily cap's per-(entity, activity, day) totals for accounts and people, one
  aggregate per account and per person, breadth), with no windows, Python or writes: a
  yardstick for how much of the full rescore is the engine's grouping work;
* incremental: the O(1) update per touch.

    python benchmarks/score.py                          # 100k accounts, 10M touches
    python benchmarks/score.py --accounts 20000 --touches 2000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time

import duckdb
import ibis
import numpy as np
import pandas as pd

import demandloop
from demandloop.score.engagement import EngagementRules, Incremental, batch_scores

ACTIVITIES = ["page_view", "high_intent_page", "form_fill", "demo_request", "sales_email"]
WEIGHTS = [1.0, 3.0, 5.0, 10.0, 0.5]


def make_touches(con: duckdb.DuckDBPyConnection, accounts: int, touches: int) -> None:
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE touches AS
        SELECT 't' || lpad(i::VARCHAR, 9, '0') AS touch_id,
               'acc' || (hash(i) % {accounts}) AS account_id,
               'p' || (hash(i * 7) % {accounts * 5}) AS person_id,
               TIMESTAMP '2026-01-01' + to_seconds((hash(i * 13) % (180 * 86400))::BIGINT)
                   AS ts,
               ['page_view','page_view','page_view','high_intent_page','form_fill',
                'demo_request','sales_email'][1 + (hash(i * 3) % 7)::INT] AS activity
        FROM range({touches}) t(i)
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE touches AS SELECT *, CASE activity
            WHEN 'page_view' THEN 1.0 WHEN 'high_intent_page' THEN 3.0 WHEN 'form_fill' THEN 5.0
            WHEN 'demo_request' THEN 10.0 ELSE 0.5 END::DOUBLE AS weight,
            row_number() OVER (ORDER BY ts, touch_id) AS seq FROM touches""")


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
    "date_trunc('day', ts), sum(weight) AS s FROM touches GROUP BY ALL) WHERE s > 10",
    "person cap totals": "SELECT count(*) FROM (SELECT person_id, activity, "
    "date_trunc('day', ts), sum(weight) AS s FROM touches GROUP BY ALL) WHERE s > 10",
    "account aggregate": "SELECT max(e), max(n) FROM (SELECT account_id, "
    "sum(weight * pow(2, (epoch(ts) - epoch($at)) / 1209600)) AS e, "
    "count(*) FILTER (WHERE ts > $at - INTERVAL 90 DAY) AS n FROM touches GROUP BY 1)",
    "person aggregate": "SELECT max(e), max(n) FROM (SELECT person_id, "
    "sum(weight * pow(2, (epoch(ts) - epoch($at)) / 1209600)) AS e, "
    "count(*) FILTER (WHERE ts > $at - INTERVAL 30 DAY) AS n FROM touches GROUP BY 1)",
    "breadth": "SELECT max(p) FROM (SELECT account_id, count(DISTINCT person_id) AS p "
    "FROM touches WHERE ts > $at - INTERVAL 90 DAY GROUP BY 1)",
}


def sql_reference(con: duckdb.DuckDBPyConnection, at: dt.datetime, repeat: int) -> float:
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


def full_rescore(con: duckdb.DuckDBPyConnection, accounts: int, repeat: int) -> float:
    """Copy the touches into a real workspace store with accounts and time `score`."""
    with tempfile.TemporaryDirectory() as tmp:
        ws = demandloop.open(tmp)
        data = con.execute("SELECT * FROM touches").to_arrow_table()
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
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            ws.score()
            runs.append(time.perf_counter() - t)
        ws.close()
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--touches", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--incremental", type=int, default=1_000_000)
    args = ap.parse_args()
    rules = EngagementRules()
    at = dt.datetime(2026, 7, 1)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    make_touches(con, args.accounts, args.touches)
    backend = ibis.duckdb.from_connection(con)
    expr = batch_scores(backend.table("touches"), rules, at)
    runs = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        ours = expr.execute()
        runs.append(time.perf_counter() - t)
    batch = statistics.median(runs)
    df = con.execute("SELECT * FROM touches").df()
    t = time.perf_counter()
    theirs = pandas_scores(df, rules, at)
    pandas_s = time.perf_counter() - t
    got = ours.set_index("account_id")["engagement"].sort_index()
    diff = float(np.max(np.abs(got.to_numpy() - theirs.sort_index().to_numpy())))
    print(f"batch: {args.accounts:,} accounts, {args.touches:,} touches: {batch:.2f} s median "
          f"of {args.repeat} ({', '.join(f'{r:.2f}' for r in runs)}); pandas {pandas_s:.2f} s; "
          f"ratio {pandas_s / batch:.1f}x; max difference {diff:.1e}")
    scale = 100_000_000 / args.touches  # linear in touches (accounts only size the groups)
    print(f"engagement alone, extrapolated to 100M touches: {batch * scale:.0f} s")
    full = full_rescore(con, args.accounts, args.repeat)
    print(f"full rescore ('demandloop score'): {full:.2f} s median of {args.repeat}; "
          f"extrapolated to 1M accounts / 100M touches: {full * scale:.0f} s (target <= 60 s)")
    print("reference: the definition's aggregates as bare SQL group-bys, same touches:")
    ref = sql_reference(con, at, args.repeat)
    print(f"reference total: {ref:.2f} s, extrapolated {ref * scale:.0f} s; the full rescore "
          f"is {full / ref:.1f}x the reference")
    sample = df.head(args.incremental).sort_values(["ts", "touch_id"])
    inc = Incremental(rules)
    rows = list(zip(sample["account_id"], sample["activity"], sample["weight"],
                    sample["ts"].dt.to_pydatetime(), strict=True))
    t = time.perf_counter()
    for acc, act, w, ts in rows:
        inc.add(acc, act, w, ts)
    per = (time.perf_counter() - t) / len(rows)
    print(f"incremental: {per * 1e6:.2f} us per touch over {len(rows):,} touches "
          f"(target <= 50 us)")


if __name__ == "__main__":
    main()

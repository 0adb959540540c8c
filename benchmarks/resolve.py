"""Benchmark: ``demandloop resolve``, a rebuild from every event and an incremental run.

The store: a simulated market (``--accounts / --copies`` accounts over ``--days``) ingested
with its CRM and IP ranges as a user loads them, then copied ``--copies`` times in SQL, copy
k with every id suffixed ``~k``, every company domain renamed (``acme.com`` ->
``acme-ck.com``, in the CRM, the contacts' and the events' emails), every address and range
moved to another /8 (first octet + k), and every event k * 61 s later. That reaches ten
million events in minutes, where simulating them takes far longer; each copy has the
simulated shape (identified browsers, anonymous office and home visitors, CRM contacts).

Then, each in a fresh process (so peak RSS is the run's own):

* **rebuild**: ``resolve`` on the store without the events after its last whole day of at
  least three batches (so that the last three batches below fall on one day, as a
  server's batches seconds apart do) and without the newest ``BATCHES`` x ``--new`` events
  (the first run, or any run after an import, reads everything);
* **incremental**: the held-back events arrive in loads of ``--new``; after each, the
  server's loop: ``resolve`` (it reads them and reaches back to the visitors and persons
  they touch), ``score`` keeping one snapshot a day, and the checkpoint deferred to after
  it (``Store.defer_checkpoints``). The first batches warm the process up (a server's
  process is warm and keeps its last two scores, see ``demandloop.score.live``); the last
  is timed, then a full score of the same store at the same time for the ratio. Run twice,
  on copies: with DuckDB's default threads (every core, as ``demandloop resolve`` and
  ``score`` get on the command line, and ``demandloop serve``'s loop after a quiet spell),
  and with one thread, as ``demandloop serve``'s loop runs when it answered requests since
  its last run (its other cores answer them; see ``demandloop.serve.run.Threads``).

The ratio is the rebuild's time over the incremental run's, in the same store.

    DEMANDLOOP_STORE__MEMORY_LIMIT=1800MB python benchmarks/resolve.py   # ~10M events
    python benchmarks/resolve.py --accounts 20000 --copies 2 --days 90
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import demandloop
from demandloop.simulate import simulate

SHIFT = 61  # seconds between copies

_DOMAIN = "regexp_replace({c}, '^([^.@]+)\\.', '\\1-c' || k || '.')"
_EMAIL = "regexp_replace({c}, '@([^.@]+)\\.', '@\\1-c' || k || '.', 'g')"
_SITE = ("regexp_replace({c}, '(\"(?:website|domain)\"\\s*:\\s*\"(?:https?://)?(?:www\\.)?)"
         "([^\".]+)\\.', '\\1\\2-c' || k || '.', 'g')")
_IP = ("CASE WHEN {c} SIMILAR TO '[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+' THEN "
       "(split_part({c}, '.', 1)::INT + k) || '.' || split_part({c}, '.', 2) || '.' || "
       "split_part({c}, '.', 3) || '.' || split_part({c}, '.', 4) ELSE {c} END")


def _id(c: str) -> str:
    return f"CASE WHEN {c} IS NULL THEN NULL ELSE {c} || '~' || k END"


COPIES = {
    "events": {"message_id": _id("message_id"), "anonymous_id": _id("anonymous_id"),
               "user_id": _id("user_id"), "previous_id": _id("previous_id"),
               "traits": f"({_SITE.format(c=_EMAIL.format(c='traits::VARCHAR'))})::JSON",
               "ip": _IP.format(c="ip"),
               "timestamp": f"timestamp + to_seconds(k * {SHIFT})",
               "received_at": f"received_at + to_seconds(k * {SHIFT})"},
    "accounts": {"account_id": _DOMAIN.format(c="account_id"),
                 "domain": _DOMAIN.format(c="domain"), "crm_id": _id("crm_id")},
    "persons": {"person_id": _EMAIL.format(c="person_id"), "email": _EMAIL.format(c="email"),
                "emails": f"list_transform(emails, x -> {_EMAIL.format(c='x')})",
                "account_id": _DOMAIN.format(c="account_id"), "crm_id": _id("crm_id")},
    "ip_ranges": {"start_ip": "start_ip + k * 16777216", "end_ip": "end_ip + k * 16777216",
                  "account_id": _DOMAIN.format(c="account_id")},
}


def build(directory: Path, accounts: int, days: int, copies: int, seed: int) -> int:
    """The store described in the module docstring; returns its number of events."""
    market = directory / "market"
    simulate(accounts=accounts // copies, days=days, seed=seed, out=market)
    with demandloop.open(directory / "ws") as ws:
        ws.load_simulation(market, spend=False)
        with ws.store.writer() as cur:
            for table, cols in COPIES.items():
                replace = ", ".join(f"{v} AS {c}" for c, v in cols.items())
                cur.execute(f"CREATE TEMP TABLE _base AS SELECT * FROM {table}")
                cur.execute(f"INSERT INTO {table} SELECT * EXCLUDE (k) REPLACE ({replace}) "
                            f"FROM _base, range(1, {copies}) r(k)")
                cur.execute("DROP TABLE _base")
        n = ws.store.table_counts()["events"]
    shutil.rmtree(market)
    return n


#: batches held back: the last is timed, the ones before warm the process up as a server's
#: is warm (its last two scores kept, see demandloop.score.live)
BATCHES = 4

_CHILD = """
import json, resource, sys, time
import demandloop
step, path, new, batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
threads = int(sys.argv[5])
with demandloop.open(path) as ws:
    out = {}
    if threads:  # as demandloop serve's loop runs while it answers requests (serve.run)
        ws.store.con.execute(f"SET threads = {threads}")
    if step == "rebuild":
        with ws.store.writer() as cur:
            # the events after the last whole day holding the newest three batches go: a
            # server's batches, seconds apart, fall on one day, where each batch here is
            # hours of the market (the live rescore makes a snapshot from the one before
            # the latest of the same day)
            out["dropped"] = cur.execute(
                "DELETE FROM events WHERE timestamp >= (SELECT max(day) + INTERVAL 1 DAY "
                "FROM (SELECT date_trunc('day', timestamp) AS day, count(*) AS n FROM "
                "events GROUP BY ALL) WHERE day < (SELECT date_trunc('day', max(timestamp)) "
                f"FROM events) AND n >= 3 * {new})").fetchone()[0]
            # the newest events held back, in batches (0: the newest)
            cur.execute("CREATE OR REPLACE TABLE held AS SELECT *, (row_number() OVER "
                        f"(ORDER BY timestamp DESC, message_id) - 1) // {new} AS batch "
                        f"FROM events ORDER BY timestamp DESC LIMIT {batches * new}")
            cur.execute("DELETE FROM events WHERE message_id IN (SELECT message_id FROM held)")
            for table in ("scores", "stage_changes"):  # (a kept store's earlier runs')
                cur.execute(f"DELETE FROM {table}")
        t = time.perf_counter(); r = ws.resolve(); out["resolve"] = time.perf_counter() - t
    else:
        # as the server runs its loop: checkpoints after it, one snapshot kept a day
        ws.store.defer_checkpoints()
        def arrive(batch):   # a batch of held-back events arrives as one load
            with ws.store.writer() as cur:
                cur.execute("INSERT INTO events SELECT * EXCLUDE (batch) REPLACE "
                            "((SELECT nextval('event_loads')) AS load_id) FROM held "
                            f"WHERE batch = {batch}")
        def loop():
            r = ws.resolve(summary=False); s = ws.score(one_per_day=True)
            ws.keep_one_snapshot_per_day()
            return r, s
        out["warm"] = []
        for batch in range(batches - 1, 0, -1):   # reported, not timed
            arrive(batch)
            t = time.perf_counter(); _, s = loop()
            out["warm"].append((time.perf_counter() - t, s.mode, s.rows_written))
            ws.store.checkpoint_due()
        arrive(0)
        t = time.perf_counter(); r = ws.resolve(summary=False)
        out["resolve"] = time.perf_counter() - t
        t = time.perf_counter(); s = ws.score(one_per_day=True)
        out["score"] = time.perf_counter() - t
        t = time.perf_counter(); ws.keep_one_snapshot_per_day()
        out["keep"] = time.perf_counter() - t
        t = time.perf_counter(); ws.store.checkpoint_due(wal_bytes=0)
        out["checkpoint"] = time.perf_counter() - t
        out.update(score_mode=s.mode, rescored=s.recomputed, windowed=s.windowed,
                   accounts=s.accounts,
                   rows_written=s.rows_written, rows=ws.store.con.execute(
                       "SELECT count(*) FROM scores WHERE as_of = ?", [s.as_of]).fetchone()[0])
        from demandloop.score import live
        live.forget()   # the same score from every touch, written whole, for the ratio
        t = time.perf_counter(); ws.score(s.as_of); out["full_score"] = time.perf_counter() - t
    out.update(mode=r.mode, touches=r.touches, written=r.touches_written, persons=r.persons,
               with_account=r.touches_with_account,
               rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
print(json.dumps(out))
"""


def child(step: str, path: Path, new: int, threads: int = 0) -> dict[str, Any]:
    """*step* in a fresh process; *threads*: DuckDB's (0: its default, every core)."""
    os.sync()
    done = subprocess.run([sys.executable, "-c", _CHILD, step, str(path), str(new),
                           str(BATCHES), str(threads)],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the {step} run failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--days", type=int, default=225)
    ap.add_argument("--new", type=int, default=10_000, help="events of the incremental run")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="build the store in this folder and keep it; "
                    "a later run with the same folder reuses it (for profiling)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dl-resolve-") as scratch:
        tmp = args.keep or Path(scratch)
        started = time.perf_counter()
        if args.keep and (tmp / "ws").exists():
            with demandloop.open(tmp / "ws") as ws:
                events = ws.store.table_counts()["events"]
        else:
            tmp.mkdir(parents=True, exist_ok=True)
            events = build(Path(tmp), args.accounts, args.days, args.copies, args.seed)
        print(f"store: {events:,} events, {args.accounts:,} accounts "
              f"({args.copies} copies), ready in {time.perf_counter() - started:.0f} s")
        full = child("rebuild", Path(tmp) / "ws", args.new)
        # the same incremental runs on a copy, with the one DuckDB thread demandloop serve
        # gives its loop while it answers requests (the other cores answer them)
        one = Path(tmp) / "ws-one-thread"
        shutil.rmtree(one, ignore_errors=True)
        shutil.copytree(Path(tmp) / "ws", one)
        inc = child("incremental", Path(tmp) / "ws", args.new)
        served = child("incremental", one, args.new, threads=1)
        shutil.rmtree(one)
    held = BATCHES * args.new
    read = events - full["dropped"] - held
    print(f"rebuild ({full['mode']}): {read:,} events -> {full['touches']:,} touches "
          f"({full['with_account'] / max(full['touches'], 1):.1%} with an account), "
          f"{full['persons']:,} persons in {full['resolve']:.1f} s "
          f"({read / full['resolve']:,.0f} events/s), peak RSS {full['rss_gb']:.2f} GB "
          f"(the {full['dropped']:,} events after the last whole day of at least three "
          f"batches left out, the newest {held:,} held back)")
    print(f"incremental ({inc['mode']}), the server's loop with every core: {args.new:,} new "
          f"events, "
          f"{inc['written']:,} touches rewritten, in {inc['resolve']:.2f} s; then score "
          f"({inc['score_mode']}: {inc['rescored']:,} of {inc['accounts']:,} accounts "
          f"recomputed, {inc['windowed']:,} of them from their windows' touches only, "
          f"{inc['rows_written']:,} of the snapshot's {inc['rows']:,} rows "
          f"written) {inc['score']:.2f} s; resolve + score "
          f"{inc['resolve'] + inc['score']:.2f} s; peak RSS {inc['rss_gb']:.2f} GB")
    print(f"  the same with one DuckDB thread, as demandloop serve's loop runs while it "
          f"answers requests (its other cores answer them): resolve "
          f"{served['resolve']:.2f} s + score {served['score']:.2f} s = "
          f"{served['resolve'] + served['score']:.2f} s")
    print(f"  after it, off the event's path: one snapshot a day kept {inc['keep']:.2f} s, "
          f"checkpoint {inc['checkpoint']:.2f} s; the {BATCHES - 1} batches before it (a cold "
          f"process warming up): " + ", ".join(f"{w:.2f} s ({mode}, {n:,} rows written)"
                                               for w, mode, n in inc["warm"]))
    print(f"ratio: the incremental resolve is {full['resolve'] / inc['resolve']:.0f}x faster "
          f"than the rebuild of the same store; the live rescore "
          f"{inc['full_score'] / inc['score']:.1f}x faster than a full score of it "
          f"({inc['full_score']:.2f} s)")
    per_event = full["resolve"] / read
    print(f"extrapolated (linear in events): 100M events rebuild ~{per_event * 1e8 / 60:.0f} "
          f"min")


if __name__ == "__main__":
    main()

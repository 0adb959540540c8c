"""Benchmark: ``demandloop resolve``, a rebuild from every event and an incremental run.

The store: a simulated market (``--accounts / --copies`` accounts over ``--days``) ingested
with its CRM and IP ranges as a user loads them, then copied ``--copies`` times in SQL, copy
k with every id suffixed ``~k``, every company domain renamed (``acme.com`` ->
``acme-ck.com``, in the CRM, the contacts' and the events' emails), every address and range
moved to another /8 (first octet + k), and every event k * 61 s later. That reaches ten
million events in minutes, where simulating them takes far longer; each copy has the
simulated shape (identified browsers, anonymous office and home visitors, CRM contacts).

Then, each in a fresh process (so peak RSS is the run's own):

* **rebuild**: ``resolve`` on the store without the newest 2 x ``--new`` events (the first
  run, or any run after an import, reads everything);
* **incremental**: the held-back events arrive in two loads of ``--new``; after each,
  ``resolve`` (it reads them and reaches back to the visitors and persons they touch) and
  ``score``. The first warms the process up (a server's process is warm and keeps its last
  score, see ``demandloop.score.live``); the second is timed, then a full score of the
  same store at the same time for the ratio.

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


_CHILD = """
import json, resource, sys, time
import demandloop
step, path, new = sys.argv[1], sys.argv[2], int(sys.argv[3])
with demandloop.open(path) as ws:
    out = {}
    if step == "rebuild":
        with ws.store.writer() as cur:   # hold the newest events back, in two batches
            cur.execute("CREATE OR REPLACE TABLE held AS SELECT *, row_number() OVER "
                        f"(ORDER BY timestamp DESC, message_id) <= {new} AS newest "
                        f"FROM events ORDER BY timestamp DESC LIMIT {2 * new}")
            cur.execute("DELETE FROM events WHERE message_id IN (SELECT message_id FROM held)")
        t = time.perf_counter(); r = ws.resolve(); out["resolve"] = time.perf_counter() - t
    else:
        def arrive(newest):   # a batch of held-back events arrives as one load
            with ws.store.writer() as cur:
                cur.execute("INSERT INTO events SELECT * EXCLUDE (newest) REPLACE "
                            "(nextval('event_loads') AS load_id) FROM held "
                            f"WHERE newest = {newest}")
        # the first batch warms the process up (a server's is warm, and keeps its last
        # score): reported, not timed
        arrive("false")
        t = time.perf_counter(); ws.resolve(); ws.score(); out["first"] = time.perf_counter() - t
        arrive("true")
        t = time.perf_counter(); r = ws.resolve(); out["resolve"] = time.perf_counter() - t
        t = time.perf_counter(); s = ws.score(); out["score"] = time.perf_counter() - t
        out.update(score_mode=s.mode, rescored=s.recomputed, accounts=s.accounts)
        from demandloop.score import live
        live.forget()   # the same score from every touch, for the ratio
        t = time.perf_counter(); ws.score(s.as_of); out["full_score"] = time.perf_counter() - t
    out.update(mode=r.mode, touches=r.touches, written=r.touches_written, persons=r.persons,
               with_account=r.touches_with_account,
               rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
print(json.dumps(out))
"""


def child(step: str, path: Path, new: int) -> dict[str, float]:
    os.sync()
    done = subprocess.run([sys.executable, "-c", _CHILD, step, str(path), str(new)],
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
        inc = child("incremental", Path(tmp) / "ws", args.new)
    print(f"rebuild ({full['mode']}): {events - 2 * args.new:,} events -> {full['touches']:,} "
          f"touches ({full['with_account'] / max(full['touches'], 1):.1%} with an account), "
          f"{full['persons']:,} persons in {full['resolve']:.1f} s "
          f"({(events - 2 * args.new) / full['resolve']:,.0f} events/s), "
          f"peak RSS {full['rss_gb']:.2f} GB")
    print(f"incremental ({inc['mode']}): {args.new:,} new events, {inc['written']:,} touches "
          f"rewritten, in {inc['resolve']:.2f} s; then score ({inc['score_mode']}: "
          f"{inc['rescored']:,} of {inc['accounts']:,} accounts recomputed) "
          f"{inc['score']:.2f} s; resolve + score {inc['resolve'] + inc['score']:.2f} s; "
          f"peak RSS {inc['rss_gb']:.2f} GB (a first batch of {args.new:,} resolved and "
          f"scored in a cold process: {inc['first']:.2f} s)")
    print(f"ratio: the incremental resolve is {full['resolve'] / inc['resolve']:.0f}x faster "
          f"than the rebuild of the same store; the live rescore "
          f"{inc['full_score'] / inc['score']:.1f}x faster than a full score of it "
          f"({inc['full_score']:.2f} s)")
    per_event = full["resolve"] / (events - 2 * args.new)
    print(f"extrapolated (linear in events): 100M events rebuild ~{per_event * 1e8 / 60:.0f} "
          f"min")


if __name__ == "__main__":
    main()

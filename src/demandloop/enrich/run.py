"""Run the resolve and enrich stages over a workspace, in one transaction: the accounts behind
new addresses, identities and persons (:mod:`demandloop.resolve.run`), then the touches of
every visitor the new events or a merge reached (channel, visit, activity, topic, person and
account).

Incremental: a run reads the events loaded since the last one and reaches back from them
(:mod:`demandloop.resolve.state` says when it rebuilds instead), and gives the same tables
as a rebuild from every event (a property test holds it to that, table for table). The
work runs in DuckDB; Python sees only distinct values (feature rows for the channel rules,
pages for topics, addresses, identity edges of the persons reached).
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from demandloop.config import Settings
from demandloop.enrich import touch_chunks, touch_reach, touch_sql
from demandloop.enrich.channels import (
    Rule,
    classify_features,
    rules_for,
    url_fragments,
    user_rule,
)
from demandloop.enrich.personas import classify_title
from demandloop.enrich.touches import HIGH_INTENT_PATH, topic_of
from demandloop.errors import UsageError
from demandloop.resolve import run as resolve_run
from demandloop.resolve import state
from demandloop.resolve.addresses import resolve_addresses
from demandloop.store import touch_log
from demandloop.store.db import Store, transaction
from demandloop.store.dialect import SqlEngine, inline, literal
from demandloop.store.memory import collector_paused, release_memory

Cursor = duckdb.DuckDBPyConnection

_TEV = """SELECT message_id, type, event, anonymous_id, user_id, ip, url, path,
    title AS page_title, referrer, utm_source, utm_medium, utm_campaign, utm_term, timestamp,
    coalesce(anonymous_id, 'user:' || user_id) AS visitor
    FROM events WHERE workspace_id = $ws AND type IN ('page', 'track')"""


@dataclass
class ResolveResult:
    persons: int = 0
    identified_devices: int = 0
    accounts_created: int = 0
    touches: int = 0
    touches_with_account: int = 0
    unresolved: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: "rebuild" (every event) or "incremental" (events loaded since the last run)
    mode: str = "rebuild"
    #: touches written this run (a rebuild writes them all)
    touches_written: int = 0


def channel_rules(settings: Settings) -> list[tuple[str, Rule]]:
    extra = [user_rule(r.channel, utm_source=r.utm_source, utm_medium=r.utm_medium,
                       referrer_host=r.referrer_host, url_contains=r.url_contains)
             for r in settings.enrich.channel_rules]
    return rules_for(tuple(settings.enrich.brand_terms), extra)


@dataclass(frozen=True)
class Lake:
    """A rebuild from a copy of the events on another engine: *engine* runs the queries
    over its tables, and its touches come back as Parquet through *results*, a folder it
    writes and this process reads."""

    engine: SqlEngine
    results: Path


def run(store: Store, settings: Settings, lake: Lake | None = None, *,
        summary: bool = True) -> ResolveResult:
    """Resolve and enrich what arrived since the last run (everything the first time).
    Without *summary*, the workspace's totals are not counted (they stay 0).

    With *lake*, a rebuild from that engine's copy of the events (a Parquet lake on Spark,
    see :mod:`demandloop.store.spark`): it scans the events and builds the touches; the
    identity graph, persons and address lookups run here over what it found, from the
    same queries. Everything is written to the workspace as a DuckDB rebuild writes it.
    The next run here goes on from the lake's last load."""
    sql = lake.engine if lake is not None else None  # what the stages read events with
    if lake is not None and settings.collect.ip != "full":
        raise UsageError(f'resolve from a lake needs collect.ip = "full" (it is '
                         f'"{settings.collect.ip}")', hint="resolve on duckdb: it truncates "
                         "addresses in the workspace's events as it resolves them, which a "
                         "copy of them cannot do")
    # the collector paused (see store.memory): a server's process holds its last score's
    # frames and reason lists, and each full pass over them during an incremental run cost
    # 0.2 s; reference counting still frees what the run drops
    with collector_paused():
        return _run(store, settings, lake, sql, summary)


def _run(store: Store, settings: Settings, lake: Lake | None, sql: SqlEngine | None,
         summary: bool) -> ResolveResult:
    started = time.perf_counter()
    ws = store.workspace_id
    # Two transactions on one cursor: persons and addresses, then touches. The touches read
    # what the first wrote; committed, it is read several times faster than from the
    # transaction's own storage (50 s against 35 s for 10M events). The first clears the
    # watermark, the second writes it: a run that dies between leaves none, and the next
    # one rebuilds. Readers meanwhile see new persons beside the touches of the last run.
    with store.locked_cursor() as cur:
        with transaction(cur):
            last = (state.last_load(cur, ws) if lake is None
                    else _lake_loaded(cur, ws, lake.engine))
            # one fingerprint for the whole run: nothing resolve writes changes it
            current = state.fingerprint(cur, ws, settings)
            previous = state.may_continue(cur, ws, current) if lake is None else None
            full = previous is None
            since = -1 if previous is None else previous.loaded_to
            out = ResolveResult(mode="rebuild" if full else "incremental")
            work = full or last > since
            if work:
                state.clear(cur, ws)
                if full:
                    for table in ("account_matches", "ip_lookups"):
                        cur.execute(f"DELETE FROM {table} WHERE workspace_id = $ws",
                                    {"ws": ws})
                resolve_addresses(cur, ws, settings, since, current, sql)
                people = resolve_run.people(cur, ws, settings, since, full, classify_title,
                                            sql)
                out.accounts_created = people.accounts_created
                if full:
                    release_memory()
        with transaction(cur):
            if work:
                if full:
                    cur.execute("DELETE FROM touches WHERE workspace_id = $ws", {"ws": ws})
                    touch_log.record_all(cur, ws)
                if lake is None:
                    out.touches_written = _touches(cur, ws, settings, since, full)
                else:
                    out.touches_written = _lake_touches(cur, ws, settings, lake)
                state.write(cur, ws, current, last)
            if summary:
                _summary(cur, ws, out)
    out.seconds = time.perf_counter() - started
    return out


def _lake_loaded(cur: Cursor, ws: str, lake: SqlEngine) -> int:
    """The last load the lake holds, once it is checked to hold exactly the workspace's
    events up to it (a lake written before an erasure or a retention run would bring
    erased events back)."""
    row = lake.query(inline("SELECT count(*) AS n, coalesce(max(coalesce(load_id, 0)), 0) "
                            "AS last FROM events WHERE workspace_id = $ws", {"ws": ws}))
    held, last = int(row["n"][0].as_py()), int(row["last"][0].as_py())
    stored = state.events_upto(cur, ws, last)
    if stored != held:
        raise UsageError(f"the lake holds {held:,} events up to load {last}, the workspace "
                         f"{stored:,}", hint="write the lake again: demandloop export "
                         "--format lake")
    return last


def _rule_tables(settings: Settings, distinct: pd.DataFrame, paths: pd.DataFrame,
                 rules: list[tuple[str, Rule]]) -> tuple[pa.Table, pa.Table]:
    """``_channels(fkey, channel)`` and ``_paths(path, page_title, topic, high)``: the
    channel rules over the distinct feature rows and the topic rules over the distinct
    pages (in Python, on distinct values only; see :mod:`demandloop.enrich.touch_sql`)."""
    channels = classify_features(distinct.drop(columns=["fkey"]), rules)
    topic_rules = [(k, re.compile(v)) for k, v in settings.enrich.topics.items()]
    paths = paths.copy()
    paths["topic"] = [topic_of(p, topic_rules, t if topic_rules else None)
                      for p, t in zip(paths["path"], paths["page_title"], strict=True)]
    paths["high"] = paths["path"].fillna("").str.match(HIGH_INTENT_PATH)
    keys = distinct["fkey"].to_numpy()
    return (pa.table({"fkey": pa.array(keys, pa.uint64() if keys.dtype.kind == "u"
                                        else pa.int64()),
                      "channel": pa.array(channels.to_numpy(dtype=object), pa.string())}),
            pa.Table.from_pandas(paths, preserve_index=False))


#: the workspace's tables the touches are attributed from, which the lake's copy of is
#: older than this run
_ATTRIBUTION = ("person_identifiers", "account_matches", "ip_matches", "ip_lookups")


def _lake_touches(cur: Cursor, ws: str, settings: Settings, on: Lake) -> int:
    """Every touch, built and attributed by the lake's engine from its events (the queries
    of :mod:`demandloop.enrich.touch_sql`, as a DuckDB rebuild runs them), written here."""
    lake, w = on.engine, {"ws": ws}
    rules = channel_rules(settings)
    fragments = url_fragments(rules)
    lake.view("_tev", inline(_TEV, w))
    lake.view("_pages", touch_sql.pages(fragments))
    channels, paths = _rule_tables(
        settings, lake.query(touch_sql.distinct_features(fragments)).to_pandas(),
        lake.query("SELECT DISTINCT path, page_title FROM _tev").to_pandas(), rules)
    lake.put("_channels", channels)
    lake.put("_paths", paths)
    for table in _ATTRIBUTION:  # what the first transaction wrote, not the lake's copy
        lake.put(table, cur.execute(f"SELECT * FROM {table} WHERE workspace_id = $ws",
                                    w).to_arrow_table())
    folder = on.results / f".touches-{uuid.uuid4().hex}"
    try:
        lake.write(inline(touch_sql.attributed(addresses="_tev"), w), folder)
        files = sorted(folder.glob("*.parquet"))
        if not files:
            return 0
        done = cur.execute(touch_sql.insert_touches(source=(
            f"SELECT {', '.join(touch_sql.ATTRIBUTED)} FROM read_parquet("
            f"[{', '.join(literal(str(f)) for f in files)}])")), w).fetchone()
        return int(done[0]) if done else 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


#: page and track events per chunk of visitors: each chunk's windows and joins fit in memory
#: (10M events at once needed more than 1.8 GiB; a chunk of 1M about a tenth)
CHUNK_EVENTS = 1_000_000


def _touches(cur: Cursor, ws: str, settings: Settings, since: int, full: bool) -> int:
    """Rebuild the touches of the visitors reached (every visitor for a rebuild), in
    chunks of visitors of about :data:`CHUNK_EVENTS` events (a rebuild's by ranges of
    anonymous ids, see :mod:`demandloop.enrich.touch_chunks`; an incremental run's, rarely
    more than one, by a hash of the visitor)."""
    if full:
        source = inline(_TEV, {"ws": ws})
    else:
        # who needs touches and from what (see enrich.touch_reach): the new events of
        # visitors who browse on, every event of late ones, the stored touches of those
        # whose identifiers changed person or account
        late = touch_reach.prepare(cur, ws, since, _TEV)
        if late:
            cur.execute(touch_reach.rows_to_build(_TEV), {"ws": ws})
        else:
            cur.execute("CREATE OR REPLACE TEMP TABLE _tev_rows AS SELECT * FROM _new_ev")
        cur.execute(touch_reach.CONTEXT)
        cur.execute(touch_reach.REATTRIBUTE)
        source = "SELECT * FROM _tev_rows"
        # whose touches these were, for the live rescore (store.touch_log); then deleted
        # by row id, not by a second search (DELETE ... RETURNING took 20x longer)
        found = cur.execute(touch_reach.GONE).fetchall()
        removed = [(r[1], r[2]) for r in found]
        cur.register("_gone", pa.table({"i": pa.array([r[0] for r in found], pa.int64())}))
        try:
            cur.execute("DELETE FROM touches WHERE rowid IN (SELECT i FROM _gone)")
        finally:
            cur.unregister("_gone")
    cur.execute(f"CREATE OR REPLACE TEMP VIEW _tev AS {source}")
    rules = channel_rules(settings)
    fragments = url_fragments(rules)
    for statement in touch_sql.page_features(fragments):
        cur.execute(statement)
    channel_rows, path_rows = _rule_tables(
        settings, cur.execute(touch_sql.FEATURES_OF_RAW).df(),
        cur.execute("SELECT DISTINCT path, page_title FROM _tev").df(), rules)
    # each chunk's visitors as a query of _tev's rows (a visitor's events in one chunk)
    if full:  # ranges of visitors, read through filters the scan applies
        parts = touch_chunks.chunks(cur, ws, source, CHUNK_EVENTS)
    else:  # (a few visitors: one chunk, but for the biggest of late loads)
        row = cur.execute("SELECT count(*) FROM _tev").fetchone()
        n = max(1, -(-int(row[0] if row else 0) // CHUNK_EVENTS))
        parts = [source] if n == 1 else [
            f"SELECT * FROM ({source}) WHERE hash(visitor) % {n} = {i}" for i in range(n)]
    # Copied into DuckDB rather than scanned as Arrow: a join's dynamic filter on fkey (a
    # UBIGINT hash) pushed down into an Arrow scan becomes a pyarrow expression, and a hash
    # over 2**63 overflowed it ("Python int too large to convert to C long"), failing the
    # run whenever the few new visitors' hashes were all high. Both tables are small.
    cur.register("_channel_rows", channel_rows)
    cur.register("_path_rows", path_rows)
    cur.execute("CREATE OR REPLACE TEMP TABLE _channels AS SELECT * FROM _channel_rows")
    cur.execute("CREATE OR REPLACE TEMP TABLE _paths AS SELECT * FROM _path_rows")
    cur.unregister("_channel_rows")
    cur.unregister("_path_rows")
    written = 0
    added: list[tuple[str | None, str | None]] = []
    try:
        for i, part in enumerate(parts):
            if len(parts) > 1:
                cur.execute(f"CREATE OR REPLACE TEMP VIEW _tev AS {part}")
            if full:
                done = cur.execute(touch_sql.insert_touches(), {"ws": ws}).fetchone()
                written += int(done[0]) if done else 0
                continue
            # this chunk's visitors' context rows and kept touches to attribute again
            # (built and attributed with the new ones: one pass over the identifiers and
            # address lookups, not two)
            mine = f" WHERE hash(visitor) % {len(parts)} = {i}" if len(parts) > 1 else ""
            cur.execute(f"CREATE OR REPLACE TEMP VIEW _ctx AS SELECT * FROM _ctx_rows{mine}")
            cur.execute(f"CREATE OR REPLACE TEMP VIEW _reattr AS SELECT * FROM _reattr_rows"
                        f"{mine}")
            rows = cur.execute(touch_sql.insert_touches(
                returning=True, rows=touch_sql.touches(context=True)
                + f" UNION ALL SELECT {touch_reach.KEPT} FROM _reattr"), {"ws": ws}).fetchall()
            added.extend(rows)
            written += len(rows)
    finally:
        for table in ("_channels", "_paths", "_raw_features"):
            cur.execute(f"DROP TABLE IF EXISTS {table}")
    if not full:
        touch_log.record(cur, ws, [r[0] for r in removed + added],
                         [r[1] for r in removed + added], len(added) - len(removed))
    return written



def _summary(cur: Cursor, ws: str, out: ResolveResult) -> None:
    """The workspace's totals after the run (what ``demandloop resolve`` prints)."""
    row = cur.execute("""SELECT
        (SELECT count(DISTINCT person_id) FROM person_identifiers WHERE workspace_id = $ws),
        (SELECT count(*) FROM person_identifiers WHERE workspace_id = $ws AND kind = 'anon'),
        (SELECT count(*) FROM touches WHERE workspace_id = $ws),
        (SELECT count(account_id) FROM touches WHERE workspace_id = $ws)""",
                      {"ws": ws}).fetchone()
    if row:
        out.persons, out.identified_devices, out.touches, out.touches_with_account = (
            int(v) for v in row)
    unresolved = cur.execute(
        "SELECT match_source, count(*) FROM touches WHERE workspace_id = $ws "
        "AND account_id IS NULL GROUP BY ALL", {"ws": ws}).fetchall()
    out.unresolved = {str(k): int(v) for k, v in unresolved}


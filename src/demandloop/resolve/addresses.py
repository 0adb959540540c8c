"""The accounts behind addresses, looked up once per distinct address.

With ``collect.ip = "full"`` each new address of a page or track event is looked up
(:func:`demandloop.resolve.accounts.key_accounts`: the user's ranges, then the ASN table's
organisation names) and kept in ``ip_lookups``; touches join it. With ``truncate`` or
``drop`` the lookup happens while an event's address is still whole: what it matched is
frozen in ``ip_matches`` and the event keeps only the truncated address (or none).
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from demandloop.config import Settings
from demandloop.ipaddr import anonymise_ip, ip_keys
from demandloop.resolve import asn as asn_table
from demandloop.resolve.accounts import (
    CONFIDENCE,
    KeyAccounts,
    key_accounts,
    normalise_name,
)
from demandloop.resolve.ipranges import RangeIndex
from demandloop.resolve.state import LOADED_AFTER, RESOLVED_ACCOUNT_SOURCES
from demandloop.store.arrow import typed_table
from demandloop.store.dialect import SqlEngine, inline

Cursor = duckdb.DuckDBPyConnection
#: an IPv4 dotted quad's key (:func:`demandloop.ipaddr.ip_key`) in SQL, NULL for anything
#: else: parsing millions of addresses in DuckDB rather than through Python strings. Every
#: part is cast with TRY_CAST although the pattern admits only digits: DuckDB may run a
#: function over a whole dictionary-compressed vector, the rows the pattern refused too,
#: and a plain cast of ``::1`` stored beside a dotted quad over 255 failed the whole run
V4_KEY = """CASE WHEN regexp_full_match(ip, '[0-9]{1,3}([.][0-9]{1,3}){3}')
    AND list_max(list_transform(string_split(ip, '.'), x -> TRY_CAST(x AS BIGINT))) <= 255
    THEN (TRY_CAST(split_part(ip, '.', 1) AS BIGINT) << 24)
    + (TRY_CAST(split_part(ip, '.', 2) AS BIGINT) << 16)
    + (TRY_CAST(split_part(ip, '.', 3) AS BIGINT) << 8)
    + TRY_CAST(split_part(ip, '.', 4) AS BIGINT) END"""
#: address keys (:func:`demandloop.ipaddr.ip_keys`) -> account, source, detail per key
Lookup = Callable[[np.ndarray], KeyAccounts]


#: lookups by (workspace, fingerprint of its ranges, accounts and settings): an incremental
#: run in a server reuses the last one (normalising 100k account names took 0.45 s)
_LOOKUPS: dict[tuple[str, str], Lookup] = {}


def lookup_for(cur: Cursor, ws: str, settings: Settings, current: str) -> Lookup:
    """:func:`build_lookup`, cached while the inputs it is built from are unchanged (the
    workspace's fingerprint is *current*, see :func:`demandloop.resolve.state.fingerprint`).
    """
    key = (ws, current)
    if key not in _LOOKUPS:
        _LOOKUPS.clear()  # one workspace's at a time: a lookup holds its ranges in memory
        _LOOKUPS[key] = build_lookup(cur, ws, settings)
    return _LOOKUPS[key]


def build_lookup(cur: Cursor, ws: str, settings: Settings) -> Lookup:
    """Address -> account for this workspace: its ranges, and its accounts' names for the
    ASN table's organisations (accounts resolve created from emails are never matched by
    name: a name seen in a group call is not the CRM's)."""
    ranges, named = lookup_inputs(cur, ws)
    return lookup_from(ranges, named, settings.identity.use_asn)


def lookup_inputs(cur: Cursor, ws: str) -> tuple[pa.Table, pa.Table]:
    """What :func:`lookup_from` is built from: the workspace's ranges (``start_ip, end_ip,
    account_id``) and its named accounts (``account_id, name``), as Arrow tables (the
    personalisation snapshot stores them as they are)."""
    ranges = cur.execute("SELECT start_ip, end_ip, account_id FROM ip_ranges "
                         "WHERE workspace_id = $ws", {"ws": ws}).to_arrow_table()
    named = cur.execute(
        "SELECT account_id, name FROM accounts WHERE workspace_id = $ws AND name IS NOT NULL "
        "AND coalesce(source, '') NOT IN (SELECT unnest($own)) ORDER BY account_id",
        {"ws": ws, "own": list(RESOLVED_ACCOUNT_SOURCES)}).to_arrow_table()
    return ranges, named


def lookup_from(ranges: pa.Table, named: pa.Table, use_asn: bool) -> Lookup:
    """The lookup of :func:`build_lookup` from its inputs (:func:`lookup_inputs`)."""
    index = RangeIndex.build(ranges.column("start_ip").to_numpy(),
                             ranges.column("end_ip").to_numpy(), np.arange(ranges.num_rows))
    range_accounts = np.asarray(ranges.column("account_id").to_pylist(), dtype=object)
    by_name = {normalise_name(n): a for a, n in zip(named.column("account_id").to_pylist(),
                                                     named.column("name").to_pylist(),
                                                     strict=True)
               if isinstance(n, str) and n.strip()}
    table = asn_table.load() if use_asn else None

    def lookup(keys: np.ndarray) -> KeyAccounts:
        return key_accounts(keys, index, range_accounts, table, by_name)

    return lookup


#: the distinct addresses of page and track events (what ``collect.ip = "full"`` looks up)
ADDRESSES = ("SELECT DISTINCT ip FROM events WHERE workspace_id = $ws "
             f"AND {LOADED_AFTER} AND type IN ('page', 'track') "
             "AND ip IS NOT NULL")


def resolve_addresses(cur: Cursor, ws: str, settings: Settings, since: int,
                      current: str, lake: SqlEngine | None = None) -> int:
    """Look up (or freeze) the addresses of the events loaded after *since*; returns how
    many distinct addresses were looked up. With *lake* (a rebuild, ``collect.ip =
    "full"``: freezing rewrites events, which a lake's engine cannot), that engine finds
    the distinct addresses of its events; the lookup runs here."""
    lookup = lookup_for(cur, ws, settings, current)
    policy = settings.collect.ip
    if lake is not None:
        if policy != "full":  # enrich.run refuses it first, with the reason
            raise ValueError("a lake's addresses are looked up whole (collect.ip = full)")
        cur.register("_lake_ips", lake.query(inline(ADDRESSES, {"ws": ws, "since": since})))
        try:
            new = cur.execute(f"SELECT ip, {V4_KEY} AS key FROM _lake_ips").to_arrow_table()
        finally:
            cur.unregister("_lake_ips")
        return _look_up(cur, ws, new, lookup)
    if policy == "full":
        # The few new addresses first, then those of them already looked up: a NOT IN
        # over every lookup (4.6M at 10M events) hashed them all, 0.25 s a run.
        new = cur.execute(f"""
            WITH n AS ({ADDRESSES})
            SELECT ip, {V4_KEY} AS key FROM n WHERE ip NOT IN (
                SELECT ip FROM ip_lookups WHERE workspace_id = $ws
                AND ip IN (SELECT ip FROM n))""", {"ws": ws, "since": since}).to_arrow_table()
        return _look_up(cur, ws, new, lookup)
    return _freeze(cur, ws, since, policy, lookup)


def _look_up(cur: Cursor, ws: str, new: pa.Table, lookup: Lookup) -> int:
    """Look up the addresses of *new* (``ip, key``: :data:`V4_KEY`, NULL for others) and
    store them in ``ip_lookups``; returns how many."""
    if new.num_rows == 0:
        return 0
    column = new["key"]
    other = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
    keys = column.fill_null(-1).to_numpy().astype(np.int64)
    if len(other):  # not a dotted quad: IPv6, or not an address
        keys[other] = ip_keys(pd.Series(new["ip"].take(other).to_pylist(), dtype=object))
    found = lookup(keys)
    codes = pa.array(found.codes.astype(np.int32))
    looked = pa.table({"ip": new["ip"], **{
        c: pa.DictionaryArray.from_arrays(codes, pa.array(v, pa.string(), from_pandas=True))
        for c, v in zip(("account_id", "source", "detail"),
                        (found.account, found.source, found.detail), strict=True)}})
    # in batches of a row group: DuckDB scans an Arrow table one batch per thread (one
    # batch of 4.6M addresses inserted in 1.6 s, these in half the time)
    cur.register("_looked", pa.Table.from_batches(looked.to_batches(max_chunksize=122_880)))
    try:
        cur.execute("INSERT INTO ip_lookups SELECT $ws, ip, account_id, source, detail "
                    "FROM _looked", {"ws": ws})
    finally:
        cur.unregister("_looked")
    return int(new.num_rows)


def _freeze(cur: Cursor, ws: str, since: int, policy: str, lookup: Lookup) -> int:
    """The IP policy, applied once an address has been resolved: what each new event's
    whole address matched (kept in ``ip_matches``, so later runs still attribute the visit),
    and the address each one keeps."""
    new = cur.execute(
        "WITH n AS (SELECT message_id, ip FROM events WHERE workspace_id = $ws "
        f"AND {LOADED_AFTER} AND ip IS NOT NULL) "
        "SELECT message_id, ip FROM n WHERE message_id NOT IN (SELECT message_id "
        "FROM ip_matches WHERE workspace_id = $ws AND message_id IN "
        "(SELECT message_id FROM n))", {"ws": ws, "since": since}).df()
    if new.empty:
        return 0
    ips = pd.Series(new["ip"].unique(), dtype=object)
    account, found, why = lookup(ip_keys(ips)).columns()
    res = pd.DataFrame({"account_id": account, "source": found, "detail": why}, index=ips)
    source = new["ip"].map(res["source"])
    matched = pd.DataFrame({
        "message_id": new["message_id"].to_numpy(),
        "account_id": new["ip"].map(res["account_id"]).to_numpy(),
        "source": source.to_numpy(),
        "confidence": source.map(CONFIDENCE).fillna(0.0).to_numpy(),
        "detail": new["ip"].map(res["detail"]).to_numpy()})
    kept = pd.DataFrame({"ip": ips, "kept": [anonymise_ip(str(ip), policy) for ip in ips]})
    cur.register("_frozen", typed_table(matched, {"confidence": pa.float64()}))
    cur.register("_kept", typed_table(kept, {}))
    try:
        cur.execute("INSERT INTO ip_matches SELECT $ws, message_id, account_id, source, "
                    "confidence, detail FROM _frozen", {"ws": ws})
        cur.execute("UPDATE events AS e SET ip = k.kept FROM _kept AS k "
                    "WHERE e.workspace_id = $ws AND e.ip = k.ip AND e.message_id IN "
                    "(SELECT message_id FROM _frozen)", {"ws": ws})
    finally:
        cur.unregister("_frozen")
        cur.unregister("_kept")
    return len(ips)

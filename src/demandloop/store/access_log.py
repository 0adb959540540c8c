"""Writing access-log chunks: combined-format lines parsed in DuckDB (vectorised RE2 on
every core), JSON lines' text converted, crawlers named, and the rows inserted in the
caller's transaction without the lines already stored (by ``line_hash``, looked up only
within the chunk's time range)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import duckdb
import pyarrow as pa

from demandloop.collect.access_logs import COLUMNS, COMBINED, COMBINED_TIME, Chunk

#: a user agent -> (crawler, category), or None: enrich's catalogue, passed in
Namer = Callable[[str], tuple[str, str] | None]
#: (crawler, address) -> from the crawler's published addresses? (None: cannot be told)
Verify = Callable[[str, str | None], bool | None]
_GROUPS = ["ip", "ts", "method", "path", "status", "bytes", "referrer", "user_agent"]
NOT_A_LINE = "not a combined-format or JSON line"
NOT_A_TIME = "the time is not a real time"

_ROWS = f"""
CREATE OR REPLACE TEMP TABLE _log_rows AS
WITH parsed AS (
    SELECT line, text, regexp_extract(text, $pattern, {_GROUPS!r}) AS m FROM _log_raw
), rows AS (
    SELECT line, text, nullif(m.ip, '') AS ip, m.ts, m.method, NULL::VARCHAR AS host,
           m.path, m.status, m.bytes,
           CASE WHEN m.referrer IN ('', '-') THEN NULL ELSE m.referrer END AS referrer,
           CASE WHEN m.user_agent IN ('', '-') THEN NULL ELSE m.user_agent END AS user_agent,
           m.ip = '' AS unparsed
    FROM parsed
    UNION ALL
    SELECT line, text, ip, ts, method, host, path, status, bytes, referrer, user_agent, false
    FROM _log_json
)
SELECT line, unparsed, md5(text) AS line_hash,
       coalesce(try_strptime(ts, '{COMBINED_TIME}')::TIMESTAMP, try_cast(ts AS TIMESTAMP))
           AS ts,
       ip, method, host,
       CASE WHEN starts_with(path, 'http://') OR starts_with(path, 'https://')
            THEN coalesce(nullif(regexp_extract(path, '^https?://[^/]*(/.*)?$', 1), ''), '/')
            ELSE path END AS path,
       try_cast(status AS INTEGER) AS status, try_cast(bytes AS BIGINT) AS bytes,
       referrer, user_agent
FROM rows
"""


def insert(cur: duckdb.DuckDBPyConnection, ws: str, chunk: Chunk, name: Namer,
           verify: Verify, source: str) -> tuple[int, list[tuple[int, str]], dict[str, int]]:
    """Insert *chunk*'s good rows not stored yet. Returns how many were inserted, its bad
    lines (line number, why) and its AI crawler requests per category (and ``spoofed``:
    requests naming a crawler from an address that is not its)."""
    cur.register("_log_raw", pa.table({"line": pa.array(chunk.raw_lines, pa.int64()),
                                       "text": pa.array(chunk.raw, pa.string())}))
    cur.register("_log_json", pa.table(
        {c: pa.array(chunk.cols[c], pa.int64() if c == "line" else pa.string())
         for c in COLUMNS}))
    try:
        cur.execute(_ROWS, {"pattern": COMBINED})
        bad = [(int(n), NOT_A_LINE if unparsed else NOT_A_TIME) for n, unparsed in cur.execute(
            "SELECT line, unparsed FROM _log_rows WHERE unparsed OR ts IS NULL "
            "ORDER BY line").fetchall()]
        agents = [str(r[0]) for r in cur.execute(
            "SELECT DISTINCT user_agent FROM _log_rows WHERE user_agent IS NOT NULL "
            "AND NOT unparsed").fetchall()]
        named = [(a, found) for a in agents if (found := name(a)) is not None]
        cur.register("_log_agents", pa.table({
            "user_agent": pa.array([a for a, _ in named], pa.string()),
            "crawler": pa.array([f[0] for _, f in named], pa.string()),
            "crawler_category": pa.array([f[1] for _, f in named], pa.string())}))
        pairs = cur.execute(
            "SELECT DISTINCT g.crawler, r.ip FROM _log_rows r JOIN _log_agents g "
            "USING (user_agent) WHERE NOT r.unparsed").fetchall()
        checked = [(c, ip, verify(c, ip)) for c, ip in pairs]
        cur.register("_log_checked", pa.table({
            "crawler": pa.array([c for c, _, _ in checked], pa.string()),
            "ip": pa.array([ip for _, ip, _ in checked], pa.string()),
            "verified": pa.array([v for _, _, v in checked], pa.bool_())}))
        crawls = {str(k): int(v) for k, v in cur.execute(
            "SELECT CASE WHEN v.verified = false THEN 'spoofed' ELSE g.crawler_category END, "
            "count(*) FROM _log_rows r JOIN _log_agents g USING (user_agent) "
            "LEFT JOIN _log_checked v ON v.crawler = g.crawler AND v.ip IS NOT DISTINCT FROM "
            "r.ip WHERE NOT r.unparsed AND r.ts IS NOT NULL GROUP BY 1").fetchall()}
        span = cur.execute("SELECT min(ts), max(ts) FROM _log_rows").fetchone()
        done = cur.execute("""
            INSERT INTO access_log
            SELECT $ws, r.line_hash, r.ts, r.ip, r.method, r.host, r.path, r.status, r.bytes,
                   r.referrer, r.user_agent, g.crawler, g.crawler_category, v.verified, $source
            FROM (SELECT * FROM _log_rows WHERE NOT unparsed AND ts IS NOT NULL
                  QUALIFY row_number() OVER (PARTITION BY line_hash ORDER BY line) = 1) r
            LEFT JOIN _log_agents g USING (user_agent)
            LEFT JOIN _log_checked v ON v.crawler = g.crawler
                AND v.ip IS NOT DISTINCT FROM r.ip
            ANTI JOIN (SELECT line_hash FROM access_log WHERE workspace_id = $ws
                       AND ts BETWEEN $lo AND $hi) a USING (line_hash)""",
                           {"ws": ws, "source": source, "lo": span[0] if span else None,
                            "hi": span[1] if span else None}).fetchone()
        cur.execute("DROP TABLE _log_rows")
    finally:
        for view in ("_log_raw", "_log_json", "_log_agents", "_log_checked"):
            with contextlib.suppress(duckdb.Error):  # not registered: failed before it
                cur.unregister(view)
    return (int(done[0]) if done else 0), bad, crawls

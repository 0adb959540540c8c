"""Touches in SQL: the same definition as :func:`demandloop.enrich.touches.build_touches`
(the pandas reference it is tested against), written for DuckDB so that a rebuild of ten
million events runs on every core without leaving the database.

The input is a relation ``_tev`` (the page and track events of the visitors to build, with
``visitor`` = anonymous id, else ``user:`` + user id). Three small tables computed in Python
on distinct values join in: ``_channels(fkey, channel)`` (the channel rules over distinct
feature rows, see :mod:`demandloop.enrich.channels`), ``_paths(path, page_title, topic,
high)`` (topic rules and high-intent pages over distinct pages) and the account attribution
of :func:`attribution`. Only strings are built here; the runner executes them.
"""

from __future__ import annotations

from demandloop.enrich.channels import (
    CHANNEL_MOTION,
    HOST_PATTERN,
    SEARCH_CLICK,
    SOCIAL_CLICK,
    UTM,
    fragment_column,
)
from demandloop.enrich.touches import ACTIVITIES, HIGH_INTENT_WEIGHT, PAGE_WEIGHT, VISIT_GAP
from demandloop.resolve.accounts import confidence_sql
from demandloop.store.dialect import literal


def _host(expr: str) -> str:
    h = f"regexp_extract(lower(coalesce({expr}, '')), {literal(HOST_PATTERN)}, 1)"
    return f"(CASE WHEN starts_with({h}, 'www.') THEN substring({h}, 5) ELSE {h} END)"


def feature_columns(fragments: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, SQL expression) of every channel feature (see ``channels.features``)."""
    url = "lower(coalesce(url, ''))"
    cols = [(c, f"lower(coalesce({c}, ''))") for c in UTM]
    cols += [("ref_host", _host("referrer")), ("url_host", _host("url")),
             ("click_search", f"regexp_matches({url}, {literal(SEARCH_CLICK)})"),
             ("click_social", f"regexp_matches({url}, {literal(SOCIAL_CLICK)})")]
    cols += [(fragment_column(f), f"contains({url}, {literal(f.lower())})") for f in fragments]
    return cols


#: what a page of ``_tev`` keeps, before its features' key
_PAGE = "message_id, visitor, timestamp AS ts, path, page_title, anonymous_id, user_id, ip"


def pages(fragments: tuple[str, ...]) -> str:
    """Each page of ``_tev`` with the hash of its features (``fkey``): a query."""
    exprs = [e for _, e in feature_columns(fragments)]
    return f"SELECT {_PAGE}, hash({', '.join(exprs)}) AS fkey FROM _tev WHERE type = 'page'"


#: the raw columns a page's channel features are computed from
RAW = (*UTM, "referrer", "url")


def _features(fragments: tuple[str, ...], raw_key: bool = False) -> str:
    """Every distinct combination of :data:`RAW` among the pages of ``_tev``: the hash of
    its features (``fkey``) and the features, after the hash of the raw columns
    (``rkey``) with *raw_key*."""
    cols = feature_columns(fragments)
    named = ", ".join(f'{e} AS "{n}"' for n, e in cols)
    rkey = f"hash({', '.join(RAW)}) AS rkey, " if raw_key else ""
    # the features over distinct raw columns, not over every page: the regular
    # expressions then run once per distinct URL and referrer (3.2 s -> 0.5 s at 10M)
    return (f"SELECT {rkey}hash({', '.join(e for _, e in cols)}) AS fkey, {named} "
            f"FROM (SELECT DISTINCT {', '.join(RAW)} FROM _tev WHERE type = 'page')")


def distinct_features(fragments: tuple[str, ...]) -> str:
    """One row per distinct feature combination of the pages of ``_tev``, with its key."""
    return f"SELECT DISTINCT ON (fkey) * FROM ({_features(fragments)})"


def page_features(fragments: tuple[str, ...]) -> list[str]:
    """DuckDB's statements for ``_pages`` (:func:`pages`, the portable query, which Spark
    runs) and ``_raw_features`` (:func:`_features`; :func:`distinct_features` is
    ``FEATURES_OF_RAW`` then). The same keys, found another way: each page looks its
    ``fkey`` up by the hash of its raw columns among the distinct ones, instead of
    computing the regular expressions of its features again (0.5 s of each million
    pages of a rebuild). ``_pages`` is a view, as ``_tev`` is: rows a transaction writes
    into a temporary table of its own are read several times slower than the stored
    events (1.75 s against 0.48 s); ``_raw_features`` holds the few distinct rows."""
    return [f"CREATE OR REPLACE TEMP TABLE _raw_features AS SELECT DISTINCT ON (rkey) * "
            f"FROM ({_features(fragments, raw_key=True)})",
            f"CREATE OR REPLACE TEMP VIEW _pages AS SELECT {_PAGE}, fkey FROM _tev "
            "JOIN (SELECT rkey, fkey FROM _raw_features) "
            f"ON rkey = hash({', '.join('_tev.' + c for c in RAW)}) WHERE type = 'page'"]


#: :func:`distinct_features` from ``_raw_features`` (see :func:`page_features`)
FEATURES_OF_RAW = "SELECT DISTINCT ON (fkey) * EXCLUDE (rkey) FROM _raw_features"


def _motion(channel: str) -> str:
    cases = " ".join(f"WHEN {literal(c)} THEN {literal(m)}" for c, m in CHANNEL_MOTION.items())
    return f"(CASE {channel} {cases} ELSE 'demand' END)"


def _activity() -> str:
    name = "lower(trim(coalesce(event, '')))"
    cases = " ".join(f"WHEN {name} IN ({', '.join(literal(e) for e in a.events)}) "
                     f"THEN {literal(a.name)}" for a in ACTIVITIES)
    return f"(CASE {cases} END)"


def _by_activity(field: str, default: str) -> str:
    cases = []
    for a in ACTIVITIES:
        value = getattr(a, field)
        cases.append(f"WHEN {literal(a.name)} THEN "
                     + (literal(value) if isinstance(value, str) else
                        str(value) if value is not None else default))
    return f"(CASE activity {' '.join(cases)} END)"


#: the visit gap in microseconds: both engines count a time's age in whole microseconds
#: (DuckDB's epoch() is fractional seconds, Spark's unix_timestamp() whole ones)
GAP_US = int(VISIT_GAP.total_seconds()) * 1_000_000


def touches(context: bool = False) -> str:
    """The touches of ``_tev`` before attribution (page visits carry their landing channel;
    tracks the activity's channel, else their visit's, else direct): a query. With
    *context*, each visitor's last stored page touch (``_ctx(visitor, ts, channel)``, see
    :mod:`demandloop.enrich.touch_reach`) goes before its events and out of the result."""
    ctx = ", ctx" if context else ""
    extra = ("UNION ALL SELECT '', visitor, ts, NULL, NULL, NULL, NULL, NULL, channel, TRUE "
             "FROM _ctx") if context else ""
    return f"""
WITH p AS (
    SELECT g.message_id, g.visitor, g.ts, g.path, g.page_title, g.anonymous_id, g.user_id,
           g.ip, c.channel{", FALSE AS ctx" if context else ""}
    FROM _pages g JOIN _channels c USING (fkey)
    {extra}),
s AS (
    SELECT *, (lag(ts) OVER w IS NULL
               OR epoch_us(ts) - epoch_us(lag(ts) OVER w) > {GAP_US}
               OR channel <> 'internal') AS starts
    FROM p WINDOW w AS (PARTITION BY visitor ORDER BY ts, message_id)),
pages AS (
    SELECT message_id, visitor, ts, path, page_title, anonymous_id, user_id, ip{ctx},
           last_value(CASE WHEN starts THEN channel END IGNORE NULLS) OVER (
               PARTITION BY visitor ORDER BY ts, message_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS landing
    FROM s),
landed AS (
    SELECT message_id, visitor, ts, path, page_title, anonymous_id, user_id, ip{ctx},
           CASE WHEN landing = 'internal' THEN 'direct' ELSE landing END AS channel
    FROM pages),
tracks AS (
    SELECT message_id, visitor, timestamp AS ts, path, page_title, anonymous_id, user_id, ip,
           {_activity()} AS activity
    FROM _tev WHERE type = 'track'),
acts AS (
    SELECT *, {_by_activity('channel', 'NULL')} AS own_channel,
           coalesce({_by_activity('motion', 'NULL')}, 'capture') AS motion,
           {_by_activity('weight', '0.0')} AS weight
    FROM tracks WHERE activity IS NOT NULL),
-- the page each tracked activity happened after (the visitor's last at or before it, a
-- page first at the same time): a window, not DuckDB's ASOF join, so Spark runs it too,
-- over the pages of visitors with activities only
marks AS (
    SELECT visitor, ts, 0 AS kind, message_id, ts AS page_ts, channel AS page_channel
    FROM landed WHERE visitor IN (SELECT visitor FROM acts)
    UNION ALL
    SELECT visitor, ts, 1, message_id, NULL, NULL FROM acts),
visit_of AS (
    SELECT message_id, page_ts, page_channel FROM (
        SELECT kind, message_id,
               last_value(page_ts IGNORE NULLS) OVER w AS page_ts,
               last_value(page_channel IGNORE NULLS) OVER w AS page_channel
        FROM marks
        WINDOW w AS (PARTITION BY visitor ORDER BY ts, kind, message_id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
    WHERE kind = 1),
inherited AS (
    SELECT a.message_id, a.ts, a.path, a.page_title, a.anonymous_id, a.user_id, a.ip,
           a.activity, a.motion, a.weight,
           coalesce(a.own_channel, CASE WHEN epoch_us(a.ts) - epoch_us(v.page_ts) <= {GAP_US}
                                        THEN v.page_channel END, 'direct') AS channel
    FROM acts a JOIN visit_of v ON v.message_id = a.message_id)
SELECT l.message_id, l.ts, l.anonymous_id, l.user_id, l.ip, l.channel,
       {_motion('l.channel')} AS motion,
       CASE WHEN x.high THEN 'high_intent_page' ELSE 'page_view' END AS activity,
       CASE WHEN x.high THEN {HIGH_INTENT_WEIGHT} ELSE {PAGE_WEIGHT} END AS weight, x.topic,
       l.path
FROM landed l LEFT JOIN _paths x ON x.path IS NOT DISTINCT FROM l.path
    AND x.page_title IS NOT DISTINCT FROM l.page_title
{"WHERE NOT l.ctx" if context else ""}
UNION ALL
SELECT i.message_id, i.ts, i.anonymous_id, i.user_id, i.ip, i.channel, i.motion, i.activity,
       i.weight, x.topic, i.path
FROM inherited i LEFT JOIN _paths x ON x.path IS NOT DISTINCT FROM i.path
    AND x.page_title IS NOT DISTINCT FROM i.page_title
"""


#: the columns of :func:`attributed`, in order
ATTRIBUTED = ("message_id", "account_id", "person_id", "anonymous_id", "ts", "channel",
              "motion", "activity", "weight", "topic", "match_source", "confidence", "ip",
              "user_id", "path")


def attributed(rows: str | None = None, addresses: str = "t") -> str:
    """:func:`touches` (or *rows*, another query of its columns: touches kept as they are,
    to attribute again) with each touch's person and account: the person of its anonymous
    id, else of its user id; that person's account, else what its address matched while
    whole (IP policy), else its address's lookup. *addresses* names the relation whose
    ``ip`` column holds their addresses: by default ``t``, the touches themselves, which
    DuckDB then computes once for both uses (reading ``_tev``'s addresses again scanned
    the events a third time per chunk: 0.3 s of each million events of a rebuild); Spark,
    which computes a CTE again where it is used, reads ``_tev``'s. Columns
    :data:`ATTRIBUTED`; a query."""
    account = ("CASE WHEN m.account_id IS NOT NULL THEN m.account_id "
               "WHEN f.message_id IS NOT NULL THEN f.account_id ELSE l.account_id END")
    source = ("CASE WHEN m.account_id IS NOT NULL THEN m.source "
              "WHEN f.message_id IS NOT NULL THEN CASE WHEN f.account_id IS NOT NULL "
              "THEN f.source END ELSE l.source END")
    detail = ("CASE WHEN m.account_id IS NOT NULL THEN NULL "
              "WHEN f.message_id IS NOT NULL THEN coalesce(f.detail, 'no ip') "
              "ELSE coalesce(l.detail, 'no ip') END")
    return f"""
WITH t AS ({rows or touches()}),
r AS (
    SELECT t.*, coalesce(pa.person_id, pu.person_id) AS person_id
    FROM t
    -- each kind's identifiers with their prefix cut, not every touch's id with one added:
    -- DuckDB built its hash table on the touches' side of the concatenated key (1.2 s of
    -- each million touches of a rebuild)
    LEFT JOIN (SELECT substr(identifier, 6) AS id, person_id FROM person_identifiers
               WHERE workspace_id = $ws AND starts_with(identifier, 'anon:')) pa
        ON pa.id = t.anonymous_id
    LEFT JOIN (SELECT substr(identifier, 6) AS id, person_id FROM person_identifiers
               WHERE workspace_id = $ws AND starts_with(identifier, 'user:')) pu
        ON pu.id = t.user_id),
a AS (
    SELECT r.*, {account} AS account_id, {source} AS source, {detail} AS detail
    FROM r
    LEFT JOIN account_matches m ON m.workspace_id = $ws AND m.subject_kind = 'person'
        AND m.subject = r.person_id
    LEFT JOIN ip_matches f ON f.workspace_id = $ws AND f.message_id = r.message_id
    -- only the lookups of this chunk's addresses: a join that builds on every lookup
    -- (4.6M at 10M events) cost 1.1 s a chunk, this 0.7 s
    LEFT JOIN (SELECT ip, account_id, source, detail FROM ip_lookups
               WHERE workspace_id = $ws AND ip IN (SELECT ip FROM {addresses})) l
        ON l.ip = r.ip)
SELECT message_id, account_id, person_id, anonymous_id, ts, channel, motion, activity,
       weight, topic,
       CASE WHEN account_id IS NOT NULL THEN source
            ELSE 'unresolved: ' || coalesce(detail, 'unknown') END AS match_source,
       CASE WHEN account_id IS NOT NULL THEN {confidence_sql('source')} ELSE 0.0 END
           AS confidence,
       ip, user_id, path
FROM a"""


def insert_touches(returning: bool = False, rows: str | None = None,
                   addresses: str = "t", source: str | None = None) -> str:
    """Insert :func:`attributed` (of *rows* and *addresses*), or the relation *source* of
    its columns (touches an engine attributed), into ``touches``. One statement, so
    nothing is staged in the transaction's own storage. Rows are written in account order
    (then time): DuckDB's zone maps then skip every row group but an account's own when a
    page reads one account's touches (an account page at 10M events: 272 ms -> 50 ms), at
    no cost to the rebuild; nothing reads touches in their stored order. ``seq`` (time,
    then a hash of the message id) is the store's own order of touches, computed here.
    *returning*: the statement returns each written touch's account and person, else
    their number."""
    return f"""
INSERT INTO touches (workspace_id, touch_id, message_id, account_id, person_id,
    anonymous_id, ts, channel, motion, activity, weight, topic, match_source, confidence,
    ip, seq, user_id, path)
SELECT $ws, message_id, message_id, account_id, person_id, anonymous_id, ts, channel,
       motion, activity, weight, topic, match_source, confidence, ip, seq, user_id, path
FROM (SELECT *, epoch_us(ts) * 1024 + (hash(message_id) % 1024)::BIGINT AS seq
      FROM ({source or attributed(rows, addresses)}))
ORDER BY account_id NULLS LAST, seq
""" + ("RETURNING account_id, person_id" if returning else "")

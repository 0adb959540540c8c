"""``demandloop report aeo``: what AI crawlers read, what they skip, and what the visits AI
assistants send on to you lead to.

Judged at ``as_of`` (default: the newest request logged) over the ``days`` before it; only
what was logged, touched or created by ``as_of`` is read.

* **crawls**: requests per week, per crawler and category (all history up to ``as_of``),
  without the spoofed ones;
* **spoofed**: requests naming a crawler whose operator publishes its addresses, from an
  address that is not one of them, per crawler in the window (they count nowhere else);
* **sections**: requests per site section (the path's first segment) and category, in the
  window;
* **pages**: for each *key page* (the content index's pages when there is one, else the
  pages people requested most), the AI crawls in the window by category, the last AI search
  crawl ever, and then what AI assistants sent to it: landings recorded by the collector
  (``ai_assistant`` touches), requests logged with an AI assistant's referrer, the accounts
  those landings came from, their forms after landing, how many are at MQA or beyond, and
  the pipeline they opened after landing;
* **uncrawled**: key pages no AI *search* crawler fetched in the window (an assistant cannot
  quote what its search index never read);
* **referrals**: AI-assistant landings per week, the trend that also feeds demand health.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from demandloop.store.db import Store

#: stages at which an account counts as qualified (MQA or beyond)
QUALIFIED = ("mqa", "sql", "opportunity", "customer")
#: touches that are a hand-raise
FORMS = ("form_fill", "demo_request", "trial", "webinar_registration", "meeting_booked")
_PAGE = "split_part({c}, '?', 1)"
#: a crawler request not shown to be spoofed (verified, or its operator publishes no list)
_REAL = "crawler_verified IS NOT false"


def _rows(cur: Any, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rel = cur.execute(sql, params)
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def report(store: Store, *, days: int, as_of: dt.datetime | None, key_pages: list[str],
           ai_hosts: tuple[str, ...], top: int = 50) -> dict[str, Any]:
    """The AEO report (see the module docstring); *key_pages* are paths (none: the *top*
    pages people requested), *ai_hosts* the referrer hosts of AI assistants."""
    ws = store.workspace_id
    chosen = "given" if key_pages else "traffic"
    with store.reader() as cur:
        if as_of is None:
            row = cur.execute("SELECT max(ts) FROM access_log WHERE workspace_id = ?",
                              [ws]).fetchone()
            as_of = row[0] if row and row[0] is not None else dt.datetime.now(dt.UTC).replace(
                tzinfo=None)
        assert as_of is not None
        since = as_of - dt.timedelta(days=days)
        p = {"ws": ws, "at": as_of, "since": since,
             "hosts": list(ai_hosts), "forms": list(FORMS), "qualified": list(QUALIFIED)}
        logged = cur.execute("SELECT count(*), count(crawler) FILTER (WHERE "
                             f"{_REAL}) FROM access_log WHERE workspace_id = $ws AND "
                             "ts <= $at", {"ws": ws, "at": as_of}).fetchone() or (0, 0)
        crawls = _rows(cur, """
            SELECT date_trunc('week', ts)::DATE AS week, crawler_category AS category,
                   crawler, count(*) AS requests
            FROM access_log WHERE workspace_id = $ws AND crawler IS NOT NULL
              AND crawler_verified IS NOT false AND ts <= $at
            GROUP BY ALL ORDER BY week, category, crawler""", {"ws": ws, "at": as_of})
        spoofed = _rows(cur, """
            SELECT crawler, count(*) AS requests, count(DISTINCT ip) AS addresses,
                   max(ts) AS last_seen
            FROM access_log WHERE workspace_id = $ws AND crawler_verified = false
              AND ts > $since AND ts <= $at
            GROUP BY 1 ORDER BY requests DESC, crawler""",
                        {"ws": ws, "since": since, "at": as_of})
        sections = _rows(cur, f"""
            SELECT '/' || split_part(ltrim({_PAGE.format(c='path')}, '/'), '/', 1) AS section,
                   count(*) FILTER (WHERE crawler_category = 'training' AND {_REAL}) AS training,
                   count(*) FILTER (WHERE crawler_category = 'search' AND {_REAL}) AS search,
                   count(*) FILTER (WHERE crawler_category = 'user' AND {_REAL}) AS user,
                   count(*) FILTER (WHERE crawler_category = 'agent' AND {_REAL}) AS agent,
                   count(*) FILTER (WHERE crawler IS NULL) AS people,
                   count(*) FILTER (WHERE crawler_verified = false) AS spoofed
            FROM access_log WHERE workspace_id = $ws AND ts > $since AND ts <= $at
            GROUP BY 1 ORDER BY training + search + user + agent DESC, section""",
            {"ws": ws, "since": since, "at": as_of})
        if not key_pages:
            key_pages = [str(r[0]) for r in cur.execute(f"""
                SELECT {_PAGE.format(c='path')} AS page FROM access_log
                WHERE workspace_id = $ws AND crawler IS NULL AND status = 200
                  AND ts > $since AND ts <= $at
                GROUP BY 1 ORDER BY count(*) DESC, page LIMIT {int(top)}""",
                {"ws": ws, "since": since, "at": as_of}).fetchall()]
        cur.execute("CREATE OR REPLACE TEMP TABLE _aeo_pages AS SELECT unnest($pages::VARCHAR[]) "
                    "AS page", {"pages": key_pages})
        pages = _rows(cur, _PAGES, p)
        cur.execute("DROP TABLE _aeo_pages")
        referrals = _rows(cur, """
            SELECT date_trunc('week', ts)::DATE AS week, count(*) AS landings
            FROM touches WHERE workspace_id = $ws AND channel = 'ai_assistant' AND ts <= $at
            GROUP BY 1 ORDER BY 1""", {"ws": ws, "at": as_of})
    uncrawled = [{"page": r["page"], "last_search_crawl": r["last_search_crawl"]}
                 for r in pages if not r["search_crawls"]]
    return {"as_of": as_of, "days": days, "requests": int(logged[0]),
            "crawler_requests": int(logged[1]), "key_pages": len(key_pages),
            "key_pages_from": chosen,
            "crawls": crawls, "sections": sections, "pages": pages, "uncrawled": uncrawled,
            "spoofed": spoofed, "referrals": referrals}


#: per key page: crawls in the window, the last search crawl ever (up to as_of), landings
#: from AI assistants (collected and logged), and what the landing accounts did after
_PAGES = f"""
WITH crawled AS (
    SELECT {_PAGE.format(c='path')} AS page,
           count(*) FILTER (WHERE crawler_category = 'search' AND ts > $since) AS search_crawls,
           count(*) FILTER (WHERE crawler_category = 'training' AND ts > $since)
               AS training_crawls,
           count(*) FILTER (WHERE crawler_category = 'user' AND ts > $since) AS user_fetches,
           max(ts) FILTER (WHERE crawler_category = 'search') AS last_search_crawl
    FROM access_log WHERE workspace_id = $ws AND crawler IS NOT NULL
      AND crawler_verified IS NOT false AND ts <= $at
    GROUP BY 1
), logged AS (
    SELECT {_PAGE.format(c='path')} AS page, count(*) AS logged_referrals
    FROM access_log
    WHERE workspace_id = $ws AND crawler IS NULL AND ts > $since AND ts <= $at
      AND list_contains($hosts, regexp_replace(regexp_extract(referrer,
          '^https?://([^/:]+)', 1), '^www\\.', ''))
    GROUP BY 1
), landed AS (
    SELECT {_PAGE.format(c='path')} AS page, account_id, min(ts) AS first_at, count(*) AS n
    FROM touches WHERE workspace_id = $ws AND channel = 'ai_assistant'
      AND ts > $since AND ts <= $at AND path IS NOT NULL
    GROUP BY 1, 2
), stages AS (
    SELECT entity_id AS account_id, arg_max(stage, as_of) AS stage FROM scores
    WHERE workspace_id = $ws AND entity = 'account' AND as_of <= $at GROUP BY 1
), outcomes AS (
    SELECT l.page, sum(l.n) AS ai_landings, count(l.account_id) AS accounts,
           count(*) FILTER (WHERE list_contains($qualified, s.stage)) AS qualified_accounts,
           coalesce(sum((SELECT count(*) FROM touches t WHERE t.workspace_id = $ws
                          AND t.account_id = l.account_id AND t.ts >= l.first_at
                          AND t.ts <= $at AND list_contains($forms, t.activity))), 0) AS forms,
           coalesce(sum((SELECT sum(o.amount) FROM opportunities o WHERE o.workspace_id = $ws
                         AND o.account_id = l.account_id AND o.created_at >= l.first_at
                         AND o.created_at <= $at)), 0) AS pipeline
    FROM landed l LEFT JOIN stages s USING (account_id)
    GROUP BY 1
)
SELECT k.page, coalesce(c.search_crawls, 0) AS search_crawls,
       coalesce(c.training_crawls, 0) AS training_crawls,
       coalesce(c.user_fetches, 0) AS user_fetches, c.last_search_crawl,
       coalesce(o.ai_landings, 0) AS ai_landings,
       coalesce(g.logged_referrals, 0) AS logged_referrals,
       coalesce(o.accounts, 0) AS accounts, coalesce(o.forms, 0) AS forms,
       coalesce(o.qualified_accounts, 0) AS qualified_accounts,
       coalesce(o.pipeline, 0) AS pipeline
FROM _aeo_pages k LEFT JOIN crawled c USING (page) LEFT JOIN logged g USING (page)
LEFT JOIN outcomes o USING (page)
ORDER BY search_crawls, k.page
"""

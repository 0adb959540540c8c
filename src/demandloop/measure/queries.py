"""Reads for the measure stage: the frames funnel, health, attribution and the scorecard
take, fetched on a reader cursor (reads may run beside the writer)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from demandloop.compute import Tables, frame, tables
from demandloop.measure import inputs
from demandloop.store.db import Store

#: frames read from the workspace's store: what scoring wrote (stage changes, the latest
#: scores) and the access log (the touches are read by an engine: see _ENGINE)
_QUERIES = {
    "stage_changes": "SELECT entity, entity_id, from_stage, to_stage, changed_at "
                     "FROM stage_changes WHERE workspace_id = $ws ORDER BY changed_at",
    "scores": "SELECT account_id, fit, band FROM account_view WHERE workspace_id = $ws "
              "AND as_of IS NOT NULL",
    # the pages an AI search crawler (not a spoofed one) fetched in the log's last 30 days
    "ai_search_pages": "SELECT DISTINCT split_part(path, '?', 1) AS page FROM access_log "
                       "WHERE workspace_id = $ws AND crawler_category = 'search' "
                       "AND crawler_verified IS NOT false AND ts > (SELECT max(ts) "
                       "FROM access_log WHERE workspace_id = $ws) - INTERVAL 30 DAY",
    "access_log_size": "SELECT count(*) AS n FROM access_log WHERE workspace_id = $ws",
}


#: frames an engine computes from the workspace's tables (from the lake on Spark): the
#: CRM-sized ones, and each account's first touch
_ENGINE: dict[str, Callable[[Tables], pd.DataFrame]] = {
    "accounts": lambda t: frame(t.accounts.select(
        "account_id", "industry", "employees", "target").order_by("account_id")),
    "leads": lambda t: frame(t.leads.select(
        "lead_id", "account_id", "person_id", "created_at", "channel", "origin"
    ).order_by("lead_id")),
    "opportunities": lambda t: frame(t.opportunities.select(
        "opportunity_id", "account_id", "lead_id", "created_at", "closed_at", "won",
        "is_closed", "amount").order_by("opportunity_id")),
    "person_accounts": lambda t: frame(t.persons.filter(t.persons.account_id.notnull())
                                       .select("person_id", "account_id")
                                       .order_by("person_id")),
    "spend": lambda t: frame(t.spend.select(
        "date", "channel", "campaign", "spend", "impressions", "clicks"
    ).order_by(["date", "channel"])),
    "account_firsts": inputs.account_firsts,
}

#: every frame :func:`frames` gives (``weekly``, ``pipeline`` and ``scorecard`` stand for
#: their parts, ``weekly_*``, ``pipeline_*`` and ``scorecard_*``: see
#: demandloop.measure.views.parts)
NAMES = (*_QUERIES, *_ENGINE, "weekly", "pipeline", "scorecard")


def frames(store: Store, *names: str, source: Tables | None = None,
           window_days: int = 90) -> dict[str, pd.DataFrame]:
    """The named input frames (all of them when no name is given). Those an engine computes
    come from *source* when given (Spark's view of the lake), else from the store's own
    tables; what scoring wrote (stage changes, scores) always comes from the store.
    *window_days*: pipeline influence's window."""
    t = source or tables(store)
    out = {}
    with store.reader() as cur:
        for name in names or NAMES:
            if name == "weekly":
                out.update({f"weekly_{k}": v for k, v in inputs.weekly_parts(t).items()})
            elif name == "pipeline":
                out.update({f"pipeline_{k}": v for k, v in
                            inputs.pipeline_parts(t, window_days).items()})
            elif name == "scorecard":
                out.update({f"scorecard_{k}": v for k, v in
                            inputs.scorecard_parts(t).items()})
            elif name in _ENGINE:
                out[name] = _ENGINE[name](t)
            else:
                out[name] = cur.execute(_QUERIES[name], {"ws": store.workspace_id}).df()
    return out


def latest_touch(store: Store) -> pd.Timestamp | None:
    """The time of the last touch (None before any)."""
    with store.reader() as cur:
        row = cur.execute("SELECT max(ts) FROM touches WHERE workspace_id = ?",
                          [store.workspace_id]).fetchone()
    return pd.Timestamp(row[0]) if row and row[0] is not None else None


def sla_inputs(store: Store, entity: str, stage: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For speed to lead: when each *entity* (account or person) reached *stage*, and the
    sales touches of every such entity."""
    key = "account_id" if entity == "account" else "person_id"
    with store.reader() as cur:
        changes = cur.execute(
            "SELECT entity_id, changed_at FROM stage_changes WHERE workspace_id = ? "
            "AND entity = ? AND to_stage = ?", [store.workspace_id, entity, stage]).df()
        touches = cur.execute(
            f"SELECT {key} AS entity_id, ts FROM touches WHERE workspace_id = ? "
            f"AND motion = 'sales' AND {key} IS NOT NULL", [store.workspace_id]).df()
    return changes, touches


def anonymous_visits(store: Store) -> pd.DataFrame:
    """Page views made before any identify (``anonymous_id``) with the account each was
    attributed to (or null): what resolution quality is judged on."""
    with store.reader() as cur:
        return cur.execute(
            "SELECT t.anonymous_id, t.account_id FROM touches t JOIN events e "
            "ON e.workspace_id = t.workspace_id AND e.message_id = t.message_id "
            "WHERE t.workspace_id = ? AND e.type = 'page' AND e.user_id IS NULL",
            [store.workspace_id]).df()


#: ``Experience Viewed`` events with the account each is attributed to, as a touch would be
#: (the person's account, else what the address matched while whole, else its lookup)
_EXPOSURES = """
WITH x AS (
    SELECT message_id, timestamp AS ts, anonymous_id, user_id, ip,
           json_extract_string(properties, '$.experience') AS experience,
           coalesce(TRY_CAST(json_extract_string(properties, '$.control') AS BOOLEAN),
                    false) AS control
    FROM events WHERE workspace_id = $ws AND type = 'track'
        AND event = 'Experience Viewed' AND timestamp <= $at),
a AS (
    SELECT x.*, CASE WHEN m.account_id IS NOT NULL THEN m.account_id
                     WHEN f.message_id IS NOT NULL THEN f.account_id
                     ELSE l.account_id END AS account_id
    FROM x
    LEFT JOIN person_identifiers pa ON pa.workspace_id = $ws
        AND pa.identifier = 'anon:' || x.anonymous_id
    LEFT JOIN person_identifiers pu ON pu.workspace_id = $ws
        AND pu.identifier = 'user:' || x.user_id
    LEFT JOIN account_matches m ON m.workspace_id = $ws AND m.subject_kind = 'person'
        AND m.subject = coalesce(pa.person_id, pu.person_id)
    LEFT JOIN ip_matches f ON f.workspace_id = $ws AND f.message_id = x.message_id
    LEFT JOIN ip_lookups l ON l.workspace_id = $ws AND l.ip = x.ip)
SELECT experience, account_id, min(ts) AS first_seen, arg_min(control, ts) AS control,
       count(*) AS views
FROM a WHERE experience IS NOT NULL GROUP BY ALL ORDER BY experience, account_id
"""


def personalization_inputs(store: Store, activities: list[str], at: pd.Timestamp
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exposures per experience and account (``account_id`` None for views no account was
    found for) and the goal events up to *at*: touches of *activities* and, when listed,
    opportunities created (``activity = 'opportunity'``)."""
    params = {"ws": store.workspace_id, "at": at.to_pydatetime(), "acts": activities}
    with store.reader() as cur:
        exposures = cur.execute(_EXPOSURES, {"ws": params["ws"], "at": params["at"]}).df()
        conversions = cur.execute(
            "SELECT account_id, activity, ts FROM touches WHERE workspace_id = $ws "
            "AND account_id IS NOT NULL AND ts <= $at AND list_contains($acts, activity) "
            "UNION ALL SELECT account_id, 'opportunity', created_at FROM opportunities "
            "WHERE workspace_id = $ws AND account_id IS NOT NULL AND created_at <= $at "
            "AND list_contains($acts, 'opportunity')", params).df()
    return exposures, conversions


def latest_event(store: Store) -> pd.Timestamp | None:
    """The time of the last event (None before any)."""
    with store.reader() as cur:
        row = cur.execute("SELECT max(timestamp) FROM events WHERE workspace_id = ?",
                          [store.workspace_id]).fetchone()
    return pd.Timestamp(row[0]) if row and row[0] is not None else None

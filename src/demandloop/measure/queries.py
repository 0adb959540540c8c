"""Reads for the measure stage: the frames funnel, health, attribution and the scorecard
take, fetched on a reader cursor (reads may run beside the writer)."""

from __future__ import annotations

import pandas as pd

from demandloop.store.db import Store

_QUERIES = {
    "accounts": "SELECT account_id, industry, employees, target FROM accounts "
                "WHERE workspace_id = $ws ORDER BY account_id",
    "touches": "SELECT account_id, person_id, anonymous_id, ts, channel, motion, activity, "
               "match_source FROM touches WHERE workspace_id = $ws ORDER BY ts, touch_id",
    "leads": "SELECT lead_id, account_id, person_id, created_at, channel, origin FROM leads "
             "WHERE workspace_id = $ws ORDER BY lead_id",
    "opportunities": "SELECT opportunity_id, account_id, lead_id, created_at, closed_at, won, "
                     "is_closed, amount FROM opportunities WHERE workspace_id = $ws "
                     "ORDER BY opportunity_id",
    "stage_changes": "SELECT entity, entity_id, from_stage, to_stage, changed_at "
                     "FROM stage_changes WHERE workspace_id = $ws ORDER BY changed_at",
    "person_accounts": "SELECT person_id, account_id FROM persons WHERE workspace_id = $ws "
                       "AND account_id IS NOT NULL",
    "spend": "SELECT date, channel, campaign, spend, impressions, clicks FROM spend "
             "WHERE workspace_id = $ws ORDER BY date, channel",
    "scores": "SELECT account_id, fit, band FROM account_view WHERE workspace_id = $ws "
              "AND as_of IS NOT NULL",
}


def frames(store: Store, *names: str) -> dict[str, pd.DataFrame]:
    """The named input frames (all of them when no name is given)."""
    out = {}
    with store.reader() as cur:
        for name in names or tuple(_QUERIES):
            out[name] = cur.execute(_QUERIES[name], {"ws": store.workspace_id}).df()
    return out

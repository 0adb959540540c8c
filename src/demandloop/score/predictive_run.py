"""The predictive models' runner: read accounts, leads and outcomes from the store, train
point in time (:mod:`demandloop.score.predictive`) and store each account's probability."""

from __future__ import annotations

import datetime as dt

import orjson
import pandas as pd

from demandloop.errors import UsageError
from demandloop.score.predictive import (
    Report,
    account_features,
    chosen_split,
    contributions,
    default_split,
    train_accounts,
    train_leads,
)
from demandloop.store.db import Store
from demandloop.store.pit import RESOLVED_SOURCES


def train_fit(store: Store, split: dt.datetime | None = None, horizon_days: int = 90
              ) -> Report:
    """Predictive fit: learn which accounts open an opportunity within *horizon_days*,
    point in time (see :mod:`demandloop.score.predictive`), and report its held-out
    quality at *split* (default: the latest split whose test window has ended). Then
    refit on the latest complete window and store each account's calibrated probability
    and top feature contributions in ``predictions``."""
    accounts, opps, end = account_inputs(store)
    if accounts["known_at"].notna().sum() == 0:
        raise UsageError("no accounts to learn from",
                         hint="import accounts (a CRM export, Olist) and opportunities")
    at = chosen_split(pd.Timestamp(split), accounts, opps, horizon_days, end) if split \
        else default_split(accounts, opps, horizon_days, end)
    _, report, _ = train_accounts(accounts, opps, at, horizon_days)
    # the stored model: the same recipe one window later, on the newest outcomes known
    latest = default_split(accounts, opps, horizon_days, end) + pd.Timedelta(
        days=horizon_days)
    model, _, _ = train_accounts(accounts, opps, latest, horizon_days)
    now = accounts.assign(label=0, age_days=(end - accounts["known_at"]).dt.days.fillna(0)
                          .astype(float), known_at=accounts["known_at"].fillna(end))
    frame = account_features(now, now)
    for col in model.feature_names_in_:
        if col not in frame:
            frame[col] = 0.0
    probs = model.predict_proba(frame)[:, 1]
    rows = pd.DataFrame({
        "entity_id": frame["id"], "probability": probs,
        "contributions": [orjson.dumps(c).decode()
                          for c in contributions(model, frame, top=5)],
    })
    with store.writer() as cur:
        cur.register("_pred", rows)
        cur.execute("DELETE FROM predictions WHERE workspace_id = ? AND model = 'fit'",
                    [store.workspace_id])
        cur.execute("INSERT INTO predictions SELECT ?, 'fit', entity_id, probability, "
                    "contributions, now()::TIMESTAMP FROM _pred", [store.workspace_id])
        cur.unregister("_pred")
    return report


def lead_scoring(store: Store, split: dt.datetime | None = None, horizon_days: int = 90
                 ) -> Report:
    """Lead scoring: will an open lead be won within *horizon_days*, point in time,
    against an origin-only baseline, judged at *split* (default: the latest split whose
    test window has ended)."""
    leads, wins, end = lead_inputs(store)
    if leads.empty:
        raise UsageError("no leads to learn from", hint="e.g. 'demandloop import olist'")
    at = chosen_split(pd.Timestamp(split), leads, wins, horizon_days, end) if split \
        else default_split(leads, wins, horizon_days, end)
    return train_leads(leads, wins, at, horizon_days)[1]


def account_inputs(store: Store) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Accounts (``id, known_at``, firmographics, first lead's ``origin, landing_page,
    lead_at``), opportunities (``id, at``: when opened, else closed) and the last date with
    data, from the store. ``known_at`` is when the account was created (its CRM creation
    date, else its import)."""
    ws = {"ws": store.workspace_id}
    with store.reader() as cur:
        accounts = cur.execute(
            """
            WITH l AS (SELECT account_id, arg_min(origin, created_at) AS origin,
                         arg_min(landing_page, created_at) AS landing_page,
                         min(created_at) AS lead_at
                  FROM leads WHERE workspace_id = $ws GROUP BY account_id)
            SELECT a.account_id AS id,
                   -- accounts resolve made from emails or group calls are scored, never
                   -- learnt from: when they became knowable is not recorded
                   CASE WHEN NOT list_contains($resolved, coalesce(a.source, '')) THEN a.created_at
                   END AS known_at,
                   a.industry, a.country, a.employees, a.revenue, a.technologies,
                   l.origin, l.landing_page, l.lead_at
            FROM accounts a LEFT JOIN l USING (account_id)
            WHERE a.workspace_id = $ws ORDER BY a.account_id
            """, {**ws, "resolved": list(RESOLVED_SOURCES)}).df()
        opps = cur.execute(
            "SELECT account_id AS id, coalesce(created_at, closed_at) AS at FROM opportunities "
            "WHERE workspace_id = $ws AND coalesce(created_at, closed_at) IS NOT NULL", ws).df()
        row = cur.execute(
            "SELECT greatest((SELECT max(ts) FROM touches WHERE workspace_id = $ws), "
            "(SELECT max(coalesce(closed_at, created_at)) FROM opportunities "
            "WHERE workspace_id = $ws), (SELECT max(created_at) FROM leads "
            "WHERE workspace_id = $ws))", ws).fetchone()
    end = pd.Timestamp(row[0] if row and row[0] is not None else "now")
    return accounts, opps, end


def lead_inputs(store: Store) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Leads (``id, known_at, origin, landing_page``), their wins (``id, at``: the won
    opportunity's close, by lead, else by the lead's account) and the last date with data."""
    ws = {"ws": store.workspace_id}
    with store.reader() as cur:
        leads = cur.execute(
            "SELECT lead_id AS id, created_at AS known_at, origin, landing_page FROM leads "
            "WHERE workspace_id = $ws AND created_at IS NOT NULL ORDER BY lead_id", ws).df()
        wins = cur.execute(
            """
            SELECT l.lead_id AS id, o.closed_at AS at FROM leads l JOIN opportunities o
              ON o.workspace_id = l.workspace_id AND (o.lead_id = l.lead_id OR
                 (o.lead_id IS NULL AND o.account_id = l.account_id))
            WHERE l.workspace_id = $ws AND o.won AND o.closed_at IS NOT NULL
            """, ws).df()
        row = cur.execute(
            "SELECT greatest((SELECT max(closed_at) FROM opportunities WHERE workspace_id = $ws),"
            " (SELECT max(created_at) FROM leads WHERE workspace_id = $ws))", ws).fetchone()
    end = pd.Timestamp(row[0] if row and row[0] is not None else "now")
    return leads, wins, end

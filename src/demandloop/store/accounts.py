"""Reading ``account_view``: every account with its latest scores (migration 10), the one
account view that segments, workflows, sequences, reports and account lists share."""

from __future__ import annotations

import orjson
import pandas as pd

from demandloop.store.db import Store

#: the view's score columns (NULL for an account no snapshot has scored)
SCORE_COLUMNS = ("stage", "fit", "band", "engagement", "intent", "surging", "people",
                 "committee_coverage", "missing_roles", "recent", "surge_topics", "priority")


def account_view(store: Store, *, ids: list[str] | None = None, scored: bool = False,
                 columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Rows of ``account_view`` for this workspace, ordered by account id: only *ids* when
    given, only accounts of the latest snapshot with *scored*, only *columns* (plus
    ``account_id``) when given. ``missing_roles`` and ``surge_topics`` come as lists."""
    cols = "* EXCLUDE (workspace_id)" if columns is None else ", ".join(
        ["account_id", *[c for c in columns if c != "account_id"]])
    where = ["workspace_id = $ws"]
    params: dict[str, object] = {"ws": store.workspace_id}
    if ids is not None:
        where.append("list_contains($ids, account_id)")
        params["ids"] = ids
    if scored:
        where.append("as_of IS NOT NULL")
    with store.reader() as cur:
        df: pd.DataFrame = cur.execute(
            f"SELECT {cols} FROM account_view WHERE {' AND '.join(where)} "
            "ORDER BY account_id", params).df()
    for col in ("missing_roles", "surge_topics"):  # unscored accounts: none, not NaN
        if col in df:
            df[col] = [orjson.loads(v) if isinstance(v, str) else [] for v in df[col]]
    return df


def rounded(df: pd.DataFrame) -> pd.DataFrame:
    """Scores as lists and messages show them: fit and engagement to 0.1, intent to 0.01."""
    return df.assign(fit=df["fit"].round(1), engagement=df["engagement"].round(1),
                     intent=df["intent"].round(2))


def moved_to(store: Store, account_id: str) -> str | None:
    """The account *account_id* now is, when an import re-keyed or merged it (see
    :mod:`demandloop.collect.account_keys`) and no account holds that id again; else None.
    """
    with store.reader() as cur:
        row = cur.execute(
            "SELECT a.account_id FROM account_aliases a WHERE a.workspace_id = $ws AND "
            "a.alias = $id AND NOT EXISTS (SELECT 1 FROM accounts WHERE workspace_id = $ws "
            "AND account_id = $id)", {"ws": store.workspace_id, "id": account_id}).fetchone()
    return str(row[0]) if row else None


def held(store: Store, account_id: str) -> str | None:
    """*account_id* when an account holds it, else the account it moved to (see
    :func:`moved_to`), else None."""
    with store.reader() as cur:
        row = cur.execute("SELECT 1 FROM accounts WHERE workspace_id = $ws AND "
                          "account_id = $id", {"ws": store.workspace_id,
                                               "id": account_id}).fetchone()
    return account_id if row else moved_to(store, account_id)

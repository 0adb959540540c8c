"""Write a score snapshot: one ``scores`` row per account and person, and the stage changes
since the stages before it.

Built as Arrow columns and compared in DuckDB: the frames hold 100k accounts and 400k
people, and building pandas frames of Python strings, then mapping every id through a dict
of last stages, cost more than the rescore of the few accounts that changed.

A snapshot is written whole, or (:class:`Reuse`, the server's live loop) made from an older
snapshot of the same day that the loop would delete anyway: its rows move to the new time,
every engagement decays by the factors in between (exactly the multiplications the live
rescore applied in memory), and only the rows that changed otherwise are written again.
At 100k accounts and 290k people a whole snapshot is 50 MB to write and then to
checkpoint, on every run; the rows that change are a few percent of it.

An account's priority is not stored: it follows from fit and engagement
(:data:`demandloop.store.schema_later.PRIORITY`), so a row whose engagement only decayed
needs no rewrite.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from demandloop.store.arrow import fetched
from demandloop.store.db import Store

#: the stages before a snapshot, per entity: ``entity_id, stage``
STAGES = pa.schema([("entity_id", pa.string()), ("stage", pa.string())])

#: the keys of an account's details and the feature columns they hold, in order
_DETAILS = {"fit_band": "fit_band", "fit_criteria": "fit_criteria", "touches": "touches",
            "people": "people", "surging": "surging", "surge_topics": "surge_topics",
            "stage_reasons": "reasons", "committee_coverage": "committee_coverage",
            "missing_roles": "missing_roles", "recent": "recent",
            "predictive_fit": "predictive_fit"}
_NO_MQL = orjson.dumps({"mql_reasons": []}).decode()


def account_rows(df: pd.DataFrame) -> pa.Table:
    """The ``scores`` columns of every account of *df* (features with stage and reasons):
    ``entity_id, fit, engagement, intent, stage, details``."""
    predicted = df["predictive_fit"].astype(float)
    columns = [df[c].tolist() for c in _DETAILS.values()]
    at = list(_DETAILS).index("predictive_fit")
    columns[at] = predicted.astype(object).where(predicted.notna(), None).tolist()
    names = list(_DETAILS)
    # Plain lists, zipped: itertuples over the whole (wide) frame built a 40-field tuple
    # per account and cost twice as much.
    details = [orjson.dumps(dict(zip(names, row, strict=True)),
                            option=orjson.OPT_SERIALIZE_NUMPY).decode()
               for row in zip(*columns, strict=True)]
    return pa.table({
        "entity_id": pa.array(df["account_id"].to_numpy(dtype=object), pa.string()),
        "fit": df["fit"].to_numpy(dtype=float),
        "engagement": df["engagement"].to_numpy(dtype=float),
        "intent": df["surge"].to_numpy(dtype=float),
        "stage": pa.array(df["stage"].to_numpy(dtype=object), pa.string()),
        "details": pa.array(details, pa.string())})


def person_rows(people: pd.DataFrame) -> pa.Table:
    """The ``scores`` columns of every person of *people* (features with MQL stage)."""
    # most people match no MQL rule: their (equal) details are written once
    details = [orjson.dumps({"mql_reasons": r}).decode() if r else _NO_MQL
               for r in people["reasons"].tolist()]
    return pa.table({
        "entity_id": pa.array(people["person_id"].to_numpy(dtype=object), pa.string()),
        "fit": pa.array(people["account_fit"].to_numpy(dtype=float), from_pandas=True),
        "engagement": people["engagement"].to_numpy(dtype=float),
        "intent": pa.nulls(len(people), pa.float64()),
        "stage": _stage(people),
        "details": pa.array(details, pa.string())})


def _stage(rows: pd.DataFrame) -> pa.Array:
    """The ``stage`` column of *rows* (a person matching no MQL rule has "": none)."""
    stage = rows["stage"].to_numpy(dtype=object)
    return pa.array(stage, pa.string(), mask=stage == "")


def stages(rows: pd.DataFrame, key: str, at: np.ndarray | None = None) -> pa.Table:
    """``i, entity_id, stage`` of the rows of *rows* (*key*: its id column) at the positions
    *at* (default: all), ``i`` being the position: what the stage changes are found from."""
    chosen = rows if at is None else rows.iloc[at]
    return pa.table({"i": np.arange(len(rows)) if at is None else at,
                     "entity_id": pa.array(chosen[key].to_numpy(dtype=object), pa.string()),
                     "stage": _stage(chosen)})


def last_stages(store: Store, entity: str, before: dt.datetime) -> pa.Table:
    """Each entity's stage after its latest change strictly before *before*."""
    with store.reader() as cur:
        result = cur.execute(
            "SELECT entity_id, arg_max(to_stage, changed_at) AS stage FROM stage_changes "
            "WHERE workspace_id = ? AND entity = ? AND changed_at < ? GROUP BY entity_id",
            [store.workspace_id, entity, before])
        table = fetched(result)
    return table.cast(STAGES)


def after(last: pa.Table, moves: pa.Table) -> pa.Table:
    """*last* with *moves* (``entity_id, to_stage``) applied."""
    kept = last.filter(pc.invert(pc.is_in(last["entity_id"], value_set=moves["entity_id"])))
    moved = pa.table({"entity_id": moves["entity_id"], "stage": moves["to_stage"]})
    return pa.concat_tables([kept, moved.cast(STAGES)])


@dataclass(frozen=True)
class Reuse:
    """Make the new snapshot from the one at *old* (same day, see the module docstring):
    its engagement times each of *factors* in turn; the rows of *ids* (per entity) deleted,
    and the rows given written in their place."""

    old: dt.datetime
    factors: tuple[float, ...]
    ids: dict[str, list[str]]


def write(store: Store, as_of: dt.datetime, stages: dict[str, pa.Table],
          rows: dict[str, pa.Table], last: dict[str, pa.Table],
          reasons: dict[str, np.ndarray], reuse: Reuse | None = None) -> pa.Table:
    """Replace the snapshot at *as_of* with *rows* (per entity, see :func:`account_rows`;
    with *reuse*, only those that changed) and its stage changes: every row of *stages*
    (per entity, see :func:`stages`) whose stage differs from *last* (``(none)`` when it
    has none), with its *reasons*. Returns the changes (``entity, entity_id, from_stage,
    to_stage``)."""
    ws = {"ws": store.workspace_id, "at": as_of}
    names = []
    with store.writer() as cur:
        for entity in stages:
            names += [f"_stage_{entity}", f"_last_{entity}", f"_rows_{entity}"]
            cur.register(f"_stage_{entity}", stages[entity])
            cur.register(f"_last_{entity}", last[entity])
            cur.register(f"_rows_{entity}", rows[entity])
        try:
            moved = cur.execute(" UNION ALL ".join(
                f"SELECT '{e}' AS entity, s.i, s.entity_id, l.stage AS from_stage, "
                f"coalesce(s.stage, '(none)') AS to_stage FROM _stage_{e} s "
                f"LEFT JOIN _last_{e} l ON l.entity_id = s.entity_id "
                "WHERE coalesce(l.stage, '(none)') <> coalesce(s.stage, '(none)')"
                for e in stages) + " ORDER BY entity, i").fetchall()
            moves = pa.table({
                "entity": pa.array([m[0] for m in moved], pa.string()),
                "entity_id": pa.array([m[2] for m in moved], pa.string()),
                "from_stage": pa.array([m[3] for m in moved], pa.string()),
                "to_stage": pa.array([m[4] for m in moved], pa.string()),
                "reasons": pa.array([orjson.dumps(reasons[m[0]][m[1]]).decode()
                                     for m in moved], pa.string())})
            cur.register("_moves", moves)
            names.append("_moves")
            cur.execute("DELETE FROM stage_changes WHERE workspace_id = $ws "
                        "AND changed_at = $at", ws)
            if reuse is None:
                cur.execute("DELETE FROM scores WHERE workspace_id = $ws AND as_of = $at", ws)
            else:
                _reuse(cur, ws, reuse)
            for e in stages:
                cur.execute(f"INSERT INTO scores SELECT $ws, $at, '{e}', entity_id, fit, "
                            f"engagement, intent, stage, details FROM _rows_{e}", ws)
            cur.execute("INSERT INTO stage_changes SELECT $ws, entity, entity_id, "
                        "from_stage, to_stage, $at, reasons, nextval('stage_change_seq') "
                        "FROM _moves", ws)
        finally:
            for name in names:
                cur.unregister(name)
    return moves


def _reuse(cur: duckdb.DuckDBPyConnection, ws: dict[str, object], reuse: Reuse) -> None:
    """Move the snapshot at ``reuse.old`` to ``$at``, decayed, without the rows of
    ``reuse.ids`` (see :class:`Reuse`)."""
    decayed = "engagement" + "".join(f" * $f{k}" for k in range(len(reuse.factors)))
    cur.execute(f"UPDATE scores SET as_of = $at, engagement = {decayed} "
                "WHERE workspace_id = $ws AND as_of = $old",
                {**ws, "old": reuse.old, **{f"f{k}": f for k, f in enumerate(reuse.factors)}})
    for entity, ids in reuse.ids.items():
        if not ids:
            continue
        cur.register("_gone", pa.table({"id": pa.array(ids, pa.string())}))
        try:
            cur.execute("DELETE FROM scores WHERE workspace_id = $ws AND as_of = $at "
                        "AND entity = $e AND entity_id IN (SELECT id FROM _gone)",
                        {**ws, "e": entity})
        finally:
            cur.unregister("_gone")

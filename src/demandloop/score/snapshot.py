"""Write a score snapshot: one ``scores`` row per account and person, and the stage changes
since the stages before it.

Built as Arrow columns and compared in DuckDB: the frames hold 100k accounts and 400k
people, and building pandas frames of Python strings, then mapping every id through a dict
of last stages, cost more than the rescore of the few accounts that changed.
"""

from __future__ import annotations

import datetime as dt

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
            "missing_roles": "missing_roles", "recent": "recent", "priority": "priority",
            "predictive_fit": "predictive_fit"}
_NO_MQL = orjson.dumps({"mql_reasons": []}).decode()


def account_rows(df: pd.DataFrame) -> pa.Table:
    """The ``scores`` columns of every account of *df* (features with stage and reasons)."""
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
        "i": np.arange(len(df)),
        "entity_id": pa.array(df["account_id"].to_numpy(dtype=object), pa.string()),
        "fit": df["fit"].to_numpy(dtype=float),
        "engagement": df["engagement"].to_numpy(dtype=float),
        "intent": df["surge"].to_numpy(dtype=float),
        "stage": pa.array(df["stage"].to_numpy(dtype=object), pa.string()),
        "details": pa.array(details, pa.string())})


def person_rows(people: pd.DataFrame) -> pa.Table:
    """The ``scores`` columns of every person of *people* (features with MQL stage)."""
    stage = people["stage"].to_numpy(dtype=object)
    # most people match no MQL rule: their (equal) details are written once
    details = [orjson.dumps({"mql_reasons": r}).decode() if r else _NO_MQL
               for r in people["reasons"].tolist()]
    return pa.table({
        "i": np.arange(len(people)),
        "entity_id": pa.array(people["person_id"].to_numpy(dtype=object), pa.string()),
        "fit": pa.array(people["account_fit"].to_numpy(dtype=float), from_pandas=True),
        "engagement": people["engagement"].to_numpy(dtype=float),
        "intent": pa.nulls(len(people), pa.float64()),
        "stage": pa.array(stage, pa.string(), mask=stage == ""),
        "details": pa.array(details, pa.string())})


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


def write(store: Store, as_of: dt.datetime, rows: dict[str, pa.Table],
          last: dict[str, pa.Table], reasons: dict[str, np.ndarray]) -> pa.Table:
    """Replace the snapshot at *as_of* with *rows* (per entity, see :func:`account_rows`)
    and its stage changes: every row whose stage differs from *last* (``(none)`` when it
    has none), with its *reasons*. Returns the changes (``entity, entity_id, from_stage,
    to_stage``)."""
    ws = {"ws": store.workspace_id, "at": as_of}
    names = []
    with store.writer() as cur:
        for entity in rows:
            names += [f"_snap_{entity}", f"_last_{entity}"]
            cur.register(f"_snap_{entity}", rows[entity])
            cur.register(f"_last_{entity}", last[entity])
        try:
            moved = cur.execute(" UNION ALL ".join(
                f"SELECT '{e}' AS entity, s.i, s.entity_id, l.stage AS from_stage, "
                f"coalesce(s.stage, '(none)') AS to_stage FROM _snap_{e} s "
                f"LEFT JOIN _last_{e} l ON l.entity_id = s.entity_id "
                "WHERE coalesce(l.stage, '(none)') <> coalesce(s.stage, '(none)')"
                for e in rows) + " ORDER BY entity, i").fetchall()
            moves = pa.table({
                "entity": pa.array([m[0] for m in moved], pa.string()),
                "entity_id": pa.array([m[2] for m in moved], pa.string()),
                "from_stage": pa.array([m[3] for m in moved], pa.string()),
                "to_stage": pa.array([m[4] for m in moved], pa.string()),
                "reasons": pa.array([orjson.dumps(reasons[m[0]][m[1]]).decode()
                                     for m in moved], pa.string())})
            cur.register("_moves", moves)
            names.append("_moves")
            cur.execute("DELETE FROM scores WHERE workspace_id = $ws AND as_of = $at", ws)
            cur.execute("DELETE FROM stage_changes WHERE workspace_id = $ws "
                        "AND changed_at = $at", ws)
            for e in rows:
                cur.execute(f"INSERT INTO scores SELECT $ws, $at, '{e}', entity_id, fit, "
                            f"engagement, intent, stage, details FROM _snap_{e}", ws)
            cur.execute("INSERT INTO stage_changes SELECT $ws, entity, entity_id, "
                        "from_stage, to_stage, $at, reasons, nextval('stage_change_seq') "
                        "FROM _moves", ws)
        finally:
            for name in names:
                cur.unregister(name)
    return moves

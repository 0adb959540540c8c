"""``demandloop score``: fit, engagement and intent surge for every account, as a snapshot.

Reads the workspace (accounts, touches), computes with the pure functions of this package
(Ibis over DuckDB for the touch aggregates) and writes one ``scores`` row per account for the
``as_of`` time (the last touch unless given). Re-scoring the same ``as_of`` replaces it.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import orjson
import pandas as pd
import pyarrow as pa

from demandloop.compute import Tables, frame, tables
from demandloop.config import Settings
from demandloop.config.score import StageSetting
from demandloop.errors import UsageError
from demandloop.score.engagement import breadth
from demandloop.score.measures import (
    account_context,
    account_scores,
    cap_candidates,
    fit_scores,
    person_features,
    person_measures,
    rules_from,
    stage_features,
)
from demandloop.score.stages import Condition, Rule, assign, changes
from demandloop.store.arrow import typed_table
from demandloop.store.db import Store
from demandloop.store.memory import collector_paused


@dataclass
class ScoreResult:
    as_of: dt.datetime
    accounts: int
    surging: int
    strong_fit: int
    stages: dict[str, int] = field(default_factory=dict)
    stage_changes: int = 0
    mqls: int = 0
    #: for a point-in-time score: per input, (known at as_of, stored now)
    known: dict[str, tuple[int, int]] = field(default_factory=dict)


def _rules(stages: list[StageSetting]) -> list[Rule]:
    return [Rule(s.name, tuple(Condition(c.field, c.op, c.value) for c in s.all),
                 tuple(Condition(c.field, c.op, c.value) for c in s.any)) for s in stages]


def run(store: Store, settings: Settings, as_of: dt.datetime | None = None) -> ScoreResult:
    """Score every account at *as_of* (default: the last touch) and store the snapshot."""
    with collector_paused():
        return _run(store, settings, as_of)


def _run(store: Store, settings: Settings, as_of: dt.datetime | None) -> ScoreResult:
    if as_of is None:
        with store.reader() as cur:
            row = cur.execute("SELECT max(ts) FROM touches WHERE workspace_id = ?",
                              [store.workspace_id]).fetchone()
        if not row or row[0] is None:
            raise UsageError("no touches to score",
                             hint="ingest events and run 'demandloop resolve' first")
        as_of = row[0]
    assert as_of is not None
    t = tables(store)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The cap's candidates for accounts and people, from one pass over the touches on
        # t's connection (mostly DuckDB, which releases the GIL), while this thread scores
        # fit and reads what needs no cut touches on connections of its own: about 0.8 s
        # of work that no longer adds to a 4-5 s rescore of 100k accounts.
        pending = pool.submit(cap_candidates, t, rules_from(settings)[1],
                              ("account_id", "person_id"))
        own = tables(store)
        fits = _fits(store, own, settings)
        context = account_context(store, settings, as_of)
        reach = frame(breadth(own.touches, as_of))
        last = {entity: _last_stages(store, entity, as_of) for entity in ("account", "person")}
        found = pending.result()
    df = stage_features(store, settings, as_of, account_scores(
        store, settings, as_of, t=t, candidates=found.get("account_id"), fits=fits,
        reach=reach), context)
    df = assign(_rules(settings.score.stages), df)
    measures = person_measures(t, settings, as_of, found.get("person_id"))
    mql_rule = Rule("mql", tuple(Condition(c.field, c.op, c.value)
                                 for c in settings.score.mql.all),
                    tuple(Condition(c.field, c.op, c.value) for c in settings.score.mql.any))
    people = assign([mql_rule], person_features(store, settings, as_of, df, measures, t),
                    none="")
    predicted = df["predictive_fit"].astype(float)
    df["predictive_fit"] = predicted.astype(object).where(predicted.notna(), None)
    # Only the columns the JSON holds, as plain lists: itertuples over the whole (wide)
    # frame built a 40-field tuple per account and cost twice as much.
    keys = {"fit_band": "fit_band", "fit_criteria": "fit_criteria", "touches": "touches",
            "people": "people", "surging": "surging", "surge_topics": "surge_topics",
            "stage_reasons": "reasons", "committee_coverage": "committee_coverage",
            "missing_roles": "missing_roles", "recent": "recent", "priority": "priority",
            "predictive_fit": "predictive_fit"}
    names = list(keys)
    details = [orjson.dumps(dict(zip(names, row, strict=True)),
                            option=orjson.OPT_SERIALIZE_NUMPY).decode()
               for row in zip(*(df[c].tolist() for c in keys.values()), strict=True)]
    accounts = pd.DataFrame({"entity": "account", "entity_id": df["account_id"],
                             "fit": df["fit"], "engagement": df["engagement"],
                             "intent": df["surge"], "stage": df["stage"],
                             "details": details})
    persons = pd.DataFrame({
        "entity": "person", "entity_id": people["person_id"], "fit": people["account_fit"],
        "engagement": people["engagement"], "intent": None,
        "stage": people["stage"].replace("", None),
        # most people match no MQL rule: their (equal) details are written once
        "details": [orjson.dumps({"mql_reasons": r}).decode() if r else _NO_MQL
                    for r in people["reasons"].tolist()],
    })
    snap = _arrow(pd.concat([accounts, persons], ignore_index=True))
    moves = []
    for entity, snapshot in (("account", accounts.assign(reasons=df["reasons"])),
                          ("person", persons.assign(reasons=people["reasons"]))):
        cur_frame = snapshot.assign(stage=snapshot["stage"].fillna("(none)"))
        moved = changes(last[entity], cur_frame)
        moved = moved[~((moved["from_stage"].isna()) & (moved["to_stage"] == "(none)"))]
        moves.append(moved.assign(entity=entity))
    change_rows = pd.concat(moves, ignore_index=True)
    change_rows["reasons"] = change_rows["reasons"].map(lambda r: orjson.dumps(r).decode())
    change_rows["from_stage"] = change_rows["from_stage"].astype(object).where(
        change_rows["from_stage"].notna(), None)
    with store.writer() as cur:
        ws = {"ws": store.workspace_id, "at": as_of}
        cur.register("_snap", snap)
        cur.register("_moves", _arrow(change_rows[["entity", "entity_id", "from_stage",
                                                   "to_stage", "reasons"]]))
        cur.execute("DELETE FROM scores WHERE workspace_id = $ws AND as_of = $at", ws)
        cur.execute("DELETE FROM stage_changes WHERE workspace_id = $ws AND changed_at = $at",
                    ws)
        cur.execute("INSERT INTO scores SELECT $ws, $at, entity, entity_id, fit, "
                    "engagement, intent, stage, details FROM _snap", ws)
        cur.execute("INSERT INTO stage_changes SELECT $ws, entity, entity_id, from_stage, "
                    "to_stage, $at, reasons FROM _moves", ws)
        cur.unregister("_snap")
        cur.unregister("_moves")
    return ScoreResult(as_of=as_of, accounts=len(df), surging=int(df["surging"].sum()),
                       strong_fit=int((df["fit_band"] == "Strong").sum()),
                       stages={str(k): int(v) for k, v in df["stage"].value_counts().items()},
                       stage_changes=int((change_rows["entity"] == "account").sum()),
                       mqls=int((people["stage"] == "mql").sum()))


_NO_MQL = orjson.dumps({"mql_reasons": []}).decode()

#: the last fit scores computed, by what they were computed from (see _fits)
_FIT_CACHE: dict[tuple[object, ...], pd.DataFrame] = {}


def _fits(store: Store, t: Tables, settings: Settings) -> pd.DataFrame:
    """:func:`fit_scores`, computed again only when what it reads changed: the accounts'
    firmographic columns (an order-free digest of every row) and the fit rules. Fit does not
    depend on time, and a server rescoring every few seconds would otherwise spend a third
    of each run (1.3 s of 4 s at 100k accounts) recomputing the same numbers."""
    with store.reader() as cur:
        row = cur.execute(
            "SELECT count(*), bit_xor(hash(account_id, domain, industry, country, employees, "
            "revenue, technologies)) FROM accounts WHERE workspace_id = ?",
            [store.workspace_id]).fetchone()
    key = (store.path, store.workspace_id, row,
           orjson.dumps(settings.score.fit.model_dump(mode="json")))
    found = _FIT_CACHE.get(key)
    if found is None:
        found = fit_scores(t, settings)
        _FIT_CACHE.clear()  # one workspace's at a time: a server holds one
        _FIT_CACHE[key] = found
    return found.copy()


def _last_stages(store: Store, entity: str, before: dt.datetime) -> dict[str, str]:
    """Each entity's stage after its latest change strictly before *before*."""
    with store.reader() as cur:
        rows = cur.execute(
            "SELECT entity_id, arg_max(to_stage, changed_at) FROM stage_changes "
            "WHERE workspace_id = ? AND entity = ? AND changed_at < ? GROUP BY entity_id",
            [store.workspace_id, entity, before]).fetchall()
    return {e: s for e, s in rows}


def _arrow(df: pd.DataFrame) -> pa.Table:
    return typed_table(df, {"fit": pa.float64(), "engagement": pa.float64(),
                            "intent": pa.float64()})

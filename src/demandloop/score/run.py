"""``demandloop score``: fit, engagement and intent surge for every account, as a snapshot.

Reads the workspace (accounts, touches), computes with the pure functions of this package
(Ibis over DuckDB for the touch aggregates) and writes one ``scores`` row per account for the
``as_of`` time (the last touch unless given). Re-scoring the same ``as_of`` replaces it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import ibis
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from demandloop.compute import Tables, frame, isin, tables
from demandloop.config import Settings
from demandloop.config.score import StageSetting
from demandloop.errors import UsageError
from demandloop.score import caps, live, snapshot
from demandloop.score.engagement import breadth
from demandloop.score.measures import (
    account_context,
    account_scores,
    cap_candidates,
    fit_scores,
    person_features,
    person_measures,
    priority,
    rules_from,
    stage_features,
)
from demandloop.score.stages import Condition, Rule, assign
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
    #: "full" (every touch read) or "incremental" (see :mod:`demandloop.score.live`)
    mode: str = "full"
    #: accounts whose measures were computed (all of them in a full score)
    recomputed: int = 0
    #: of those, the accounts recomputed from their windows' touches only (they only
    #: crossed a window's edge, see :mod:`demandloop.score.live`)
    windowed: int = 0
    #: ``scores`` rows written (fewer than accounts + people when the snapshot was made
    #: from an earlier one of the day, see :class:`demandloop.score.snapshot.Reuse`)
    rows_written: int = 0
    #: whether its stage changes were recorded: not for a point-in-time score before the
    #: last recorded change (a backtest, see :func:`demandloop.store.pit.copy_snapshot`)
    changes_recorded: bool = True


def _rules(stages: list[StageSetting]) -> list[Rule]:
    return [Rule(s.name, tuple(Condition(c.field, c.op, c.value) for c in s.all),
                 tuple(Condition(c.field, c.op, c.value) for c in s.any)) for s in stages]


def run(store: Store, settings: Settings, as_of: dt.datetime | None = None, *,
        source: Tables | None = None, one_per_day: bool = False) -> ScoreResult:
    """Score every account at *as_of* (default: the last touch) and store the snapshot.

    *source*: the tables to compute from when not the store's own (Spark's view of the
    lake, see :func:`demandloop.compute.spark_tables`); the snapshot and its stage changes
    are written to *store* all the same. Such a score is always a full one.

    *one_per_day*: the caller keeps one snapshot a day besides the latest two (the server's
    live loop, see :func:`demandloop.score.queries.keep_one_per_day`). An incremental score
    may then make its snapshot from the one before the latest, taken earlier the same day
    by this process, which the caller would delete: only the rows that changed since are
    written (:class:`demandloop.score.snapshot.Reuse`)."""
    with collector_paused():
        return _run(store, settings, as_of, source, one_per_day)


def _run(store: Store, settings: Settings, as_of: dt.datetime | None,
         source: Tables | None, one_per_day: bool = False) -> ScoreResult:
    if as_of is None:
        t = source or tables(store)
        last_touch = t.touches.ts.max().to_pyarrow().as_py()
        if last_touch is None:
            raise UsageError("no touches to score",
                             hint="ingest events and run 'demandloop resolve' first")
        as_of = last_touch
    assert as_of is not None
    found: Found | None
    if source is not None:
        found, mode, planned = _compute(store, settings, as_of, source), "full", None
    else:
        now = live.inputs(store, settings)
        planned = live.plan(store, settings, as_of, now)
        found = _recompute(store, settings, as_of, planned) if planned is not None else None
        mode = "incremental" if found is not None else "full"
        if found is None:
            found = _compute(store, settings, as_of)
    features, person_rows, last = found
    # a live rescore's kept rows keep their reasons where the rules say the same
    kept = planned if mode == "incremental" else None
    df = assign(_rules(settings.score.stages), features,
                shown=live.shown(kept, "account") if kept else None)
    mql_rule = Rule("mql", tuple(Condition(c.field, c.op, c.value)
                                 for c in settings.score.mql.all),
                    tuple(Condition(c.field, c.op, c.value) for c in settings.score.mql.any))
    people = assign([mql_rule], person_rows, none="",
                    shown=live.shown(kept, "person") if kept else None)
    changed = live.changed(kept, df, people) if kept else None
    reuse = (live.reusable(store, planned, as_of, changed)
             if one_per_day and planned and changed is not None else None)
    moves, written = _store(store, as_of, df, people, last, reuse)
    if source is None:  # (the next incremental score starts from the store's own)
        live.remember(store, now, as_of, features, person_rows, last, moves, {
            "account": (df["stage"].to_numpy(dtype=object),
                        df["reasons"].to_numpy(dtype=object)),
            "person": (people["stage"].to_numpy(dtype=object),
                       people["reasons"].to_numpy(dtype=object))},
            live.Written(as_of, len(df) + len(people), changed,
                         planned.factor if planned and changed is not None else 1.0))
    return ScoreResult(as_of=as_of, accounts=len(df), surging=int(df["surging"].sum()),
                       strong_fit=int((df["fit_band"] == "Strong").sum()),
                       stages={str(k): int(v) for k, v in df["stage"].value_counts().items()},
                       stage_changes=int(pc.sum(pc.equal(moves["entity"], "account")).as_py()
                                         or 0),
                       mqls=int((people["stage"] == "mql").sum()), mode=mode,
                       recomputed=len(planned.recomputed("account"))
                       if mode == "incremental" and planned
                       else len(df),
                       windowed=len(planned.windowed) if mode == "incremental" and planned
                       else 0,
                       rows_written=written)


def _store(store: Store, as_of: dt.datetime, df: pd.DataFrame, people: pd.DataFrame,
           last: dict[str, pa.Table], reuse: snapshot.Reuse | None) -> tuple[pa.Table, int]:
    """Write the snapshot of *df* (accounts) and *people*, with their stages and reasons,
    whole or (*reuse*) from an earlier one; returns its stage changes and the rows written."""
    if reuse is None:
        rows = {"account": snapshot.account_rows(df), "person": snapshot.person_rows(people)}
        moving = {"account": snapshot.stages(df, "account_id"),
                  "person": snapshot.stages(people, "person_id")}
    else:
        # only the rows rewritten can change stage: the others kept theirs, which the
        # stages before this score (those after the kept one's changes) already hold
        at = {"account": np.flatnonzero(isin(df["account_id"], reuse.ids["account"])),
              "person": np.flatnonzero(isin(people["person_id"], reuse.ids["person"]))}
        rows = {"account": snapshot.account_rows(df.iloc[at["account"]]),
                "person": snapshot.person_rows(people.iloc[at["person"]])}
        moving = {"account": snapshot.stages(df, "account_id", at["account"]),
                  "person": snapshot.stages(people, "person_id", at["person"])}
    moves = snapshot.write(
        store, as_of, moving, rows, last,
        {"account": df["reasons"].to_numpy(dtype=object),
         "person": people["reasons"].to_numpy(dtype=object)}, reuse)
    return moves, sum(t.num_rows for t in rows.values())


def _touches_of(t: Tables, plan: live.Plan, since: dt.datetime
                ) -> tuple[Callable[[object], object], Callable[[object], object]]:
    """:meth:`~demandloop.compute.Tables.narrowed` filters: the touches of the accounts
    *plan* recomputes, and those of its persons (of the windowed ones, those from *since*
    only), copied in one pass into a temporary table on *t*'s connection. Each measure
    reads them again; filtering 10M touches each time cost more than the measures, and one
    pass for both costs about what one for either did."""
    con = t.backend.con
    # only what scoring reads (all columns took 4x as long), matched through Arrow tables
    # (a list parameter took twice as long)
    sets = {"_live_accounts": plan.accounts, "_live_persons": plan.persons,
            "_live_windowed": plan.windowed, "_live_windowed_persons": plan.windowed_persons}
    for name, ids in sets.items():
        con.register(name, pa.table({"id": pa.array(sorted(ids), pa.string())}))
    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _live_touches AS
            SELECT * FROM (SELECT {', '.join(caps.COLUMNS)},
                account_id IN (SELECT id FROM _live_accounts)
                    OR (ts >= $since AND account_id IN (SELECT id FROM _live_windowed))
                    AS of_account,
                person_id IN (SELECT id FROM _live_persons)
                    OR (ts >= $since AND person_id IN (SELECT id FROM _live_windowed_persons))
                    AS of_person
                FROM touches WHERE workspace_id = $ws)
            WHERE of_account OR of_person""", {"ws": t.workspace_id, "since": since})
    finally:
        for name in sets:
            con.unregister(name)
    table = t.backend.table("_live_touches")
    of_accounts = table.filter(table.of_account).drop("of_account", "of_person")
    of_persons = table.filter(table.of_person).drop("of_account", "of_person")
    return (lambda _: of_accounts), (lambda _: of_persons)


def _kept_history(kept: pd.DataFrame, key: str, windowed: set[str], columns: list[str],
                  factor: float) -> pd.DataFrame | None:
    """The all-time measures (*columns*, ``engagement`` among them, decayed by *factor*)
    of the *windowed* rows of *kept*, by *key*; None when one is missing (the kept score
    did not hold it: it is to be computed whole)."""
    rows = kept.loc[isin(kept[key], windowed), [key, *columns]]
    if len(rows) != len(windowed):
        return None
    return rows.assign(engagement=rows["engagement"] * factor).set_index(key)


def _with_history(fresh: pd.DataFrame, key: str, history: pd.DataFrame) -> pd.DataFrame:
    """*fresh* (computed from the touches of the last horizon for the ids of *history*)
    with the all-time measures of *history* in place of what those touches gave."""
    at = isin(fresh[key], history.index)
    ids = fresh.loc[at, key]
    for col in history.columns:
        values = fresh[col].to_numpy(copy=True)
        values[at] = history[col].reindex(ids).to_numpy()
        fresh[col] = values
    return fresh


Found = tuple[pd.DataFrame, pd.DataFrame, dict[str, pa.Table]]


def _compute(store: Store, settings: Settings, as_of: dt.datetime,
             source: Tables | None = None) -> Found:
    """Every account's and person's features at *as_of* (before the stage and MQL rules),
    and the stages before *as_of* (from *store*), from every touch (of *source* when
    given)."""
    last = {entity: snapshot.last_stages(store, entity, as_of)
            for entity in ("account", "person")}
    if source is not None:
        t = source
        fits, found = fit_scores(t, settings), {}
        context = account_context(t, settings, as_of)
        reach = frame(breadth(t.touches, as_of))
    else:
        t = tables(store)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The cap's candidates for accounts and people, from one pass over the touches
            # on t's connection (mostly DuckDB, which releases the GIL), while this thread
            # scores fit and reads what needs no cut touches on connections of its own:
            # about 0.8 s of work that no longer adds to a 4-5 s rescore of 100k accounts.
            pending = pool.submit(cap_candidates, t, rules_from(settings)[1],
                                  ("account_id", "person_id"))
            own = tables(store)
            fits = _fits(store, own, settings)
            context = account_context(own, settings, as_of)
            reach = frame(breadth(own.touches, as_of))
            found = pending.result()
    df = stage_features(store, settings, as_of, account_scores(
        store, settings, as_of, t=t, candidates=found.get("account_id"), fits=fits,
        reach=reach), context)
    measures = person_measures(t, settings, as_of, found.get("person_id"))
    return df, person_features(store, settings, as_of, df, measures, t), last


def _recompute(store: Store, settings: Settings, as_of: dt.datetime,
               plan: live.Plan) -> Found | None:
    """:func:`_compute` from the last score, recomputing what *plan* names (see
    :mod:`demandloop.score.live`); None when fit moved for an account kept, or a row to
    recompute windowed is not in the last score (a full score is due)."""
    kept, t = plan.kept, tables(store)
    fits = _fits(store, t, settings)
    same = kept.accounts[["account_id", "fit"]].merge(fits[["account_id", "fit"]],
                                                      on="account_id")
    if not np.array_equal(same["fit_x"].to_numpy(), same["fit_y"].to_numpy()):
        return None
    history = _kept_history(kept.accounts, "account_id", plan.windowed,
                            ["engagement", "touches"], plan.factor)
    person_history = _kept_history(kept.people, "person_id", plan.windowed_persons,
                                   ["engagement"], plan.factor)
    if history is None or person_history is None:
        return None
    recomputed = plan.recomputed("account")
    keep = ~isin(kept.accounts["account_id"], recomputed)
    plan.kept_accounts = np.flatnonzero(keep)
    stale = kept.accounts[keep]
    stale = stale.assign(engagement=stale["engagement"] * plan.factor)
    stale["priority"] = priority(stale)
    df = stale
    ids, who = sorted(recomputed), plan.recomputed("person")
    with ThreadPoolExecutor(max_workers=1) as pool:
        # the accounts' context (opportunities, targets, committee: a scan of every touch
        # in the committee's window) on a connection of its own, meanwhile: mostly DuckDB,
        # which releases the GIL, beside this thread's narrowing and measures
        context = pool.submit(account_context, tables(store), settings, as_of, ids) \
            if ids else None
        of_accounts, of_persons = (_touches_of(t, plan, live.since(settings, as_of))
                                   if ids or who else (None, None))
        if of_accounts and context:  # (nothing to recompute is common: the clock moved)
            mine = t.narrowed(touches=of_accounts)
            fresh = _with_history(account_scores(
                store, settings, as_of, t=mine, fits=fits[isin(fits["account_id"], recomputed)],
                reach=frame(breadth(mine.touches, as_of))), "account_id", history)
            fresh["priority"] = priority(fresh)
            fresh = stage_features(store, settings, as_of, fresh, context.result())
            df = pd.concat([stale, fresh[stale.columns]], ignore_index=True)
    keep = ~isin(kept.people["person_id"], who)
    plan.kept_people = np.flatnonzero(keep)
    others = kept.people[keep]
    people = others.assign(engagement=others["engagement"] * plan.factor)
    if of_persons and who:
        chosen = ibis.memtable(pa.table({"person_id": pa.array(sorted(who), pa.string())}))
        theirs = t.narrowed(touches=of_persons,
                            persons=lambda x: x.filter(x.person_id.isin(chosen.person_id)))
        fresh_people = _with_history(person_features(
            store, settings, as_of, df, person_measures(theirs, settings, as_of), theirs),
            "person_id", person_history)
        people = pd.concat([people, fresh_people[people.columns]], ignore_index=True)
    return df, people, plan.last(as_of)


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

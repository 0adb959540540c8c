"""The live rescore: after a resolve, recompute only the accounts and persons that changed.

A server rescores after every load batch at a moving ``as_of`` (the newest touch). Between
a score at ``T0`` and one at ``T >= T0``, an account's or a person's measures change only
when

* its touches changed: resolve logs whose they were (:mod:`demandloop.store.touch_log`);
* one of its touches crosses the edge of a window, ``ts`` in ``(T0 - W, T - W]`` for every
  window ``W`` a measure reads (0, 30 and 90 days, the surge's two, the committee's);
* its own row changed (a new account, a person's account, title or persona), or, for an
  account, one of its people changed or an opportunity of it opened or closed in between;
* for an account that went (resolve deletes one it made once nobody matches it), it comes
  out of the score, as it would from a full one.

Everything else keeps its measures but engagement, which decays by exactly
``2 ** (-(T - T0) / half_life)``. So this module keeps the last score's features in the
process and, for the next, names the accounts and persons to recompute (their touches
only, through the same functions as a full score); the stage and MQL rules then run over
everyone again (their reasons quote engagement).

Most of those an incremental score names only crossed a window's edge: at 10M touches,
6,000 accounts a batch against 1,700 whose touches changed. Their engagement and all-time
touch count are the kept ones (decayed): only the windowed measures move, and those read
the touches of the last :func:`horizon` only. So such an entity is recomputed from those
(*windowed*), from the start of the horizon's first UTC day, so that the daily cap sees
whole days: 97 days of touches with the default windows, against all its history. An
edge matters only to the measures that read it: a touch leaving the 30 days changes only
the counts of the :data:`~demandloop.score.measures.COUNTED_30D` activities, and a
person's features read no other window; a person leaving the committee's window changes
only the coverage of its account.

Anything it cannot account for makes the next score a full one: other settings, another
store, an earlier ``as_of``, a change to opportunities, predictions or the stage log it
did not write, touches that changed without a log entry (their number is checked),
changed firmographics, or too many entities to recompute. A test holds the result equal
to a full score, table for table.

It also keeps what the last two scores wrote (:class:`Written`), so that a server keeping
one snapshot a day can make the next snapshot from the one before the latest, writing only
the rows that changed since (:func:`changed`, :func:`reusable`,
:class:`demandloop.score.snapshot.Reuse`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from demandloop.config import Settings
from demandloop.score import snapshot
from demandloop.score.engagement import SECONDS_PER_DAY
from demandloop.score.measures import COUNTED_30D
from demandloop.score.stages import Shown
from demandloop.store import touch_log
from demandloop.store.arrow import fetched
from demandloop.store.db import Store

#: above this share of accounts (or persons) to recompute, a full score is cheaper
MOST = 0.4

_ACCOUNT_HASH = ("hash(account_id, domain, industry, country, employees, revenue, "
                 "technologies, target)")
_PERSON_HASH = "hash(person_id, account_id, seniority, job_function)"


@dataclass
class Inputs:
    """What a score read, as the next one compares it."""

    key: tuple[object, ...]
    run: int
    touches: int
    accounts: pd.Series  # account id -> hash of its row
    persons: pa.Table  # person_id, account_id, h (hash of what scoring reads)
    others: tuple[object, ...]  # opportunities and predictions digests


@dataclass(frozen=True)
class Written:
    """A snapshot a score stored: its time and number of rows and, when that score was an
    incremental one, the ids (per entity) whose rows differ from the snapshot before it by
    more than the engagement decay *factor* (None after a full score: not known)."""

    as_of: dt.datetime
    rows: int
    changed: dict[str, set[str]] | None
    factor: float = 1.0


@dataclass
class Kept:
    """The last score: its inputs, features before the rules, and stage baselines."""

    inputs: Inputs
    as_of: dt.datetime
    stage_log: tuple[object, ...]
    accounts: pd.DataFrame
    people: pd.DataFrame
    #: per entity, the stages the score compared with (those before its as_of), and those
    #: after its own changes (``entity_id, stage``)
    last: dict[str, pa.Table]
    after: dict[str, pa.Table]
    #: per entity, the stage and reasons it gave each row of *accounts* / *people*
    shown: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: the snapshot it stored, and the one before it (when a score of this process wrote it)
    written: Written | None = None
    prior: Written | None = None


@dataclass
class Plan:
    """What the next score recomputes; the rest scales its engagement by *factor*."""

    kept: Kept
    accounts: set[str] = field(default_factory=set)
    persons: set[str] = field(default_factory=set)
    #: accounts and persons of the kept score whose windowed measures only are recomputed
    #: (they only crossed a window's edge; see the module docstring)
    windowed: set[str] = field(default_factory=set)
    windowed_persons: set[str] = field(default_factory=set)
    factor: float = 1.0
    #: the positions in the kept frames of the accounts and people kept (not recomputed)
    kept_accounts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    kept_people: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def last(self, as_of: dt.datetime) -> dict[str, pa.Table]:
        """The stages the new score compares with (those before *as_of*)."""
        return self.kept.last if as_of == self.kept.as_of else self.kept.after

    def recomputed(self, entity: str) -> set[str]:
        """Every id of *entity* (``account``, ``person``) recomputed, whole or windowed."""
        if entity == "account":
            return self.accounts | self.windowed
        return self.persons | self.windowed_persons


_KEPT: dict[tuple[object, ...], Kept] = {}


def forget() -> None:
    """Make the next score a full one."""
    _KEPT.clear()


def inputs(store: Store, settings: Settings) -> Inputs:
    """Read what the next comparison needs, before the score reads its data (a change in
    between is then seen twice, never missed)."""
    ws = {"ws": store.workspace_id}
    with store.reader() as cur:
        run = touch_log.last_run(cur, store.workspace_id)
        row = cur.execute("SELECT count(*) FROM touches WHERE workspace_id = $ws",
                          ws).fetchone()
        found = cur.execute(f"SELECT account_id, {_ACCOUNT_HASH} AS h FROM accounts "
                            "WHERE workspace_id = $ws", ws).fetchnumpy()
        persons = fetched(cur.execute(f"SELECT person_id, account_id, {_PERSON_HASH} AS h "
                                     "FROM persons WHERE workspace_id = $ws", ws))
        others = cur.execute(
            "SELECT (SELECT count(*) || ':' || coalesce(bit_xor(hash(o)), 0) "
            "        FROM opportunities o WHERE workspace_id = $ws), "
            "       (SELECT count(*) || ':' || coalesce(bit_xor(hash(p)), 0) "
            "        FROM predictions p WHERE workspace_id = $ws)", ws).fetchone()
    key = (store.path, store.workspace_id,
           orjson.dumps(settings.score.model_dump(mode="json")))
    return Inputs(key=key, run=run, touches=int(row[0]) if row else 0,
                  accounts=pd.Series(np.asarray(found["h"]),
                                     index=np.asarray(found["account_id"], dtype=object)),
                  persons=persons, others=tuple(others or ()))


def stage_log(store: Store) -> tuple[object, ...]:
    """A digest of the stage log (after a score's own changes are in it)."""
    with store.reader() as cur:
        row = cur.execute("SELECT count(*), max(changed_at) FROM stage_changes "
                          "WHERE workspace_id = ?", [store.workspace_id]).fetchone()
    return tuple(row or ())


def remember(store: Store, now: Inputs, as_of: dt.datetime, accounts: pd.DataFrame,
             people: pd.DataFrame, last: dict[str, pa.Table], moves: pa.Table,
             shown: dict[str, tuple[np.ndarray, np.ndarray]], written: Written) -> None:
    """Keep this score for the next one (*moves*: its stage changes, by entity; *shown*:
    the stages and reasons it gave; *written*: the snapshot it stored)."""
    after = {entity: snapshot.after(seen, moves.filter(pc.equal(moves["entity"], entity)))
             for entity, seen in last.items()}
    before = _KEPT.get(now.key)
    prior = (before.written if before is not None and before.written is not None
             and before.written.as_of < written.as_of else None)
    _KEPT.clear()  # one workspace at a time: a server holds one
    _KEPT[now.key] = Kept(now, as_of, stage_log(store), accounts, people, last, after,
                          shown, written, prior)


#: the features of a kept row that differ from the kept score's (engagement decays, and
#: priority is computed from it)
MOVED = {"account": frozenset({"engagement", "priority"}),
         "person": frozenset({"engagement"})}


def shown(plan: Plan, entity: str) -> Shown:
    """What the kept score's rules gave the rows *plan* keeps of *entity* (``account``,
    ``person``), for :func:`demandloop.score.stages.assign`."""
    stage, reasons = plan.kept.shown[entity]
    kept = plan.kept_accounts if entity == "account" else plan.kept_people
    return Shown(stage[kept], reasons[kept], MOVED[entity])


def changed(plan: Plan, accounts: pd.DataFrame, people: pd.DataFrame) -> dict[str, set[str]]:
    """The ids whose rows differ from the kept score's by more than the decay: those
    recomputed, and those kept whose stage or reasons the rules now give otherwise
    (*accounts*, *people*: the rows of the new score, the kept ones first, in their kept
    order, as :func:`demandloop.score.run` builds them)."""
    out = {}
    for entity, rows, key, ids, kept in (
            ("account", accounts, "account_id", plan.recomputed("account"),
             plan.kept_accounts),
            ("person", people, "person_id", plan.recomputed("person"), plan.kept_people)):
        stage, reasons = plan.kept.shown[entity]
        n = len(kept)
        differ = np.asarray(rows["stage"].to_numpy(dtype=object)[:n] != stage[kept],
                            dtype=bool)
        now, then = rows["reasons"].to_numpy(dtype=object)[:n], reasons[kept]
        # reasons compared where there are any (most people have none): Python's list
        # equality, row by row, over 400k rows was most of this function's time
        said = (np.fromiter(map(len, now), dtype=np.int64, count=n)
                + np.fromiter(map(len, then), dtype=np.int64, count=n)) > 0
        # (a row whose reasons the rules kept holds the same list: nothing to compare)
        for i in np.flatnonzero(said & ~differ).tolist():
            differ[i] = now[i] is not then[i] and now[i] != then[i]
        out[entity] = set(ids) | set(rows[key].to_numpy(dtype=object)[:n][differ])
    return out


def reusable(store: Store, plan: Plan, as_of: dt.datetime, now: dict[str, set[str]]
             ) -> snapshot.Reuse | None:
    """How to make the snapshot at *as_of* from the one before the kept score's (see
    :class:`demandloop.score.snapshot.Reuse`; *now*: what :func:`changed` found), or None
    when it cannot be: it is on another day, the kept score's changes from it are not
    known, or the store holds other snapshots since it than the two this process wrote.

    That snapshot's rows differ from the new ones by the kept score's changes and these,
    and otherwise by its decay and this one's (both the multiplications made in memory)."""
    written, prior = plan.kept.written, plan.kept.prior
    if (written is None or prior is None or written.changed is None
            or not written.as_of < as_of
            or prior.as_of.date() != as_of.date()):
        return None
    with store.reader() as cur:
        held = cur.execute("SELECT as_of, count(*) FROM scores WHERE workspace_id = ? AND "
                           "as_of >= ? GROUP BY as_of",
                           [store.workspace_id, prior.as_of]).fetchall()
    if sorted(held) != [(prior.as_of, prior.rows), (written.as_of, written.rows)]:
        return None
    return snapshot.Reuse(prior.as_of, (written.factor, plan.factor), {
        entity: sorted(ids | now.get(entity, set()))
        for entity, ids in written.changed.items()})


def plan(store: Store, settings: Settings, as_of: dt.datetime, now: Inputs) -> Plan | None:
    """The accounts and persons a score at *as_of* must recompute, or None for a full one
    (see the module docstring)."""
    kept = _KEPT.get(now.key)
    if kept is None or as_of < kept.as_of or now.others != kept.inputs.others:
        return None
    if stage_log(store) != kept.stage_log:
        return None
    ws = store.workspace_id
    with store.reader() as cur:
        logged = touch_log.since(cur, ws, kept.inputs.run)
    if logged is None or now.touches != kept.inputs.touches + logged.net:
        return None
    before = kept.inputs.accounts
    common = before.index.intersection(now.accounts.index)
    if not np.array_equal(before.loc[common].to_numpy(), now.accounts.loc[common].to_numpy()):
        return None  # an account changed: fit's expected points may move
    # accounts that came, and accounts that went (resolve deletes one it made when nobody
    # matches it any more): recomputed, a gone one comes out of the score as it would from
    # a full one (the fit check of score.run still sends a move of expected points there)
    out = Plan(kept, set(now.accounts.index.symmetric_difference(before.index)),
               set(logged.persons))
    out.accounts |= logged.accounts
    # persons whose row changed, came or went, with their accounts then and now
    moved = _moved(store, kept.inputs.persons, now.persons)
    out.persons |= {str(r[0]) for r in moved}
    out.accounts |= {str(a) for r in moved for a in r[1:] if a is not None}
    cross = _crossing(store, settings, kept.as_of, as_of)
    out.accounts |= cross.entered
    out.persons |= cross.entered_persons
    # the accounts of every person recomputed, and of those who left the committee's
    # window: their committee may change (all else of theirs only when their touches did)
    # (accounts and persons that came are in the sets above: what is left is kept)
    out.windowed = (cross.accounts
                    | _accounts_of(store, out.persons | cross.committee)) - out.accounts
    out.windowed_persons = cross.persons - out.persons
    if (len(out.recomputed("account")) > MOST * max(len(now.accounts), 1)
            or len(out.recomputed("person")) > MOST * max(now.persons.num_rows, 1)):
        return None
    days = settings.score.half_life_days * SECONDS_PER_DAY
    out.factor = 2.0 ** (-(as_of - kept.as_of).total_seconds() / days)
    return out


def _moved(store: Store, old: pa.Table, new: pa.Table) -> list[tuple[object, ...]]:
    """Persons whose row differs between *old* and *new*, or in one only: ``(person_id,
    account then, account now)`` (a join in DuckDB: 0.6 s in pandas for 400k persons)."""
    with store.reader() as cur:
        cur.register("_old", old)
        cur.register("_new", new)
        try:
            return cur.execute(
                "SELECT coalesce(o.person_id, n.person_id), o.account_id, n.account_id "
                "FROM _old o FULL JOIN _new n ON o.person_id = n.person_id "
                "WHERE o.h IS DISTINCT FROM n.h").fetchall()
        finally:
            cur.unregister("_old")
            cur.unregister("_new")


def _accounts_of(store: Store, persons: set[str]) -> set[str]:
    """The accounts of *persons* now."""
    with store.reader() as cur:
        cur.register("_who", pa.table({"id": pa.array(sorted(persons), pa.string())}))
        try:
            rows = cur.execute("SELECT DISTINCT account_id FROM persons WHERE workspace_id = ? "
                               "AND account_id IS NOT NULL AND person_id IN "
                               "(SELECT id FROM _who)", [store.workspace_id]).fetchall()
        finally:
            cur.unregister("_who")
    return {str(r[0]) for r in rows}


def horizon(settings: Settings) -> int:
    """The widest window (days) a windowed measure reads: the 30- and 90-day counts,
    breadth's 90 days and the surge's two windows (the committee's coverage is found from
    every touch of its window, apart)."""
    s = settings.score
    return max(30, 90, s.surge_recent_days + s.surge_baseline_days)


def since(settings: Settings, as_of: dt.datetime) -> dt.datetime:
    """Where a windowed recompute's touches start: the UTC day of ``as_of`` minus
    :func:`horizon` (whole days, as the daily cap counts them)."""
    start = as_of - dt.timedelta(days=horizon(settings))
    return dt.datetime.combine(start.date(), dt.time())


@dataclass
class Crossing:
    """Who has touches between two scores' times, or crossing a window's edge then."""

    #: accounts and persons with touches after the earlier time (their touches came in)
    entered: set[str] = field(default_factory=set)
    entered_persons: set[str] = field(default_factory=set)
    #: accounts with a touch leaving a window an account's measure reads, or an
    #: opportunity opening or closing
    accounts: set[str] = field(default_factory=set)
    #: persons with a touch of a counted activity leaving the 30 days
    persons: set[str] = field(default_factory=set)
    #: persons with a touch leaving the committee's window
    committee: set[str] = field(default_factory=set)


def _band(width: int) -> str:
    return f"(ts > $since - INTERVAL {width} DAY AND ts <= $at - INTERVAL {width} DAY)"


def _crossing(store: Store, settings: Settings, since: dt.datetime, at: dt.datetime
              ) -> Crossing:
    """:class:`Crossing` between the scores at *since* and *at*."""
    out = Crossing()
    if at == since:
        return out
    s = settings.score
    counted = ", ".join(f"'{a}'" for a in COUNTED_30D)  # (plain names: no quoting)
    thirty = f"({_band(30)} AND activity IN ({counted}))"
    of_account = " OR ".join([thirty, *(_band(w) for w in sorted(
        {90, s.surge_recent_days, s.surge_recent_days + s.surge_baseline_days}))])
    committee = _band(s.committee.window_days)
    # found by time alone, then told apart: an activity in the filter cost half as much
    # again as the whole query (every touch's activity read)
    every = " OR ".join(_band(w) for w in sorted({
        0, 30, 90, s.surge_recent_days, s.surge_recent_days + s.surge_baseline_days,
        s.committee.window_days}))
    p = {"ws": store.workspace_id, "since": since, "at": at}
    with store.reader() as cur:
        rows = cur.execute(
            f"SELECT account_id, person_id, bool_or({_band(0)}), bool_or({of_account}), "
            f"bool_or({thirty}), bool_or({committee}) FROM touches "
            f"WHERE workspace_id = $ws AND ({every}) GROUP BY ALL", p).fetchall()
        opened = cur.execute(
            "SELECT DISTINCT account_id FROM opportunities WHERE workspace_id = $ws "
            "AND account_id IS NOT NULL AND ((created_at > $since AND created_at <= $at) "
            "OR (closed_at > $since AND closed_at <= $at))", p).fetchall()
    for account, person, entered, crossed, left_30, left_committee in rows:
        if account is not None:
            if entered:
                out.entered.add(str(account))
            elif crossed:
                out.accounts.add(str(account))
        if person is not None:
            if entered:
                out.entered_persons.add(str(person))
            elif left_30:
                out.persons.add(str(person))
            if left_committee:
                out.committee.add(str(person))
    out.accounts |= {str(r[0]) for r in opened}
    return out

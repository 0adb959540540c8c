"""Which touches the daily cap may cut, found without grouping every touch (DuckDB).

The daily cap (see :mod:`demandloop.score.engagement`) can only cut a touch inside an
(entity, activity, day) group whose weights add up to more than the cap. The portable way
to find those groups, :func:`~demandloop.score.engagement.cap_cuts`, sums every group: a
hash aggregate with about as many groups as touches, the costliest pass of a full rescore
(twice: once for accounts, once for people).

Here the groups are found the way a counting Bloom filter finds heavy keys. Each touch's
group is hashed into one of ``M`` buckets (``M`` 3-6x the touches), each touch adds
``weight / cap`` to its bucket (numpy's scatter-add: one pass, no hash table), and every
touch in a bucket whose sum exceeds 1 is a *candidate*. A group over its cap has a sum over
1 and all its touches share one bucket, so every touch the cap can cut is a candidate, with
all the other touches of its group; other groups that share the bucket only add candidates
that the exact running-sum window then leaves uncut. Weights below zero and caps of zero or
less (where the cap cuts without any total) make their bucket a candidate outright.
Touches without any of the entities are not read, and a touch without one entity (a
visitor known by account, not by person) counts in a bucket of its own that is never
over: in a simulated market about half the touches have no account and two thirds no
person, and counting them in shared buckets made most of them candidates for nothing.

Rounding: the threshold is ``1 + 1e-12``, so a group exactly at its cap (ten page views of
weight 1 under a cap of 10, whose ratios sum to 1 give or take a last bit) is not a
candidate, which keeps the candidates few. A group over its cap by less than a trillionth
of the cap could be missed: its cut would change a score by less than 1e-11, far inside
the 1e-9 to which the definition is held (and about the rounding of the sums themselves).

Why hand-written: no engine offers a hashed counting pass; DuckDB needs 1.5-2 s per 10M
touches for the exact grouped sum, this needs about half that for accounts and people
together (see ``benchmarks/score.py``). Other Ibis backends keep the portable grouped sum.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa

from demandloop.score.engagement import EngagementRules
from demandloop.store.arrow import fetched
from demandloop.store.db import transaction
from demandloop.store.dialect import literal

#: threshold on a bucket's summed ``weight / cap`` (see the module docstring on rounding)
THRESHOLD = 1.0 + 1e-12
#: the columns of touches a candidate keeps: what the scoring measures and the running-sum
#: window read (``seq`` orders and identifies a touch; its long ``touch_id`` made the fetch
#: a third slower)
COLUMNS = ("account_id", "person_id", "activity", "ts", "seq", "weight", "topic")


def buckets_for(touches: int) -> int:
    """The number of buckets for *touches* touches: a power of two 3-6x as many, between
    2**16 and 2**28. Fewer buckets count faster but are shared by more groups: at 10M
    touches, 2**24 made 740k candidates and 2**25 257k, for 0.1 s more counting and less
    to join and window."""
    return 1 << max(16, min(28, int(np.ceil(np.log2(max(touches, 1) * 3)))))


def over_cap(buckets: np.ndarray, ratios: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """Per touch (the positions of *buckets* and *ratios*): is its bucket's summed ratio
    over :data:`THRESHOLD`? *sums* is the buckets' scratch space (zeroed here, so one
    array serves every entity: a fresh one per count was most of the counting's time);
    its last bucket holds the touches without the entity and is never over."""
    sums.fill(0.0)
    # ufunc.at, not bincount: since numpy 1.25 it is the faster scatter-add (4x here)
    np.add.at(sums, buckets, ratios)
    sums[-1] = 0.0
    # look up in a byte per bucket, 8x smaller than the sums: far fewer cache misses
    over: np.ndarray = (sums > THRESHOLD)[buckets]
    return over


def _number(value: float) -> str:
    # through text, so that inf and nan (valid in TOML) are numbers in SQL too
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def cap_sql(rules: EngagementRules) -> str:
    """The cap of a touch's ``activity`` as SQL (the default for any other or none)."""
    whens = " ".join(f"WHEN {literal(k)} THEN {_number(v)}" for k, v in rules.caps.items())
    default = _number(rules.default_cap)
    return f"CASE activity {whens} ELSE {default} END" if whens else default


def _bucket(entity: str, size: int) -> str:
    # the UTC day as a DATE: the same touches as the window's date_trunc('day', ts) share
    # one, and the cast is cheaper; no entity: the extra bucket *size*
    return (f"(CASE WHEN {entity} IS NULL THEN {size} "
            f"ELSE hash({entity}, activity, ts::DATE) & {size - 1} END)::UINTEGER")


def candidates(con: duckdb.DuckDBPyConnection, workspace_id: str, rules: EngagementRules,
               entities: Sequence[str], name: str = "_cap_candidates") -> dict[str, str]:
    """Store the candidate touches of every entity column in *entities* in the temporary
    table *name* on *con* (a DuckDB connection); returns, per entity, the boolean column
    of that table that selects its candidates (each entity's are whole groups).
    """
    if not entities:
        return {}
    # one snapshot for both reads: the rowids found by the first are joined in the second
    with transaction(con):
        return _store(con, workspace_id, rules, entities, name)


def _store(con: duckdb.DuckDBPyConnection, workspace_id: str, rules: EngagementRules,
           entities: Sequence[str], name: str) -> dict[str, str]:
    ws = {"ws": workspace_id}
    scope = ("FROM touches WHERE workspace_id = $ws AND ("
             + " OR ".join(f"{e} IS NOT NULL" for e in entities) + ")")
    row = con.execute(f"SELECT count(*) {scope}", ws).fetchone()
    size = buckets_for(int(row[0]) if row else 0)
    cap = cap_sql(rules)
    ratio = (f"CASE WHEN weight IS NULL THEN 0.0 WHEN weight < 0 OR {cap} <= 0 THEN 2.0 "
             f"ELSE weight / {cap} END")
    keys = ", ".join(f"{_bucket(e, size)} AS k{i}" for i, e in enumerate(entities))
    result = con.execute(f"SELECT rowid AS i, {keys}, {ratio} AS r {scope}", ws)
    data = fetched(result)
    ratios = data.column("r").to_numpy()
    # Anonymous memory, not np.empty: numpy advises huge pages for big arrays, and the
    # kernel's compaction for them made the first touch of 256 MB take 0.5-0.7 s, 0.2 s here.
    scratch = mmap.mmap(-1, (size + 1) * 8)
    sums = np.frombuffer(scratch, dtype=np.float64)
    flags = [over_cap(data.column(f"k{i}").to_numpy(), ratios, sums)
             for i, _ in enumerate(entities)]
    del sums
    scratch.close()
    rows = np.flatnonzero(np.logical_or.reduce(flags))
    # the rows by position (rowid), not by recomputing every touch's buckets in a join
    found = pa.table({"i": data.column("i").to_numpy()[rows],
                      **{f"c{i}": f[rows] for i, f in enumerate(flags)}})
    del data, ratios, flags
    con.register("_found", found)
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS "
            f"SELECT {', '.join('t.' + c for c in COLUMNS)}, "
            f"{', '.join(f'f.c{i}' for i, _ in enumerate(entities))} "
            "FROM touches t JOIN _found f ON t.rowid = f.i")
    finally:
        con.unregister("_found")
    return {e: f"c{i}" for i, e in enumerate(entities)}

"""The identity graph: identifiers as nodes, co-occurrences as edges, persons as components.

Identifiers are ``anon:<anonymousId>``, ``user:<userId>`` and ``email:<address>``. An edge is
recorded whenever one message carries two of them (an ``identify`` links the browser's
anonymous id to the user id and the email in its traits; ``alias`` links ``previousId`` to
``userId``). Connected components of this graph are persons, so identification is
retroactive: every earlier anonymous event of a browser belongs to the person it later
identified as.

Shared devices (a kiosk, a family laptop) would fuse strangers into one person, so an
anonymous id linked to more than ``max_users_per_device`` distinct user ids is left out of the
merge and reported as ambiguous.

Why scipy and not a hand-written union-find: ``scipy.sparse.csgraph.connected_components``
labels ten million edges in a few seconds of C, where a Python union-find takes far longer
(``benchmarks/identity.py`` measures both). Identifiers are first turned into 64-bit hashes
by DuckDB (vectorised, on every core), because hashing millions of Python strings one by one
costs more than the whole graph search; two distinct identifiers share a hash with
probability about n^2 / 2^65 (3 in a million for ten million identifiers).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


@dataclass
class Components:
    """The component label of each edge's two ends, and the number of components."""

    labels_a: np.ndarray
    labels_b: np.ndarray
    count: int


def components(a: np.ndarray | pd.Series, b: np.ndarray | pd.Series) -> Components:
    """Connected components of the undirected graph with edges ``a[i] -- b[i]``.

    Example:
        >>> c = components(np.array(["x", "y", "p"]), np.array(["y", "z", "q"]))
        >>> c.count, bool(c.labels_a[0] == c.labels_b[1]), bool(c.labels_a[0] == c.labels_a[2])
        (2, True, False)
    """
    m = len(a)
    if m == 0:
        return Components(np.zeros(0, np.int32), np.zeros(0, np.int32), 0)
    edges = pa.table({"a": pa.array(np.asarray(a, dtype=object), pa.string()),
                      "b": pa.array(np.asarray(b, dtype=object), pa.string())})
    con = duckdb.connect()
    try:
        con.register("edges", edges)
        hashed = con.execute("SELECT hash(a) AS ha, hash(b) AS hb FROM edges").fetchnumpy()
    finally:
        con.close()
    return hashed_components(np.asarray(hashed["ha"]), np.asarray(hashed["hb"]))


def hashed_components(ha: np.ndarray, hb: np.ndarray) -> Components:
    """:func:`components` of edges already hashed to integers (``ha[i] -- hb[i]``)."""
    m = len(ha)
    codes, uniq = pd.factorize(np.concatenate([ha, hb]))
    n = len(uniq)
    graph = coo_matrix((np.ones(m, dtype=np.int8), (codes[:m], codes[m:])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    return Components(labels[codes[:m]], labels[codes[m:]], int(count))


def resolve_persons(edges: pd.DataFrame, known_person_ids: set[str] | None = None,
                    max_users_per_device: int = 2) -> pd.DataFrame:
    """Map every identifier to a person.

    *edges* has columns ``a`` and ``b`` (identifier strings). Components holding a user id or
    an email are persons; components of anonymous ids only are visitors, not persons.
    The person id is stable and readable: an email already known as a person id (a CRM
    contact) if the component has one, else its smallest email, else its smallest user id.

    Returns columns ``identifier, kind, person_id`` (one row per identifier of a person).
    The shared devices, the hashing and the labelling run in DuckDB (vectorised, on every
    core); only the component search is scipy's.
    """
    if edges.empty:
        return pd.DataFrame({c: pd.Series(dtype=object)
                             for c in ("identifier", "kind", "person_id")})
    con = duckdb.connect()
    try:
        # as they are (pandas keeps text in Arrow): through NumPy objects cost 0.5 s at
        # 10M events
        con.register("edges", pa.Table.from_pandas(edges[["a", "b"]], preserve_index=False)
                     .cast(pa.schema([("a", pa.string()), ("b", pa.string())])))
        con.register("known", pa.table({"id": pa.array(sorted(known_person_ids or ()),
                                                         pa.string())}))
        usable = con.execute("""
            WITH shared AS (SELECT a FROM edges WHERE a LIKE 'anon:%' AND b LIKE 'user:%'
                            GROUP BY a HAVING count(DISTINCT b) > $max)
            SELECT a, b, hash(a) AS ha, hash(b) AS hb FROM edges
            WHERE a NOT IN (SELECT a FROM shared) AND b NOT IN (SELECT a FROM shared)
        """, {"max": max_users_per_device}).fetch_arrow_table()
        if usable.num_rows == 0:
            return resolve_persons(edges.iloc[:0])
        comp = hashed_components(usable["ha"].to_numpy(), usable["hb"].to_numpy())
        con.register("labelled", pa.table({
            "identifier": pa.concat_arrays([usable["a"].combine_chunks(),
                                            usable["b"].combine_chunks()]),
            "label": pa.array(np.concatenate([comp.labels_a, comp.labels_b])
                              .astype(np.int64))}))
        return con.execute("""
            WITH ids AS (
                SELECT DISTINCT identifier, label, split_part(identifier, ':', 1) AS kind,
                       identifier[position(':' IN identifier) + 1:] AS value
                FROM labelled),
            named AS (
                SELECT label, coalesce(
                    min(value) FILTER (WHERE kind = 'email'
                                       AND value IN (SELECT id FROM known)),
                    min(value) FILTER (WHERE kind = 'email'),
                    min('user:' || value) FILTER (WHERE kind = 'user')) AS person_id
                FROM ids GROUP BY label)
            SELECT identifier, kind, person_id FROM ids JOIN named USING (label)
            WHERE person_id IS NOT NULL
        """).df()
    finally:
        con.close()

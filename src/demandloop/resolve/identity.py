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
    codes, uniq = pd.factorize(np.concatenate([hashed["ha"], hashed["hb"]]))
    n = len(uniq)
    graph = coo_matrix((np.ones(m, dtype=np.int8), (codes[:m], codes[m:])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    return Components(labels[codes[:m]], labels[codes[m:]], int(count))


def shared_devices(edges: pd.DataFrame, max_users_per_device: int = 2) -> set[str]:
    """Anonymous ids linked to more distinct user ids than a person plausibly has."""
    anon_user = edges[edges["a"].str.startswith("anon:") & edges["b"].str.startswith("user:")]
    per_device = anon_user.groupby("a")["b"].nunique()
    return set(per_device[per_device > max_users_per_device].index)


def resolve_persons(edges: pd.DataFrame, known_person_ids: set[str] | None = None,
                    max_users_per_device: int = 2) -> pd.DataFrame:
    """Map every identifier to a person.

    *edges* has columns ``a`` and ``b`` (identifier strings). Components holding a user id or
    an email are persons; components of anonymous ids only are visitors, not persons.
    The person id is stable and readable: an email already known as a person id (a CRM
    contact) if the component has one, else its smallest email, else its smallest user id.

    Returns columns ``identifier, kind, person_id`` (one row per identifier of a person).
    """
    known = known_person_ids or set()
    if edges.empty:
        return pd.DataFrame({c: pd.Series(dtype=object)
                             for c in ("identifier", "kind", "person_id")})
    shared = shared_devices(edges, max_users_per_device)
    usable = edges[~edges["a"].isin(shared) & ~edges["b"].isin(shared)]
    comp = components(usable["a"].to_numpy(), usable["b"].to_numpy())
    frame = pd.DataFrame({
        "identifier": np.concatenate([usable["a"].to_numpy(dtype=object),
                                      usable["b"].to_numpy(dtype=object)]),
        "label": np.concatenate([comp.labels_a, comp.labels_b]),
    }).drop_duplicates("identifier")
    frame["kind"] = frame["identifier"].str.split(":", n=1).str[0]
    frame["value"] = frame["identifier"].str.split(":", n=1).str[1]
    emails = frame[frame["kind"] == "email"]
    users = frame[frame["kind"] == "user"]
    crm = emails[emails["value"].isin(known)].groupby("label")["value"].min()
    first_email = emails.groupby("label")["value"].min()
    first_user = ("user:" + users["value"]).groupby(users["label"]).min()
    person = crm.combine_first(first_email).combine_first(first_user)
    frame["person_id"] = frame["label"].map(person)
    out = frame[frame["person_id"].notna()][["identifier", "kind", "person_id"]]
    return out.reset_index(drop=True)

"""What ``/v1/decide`` decides from, without a database query per request.

A **snapshot** holds what a decision reads about a visitor: every account with its latest
scores (the account view), each known browser's person and account, and what the address
lookup is built from (the workspace's IP ranges and named accounts). The process that holds
the workspace publishes it after each rescore (:func:`publish`) as Arrow files in
``<workspace>/personalize/g<generation>/`` and then points ``current.json`` at them with one
atomic rename; every process that answers decisions (the server's, or each HTTP worker of a
multi-worker server) maps the newest generation (:class:`SnapshotWatch`) and swaps its
:class:`Decider` in one assignment. A request in flight keeps the decider it started with.

A decision is then: the browser's person (binary search in the sorted anonymous ids), else
the address's account (the same lookup as resolve's), the account's row, the page's fields,
and :func:`~demandloop.activate.personalize.decide` over the compiled experiences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson
import pyarrow as pa

from demandloop.activate.personalize import Decision, Experience, decide
from demandloop.ipaddr import ip_key
from demandloop.store import generations
from demandloop.store.account_pages import current_accounts
from demandloop.store.db import Store

SNAPSHOT_DIR = "personalize"
#: address keys -> (accounts, sources, details), as resolve's lookup
KeyLookup = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
#: a visit's raw fields (utm_*, referrer, url) -> its channel
ChannelOf = Callable[[dict[str, str]], str]
_TABLES = ("accounts", "people", "ranges", "named")
_ACCOUNT_COLUMNS = ("account_id", "name", "domain", "industry", "employees", "country",
                    "owner", "target", "tier", "stage", "fit", "band", "intent", "surging",
                    "surge_topics")


@dataclass(frozen=True)
class Snapshot:
    """The tables a decider is built from (see the module docstring)."""

    accounts: pa.Table  # _ACCOUNT_COLUMNS, sorted by account_id
    people: pa.Table    # anonymous_id (sorted), person_id, account_id, seniority, job_function
    ranges: pa.Table    # start_ip, end_ip, account_id
    named: pa.Table     # account_id, name
    generation: str = ""


def snapshot_from(store: Store, lookup_inputs: Callable[[Any, str], tuple[pa.Table, pa.Table]]
                  ) -> Snapshot:
    """The snapshot of *store* now (*lookup_inputs*: resolve's, passed in by the caller)."""
    accounts = current_accounts(store).select(list(_ACCOUNT_COLUMNS)).sort_by("account_id")
    with store.reader() as cur:
        people = cur.execute(
            "SELECT substr(i.identifier, 6) AS anonymous_id, p.person_id, p.account_id, "
            "p.seniority, p.job_function FROM person_identifiers i JOIN persons p "
            "ON p.workspace_id = i.workspace_id AND p.person_id = i.person_id "
            "WHERE i.workspace_id = $ws AND i.kind = 'anon' ORDER BY anonymous_id",
            {"ws": store.workspace_id}).to_arrow_table()
        ranges, named = lookup_inputs(cur, store.workspace_id)
    return Snapshot(accounts, people, ranges, named)


def publish(directory: Path, snap: Snapshot) -> str:
    """Write *snap* as the newest generation under *directory*/personalize; returns its
    name (see :mod:`demandloop.store.generations`)."""
    folder = generations.new_generation(directory / SNAPSHOT_DIR)
    for name in _TABLES:
        generations.write_table(folder / f"{name}.arrow", getattr(snap, name))
    return generations.publish(folder)


def read(directory: Path) -> Snapshot | None:
    """The newest published snapshot (memory-mapped), or None when none was published."""
    root = directory / SNAPSHOT_DIR
    generation = generations.current_generation(root)
    if generation is None:
        return None
    tables = {name: generations.read_table(root / generation / f"{name}.arrow")
              for name in _TABLES}
    return Snapshot(**tables, generation=generation)


class Decider:
    """Decisions over one snapshot and one set of experiences (immutable once built)."""

    def __init__(self, snap: Snapshot, experiences: list[Experience], lookup: KeyLookup,
                 channel_of: ChannelOf) -> None:
        self.snap, self.experiences = snap, experiences
        self.lookup, self.channel_of = lookup, channel_of
        self.account_ids = np.asarray(snap.accounts.column("account_id").to_pylist(),
                                      dtype=object)
        self.anon = np.asarray(snap.people.column("anonymous_id").to_pylist(), dtype=object)
        self.needs_channel = any("channel" in e.fields for e in experiences)

    @staticmethod
    def _find(sorted_ids: np.ndarray, key: str) -> int:
        i = int(np.searchsorted(sorted_ids, key))
        return i if i < len(sorted_ids) and sorted_ids[i] == key else -1

    def account_fields(self, account_id: str) -> dict[str, Any] | None:
        """An account's row of the snapshot (as :meth:`visit` reads it), or None."""
        i = self._find(self.account_ids, account_id)
        if i < 0:
            return None
        fields: dict[str, Any] = self.snap.accounts.slice(i, 1).to_pylist()[0]
        topics = fields.pop("surge_topics")
        fields["surge_topics"] = orjson.loads(topics) if topics else []
        return fields

    def visit(self, ip: str | None, anonymous_id: str | None, url: str | None,
              referrer: str | None) -> tuple[dict[str, Any], str | None]:
        """The fields of a visit (see AUDIENCE_FIELDS; with ``person_id`` for a known
        browser) and its assignment unit."""
        row: dict[str, Any] = {"known": False}
        account: str | None = None
        if anonymous_id:
            i = self._find(self.anon, anonymous_id)
            if i >= 0:
                person = self.snap.people.slice(i, 1).to_pylist()[0]
                row.update(known=True, seniority=person["seniority"],
                           job_function=person["job_function"],
                           person_id=person["person_id"])
                account = person["account_id"]
        if account is None and ip:
            key = ip_key(ip)
            if key is not None:
                found = self.lookup(np.array([key], dtype=np.int64))[0][0]
                account = str(found) if found is not None else None
        self.add_account_and_page(row, account, url, referrer)
        return row, account or anonymous_id or None

    def add_account_and_page(self, row: dict[str, Any], account: str | None, url: str | None,
                             referrer: str | None) -> None:
        """Add to a visit's *row* its *account*'s fields (None: not known) and its page's."""
        row["account_known"] = account is not None
        if account is not None:
            row["account_id"] = account
            row.update(self.account_fields(account) or {})
        row.update(page_fields(url, referrer))
        if self.needs_channel:
            row["channel"] = self.channel_of({**{k: row.get(k) or "" for k in _UTM},
                                              "referrer": referrer or "", "url": url or ""})

    def decide(self, ip: str | None, anonymous_id: str | None = None, url: str | None = None,
               referrer: str | None = None) -> list[Decision]:
        """The decisions for one visit."""
        row, unit = self.visit(ip, anonymous_id, url, referrer)
        return decide(self.experiences, row, unit)


_UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term")


def page_fields(url: str | None, referrer: str | None) -> dict[str, Any]:
    """The page's fields: path, UTM parameters, referrer host."""
    out: dict[str, Any] = {}
    if url:
        parts = urlsplit(url)
        out["path"] = parts.path or "/"
        query = parse_qs(parts.query)
        for k in _UTM:
            if query.get(k):
                out[k] = query[k][0]
    if referrer:
        host = (urlsplit(referrer).hostname or "").lower()
        if host:
            out["referrer"] = host.removeprefix("www.")
    return out


def empty_snapshot() -> Snapshot:
    """A snapshot with no accounts or people (before the first publish)."""
    return Snapshot(
        accounts=pa.table({c: pa.array([], pa.string()) for c in _ACCOUNT_COLUMNS}),
        people=pa.table({c: pa.array([], pa.string()) for c in
                         ("anonymous_id", "person_id", "account_id", "seniority",
                          "job_function")}),
        ranges=pa.table({"start_ip": pa.array([], pa.int64()), "end_ip": pa.array([], pa.int64()),
                         "account_id": pa.array([], pa.string())}),
        named=pa.table({"account_id": pa.array([], pa.string()),
                        "name": pa.array([], pa.string())}))

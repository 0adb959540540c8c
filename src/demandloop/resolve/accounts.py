"""Account resolution: which account is behind each person and each anonymous visit.

People, in priority order (each match keeps its source and confidence):

1. ``group``: the person's app sent a ``group`` call whose traits name the company's
   website or domain (0.99);
2. ``crm``: a CRM contact with that email belongs to an account (0.95);
3. ``email_domain``: the person's business email domain is the account's domain (0.9).
   Personal domains (free mail) never create or match an account.

Anonymous visits (events of no resolved person), by IP address:

4. ``ip_range``: a user-supplied range (``demandloop import ip-ranges``) (0.8);
5. ``asn``: the open IP-to-organisation table names an organisation whose name matches an
   account's (0.5). ISP, mobile, hosting, education and government networks are reported as
   unresolved with that reason, never as accounts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from demandloop.domains import canonical_domain
from demandloop.resolve.asn import KINDS, AsnTable
from demandloop.resolve.ipranges import RangeIndex
from demandloop.store.dialect import literal

CONFIDENCE = {"group": 0.99, "crm": 0.95, "email_domain": 0.9, "ip_range": 0.8, "asn": 0.5}

_SUFFIXES = re.compile(
    r"[,.]?\s+(inc|incorporated|llc|l\.l\.c|ltd|limited|corp|corporation|co|company|gmbh|ag|"
    r"sa|s\.a|sas|bv|b\.v|nv|plc|pty|pte|srl|spa|oy|ab|as|kk|group|holdings?)\.?$", re.I)


def normalise_name(name: str) -> str:
    """``Acme Corp, Inc.`` -> ``acme``: for matching organisation names to account names."""
    n = name.strip().lower()
    for _ in range(3):
        n = _SUFFIXES.sub("", n).strip(" ,.")
    return re.sub(r"[^a-z0-9]+", " ", n).strip()


def person_accounts(person_emails: pd.DataFrame, crm_contacts: pd.DataFrame,
                    group_links: pd.DataFrame, personal: frozenset[str]) -> pd.DataFrame:
    """Best account per person.

    *person_emails*: ``person_id, email``; *crm_contacts*: ``email, account_id``;
    *group_links*: ``person_id, domain`` (from group calls). Returns
    ``person_id, account_id, source, confidence``, one row per person matched, in person
    order: the highest confidence wins; among equals (two work emails), the account with
    the most candidates, then the first by name.

    Ranked in DuckDB (an in-memory connection: nothing stored is read): the pandas sort,
    merge and group counts cost 1.6 s of a rebuild's 289k persons. Only the domains'
    canonical forms are found in Python, once per distinct domain.
    """
    email = pa.array(person_emails["email"], pa.string(), from_pandas=True)
    # the text after the last @ (Arrow's kernel: pandas' rsplit is a loop per email)
    domains = pc.struct_field(pc.extract_regex(email, "@(?P<d>[^@]*)$"), "d")
    distinct = [d for d in pc.unique(domains.drop_null()).to_pylist() if d not in personal]
    canonical = pa.table({"d": pa.array(distinct, pa.string()), "account_id": pa.array(
        [canonical_domain(d) for d in distinct], pa.string())})
    con = duckdb.connect()
    try:
        con.register("_emails", pa.table({
            "person_id": pa.array(person_emails["person_id"], pa.string(), from_pandas=True),
            "email": email, "d": domains}))
        con.register("_canonical", canonical)
        con.register("_crm", pa.table({c: pa.array(crm_contacts[c], pa.string(),
                                                    from_pandas=True)
                                       for c in ("email", "account_id")}))
        con.register("_groups", pa.table({c: pa.array(group_links[c], pa.string(),
                                                       from_pandas=True)
                                          for c in ("person_id", "domain")}))
        found = con.execute(f"""
            WITH candidates AS (
                SELECT person_id, domain AS account_id, 'group' AS source FROM _groups
                WHERE domain IS NOT NULL
                UNION ALL
                SELECT e.person_id, c.account_id, 'crm' FROM _emails e
                JOIN _crm c ON c.email = e.email WHERE c.account_id IS NOT NULL
                UNION ALL
                SELECT e.person_id, k.account_id, 'email_domain' FROM _emails e
                JOIN _canonical k USING (d) WHERE k.account_id IS NOT NULL),
            ranked AS (
                SELECT person_id, account_id, source,
                       {confidence_sql('source')} AS confidence,
                       count(*) OVER (PARTITION BY person_id, account_id) AS votes
                FROM candidates)
            SELECT person_id, account_id, source, confidence FROM ranked
            QUALIFY row_number() OVER (PARTITION BY person_id
                                       ORDER BY confidence DESC, votes DESC, account_id) = 1
            ORDER BY person_id""").df()
    finally:
        con.close()
    return found.astype({"person_id": object, "account_id": object, "source": object,
                         "confidence": float})


def confidence_sql(source: str) -> str:
    """:data:`CONFIDENCE` of the match source named by the SQL expression *source* (0.0
    for any other), as a SQL expression: one mapping for every query that ranks or stores
    matches."""
    cases = " ".join(f"WHEN {literal(s)} THEN {c}" for s, c in CONFIDENCE.items())
    return f"(CASE {source} {cases} ELSE 0.0 END)"


@dataclass(frozen=True)
class KeyAccounts:
    """What :func:`key_accounts` found: per address key a position (``codes``) in three
    short arrays, ``account``, ``source`` and ``detail`` (why an address did not resolve).
    Coded, not three arrays as long as the keys: a rebuild looks up millions of
    addresses, which share a few thousand outcomes (a range, an organisation, a reason),
    and building a Python string per address cost more than the lookup."""

    codes: np.ndarray
    account: np.ndarray
    source: np.ndarray
    detail: np.ndarray

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Account, source and detail per key (object arrays)."""
        return self.account[self.codes], self.source[self.codes], self.detail[self.codes]


def key_accounts(keys: np.ndarray, user_ranges: RangeIndex, range_accounts: np.ndarray,
                 asn: AsnTable | None, accounts_by_name: dict[str, str]) -> KeyAccounts:
    """The account behind each address key (:func:`demandloop.ipaddr.ip_keys`): its
    account, source, and ``detail``, why an address did not resolve (``isp``, ``mobile``,
    ``hosting``, ``education``, ``government``, ``organisation not in accounts: NAME``,
    ``unknown network`` or ``no ip``)."""
    keys = np.asarray(keys, dtype=np.int64)
    # outcomes 0 and 1: no address, an address of no known network
    account: list[str | None] = [None, None]
    source = ["unresolved", "unresolved"]
    detail: list[str | None] = ["no ip", "unknown network"]
    codes = (keys >= 0).astype(np.int64)
    if len(user_ranges.starts):
        pos = user_ranges.lookup(keys)
        hit = pos >= 0
        # one outcome per range (user ranges are few next to the addresses)
        codes[hit] = len(account) + pos[hit]
        account += range_accounts[user_ranges.values].tolist()
        source += ["ip_range"] * len(user_ranges.starts)
        detail += [None] * len(user_ranges.starts)
    todo = np.flatnonzero(codes == 1)
    if asn is not None and len(todo):
        org = asn.organisations(keys[todo])
        known = org >= 0
        todo, org = todo[known], org[known]
        # one outcome per distinct organisation: its account (by name) or why none
        seen, inv = np.unique(org, return_inverse=True)
        codes[todo] = len(account) + inv
        for o in seen.tolist():
            kind, name = KINDS[int(asn.kinds[o])], str(asn.orgs[o])
            match = accounts_by_name.get(normalise_name(name)) if kind == "business" else None
            account.append(match)
            source.append("asn" if match is not None else "unresolved")
            detail.append(None if match is not None else
                          f"organisation not in accounts: {name}" if kind == "business"
                          else kind)
    return KeyAccounts(codes, np.array(account, dtype=object), np.array(source, dtype=object),
                       np.array(detail, dtype=object))

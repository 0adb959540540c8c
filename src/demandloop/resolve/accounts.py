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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from demandloop.compute import isin
from demandloop.domains import canonical_domain
from demandloop.resolve.asn import KINDS, AsnTable
from demandloop.resolve.ipranges import RangeIndex

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
    ``person_id, account_id, source, confidence``.
    """
    cands = []
    if not group_links.empty:
        g = group_links.dropna(subset=["domain"])[["person_id", "domain"]]
        cands.append(g.rename(columns={"domain": "account_id"}).assign(source="group"))
    if not crm_contacts.empty and not person_emails.empty:
        c = person_emails.merge(crm_contacts.dropna(subset=["account_id"]), on="email")
        cands.append(c[["person_id", "account_id"]].assign(source="crm"))
    if not person_emails.empty:
        # the text after the last @ (Arrow's kernel: pandas' rsplit is a loop per email)
        e = person_emails.assign(account_id=pc.struct_field(pc.extract_regex(
            pa.array(person_emails["email"], pa.string(), from_pandas=True),
            "@(?P<d>[^@]*)$"), "d").to_numpy(zero_copy_only=False))
        e = e[e["account_id"].notna().to_numpy() & ~isin(e["account_id"], personal)]
        # per distinct domain (a company's people share one), not per email
        found = {d: canonical_domain(d) for d in e["account_id"].unique()}
        e = e.assign(account_id=[found[d] for d in e["account_id"].tolist()])
        cands.append(e.dropna(subset=["account_id"])[["person_id", "account_id"]]
                     .assign(source="email_domain"))
    if not cands:
        return pd.DataFrame({"person_id": pd.Series(dtype=object),
                             "account_id": pd.Series(dtype=object),
                             "source": pd.Series(dtype=object),
                             "confidence": pd.Series(dtype=float)})
    allc = pd.concat(cands, ignore_index=True)
    allc["confidence"] = allc["source"].map(CONFIDENCE)
    # highest confidence wins; among equals (two work emails), the most frequent account
    allc["votes"] = allc.groupby(["person_id", "account_id"])["source"].transform("size")
    allc = allc.sort_values(["person_id", "confidence", "votes", "account_id"],
                            ascending=[True, False, False, True])
    return allc.drop_duplicates("person_id")[["person_id", "account_id", "source",
                                              "confidence"]].reset_index(drop=True)


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

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


def key_accounts(keys: np.ndarray, user_ranges: RangeIndex, range_accounts: np.ndarray,
                 asn: AsnTable | None, accounts_by_name: dict[str, str]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The account behind each address key (:func:`demandloop.ipaddr.ip_keys`), as three
    object arrays: account, source, and ``detail``, why an address did not resolve
    (``isp``, ``mobile``, ``hosting``, ``education``, ``government``, ``organisation not in
    accounts: NAME``, ``unknown network`` or ``no ip``). Arrays, not a frame: a rebuild looks
    up millions of addresses, and a frame of them (pandas 3 turns each text column into
    Arrow) cost more than the lookup."""
    n = len(keys)
    account = np.full(n, None, dtype=object)
    source = np.full(n, "unresolved", dtype=object)
    detail = np.where(keys < 0, "no ip", "unknown network").astype(object)
    if len(user_ranges.starts):
        pos = user_ranges.lookup(keys)
        hit = pos >= 0
        account[hit] = range_accounts[user_ranges.values[pos[hit]]]
        source[hit] = "ip_range"
        detail[hit] = None
    todo = (source == "unresolved") & (keys >= 0)
    if asn is not None and todo.any():
        idx = np.flatnonzero(todo)
        org = asn.organisations(keys[idx])
        known = org >= 0
        idx, org = idx[known], org[known]
        # per distinct organisation: its account (by name) or why none (the kind of network)
        seen, inv = np.unique(org, return_inverse=True)
        kinds = [KINDS[int(asn.kinds[o])] for o in seen]
        matches = np.array([accounts_by_name.get(normalise_name(str(asn.orgs[o])))
                            if k == "business" else None for o, k in zip(seen, kinds,
                                                                          strict=True)],
                           dtype=object)[inv]
        whys = np.array([f"organisation not in accounts: {asn.orgs[o]}" if k == "business"
                         else k for o, k in zip(seen, kinds, strict=True)], dtype=object)[inv]
        hit = pd.notna(matches)
        account[idx[hit]], source[idx[hit]], detail[idx[hit]] = matches[hit], "asn", None
        detail[idx[~hit]] = whys[~hit]
    return account, source, detail

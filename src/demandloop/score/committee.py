"""Buying committee: which of the roles a deal needs are engaged at each account.

A role is a function (``finance``) or a function with a minimum seniority
(``marketing:vp`` is met by a VP or a C-level marketer). A person covers a role when they
were engaged (touched) within the window. Coverage is the share of required roles covered.

Example:
    >>> people = pd.DataFrame({"account_id": ["a", "a"], "seniority": ["vp", "manager"],
    ...                        "job_function": ["marketing", "it"]})
    >>> c = coverage(people, ["marketing:vp", "it", "finance"])
    >>> float(c.committee_coverage[0]), c.missing_roles[0]
    (0.6666666666666666, ['finance'])
"""

from __future__ import annotations

import pandas as pd

from demandloop.score.stages import SENIORITY_RANK


def covers(role: str, seniority: str | None, function: str | None) -> bool:
    """Does a person of *seniority* and *function* fill *role* (``function[:seniority]``)?"""
    want_function, _, want_seniority = role.partition(":")
    if function != want_function:
        return False
    if not want_seniority:
        return True
    return SENIORITY_RANK.get(seniority or "", -1) >= SENIORITY_RANK[want_seniority]


def coverage(engaged: pd.DataFrame, roles: list[str]) -> pd.DataFrame:
    """*engaged*: ``account_id, seniority, job_function`` of engaged people. Returns
    ``account_id, committee_coverage, missing_roles``."""
    rows = []
    for account, group in engaged.groupby("account_id", sort=True):
        people = list(zip(group["seniority"], group["job_function"], strict=True))
        missing = [r for r in roles if not any(covers(r, s, f) for s, f in people)]
        share = (len(roles) - len(missing)) / len(roles) if roles else 1.0
        rows.append((account, share, missing))
    return pd.DataFrame(rows, columns=["account_id", "committee_coverage", "missing_roles"])

"""Audiences: saved segments of accounts or people, exported as ad platforms take them.

A segment is a name, an entity (``account`` or ``person``) and conditions over the latest
scores and the CRM fields (``[[activate.segments]]`` in demandloop.toml; all conditions must
hold). People segments can also filter on their account's fields, prefixed ``account_``.

Exports:

* ``linkedin`` (account segments): a LinkedIn Matched Audiences company list, with the
  template's header row (``companyname, companywebsite, companyemaildomain, ...``);
* ``google`` (people segments): a Google Ads Customer Match file, ``Email, Phone, First Name,
  Last Name, Country, Zip``, with email and names normalised (whitespace removed, lower case)
  and SHA-256 hashed as Google asks; people without an email are left out;
* ``csv``: every field, plain.

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"fit": [90.0, 40.0], "stage": ["mqa", "aware"]})
    >>> select(rows, [Condition("fit", ">=", 81)]).index.tolist()
    [0]
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from demandloop.errors import InputError, UsageError

#: fields an account segment may name (CRM fields and the latest scores)
ACCOUNT_FIELDS: dict[str, str] = {
    "account_id": "account id (the domain when known)", "domain": "website domain",
    "name": "company name", "industry": "industry", "employees": "employee count",
    "revenue": "annual revenue", "country": "country code", "target": "target account flag",
    "tier": "account tier", "owner": "account owner", "stage": "buying stage",
    "fit": "ICP fit 0-100", "band": "fit band (Strong, Moderate, Weak)",
    "engagement": "decayed engagement", "intent": "surge ratio", "surging": "surging now",
    "people": "people engaged", "committee_coverage": "buying-committee coverage 0-1",
}
#: fields a person segment may name (plus every account field prefixed ``account_``)
PERSON_FIELDS: dict[str, str] = {
    "person_id": "person id", "email": "email", "first_name": "first name",
    "last_name": "last name", "title": "job title", "seniority": "seniority",
    "job_function": "job function",
    **{f"account_{k}": f"their account's {v}" for k, v in ACCOUNT_FIELDS.items()
       if k != "account_id"},
    "account_id": "their account's id",
}
FORMATS = ("csv", "linkedin", "google")
LINKEDIN_COLUMNS = ("companyname", "companywebsite", "companyemaildomain",
                    "linkedincompanypageurl", "stocksymbol", "industry", "city", "state",
                    "companycountry", "zipcode")
GOOGLE_COLUMNS = ("Email", "Phone", "First Name", "Last Name", "Country", "Zip")
LINKEDIN_MINIMUM = 300


def _in(a: Any, b: Any) -> Any:
    return a.isin(list(b) if isinstance(b, list | tuple) else [b])


OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, ">=": operator.ge, ">": operator.gt,
    "<=": operator.le, "<": operator.lt, "in": _in,
    "not_in": lambda a, b: ~_in(a, b),
    "contains": lambda a, b: a.astype(str).str.contains(str(b), case=False, regex=False),
}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Segment:
    name: str
    entity: str
    conditions: tuple[Condition, ...]
    description: str = ""


def fields_for(entity: str) -> dict[str, str]:
    if entity not in ("account", "person"):
        raise UsageError(f"unknown segment entity '{entity}'", hint="use account or person")
    return ACCOUNT_FIELDS if entity == "account" else PERSON_FIELDS


def select(rows: pd.DataFrame, conditions: Sequence[Condition]) -> pd.DataFrame:
    """The rows meeting every condition (missing values never match)."""
    mask = pd.Series(True, index=rows.index)
    for c in conditions:
        if c.op not in OPS:
            raise UsageError(f"unknown operator '{c.op}'", hint=f"use {', '.join(OPS)}")
        col = rows[c.field]
        try:
            hit = OPS[c.op](col, c.value)
        except TypeError:
            raise UsageError(f"segment condition {c.field} {c.op} {c.value!r}: the value "
                             f"does not compare with {c.field}") from None
        mask &= pd.Series(hit, index=rows.index).fillna(False).astype(bool) & col.notna()
    return rows[mask]


def _sha256(value: Any) -> str:
    text = "".join(str(value).split()).lower()
    return hashlib.sha256(text.encode()).hexdigest() if text else ""


def linkedin(accounts: pd.DataFrame) -> pd.DataFrame:
    """LinkedIn company-list rows for account rows (domain, name, industry, country)."""
    out = pd.DataFrame(index=accounts.index, columns=list(LINKEDIN_COLUMNS), dtype=object)
    out["companyname"] = accounts["name"].fillna(accounts["domain"])
    out["companywebsite"] = accounts["domain"]
    out["companyemaildomain"] = accounts["domain"]
    out["industry"] = accounts["industry"]
    out["companycountry"] = accounts["country"]
    return out.fillna("")


def google(people: pd.DataFrame) -> pd.DataFrame:
    """Customer Match rows: normalised, SHA-256 hashed email and names; country unhashed."""
    have = people[people["email"].notna() & (people["email"].astype(str).str.strip() != "")]
    return pd.DataFrame({
        "Email": have["email"].map(_sha256),
        "Phone": "",
        "First Name": have["first_name"].fillna("").map(_sha256),
        "Last Name": have["last_name"].fillna("").map(_sha256),
        "Country": have["account_country"].fillna("").astype(str).str.upper()
        if "account_country" in have else "",
        "Zip": "",
    })


def export(segment: Segment, rows: pd.DataFrame, fmt: str) -> tuple[pd.DataFrame, list[str]]:
    """The file rows for *fmt* and warnings (a list too small to serve, people skipped)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown audience format '{fmt}'", hint=f"use {', '.join(FORMATS)}")
    warnings: list[str] = []
    if fmt == "csv":
        return rows.reset_index(drop=True), warnings
    if fmt == "linkedin":
        if segment.entity != "account":
            raise UsageError(f"segment '{segment.name}' holds people: LinkedIn company lists "
                             "take accounts", hint="use --format google or csv")
        if len(rows) < LINKEDIN_MINIMUM:
            warnings.append(f"{len(rows)} companies: LinkedIn needs at least "
                            f"{LINKEDIN_MINIMUM} to serve ads")
        return linkedin(rows).reset_index(drop=True), warnings
    if segment.entity != "person":
        raise UsageError(f"segment '{segment.name}' holds accounts: Customer Match takes "
                         "people", hint="use --format linkedin or csv")
    out = google(rows)
    if len(out) < len(rows):
        warnings.append(f"{len(rows) - len(out)} people without an email were left out")
    return out.reset_index(drop=True), warnings

"""Audiences: saved segments of accounts or people, exported as ad platforms take them.

A segment is a name, an entity (``account`` or ``person``) and conditions over the latest
scores and the CRM fields (``[[activate.segments]]`` in demandloop.toml; all conditions must
hold). People segments can also filter on their account's fields, prefixed ``account_``.

Exports:

* ``linkedin`` (account segments): a LinkedIn Matched Audiences company list, with the
  template's header row (``companyname, companywebsite, companyemaildomain, ...``);
* ``google`` (people segments): a Google Ads Customer Match file, ``Email, Phone, First Name,
  Last Name, Country, Zip``, with email and names normalised (whitespace removed, lower case;
  the dots before ``@gmail.com`` and ``@googlemail.com`` removed, as Google's own
  normalisation samples do, since Gmail ignores them) and SHA-256 hashed as Google asks;
  people without an email are left out;
* ``csv``: every field, plain.

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"fit": [90.0, 40.0], "stage": ["mqa", "aware"]})
    >>> select(rows, [Condition("fit", ">=", 81)]).index.tolist()
    [0]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pandas as pd

from demandloop.conditions import Condition, select
from demandloop.config.conditions import ACCOUNT_FIELDS, PERSON_FIELDS, fields_for
from demandloop.csvfiles import cells
from demandloop.errors import InputError, UsageError

__all__ = ["ACCOUNT_FIELDS", "PERSON_FIELDS", "Condition", "Segment", "fields_for", "select"]

FORMATS = ("csv", "linkedin", "google")
LINKEDIN_COLUMNS = ("companyname", "companywebsite", "companyemaildomain",
                    "linkedincompanypageurl", "stocksymbol", "industry", "city", "state",
                    "companycountry", "zipcode")
GOOGLE_COLUMNS = ("Email", "Phone", "First Name", "Last Name", "Country", "Zip")
LINKEDIN_MINIMUM = 300


@dataclass(frozen=True)
class Segment:
    name: str
    entity: str
    conditions: tuple[Condition, ...]
    description: str = ""


def _sha256(value: Any) -> str:
    text = "".join(str(value).split()).lower()
    return hashlib.sha256(text.encode()).hexdigest() if text else ""


def _email_sha256(value: Any) -> str:
    """An email as Google Ads matches it: *ann.lee@gmail.com* and *annlee@gmail.com* are one
    Gmail mailbox, and Google hashes the dotless form (its Customer Match and enhanced
    conversions samples): hashed with the dots, it matched no one."""
    text = "".join(str(value).split()).lower()
    local, at, domain = text.rpartition("@")
    if at and domain in ("gmail.com", "googlemail.com"):
        text = local.replace(".", "") + at + domain
    return _sha256(text)


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
        "Email": have["email"].map(_email_sha256),
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
    if fmt == "csv":  # (text a spreadsheet would run as a formula is shown as text)
        return cells(rows.reset_index(drop=True)), warnings
    if fmt == "linkedin":
        if segment.entity != "account":
            raise UsageError(f"segment '{segment.name}' holds people: LinkedIn company lists "
                             "take accounts", hint="use --format google or csv")
        if len(rows) < LINKEDIN_MINIMUM:
            warnings.append(f"{len(rows)} companies: LinkedIn needs at least "
                            f"{LINKEDIN_MINIMUM} to serve ads")
        return cells(linkedin(rows).reset_index(drop=True)), warnings
    if segment.entity != "person":
        raise UsageError(f"segment '{segment.name}' holds accounts: Customer Match takes "
                         "people", hint="use --format linkedin or csv")
    out = google(rows)
    if len(out) < len(rows):
        warnings.append(f"{len(rows) - len(out)} people without an email were left out")
    return out.reset_index(drop=True), warnings

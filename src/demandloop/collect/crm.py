"""CRM CSV imports: accounts, contacts and opportunities from HubSpot, Salesforce or plain CSVs.

Headers are recognised by normalised name (lower case, letters and digits only), so HubSpot's
``Company Domain Name`` and Salesforce's ``Website`` both land in ``domain``; ``--map
col=field`` overrides. Rows are checked one by one and every problem is reported as
``FILE:LINE: reason``; a file with problems writes nothing.

Why the csv module and not pandas: it reports the physical line of each record (quoted fields
may span lines), which is what the user needs to find the bad row.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from demandloop.collect.values import (
    as_boolean,
    as_domain,
    as_email,
    as_integer,
    as_number,
    as_technologies,
    as_text,
    decimal_mark,
    parse_timestamp,
)
from demandloop.countries import as_country
from demandloop.csvfiles import delimiter
from demandloop.errors import InputError

KINDS = ("accounts", "contacts", "opportunities")

# field -> header aliases (normalised). First: our own names; then HubSpot; then Salesforce
# (report labels and API names); then Pipedrive's "Object - Field" export headers
# ("Organization - Name" -> organizationname, "Deal - Title" -> dealtitle).
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "accounts": {
        "crm_id": ("crmid", "recordid", "companyid", "accountid", "id", "hsobjectid",
                   "organizationid"),
        "domain": ("domain", "companydomainname", "website", "websiteurl", "companydomain",
                   "organizationwebsite", "organizationdomain"),
        "name": ("name", "companyname", "accountname", "company", "organizationname"),
        "industry": ("industry",),
        "employees": ("employees", "numberofemployees", "employeecount"),
        "revenue": ("annualrevenue", "revenue"),
        "country": ("country", "countryregion", "billingcountry", "shippingcountry"),
        "technologies": ("technologies", "technology", "techstack", "webtechnologies"),
        "owner": ("owner", "companyowner", "accountowner", "ownername", "ownerid",
                  "hubspotowner", "organizationowner"),
        "target": ("target", "targetaccount", "istargetaccount", "hsistargetaccount",
                   "targetaccountc"),
        "tier": ("tier", "idealcustomerprofiletier", "icptier", "hsidealcustomerprofile",
                 "accounttier", "tierc"),
        # when the record was created: a point-in-time score before it does not know it
        "created_at": ("createddate", "createdate", "created", "createdat"),
    },
    "contacts": {
        "crm_id": ("crmid", "recordid", "contactid", "id", "hsobjectid", "personid"),
        "email": ("email", "emailaddress", "workemail", "personemailwork", "personemail"),
        "first_name": ("firstname", "first", "personfirstname"),
        "last_name": ("lastname", "last", "surname", "personlastname"),
        "title": ("title", "jobtitle", "personjobtitle"),
        "account_domain": ("accountdomain", "companydomain", "companydomainname", "website",
                           "domain"),
        "account_crm_id": ("accountcrmid", "accountid", "primaryassociatedcompanyid",
                           "associatedcompanyid", "companyid"),
        "account_name": ("accountname", "companyname", "company", "associatedcompany",
                         "personorganization", "organization"),
        "created_at": ("createddate", "createdate", "created", "createdat",
                       "personpersoncreated", "personcreated"),
    },
    "opportunities": {
        "crm_id": ("crmid", "recordid", "opportunityid", "dealid", "id", "hsobjectid"),
        "name": ("name", "dealname", "opportunityname", "dealtitle", "title"),
        "amount": ("amount", "dealamount", "dealvalue", "value"),
        "stage": ("stage", "dealstage", "stagename"),
        "created_at": ("createddate", "createdate", "created", "createdat", "dealdealcreated",
                       "dealcreated", "addtime"),
        "closed_at": ("closedate", "closeddate", "closedat", "dealdealclosedon",
                      "dealclosedon", "closetime", "dealwontime", "wontime"),
        "is_closed": ("isclosed", "closed", "hsisclosed"),
        "won": ("iswon", "won", "isclosedwon", "hsisclosedwon"),
        # won / lost / open (Pipedrive's deal status, Close's status type): the outcome
        # when there is no boolean column and the stage names are the team's own
        "status": ("status", "dealstatus", "statustype"),
        "owner": ("owner", "dealowner", "opportunityowner", "ownername", "ownerid"),
        "account_domain": ("accountdomain", "companydomain", "domain", "website"),
        "account_crm_id": ("accountcrmid", "accountid", "primaryassociatedcompanyid",
                           "associatedcompanyidsprimary", "associatedcompanyid", "companyid"),
        "account_name": ("accountname", "associatedcompany", "companyname", "company",
                         "dealorganization", "organization", "organizationname", "orgname"),
    },
}

REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    # each inner tuple: at least one of these fields must be present
    "accounts": (("domain", "name"),),
    "contacts": (("email",),),
    "opportunities": (("crm_id",), ("account_domain", "account_crm_id", "account_name")),
}

_NORMALISE = re.compile(r"[^a-z0-9]")
_WON_STAGES = {"closedwon", "won"}
_LOST_STAGES = {"closedlost", "lost"}


def normalise_header(header: str) -> str:
    return _NORMALISE.sub("", header.lower())


def parsers(mark: str) -> dict[str, Callable[[str], Any]]:
    """The parser of each field, for a file whose decimal mark is *mark* (see
    :func:`~demandloop.collect.values.decimal_mark`): a comma file's numbers and dates are
    read as the United States write them, a semicolon file's as continental Europe does
    (``01/02/2026`` is the 1st of February there)."""
    number, day_first = partial(as_number, decimal=mark), mark == ","
    stamp = partial(parse_timestamp, day_first=day_first)
    return {
        "employees": partial(as_integer, decimal=mark), "revenue": number, "amount": number,
        "target": as_boolean, "is_closed": as_boolean, "won": as_boolean,
        "created_at": stamp, "closed_at": stamp, "domain": as_domain,
        "account_domain": as_domain, "email": as_email, "technologies": as_technologies,
        "country": as_country,
    }


@dataclass
class CrmRows:
    """Parsed rows of one CRM file: field -> value dicts, with their file line numbers."""

    kind: str
    path: Path
    rows: list[dict[str, Any]]
    lines: list[int]
    columns: dict[str, str]  # field -> the header it came from
    ignored: list[str]
    #: rows left out, as ``FILE:LINE: why`` (contacts without an email address)
    skipped: list[str] = dataclasses.field(default_factory=list)


def parse_mapping(pairs: list[str], kind: str) -> dict[str, str]:
    """``["Col A=domain", ...]`` -> {"Col A": "domain"}, checking every field name."""
    mapping: dict[str, str] = {}
    fields = ALIASES[kind]
    for pair in pairs:
        if "=" not in pair:
            raise InputError(f"--map '{pair}' is not COLUMN=FIELD",
                             hint=f"fields for {kind}: {', '.join(fields)}")
        col, fld = (p.strip() for p in pair.rsplit("=", 1))
        if fld not in fields:
            raise InputError(f"--map '{pair}': unknown field '{fld}'",
                             hint=f"fields for {kind}: {', '.join(fields)}")
        mapping[col] = fld
    return mapping


def read_crm_csv(path: Path, kind: str, mapping: dict[str, str] | None = None) -> CrmRows:
    """Read and check a CRM export; raises :class:`InputError` listing every bad row."""
    if kind not in KINDS:
        raise InputError(f"unknown CRM object '{kind}'", hint=f"one of {', '.join(KINDS)}")
    if not path.is_file():
        raise InputError(f"{path}: no such file", hint="check the path")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        try:
            separator = delimiter(fh)
            reader = csv.reader(fh, delimiter=separator)
            parse = parsers(decimal_mark(separator))  # (a comma in a semicolon file)
            header = next(reader, None)
            if not header:
                raise InputError(f"{path}: empty file, expected a header row")
            columns, ignored = _match_columns(path, kind, header, mapping or {})
            index = {f: header.index(c) for f, c in columns.items()}
            rows, lines, problems = [], [], []
            for record in _records(reader):
                line, values = record
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    problems.append(f"{path}:{line}: expected {len(header)} columns, "
                                    f"found {len(values)}")
                    continue
                row: dict[str, Any] = {}
                for fld, i in index.items():
                    try:
                        row[fld] = parse.get(fld, as_text)(values[i])
                    except ValueError as exc:
                        problems.append(f"{path}:{line}: column '{columns[fld]}': {exc}")
                rows.append(row)
                lines.append(line)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text ({exc.reason})",
                             hint="export the CSV as UTF-8") from exc
        except csv.Error as exc:
            raise InputError(f"{path}: not a readable CSV: {exc}") from exc
    skipped: list[str] = []
    if kind == "contacts":
        # a contact without an email (a phone-only one, common in CRM exports) is left out
        # and listed: a person is known by their email, and refusing the file for it left
        # a real export impossible to import. One whose email is malformed stays a problem
        # (its parse failed: the row holds no "email" at all, where a blank one holds None).
        keep = [i for i, r in enumerate(rows) if r.get("email") or "email" not in r]
        kept = set(keep)
        skipped = [f"{path}:{lines[i]}: no email address (a person is known by theirs)"
                   for i in range(len(rows)) if i not in kept]
        if rows and not keep:
            raise InputError(f"{path}: no contact has an email address; nothing was imported",
                             hint="map the email column with --map 'YOUR COLUMN=email'")
        rows, lines = [rows[i] for i in keep], [lines[i] for i in keep]
    problems += _check_rows(path, kind, rows, lines)
    if problems:
        raise InputError(
            f"{path}: {len(problems)} problem(s); nothing was imported",
            hint="fix the rows listed and import again",
            problems=problems[:20] + ([f"... and {len(problems) - 20} more"]
                                      if len(problems) > 20 else []),
        )
    return CrmRows(kind, path, rows, lines, columns, ignored, skipped)


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    start = reader.line_num + 1
    for values in reader:
        yield start, values
        start = reader.line_num + 1


def _match_columns(path: Path, kind: str, header: list[str],
                   mapping: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    for col in mapping:
        if col not in header:
            raise InputError(f"{path}: --map names column '{col}', which the file does not have",
                             hint=f"columns: {', '.join(header)}")
    columns: dict[str, str] = {fld: col for col, fld in mapping.items()}
    for fld, aliases in ALIASES[kind].items():
        if fld in columns:
            continue
        for alias in aliases:  # aliases are in priority order
            hit = next((c for c in header if c not in mapping and normalise_header(c) == alias
                        and c not in columns.values()), None)
            if hit:
                columns[fld] = hit
                break
    for group in REQUIRED[kind]:
        if not any(f in columns for f in group):
            need = " or ".join(f"'{f}'" for f in group)
            raise InputError(
                f"{path}: no column for {need} among {', '.join(header)}",
                hint=f"rename a column, or pass --map 'YOUR COLUMN={group[0]}'",
            )
    twice = next((c for c in columns.values() if header.count(c) > 1), None)
    if twice is not None:  # (the first was taken, the other dropped, in silence)
        raise InputError(f"{path}: the header names column '{twice}' {header.count(twice)} "
                         "times: which of them to import cannot be told",
                         hint="rename the column that is not meant, or delete it")
    ignored = [c for c in header if c not in columns.values()]
    return columns, ignored


def _check_rows(path: Path, kind: str, rows: list[dict[str, Any]], lines: list[int]) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    for row, line in zip(rows, lines, strict=True):
        if kind == "accounts" and not (row.get("domain") or row.get("name")):
            problems.append(f"{path}:{line}: needs a domain or a name")
        if kind == "opportunities":
            if not row.get("crm_id"):
                problems.append(f"{path}:{line}: needs an opportunity id")
            if not (row.get("account_domain") or row.get("account_crm_id")
                    or row.get("account_name")):
                problems.append(f"{path}:{line}: needs the account (domain, id or name)")
            _derive_outcome(row)
        key = row.get("crm_id") or row.get("domain") or row.get("email")
        if key:
            if key in seen:
                problems.append(f"{path}:{line}: duplicate of line {seen[key]} ('{key}')")
            seen[key] = line
    return problems


def _derive_outcome(row: dict[str, Any]) -> None:
    """Fill is_closed/won from the status (won, lost, open) or the stage name when the
    export has no boolean columns. (A Pipedrive export's stages are the team's own names,
    its outcome the status: every deal of one was imported open.)"""
    stage = normalise_header(row.get("stage") or "")
    status = normalise_header(row.pop("status", None) or "")
    if row.get("won") is None:
        row["won"] = stage in _WON_STAGES or status in _WON_STAGES
    if row.get("is_closed") is None:
        row["is_closed"] = (bool(row["won"]) or stage in _LOST_STAGES
                            or status in _LOST_STAGES)

"""IP-range files (``demandloop import ip-ranges``): ``cidr`` or ``start,end`` columns, a
``domain`` and/or ``organisation``, and optionally since when each range was known."""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from demandloop.collect.values import parse_timestamp
from demandloop.csvfiles import blank, delimiter, ragged
from demandloop.domains import canonical_domain
from demandloop.errors import InputError
from demandloop.ipaddr import ip_key, range_keys


@dataclass
class UserRange:
    start: int
    end: int
    domain: str | None
    organisation: str | None
    line: int
    known_since: dt.datetime | None = None


#: headers of the optional column saying since when a range was known (for backtests)
KNOWN_SINCE = ("known_since", "since", "valid_from", "added", "created_date")


def read_ip_ranges(path: Path) -> list[UserRange]:
    """Read a user IP-range file: ``cidr`` or ``start,end`` columns plus ``domain`` and/or
    ``organisation``, and optionally ``known_since`` (a date: since when the range was known;
    a point-in-time score before it does not use the range; without it, the import time).
    Malformed blocks and overlapping ranges are errors naming the line."""
    if not path.is_file():
        raise InputError(f"{path}: no such file", hint="check the path")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        sep = delimiter(fh)
        reader = csv.DictReader(fh, delimiter=sep)
        cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        has_cidr, has_pair = "cidr" in cols, "start" in cols and "end" in cols
        if not (has_cidr or has_pair) or not ({"domain", "organisation", "organization"}
                                              & cols.keys()):
            raise InputError(
                f"{path}: needs a 'cidr' column (or 'start' and 'end') and a 'domain' or "
                f"'organisation' column; found {', '.join(reader.fieldnames or []) or 'none'}",
                hint="e.g. header: cidr,domain,organisation",
            )
        org_col = cols.get("organisation") or cols.get("organization")
        since_col = next((cols[c] for c in KNOWN_SINCE if c in cols), None)
        ranges, problems = [], []
        width = len(reader.fieldnames or [])
        for row in reader:
            line = reader.line_num
            if blank(row):
                continue
            wrong = ragged(row, width)  # (a short row read as "'None' is not a CIDR block")
            if wrong is not None:
                problems.append(f"{path}:{line}: {wrong}")
                continue
            try:
                if has_cidr and (row[cols["cidr"]] or "").strip():
                    start, end = range_keys(row[cols["cidr"]])
                else:
                    s, e = ip_key(row[cols["start"]] or ""), ip_key(row[cols["end"]] or "")
                    if s is None or e is None or s > e:
                        raise ValueError(f"'{row[cols['start']]}-{row[cols['end']]}' is not a "
                                         "valid start-end range")
                    start, end = s, e
            except (ValueError, KeyError) as exc:
                msg = str(exc) if "valid" in str(exc) or "outside" in str(exc) else (
                    f"'{row.get(cols.get('cidr', ''), '')}' is not a CIDR block")
                problems.append(f"{path}:{line}: {msg}")
                continue
            raw_domain = (row.get(cols["domain"]) or "") if "domain" in cols else ""
            domain = canonical_domain(raw_domain) if raw_domain.strip() else None
            if raw_domain.strip() and domain is None:
                problems.append(f"{path}:{line}: '{raw_domain}' is not a domain")
                continue
            org = (row.get(org_col) or "").strip() or None if org_col else None
            if not domain and not org:
                problems.append(f"{path}:{line}: needs a domain or an organisation")
                continue
            try:
                # (day first in a semicolon file, as the CRM and spend imports read it:
                # European Excel writes 03/04/2026 for the 3rd of April)
                since = parse_timestamp(row.get(since_col) or "", day_first=sep == ";"
                                        ) if since_col else None
            except ValueError as exc:
                problems.append(f"{path}:{line}: {since_col}: {exc}")
                continue
            ranges.append(UserRange(start, end, domain, org, line, since))
    ordered = sorted(ranges, key=lambda r: r.start)
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        if cur.start <= prev.end:
            problems.append(f"{path}:{cur.line}: range overlaps line {prev.line}")
    if problems:
        raise InputError(f"{path}: {len(problems)} problem(s); nothing was imported",
                         hint="fix the lines listed", problems=problems[:20])
    return ranges


"""Ad and program spend from a CSV: date, channel, campaign, spend, impressions, clicks.

The export of any ad platform or a finance sheet works once its columns are recognised:
headers are normalised like the CRM importer's (``Amount spent (USD)`` -> ``spend``, ``Day``
-> ``date``, ``Campaign name`` -> ``campaign``). Channels are lower-cased with ``_`` for spaces
so they meet the touch channels (``Paid Social`` -> ``paid_social``). Every bad row is reported
as ``FILE:LINE: reason`` and a file with problems writes nothing.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demandloop.collect.crm import normalise_header
from demandloop.collect.values import as_integer, as_number, decimal_mark, parse_timestamp
from demandloop.csvfiles import delimiter
from demandloop.errors import InputError

ALIASES: dict[str, tuple[str, ...]] = {
    "date": ("date", "day", "reportingdate", "reportingstarts", "startdate"),
    "channel": ("channel", "platform", "source", "network"),
    "campaign": ("campaign", "campaignname", "campaignid"),
    "spend": ("spend", "cost", "amount", "amountspent", "amountspentusd", "costusd",
              "totalspent"),
    "impressions": ("impressions", "impr"),
    "clicks": ("clicks", "linkclicks"),
}
REQUIRED = ("date", "channel", "spend")


@dataclass
class SpendRows:
    path: Path
    rows: list[dict[str, Any]]


def channel_key(value: str) -> str:
    """``Paid Social`` -> ``paid_social``."""
    return re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_")


def read_spend_csv(path: Path) -> SpendRows:
    """Parse and check a spend CSV (see the module docstring)."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    with handle:
        separator = delimiter(handle)
        reader = csv.reader(handle, delimiter=separator)
        mark = decimal_mark(separator)  # (a comma in a semicolon file)
        header = next(reader, None)
        if not header:
            raise InputError(f"{path} is empty", hint="expected a header: "
                             "date,channel,campaign,spend,impressions,clicks")
        names = [normalise_header(h) for h in header]
        columns: dict[str, int] = {}
        for field, aliases in ALIASES.items():
            for i, n in enumerate(names):
                if n in aliases and field not in columns:
                    columns[field] = i
        missing = [f for f in REQUIRED if f not in columns]
        if missing:
            raise InputError(f"{path}: no column for {', '.join(missing)} in the header "
                             f"({', '.join(header)})",
                             hint="expected date,channel,campaign,spend,impressions,clicks")
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        for record in reader:
            line = reader.line_num
            if not any(v.strip() for v in record):
                continue
            get = {f: (record[i] if i < len(record) else "") for f, i in columns.items()}
            try:
                day = parse_timestamp(get["date"], day_first=mark == ",")
                spend = as_number(get["spend"], mark)
                channel = channel_key(get["channel"])
                if day is None or spend is None or not channel:
                    raise ValueError("date, channel and spend are required")
                if spend < 0:
                    raise ValueError(f"spend {spend} is negative")
                rows.append({
                    "date": day.date(), "channel": channel,
                    "campaign": get.get("campaign", "").strip() or None, "spend": spend,
                    "impressions": as_integer(get.get("impressions", ""), mark),
                    "clicks": as_integer(get.get("clicks", ""), mark),
                })
            except ValueError as e:
                problems.append(f"{path}:{line}: {e}")
    if problems:
        raise InputError(f"{path}: {len(problems)} bad row(s); nothing was imported",
                         problems=problems[:20])
    return SpendRows(path, rows)

"""The delimiter of a CSV a user exports: a comma, or what a spreadsheet in their locale
writes instead.

Excel in most of continental Europe saves "CSV" with semicolons (the comma is the decimal
mark there), and many tools export tab-separated files under a ``.csv`` name. Refusing them
with "no column for 'domain' among Domain;Name;Industry" made the user guess why. The
header row says which it is: its names hold none of these characters, so the most frequent
one outside quotes is the delimiter. Hand-written rather than :class:`csv.Sniffer`, which
guesses from the data rows too and takes a single-column file's letters for delimiters.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

#: what separates columns, the comma first (it wins a tie)
DELIMITERS = (",", ";", "\t", "|")
_QUOTED = re.compile(r'"(?:[^"]|"")*"')


def delimiter(fh: TextIO) -> str:
    """The delimiter of the CSV open in *fh*, from its first line; *fh* is left where it
    was (its start)."""
    start = fh.tell()
    header = _QUOTED.sub("", fh.readline())
    fh.seek(start)
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])  # (the first of equals: the comma)
    return best if counts[best] else ","


def ragged(row: dict[Any, Any], width: int) -> str | None:
    """What is wrong with a :class:`csv.DictReader` *row* of a file whose header has *width*
    columns when it has not one cell per column, else None. DictReader fills a short row
    with None and keeps a long one's extra cells under the key None, so a line cut off (an
    interrupted download) or a stray delimiter reads on as missing values."""
    extra = row.get(None) or []
    missing = sum(v is None for k, v in row.items() if k is not None)
    if not extra and not missing:
        # (judged by what is missing or left over, not by counting the row's keys: a
        # header naming a column twice makes one key of two cells)
        return None
    return (f"{width - missing + len(extra)} cell(s) where the header has {width} (a line "
            "cut off, a stray delimiter or a quote not closed?)")


def blank(row: dict[Any, Any]) -> bool:
    """Whether a :class:`csv.DictReader` *row* has nothing in any cell: the ``,,`` rows a
    spreadsheet writes under its data, which the CRM imports (pandas) skip too. (DictReader
    skips only a line with no delimiter.)"""
    return not any(str(v).strip() for v in row.values() if v)


#: what a spreadsheet reads as the start of a formula in a cell
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """*value* as a CSV cell a spreadsheet shows as text: a string a spreadsheet would run
    as a formula gets a leading apostrophe (OWASP's advice on CSV injection). Company
    names, titles and such can come from a visitor's browser (a ``group`` call's traits);
    ``=HYPERLINK(...)`` in an export a marketer opens in Excel must not be a link."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def cells(frame: Any) -> Any:
    """*frame* (a pandas DataFrame) with :func:`cell` applied to its text columns."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype).startswith(("string", "str")):
            out[col] = out[col].map(cell)
    return out

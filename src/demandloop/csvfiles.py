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
from typing import TextIO

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

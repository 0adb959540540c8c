"""Cell parsers for CSV imports: dates, numbers, whole numbers, true/false, text, domains,
emails and technology lists. Each returns None for an empty cell and raises ``ValueError``
with a message naming the value for a bad one (the reader adds ``FILE:LINE``)."""

from __future__ import annotations

import datetime as dt
import re

from demandloop.domains import canonical_domain

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


#: dates with slashes as the United States write them, and as the rest of the world does
_MONTH_FIRST = ("%m/%d/%Y %H:%M", "%m/%d/%Y")
_DAY_FIRST = ("%d/%m/%Y %H:%M", "%d/%m/%Y")


def parse_timestamp(value: str, day_first: bool = False) -> dt.datetime | None:
    """ISO dates/times (``Z`` or offsets, converted to UTC), ``MM/DD/YYYY``,
    ``DD/MM/YYYY``, ``DD.MM.YYYY`` and ``DD-MM-YYYY``. A date with slashes is read month
    first, or day first with *day_first* (a semicolon-separated file: European Excel);
    the other order when the first cannot be (``31/12/2025`` is the 31st either way)."""
    v = value.strip()
    if not v:
        return None
    try:
        ts = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        slashes = (*_DAY_FIRST, *_MONTH_FIRST) if day_first else (*_MONTH_FIRST, *_DAY_FIRST)
        for fmt in (*slashes, "%d.%m.%Y %H:%M", "%d.%m.%Y", "%d-%m-%Y %H:%M:%S",
                    "%d-%m-%Y %H:%M", "%d-%m-%Y", "%Y/%m/%d"):
            try:
                ts = dt.datetime.strptime(v, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"'{v}' is not a date (use YYYY-MM-DD or ISO-8601)") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.UTC).replace(tzinfo=None)
    return ts


#: what a spreadsheet or CRM puts around and inside a number that is not part of it:
#: currency signs, spaces (also the no-break ones French and Swiss formats group with) and
#: the Swiss apostrophe
_NOT_DIGITS = str.maketrans("", "", " \u00a0\u202f\u2009'\u2019$€£¥")
#: an ISO currency code before or after the number ("EUR 1.250,00", "1,250.00 USD")
_CODE = re.compile(r"^[A-Za-z]{3}(?=[\d\s.,+-])|(?<=[\d\s.,])[A-Za-z]{3}$")


def decimal_mark(delimiter: str) -> str:
    """The decimal mark of a CSV separated by *delimiter*: a comma where the file is
    separated by semicolons (Excel in most of continental Europe, where the comma is the
    decimal mark), else a point."""
    return "," if delimiter == ";" else "."


def as_number(value: str, decimal: str = ".") -> float | None:
    """A number as spreadsheets and CRMs export it: ``1250.75``, ``$1,250.75``,
    ``1.250,75 €``, ``1 250,75``, ``1'250.75``, ``EUR 1.234.567,89``.

    With both marks, the last is the decimal mark; one mark several times groups
    thousands. A single mark once is the file's *decimal* mark (see :func:`decimal_mark`),
    or the other one: with three digits after it, it groups thousands (``3.400`` in a
    semicolon file, ``3,400`` in a comma one), else it is a decimal mark all the same
    (``120.5`` in a semicolon file). Before, every comma was dropped: ``99,90`` from a
    European export became 9990."""
    v = _CODE.sub("", value.strip()).translate(_NOT_DIGITS)
    if not v:
        return None
    sign = v[0] if v[0] in "+-" else ""
    body = v[len(sign):]
    commas, points = body.count(","), body.count(".")
    if commas and points:
        mark = "," if body.rfind(",") > body.rfind(".") else "."
        whole, _, fraction = body.rpartition(mark)
        whole = _ungrouped(whole, "." if mark == "," else ",", value)
        body = f"{whole}.{fraction}"
    elif commas + points > 1:
        body = _ungrouped(body, "," if commas else ".", value)
    elif commas + points == 1:
        mark = "," if commas else "."
        whole, _, fraction = body.partition(mark)
        grouped = (mark != decimal and len(fraction) == 3 and fraction.isdigit()
                   and 1 <= len(whole) <= 3)
        body = f"{whole}{fraction}" if grouped else f"{whole}.{fraction}"
    if not re.fullmatch(r"\d*\.?\d+(?:[eE][+-]?\d+)?", body):
        raise ValueError(f"'{value}' is not a number")
    return float(sign + body)


def _ungrouped(digits: str, mark: str, value: str) -> str:
    """*digits* grouped in thousands by *mark* (``1,234,567``), without the marks."""
    if not re.fullmatch(rf"\d{{1,3}}(?:{re.escape(mark)}\d{{3}})+", digits):
        raise ValueError(f"'{value}' is not a number")
    return digits.replace(mark, "")


def as_integer(value: str, decimal: str = ".") -> int | None:
    n = as_number(value, decimal)
    if n is None:
        return None
    if n != int(n) or n < 0:
        raise ValueError(f"'{value}' is not a whole number")
    return int(n)


def as_boolean(value: str) -> bool | None:
    v = value.strip().lower()
    if not v:
        return None
    if v in ("true", "yes", "y", "1", "t"):
        return True
    if v in ("false", "no", "n", "0", "f"):
        return False
    raise ValueError(f"'{value}' is not true/false")


def as_text(value: str) -> str | None:
    return value.strip() or None


def as_domain(value: str) -> str | None:
    if not value.strip():
        return None
    d = canonical_domain(value)
    if d is None:
        raise ValueError(f"'{value}' is not a domain or website")
    return d


def as_email(value: str) -> str | None:
    v = value.strip().lower()
    if not v:
        return None
    if not _EMAIL.match(v):
        raise ValueError(f"'{value}' is not an email address")
    return v


def as_technologies(value: str) -> list[str] | None:
    parts = [p.strip() for p in re.split(r"[;|,]", value) if p.strip()]
    return parts or None


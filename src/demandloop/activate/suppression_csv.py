"""Reading a suppression list (an ESP's export): a CSV with an ``email`` column."""

from __future__ import annotations

import csv
from pathlib import Path

from demandloop.csvfiles import blank, delimiter
from demandloop.errors import InputError


def read_emails(path: Path) -> list[str]:
    """Every address of the file's ``email`` (or ``email address``) column; a file with a
    row that is not an address raises, so a bad file imports nothing (a row of empty cells,
    which spreadsheets write, is no row)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter(fh))
            columns = {c.strip().lower(): c for c in reader.fieldnames or []}
            column = columns.get("email") or columns.get("email address")
            if column is None:
                raise InputError(f"{path}: no 'email' column (columns: "
                                 f"{', '.join(reader.fieldnames or []) or 'none'})",
                                 hint="export the list with an 'email' header")
            emails = []
            for row in reader:
                line = reader.line_num  # (a quoted cell may span lines)
                if blank(row):
                    continue
                value = (row.get(column) or "").strip()
                if "@" not in value:
                    raise InputError(f"{path}:{line}: not an email address: '{value}'",
                                     hint="fix the row; nothing was imported")
                emails.append(value)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text", hint="export the list as UTF-8 CSV") \
            from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    return emails

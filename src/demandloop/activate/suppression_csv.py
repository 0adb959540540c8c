"""Suppression entries: an address, or ``@domain`` for everyone at a domain (as Outreach's
and Apollo's domain blocklists: a competitor, a customer under contract, a company that asked
never to be mailed); and reading a suppression list (an ESP's export): a CSV with an
``email`` column."""

from __future__ import annotations

import csv
from pathlib import Path

from demandloop.activate.booking import mail_address
from demandloop.csvfiles import blank, delimiter
from demandloop.domains import canonical_domain
from demandloop.errors import InputError

#: what a value that is not an entry is told
ENTRY_HINT = "give addresses such as jane@acme.com, or @acme.com for everyone at acme.com"


def entry(value: str) -> str | None:
    """*value* as the suppression list keeps it (lower case), or None when it is neither an
    address nor a domain: ``Jane@Acme.com`` -> ``jane@acme.com``; ``@acme.com`` and
    ``*@acme.com`` -> ``@acme.com`` (that domain exactly, not its subdomains). Text with an
    ``@`` that was no address (``jane@``, ``bad``) was kept, and matched no one."""
    v = value.strip().lower()
    if v.startswith("*@"):
        v = v[1:]
    if v.startswith("@"):
        domain = canonical_domain(v[1:]) if "/" not in v and ":" not in v else None
        return "@" + domain if domain and "." in domain else None
    address = mail_address(v)
    return address.lower() if address else None


def domain_key(email: str) -> str:
    """The domain entry that suppresses *email*: ``jane@acme.com`` -> ``@acme.com``."""
    return "@" + email.rpartition("@")[2].strip().lower()


def read_emails(path: Path) -> list[str]:
    """Every entry of the file's ``email`` (or ``email address``) column (:func:`entry`); a
    file with a row that is neither an address nor a domain raises, so a bad file imports
    nothing (a row of empty cells, which spreadsheets write, is no row)."""
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
                found = entry(value)
                if found is None:
                    raise InputError(f"{path}:{line}: not an email address or @domain: "
                                     f"'{value[:80]}'",
                                     hint="fix the row; nothing was imported")
                emails.append(found)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text", hint="export the list as UTF-8 CSV") \
            from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    return emails

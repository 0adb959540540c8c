"""The dashboard's users: an email, a role and an argon2 password hash each.

Kept in ``users.json`` beside the database (mode 0600), like write keys and API tokens, so
``demandloop users create`` works while the server holds the database, and a disabled user
is refused within a second. Passwords are hashed with argon2id (``argon2-cffi``'s defaults,
the OWASP recommendation); the password itself is never stored or echoed.

Roles: ``admin`` (everything, settings included), ``marketer`` (everything but settings),
``rep`` (reads only).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from demandloop.errors import NotFoundError, UsageError
from demandloop.serve.keys import WatchedRecords, read_records, write_records

USERS_FILE = "users.json"
ROLES = ("rep", "marketer", "admin")
MIN_PASSWORD = 10
_hasher = PasswordHasher()
#: verified against when the email is unknown, so a wrong email costs what a wrong
#: password costs (no timing answer to "does this user exist")
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    role: str
    created_at: str
    disabled_at: str | None

    def may(self, role: str) -> bool:
        """Has this user at least *role*'s rights?"""
        return ROLES.index(self.role) >= ROLES.index(role)


def _user(r: dict[str, Any]) -> User:
    return User(r["id"], r["email"], r.get("name", ""), r["role"], r["created_at"],
                r.get("disabled_at"))


def check(directory: Path, email: str, role: str) -> str:
    """*email* (normalised) when a user with it and *role* may be created; else the
    UsageError saying why. Checked before a password is asked for, and again as the user is
    written."""
    email = email.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise UsageError(f"'{email[:80]}' is not an email address")
    if role not in ROLES:
        raise UsageError(f"unknown role '{role[:40]}'", hint=f"use one of {', '.join(ROLES)}")
    if any(r["email"] == email and not r.get("disabled_at")
           for r in read_records(directory / USERS_FILE, "users")):
        raise UsageError(f"a user {email} exists already",
                         hint=f"to give them a new password or role, run 'demandloop users "
                         f"disable {email}' first, then create them again")
    return email


def create(directory: Path, email: str, role: str, password: str, name: str = "") -> User:
    """A new user (an email may hold one active account). A disabled user's email may be
    given an account again: the way to a new password or another role. The disabled record
    stays, listed, and its sessions stay refused (they name its id, not the email)."""
    email = check(directory, email, role)
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"the password is shorter than {MIN_PASSWORD} characters",
                         hint="choose a longer one (a passphrase is easiest)")
    path = directory / USERS_FILE
    rows = read_records(path, "users")
    record = {"id": secrets.token_hex(6), "email": email,
              "name": " ".join(name.split()), "role": role,  # (one row per user in a list)
              "hash": _hasher.hash(password),
              "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "disabled_at": None}
    rows.append(record)
    write_records(path, "users", rows)
    return _user(record)


def list_users(directory: Path) -> list[User]:
    return [_user(r) for r in read_records(directory / USERS_FILE, "users")]


def disable(directory: Path, email: str) -> tuple[User, bool]:
    """Disable a user: their sessions stop working within a second. Returns the user, and
    whether this call disabled them (False: they already were)."""
    path = directory / USERS_FILE
    rows = read_records(path, "users")
    mine = [r for r in rows if r["email"] == email.strip().lower()]
    if not mine:
        raise NotFoundError(f"no user {email[:80]}", hint="see 'demandloop users list'")
    # the active one (an email disabled and created again has several records)
    active = next((r for r in mine if r.get("disabled_at") is None), None)
    if active is None:
        return _user(mine[-1]), False
    active["disabled_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    write_records(path, "users", rows)
    return _user(active), True


class UserRing(WatchedRecords):
    """The active users for the server, re-read when the file changes."""

    field = "users"

    def __init__(self, directory: Path, recheck_seconds: float = 1.0) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        super().__init__(directory / USERS_FILE, recheck_seconds)

    def _load(self, rows: list[dict[str, Any]]) -> None:
        self._rows = {r["id"]: r for r in rows if not r.get("disabled_at")}

    def by_id(self, user_id: str) -> User | None:
        self._refresh()
        r = self._rows.get(user_id)
        return None if r is None else _user(r)

    def verify(self, email: str, password: str) -> User | None:
        """The active user with this email and password, or None."""
        self._refresh(force=True)
        email = email.strip().lower()
        found = next((r for r in self._rows.values() if r["email"] == email), None)
        try:
            _hasher.verify(found["hash"] if found else _DUMMY, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return _user(found) if found else None

    def __len__(self) -> int:
        self._refresh()
        return len(self._rows)

"""API tokens: the credentials of ``/api/v1``, each with scopes, apart from write keys.

A write key (``keys.json``) lets an SDK *send* events and nothing else; an API token lets a
person or a script *read* (``read``), change data (``write``: imports, rescore) or run
commands as the CLI does (``admin``). Each scope includes the ones before it.

Kept in ``api-tokens.json`` beside the database (mode 0600), for the reason write keys are:
``demandloop tokens create`` must work while ``demandloop serve`` holds the database. A token
is ``dlt_<id>_<secret>``; only the SHA-256 of the whole token is stored, shown once at
creation. A request's token is found by its id and its hash then compared with
:func:`hmac.compare_digest`, so the comparison takes the same time whatever the guess.
The server re-reads the file when it changes: a revoked token stops working within a second.
A token may be given a lifetime (``--expires-in DAYS``); past it, the API refuses it with
``token_expired``, which says what to do, rather than as an unknown token.

When each token was last used is kept so that a token nobody uses any more can be found
and revoked (``tokens list``, the dashboard's Settings), in ``api-tokens-used.json``
(see :class:`demandloop.serve.keys.UseLog`).
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demandloop.errors import NotFoundError, UsageError
from demandloop.serve.keys import (
    UseLog,
    WatchedRecords,
    digest,
    entries,
    read_records,
    read_uses,
    write_records,
)

TOKENS_FILE = "api-tokens.json"
#: when each token was last used (see the module docstring)
USED_FILE = "api-tokens-used.json"
#: each scope includes every scope before it
SCOPES = ("read", "write", "admin")
PREFIX = "dlt_"


@dataclass
class TokenInfo:
    id: str
    name: str
    scope: str
    created_at: str
    revoked_at: str | None
    expires_at: str | None = None
    last_used_at: str | None = None


def allows(granted: str, needed: str) -> bool:
    """Does a token of scope *granted* allow what needs *needed*?"""
    return SCOPES.index(granted) >= SCOPES.index(needed)


def _info(r: dict[str, Any], used: dict[str, str] | None = None) -> TokenInfo:
    return TokenInfo(r["id"], r.get("name", ""), r["scope"], r["created_at"],
                     r.get("revoked_at"), r.get("expires_at"), (used or {}).get(r["id"]))


def last_used(directory: Path) -> dict[str, str]:
    """Token id -> when a server last saw it used (ISO 8601, UTC, to the second)."""
    return read_uses(directory / USED_FILE)


#: the longest lifetime ``--expires-in`` gives (ten years; no option: no end)
MAX_DAYS = 3650


def create(directory: Path, scope: str, name: str = "", expires_days: int | None = None
           ) -> tuple[str, TokenInfo]:
    """A new token with *scope* (refused after *expires_days* days when given): returns the
    token (shown once) and its record."""
    if scope not in SCOPES:
        raise UsageError(f"unknown scope '{scope[:40]}'", hint=f"use one of {', '.join(SCOPES)}")
    if expires_days is not None and not 1 <= expires_days <= MAX_DAYS:
        raise UsageError(f"--expires-in must be between 1 and {MAX_DAYS} days, got "
                         f"{expires_days}", hint="leave it out for a token without an end")
    token_id = secrets.token_hex(4)
    token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    path = directory / TOKENS_FILE
    rows = read_records(path, "tokens")
    now = dt.datetime.now(dt.UTC)
    # one line: a list shows one row per token
    record = {"id": token_id, "hash": digest(token), "scope": scope, "name": " ".join(name.split()),
              "created_at": now.isoformat(timespec="seconds"), "revoked_at": None,
              "expires_at": (now + dt.timedelta(days=expires_days)).isoformat(
                  timespec="seconds") if expires_days is not None else None}
    rows.append(record)
    write_records(path, "tokens", rows)
    return token, _info(record)


def list_tokens(directory: Path) -> list[TokenInfo]:
    """Every token of the workspace, revoked ones too, with when each was last used."""
    used = last_used(directory)
    return entries(directory / TOKENS_FILE, "tokens", lambda r: _info(r, used))


def revoke(directory: Path, token_or_id: str) -> tuple[TokenInfo, bool]:
    """Revoke by the token itself or its id (from ``tokens list``): its record, and
    whether this call revoked it (False: it was already)."""
    path = directory / TOKENS_FILE
    rows = read_records(path, "tokens")
    for r in rows:
        if r["id"] == token_or_id or r["hash"] == digest(token_or_id):
            newly = r.get("revoked_at") is None
            if newly:
                r["revoked_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                write_records(path, "tokens", rows)
            return _info(r), newly
    raise NotFoundError(f"no API token '{token_or_id[:12]}'",
                        hint="see 'demandloop tokens list'")


class TokenRing(WatchedRecords):
    """Token -> scope lookups for the API, re-read when the file changes. *extra* holds
    tokens that live only in memory (the server's own admin token for the CLI)."""

    field = "tokens"

    def __init__(self, directory: Path, extra: dict[str, str] | None = None,
                 recheck_seconds: float = 1.0) -> None:
        # id -> (hash, scope, expires_at or None)
        self._active: dict[str, tuple[str, str, dt.datetime | None]] = {}
        self._extra = {_id_of(t): (digest(t), s, None) for t, s in (extra or {}).items()}
        self.uses = UseLog(directory / USED_FILE)
        super().__init__(directory / TOKENS_FILE, recheck_seconds)

    def _load(self, rows: list[dict[str, Any]]) -> None:
        self._active = {r["id"]: (r["hash"], r["scope"], _when(r.get("expires_at")))
                        for r in rows if not r.get("revoked_at") and r.get("scope") in SCOPES}

    def scope(self, token: str | None) -> str | None:
        """The scope *token* grants, or None (unknown, revoked, expired, malformed)."""
        scope, expired = self.check(token)
        return None if expired else scope

    def check(self, token: str | None) -> tuple[str | None, dt.datetime | None]:
        """The scope *token* was given (None: unknown, revoked, malformed), and when it
        expired if it has (else None)."""
        if not token or not token.startswith(PREFIX) or len(token) > 200:
            return None, None
        self._refresh()
        token_id = _id_of(token)
        found = self._extra.get(token_id) or self._active.get(token_id)
        if found is None:
            # a token created a moment ago works at once: one stat() says if the file moved
            self._refresh(now=True)
            found = self._active.get(token_id)
        if found is None:
            return None, None
        expected, scope, expires = found
        if not hmac.compare_digest(expected, digest(token)):
            return None, None
        if expires is not None and dt.datetime.now(dt.UTC) >= expires:
            return scope, expires
        if token_id not in self._extra:  # (the server's own token is no user's)
            self.uses.note(token_id)
        return scope, None


def _when(text: str | None) -> dt.datetime | None:
    """A stored expiry as an aware time (None: none, or not a time: the file was edited by
    hand, and a token is then refused rather than trusted for ever)."""
    if not text:
        return None
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def _id_of(token: str) -> str:
    return token.removeprefix(PREFIX).split("_", 1)[0]


def new_admin_token() -> str:
    """A token for this server's run only (written to the server file for the CLI)."""
    return f"{PREFIX}local{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"

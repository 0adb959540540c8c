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
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demandloop.errors import NotFoundError, UsageError
from demandloop.serve.keys import WatchedRecords, digest, read_records, write_records

TOKENS_FILE = "api-tokens.json"
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


def allows(granted: str, needed: str) -> bool:
    """Does a token of scope *granted* allow what needs *needed*?"""
    return SCOPES.index(granted) >= SCOPES.index(needed)


def _info(r: dict[str, Any]) -> TokenInfo:
    return TokenInfo(r["id"], r.get("name", ""), r["scope"], r["created_at"],
                     r.get("revoked_at"))


def create(directory: Path, scope: str, name: str = "") -> tuple[str, TokenInfo]:
    """A new token with *scope*: returns the token (shown once) and its record."""
    if scope not in SCOPES:
        raise UsageError(f"unknown scope '{scope[:40]}'", hint=f"use one of {', '.join(SCOPES)}")
    token_id = secrets.token_hex(4)
    token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    path = directory / TOKENS_FILE
    rows = read_records(path, "tokens")
    record = {"id": token_id, "hash": digest(token), "scope": scope, "name": name,
              "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "revoked_at": None}
    rows.append(record)
    write_records(path, "tokens", rows)
    return token, _info(record)


def list_tokens(directory: Path) -> list[TokenInfo]:
    return [_info(r) for r in read_records(directory / TOKENS_FILE, "tokens")]


def revoke(directory: Path, token_or_id: str) -> TokenInfo:
    """Revoke by the token itself or its id (from ``tokens list``)."""
    path = directory / TOKENS_FILE
    rows = read_records(path, "tokens")
    for r in rows:
        if r["id"] == token_or_id or r["hash"] == digest(token_or_id):
            if r.get("revoked_at") is None:
                r["revoked_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                write_records(path, "tokens", rows)
            return _info(r)
    raise NotFoundError(f"no API token '{token_or_id[:12]}'",
                        hint="see 'demandloop tokens list'")


class TokenRing(WatchedRecords):
    """Token -> scope lookups for the API, re-read when the file changes. *extra* holds
    tokens that live only in memory (the server's own admin token for the CLI)."""

    field = "tokens"

    def __init__(self, directory: Path, extra: dict[str, str] | None = None,
                 recheck_seconds: float = 1.0) -> None:
        self._active: dict[str, tuple[str, str]] = {}  # id -> (hash, scope)
        self._extra = {_id_of(t): (digest(t), s) for t, s in (extra or {}).items()}
        super().__init__(directory / TOKENS_FILE, recheck_seconds)

    def _load(self, rows: list[dict[str, Any]]) -> None:
        self._active = {r["id"]: (r["hash"], r["scope"]) for r in rows
                        if not r.get("revoked_at") and r.get("scope") in SCOPES}

    def scope(self, token: str | None) -> str | None:
        """The scope *token* grants, or None (unknown, revoked, malformed)."""
        if not token or not token.startswith(PREFIX) or len(token) > 200:
            return None
        self._refresh()
        token_id = _id_of(token)
        found = self._extra.get(token_id) or self._active.get(token_id)
        if found is None:
            # a token created a moment ago works at once: one stat() says if the file moved
            self._refresh(now=True)
            found = self._active.get(token_id)
        if found is None:
            return None
        expected, scope = found
        return scope if hmac.compare_digest(expected, digest(token)) else None


def _id_of(token: str) -> str:
    return token.removeprefix(PREFIX).split("_", 1)[0]


def new_admin_token() -> str:
    """A token for this server's run only (written to the server file for the CLI)."""
    return f"{PREFIX}local{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"

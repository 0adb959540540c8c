"""Write keys: the credentials SDKs send, each mapped to a workspace.

Kept in ``keys.json`` beside the database rather than in it: DuckDB lets one process open a
database for writing, and that process is ``demandloop serve`` while it runs, so
``demandloop keys create`` must work without the database. Only a SHA-256 of each key is
stored; the key itself is shown once, at creation. The file is replaced atomically, and the
collector re-reads it when it changes, so a revoked key stops working within a second.

When each key last sent events is kept beside it (``keys-used.json``, see :class:`UseLog`),
as a source's "last event received": a site or app whose key has gone quiet shows in
``keys list``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from demandloop.config.base import WORKSPACE_ID_PATTERN
from demandloop.errors import NotFoundError, UsageError

KEYS_FILE = "keys.json"
#: when each write key last sent events (see :class:`UseLog`)
KEYS_USED_FILE = "keys-used.json"
#: seconds between a server's writes of last-used times
USED_EVERY = 60.0


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class KeyInfo:
    id: str
    workspace: str
    name: str
    created_at: str
    revoked_at: str | None
    last_used_at: str | None = None


def read_records(path: Path, field: str = "keys") -> list[dict[str, Any]]:
    """The records of a credentials file (``keys.json``, ``api-tokens.json``)."""
    if not path.exists():
        return []
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}",
                         hint=f"restore it, or delete it and create new {field}") from None
    rows = data.get(field, []) if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        # (edited by hand, or another file in its place: say so, not a Python error)
        raise UsageError(f"{path} is not a demandloop {field} file (expected "
                         f"{{\"{field}\": [...]}} with one object per entry)",
                         hint=f"restore it, or delete it and create new {field}")
    return rows


T = TypeVar("T")


def entries(path: Path, field: str, make: Callable[[dict[str, Any]], T]) -> list[T]:
    """Every record of a credentials file made into what ``keys list`` or ``tokens list``
    shows; an entry missing a field (edited by hand) is one clear error, not a KeyError."""
    try:
        return [make(r) for r in read_records(path, field)]
    except KeyError as exc:
        raise UsageError(f"{path}: an entry has no '{exc.args[0]}' (edited by hand?)",
                         hint=f"restore the file, or delete it and create new {field}"
                         ) from None


def write_records(path: Path, field: str, rows: list[dict[str, Any]]) -> None:
    """Replace a credentials file atomically, readable by its owner only (it holds hashes,
    and which keys exist is nobody else's business)."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps({field: rows}, option=orjson.OPT_INDENT_2))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read(path: Path) -> list[dict[str, Any]]:
    return read_records(path, "keys")


def _write(path: Path, keys: list[dict[str, Any]]) -> None:
    write_records(path, "keys", keys)


def create(directory: Path, workspace: str, name: str = "") -> tuple[str, KeyInfo]:
    """A new key for *workspace*: returns the key (shown once) and its record."""
    if not re.fullmatch(WORKSPACE_ID_PATTERN, workspace):
        raise UsageError(f"'{workspace[:80]}' is not a valid workspace id",
                         hint="use 1-63 lower-case letters, digits, - and _, starting with a "
                         "letter or digit")
    key = "dl_" + secrets.token_urlsafe(24)
    path = directory / KEYS_FILE
    keys = _read(path)
    record = {"id": key[:10], "hash": digest(key), "workspace": workspace,
              "name": " ".join(name.split()),  # one line: a list shows one row per key
              "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "revoked_at": None}
    keys.append(record)
    _write(path, keys)
    return key, _info(record)


def _info(r: dict[str, Any], used: dict[str, str] | None = None) -> KeyInfo:
    return KeyInfo(r["id"], r["workspace"], r.get("name", ""), r["created_at"],
                   r.get("revoked_at"), (used or {}).get(r["id"]))


def list_keys(directory: Path) -> list[KeyInfo]:
    """Every write key, revoked ones too, with when each last sent events."""
    used = read_uses(directory / KEYS_USED_FILE)
    return entries(directory / KEYS_FILE, "keys", lambda r: _info(r, used))


def revoke(directory: Path, key_or_id: str) -> tuple[KeyInfo, bool]:
    """Revoke by the key itself or its id (its first 10 characters): its record, and
    whether this call revoked it (False: it was already)."""
    path = directory / KEYS_FILE
    keys = _read(path)
    for r in keys:
        if r["id"] == key_or_id or r["hash"] == digest(key_or_id):
            newly = r.get("revoked_at") is None
            if newly:
                r["revoked_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                _write(path, keys)
            return _info(r), newly
    raise NotFoundError(f"no write key '{key_or_id[:10]}'", hint="see 'demandloop keys list'")


class WatchedRecords:
    """The records of a credentials file as a server holds them: re-read when the file
    changes, looked at most every *recheck_seconds* (or at once with ``now``); a file that
    fails to parse keeps the last good records rather than lock everyone out. Subclasses
    say which file field holds the records and keep what they need of them (:meth:`_load`).
    One mechanism for write keys, API tokens and dashboard users."""

    field = "keys"

    def __init__(self, path: Path, recheck_seconds: float = 1.0) -> None:
        self.path = path
        self.recheck = recheck_seconds
        self._lock = threading.Lock()
        self._checked = 0.0
        self._mtime: int | None = None
        self._refresh(force=True)

    def _load(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _refresh(self, force: bool = False, now: bool = False) -> None:
        """Re-read the file if it changed (*force*: whether or not it did); *now*: look
        even if it was looked at less than *recheck* seconds ago."""
        at = time.monotonic()
        if not (force or now) and at - self._checked < self.recheck:
            return
        with self._lock:
            self._checked = at
            mtime = self.path.stat().st_mtime_ns if self.path.exists() else None
            if mtime == self._mtime and not force:
                return
            self._mtime = mtime
            try:
                self._load(read_records(self.path, self.field))
            except (UsageError, KeyError, TypeError):
                # a file edited into another shape, or an entry missing a field: the last
                # good records stay (a request must never fail on it, nor lock all out)
                return


def read_uses(path: Path) -> dict[str, str]:
    """Credential id -> when a server last saw it used (ISO 8601, UTC, to the second)."""
    try:
        rows = read_records(path, "used")
    except UsageError:
        return {}  # (a damaged file loses the times, never the credentials)
    return {str(r["id"]): str(r["at"]) for r in rows if "id" in r and "at" in r}


class UseLog:
    """When each credential of a file was last used, for ``keys list`` and ``tokens list``.

    Noted in memory and written to *path* (mode 0600) at a credential's first use in this
    process at once, later ones at most every :data:`USED_EVERY` seconds and when the
    server stops (:meth:`write`): a write per request would cost every request a file
    write, and the time is wanted to the minute, not the second. The writes run on a
    thread of their own, never the request's: the collector answers on an event loop,
    which a file's fsync must not stall. A file of its own, so the server never rewrites
    the credentials file the CLI edits. Several processes (a server with workers) may
    write it: each merges what is there, the latest time winning."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._noted: dict[str, str] = {}
        self._lock = threading.Lock()
        self._written = time.monotonic()
        self._writing = False
        self._fresh = False  # a first use noted and not yet written
        self._file_lock = threading.Lock()
        self._seen: set[str] = set()  # ids whose use this process has written

    def note(self, ident: str) -> None:
        """*ident* was used now."""
        at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._lock:
            self._noted[ident] = at
            # a first use is written at once: "never used" is what an audit looks for
            self._fresh |= ident not in self._seen
            due = not self._writing and (
                self._fresh or time.monotonic() - self._written >= USED_EVERY)
            self._writing |= due
        if due:
            threading.Thread(target=self._write_aside, name="dl-uses", daemon=True).start()

    def _write_aside(self) -> None:
        """Write, again while first uses were noted meanwhile."""
        while True:
            self.write()
            with self._lock:
                if not self._fresh:
                    self._writing = False
                    return

    def write(self) -> None:
        """Write the uses noted since the last write (the file's I/O outside the lock
        requests note under, so none waits for it). A failed write keeps them for the
        next and raises nothing: these are times only, and the server's stop, which calls
        this, must still close the store."""
        with self._lock:
            noted, self._noted = self._noted, {}
            self._written = time.monotonic()
            self._seen.update(noted)
            self._fresh = False
        if not noted:
            return
        try:
            with self._file_lock:  # (two writers of this process would lose times)
                merged = read_uses(self.path)
                for ident, at in noted.items():
                    merged[ident] = max(at, merged.get(ident, ""))
                write_records(self.path, "used",
                              [{"id": k, "at": v} for k, v in sorted(merged.items())])
        except OSError:
            with self._lock:  # the next write tries them again
                for ident, at in noted.items():
                    self._noted.setdefault(ident, at)


class KeyRing(WatchedRecords):
    """Key -> workspace lookups for the collector, re-read when the file changes; notes
    each key's use (:attr:`uses`)."""

    def __init__(self, directory: Path, recheck_seconds: float = 1.0) -> None:
        self._active: dict[str, tuple[str, str]] = {}  # hash -> (workspace, id)
        self.uses = UseLog(directory / KEYS_USED_FILE)
        super().__init__(directory / KEYS_FILE, recheck_seconds)

    def _load(self, rows: list[dict[str, Any]]) -> None:
        self._active = {r["hash"]: (r["workspace"], r["id"]) for r in rows
                        if not r.get("revoked_at")}

    def workspace(self, key: str | None, use: bool = True) -> str | None:
        """The workspace *key* writes to (None: unknown or revoked); a found key's use is
        noted unless *use* is False (a check that it is not sent where it does not
        belong)."""
        if not key:
            return None
        self._refresh()
        found = self._active.get(digest(key))
        if found is None:
            return None
        if use:
            self.uses.note(found[1])
        return found[0]

    def __len__(self) -> int:
        return len(self._active)

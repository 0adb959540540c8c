"""The server file: how the CLI finds the ``demandloop serve`` that owns a workspace.

DuckDB lets one process write a database file, and while ``serve`` runs that process is the
server. It writes ``server.json`` into the workspace (mode 0600: it holds a token that can
run any command) with its address, a token made for this run and its process id; the CLI
reads it and sends its commands there instead of opening the database. The file goes when
the server stops; one left by a killed server names a process that no longer exists and is
ignored (and removed).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from demandloop.serve.dead_letters import pid_alive

SERVER_FILE = "server.json"


@dataclass(frozen=True)
class Running:
    """A server found through its file."""

    url: str
    token: str
    pid: int


def local_url(host: str, port: int) -> str:
    """The address a local client uses for a server listening on *host*."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - reading the setting, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(directory: Path, url: str, token: str) -> Path:
    """Write the server file for this process (replacing any left by a dead one)."""
    path = directory / SERVER_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps({
            "url": url, "token": token, "pid": os.getpid(),
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}))
    os.replace(tmp, path)
    return path


def withdraw(directory: Path) -> None:
    """Remove the server file if it is this process's."""
    found = _read(directory / SERVER_FILE)
    if found is not None and found.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            (directory / SERVER_FILE).unlink()


def find(directory: Path) -> Running | None:
    """The server that owns the workspace in *directory*, if one is running."""
    path = directory / SERVER_FILE
    found = _read(path)
    if found is None:
        return None
    if not pid_alive(found.pid) or found.pid == os.getpid():
        if found.pid != os.getpid():
            with contextlib.suppress(OSError):
                path.unlink()  # a killed server's: nothing holds the workspace
        return None
    return found


def _read(path: Path) -> Running | None:
    try:
        data = orjson.loads(path.read_bytes())
        return Running(str(data["url"]), str(data["token"]), int(data["pid"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None

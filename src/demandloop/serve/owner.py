"""The server file: how the CLI finds the ``demandloop serve`` that owns a workspace.

DuckDB lets one process write a database file, and while ``serve`` runs that process is the
server. It writes ``server.json`` into the workspace (mode 0600: it holds a token that can
run any command) with its address, a token made for this run and its process id; the CLI
reads it and sends its commands there instead of opening the database. The file goes when
the server stops; one left by a killed server names a process that no longer exists and is
ignored (and removed). So is one copied with the folder (a backup restored, a copy made to
try something): it names the folder it was written in, by its device and inode, and a
command in the copy would otherwise have run on the original's server, on the original's
data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from demandloop.config.collect import local_url
from demandloop.serve.dead_letters import pid_alive

__all__ = ["SERVER_FILE", "Running", "announce", "find", "local_url", "withdraw"]

SERVER_FILE = "server.json"


@dataclass(frozen=True)
class Running:
    """A server found through its file."""

    url: str
    token: str
    pid: int
    #: the workspace folder's (device, inode) when the file was written (None: a file of an
    #: older version, which did not say)
    folder: tuple[int, int] | None = None


def announce(directory: Path, url: str, token: str) -> Path:
    """Write the server file for this process (replacing any left by a dead one)."""
    path = directory / SERVER_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps({
            "url": url, "token": token, "pid": os.getpid(), "folder": _identity(directory),
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
    elsewhere = found.folder is not None and found.folder != _identity(directory)
    if elsewhere or not pid_alive(found.pid) or found.pid == os.getpid():
        if found.pid != os.getpid():
            with contextlib.suppress(OSError):
                path.unlink()  # a killed server's, or a copy's: nothing holds this folder
        return None
    return found


def _identity(directory: Path) -> tuple[int, int]:
    """The folder's (device, inode): the same through a symbolic link or another spelling
    of its path, another for a copy."""
    st = os.stat(directory)
    return st.st_dev, st.st_ino


def _read(path: Path) -> Running | None:
    try:
        data = orjson.loads(path.read_bytes())
        folder = data.get("folder")
        return Running(str(data["url"]), str(data["token"]), int(data["pid"]),
                       (int(folder[0]), int(folder[1])) if folder is not None else None)
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
        return None

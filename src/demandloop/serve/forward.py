"""Commands the CLI sends to the server that owns a workspace, run there as they run here.

The CLI parses its command line itself (so usage errors and ``--help`` stay local); where
the command would open the workspace, it finds the server's file instead (see
:mod:`.owner`) and posts the whole command line to ``POST /api/v1/cli``. The server runs
the very same command, with the same code, on the workspace it holds, writing into buffers
made like the caller's terminal (its width, its colours), and answers with both streams and
the exit code, which the CLI writes out unchanged. So the output is the same byte for byte
whether a server runs or not; only what takes the time moves.

Commands run one at a time, in the caller's directory (relative paths in arguments mean
what they mean to the caller); the server is on the same machine as its workspace folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from rich.console import Console

from demandloop.config import Settings
from demandloop.errors import StoreError, UsageError

if TYPE_CHECKING:
    from demandloop.serve.owner import Running
    from demandloop.workspace import Workspace

#: a forwarded command may take as long as it takes here (a full rebuild at 10M events
#: is minutes); the connection itself must come up at once
TIMEOUT = httpx.Timeout(connect=5.0, read=None, write=60.0, pool=5.0)
_one_at_a_time = threading.Lock()


#: said after a command run while demandloop.toml differs from what the server started with
SETTINGS_CHANGED = ("warning: demandloop.toml has changed since 'demandloop serve' started: "
                    "this ran with the settings the server read then (restart the server "
                    "to use the new ones)\n")


def run_here(ws: Workspace, argv: list[str], cwd: str, width: int,
             color_system: str | None, terminal: bool,
             lock: threading.Lock | threading.RLock | None = None,
             started_with: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run *argv* on *ws* as ``demandloop`` would run it in *cwd*; the outputs and code.
    *lock* is the server's loop lock (held while a command runs, so a command never
    interleaves with the loader's resolve, score or workflows). *started_with*: the
    settings file the server read (:meth:`Settings.file_data`); when the file says
    something else now, the command's stderr ends by saying so (a `score` after an edit
    of the stages ran on the old ones, where the same command with no server ran on the
    new, and nothing said which)."""
    from demandloop.cli import run
    from demandloop.cli.base import _SERVED, _STREAMS, Streams

    if not os.path.isabs(cwd) or not os.path.isdir(cwd):
        raise UsageError(f"'{cwd[:200]}' is not a folder on the server's machine",
                         hint="run the CLI on the machine the server runs on")
    stdout, stderr = io.StringIO(), io.StringIO()

    def console(buf: io.StringIO) -> Console:
        return Console(file=buf, width=width, color_system=color_system,  # type: ignore[arg-type]
                       force_terminal=terminal, force_interactive=False, emoji=False)

    streams = Streams(console(stdout), console(stderr), stdout)
    with _one_at_a_time, lock or contextlib.nullcontext():
        here = os.getcwd()
        os.chdir(cwd)  # the process's own paths are absolute (see serve.run)
        s_token, w_token = _STREAMS.set(streams), _SERVED.set(ws)
        try:
            code = run(list(argv))
        finally:
            _STREAMS.reset(s_token)
            _SERVED.reset(w_token)
            os.chdir(here)
    said = stderr.getvalue()
    if started_with is not None and Settings.file_data(ws.directory) != started_with:
        said += SETTINGS_CHANGED
    return {"stdout": stdout.getvalue(), "stderr": said, "code": code}


def forward(running: Running, argv: list[str]) -> int:
    """Send *argv* to *running* and write its answer here; returns the exit code."""
    from demandloop.cli.base import out

    body = {"argv": argv, "cwd": str(Path.cwd()), "width": out.width,
            "color_system": out.color_system, "terminal": out.is_terminal}
    try:
        r = httpx.post(f"{running.url}/api/v1/cli", json=body, timeout=TIMEOUT,
                       headers={"Authorization": f"Bearer {running.token}"})
    except httpx.HTTPError as exc:
        raise StoreError(f"the server (pid {running.pid}) holds this workspace but does not "
                         f"answer at {running.url}: {exc}",
                         hint="wait for it to start, or stop it and run the command again"
                         ) from None
    if r.status_code != 200:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:200]
        raise StoreError(f"the server (pid {running.pid}) refused the command: "
                         f"{r.status_code} {message}",
                         hint="is server.json from this server? restart 'demandloop serve'")
    answer = r.json()
    sys.stdout.write(answer["stdout"])
    sys.stdout.flush()
    sys.stderr.write(answer["stderr"])
    sys.stderr.flush()
    return int(answer["code"])

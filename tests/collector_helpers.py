"""Running a real collector for tests: in a thread of the test process (fast, inspectable) or
as a `demandloop serve` subprocess (for kill -9)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

import demandloop
from demandloop.collect.log import DurableLog
from demandloop.serve import keys as keystore
from demandloop.serve.app import create_app
from demandloop.serve.keys import KeyRing
from demandloop.serve.loader import Loader
from demandloop.serve.state import CollectorState


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    url: str
    key: str
    directory: Path
    ws: demandloop.Workspace
    state: CollectorState
    loader: Loader

    def wait_loaded(self, timeout: float = 15.0) -> None:
        """Until everything acknowledged is in the store."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state.backlog_bytes() == 0 and self.state.log.durable.offset > 0:
                self.loader.load_once()
                return
            self.state._backlog = (0.0, 0)  # re-measure now
            time.sleep(0.05)
        raise AssertionError("the loader did not catch up")

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.ws.store.reader() as cur:
            return cur.execute(sql, params or []).fetchall()


@contextmanager
def collector(directory: Path, toml: str = "", maintain_every: float = 0.0
              ) -> Iterator[Running]:
    """A collector in a thread of this process, with one write key, the live workflows and
    the sequence sender (and, with *maintain_every* seconds, resolve + score + workflows in
    the loader), as serve runs them."""
    directory.mkdir(parents=True, exist_ok=True)
    if toml:
        (directory / "demandloop.toml").write_text(toml)
    key, _ = keystore.create(directory, "default", "tests")
    ws = demandloop.open(directory)
    root = directory / ws.settings.collector.log_dir
    log = DurableLog(root / "main")
    from demandloop.serve.run import _hooks, server_options

    hooks = {**_hooks(ws, threading.RLock()), "maintenance_every": maintain_every}
    loader = Loader(ws.store, root, own=log, **hooks).start()
    state = CollectorState(log=log, keys=KeyRing(directory, recheck_seconds=0.1),
                           log_root=root, loader=loader)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ws.settings, state, store=ws.store),
                                           **server_options(ws.settings, "127.0.0.1", port)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    _wait_up(url)
    try:
        yield Running(url, key, directory, ws, state, loader)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        loader.stop(drain=True)
        log.close()
        ws.close()


def _wait_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"collector at {url} did not come up")


def start_subprocess(directory: Path, port: int, workers: int = 1, timeout: float = 60.0
                     ) -> subprocess.Popen[bytes]:
    """`demandloop serve` on *directory* (made a workspace first, as 'init' would), with
    *workers* HTTP workers (several: the API on ``collector.api_port``, as the workspace's
    settings say), once it answers ``/healthz`` (within *timeout* seconds).

    Its log goes to :func:`server_log`'s file, not to a pipe: nothing reads a pipe while
    the test runs, and a server that logged more than the pipe holds would block on its
    next line."""
    if not (directory / "demandloop.toml").exists():
        (directory / "demandloop.toml").write_text("")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    several = ["--workers", str(workers)] if workers > 1 else []
    with server_log(directory).open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "demandloop", "-w", str(directory),
                                 "serve", "--port", str(port), *several, "--no-access-log"],
                                env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        _wait_up(f"http://127.0.0.1:{port}", timeout)
    except AssertionError:
        proc.kill()
        proc.wait()
        raise AssertionError(server_log(directory).read_text(errors="replace")) from None
    return proc


def served_with_key(directory: Path, toml: str = "", workers: int = 1, name: str = "tests"
                    ) -> tuple[str, int, subprocess.Popen[bytes]]:
    """A new workspace in *directory* (its demandloop.toml: *toml*) with a write key named
    *name*, and `demandloop serve` on it (:func:`start_subprocess`): the key, the port, the
    process."""
    directory.mkdir(parents=True)
    (directory / "demandloop.toml").write_text(toml)
    key, _ = keystore.create(directory, "default", name)
    port = free_port()
    return key, port, start_subprocess(directory, port, workers=workers)


def server_log(directory: Path) -> Path:
    """Where :func:`start_subprocess` writes the log of a server on *directory*: beside the
    workspace, not in it (a copy of the workspace would carry it)."""
    return directory.parent / f"{directory.name}.serve.log"


def metric_values(text: str) -> dict[str, float]:
    """Every series of a Prometheus text page (``/metrics``) by its name and labels as the
    page writes them (``name{label="value"}``), read by prometheus_client's own parser."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[sample.name + (f"{{{labels}}}" if labels else "")] = float(sample.value)
    return out

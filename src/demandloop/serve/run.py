"""``demandloop serve``: the collector process(es) and the loader.

One worker: the HTTP server, the log writer and the loader share one process. Several
workers: uvicorn starts that many HTTP processes, each appending to its own log folder
(``<log_dir>/w<pid>``), and this process, which owns the database, runs the loader over all
of them. Either way SIGTERM or Ctrl-C stops accepting, lets in-flight requests finish, and
loads what was acknowledged for up to ``collector.drain_seconds`` before exiting (what is
left stays in the log, said on stderr, and loads at the next start); after SIGKILL the next
start replays the log. uvicorn re-raises the signal once it has shut down, which would kill
the process before that drain: :class:`_Server` keeps the signal instead.
Since this process holds the database, it also runs the rest of the loop (resolve, score,
workflows) in the loader thread a few seconds after events load
(``collector.rescore_after_load_seconds``), serves ``/api/v1`` (:mod:`.api`), and announces
itself in ``server.json`` so that the CLI runs its commands here (:mod:`.forward`).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from demandloop.collect.log import DurableLog
from demandloop.config import Settings
from demandloop.errors import ConfigError, UsageError
from demandloop.serve import chat, owner, tokens
from demandloop.serve.api import create_api
from demandloop.serve.app import create_app
from demandloop.serve.chat_proxy import Forwarded
from demandloop.serve.envelope import no_endpoint, not_allowed
from demandloop.serve.guard import AuthThrottle, GuardedProtocol, raise_fd_limit
from demandloop.serve.jobs import Jobs
from demandloop.serve.keys import KeyRing
from demandloop.serve.loader import Loader, busy
from demandloop.serve.quiesce import Gate, ServerLog
from demandloop.serve.state import CollectorState
from demandloop.serve.traffic import SERVING, Timed
from demandloop.serve.users import UserRing
from demandloop.serve.web import create_web
from demandloop.serve.web.session import load_secret
from demandloop.workspace import Workspace, invites
from demandloop.workspace.chat import ChatService
from demandloop.workspace.personalize import DecideService

ENV_DIR = "DEMANDLOOP_SERVE_DIR"
#: where the workers forward chat: the address of this process's API and the run's secret
ENV_CHAT = "DEMANDLOOP_SERVE_CHAT"
#: "0" when the workers keep no access log (``--no-access-log``)
ENV_ACCESS = "DEMANDLOOP_SERVE_ACCESS_LOG"
#: descriptors a process needs besides its connections (log segments, DuckDB, the loader)
SPARE_FDS = 256
#: how often the server applies collect.retention_days (seconds)
RETENTION_EVERY = 3600.0

#: seconds between checks of the write-ahead log's size (checkpoints are deferred to the
#: loader thread: see Store.defer_checkpoints), besides the one after each rescore
CHECKPOINT_EVERY = 10.0
logger = logging.getLogger("demandloop.loader")


class _Server(uvicorn.Server):
    """uvicorn's server, minus re-raising SIGTERM/SIGINT after its graceful shutdown: the
    caller drains the loader first (uvicorn's re-raise killed the process with acknowledged
    events still in the log, and made exit codes depend on timing). *on_started* runs once
    it listens (the server file must not name an address nobody answers yet)."""

    def __init__(self, config: uvicorn.Config,
                 on_started: Callable[[], object] | None = None) -> None:
        super().__init__(config)
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_started is not None:
            self.on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


_THIS_MACHINE = "pass --host with an address of this machine, e.g. 127.0.0.1 or 0.0.0.0"


def _check_free(host: str, port: int, hint: str) -> None:
    """Refuse a *port* something already listens on, before the loader starts (uvicorn
    said it in its own log line, after the workspace had been opened for nothing)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UsageError(f"cannot listen on '{host}': no such address",
                         hint=_THIS_MACHINE) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is in use", hint=hint) from None
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}",
                             hint=_THIS_MACHINE) from None


def _drain(loader: Loader, seconds: float) -> bool:
    """Stop the loader, loading the log for up to *seconds*; False if its thread is still
    busy (a long resolve or score): the database must then not be closed under it."""
    left = loader.stop(drain=True, timeout=seconds)
    if left:
        logger.warning("stopped with %s bytes of acknowledged events still in the log: they "
                       "load at the next start", f"{left:,}")
    return not loader.running


def _logging(access_log: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name, level in (("demandloop.access", logging.INFO if access_log else logging.WARNING),
                        ("demandloop.loader", logging.INFO)):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level)
        lg.propagate = False


def serve(directory: Path, *, host: str | None = None, port: int | None = None,
          workers: int | None = None, access_log: bool = True) -> None:
    """Run the collector for the workspace in *directory* until stopped."""
    # absolute: commands run for the CLI change this process's directory while they run
    ws = Workspace.open(directory.resolve())
    c = ws.settings.collector
    host, port, workers = host or c.host, port or c.port, workers or c.workers
    # what --host and --port say is what dl.js tells browsers and invite links name (they
    # named the settings' port: 'serve --port 9000' sent every browser's events to 8642),
    # in this process and in the workers, which load the settings again
    c.host, c.port = host, port
    _check_free(host, port, "stop what listens there, or pass another --port")
    if workers > 1:
        _check_free(host, c.workers_api_port(), "with several workers the API listens on "
                    "collector.api_port, or on the port after --port's when that is 0: set "
                    "collector.api_port to a free one")
    os.environ["DEMANDLOOP_COLLECTOR__HOST"], os.environ["DEMANDLOOP_COLLECTOR__PORT"] = \
        host, str(port)
    root = ws.directory / c.log_dir
    root.mkdir(parents=True, exist_ok=True)
    _logging(access_log)
    _warn_of_settings(ws)
    if not c.public_url and host not in ("127.0.0.1", "::1", "localhost"):
        logger.warning("collector.public_url is empty: dl.js tells browsers, and invite "
                       "links name, %s, which other machines cannot reach; set it to the "
                       "address browsers reach (https://collect.example.com)", c.base_url())
    # the log writer thread must get the GIL back quickly after each fsync to release the
    # waiting requests; the default 5 ms switch interval would add that much latency
    sys.setswitchinterval(0.0005)
    common = server_options(ws.settings, host, port)
    lock = threading.RLock()  # the loop's: loader maintenance, jobs, commands for the CLI
    admin = tokens.new_admin_token()
    keyring = KeyRing(ws.directory)
    jobs = Jobs(lock)
    gate = Gate()
    ring = tokens.TokenRing(ws.directory, {admin: "admin"})
    api = create_api(ws, ring, keyring, jobs, lock, gate)
    web = create_web(ws, UserRing(ws.directory), load_secret(ws.directory),
                     api.state.report_cache, gate, c.public_url.startswith("https://"), lock)
    stopped = True
    chat_log: DurableLog | None = None
    try:
        if workers == 1:
            log = DurableLog(root / "main")
            loader = Loader(ws.store, root, own=log, **_hooks(ws, lock)).start()
            ws.log_access = ServerLog(loader, log, gate)
            state = CollectorState(log=log, keys=keyring, log_root=root, loader=loader)
            url = owner.local_url(host, port)
            server = _Server(uvicorn.Config(create_app(ws.settings, state, api, web, ring,
                                                       ws.store), **common),
                             on_started=lambda: _started(ws.directory, url, admin))
            try:
                server.run()
            finally:
                owner.withdraw(ws.directory)
                stopped = _drain(loader, c.drain_seconds)
                log.close()
        else:
            loader = Loader(ws.store, root, **_hooks(ws, lock)).start()
            ws.log_access = ServerLog(loader, None, gate)
            os.environ[ENV_DIR] = str(ws.directory)
            os.environ[ENV_ACCESS] = "1" if access_log else "0"
            api_port = c.workers_api_port()
            url = owner.local_url(host, api_port)
            api_root = _api_root(api, web, port)
            secret = secrets.token_urlsafe(32)
            os.environ.pop(ENV_CHAT, None)
            if ws.settings.chat.enabled:  # the workers forward chat here (see .chat_proxy)
                chat_log = DurableLog(root / "main")
                os.environ[ENV_CHAT] = f"{url} {secret}"
                chat.register(api_root, ws.settings,
                              CollectorState(log=chat_log, keys=keyring, log_root=root,
                                             loader=loader),
                              ChatService(ws.directory, ws.settings, ws.store,
                                          DecideService(ws.directory, ws.settings)
                                          .start().decider),
                              AuthThrottle(c.auth_failures_per_minute))
            api_server = _Server(uvicorn.Config(Timed(Forwarded(api_root, secret)),
                                                **server_options(ws.settings, host,
                                                                 api_port)),
                                 on_started=lambda: owner.announce(ws.directory, url, admin))
            api_thread = threading.Thread(target=api_server.run, name="dl-api", daemon=True)
            api_thread.start()
            try:
                # (the lifespan on: each worker writes its keys' last uses at its stop)
                uvicorn.run("demandloop.serve.run:worker_app", factory=True, workers=workers,
                            **{**common, "lifespan": "on"})
            finally:
                owner.withdraw(ws.directory)
                api_server.should_exit = True
                api_thread.join(timeout=15)
                stopped = _drain(loader, c.drain_seconds)
                if chat_log is not None:
                    chat_log.close()
    finally:
        jobs.shutdown()
        ring.uses.write()
        keyring.uses.write()
        if stopped:  # else exiting ends the loader's work; DuckDB's WAL keeps what committed
            ws.close()


def _api_root(api: ASGIApp, web: ASGIApp, port: int) -> FastAPI:
    """What the process holding the database serves on ``collector.api_port`` with several
    workers: the API and the dashboard; anything else is answered in the one JSON shape,
    naming the workers' *port* (a collector URL given this port's number answered
    FastAPI's ``{"detail": "Not Found"}``)."""
    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    root.mount("/api/v1", api)
    root.mount("/app", web)

    @root.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        return no_endpoint(request.url.path, " on this port (the API's and the dashboard's): "
                           f"events, dl.js and health checks answer on port {port}").response()

    @root.exception_handler(405)
    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return not_allowed(request.method, request.url.path).response()
    return root


def _warn_of_settings(ws: Workspace) -> None:
    """Say at the start what the settings leave undone, which each visitor would otherwise
    meet in silence: chat answering every question "I don't know" (no content index), and
    meetings booked with no invitation sent (no ``meetings.mailbox``)."""
    s = ws.settings
    if s.chat.enabled and ws.content_index() is None:
        logger.warning("chat is enabled but there is no content index: every question is "
                       "answered \"I don't know\" and a person is offered; run "
                       "'demandloop content index FOLDER|URL'")
    if s.chat.enabled and s.meetings.reps and not s.meetings.mailbox:
        logger.warning("meetings.mailbox is empty: meetings booked through chat send no "
                       "invitation to the visitor or the rep; name one of "
                       "[[activate.mailboxes]] there")


def _has_touches(ws: Workspace) -> bool:
    """Whether the workspace has a touch to score (a scan that stops at the first)."""
    with ws.store.reader() as cur:
        row = cur.execute("SELECT 1 FROM touches WHERE workspace_id = ? LIMIT 1",
                          [ws.store.workspace_id]).fetchone()
    return row is not None


def server_options(settings: Settings, host: str, port: int) -> dict[str, Any]:
    """uvicorn's options for the collector, with its guards against stalled and excess
    connections in force in this process (the file limit raised to fit them)."""
    c = settings.collector
    raise_fd_limit(c.max_connections + SPARE_FDS)
    GuardedProtocol.configure(c.read_timeout_seconds, c.max_connections)
    # proxy_headers off: uvicorn would believe X-Forwarded-For from 127.0.0.1 by default;
    # the collector reads it itself, from collector.trusted_proxies only
    return {"host": host, "port": port, "log_level": "warning", "access_log": False,
            "lifespan": "off", "timeout_graceful_shutdown": 10, "http": GuardedProtocol,
            "proxy_headers": False}


def _hooks(ws: Workspace, lock: threading.RLock) -> dict[str, Any]:
    """What the loader thread (the database's one writer) runs besides loading: the live
    workflows after each load; the loop (resolve, score, workflows, one score snapshot kept
    per day, sequences) after loads,
    at most every ``collector.rescore_after_load_seconds`` (resolve is incremental, so this
    costs what arrived, not what is stored) and at least every ``collector.rescore_minutes``;
    the sequence sender every ``activate.mail.tick_seconds``; deferred meeting invites
    again (when ``meetings.mailbox`` is set); and the raw-event retention
    (``collect.retention_days``) every hour, events or not. Each holds *lock*, so it never
    interleaves with a command the server runs for the CLI or an API job."""

    def locked(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with lock:
                return fn()
        return run

    threads = Threads(ws, SERVING.seconds)
    held = ws.held_workflows()

    def in_force() -> list[Any]:
        """The workflows to fire: as the files say, or as they were while an edit of
        theirs cannot be read (said once per edit)."""
        flows, problem = held.current()
        if problem:
            logger.warning("workflows: %s; the workflows in force stay until the files "
                           "are fixed ('demandloop workflows validate')", problem)
        return flows

    def react() -> Any:
        return ws.react(flows=in_force())

    said: list[str] = []  # the sequences' problems logged last
    settings_read = Settings.file_data(ws.directory)
    told = False  # that demandloop.toml changed

    def settings_changed() -> None:
        """Say once (per edit) that demandloop.toml changed while serving: the loop keeps
        the settings it started with (the workflow and experience files are read again)."""
        nonlocal told
        changed = Settings.file_data(ws.directory) != settings_read
        if changed and not told:
            logger.warning("demandloop.toml has changed since the server started: it keeps "
                           "running with the settings it read then (restart it to use the "
                           "new ones)")
        told = changed

    def send() -> dict[str, Any]:
        """The sequence sender's tick; what holds enrolments (a template that cannot be
        rendered) is logged when it changes, not every tick."""
        nonlocal said
        r = ws.run_sequences()
        if r.problems and r.problems != said:
            logger.warning("sequences: %s; those enrolments wait until it is fixed "
                           "('demandloop sequences validate')", "; ".join(r.problems))
        said = list(r.problems)
        return {"sent": r.sent, "waiting": r.waiting, "held": r.held,
                "problems": list(r.problems)}

    # rescores since the server started, by mode: a live loop that keeps falling back to
    # full scores (settings, imports, too much changed) is one an operator wants to see
    rescores = {"incremental": 0, "full": 0}

    def maintenance() -> dict[str, Any]:
        with threads.for_loop():
            return loop()

    def loop() -> dict[str, Any]:
        settings_changed()
        started = time.perf_counter()
        ws.resolve(engine="duckdb", summary=False)
        resolved = time.perf_counter()
        if not _has_touches(ws):
            # nothing to score yet (a new site's first identify calls): the mail still
            # goes; every run failed with a traceback in the log before
            send()
            ws.store.checkpoint_due()
            return {"resolve_seconds": round(resolved - started, 3), "score_mode": "none",
                    "accounts": 0, "recomputed": 0, "rescores": dict(rescores)}
        # what it just resolved, live: the lake [compute] engine = "spark" reads is a copy
        # (it then keeps one snapshot a day: this score may be made from an earlier one)
        s = ws.score(engine="duckdb", one_per_day=True)
        scored = time.perf_counter()
        rescores[s.mode] = rescores.get(s.mode, 0) + 1
        # the alerts first: they wait for nothing the decide snapshot holds
        # (compares with the previous snapshot: compact only after it)
        ws.run_workflows(flows=in_force())
        publish()
        ws.keep_one_snapshot_per_day()
        send()
        ws.store.checkpoint_due()  # after the alerts: they never wait on one
        # what /metrics and the loader's status report of this run (see Loader._guarded)
        return {"resolve_seconds": round(resolved - started, 3),
                "score_seconds": round(scored - resolved, 3), "score_mode": s.mode,
                "accounts": s.accounts, "recomputed": s.recomputed,
                "rescores": dict(rescores), "workflows_problem": held.problem}

    def publish() -> None:
        """The decide snapshot, when there are experiences to decide (read again each
        time: an experience file added while serving takes effect at the next rescore).
        Files that cannot be read are the decide service's to say, once per edit (this
        said it again at every rescore)."""
        try:
            wanted = bool(ws.experiences())
        except ConfigError:
            wanted = True
        if wanted or ws.settings.chat.enabled:  # chat recognises visitors the same way
            ws.publish_personalization()

    ws.store.defer_checkpoints()
    react()  # starts the live cursor here, so the first batch loaded fires too
    publish()  # decisions from the scores already there, before the first rescore
    c, m = ws.settings.collector, ws.settings.activate.mail
    every = 0.0 if c.rescore_minutes <= 0 else (
        c.rescore_after_load_seconds or c.rescore_minutes * 60)
    return {"maintenance": locked(maintenance), "maintenance_every": every,
            "on_loaded": locked(react),
            "serving": SERVING.seconds,
            "periodic": (("sequences", locked(send), m.tick_seconds),
                         *((("invites", locked(ws.retry_invites), invites.RETRY_EVERY),)
                           if ws.settings.meetings.mailbox else ()),
                         ("checkpoint", locked(ws.store.checkpoint_due), CHECKPOINT_EVERY),
                         ("retention", locked(ws.apply_retention), RETENTION_EVERY),
                         *((("lake", locked(ws.land_in_lake), c.land_lake_seconds),)
                           if c.land_lake_seconds > 0 else ()))}


class Threads:
    """How many DuckDB threads the live loop runs with: every core (``store.threads``)
    when the server answered next to no requests since the last run, else one, the
    server's setting between runs, so that its other cores answer requests.

    DuckDB's thread count is the whole database's, not a query's. One thread leaves a
    core to the requests, but on a quiet server it only made the loop slower: at 10M
    events resolve + score after 10k events took 6.15 s with one thread against 4.02 s
    with two (``benchmarks/resolve.py``), and every alert waited for it."""

    def __init__(self, ws: Workspace, serving: Callable[[], float]) -> None:
        self.ws, self.serving = ws, serving
        self.every = ws.settings.store.threads or os.cpu_count() or 1
        self._since = (time.monotonic(), serving())
        self.last = 1
        # the loader lands with one thread: the other cores answer requests
        self._set(1)

    def quiet(self) -> bool:
        """Did answering requests take under BUSY_SHARE of the time since the last run?"""
        at, served = self._since
        return not busy(self.serving() - served, time.monotonic() - at)

    def _set(self, threads: int) -> None:
        # (the whole database's setting, from a cursor of this thread's own)
        with self.ws.store.reader() as cur:
            cur.execute(f"SET threads = {int(threads)}")

    @contextlib.contextmanager
    def for_loop(self) -> Generator[None, None, None]:
        self.last = self.every if self.quiet() else 1
        if self.last != 1:
            self._set(self.last)
        try:
            yield
        finally:
            if self.last != 1:
                self._set(1)
            self._since = (time.monotonic(), self.serving())


def worker_app() -> object:
    """The app of one HTTP worker process (several-worker mode): no database access."""
    directory = Path(os.environ[ENV_DIR])
    settings = Settings.load(directory)
    server_options(settings, "", 0)  # this worker's guards
    root = directory / settings.collector.log_dir
    log = DurableLog(root / f"w{os.getpid()}")
    keys = KeyRing(directory)
    state = CollectorState(log=log, keys=keys, log_root=root)
    _logging(os.environ.get(ENV_ACCESS) != "0")
    # A worker process is ended by the signal uvicorn raises again after its shutdown, so
    # neither atexit nor a finally runs there: its keys' last uses (up to a minute of them)
    # are written at the lifespan's shutdown, which uvicorn sends before.
    owner_chat = os.environ.get(ENV_CHAT, "").split()
    app = OnShutdown(create_app(settings, state, chat_owner=(owner_chat[0], owner_chat[1])
                                if len(owner_chat) == 2 else None,
                                api_port=settings.collector.workers_api_port()),
                     keys.uses.write)
    settle_heap()
    return app


class OnShutdown:
    """An ASGI app that runs *on_stop* when the server's lifespan shuts down, and hands
    everything else to *app* (which has no lifespan of its own)."""

    def __init__(self, app: ASGIApp, on_stop: Callable[[], object]) -> None:
        self.app, self.on_stop = app, on_stop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.on_stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _started(directory: Path, url: str, admin: str) -> None:
    owner.announce(directory, url, admin)
    settle_heap()


def settle_heap() -> None:
    """Move everything alive once the server is up (modules, settings, the first decide
    snapshot) out of the garbage collector's view (``gc.freeze``).

    Why: a full collection walks every tracked object, and the libraries a server imports
    (pandas, Ibis, sqlglot, FastAPI) hold a few hundred thousand: each full pass paused
    every request for 50-100 ms (measured in benchmarks/decide.py), which alone put the
    p99 of ``/v1/decide`` over its 5 ms target. Those objects live as long as the process;
    what requests and rescores allocate later is collected as before."""
    gc.collect()
    gc.freeze()

"""What every command group shares: the root app and its sub-apps, the consoles, opening
the workspace, and rendering (JSON, tables, one sentence)."""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import orjson
import typer
from rich.console import Console

from demandloop.errors import NotFoundError, UsageError
from demandloop.lazy import LazyModule
from demandloop.render import frame_table, records

if TYPE_CHECKING:
    import pandas as pd

    from demandloop.workspace import Workspace
else:  # imported on first use: 'demandloop --help' and the quick commands need none
    pd = LazyModule("pandas")


CONFIG_FILE = "demandloop.toml"


app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Account-based go-to-market engine: collect, resolve, score, act, measure.",
)


import_app = typer.Typer(no_args_is_help=True, help="Import CRM exports, Olist data or Parquet.")


report_app = typer.Typer(no_args_is_help=True, help="Reports over the workspace.")


config_app = typer.Typer(no_args_is_help=True, help="Show or create the configuration.")


app.add_typer(import_app, name="import")


app.add_typer(report_app, name="report")


app.add_typer(config_app, name="config")


explain_app = typer.Typer(no_args_is_help=True, help="Explain the signals behind a record.")


data_app = typer.Typer(no_args_is_help=True, help="Maintain shipped data files.")


fit_app = typer.Typer(no_args_is_help=True, help="Predictive fit models.")


app.add_typer(fit_app, name="fit")


app.add_typer(explain_app, name="explain")


app.add_typer(data_app, name="data")


def _console(stderr: bool = False) -> Console:
    """The terminal's own width; piped output (a file, less, CI logs) is not cut at 80
    columns as Rich would do, but at $COLUMNS or 200."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "0") or 0) or 200
    # no emoji codes: data quoted in output ("root:x:0" in a wrong CSV's header) is shown
    # as it is, not with ":x:" turned into a symbol
    return Console(stderr=stderr, width=width, emoji=False)


@dataclass
class Streams:
    """Where a command writes: the terminal's, or (a command run by the server for a CLI
    elsewhere) a pair of buffers sent back to it."""

    out: Console
    err: Console
    stdout: IO[str]


_STREAMS: contextvars.ContextVar[Streams | None] = contextvars.ContextVar(
    "demandloop_streams", default=None)
#: the workspace a server runs commands on (None: open it, or find its server)
_SERVED: contextvars.ContextVar[Workspace | None] = contextvars.ContextVar(
    "demandloop_served", default=None)


class _ConsoleProxy:
    """``out`` and ``err``: the console of the current :class:`Streams`, else the
    terminal's. Every command module imports them by name, so they cannot be rebound."""

    def __init__(self, console: Console, stderr: bool) -> None:
        self._default, self._stderr = console, stderr

    @property
    def dl_console(self) -> Console:
        streams = _STREAMS.get()
        if streams is None:
            return self._default
        return streams.err if self._stderr else streams.out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dl_console, name)


out = cast(Console, _ConsoleProxy(_console(), stderr=False))


err = cast(Console, _ConsoleProxy(_console(stderr=True), stderr=True))


def _stdout() -> IO[str]:
    """Standard output for raw text (JSON, CSV), redirected as the consoles are."""
    streams = _STREAMS.get()
    return streams.stdout if streams is not None else sys.stdout


class Forward(BaseException):  # noqa: N818 - a signal to main(), not an error
    """Raised where a command would open a workspace that a running server owns: main()
    sends the command line to that server instead. A BaseException, so that a command's
    own ``except Exception`` cannot swallow it."""

    def __init__(self, running: Any) -> None:
        super().__init__("forward to the server")
        self.running = running


_state: dict[str, Any] = {"workspace": Path("."), "debug": False, "workspace_given": False}


JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")


EngineOpt = typer.Option(None, "--engine", help="duckdb or spark (reads the Parquet lake; "
                         "default: \\[compute] engine).")


HorizonOpt = typer.Option(90, "--horizon", min=1, max=3650, metavar="DAYS",
                          help="The outcome window: what happens within DAYS of a snapshot.")


def _version(value: bool) -> None:
    if value:
        from demandloop import __version__

        out.print(f"demandloop {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    workspace: Path = typer.Option(
        Path("."), "--workspace", "-w", envvar="DEMANDLOOP_DIR",
        help="Workspace directory (holds demandloop.toml and the database).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                 help="Print the version and exit."),
) -> None:
    _state["workspace"], _state["debug"] = workspace, debug
    # 'demo' builds its own folder unless -w names one on this command line (a workspace
    # set in the environment is a user's own, which the demo must not be pointed at)
    # (by name: Typer carries its own copy of click's ParameterSource)
    source = ctx.get_parameter_source("workspace")
    _state["workspace_given"] = getattr(source, "name", None) == "COMMANDLINE"


def _workspace_dir() -> Path:
    """The workspace folder, which must exist: only 'init' (and 'demo') create one, so a
    misspelt -w is an error, not a new empty workspace."""
    served = _SERVED.get()
    if served is not None:
        return served.directory
    d = Path(_state["workspace"])
    if d.suffix == ".duckdb" and d.is_file():
        return d
    settings_file = d / CONFIG_FILE
    if d.is_dir() and (settings_file.is_file() or any(d.glob("*.duckdb"))):
        return d
    raise NotFoundError(f"no demandloop workspace in {d}",
                        hint=f"run 'demandloop init {d}' to create one, or pass the right "
                        "folder with -w")


def _open(path: Path | None = None) -> Workspace:
    """The workspace: the server's own when a server runs this command; else, if a server
    owns it, :class:`Forward` (main() sends the command there); else opened here."""
    served = _SERVED.get()
    if served is not None:
        return served.borrow()
    directory = path or _workspace_dir()
    _forward_if_served(directory)
    from demandloop.workspace import Workspace

    return Workspace.open(directory)


def _forward_if_served(directory: Path) -> None:
    from demandloop.serve import owner

    running = owner.find(directory.parent if directory.suffix == ".duckdb" else directory)
    if running is not None:
        raise Forward(running)


def _json(data: Any) -> None:
    _stdout().write(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2
                                  | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return records(df)


def _table(df: pd.DataFrame, title: str, formats: dict[str, str] | None = None) -> Any:
    """A frame as a table that fits the terminal (see :func:`frame_table`)."""
    return frame_table(df, title, formats, width=out.width)


def _say(as_json: bool, data: dict[str, Any], message: str) -> None:
    """A command's outcome: *data* as JSON with ``--json``, else the sentence."""
    if as_json:
        _json(data)
    else:
        out.print(message)


def _date(text: str) -> dt.datetime:
    """A date option's value as the store keeps times: naive UTC (an offset given, such as
    ``2026-03-01T10:00+02:00``, is applied)."""
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"'{text}' is not a date", hint="use YYYY-MM-DD") from None
    return at.astimezone(dt.UTC).replace(tzinfo=None) if at.tzinfo is not None else at


def _is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C inside a DuckDB query surfaces as DuckDB's interrupt, not KeyboardInterrupt."""
    import duckdb

    return isinstance(exc, duckdb.InterruptException) or (
        isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower())


def _print_report(r: Any, title: str, as_json: bool) -> None:
    warning = None
    if r.test_positives == 0 or r.test_positives == r.test_rows:
        kind = "positive" if r.test_positives == 0 else "negative"
        warning = (f"the test set after {r.split} has no {kind} record: AUC and calibration "
                   "cannot be measured on it (choose another --split)")
    if as_json:
        _json({**r.__dict__, "warning": warning} if warning else r.__dict__)
        return
    if warning:
        err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    out.print(f"{title}, point in time. Label: {r.label}. Trained on the {r.train_rows:,} "
              f"records open at {r.train_at} ({r.train_positives:,} positive, all known by "
              f"{r.split}); tested on the {r.test_rows:,} open at {r.split} "
              f"({r.test_positives:,} positive); mean predicted {r.mean_predicted:.3f} vs "
              f"observed {r.observed_rate:.3f}")
    out.print(_table(pd.DataFrame([
        {"model": "predictive", "AUC": r.auc, "Brier": r.brier},
        {"model": "baseline", "AUC": r.baseline_auc, "Brier": r.baseline_brier}]),
        "held-out quality (time split)", {"AUC": "{:.3f}", "Brier": "{:.4f}"}))
    out.print(_table(pd.DataFrame(r.calibration), "calibration (test set, quantile bins)",
                     {"predicted": "{:.3f}", "observed": "{:.3f}"}))

"""The ``demandloop`` command: parse, call one stage function, render (Rich or ``--json``).

One module per command group, each registering its commands on the root app of
:mod:`demandloop.cli.base` (which imports none of them, so there is no cycle): ``collect``,
``resolve``, ``score``, ``activate``, ``measure``, ``serve`` and ``admin``.

Errors are rendered once, here: ``error: <what is wrong> (<what to do>)`` plus any
``FILE:LINE: reason`` lines, and a non-zero exit; a traceback only with ``--debug``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable

import typer
from rich.markup import escape

from demandloop.cli.base import Forward, _is_interrupt, app, err
from demandloop.errors import DemandloopError, Interrupted

#: the command groups, in the loop's order: each registers its commands on the root app
#: when imported, and 'demandloop --help' lists them in this order
GROUPS = ("collect", "resolve", "score", "activate", "content", "sequences", "measure", "aeo",
          "serve", "admin")
for _group in GROUPS:
    importlib.import_module(f"demandloop.cli.{_group}")


def _one_line_summaries(t: typer.Typer) -> None:
    """Give every command the first paragraph of its docstring, its lines joined, as the
    summary a list of commands shows. Typer's Rich help keeps a docstring's line breaks
    there ("... within the horizon, from" / "firmographics and ..."), though not on the
    command's own page."""
    for command in t.registered_commands:
        doc = inspect.getdoc(command.callback) if command.callback else None
        if command.short_help is None and command.help is None and doc:
            command.short_help = " ".join(doc.split("\n\n")[0].split())
    for group in t.registered_groups:
        if group.typer_instance is not None:
            _one_line_summaries(group.typer_instance)


_one_line_summaries(app)

__all__ = ["app", "main", "run"]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; errors become one line (plus FILE:LINE details) and an exit code. When
    a running server owns the workspace, the command runs there and prints the same."""
    args = list(argv if argv is not None else sys.argv[1:])
    try:
        code = run(args)
    except Forward as fwd:
        from demandloop.serve.forward import forward

        running = fwd.running
        code = _guarded(lambda: forward(running, args), "--debug" in args)
    sys.exit(code)


def run(args: list[str]) -> int:
    """Run one command line in this process; returns its exit code. Output goes to the
    current streams (see :mod:`demandloop.cli.base`); :class:`Forward` passes through."""
    debug = "--debug" in args or bool(os.environ.get("DEMANDLOOP_DEBUG"))
    return _guarded(lambda: _invoke(args), debug)


def _invoke(args: list[str]) -> int:
    code = app(args=args, standalone_mode=False)
    # without standalone mode, click returns a command's typer.Exit code instead
    return code if isinstance(code, int) else 0


def _guarded(fn: Callable[[], int], debug: bool) -> int:
    try:
        return fn()
    except Interrupted as exc:
        err.print(str(exc), highlight=False)
        return exc.exit_code
    except DemandloopError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False,
                  soft_wrap=True)
        for line in getattr(exc, "problems", []):
            err.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        return _interrupted()
    except Exception as exc:
        if _is_interrupt(exc):
            return _interrupted()
        # Usage errors and exits: Typer >= 0.20 raises its own copies of click's exception
        # classes, so recognise them by what they do rather than by class.
        if hasattr(exc, "exit_code"):
            if hasattr(exc, "show"):
                exc.show(file=err.file)
            return int(exc.exit_code)
        # anything else is a bug: say so plainly, keep the details for --debug
        if debug:
            traceback.print_exc()
        err.print(f"[bold red]internal error:[/bold red] {type(exc).__name__}: "
                  f"{escape(str(exc))} (rerun with --debug and report it)", highlight=False,
                  soft_wrap=True)
        return 70


def _interrupted() -> int:
    err.print("interrupted (what a command had committed stays; run it again to finish)",
              highlight=False)
    return 130

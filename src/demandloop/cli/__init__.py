"""The ``demandloop`` command: parse, call one stage function, render (Rich or ``--json``).

One module per command group, each registering its commands on the root app of
:mod:`demandloop.cli.base` (which imports none of them, so there is no cycle): ``collect``,
``resolve``, ``score``, ``activate``, ``measure``, ``serve`` and ``admin``.

Errors are rendered once, here: ``error: <what is wrong> (<what to do>)`` plus any
``FILE:LINE: reason`` lines, and a non-zero exit; a traceback only with ``--debug``.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import typer
from rich.markup import escape

from demandloop.cli.base import _is_interrupt, app, err
from demandloop.errors import DemandloopError, Interrupted

#: the command groups, in the loop's order: each registers its commands on the root app
#: when imported, and 'demandloop --help' lists them in this order
GROUPS = ("collect", "resolve", "score", "activate", "sequences", "measure", "serve", "admin")
for _group in GROUPS:
    importlib.import_module(f"demandloop.cli.{_group}")

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; errors become one line (plus FILE:LINE details) and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(
        os.environ.get("DEMANDLOOP_DEBUG"))
    try:
        code = app(args=argv, standalone_mode=False)
        # without standalone mode, click returns a command's typer.Exit code instead
        if isinstance(code, int) and code:
            sys.exit(code)
    except Interrupted as exc:
        err.print(str(exc), highlight=False)
        sys.exit(exc.exit_code)
    except DemandloopError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False,
                  soft_wrap=True)
        for line in getattr(exc, "problems", []):
            err.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except Exception as exc:
        if _is_interrupt(exc):
            _interrupted()
        # Usage errors and exits: Typer >= 0.20 raises its own copies of click's exception
        # classes, so recognise them by what they do rather than by class.
        if hasattr(exc, "exit_code"):
            if hasattr(exc, "show"):
                exc.show()
            sys.exit(exc.exit_code)
        # anything else is a bug: say so plainly, keep the details for --debug
        if debug:
            traceback.print_exc()
        err.print(f"[bold red]internal error:[/bold red] {type(exc).__name__}: "
                  f"{escape(str(exc))} (rerun with --debug and report it)", highlight=False,
                  soft_wrap=True)
        sys.exit(70)


def _interrupted() -> None:
    err.print("interrupted (what a command had committed stays; run it again to finish)",
              highlight=False)
    sys.exit(130)

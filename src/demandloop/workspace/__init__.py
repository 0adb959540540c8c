"""The Python API: one object per workspace, the same operations as the CLI.

Example:
    >>> import tempfile, demandloop
    >>> ws = demandloop.open(tempfile.mkdtemp())
    >>> ws.accounts().empty
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from demandloop.workspace.activate import Activate
from demandloop.workspace.aeo import Aeo
from demandloop.workspace.collect import Collect, Loaded
from demandloop.workspace.content import Content
from demandloop.workspace.measure import Measure
from demandloop.workspace.personalize import Personalize
from demandloop.workspace.score import Score

__all__ = ["Loaded", "Workspace", "open"]


class Workspace(Collect, Score, Measure, Activate, Personalize, Content, Aeo):
    """A workspace directory: its settings and its store, and every verb of the loop.

    Each stage's verbs live in a mixin beside this module (``collect``, ``score``,
    ``measure``, ``activate``; the core in ``base``): each is a thin call into its stage's
    runner or queries, so what a verb does is read in the stage's folder."""


def open(path: str | Path = ".", **kwargs: Any) -> Workspace:  # noqa: A001 - mirrors io.open
    """Open a workspace; see :meth:`Workspace.open`."""
    return Workspace.open(path, **kwargs)

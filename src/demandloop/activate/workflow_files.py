"""Workflows as configured: ``[[activate.workflows]]`` in ``demandloop.toml`` plus every
``workflows/*.toml`` file, checked together (unique names, sequences that exist)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import TypeAdapter, ValidationError

from demandloop.config.activate import WorkflowSetting, check_enrolments
from demandloop.errors import ConfigError

if TYPE_CHECKING:
    from demandloop.workspace import Workspace

WORKFLOWS_DIR = "workflows"


def workflows(ws: Workspace) -> list[WorkflowSetting]:
    """``[[activate.workflows]]`` plus every ``workflows/*.toml`` (``[[workflows]]``)."""
    found = list(ws.settings.activate.workflows)
    folder = Path(ws.directory) / WORKFLOWS_DIR
    adapter = TypeAdapter(list[WorkflowSetting])
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            unknown = set(data) - {"workflows"}
            if unknown:
                raise ConfigError(f"{path}: unknown key '{sorted(unknown)[0]}'",
                                  hint="a workflow file holds [[workflows]] tables")
            found += adapter.validate_python(data.get("workflows", []))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path}: invalid workflow at '{where}': {first['msg']}") from None
    try:
        check_enrolments(found, [q.name for q in ws.settings.activate.sequences])
    except ValueError as exc:
        raise ConfigError(str(exc), hint="add the sequence as [[activate.sequences]] in "
                          "demandloop.toml") from None
    names = [w.name for w in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"workflow '{dupes[0]}' is defined twice",
                          hint="names must be unique across demandloop.toml and workflows/")
    return found

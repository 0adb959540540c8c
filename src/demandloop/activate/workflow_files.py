"""Workflows as configured: ``[[activate.workflows]]`` in ``demandloop.toml`` plus every
``workflows/*.toml`` file, checked together (unique names, sequences that exist)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from demandloop.config import files
from demandloop.config.activate import WorkflowSetting, check_enrolments
from demandloop.config.files import first_duplicate, tables_from_folder
from demandloop.errors import ConfigError
from demandloop.score.stages import stage_names

if TYPE_CHECKING:
    from demandloop.workspace import Workspace

WORKFLOWS_DIR = "workflows"


def workflows(ws: Workspace) -> list[WorkflowSetting]:
    """``[[activate.workflows]]`` plus every ``workflows/*.toml`` (``[[workflows]]``)."""
    found = list(ws.settings.activate.workflows)
    found += tables_from_folder(Path(ws.directory) / WORKFLOWS_DIR, "workflows",
                                WorkflowSetting, "workflow")
    try:
        check_enrolments(found, [q.name for q in ws.settings.activate.sequences])
    except ValueError as exc:
        raise ConfigError(str(exc), hint="add the sequence as [[activate.sequences]] in "
                          "demandloop.toml") from None
    # a stage no rule gives never changes to: the workflow would never fire, silently
    stages = stage_names(ws.settings.score.stages)
    for w in found:
        if w.when.trigger == "stage_changed" and w.when.to not in stages:
            raise ConfigError(f"workflow '{w.name}': no stage '{w.when.to}' (stages: "
                              f"{', '.join(stages)})",
                              hint="name a stage of [[score.stages]] in demandloop.toml")
    # a signing secret that is not set: every webhook went out unsigned, and a receiver
    # that checks signatures refused each one until it was dead
    for w in found:
        for a in w.then:
            if a.action == "notify" and a.secret_env and not os.environ.get(a.secret_env):
                raise ConfigError(f"workflow '{w.name}': secret_env names {a.secret_env}, "
                                  "which is not set here: its webhooks would go unsigned",
                                  hint=f"export {a.secret_env}=... where the workflows run "
                                  "(the shell of 'demandloop serve' or 'workflows run')")
    twice = first_duplicate(w.name for w in found)
    if twice:
        raise ConfigError(f"workflow '{twice}' is defined twice",
                          hint="names must be unique across demandloop.toml and workflows/")
    return found


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What an edit of the workflow files changes: each file's name, size and mtime."""
    return files.fingerprint(files.folder_files(directory / WORKFLOWS_DIR))


class Held:
    """The workflows a server fires: read again when a file of ``workflows/`` changes, and
    kept as they were when the new files cannot be read (:attr:`problem` says why), as a
    server keeps its experiences. A typo saved in a workflow file stopped the live loop
    before: each load's live workflows failed, and each rescore failed after scoring, so
    no alert, no decide snapshot and no sequence step of the loop ran until it was fixed.
    The server starts only with valid files (``serve`` refuses others)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._files = fingerprint(Path(ws.directory))
        self.flows = workflows(ws)
        self.problem: str | None = None

    def current(self) -> tuple[list[WorkflowSetting], str | None]:
        """The workflows in force, and the problem of the files when it is new (once per
        edit: the caller logs it)."""
        files = fingerprint(Path(self.ws.directory))
        if files == self._files:
            return self.flows, None
        self._files = files
        try:
            self.flows, self.problem = workflows(self.ws), None
            return self.flows, None
        except ConfigError as exc:
            self.problem = str(exc)
            return self.flows, self.problem

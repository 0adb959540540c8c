"""The base of every settings section: unknown keys are errors, assignments validated."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

#: a workspace id: stored on every row, in key files and log records
WORKSPACE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def said(error: Any) -> str:
    """The message of one of pydantic's errors (``ValidationError.errors()``) as a config
    error shows it: without the "Value error, " pydantic puts before a validator's own."""
    return str(error["msg"]).removeprefix("Value error, ")


class Section(BaseModel):
    """A ``[section]`` of demandloop.toml."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

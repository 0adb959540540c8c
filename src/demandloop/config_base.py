"""The base of every settings section: unknown keys are errors, assignments validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A ``[section]`` of demandloop.toml."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

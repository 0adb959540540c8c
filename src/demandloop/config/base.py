"""The base of every settings section: unknown keys are errors, assignments validated."""

from __future__ import annotations

from typing import Any

import jinja2
from pydantic import BaseModel, ConfigDict

#: a workspace id: stored on every row, in key files and log records
WORKSPACE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def said(error: Any) -> str:
    """The message of one of pydantic's errors (``ValidationError.errors()``) as a config
    error shows it: without the "Value error, " pydantic puts before a validator's own."""
    return str(error["msg"]).removeprefix("Value error, ")


#: parses templates for their syntax only (every environment demandloop renders with is a
#: sandbox of this syntax): a setting's template is checked as the file loads
_SYNTAX = jinja2.Environment(autoescape=False)


def check_template(source: str | None, what: str) -> None:
    """Refuse *source* (a Jinja2 template, *what* names the setting) that cannot be parsed:
    otherwise it surfaced only when rendered, and then as a fallback used in silence (a
    greeting, a personalised headline) or a message never sent."""
    if source is None:
        return
    try:
        _SYNTAX.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        said_ = " ".join((exc.message or "").split()).rstrip(".")  # (one line)
        raise ValueError(f"{what} is not a valid template: {said_} (line {exc.lineno})"
                         ) from None


class Section(BaseModel):
    """A ``[section]`` of demandloop.toml."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

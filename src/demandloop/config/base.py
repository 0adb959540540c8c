"""The base of every settings section: unknown keys are errors, assignments validated."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import jinja2
from pydantic import AfterValidator, BaseModel, ConfigDict

#: a workspace id: stored on every row, in key files and log records
WORKSPACE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def said(error: Any) -> str:
    """The message of one of pydantic's errors (``ValidationError.errors()``) as a config
    error shows it: without the "Value error, " pydantic puts before a validator's own."""
    return str(error["msg"]).removeprefix("Value error, ")


#: parses templates for their syntax only (every environment demandloop renders with is a
#: sandbox of this syntax): a setting's template is checked as the file loads
_SYNTAX = jinja2.Environment(autoescape=False)


def check_template(source: str | None, what: str) -> jinja2.nodes.Template | None:
    """Refuse *source* (a Jinja2 template, *what* names the setting) that cannot be parsed:
    otherwise it surfaced only when rendered, and then as a fallback used in silence (a
    greeting, a personalised headline) or a message never sent. Returns the parsed
    template (None for no *source*), for checks of the names it uses."""
    if source is None:
        return None
    try:
        return _SYNTAX.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        said_ = " ".join((exc.message or "").split()).rstrip(".")  # (one line)
        raise ValueError(f"{what} is not a valid template: {said_} (line {exc.lineno})"
                         ) from None


def check_http(value: str, name: str, example: str = "") -> None:
    """Refuse *value* (the setting *name*; empty: none) unless it is an http(s) URL with a
    host: ``collect.example.com`` was taken and then written into every link (an invite's,
    an unsubscribe header's) and handed to analytics.js, where nothing reaches it."""
    if not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name} '{value[:80]}' must start with http:// or https://"
                         + (f" ({example})" if example else ""))


def http_url(name: str, example: str) -> AfterValidator:
    """A field's check by :func:`check_http` (``Annotated[str, http_url(...)]``)."""
    def check(value: str) -> str:
        check_http(value, name, example)
        return value
    return AfterValidator(check)


class Section(BaseModel):
    """A ``[section]`` of demandloop.toml."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

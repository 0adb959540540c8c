"""One exception tree for demandloop.

Every error carries a message that says what is wrong *and* what to do next. Edges render
them once: the CLI prints ``error: <message>`` and exits non-zero (traceback only with
``--debug``); the HTTP API answers ``{"error": {"code": ..., "message": ...}}``.

Example:
    >>> from demandloop.errors import ConfigError
    >>> str(ConfigError("unknown key 'sotre'", hint="valid keys: store, workspace"))
    "unknown key 'sotre' (valid keys: store, workspace)"
"""

from __future__ import annotations


class DemandloopError(Exception):
    """Base class: a problem the user can fix, rendered as one line."""

    #: process exit code used by the CLI
    exit_code: int = 1
    #: stable machine-readable code used by the API
    code: str = "error"
    #: HTTP status an API edge answers with
    http_status: int = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(DemandloopError):
    """The workspace configuration (demandloop.toml or environment) is invalid."""

    exit_code = 2
    code = "invalid_config"


class UsageError(DemandloopError):
    """A command was called with arguments that cannot work together."""

    exit_code = 2
    code = "usage"


class InputError(DemandloopError):
    """Input data (an events file, a CRM CSV, a Parquet export) is invalid.

    ``problems`` lists every ``FILE:LINE: reason`` found, so a user can fix them all at once.
    """

    exit_code = 3
    code = "invalid_input"

    def __init__(
        self, message: str, *, hint: str | None = None, problems: list[str] | None = None
    ) -> None:
        self.problems = problems or []
        super().__init__(message, hint=hint)


class StoreError(DemandloopError):
    """The database cannot be opened or written."""

    exit_code = 4
    code = "store_unavailable"
    http_status = 503


class StoreLockedError(StoreError):
    """Another process owns the database file (DuckDB allows one writer process)."""

    code = "store_locked"


class NotFoundError(DemandloopError):
    """A named thing (account, person, workspace) does not exist."""

    exit_code = 5
    code = "not_found"
    http_status = 404


class Interrupted(DemandloopError):
    """The user pressed Ctrl-C; the message says what was kept."""

    exit_code = 130
    code = "interrupted"

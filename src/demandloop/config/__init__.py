"""Typed settings: environment variables > ``demandloop.toml`` > defaults.

One module per stage holds its sections (``collect``, ``resolve``, ``score``, ``activate``,
``measure``); this one assembles them into :class:`Settings`, loads them and finds a
workspace's files.

A workspace is a directory holding ``demandloop.toml`` (optional) and, by default, the DuckDB
file. Every field is documented below; ``demandloop init`` writes the same documentation as a
commented example file. Unknown keys are an error that names the key and the valid ones,
because a misspelt key silently ignored is a setting the user believes is on.

Environment variables use the prefix ``DEMANDLOOP_`` and ``__`` between section and field,
for example ``DEMANDLOOP_STORE__PATH=/data/dl.duckdb``.

Example:
    >>> s = Settings.load(None)
    >>> s.store.path
    'demandloop.duckdb'
"""

from __future__ import annotations

import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from demandloop.config.activate import ActivateSettings
from demandloop.config.base import WORKSPACE_ID_PATTERN, said
from demandloop.config.base import Section as _Section
from demandloop.config.chat import ChatSettings, ContentSettings
from demandloop.config.collect import CollectorSettings, CollectSettings, IngestSettings
from demandloop.config.compute import ComputeSettings
from demandloop.config.measure import MeasureSettings
from demandloop.config.meetings import MeetingSettings
from demandloop.config.personalize import PersonalizeSettings
from demandloop.config.resolve import EnrichSettings, IdentitySettings
from demandloop.config.score import ScoreSettings
from demandloop.config.toml import render_example
from demandloop.errors import ConfigError

#: a DuckDB memory size: a positive number and a unit
_SIZE = re.compile(r"\s*(\d+(\.\d+)?|\.\d+)\s*([KMGT]i?B)\s*", re.IGNORECASE)

CONFIG_FILE = "demandloop.toml"


class WorkspaceSettings(_Section):
    """Which workspace this directory's data belongs to."""

    id: str = Field(
        "default",
        pattern=WORKSPACE_ID_PATTERN,
        description="Workspace id stored on every row; lower-case letters, digits, - and _.",
    )
    name: str = Field("My workspace", description="Display name shown in reports.")


class StoreSettings(_Section):
    """Where and how the embedded DuckDB database lives."""

    path: str = Field(
        "demandloop.duckdb",
        description="Database file, relative to the workspace directory (or absolute).",
    )
    threads: int | None = Field(
        None, ge=1, le=256, description="DuckDB worker threads; empty means one per core. "
        "A running server keeps one, and gives its live loop these after a quiet spell."
    )
    memory_limit: str | None = Field(
        None, description="DuckDB memory limit such as '4GB' or '1800MB' (units KB, MB, GB, "
        "TB, KiB, MiB, GiB, TiB); empty means DuckDB's default (80 % of the memory)."
    )

    @field_validator("memory_limit")
    @classmethod
    def _a_size(cls, value: str | None) -> str | None:
        # checked here, not left to DuckDB, whose refusal surfaced as "cannot open
        # database" (and it takes '-1GB' as no limit, '2 gigabytes' as zero)
        size = _SIZE.fullmatch(value) if value is not None else None
        if value is not None and (size is None or float(size.group(1)) <= 0):
            raise ValueError(f"'{value}' is not a size: write a number and a unit, such as "
                             "'4GB' or '1800MB' (units KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
        return value


class Settings(BaseSettings):
    """All settings of one workspace."""

    model_config = SettingsConfigDict(
        env_prefix="DEMANDLOOP_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)  # type: ignore[arg-type]
    store: StoreSettings = Field(default_factory=StoreSettings)  # type: ignore[arg-type]
    ingest: IngestSettings = Field(default_factory=IngestSettings)  # type: ignore[arg-type]
    identity: IdentitySettings = Field(default_factory=IdentitySettings)  # type: ignore[arg-type]
    enrich: EnrichSettings = Field(default_factory=EnrichSettings)
    score: ScoreSettings = Field(default_factory=ScoreSettings)  # type: ignore[arg-type]
    measure: MeasureSettings = Field(default_factory=MeasureSettings)  # type: ignore[arg-type]
    collect: CollectSettings = Field(default_factory=CollectSettings)  # type: ignore[arg-type]
    collector: CollectorSettings = Field(default_factory=CollectorSettings)  # type: ignore[arg-type]
    activate: ActivateSettings = Field(default_factory=ActivateSettings)  # type: ignore[arg-type]
    personalize: PersonalizeSettings = Field(default_factory=PersonalizeSettings)  # type: ignore[arg-type]
    meetings: MeetingSettings = Field(default_factory=MeetingSettings)  # type: ignore[arg-type]
    content: ContentSettings = Field(default_factory=ContentSettings)  # type: ignore[arg-type]
    chat: ChatSettings = Field(default_factory=ChatSettings)  # type: ignore[arg-type]
    compute: ComputeSettings = Field(default_factory=ComputeSettings)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _across_sections(self) -> Settings:
        boxes = [m.name for m in self.activate.mailboxes]
        if self.meetings.mailbox and self.meetings.mailbox not in boxes:
            # every booking's invite was "not sent", found only in the booking's answer
            raise ValueError(f"meetings.mailbox: no mailbox '{self.meetings.mailbox}' "
                             f"(mailboxes: {', '.join(boxes) or 'none'}; add it as "
                             "[[activate.mailboxes]])")
        stages = [st.name for st in self.score.stages]
        if self.measure.engaged_stage not in stages:
            # refused only when a funnel was asked for (the report, the dashboard, the API)
            raise ValueError(f"measure.engaged_stage: no stage '{self.measure.engaged_stage}'"
                             f" (stages: {', '.join(stages)})")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry the parsed TOML file, so env must come first to win over it.
        return (env_settings, init_settings)

    @classmethod
    def load(cls, directory: Path | str | None) -> Settings:
        """Load ``demandloop.toml`` from *directory* (if present) and apply env overrides."""
        data: dict[str, Any] = {}
        source = "environment"
        if directory is not None:
            path = Path(directory) / CONFIG_FILE
            if path.is_file():
                source = str(path)
                try:
                    data = tomllib.loads(path.read_text(encoding="utf-8"))
                except tomllib.TOMLDecodeError as exc:
                    raise ConfigError(
                        f"{path}: not valid TOML: {exc}",
                        hint="fix the syntax, or run 'demandloop init --force' for a fresh file",
                    ) from exc
        _check_environment(os.environ)
        try:
            return cls(**data)
        except ValidationError as exc:
            raise _config_error(exc, _blame(exc, source)) from None

    @staticmethod
    def file_data(directory: Path | str) -> dict[str, Any] | None:
        """What ``demandloop.toml`` in *directory* says now, parsed (comments and layout
        aside); None when it cannot be read. A server compares it with what it started
        with: it runs on the settings it read then."""
        try:
            return tomllib.loads((Path(directory) / CONFIG_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None

    def public_dict(self) -> dict[str, Any]:
        """Settings as plain data with every secret masked (safe to print or log)."""

        def mask(value: Any) -> Any:
            if isinstance(value, SecretStr):
                return "********" if value.get_secret_value() else ""
            if isinstance(value, dict):
                return {k: mask(v) for k, v in value.items()}
            return value

        return mask(self.model_dump())  # type: ignore[no-any-return]


def locate(path: str | Path, settings: Settings | None = None
           ) -> tuple[Path, Settings, Path]:
    """A workspace's folder, settings and database file, from its folder or its
    ``.duckdb`` file (the database defaults to ``store.path`` inside the folder)."""
    p = Path(path)
    if p.suffix == ".duckdb" or p.is_file():
        return p.parent, settings or Settings.load(p.parent), p
    settings = settings or Settings.load(p)
    db_path = Path(settings.store.path)
    return p, settings, db_path if db_path.is_absolute() else p / db_path


def _check_environment(env: Mapping[str, str]) -> None:
    """Refuse a ``DEMANDLOOP_`` variable meant as a setting that names none: pydantic's
    environment source reads only the names of sections, so ``DEMANDLOOP_SCOR__THREADS``
    or ``DEMANDLOOP_STORE_PATH`` (one underscore) would be ignored without a word. Others
    (``DEMANDLOOP_DEBUG``, ``DEMANDLOOP_DIR``, a test suite's own) are not settings and
    stay allowed: only a name with the ``__`` delimiter, or one that starts like a section,
    is taken for a setting."""
    sections = sorted(Settings.model_fields)
    for key in env:
        if not key.upper().startswith("DEMANDLOOP_"):
            continue
        name = key[len("DEMANDLOOP_"):].lower()
        head = name.split("__", 1)[0]
        if "__" in name and head not in sections:
            raise ConfigError(f"environment variable {key}: unknown section '{head}'",
                              hint="a setting's variable is DEMANDLOOP_<SECTION>__<KEY>, "
                              f"the sections being {', '.join(sections)}")
        if "__" not in name and name not in sections:
            meant = next((f for f in sections if name.startswith(f + "_")), None)
            if meant is not None:
                rest = name[len(meant) + 1:].upper()
                raise ConfigError(f"environment variable {key} is not a setting",
                                  hint=f"separate the section and the key with two "
                                  f"underscores: DEMANDLOOP_{meant.upper()}__{rest}")


def _blame(exc: ValidationError, source: str) -> str:
    """Where the failing value came from: the environment variable that set it (which wins
    over the file), else the file."""
    loc = [str(p) for p in exc.errors()[0]["loc"] if not isinstance(p, int)]
    for n in range(len(loc), 0, -1):  # a whole section may come from one JSON variable
        name = "DEMANDLOOP_" + "__".join(loc[:n]).upper()
        if any(k.upper() == name for k in os.environ):
            return f"environment variable {name}"
    return source


def _section_fields(path: tuple[str | int, ...]) -> list[str]:
    """The keys of the table at *path* (a list's index goes into the list's item model:
    ``chat.playbooks[1]`` lists a playbook's keys, not the chat section's)."""
    model: type[BaseModel] = Settings
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return sorted(model.model_fields)


def _key(loc: tuple[str | int, ...]) -> str:
    """A setting's place as the file writes it: ``chat.playbooks[2].audience`` for the
    second ``[[chat.playbooks]]`` table (pydantic's ``chat.playbooks.1.audience`` counts
    from 0, one off from the tables a user counts in the file)."""
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else ("." if out else "") + part
    return out


def _config_error(exc: ValidationError, source: str) -> ConfigError:
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    key = _key(loc)
    if first["type"] == "extra_forbidden":
        valid = ", ".join(_section_fields(loc[:-1]))
        where = f"[{_key(loc[:-1])}]" if len(loc) > 1 else "the top level"
        return ConfigError(
            f"{source}: unknown key '{key}'",
            hint=f"valid keys in {where}: {valid}",
        )
    more = f" and {len(exc.errors()) - 1} more problem(s)" if len(exc.errors()) > 1 else ""
    # (a check across sections has no one key: its message names the keys it compared)
    what = f"invalid value for '{key}': " if key else ""
    return ConfigError(
        f"{source}: {what}{said(first)}{more}",
        hint="see the commented example written by 'demandloop init'",
    )


def example_toml() -> str:
    """A commented ``demandloop.toml`` documenting every field with its default."""
    return render_example(Settings)

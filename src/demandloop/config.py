"""Typed settings: environment variables > ``demandloop.toml`` > defaults.

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
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from demandloop.config_activate import ActivateSettings
from demandloop.config_base import WORKSPACE_ID_PATTERN
from demandloop.config_base import Section as _Section
from demandloop.config_collect import CollectorSettings, CollectSettings
from demandloop.config_toml import render_example
from demandloop.errors import ConfigError

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
        None, ge=1, le=256, description="DuckDB worker threads; empty means one per core."
    )
    memory_limit: str | None = Field(
        None, description="DuckDB memory limit such as '4GB'; empty means DuckDB's default."
    )


class IngestSettings(_Section):
    """Validation limits applied to every incoming Segment-spec message."""

    max_event_bytes: int = Field(
        32 * 1024, ge=1024, le=1024 * 1024, description="Largest accepted message (bytes)."
    )
    max_message_id_length: int = Field(
        100, ge=8, le=1000, description="Longest accepted messageId (characters)."
    )


class IdentitySettings(_Section):
    """How email addresses map to accounts."""

    personal_email_domains: list[str] = Field(
        default_factory=list,
        description="Extra personal (free) email domains that must never create an account.",
    )
    business_email_domains: list[str] = Field(
        default_factory=list,
        description="Domains wrongly listed as free mail that are real companies here.",
    )
    domain_aliases: dict[str, str] = Field(
        default_factory=dict,
        description="Domain -> the account domain it belongs to (e.g. acme.co.uk = acme.com).",
    )
    max_users_per_device: int = Field(
        2, ge=1, le=100,
        description="An anonymous id linked to more user ids is a shared device: not merged.",
    )
    use_asn: bool = Field(
        True, description="Look up anonymous visitors' IPs in the open IP-to-organisation table.",
    )


class ChannelRule(_Section):
    """A channel rule of your own; any listed condition matching names the channel."""

    channel: str = Field(..., min_length=1, description="Channel name to assign.")
    utm_source: list[str] = Field(default_factory=list, description="utm_source values.")
    utm_medium: list[str] = Field(default_factory=list, description="utm_medium values.")
    referrer_host: list[str] = Field(default_factory=list, description="Referrer hosts.")
    url_contains: list[str] = Field(default_factory=list, description="URL fragments.")


class EnrichSettings(_Section):
    """Channel, motion and topic rules."""

    brand_terms: list[str] = Field(
        default_factory=list,
        description="Brand words: a search whose term or campaign names one is branded search.",
    )
    channel_rules: list[ChannelRule] = Field(
        default_factory=list,
        description="Your own channel rules, checked before the built-in ones "
        "([[enrich.channel_rules]] tables).",
    )
    topics: dict[str, str] = Field(
        default_factory=dict,
        description="Topic name -> regular expression over page paths (checked first).",
    )

    @field_validator("topics")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for topic, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"topic '{topic}': bad regular expression: {exc}") from None
        return value


class BandSetting(_Section):
    """A numeric range worth some fit points: min <= value < max."""

    min: float = Field(0, description="Lowest value in the band (inclusive).")
    max: float = Field(float("inf"), description="Upper end of the band (exclusive).")
    points: float = Field(..., description="Points earned inside the band.")


class FitSettings(_Section):
    """The ideal customer profile: points per criterion (scaled to 0-100)."""

    industries: dict[str, float] = Field(default_factory=lambda: {
        "Software": 30.0, "Financial Services": 22.0, "Professional Services": 18.0,
        "Telecommunications": 12.0, "Media": 8.0}, description="Industry -> points.")
    countries: dict[str, float] = Field(default_factory=lambda: {
        "US": 15.0, "GB": 14.0, "CA": 14.0, "NL": 12.0, "AU": 12.0, "DE": 10.0, "SG": 6.0},
        description="Country (ISO code) -> points.")
    technologies: dict[str, float] = Field(default_factory=lambda: {
        "Salesforce": 10.0, "HubSpot": 8.0, "Segment": 6.0, "Marketo": 5.0,
        "Snowflake": 4.0},
        description="Technology in use -> points (they add up).")
    employees: list[BandSetting] = Field(default_factory=lambda: [
        BandSetting(min=200, max=5000, points=30), BandSetting(min=50, max=200, points=15),
        BandSetting(min=5000, max=20000, points=15)],
        description="Employee bands ([[score.fit.employees]] tables with min, max, points).")
    revenue: list[BandSetting] = Field(default_factory=list,
                                       description="Annual revenue bands, like employees.")


class ConditionSetting(_Section):
    """One condition of a stage or MQL rule: field, operator, value."""

    field: str = Field(..., description="Feature name (see docs/scoring.md).")
    op: Literal[">=", ">", "<=", "<", "==", "!="] = Field(">=", description="Comparison.")
    value: float | bool = Field(..., description="Number (or true/false) to compare with.")


def _check_fields(conditions: list[ConditionSetting], allowed: dict[str, str]) -> None:
    for c in conditions:
        if c.field not in allowed:
            raise ValueError(f"unknown field '{c.field}' (valid: {', '.join(sorted(allowed))})")


class StageSetting(_Section):
    """A buying stage: all conditions must hold, and one of 'any' when given."""

    name: str = Field(..., min_length=1, description="Stage name.")
    all: list[ConditionSetting] = Field(default_factory=list, description="All must hold.")
    any: list[ConditionSetting] = Field(default_factory=list,
                                        description="At least one must hold (if given).")

    @field_validator("all", "any")
    @classmethod
    def _account_fields(cls, value: list[ConditionSetting]) -> list[ConditionSetting]:
        from demandloop.score.stages import ACCOUNT_FEATURES

        _check_fields(value, ACCOUNT_FEATURES)
        return value


class MqlSetting(_Section):
    """When a person is marketing qualified (same condition language as stages)."""

    all: list[ConditionSetting] = Field(default_factory=lambda: [
        ConditionSetting(field="account_fit", op=">=", value=40.0)],
        description="All must hold.")
    any: list[ConditionSetting] = Field(default_factory=lambda: [
        ConditionSetting(field="engagement", op=">=", value=15.0),
        ConditionSetting(field="demo_requests_30d", op=">=", value=1.0)],
        description="At least one must hold (if given).")

    @field_validator("all", "any")
    @classmethod
    def _person_fields(cls, value: list[ConditionSetting]) -> list[ConditionSetting]:
        from demandloop.score.stages import PERSON_FEATURES

        _check_fields(value, PERSON_FEATURES)
        return value


def _c(field: str, op: str, value: float | bool) -> ConditionSetting:
    return ConditionSetting(field=field, op=op, value=value)  # type: ignore[arg-type]


def _default_stages() -> list[StageSetting]:
    return [
        StageSetting(name="customer", all=[_c("won_opportunities", ">=", 1.0)]),
        StageSetting(name="opportunity", all=[_c("open_opportunities", ">=", 1.0)]),
        StageSetting(name="mqa", all=[_c("fit", ">=", 50.0)],
                     any=[_c("engagement", ">=", 25.0), _c("demo_requests_30d", ">=", 1.0),
                          _c("surging", "==", True)]),
        StageSetting(name="engaged", all=[_c("engagement", ">=", 5.0)]),
        StageSetting(name="aware", all=[_c("touches_90d", ">=", 1.0)]),
        StageSetting(name="target", all=[_c("target", "==", True)]),
    ]


class CommitteeSetting(_Section):
    """The buying roles a deal needs: 'function' or 'function:minimum seniority'."""

    roles: list[str] = Field(default_factory=lambda: [
        "marketing:vp", "marketing:manager", "revenue_operations", "sales:manager", "it",
        "finance"], description="Required roles, e.g. 'marketing:vp' or 'finance'.")
    window_days: int = Field(90, ge=1, le=730,
                             description="A person counts when engaged in this many days.")

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        from demandloop.score.stages import SENIORITY_RANK

        for role in value:
            _, _, seniority = role.partition(":")
            if seniority and seniority not in SENIORITY_RANK:
                raise ValueError(f"role '{role}': unknown seniority '{seniority}' "
                                 f"(valid: {', '.join(SENIORITY_RANK)})")
        return value


class ScoreSettings(_Section):
    """Engagement and intent: the one definition marketing and sales share."""

    half_life_days: float = Field(14.0, gt=0, le=3650,
                                  description="Engagement halves every N days.")
    daily_caps: dict[str, float] = Field(default_factory=dict,
                                         description="Activity -> max weight counted per day "
                                         "(adds to / overrides the built-in caps).")
    surge_recent_days: int = Field(7, ge=1, le=90, description="Intent: recent window (days).")
    surge_baseline_days: int = Field(90, ge=7, le=730,
                                     description="Intent: trailing baseline window (days).")
    surge_threshold: float = Field(2.0, gt=1, description="Surge when recent >= N x usual.")
    surge_min_recent: float = Field(5.0, ge=0,
                                    description="...and at least this much recent weight.")
    mqa_stage: str = Field("mqa", description="The stage that counts as MQA (for SLA).")
    sla_hours: float = Field(48.0, gt=0,
                             description="Hours from MQA/MQL to the first sales touch.")
    stages: list[StageSetting] = Field(
        default_factory=_default_stages,
        description="Stages, bottom of the funnel first ([[score.stages]] tables).")
    fit: FitSettings = Field(default_factory=FitSettings)
    mql: MqlSetting = Field(default_factory=MqlSetting)
    committee: CommitteeSetting = Field(default_factory=CommitteeSetting)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _stage_names(self) -> ScoreSettings:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"score.stages: duplicate stage names in {names}")
        if self.mqa_stage not in names:
            raise ValueError(f"score.mqa_stage: unknown stage '{self.mqa_stage}' "
                             f"(stages: {', '.join(names)})")
        return self


class MeasureSettings(_Section):
    """Funnel, demand health and attribution."""

    engaged_stage: str = Field("engaged", description="The stage that counts as engaged in "
                               "the funnel (it and every stage below it in [score.stages]).")
    influence_window_days: int = Field(90, ge=1, le=730, description="Pipeline influence: "
                                       "a touch this many days before an opportunity counts.")
    lookback_days: int = Field(0, ge=0, le=3650, description="Attribution: only touches this "
                               "close to the conversion (0 = all history).")
    decay_half_life_days: float = Field(7.0, gt=0, le=365,
                                        description="Time-decay attribution half-life (days).")
    markov_repeats: Literal["keep", "collapse"] = Field(
        "keep", description="Markov: keep repeated consecutive channels or collapse them "
        "(identical at order 1; ChannelAttribution collapses at order 1 and keeps above).")
    health_alpha: float = Field(0.05, gt=0, lt=0.5,
                                description="Demand health: significance level of trend tests.")
    currency: str = Field("$", max_length=8, description="Symbol printed before money in "
                          "reports (e.g. $, €, R$).")


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
        try:
            return cls(**data)
        except ValidationError as exc:
            raise _config_error(exc, _blame(exc, source)) from None

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
    model: type[BaseModel] = Settings
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return sorted(model.model_fields)


def _config_error(exc: ValidationError, source: str) -> ConfigError:
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(p) for p in loc)
    if first["type"] == "extra_forbidden":
        valid = ", ".join(_section_fields(loc[:-1]))
        where = f"[{'.'.join(str(p) for p in loc[:-1])}]" if len(loc) > 1 else "the top level"
        return ConfigError(
            f"{source}: unknown key '{key}'",
            hint=f"valid keys in {where}: {valid}",
        )
    more = f" and {len(exc.errors()) - 1} more problem(s)" if len(exc.errors()) > 1 else ""
    return ConfigError(
        f"{source}: invalid value for '{key}': {first['msg']}{more}",
        hint="see the commented example written by 'demandloop init'",
    )


def example_toml() -> str:
    """A commented ``demandloop.toml`` documenting every field with its default."""
    return render_example(Settings)

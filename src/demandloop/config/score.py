"""Settings of the score stage (``[score]``): ICP fit, stages and MQL rules, the buying
committee, engagement and intent."""

from __future__ import annotations

import json

from pydantic import Field, field_validator, model_validator

from demandloop.config.base import Section as _Section
from demandloop.config.conditions import (
    ACCOUNT_FEATURES,
    PERSON_FEATURES,
    SENIORITY_RANK,
    ConditionSetting,
)

#: the activities a touch can have (page views, then the track events'
#: ``demandloop.enrich.touches.ACTIVITIES``; a test holds the two equal): what a daily cap
#: may name
ACTIVITY_NAMES = ("page_view", "high_intent_page", "demo_request", "meeting_booked", "trial",
                  "form_fill", "webinar_registration", "webinar_attended",
                  "sales_email_reply", "sales_email")


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


#: the stage and MQL features that are true or false; every other one is a number
_FLAGS = frozenset({"surging", "target"})


def _check_fields(conditions: list[ConditionSetting], allowed: dict[str, str]) -> None:
    """Every condition names a feature of *allowed*, with a value of its kind: a number
    for a number (``contains`` takes none), true or false for a flag. A value of another
    kind (``surging >= "yes"``) was refused only when scoring ran."""
    for c in conditions:
        if c.field not in allowed:
            raise ValueError(f"unknown field '{c.field}' (valid: {', '.join(sorted(allowed))})")
        values = c.value if isinstance(c.value, list) else [c.value]
        flag = c.field in _FLAGS
        fits = all(isinstance(v, bool) if flag else
                   isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if c.op == "contains" or (isinstance(c.value, list) != (c.op in ("in", "not_in"))):
            raise ValueError(f"{c.field} {c.op} {json.dumps(c.value)}: "
                             + ("contains is for text and lists, and features are numbers "
                                "or flags" if c.op == "contains" else
                                "in and not_in take a list; the other operators one value"))
        if not fits:
            raise ValueError(f"{c.field} {c.op} {json.dumps(c.value)}: {c.field} is "
                             + ("true or false: compare it with true or false" if flag else
                                "a number: compare it with a number"))


class StageSetting(_Section):
    """A buying stage: all conditions must hold, and one of 'any' when given."""

    name: str = Field(..., min_length=1, description="Stage name.")
    all: list[ConditionSetting] = Field(default_factory=list, description="All must hold.")
    any: list[ConditionSetting] = Field(default_factory=list,
                                        description="At least one must hold (if given).")

    @field_validator("all", "any")
    @classmethod
    def _account_fields(cls, value: list[ConditionSetting]) -> list[ConditionSetting]:
        _check_fields(value, ACCOUNT_FEATURES)
        return value


class MqlSetting(_Section):
    """When a person is marketing qualified (same condition language as stages)."""

    all: list[ConditionSetting] = Field(default_factory=lambda: [
        ConditionSetting(field="account_fit", op=">=", value=40.0)],
        description="All must hold.")
    any: list[ConditionSetting] = Field(default_factory=lambda: [
        ConditionSetting(field="engagement", op=">=", value=15.0),
        ConditionSetting(field="demo_requests_30d", op=">=", value=1.0),
        ConditionSetting(field="meetings_30d", op=">=", value=1.0)],
        description="At least one must hold (if given).")

    @field_validator("all", "any")
    @classmethod
    def _person_fields(cls, value: list[ConditionSetting]) -> list[ConditionSetting]:
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
                          _c("meetings_30d", ">=", 1.0), _c("surging", "==", True)]),
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
                                         "(adds to / overrides the built-in caps; 0 counts "
                                         "none of it).")
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

    @field_validator("daily_caps")
    @classmethod
    def _caps(cls, value: dict[str, float]) -> dict[str, float]:
        # a misspelt activity would cap nothing and say nothing
        unknown = sorted(set(value) - set(ACTIVITY_NAMES))
        if unknown:
            raise ValueError(f"unknown activity '{unknown[0]}' (activities: "
                             f"{', '.join(ACTIVITY_NAMES)})")
        negative = sorted(k for k, v in value.items() if not v >= 0)
        if negative:
            raise ValueError(f"the cap of '{negative[0]}' is {value[negative[0]]}: a cap is "
                             "0 or more (0 counts none of that activity)")
        return value

    @model_validator(mode="after")
    def _stage_names(self) -> ScoreSettings:
        names = [s.name for s in self.stages]
        if len({n.casefold() for n in names}) != len(names):
            # filters (--stage, ?stage=) match a stage's name in any case
            raise ValueError(f"score.stages: duplicate stage names in {names} (names "
                             "differing only in case are the same name)")
        if self.mqa_stage not in names:
            raise ValueError(f"score.mqa_stage: unknown stage '{self.mqa_stage}' "
                             f"(stages: {', '.join(names)})")
        return self


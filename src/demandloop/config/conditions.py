"""How a condition is written in ``demandloop.toml`` and what it may name: the one condition
language (:mod:`demandloop.conditions`) of stage and MQL rules, segments, workflow ``if``
lists and territories, with the fields each kind of rule may name.

The fields live here, with the settings, so the settings can check a rule when they load
without reaching into the stages that evaluate it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from demandloop.config.base import Section
from demandloop.errors import UsageError

Op = Literal["==", "!=", ">=", ">", "<=", "<", "in", "not_in", "contains"]
Value = bool | int | float | str | list[bool | int | float | str]


class ConditionSetting(Section):
    """One condition: field, operator, value (a stage or MQL rule's; '>=' unless given)."""

    field: str = Field(..., description="Feature name (see docs/scoring.md).")
    op: Op = Field(">=", description="Comparison: ==, !=, >=, >, <=, <, in, not_in, contains.")
    value: Value = Field(..., description="What to compare with (a list for in / not_in).")


class SegmentCondition(ConditionSetting):
    """One condition of a segment, workflow or territory: the same language, '==' unless
    given."""

    field: str = Field(..., description="A field of the segment's entity.")
    op: Op = Field("==", description="Comparison: ==, !=, >=, >, <=, <, in, not_in, contains.")


#: account features a stage rule may name
ACCOUNT_FEATURES: dict[str, str] = {
    "fit": "ICP fit, 0-100",
    "engagement": "decayed, capped engagement",
    "recent": "capped touch weight in the last 7 days",
    "surge": "recent engagement / usual level",
    "surging": "true when the account surges",
    "people": "distinct known people engaged",
    "touches_90d": "touches in the last 90 days",
    "high_intent_30d": "high-intent pages, demo requests and trials in 30 days",
    "demo_requests_30d": "demo requests in the last 30 days",
    "meetings_30d": "meetings booked in the last 30 days (Meeting Booked events)",
    "open_opportunities": "opportunities created and not closed",
    "won_opportunities": "opportunities won",
    "target": "on the target account list",
    "committee_coverage": "share of the required buying roles engaged (0-1)",
}
#: person features an MQL rule may name
PERSON_FEATURES: dict[str, str] = {
    "engagement": "the person's decayed, capped engagement",
    "account_fit": "their account's ICP fit",
    "demo_requests_30d": "their demo requests in the last 30 days",
    "forms_30d": "their form fills in the last 30 days",
    "meetings_30d": "their meetings booked in the last 30 days",
    "seniority_rank": "0 individual contributor .. 4 C-level",
}
SENIORITY_RANK = {"individual_contributor": 0, "manager": 1, "director": 2, "vp": 3,
                  "c_level": 4}


#: fields an account segment may name (CRM fields and the latest scores)
ACCOUNT_FIELDS: dict[str, str] = {
    "account_id": "account id (the domain when known)", "domain": "website domain",
    "name": "company name", "industry": "industry", "employees": "employee count",
    "revenue": "annual revenue", "country": "country code", "target": "target account flag",
    "tier": "account tier", "owner": "account owner", "stage": "buying stage",
    "fit": "ICP fit 0-100", "band": "fit band (Strong, Moderate, Weak)",
    "engagement": "decayed engagement", "intent": "surge ratio", "surging": "surging now",
    "people": "people engaged", "committee_coverage": "buying-committee coverage 0-1",
}
#: fields a person segment may name (plus every account field prefixed ``account_``)
PERSON_FIELDS: dict[str, str] = {
    "person_id": "person id", "email": "email", "first_name": "first name",
    "last_name": "last name", "title": "job title", "seniority": "seniority",
    "job_function": "job function",
    **{f"account_{k}": f"their account's {v}" for k, v in ACCOUNT_FIELDS.items()
       if k != "account_id"},
    "account_id": "their account's id",
}


def fields_for(entity: str) -> dict[str, str]:
    if entity not in ("account", "person"):
        raise UsageError(f"unknown segment entity '{entity}'", hint="use account or person")
    return ACCOUNT_FIELDS if entity == "account" else PERSON_FIELDS

"""Settings of meeting routing (``[meetings]``): the reps who take meetings, their hours and
calendars, and the rules that route an account to them.

Routing order (:mod:`demandloop.activate.routing`): the account's CRM owner when they are a
rep free at the slot; else the first rule whose conditions the account meets; else the
fallback; within the chosen reps, a weighted round robin.
"""

from __future__ import annotations

import re
import zoneinfo

from pydantic import Field, field_validator, model_validator

from demandloop.config.base import Section
from demandloop.config.conditions import SegmentCondition
from demandloop.config.files import first_duplicate
from demandloop.config.personalize import check_visit_fields

_HOURS = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d$")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class RepSetting(Section):
    """One rep who takes meetings."""

    name: str = Field(..., min_length=1, description="The rep's name as the CRM's account "
                      "owner field holds it (so an account's owner is found).")
    email: str = Field(..., pattern=r"^[^@\s]+@[^@\s]+$", description="Where invites go.")
    timezone: str = Field("UTC", description="IANA time zone of the working hours.")
    hours: str = Field("09:00-17:00", description="Working hours, HH:MM-HH:MM, local time.")
    days: list[str] = Field(default_factory=lambda: list(DAYS[:5]),
                            description="Working days (mon..sun).")
    weight: int = Field(100, ge=0, le=10_000, description="Share of round-robin meetings "
                        "relative to the other reps' weights (0: only as owner).")
    priority: int = Field(2, ge=0, le=4, description="Among reps equally short of their "
                          "share, the higher priority is picked first.")
    busy_ics: str = Field("", description="An iCalendar file or URL whose events are busy "
                          "time (a free/busy or a calendar export).")
    paused: bool = Field(False, description="Paused reps are never routed to.")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{v}' (use an IANA name such as "
                             "Europe/Berlin)") from None
        return v

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: str) -> str:
        if not _HOURS.match(v) or v[:5] >= v[6:]:
            raise ValueError(f"hours '{v}' must be HH:MM-HH:MM, the start before the end")
        return v

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if d not in DAYS]
        if bad:
            raise ValueError(f"unknown day '{bad[0]}' (use {', '.join(DAYS)})")
        return v


class RoutingRuleSetting(Section):
    """Accounts meeting every condition go to these reps (round robin among them)."""

    name: str = Field(..., min_length=1, description="Shown as the reason of a route.")
    where: list[SegmentCondition] = Field(..., min_length=1, description="Conditions over "
                                          "the account (territory, industry, size, segment).")
    reps: list[str] = Field(..., min_length=1, description="Reps of this rule.")

    @field_validator("where")
    @classmethod
    def _fields(cls, v: list[SegmentCondition]) -> list[SegmentCondition]:
        # a rule is matched against the visit's fields, as chat's and personalisation's
        # audiences are: a field no visit has never matched, and routed to the fallback
        check_visit_fields(v, "field")
        return v


class MeetingSettings(Section):
    """Reps, routing rules and the fallback."""

    reps: list[RepSetting] = Field(default_factory=list,
                                   description="[[meetings.reps]]: who takes meetings.")
    rules: list[RoutingRuleSetting] = Field(default_factory=list,
                                            description="[[meetings.rules]], tried in order.")
    fallback: list[str] = Field(default_factory=list, description="Reps for accounts no rule "
                                "matches (required as soon as there are reps).")
    minutes: int = Field(30, ge=10, le=240, description="Length of a meeting.")
    step_minutes: int = Field(30, ge=5, le=240, description="Minutes between slot "
                              "starts, from the start of each rep's working hours in their "
                              "time zone (09:00, 09:30, ...).")
    lead_minutes: int = Field(120, ge=0, le=10_080, description="The earliest slot offered "
                              "is this long from now.")
    days_ahead: int = Field(14, ge=1, le=90, description="How far ahead slots are offered.")
    mailbox: str = Field("", description="The [[activate.mailboxes]] entry that sends "
                         "invites (empty: meetings are booked without invites; a warning "
                         "says so).")
    company: str = Field("", description="Your company's name, in invite titles.")

    @model_validator(mode="after")
    def _known(self) -> MeetingSettings:
        names = [r.name for r in self.reps]
        twice = first_duplicate(names)
        if twice:
            raise ValueError(f"meetings.reps: '{twice}' is defined twice")
        if self.reps and not self.fallback:
            raise ValueError("meetings.fallback is required: the reps for accounts no rule "
                             "matches")
        for where, listed in [("fallback", self.fallback),
                              *((f"rule '{r.name}'", r.reps) for r in self.rules)]:
            unknown = [n for n in listed if n not in names]
            if unknown:
                raise ValueError(f"meetings {where}: unknown rep '{unknown[0]}' (reps: "
                                 f"{', '.join(names) or 'none'})")
        return self

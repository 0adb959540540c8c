"""Settings of sequences (``[activate.mail]``, ``[[activate.mailboxes]]``,
``[[activate.sequences]]``): mailboxes with their warm-up and caps, the steps of each
sequence, the send window and the case studies emails may cite. Part of the activate stage's
settings (:mod:`demandloop.config.activate`)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from demandloop.config.base import Section as _Section
from demandloop.config.base import check_template, http_url

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
StopReason = Literal["reply", "meeting", "unsubscribe", "bounce", "stage_change"]


def _workweek() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


def _stop_reasons() -> list[StopReason]:
    return ["reply", "meeting", "unsubscribe", "bounce", "stage_change"]


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{name}' (an IANA name such as "
                         "'Europe/Berlin' or 'America/New_York')") from None
    return name


class MailboxSetting(_Section):
    """A sending mailbox: your own SMTP server and account, with its limits."""

    name: str = Field(..., min_length=1, description="Mailbox name (sequences list them).")
    address: str = Field(..., pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                         description="From address, e.g. ana@mail.example.com.")
    display_name: str = Field("", description="From name shown to recipients.")
    transport: Literal["smtp", "file"] = Field(
        "smtp", description="smtp sends; file writes each message as .eml into 'outbox' "
        "(a dry run you can open in a mail client).")
    host: str = Field("localhost", description="smtp: server host.")
    port: int = Field(587, ge=1, le=65535, description="smtp: server port.")
    security: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="smtp: STARTTLS (587), implicit TLS (465) or none (tests).")
    tls_ca_file: str | None = Field(None, description="smtp: PEM file of the CA (or the "
                                    "certificate) to trust for a private server; default: "
                                    "the system's CAs.")
    username: str | None = Field(None, description="smtp: login (none: no AUTH).")
    password_env: str | None = Field(None, description="smtp: environment variable holding "
                                     "the password (never stored in the file).")
    daily_cap: int = Field(50, ge=1, le=5000, description="Most messages a day, once warm.")
    hourly_cap: int = Field(20, ge=1, le=5000, description="Most messages in any hour.")
    min_gap_seconds: float = Field(60.0, ge=0, le=3600,
                                   description="Least time between two sends (throttling).")
    warmup: list[int] = Field(default_factory=lambda: [5, 8, 12, 16, 20, 25, 30, 35, 40, 45],
                              description="Warm-up ramp: the daily limit on day 1, 2, ... of "
                              "sending; then daily_cap. [] for an already warm mailbox.")
    warmup_start: dt.date | None = Field(None, description="Day 1 of the ramp (default: the "
                                         "day of the mailbox's first send).")
    timezone: str = Field("UTC", description="The mailbox's day (caps reset at its midnight).")
    dkim_selector: str | None = Field(None, description="DKIM selector; with dkim_key_file, "
                                      "every message is signed.")
    dkim_key_file: str | None = Field(None, description="PEM private key (relative to the "
                                      "workspace).")
    outbox: str = Field("outbox", description="file: folder for .eml files.")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _zone(value)

    @field_validator("display_name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # the From header's: a line break failed every message as it was composed
        if "\n" in value or "\r" in value:
            raise ValueError("display_name must be one line (it is the From header's name)")
        return value

    @model_validator(mode="after")
    def _dkim(self) -> MailboxSetting:
        if (self.dkim_selector is None) != (self.dkim_key_file is None):
            raise ValueError(f"mailbox '{self.name}': dkim_selector and dkim_key_file go "
                             "together")
        if any(n < 1 for n in self.warmup):
            raise ValueError(f"mailbox '{self.name}': warmup limits must be >= 1")
        return self


class StepSetting(_Section):
    """One step of a sequence: an email, a wait (business days) or a task for the owner."""

    type: Literal["email", "wait", "task"] = Field(..., description="What the step is.")
    subject: str | None = Field(None, description="email: subject (a Jinja2 template).")
    body: str | None = Field(None, description="email: plain-text body (Jinja2).")
    html: str | None = Field(None, description="email: optional HTML body (Jinja2).")
    template: str | None = Field(None, description="email: instead of body/html, "
                                 "templates/<name>.txt.j2 (and <name>.html.j2 if present).")
    days: int = Field(0, ge=0, le=90, description="wait: business days.")
    title: str | None = Field(None, description="task: title (Jinja2).")
    due_days: int = Field(1, ge=0, le=90, description="task: days until due.")

    @model_validator(mode="after")
    def _needs(self) -> StepSetting:
        if self.type == "email" and (self.subject is None
                                     or (self.body is None and self.template is None)):
            raise ValueError("an email step needs subject and body (or template)")
        if self.type == "wait" and self.days < 1:
            raise ValueError("a wait step needs days >= 1")
        if self.type == "task" and not self.title:
            raise ValueError("a task step needs title")
        for name in ("subject", "body", "html", "title"):
            check_template(getattr(self, name), f"the step's {name}")
        return self


class SequenceSetting(_Section):
    """A multi-step sequence people are enrolled in (by a workflow's enrol action)."""

    name: str = Field(..., min_length=1, description="Sequence name.")
    mailboxes: list[str] = Field(..., min_length=1, description="Mailboxes it sends from "
                                 "(each person stays with one).")
    steps: list[StepSetting] = Field(..., min_length=1, description="Steps, in order.")
    people: int = Field(1, ge=1, le=20, description="People enrolled per account (best "
                        "first: committee role, then engagement).")
    roles: list[str] = Field(default_factory=list, description="Only people in these "
                             "buying-committee roles ([] = any).")
    quality_gate: bool = Field(True, description="Only target or Strong/Moderate-fit accounts "
                               "at the MQA stage or above are enrolled.")
    stop_on: list[StopReason] = Field(
        default_factory=_stop_reasons, description="What ends an enrolment "
        "(unsubscribe and bounce always suppress the address too).")

    @model_validator(mode="after")
    def _has_email(self) -> SequenceSetting:
        if not any(s.type == "email" for s in self.steps):
            raise ValueError(f"sequence '{self.name}' has no email step")
        return self


class CaseStudySetting(_Section):
    """Proof to cite: the case study shown to an industry."""

    title: str = Field(..., description="Case study title.")
    url: str = Field(..., description="Case study link.")


class MailSettings(_Section):
    """What every sequence email shares: unsubscribe, sending hours, stop signals."""

    # every message's List-Unsubscribe link and footer start with it: without a scheme mail
    # clients show no link and Gmail finds no one-click unsubscribe (RFC 8058)
    unsubscribe_url: Annotated[str, http_url("unsubscribe_url",
                                             "such as https://collect.example.com/u")
                               ] = Field(
        "http://127.0.0.1:8642/u", description="Public base URL of 'demandloop serve''s "
        "unsubscribe endpoint (/u); each message links <base>/<signed token>.")
    unsubscribe_mailto: str | None = Field(None, description="Optional mailto address for "
                                           "List-Unsubscribe (besides the one-click link).")
    postal_address: str = Field("", description="Your postal address, printed in every "
                                "footer (CAN-SPAM).")
    send_window: str = Field("09:00-17:00", pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$",
                             description="Sending hours in the recipient's time zone.")
    send_days: list[Weekday] = Field(
        default_factory=_workweek,
        description="Business days (sending days and what 'wait N days' counts).")
    holidays: list[dt.date] = Field(default_factory=list, description="Days never sent on.")
    default_timezone: str = Field("UTC", description="For people whose zone is unknown "
                                  "(after their 'timezone' trait and their account's country).")
    templates_dir: str = Field("templates", description="Folder of Jinja2 templates.")
    tick_seconds: float = Field(30.0, ge=1, le=3600, description="demandloop serve: how "
                                "often the sequence sender looks for due steps.")
    reply_events: list[str] = Field(default_factory=lambda: ["Email Replied"],
                                    description="Track events that mean the person replied.")
    meeting_events: list[str] = Field(default_factory=lambda: ["Meeting Booked"],
                                      description="Track events that mean a meeting is booked.")
    bounce_events: list[str] = Field(default_factory=lambda: ["Email Bounced"],
                                     description="Track events that mean the address bounced.")
    unsubscribe_events: list[str] = Field(
        default_factory=lambda: ["Unsubscribed", "Email Marked as Spam"],
        description="Track events that mean never mail this person again.")
    case_studies: dict[str, CaseStudySetting] = Field(
        default_factory=dict, description="Industry -> case study ('*' for any other).")

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _mailto(cls, value: str | None) -> str | None:
        # written as <mailto:...> into every message's List-Unsubscribe header
        if value is not None and not re.fullmatch(r"[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+", value):
            raise ValueError(f"unsubscribe_mailto '{value[:80]}' is not an email address "
                             "(such as unsubscribe@mail.example.com)")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _zone(value)

"""What ``/api/v1`` answers, as the OpenAPI schema publishes it.

The routes answer with ``orjson`` directly (a page of 1,000 accounts is serialised once, not
validated field by field), so these models document the answers rather than produce them;
``tests/test_api_v1.py`` holds every answer to them with schemathesis's conformance checks,
so the two cannot drift apart. Every error has one shape, :class:`ErrorBody`, whatever its
status. Fields that may be missing for an account or a person (not scored yet, unknown to
the CRM) are nullable; the objects accept fields not listed, so a field added later breaks
no generated client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(_Open):
    code: str = Field(description="What went wrong, for a program: 'not_found', "
                      "'insufficient_scope', 'unknown_parameter', ...")
    message: str = Field(description="What went wrong and what to do, for a person.")
    problems: list[str] | None = Field(None, description="Each problem, when there are "
                                       "several: an import's bad rows (FILE:LINE: reason), a "
                                       "request's invalid parameters.")


class ErrorBody(_Open):
    success: Literal[False]
    error: ErrorDetail


class AccountRow(_Open):
    """An account with its latest scores (the account view segments and reports share)."""

    account_id: str
    name: str | None = None
    domain: str | None = None
    industry: str | None = None
    employees: int | None = None
    country: str | None = None
    owner: str | None = None
    target: bool | None = None
    tier: str | None = None
    stage: str | None = Field(None, description="Buying stage (a name of "
                              "[[score.stages]], or 'unaware').")
    fit: float | None = Field(None, description="ICP fit, 0-100.")
    band: str | None = Field(None, description="Fit band: Strong, Moderate or Weak.")
    engagement: float | None = None
    intent: float | None = Field(None, description="Intent surge (recent over usual).")
    surging: bool | None = None
    people: int | None = None
    committee_coverage: float | None = None
    missing_roles: list[str] | None = None
    surge_topics: list[str] | None = None
    priority: float | None = None
    as_of: str | None = Field(None, description="When the scores were computed.")
    updated_at: str | None = None


class AccountsPage(_Open):
    data: list[AccountRow]
    next: str | None = Field(description="The cursor of the next page (null on the last).")


class AccountDetail(_Open):
    """One account whole (see docs/api.md)."""

    account: dict[str, Any]
    explanation: dict[str, Any] | None = None
    people: list[dict[str, Any]]
    touches: list[dict[str, Any]]
    stage_history: list[dict[str, Any]]
    opportunities: list[dict[str, Any]]
    workflow_jobs: list[dict[str, Any]]
    sequence_messages: list[dict[str, Any]]


class PersonRow(_Open):
    person_id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    seniority: str | None = None
    job_function: str | None = None
    account_id: str | None = None
    source: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    stage: str | None = Field(None, description="'mql' when the latest score made the "
                              "person an MQL, else null.")
    engagement: float | None = Field(None, description="Null for a person never scored.")
    account_fit: float | None = None
    mql_reasons: list[str] | None = Field(None, description="The MQL rule's conditions "
                                          "the person met, with their values.")
    as_of: str | None = Field(None, description="When the scores were computed.")


class PersonDetail(_Open):
    """One person whole (see docs/api.md)."""

    person: PersonRow
    explanation: dict[str, Any] = Field(description="Identifiers, the messages that "
                                        "merged them, the account match, touches by channel.")
    touches: list[dict[str, Any]]
    enrolments: list[dict[str, Any]]
    suppressions: list[dict[str, Any]]


class PeoplePage(_Open):
    data: list[PersonRow]
    next: str | None = Field(description="The cursor of the next page (null on the last).")


class Passages(_Open):
    data: list[dict[str, Any]]
    min_relevance: float


class Moved(_Open):
    success: bool
    error: dict[str, Any]
    account_id: str = Field(description="The id the account has now.")


class ImportResult(_Open):
    kind: str
    rows: int = Field(description="Rows read from the file.")
    ignored_columns: list[str] | None = None
    unlinked: list[str] | None = Field(
        None, description="Contacts: those written without the account they name, which "
        "is not in the workspace (FILE:LINE: why); import the accounts, then them again.")
    new: int | None = Field(None, description="Suppressions: addresses not listed before.")


class Job(_Open):
    id: str
    kind: str
    status: Literal["queued", "running", "done", "failed"]
    submitted_at: str
    started_at: str | None = None
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


class CliAnswer(_Open):
    stdout: str
    stderr: str
    code: int


#: a report: an object (most) or a list of rows (funnel, attribution)
Report = dict[str, Any] | list[dict[str, Any]]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route, for its ``responses``."""
    said = {400: "A parameter or file the route refuses (the message says why).",
            401: "No API token, or one unknown, revoked or expired; or a write key.",
            403: "The token's scope is too low.",
            404: "No such account, report, import kind or job.",
            413: "An upload over the size limit.",
            422: "A parameter of the wrong type or out of range ('problems' lists each).",
            503: "The database cannot be read or written just now (retry)."}
    return {s: {"model": ErrorBody, "description": said[s]} for s in statuses}


def ok(model: Any, description: str = "OK") -> dict[int | str, dict[str, Any]]:
    """The 200 answer of a route, for its ``responses``."""
    return {200: {"model": model, "description": description}}

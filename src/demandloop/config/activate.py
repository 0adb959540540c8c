"""Settings of the act stage: segments, workflows, mailboxes, sequences (``[activate]``).

Split from :mod:`demandloop.config` to keep each module readable; :class:`ActivateSettings`
is the ``activate`` field of :class:`demandloop.config.Settings`.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, model_validator

from demandloop.config.base import Section as _Section
from demandloop.config.conditions import ACCOUNT_FIELDS, SegmentCondition, fields_for
from demandloop.config.sequences import (
    MailboxSetting,
    MailSettings,
    SequenceSetting,
)


class SegmentSetting(_Section):
    """A saved audience: accounts or people meeting every condition."""

    name: str = Field(..., min_length=1, description="Segment name.")
    entity: Literal["account", "person"] = Field("account", description="account or person.")
    description: str = Field("", description="What the segment is for.")
    where: list[SegmentCondition] = Field(default_factory=list,
                                          description="Conditions (all must hold).")

    @model_validator(mode="after")
    def _known_fields(self) -> SegmentSetting:
        known = fields_for(self.entity)
        for c in self.where:
            if c.field not in known:
                raise ValueError(f"segment '{self.name}': unknown {self.entity} field "
                                 f"'{c.field}' (fields: {', '.join(sorted(known))})")
        return self


def _default_segments() -> list[SegmentSetting]:
    return [
        SegmentSetting(name="in-market-targets", entity="account",
                       description="Target accounts at MQA or with an open opportunity.",
                       where=[SegmentCondition(field="target", op="==", value=True),
                              SegmentCondition(field="stage", op="in",
                                               value=["mqa", "opportunity"])]),
        SegmentSetting(name="strong-fit-not-engaged", entity="account",
                       description="Strong-fit accounts not engaged yet: awareness ads.",
                       where=[SegmentCondition(field="band", op="==", value="Strong"),
                              SegmentCondition(field="stage", op="in",
                                               value=["unaware", "target", "aware"])]),
        SegmentSetting(name="mqa-buying-committees", entity="person",
                       description="Known people at accounts that are MQA.",
                       where=[SegmentCondition(field="account_stage", op="==", value="mqa")]),
    ]


TRIGGER_PARAMS = {"stage_changed": ("to",), "became_mql": (), "surge": (),
                  "event": ("event",), "score_crossed": ("field", "above")}


class TriggerSetting(_Section):
    """When a workflow fires (evaluated after each scoring run and for new events)."""

    trigger: Literal["stage_changed", "became_mql", "surge", "event", "score_crossed"] = Field(
        ..., description="What happened.")
    to: str | None = Field(None, description="stage_changed: the stage entered.")
    event: str | None = Field(None, description="event: the track event name.")
    field: Literal["fit", "engagement", "intent"] | None = Field(
        None, description="score_crossed: the score.")
    above: float | None = Field(None, description="score_crossed: the threshold crossed.")

    @model_validator(mode="after")
    def _params(self) -> TriggerSetting:
        missing = [p for p in TRIGGER_PARAMS[self.trigger] if getattr(self, p) is None]
        if missing:
            raise ValueError(f"trigger '{self.trigger}' needs {', '.join(missing)}")
        return self


class TerritorySetting(_Section):
    """A territory: accounts meeting the conditions go to the owner."""

    where: list[SegmentCondition] = Field(default_factory=list, description="Conditions.")
    owner: str = Field(..., min_length=1, description="Owner for these accounts.")


class ActionSetting(_Section):
    """One step of a workflow (see docs/activation.md for each action's keys)."""

    action: Literal["notify", "assign", "set_field", "create_task", "enrol",
                    "add_to_audience"] = Field(..., description="What to do.")
    url: str | None = Field(None, description="notify: webhook URL.")
    format: Literal["slack", "webhook"] = Field(
        "slack", description="notify: Slack-compatible text, or signed JSON.")
    secret_env: str | None = Field(None, description="notify: environment variable holding "
                                   "the HMAC signing secret (webhook format).")
    strategy: Literal["fixed", "round_robin", "territory"] = Field(
        "fixed", description="assign: how the owner is chosen.")
    owners: list[str] = Field(default_factory=list,
                              description="assign: owner (fixed) or rotation (round_robin).")
    territories: list[TerritorySetting] = Field(default_factory=list,
                                                description="assign: territory rules, in order.")
    respect_existing: bool = Field(True, description="assign: keep an account's CRM owner.")
    field: Literal["tier", "target", "owner"] | None = Field(
        None, description="set_field: account field to set.")
    value: bool | int | float | str | None = Field(None, description="set_field: new value.")
    title: str | None = Field(None, description="create_task: task title.")
    due_days: int = Field(2, ge=0, le=90, description="create_task: days until due.")
    sequence: str | None = Field(None, description="enrol: the sequence's name.")
    audience: str | None = Field(None, description="add_to_audience: the list's name (export "
                                 "it with 'demandloop audiences export NAME').")

    @model_validator(mode="after")
    def _needs(self) -> ActionSetting:
        needs = {"notify": ("url",), "set_field": ("field", "value"), "create_task": ("title",),
                 "assign": (), "enrol": ("sequence",),
                 "add_to_audience": ("audience",)}[self.action]
        missing = [n for n in needs if getattr(self, n) is None]
        if self.action == "assign" and self.strategy != "territory" and not self.owners:
            missing.append("owners")
        if self.action == "assign" and self.strategy == "territory" and not self.territories:
            missing.append("territories")
        if missing:
            raise ValueError(f"action '{self.action}' needs {', '.join(missing)}")
        if self.action == "notify" and self.url is not None:
            url = urlsplit(self.url)
            # anything else was retried until the dead-letter list, on every firing
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"notify: '{self.url}' is not an http(s) URL (such as "
                                 "https://hooks.slack.com/services/...)")
        return self


class WorkflowSetting(_Section):
    """when (a trigger) -> if (conditions on the account) -> then (ordered actions)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(..., min_length=1, description="Workflow name.")
    enabled: bool = Field(True, description="Disabled workflows never fire.")
    when: TriggerSetting = Field(..., description="The trigger.")
    if_: list[SegmentCondition] = Field(default_factory=list, alias="if",
                                        description="Account conditions (all must hold).")
    then: list[ActionSetting] = Field(..., min_length=1, description="Actions, in order.")

    @model_validator(mode="after")
    def _known_fields(self) -> WorkflowSetting:
        for c in [*self.if_, *(c for a in self.then for t in a.territories for c in t.where)]:
            if c.field not in ACCOUNT_FIELDS:
                raise ValueError(f"workflow '{self.name}': unknown account field "
                                 f"'{c.field}' (fields: {', '.join(sorted(ACCOUNT_FIELDS))})")
        return self


class ActivateSettings(_Section):
    """Acting on scores: audiences (segments) for ad platforms, and workflows."""

    segments: list[SegmentSetting] = Field(
        default_factory=_default_segments,
        description="Saved segments ([[activate.segments]] tables).")
    workflows: list[WorkflowSetting] = Field(
        default_factory=list, description="Workflows ([[activate.workflows]] tables; more "
        "in workflows/*.toml as [[workflows]]).")
    max_attempts: int = Field(6, ge=1, le=50, description="Action attempts before the dead "
                              "letter list.")
    retry_base_seconds: float = Field(30.0, gt=0, description="First retry delay; doubles "
                                      "with each attempt.")
    max_signal_age_days: float = Field(
        14.0, ge=0, description="Signals (stage changes, events, score snapshots) older than "
        "this never fire a workflow, e.g. on a first run over imported history (0: no limit).")
    mail: MailSettings = Field(default_factory=MailSettings,  # type: ignore[arg-type]
                               description="Shared by every sequence email.")
    mailboxes: list[MailboxSetting] = Field(default_factory=list, description="Sending "
                                            "mailboxes ([[activate.mailboxes]] tables).")
    sequences: list[SequenceSetting] = Field(default_factory=list, description="Sequences "
                                             "([[activate.sequences]] tables).")

    @model_validator(mode="after")
    def _unique(self) -> ActivateSettings:
        names = [s.name for s in self.segments]
        if len(set(names)) != len(names):
            raise ValueError(f"activate.segments: duplicate segment names in {names}")
        flows = [w.name for w in self.workflows]
        if len(set(flows)) != len(flows):
            raise ValueError(f"activate.workflows: duplicate workflow names in {flows}")
        boxes = [m.name for m in self.mailboxes]
        if len(set(boxes)) != len(boxes):
            raise ValueError(f"activate.mailboxes: duplicate mailbox names in {boxes}")
        seqs = [q.name for q in self.sequences]
        if len(set(seqs)) != len(seqs):
            raise ValueError(f"activate.sequences: duplicate sequence names in {seqs}")
        for q in self.sequences:
            for m in q.mailboxes:
                if m not in boxes:
                    raise ValueError(f"sequence '{q.name}': no mailbox '{m}' (mailboxes: "
                                     f"{', '.join(boxes) or 'none'})")
        check_enrolments(self.workflows, seqs)
        return self


def check_enrolments(flows: list[WorkflowSetting], sequences: list[str]) -> None:
    """Every ``enrol`` action names a sequence that exists."""
    for w in flows:
        for a in w.then:
            if a.action == "enrol" and a.sequence not in sequences:
                raise ValueError(f"workflow '{w.name}': no sequence '{a.sequence}' "
                                 f"(sequences: {', '.join(sequences) or 'none'})")



"""Settings of website personalisation (``[personalize]``): experiences, the goals their lift
is measured on, and how long ``dl.js`` waits for a decision.

An experience changes parts of a page (CSS selectors) for an audience written in the one
condition language, with a share of that audience held out as a control. See
``docs/personalization.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

import jinja2
import jinja2.meta
import soupsieve
from jinja2 import nodes
from jinja2.defaults import DEFAULT_NAMESPACE
from pydantic import Field, field_validator, model_validator

from demandloop.config.base import Section, check_template
from demandloop.config.conditions import SegmentCondition
from demandloop.config.files import first_duplicate
from demandloop.config.score import ACTIVITY_NAMES
from demandloop.domains import safe_link

#: what an audience may name: the visitor's account, the person behind the browser, and the
#: visit itself (the page and how it was reached)
AUDIENCE_FIELDS: dict[str, str] = {
    # the account (from the visitor's person, else the address)
    "account_known": "true when the visitor's account is known",
    "account_id": "account id (the domain when known)", "domain": "website domain",
    "name": "company name", "industry": "industry", "employees": "employee count",
    "country": "country code", "target": "target account flag", "tier": "account tier",
    "owner": "account owner", "stage": "buying stage", "fit": "ICP fit 0-100",
    "band": "fit band (Strong, Moderate, Weak)", "intent": "surge ratio",
    "surging": "surging now", "surge_topics": "topics the account surges on (a list: "
    "a condition holds when any topic meets it)",
    # the person
    "known": "true when the browser belongs to a known person",
    "seniority": "the person's seniority", "job_function": "the person's job function",
    # the visit
    "path": "the page's path", "utm_source": "utm_source of the page's URL",
    "utm_medium": "utm_medium", "utm_campaign": "utm_campaign",
    "referrer": "the referrer's host (www. removed)",
    "channel": "the visit's channel (the touch taxonomy: ai_assistant, paid_search, ...)",
}

#: what a visit's templates (an experience's changes, a chat greeting) may name: the visit's
#: fields under ``account``, ``person`` and ``visit`` (activate.personalize.context)
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "account": ("account_id", "domain", "name", "industry", "employees", "country", "target",
                "tier", "owner", "stage", "fit", "band", "intent", "surging",
                "surge_topics"),
    "person": ("known", "seniority", "job_function"),
    "visit": ("path", "utm_source", "utm_medium", "utm_campaign", "referrer", "channel"),
}


def check_template_fields(tree: jinja2.nodes.Template | None, what: str) -> None:
    """Refuse a template (parsed by :func:`~demandloop.config.base.check_template`; *what*
    names the setting) that names a field no visit has (``{{ account.nmae }}``,
    ``{{ company.name }}``): it renders for no visitor, so the change fell back (or the
    greeting said "Hi ") for everyone, in silence. Read from the parsed template's names,
    so a loop variable (``{% for t in account.surge_topics %}``) is not one."""
    if tree is None:
        return
    known = ", ".join(TEMPLATE_FIELDS)
    for name in sorted(jinja2.meta.find_undeclared_variables(tree)):
        if name not in TEMPLATE_FIELDS and name not in DEFAULT_NAMESPACE:
            raise ValueError(f"{what} names '{name}', which no visit has (use {known}: "
                             f"{{{{ account.name }}}}, ...)")
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        key: object = None
        if isinstance(node, nodes.Getattr):
            owner, key = node.node, node.attr
        elif isinstance(node, nodes.Getitem):
            owner = node.node
            key = node.arg.value if isinstance(node.arg, nodes.Const) else None
        else:
            continue
        if not (isinstance(owner, nodes.Name) and owner.name in TEMPLATE_FIELDS
                and isinstance(key, str)):
            continue
        if key not in TEMPLATE_FIELDS[owner.name]:
            raise ValueError(f"{what} names '{owner.name}.{key}', which no visit has "
                             f"({owner.name}'s fields: {', '.join(TEMPLATE_FIELDS[owner.name])})")


#: attributes a change may set (anything else, such as on* handlers, is refused)
ATTRIBUTES = ("href", "src", "alt", "title", "placeholder", "aria-label", "value", "class")
_SELECTOR = re.compile(r"^[^{}<>]{1,200}$")


class AudienceSetting(Section):
    """Who sees an experience: every condition of ``all`` and at least one of ``any`` (when
    given). Empty: every visitor."""

    all: list[SegmentCondition] = Field(default_factory=list,
                                        description="Conditions that must all hold.")
    any: list[SegmentCondition] = Field(default_factory=list,
                                        description="Conditions of which one must hold.")

    @model_validator(mode="before")
    @classmethod
    def _a_list_is_all(cls, data: Any) -> Any:
        """``audience = [{...}, {...}]``, as segments' ``where`` lists are written: every
        condition must hold (it was refused as "not a valid dictionary")."""
        return {"all": data} if isinstance(data, list) else data


def check_visit_fields(conditions: Iterable[SegmentCondition], what: str) -> None:
    """Refuse a condition on a field no visit has (:data:`AUDIENCE_FIELDS`): it would
    never hold. *what* names the condition's field in the message (``audience field``)."""
    for c in conditions:
        if c.field not in AUDIENCE_FIELDS:
            raise ValueError(f"{what} '{c.field}' is unknown (fields: "
                             f"{', '.join(sorted(AUDIENCE_FIELDS))})")


def check_selector(selector: str) -> None:
    """Refuse a CSS selector no page can match, parsed as soupsieve (Beautiful Soup's
    selector engine) parses CSS level 4: ``#headline[`` made the browser's
    ``querySelectorAll`` throw and its pre-hide rule void, so the experience changed
    nothing, for every visitor, in silence."""
    try:
        soupsieve.compile(selector)
    except soupsieve.SelectorSyntaxError as exc:
        first = str(exc).splitlines()[0].rstrip(".")
        raise ValueError(f"'{selector[:80]}' is not a CSS selector: {first}") from None
    except NotImplementedError:  # (a pseudo-element: a page's scripts cannot change one)
        raise ValueError(f"'{selector[:80]}' names a pseudo-element (::before, ...), which "
                         "no script can change: select the element itself") from None


class ChangeSetting(Section):
    """One change to the page: exactly one of text, html, attribute (with value), hide or
    redirect. Text, HTML, attribute values and redirects are Jinja templates over
    ``account``, ``person`` and ``visit``; when one names a field the visitor lacks, the
    ``fallback`` is used (no fallback: the element keeps its original)."""

    selector: str = Field("", description="CSS selector of the element(s) to change "
                          "(not needed for a redirect).")
    text: str | None = Field(None, description="New text content (template).")
    html: str | None = Field(None, description="New inner HTML (template; sanitised: no "
                             "scripts, event handlers or javascript: links survive).")
    attribute: str | None = Field(None, description=f"Attribute to set: {', '.join(ATTRIBUTES)}.")
    value: str | None = Field(None, description="The attribute's value (template).")
    hide: bool = Field(False, description="Hide the element.")
    redirect: str | None = Field(None, description="Send the visitor to this URL (template; "
                                 "http(s) or a path on the site).")
    fallback: str | None = Field(None, description="Used instead when the template names a "
                                 "missing field.")

    @model_validator(mode="after")
    def _one_action(self) -> ChangeSetting:
        actions = [n for n in ("text", "html", "attribute", "redirect")
                   if getattr(self, n) is not None] + (["hide"] if self.hide else [])
        if len(actions) != 1:
            raise ValueError("a change needs exactly one of text, html, attribute, hide, "
                             f"redirect (has: {', '.join(actions) or 'none'})")
        if self.attribute is not None:
            if self.attribute not in ATTRIBUTES:
                raise ValueError(f"attribute '{self.attribute}' may not be set (allowed: "
                                 f"{', '.join(ATTRIBUTES)})")
            if self.value is None:
                raise ValueError(f"attribute '{self.attribute}' needs a value")
        if self.redirect is None and not _SELECTOR.match(self.selector):
            raise ValueError("a change needs a CSS selector (up to 200 characters, no "
                             "braces or angle brackets)")
        if self.redirect is None:
            check_selector(self.selector)
        for name in ("text", "html", "value", "redirect"):
            what = f"the change's {name}"
            check_template_fields(check_template(getattr(self, name), what), what)
        link = self.redirect if self.redirect is not None else \
            self.value if self.attribute in ("href", "src") else None
        # a link with no template in it is checked now: else it was dropped as each
        # visit was decided, and the experience changed nothing, in silence
        for url in (link, self.fallback if link is not None else None):
            if url is not None and "{" not in url and not safe_link(url):
                raise ValueError(f"'{url[:80]}' is not a link a page may follow (use "
                                 "http(s), mailto, tel or a path on the site)")
        return self

    @property
    def action(self) -> str:
        return next(n for n in ("text", "html", "attribute", "redirect", "hide")
                    if (getattr(self, n) if n != "hide" else self.hide) not in (None, False))


class ExperienceSetting(Section):
    """One experience: its audience, its changes, its zone and priority, and its control."""

    name: str = Field(..., min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][\w .:-]*$",
                      description="Unique name (reports and exposure events use it).")
    enabled: bool = Field(True, description="Disabled experiences are never decided.")
    priority: int = Field(0, description="Higher first: within a zone only the first "
                          "experience whose audience matches applies.")
    zone: str = Field("", description="Part of the page the experience owns (default: its "
                      "name). At most one experience per zone per visit.")
    control: float = Field(0.5, ge=0.0, lt=1.0, description="Share of the audience held "
                           "out and shown the original: 0.5 for an experiment, 0.1 for a "
                           "holdout.")
    seed: str = Field("", description="Salt of the assignment hash (default: the name). "
                      "Change it to re-draw who is in the control.")
    audience: AudienceSetting = Field(default_factory=AudienceSetting,
                                      description="Who sees it.")
    changes: list[ChangeSetting] = Field(..., min_length=1, description="What changes.")

    @model_validator(mode="after")
    def _fields(self) -> ExperienceSetting:
        for c in (*self.audience.all, *self.audience.any):
            if c.field not in AUDIENCE_FIELDS:
                raise ValueError(f"experience '{self.name}': unknown audience field "
                                 f"'{c.field}' (fields: {', '.join(sorted(AUDIENCE_FIELDS))})")
        return self

    @property
    def zone_name(self) -> str:
        return self.zone or self.name

    @property
    def salt(self) -> str:
        return self.seed or self.name


class _Ranked(Protocol):
    @property
    def priority(self) -> int: ...
    @property
    def name(self) -> str: ...


R = TypeVar("R", bound=_Ranked)


def tried_order(experiences: Iterable[R]) -> list[R]:
    """*experiences* in the order they are tried: the highest ``priority`` first, then by
    name (the settings', the compiled ones', and every list of them shown)."""
    return sorted(experiences, key=lambda e: (-e.priority, e.name))


class GoalSetting(Section):
    """A conversion the report counts per account: a touch activity, or an opportunity."""

    name: str = Field(..., min_length=1, description="Shown in the report.")
    activity: str = Field(..., description="A touch activity (demo_request, form_fill, "
                          "meeting_booked, trial, ...) or 'opportunity' (created in the CRM).")
    within_days: int = Field(30, ge=1, le=365, description="Counted when it happens within "
                             "this many days after the account's first exposure.")

    @field_validator("activity")
    @classmethod
    def _known(cls, value: str) -> str:
        # checked as the file loads, not first when the report runs
        known = (*ACTIVITY_NAMES, "opportunity")
        if value not in known:
            raise ValueError(f"unknown activity '{value}' (use one of {', '.join(known)})")
        return value


def _default_goals() -> list[GoalSetting]:
    return [GoalSetting(name="demo request", activity="demo_request", within_days=30),
            GoalSetting(name="form fill", activity="form_fill", within_days=30),
            GoalSetting(name="meeting", activity="meeting_booked", within_days=30),
            GoalSetting(name="opportunity", activity="opportunity", within_days=90)]


class PersonalizeSettings(Section):
    """Website personalisation: experiences decided by ``/v1/decide`` and applied by dl.js."""

    experiences: list[ExperienceSetting] = Field(
        default_factory=list, description="Experiences ([[personalize.experiences]] tables; "
        "more in experiences/*.toml as [[experiences]]).")
    goals: list[GoalSetting] = Field(default_factory=_default_goals,
                                     description="What `report personalization` counts as a "
                                     "conversion.")
    timeout_ms: int = Field(1500, ge=100, le=10_000, description="How long dl.js keeps the "
                            "targeted elements hidden waiting for a decision before it shows "
                            "the original.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Confidence level of the "
                              "report's lift intervals.")

    @model_validator(mode="after")
    def _unique(self) -> PersonalizeSettings:
        twice = first_duplicate(e.name for e in self.experiences)
        if twice:
            raise ValueError(f"personalize.experiences: '{twice}' is defined twice")
        return self

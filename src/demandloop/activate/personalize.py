"""Personalisation decisions: which experiences a visit gets, in which arm, with what content.

Pure functions over a visit's fields (its account, person and page, see
:data:`~demandloop.config.personalize.AUDIENCE_FIELDS`); the index that finds those fields
for a request is :mod:`demandloop.activate.decide_index`.

* **Audience**: the one condition language. A field the visit lacks meets no condition; a
  list field (``surge_topics``) meets ``==``, ``in`` and ``contains`` when any element does,
  and ``!=``, ``not_in`` when none does.
* **Zones and priority**: experiences are tried from the highest priority; the first whose
  audience matches takes its zone, in either arm, so a held-out visitor sees the original
  rather than the next experience of that zone.
* **Assignment**: :func:`bucket` hashes the unit (the account id, else the anonymous id) with
  the experience's seed, so everyone at one account sees the same arm, on every page and in
  every process, with no state kept.
* **Content**: text, attribute values and redirects are Jinja templates in an immutable
  sandbox; a template naming a field the visit lacks falls back to the change's
  ``fallback`` (or leaves the element alone). HTML is rendered with autoescaping (an account
  name cannot inject markup) and then sanitised with ammonia (``nh3``): no scripts, event
  handlers or ``javascript:`` links survive, whoever wrote the variant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
import nh3
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import escape

from demandloop.conditions import OPS, Condition, missing
from demandloop.config.personalize import (
    TEMPLATE_FIELDS,
    ChangeSetting,
    ExperienceSetting,
    tried_order,
)
from demandloop.domains import safe_link

_TEXT = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_HTML = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=True)
_URL_ATTRIBUTES = ("href", "src")
_NEGATIVE = ("!=", "not_in")


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over *text*'s UTF-16 code units, as GrowthBook's JavaScript SDK
    (``charCodeAt``) and its Python SDK compute it (the same as over UTF-8 bytes for ASCII).
    """
    h = 0x811C9DC5
    if text.isascii():
        units: Iterable[int] = text.encode("ascii")
    else:
        raw = text.encode("utf-16-le", "surrogatepass")
        units = (raw[i] | (raw[i + 1] << 8) for i in range(0, len(raw), 2))
    for unit in units:
        h = ((h ^ unit) * 0x01000193) & 0xFFFFFFFF
    return h


def bucket(seed: str, unit: str) -> float:
    """Where *unit* falls in [0, 1) for an experience salted with *seed*: GrowthBook's
    hashing (version 2: FNV-1a of the decimal FNV-1a of seed + unit, modulo 10,000), so an
    assignment can be checked with any of its SDKs. Hand-written: twelve lines, no
    dependency for them."""
    return (fnv1a32(str(fnv1a32(seed + unit))) % 10_000) / 10_000


def in_control(seed: str, unit: str, control: float) -> bool:
    """Whether *unit* is in the held-out control of an experience (share *control*)."""
    return bucket(seed, unit) < control


def holds(c: Condition, row: dict[str, Any]) -> bool:
    """Whether *row* meets *c* (list values: see the module docstring)."""
    value = row.get(c.field)
    if isinstance(value, list | tuple):
        positive = Condition(c.field, {"!=": "==", "not_in": "in"}.get(c.op, c.op), c.value)
        hit = any(not missing(v) and bool(OPS[positive.op](v, positive.value))
                  for v in value)
        return not hit if c.op in _NEGATIVE else hit
    return c.holds(row)


@dataclass(frozen=True)
class Change:
    """A change ready to render: its action, selector and compiled template."""

    action: str
    selector: str
    attribute: str | None
    template: jinja2.Template | None
    fallback: str | None

    def render(self, ctx: dict[str, Any]) -> dict[str, Any] | None:
        """What dl.js applies (``selector, action, value[, attribute]``), or None when the
        template cannot be filled and there is no fallback, or the URL is unsafe."""
        value: str | None = None
        if self.template is not None:
            try:
                value = self.template.render(ctx)
            except (jinja2.UndefinedError, jinja2.TemplateError, TypeError, ValueError):
                value = self.fallback
                if value is not None and self.action == "html":
                    value = str(escape(value))
            if value is None:
                return None
            if self.action == "html":
                value = nh3.clean(value)
            elif (self.action == "redirect" or self.attribute in _URL_ATTRIBUTES) \
                    and not safe_link(value):
                return None
        out: dict[str, Any] = {"selector": self.selector, "action": self.action}
        if value is not None:
            out["value"] = value
        if self.attribute:
            out["attribute"] = self.attribute
        return out


@dataclass(frozen=True)
class Experience:
    """An experience compiled for deciding."""

    name: str
    zone: str
    priority: int
    control: float
    salt: str
    all: tuple[Condition, ...]
    any: tuple[Condition, ...]
    changes: tuple[Change, ...]

    def matches(self, row: dict[str, Any]) -> bool:
        return all(holds(c, row) for c in self.all) and (
            not self.any or any(holds(c, row) for c in self.any))

    @property
    def fields(self) -> set[str]:
        return {c.field for c in (*self.all, *self.any)}


def _change(c: ChangeSetting) -> Change:
    source = c.text if c.text is not None else c.html if c.html is not None else \
        c.value if c.attribute is not None else c.redirect
    env = _HTML if c.html is not None else _TEXT
    return Change(action=c.action, selector=c.selector, attribute=c.attribute,
                  template=env.from_string(source) if source is not None else None,
                  fallback=c.fallback)


def compile_experiences(settings: Iterable[ExperienceSetting]) -> list[Experience]:
    """The enabled experiences, compiled, in the order they are tried (priority, then
    name)."""
    out = [Experience(name=e.name, zone=e.zone_name, priority=e.priority, control=e.control,
                      salt=e.salt,
                      all=tuple(Condition(c.field, c.op, c.value) for c in e.audience.all),
                      any=tuple(Condition(c.field, c.op, c.value) for c in e.audience.any),
                      changes=tuple(_change(c) for c in e.changes))
           for e in settings if e.enabled]
    return tried_order(out)


@dataclass(frozen=True)
class Decision:
    experience: str
    zone: str
    control: bool
    changes: tuple[dict[str, Any], ...]

    def as_json(self) -> dict[str, Any]:
        return {"experience": self.experience, "zone": self.zone,
                "variant": "control" if self.control else "personalized",
                "control": self.control, "changes": list(self.changes)}


def context(row: dict[str, Any]) -> dict[str, Any]:
    """The template context of a visit's fields: ``account``, ``person``, ``visit`` (a
    missing field is absent, so a template naming it falls back)."""
    def present(keys: Sequence[str]) -> dict[str, Any]:
        return {k: row[k] for k in keys if k in row and not missing(row[k])}
    return {part: present(fields) for part, fields in TEMPLATE_FIELDS.items()}


def decide(experiences: Sequence[Experience], row: dict[str, Any], unit: str | None
           ) -> list[Decision]:
    """The decisions for a visit with fields *row*, assigned by *unit* (the account id, else
    the anonymous id; None: nothing to assign by, so nothing is decided)."""
    if unit is None:
        return []
    taken: set[str] = set()
    out: list[Decision] = []
    ctx: dict[str, Any] | None = None
    for e in experiences:
        if e.zone in taken or not e.matches(row):
            continue
        taken.add(e.zone)
        control = in_control(e.salt, unit, e.control)
        changes: tuple[dict[str, Any], ...] = ()
        if not control:
            ctx = ctx if ctx is not None else context(row)
            changes = tuple(r for r in (c.render(ctx) for c in e.changes) if r is not None)
        out.append(Decision(e.name, e.zone, control, changes))
    return out


def preview(experiences: Sequence[Experience], row: dict[str, Any], unit: str
            ) -> list[dict[str, Any]]:
    """What each experience does for a visit with fields *row* (assigned by *unit*), in the
    order they are tried, as a marketer checks an experience before it goes live: whether
    its audience matches (else the first condition that fails, with the visit's value, or
    the experience that took its zone), the arm *unit* falls in, and the changes of the
    personalised arm as rendered for this visit (shown in the control arm too, marked so:
    that visitor sees the original). :func:`decide` is what a visitor gets."""
    taken: dict[str, str] = {}
    ctx = context(row)
    out: list[dict[str, Any]] = []
    for e in experiences:
        failed = next((c for c in e.all if not holds(c, row)), None)
        if failed is None and e.any and not any(holds(c, row) for c in e.any):
            why = "none of: " + "; ".join(c.describe(row) for c in e.any)
        else:
            why = failed.describe(row) if failed is not None else ""
        if not why and e.zone in taken:
            why = f"zone '{e.zone}' taken by '{taken[e.zone]}'"
        applies = not why
        if applies:
            taken[e.zone] = e.name
        control = in_control(e.salt, unit, e.control)
        out.append({"experience": e.name, "zone": e.zone, "priority": e.priority,
                    "applies": applies, "why_not": why or None,
                    "variant": "control" if control else "personalized",
                    "control_share": e.control,
                    "changes": [r if r is not None else
                                {"selector": c.selector, "action": c.action,
                                 "skipped": "a field this visit lacks, and no fallback"}
                                for c, r in ((c, c.render(ctx)) for c in e.changes)]})
    return out


def prehide(settings: Iterable[ExperienceSetting]) -> list[str]:
    """The selectors dl.js hides until a decision arrives: those the enabled experiences
    change (never the whole page; a redirect hides nothing)."""
    found: list[str] = []
    for e in settings:
        if not e.enabled:
            continue
        for c in e.changes:
            if c.redirect is None and c.selector and c.selector not in found:
                found.append(c.selector)
    return found

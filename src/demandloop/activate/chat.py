"""Chat's rules, over plain values: which playbook greets a visitor, what to ask or offer
next, and the answer to a question from the content index's passages.

* **Playbook**: the first enabled ``[[chat.playbooks]]`` whose audience the visit meets (the
  one condition language over the same fields as personalisation: account, person, page).
* **Next step**: a target account at an MQA stage or later (``chat.mqa_stages``) whose owner
  is a rep taking meetings is offered that rep's calendar at once. Anyone else is asked the
  playbook's questions in order (each answer is stored as a trait), then offered a meeting.
* **Answer**: from the best passages only, citing their pages. When the best passage holds
  less than ``chat.min_relevance`` of the question (see
  :mod:`demandloop.activate.knowledge`), chat says it does not know and offers a person;
  it never guesses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from demandloop.activate.knowledge import Hit
from demandloop.activate.personalize import context, holds
from demandloop.conditions import Condition
from demandloop.config.chat import ChatSettings, PlaybookSetting

#: greetings may name fields a visit lacks: they render empty (use | default('there'))
_TEXT = ImmutableSandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)
DONT_KNOW = ("I don't know that from our pages, and I'd rather not guess. I can put you in "
             "touch with someone from our team.")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def choose(playbooks: Sequence[PlaybookSetting], row: dict[str, Any]
           ) -> PlaybookSetting | None:
    """The first enabled playbook whose audience *row* (the visit's fields) meets."""
    for p in playbooks:
        if p.enabled and all(holds(Condition(c.field, c.op, c.value), row)
                             for c in p.audience):
            return p
    return None


def greeting(settings: ChatSettings, playbook: PlaybookSetting | None,
             row: dict[str, Any]) -> str:
    """The first message: the playbook's greeting rendered over the visit, else the
    fallback (a template that fails to render falls back too)."""
    if playbook is None:
        return settings.fallback_greeting
    try:
        text = _TEXT.from_string(playbook.greeting).render(context(row)).strip()
    except (jinja2.TemplateError, TypeError, ValueError):
        return settings.fallback_greeting
    return text or settings.fallback_greeting


@dataclass(frozen=True)
class Step:
    """What chat offers next: a ``question`` (its trait, text, options), a ``meeting``
    (with why), or ``none``."""

    kind: str
    trait: str = ""
    ask: str = ""
    options: tuple[str, ...] = ()
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        if self.kind == "question":
            return {"kind": "question", "trait": self.trait, "ask": self.ask,
                    "options": list(self.options)}
        return {"kind": self.kind, "reason": self.reason}


def fast_lane(settings: ChatSettings, row: dict[str, Any], reps: Sequence[str]) -> bool:
    """Whether the visitor's account is a target at an MQA stage or later whose owner takes
    meetings: they skip the questions and see their owner's calendar."""
    return (row.get("target") is True and row.get("stage") in settings.mqa_stages
            and row.get("owner") in reps)


def next_step(settings: ChatSettings, playbook: PlaybookSetting | None, row: dict[str, Any],
              traits: dict[str, Any], reps: Sequence[str]) -> Step:
    """What to ask or offer after *traits* (the answers so far); *reps* are the names of
    the reps taking meetings (none: meetings are never offered)."""
    if reps and fast_lane(settings, row, reps):
        return Step("meeting", reason="owner")
    questions = playbook.questions if playbook else []
    for q in questions:
        if q.trait not in traits:
            return Step("question", q.trait, q.ask, tuple(q.options))
    if reps and (playbook is None or playbook.offer_meeting):
        return Step("meeting", reason="qualified" if questions else "offer")
    return Step("none")


@dataclass
class Answer:
    text: str
    known: bool
    relevance: float
    citations: list[dict[str, str]] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "known": self.known, "relevance": round(self.relevance, 3),
                "citations": self.citations}


def answer(hits: Sequence[Hit], min_relevance: float) -> Answer:
    """The answer from *hits* (best first): the best passage, citing its page; or
    :data:`DONT_KNOW`. ``passages`` are every hit holding enough of the question (what an
    LLM may phrase an answer from: see :func:`cite`)."""
    best = hits[0].relevance if hits else 0.0
    if not hits or best < min_relevance:
        return Answer(DONT_KNOW, False, best)
    used = [h for h in hits if h.relevance >= min_relevance]
    return Answer(hits[0].text, True, best, cite(used[:1]), list(used))


def cite(hits: Sequence[Hit]) -> list[dict[str, str]]:
    """The pages of *hits*, once each, in order."""
    citations: list[dict[str, str]] = []
    for h in hits:
        if all(c["url"] != h.url for c in citations):
            citations.append({"url": h.url, "title": h.title or h.url, "heading": h.heading})
    return citations


def chunks(text: str, size: int = 4) -> list[str]:
    """*text* in pieces of about *size* words (with their spaces), as an answer streams."""
    words = re.split(r"(\s+)", text)
    out, piece = [], ""
    n = 0
    for w in words:
        piece += w
        if w.strip():
            n += 1
        if n >= size and not w.strip():
            out.append(piece)
            piece, n = "", 0
    if piece:
        out.append(piece)
    return out

"""Settings of the content index (``[content]``) and of chat (``[chat]``): what the vendor's
pages are, how sure an answer must be, and the playbooks that greet and qualify a visitor.

A playbook is chosen like a personalisation experience: the first enabled one whose
audience (the one condition language over the visit, see
:data:`~demandloop.config.personalize.AUDIENCE_FIELDS`) the visitor meets. See
``docs/chat.md``.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from demandloop.config.base import Section, check_http, check_template, http_url
from demandloop.config.conditions import SegmentCondition
from demandloop.config.files import first_duplicate
from demandloop.config.personalize import check_template_fields, check_visit_fields

#: the traits a qualification question may store (Segment's reserved traits, and ours)
_TRAIT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ContentSettings(Section):
    """The vendor's own pages, indexed by ``demandloop content index``."""

    base_url: Annotated[str, http_url("base_url", "")] = Field(
        "", description="The site's URL: a file indexed from a folder is cited as this URL "
        "joined with its path (pricing/index.html -> <base_url>/pricing/), unless the page "
        "names a canonical URL.")
    passage_words: int = Field(90, ge=20, le=400, description="Longest passage, in words "
                               "(whole sentences are kept together).")


class QuestionSetting(Section):
    """A qualification question: the answer is stored as a trait of the visitor."""

    trait: str = Field(..., description="The trait the answer is stored as (role, "
                       "team_size, timeline, ...).")
    ask: str = Field(..., min_length=1, description="The question as the visitor reads it.")
    options: list[str] = Field(default_factory=list, description="Answers offered as "
                               "buttons (free text when empty).")

    @field_validator("trait")
    @classmethod
    def _trait(cls, v: str) -> str:
        if not _TRAIT.match(v):
            raise ValueError(f"trait '{v}' must be lower-case letters, digits and _ "
                             "(at most 40)")
        return v


class PlaybookSetting(Section):
    """What chat says first and asks, for one audience."""

    name: str = Field(..., min_length=1, description="Shown in reports and conversations.")
    enabled: bool = Field(True, description="Disabled playbooks are never chosen.")
    audience: list[SegmentCondition] = Field(default_factory=list, description="Conditions "
                                             "over the visit (all must hold; none: everyone).")
    greeting: str = Field(..., min_length=1, description="The first message. A template: "
                          "{{ account.name }}, {{ person.job_function }} ... with | default.")
    questions: list[QuestionSetting] = Field(default_factory=list, description="Asked in "
                                             "order before a meeting is offered.")
    offer_meeting: bool = Field(True, description="Offer the routed rep's calendar once the "
                                "questions are answered (or at once when there are none).")

    @field_validator("greeting")
    @classmethod
    def _a_template(cls, v: str) -> str:
        check_template_fields(check_template(v, "the greeting"), "the greeting")
        return v

    @field_validator("audience")
    @classmethod
    def _fields(cls, v: list[SegmentCondition]) -> list[SegmentCondition]:
        check_visit_fields(v, "audience field")
        return v


class LlmSetting(Section):
    """An OpenAI-compatible endpoint that phrases answers (off while base_url is empty)."""

    base_url: str = Field("", description="Such as http://127.0.0.1:11434/v1 (Ollama) or "
                          "http://127.0.0.1:8080/v1 (llama.cpp server); empty: no LLM.")
    model: str = Field("", description="The model name the endpoint expects.")
    api_key_env: str = Field("", description="Environment variable holding the API key "
                             "(empty: none is sent). The key itself never goes in this file.")
    timeout_seconds: float = Field(8.0, gt=0, le=120, description="After this, the "
                                   "retrieval answer is given instead.")
    max_tokens: int = Field(300, ge=16, le=4096, description="The longest answer asked for.")

    @model_validator(mode="after")
    def _usable(self) -> LlmSetting:
        # either was taken, and every answer then failed over to retrieval, in silence
        check_http(self.base_url, "base_url", "such as http://127.0.0.1:11434/v1")
        if self.base_url and not self.model:
            raise ValueError("model is required with base_url: the name the endpoint "
                             "serves (such as 'llama3.1:8b' for Ollama)")
        return self


class ChatSettings(Section):
    """Account-aware chat on the vendor's site (the widget of dl.js)."""

    enabled: bool = Field(False, description="Add the chat widget to dl.js and accept "
                          "conversations.")
    min_relevance: float = Field(0.5, ge=0, le=1, description="Below this share of the "
                                 "question's (idf-weighted) terms found in the best passage, "
                                 "chat says it does not know and offers a person.")
    passages: int = Field(3, ge=1, le=10, description="Passages an answer draws on (and "
                          "cites).")
    mqa_stages: list[str] = Field(default_factory=lambda: ["mqa", "sql", "opportunity"],
                                  description="Stages at which a target account is offered "
                                  "its owner's calendar at once.")
    title: str = Field("Questions? Ask us.", description="The widget's title.")
    launcher: str = Field("Chat with us", description="The widget's button.")
    fallback_greeting: str = Field("Hi! Ask me anything about us, or book a time with our "
                                   "team.", description="When no playbook matches.")
    playbooks: list[PlaybookSetting] = Field(default_factory=list,
                                             description="[[chat.playbooks]], tried in order.")
    llm: LlmSetting = Field(default_factory=LlmSetting)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _unique(self) -> ChatSettings:
        twice = first_duplicate([p.name for p in self.playbooks])
        if twice:
            raise ValueError(f"chat.playbooks: '{twice}' is defined twice")
        return self

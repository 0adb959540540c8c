"""Chat and meetings for a server: the conversation, routing and booking, over the store.

Here the stages meet: the visitor is recognised by personalisation's decider (the same
snapshot ``/v1/decide`` reads), answers come from the content index, the playbook and the
answer are activate's rules, routing is :mod:`demandloop.activate.routing` over the reps'
hours, their calendar feeds and the meetings already booked. ``serve`` only calls
:class:`ChatService` and writes the Segment messages it returns to the durable log before
answering, so a booking's ``Meeting Booked`` event enters the loop like any other event:
the loader lands it, sequences stop, workflows alert the rep, the stage moves.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any

from demandloop.activate import chat, knowledge
from demandloop.activate import chat_queries as q
from demandloop.errors import UsageError
from demandloop.outbound import llm
from demandloop.store import generations
from demandloop.workspace.meetings import MeetingDesk, NotFound, Outcome, SlotTaken, stamp

logger = logging.getLogger("demandloop.chat")

__all__ = ["ChatService", "NotFound", "Outcome", "SlotTaken"]


class ChatService(MeetingDesk):
    """Conversations and bookings of one workspace (see :class:`MeetingDesk` for the
    arguments)."""

    _index: knowledge.Knowledge | None = None
    _index_checked = 0.0

    # -- content ---------------------------------------------------------------------------
    def index(self) -> knowledge.Knowledge | None:
        """The current content index (looked for again at most once a second)."""
        now = time.monotonic()
        if now - self._index_checked >= 1.0:
            self._index_checked = now
            root = self.directory / knowledge.INDEX_DIR
            name = generations.current_generation(root)
            if name is not None and (self._index is None or self._index.generation != name):
                try:
                    self._index = knowledge.Knowledge(root / name)
                except OSError as exc:  # replaced meanwhile: the next look finds the new one
                    logger.warning("content index %s not read: %s", name, exc)
        return self._index

    # -- conversation ----------------------------------------------------------------------
    def _visit(self, ip: str | None, anonymous_id: str | None, url: str | None,
               referrer: str | None) -> dict[str, Any]:
        d = self.decider()
        row, _ = d.visit(ip, anonymous_id, url, referrer)
        if "channel" not in row and any(c.field == "channel" for p in
                                        self.settings.chat.playbooks for c in p.audience):
            row["channel"] = d.channel_of({"utm_source": row.get("utm_source") or "",
                                           "utm_medium": row.get("utm_medium") or "",
                                           "utm_campaign": row.get("utm_campaign") or "",
                                           "utm_term": "", "referrer": referrer or "",
                                           "url": url or ""})
        return row

    def _reps(self) -> list[str]:
        return [r.name for r in self.settings.meetings.reps if not r.paused]

    def start(self, *, ip: str | None, anonymous_id: str | None, url: str | None,
              referrer: str | None) -> Outcome:
        """A new conversation: the visitor recognised, the playbook's greeting and the
        first step (a question, or the owner's calendar for a hot target account)."""
        now = self.clock()
        row = self._visit(ip, anonymous_id, url, referrer)
        playbook = chat.choose(self.settings.chat.playbooks, row)
        text = chat.greeting(self.settings.chat, playbook, row)
        session_id = "cs_" + secrets.token_hex(12)
        step = chat.next_step(self.settings.chat, playbook, row, {}, self._reps())
        with self.store.writer() as cur:
            q.new_session(cur, self.store.workspace_id, session_id, row, anonymous_id,
                          playbook.name if playbook else None, url, now)
            q.add_message(cur, self.store.workspace_id, session_id, "bot", text, now)
        return Outcome({"session": session_id, "greeting": text,
                        "playbook": playbook.name if playbook else None,
                        "account": _public_account(row), "next": step.as_json()})

    def ask(self, session_id: str, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Answer a question: ``token`` events (the answer in pieces, as it streams),
        ``reset`` (an LLM failed mid-answer: start over), ``answer`` (text, citations,
        relevance) and ``next`` (what chat offers now)."""
        session = self._session(session_id)
        now = self.clock()
        index = self.index()
        c = self.settings.chat
        hits = index.search(text, max(c.passages, 3)) if index is not None else []
        found = chat.answer(hits[:c.passages], c.min_relevance)
        final = found.text
        if found.known and self.settings.chat.llm.base_url:
            phrased: list[str] = []
            try:
                for piece in llm.phrase(c.llm, text, found.passages):
                    phrased.append(piece)
                    yield "token", {"text": piece}
                if not "".join(phrased).strip():
                    raise llm.LlmError("the model answered nothing")
                final = "".join(phrased).strip()
                found.citations = chat.cite(found.passages)  # it read them all
            except llm.LlmError as exc:
                logger.warning("LLM not used: %s", exc)
                if phrased:
                    yield "reset", {}
                final = found.text
                for piece in chat.chunks(final):
                    yield "token", {"text": piece}
        else:
            for piece in chat.chunks(final):
                yield "token", {"text": piece}
        row = self._row(session)
        playbook = next((p for p in c.playbooks if p.name == session["playbook"]), None)
        step = chat.next_step(c, playbook, row, session["traits"], self._reps())
        if not found.known and self._reps():  # "I don't know": a person, at once
            step = chat.Step("meeting", reason="unanswered")
        with self.store.writer() as cur:
            ws = self.store.workspace_id
            q.add_message(cur, ws, session_id, "visitor", text, now)
            q.add_message(cur, ws, session_id, "bot", final, now, found.citations,
                          found.relevance)
        shown = {**found.as_json(), "text": final}
        # a page indexed from a folder without content.base_url is cited by its file://
        # path: no browser opens it, and it named the server's folders to every visitor
        # (kept in the transcript, which says whether the question was answered)
        shown["citations"] = [c for c in shown["citations"]
                               if c["url"].startswith(("http://", "https://"))]
        yield "answer", shown
        yield "next", step.as_json()

    def answer_question(self, session_id: str, trait: str, value: str) -> Outcome:
        """Store the answer to a playbook question as a trait of the visitor (an
        ``identify`` of their anonymous id) and say what comes next."""
        session = self._session(session_id)
        c = self.settings.chat
        playbook = next((p for p in c.playbooks if p.name == session["playbook"]), None)
        asked = {x.trait: x for x in (playbook.questions if playbook else [])}
        if trait not in asked:
            raise UsageError(f"'{trait[:40]}' is not a question of this conversation",
                             hint=f"answer one of: {', '.join(asked) or 'none'}")
        if asked[trait].options and value not in asked[trait].options:
            raise UsageError(f"'{value[:60]}' is not an option of '{trait}'",
                             hint=f"answer one of: {', '.join(asked[trait].options)}")
        now = self.clock()
        traits = {**session["traits"], trait: value}
        with self.store.writer() as cur:
            ws = self.store.workspace_id
            q.set_traits(cur, ws, session_id, traits, now)
            q.add_message(cur, ws, session_id, "bot", asked[trait].ask, now)
            q.add_message(cur, ws, session_id, "visitor", value, now)
        events = []
        if session["anonymous_id"]:
            events.append({"type": "identify", "anonymousId": session["anonymous_id"],
                           "traits": {trait: value},
                           "messageId": f"chat-{session_id}-{trait}",
                           "timestamp": stamp(now), "receivedAt": stamp(now),
                           "context": {"library": {"name": "demandloop-chat"}}})
        step = chat.next_step(c, playbook, self._row(session), traits, self._reps())
        return Outcome({"traits": traits, "next": step.as_json()}, events)

    def transcript(self, session_id: str) -> list[dict[str, Any]]:
        self._session(session_id)
        with self.store.reader() as cur:
            return q.messages(cur, self.store.workspace_id, session_id)


def _public_account(row: dict[str, Any]) -> dict[str, Any] | None:
    """What the widget may know of the visitor's account: its name, nothing else (the
    stage, scores and owner stay on the server)."""
    if not row.get("account_id"):
        return None
    return {"name": row.get("name") or row.get("domain") or None}

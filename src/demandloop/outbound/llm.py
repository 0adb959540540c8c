"""An optional LLM that phrases chat answers: any OpenAI-compatible chat-completions
endpoint (Ollama, llama.cpp's server, vLLM, LM Studio, or a hosted one).

It is given the retrieved passages and the question, told to answer from the passages only,
and its answer streams to the visitor as it comes (``stream: true``, server-sent events).
It is never asked when retrieval found nothing relevant (chat says it does not know
instead), and any failure (refused connection, HTTP error, malformed stream, the
``chat.llm.timeout_seconds`` deadline) raises :class:`LlmError`, on which chat gives the
retrieval answer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence

import httpx
import orjson

from demandloop.activate.knowledge import Hit
from demandloop.config.chat import LlmSetting

SYSTEM = ("You answer a website visitor's question for the company whose pages are quoted "
          "below. Use only facts stated in the passages. If they do not answer the question, "
          "say you do not know. Answer in at most three sentences, plainly, without "
          "mentioning the passages.")


class LlmError(Exception):
    """The endpoint failed, timed out or answered something unreadable."""


def prompt(question: str, passages: Sequence[Hit]) -> list[dict[str, str]]:
    quoted = "\n\n".join(f"[{i + 1}] {p.title} - {p.heading}\n{p.text}"
                         for i, p in enumerate(passages))
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Passages:\n{quoted}\n\nQuestion: {question}"}]


def phrase(settings: LlmSetting, question: str, passages: Sequence[Hit]) -> Iterator[str]:
    """The answer's text in pieces as the endpoint streams it."""
    key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": settings.model, "messages": prompt(question, passages), "stream": True,
            "temperature": 0, "max_tokens": settings.max_tokens}
    deadline = time.monotonic() + settings.timeout_seconds
    url = settings.base_url.rstrip("/") + "/chat/completions"
    try:
        with httpx.stream("POST", url, json=body, headers=headers,
                          timeout=settings.timeout_seconds) as response:
            if response.status_code != 200:
                raise LlmError(f"{url} answered HTTP {response.status_code}")
            for line in response.iter_lines():
                if time.monotonic() > deadline:
                    raise LlmError(f"no complete answer within {settings.timeout_seconds} s")
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    choice = orjson.loads(data)["choices"][0]
                except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
                    raise LlmError(f"unreadable stream line: {data[:80]}") from exc
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    yield str(piece)
    except httpx.HTTPError as exc:
        raise LlmError(f"{url}: {type(exc).__name__}: {exc}") from exc

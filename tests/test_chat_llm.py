"""The chat's optional LLM against a real OpenAI-compatible server on loopback: llama.cpp's
server (llama-cpp-python) running a tiny random model (see ``tests/llm_server.py``). The
answer the visitor receives is what the server streamed for the retrieved passages, it
cites every passage given, and a server that is down or too slow leaves the retrieval
answer."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from demandloop.activate import chat
from demandloop.activate.knowledge import Hit
from demandloop.outbound import llm
from tests.collector_helpers import Running, collector
from tests.llm_server import llama_server
from tests.test_chat import SITE, TOML, _events, _start

QUESTION = "How much is the Team plan per seat?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_server(tmp_path_factory.mktemp("llm")) as url:
        yield url


@contextmanager
def _served(tmp_path: Path, llm_toml: str) -> Iterator[Running]:
    site = Path(shutil.copytree(SITE, tmp_path / "site"))
    with collector(tmp_path / "srv", TOML + llm_toml) as run:
        run.ws.index_content([str(site)])
        yield run


def _ask(run: Running, text: str) -> list[tuple[str, Any]]:
    sid = _start(run).json()["session"]
    with httpx.stream("POST", f"{run.url}/v1/chat/sessions/{sid}/messages",
                      json={"writeKey": run.key, "text": text}, timeout=60) as r:
        assert r.status_code == 200
        return _events(r)


def test_the_llm_phrases_the_answer_from_the_passages(tmp_path: Path, server: str) -> None:
    with _served(tmp_path, f'\n[chat.llm]\nbase_url = "{server}"\nmodel = "tiny"\n'
                           "max_tokens = 24\ntimeout_seconds = 60\n") as run:
        hits = [Hit(**h) for h in run.ws.search_content(QUESTION, 3)]
        found = chat.answer(hits, run.ws.settings.chat.min_relevance)
        assert found.known and len(found.passages) >= 1
        # what the same server says to the same prompt, asked directly (greedy: the same)
        direct = httpx.post(server + "/chat/completions", timeout=60, json={
            "model": "tiny", "messages": llm.prompt(QUESTION, found.passages),
            "temperature": 0, "max_tokens": 24}).json()["choices"][0]["message"]["content"]
        events = _ask(run, QUESTION)
        names = [n for n, _ in events]
        assert "reset" not in names and names.count("token") >= 2
        answer = dict(events)["answer"]
        streamed = "".join(d["text"] for n, d in events if n == "token")
        assert answer["text"] == streamed.strip() == direct.strip()
        assert answer["text"] != found.text  # the model's words, not the passage's
        assert answer["citations"] == chat.cite(found.passages)
        # nothing relevant: the model is not asked, chat says it does not know
        unknown = dict(_ask(run, "What is your refund policy?"))["answer"]
        assert unknown["text"] == chat.DONT_KNOW and unknown["known"] is False


@pytest.mark.parametrize("llm_toml", [
    '\n[chat.llm]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "tiny"\n',  # nothing listens
    None,  # the real server, with a deadline it cannot meet
])
def test_a_failing_llm_leaves_the_retrieval_answer(tmp_path: Path, server: str,
                                                    llm_toml: str | None) -> None:
    toml = llm_toml or (f'\n[chat.llm]\nbase_url = "{server}"\nmodel = "tiny"\n'
                        "max_tokens = 4000\ntimeout_seconds = 0.001\n")
    with _served(tmp_path, toml) as run:
        events = _ask(run, QUESTION)
        answer = dict(events)["answer"]
        assert answer["known"] is True and "$49 per seat" in answer["text"]
        streamed = "".join(d["text"] for n, d in events if n == "token")
        after_reset = streamed if "reset" not in [n for n, _ in events] else "".join(
            d["text"] for n, d in events[[n for n, _ in events].index("reset"):]
            if n == "token")
        assert after_reset == answer["text"]

"""A real OpenAI-compatible server on loopback for the chat's LLM path: llama.cpp's server
(``llama-cpp-python[server]``) running a tiny llama-architecture model written here with
``gguf``: random weights (so its answers are gibberish) and a byte-fallback vocabulary (so
it reads any text). Real inference, real HTTP and server-sent events, no download."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gguf
import httpx
import numpy as np

from tests.collector_helpers import free_port


def tiny_model(path: Path, seed: int = 0, dim: int = 64, layers: int = 2, heads: int = 4,
               ff: int = 128, ctx: int = 4096) -> Path:
    """Write a tiny random llama model with a chat template to *path*."""
    rng = np.random.default_rng(seed)
    tokens: list[bytes] = []
    scores: list[float] = []
    types: list[int] = []

    def add(text: str, score: float, kind: int) -> None:
        tokens.append(text.encode())
        scores.append(score)
        types.append(kind)

    add("<unk>", 0.0, gguf.TokenType.UNKNOWN)
    add("<s>", 0.0, gguf.TokenType.CONTROL)
    add("</s>", 0.0, gguf.TokenType.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, gguf.TokenType.BYTE)
    for i, word in enumerate(("the", "plan", "costs", "per", "seat", "team", "data", "is",
                              "a", "and", "you", "we")):
        add("\u2581" + word, -float(i + 1), gguf.TokenType.NORMAL)
    for c in "abcdefghijklmnopqrstuvwxyz$0123456789.":
        add(c, -100.0, gguf.TokenType.NORMAL)
    add("\u2581", -50.0, gguf.TokenType.NORMAL)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("demandloop-tiny-random")
    w.add_context_length(ctx)
    w.add_embedding_length(dim)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_rope_dimension_count(dim // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_chat_template("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n"
                        "{% endfor %}<|assistant|>")

    def tensor(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.2).astype(np.float32))

    tensor("token_embd.weight", len(tokens), dim)
    w.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    tensor("output.weight", len(tokens), dim)
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(dim, np.float32))
        for part in ("q", "k", "v", "output"):
            tensor(f"blk.{i}.attn_{part}.weight", dim, dim)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(dim, np.float32))
        tensor(f"blk.{i}.ffn_gate.weight", ff, dim)
        tensor(f"blk.{i}.ffn_up.weight", ff, dim)
        tensor(f"blk.{i}.ffn_down.weight", dim, ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@contextmanager
def llama_server(folder: Path) -> Iterator[str]:
    """llama.cpp's OpenAI-compatible server on the tiny model; yields its ``/v1`` URL."""
    model = tiny_model(folder / "tiny.gguf")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
                             "--n_threads", "1", "--model_alias", "tiny"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise AssertionError(f"llama.cpp server did not start: {err[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

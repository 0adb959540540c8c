"""Event streams cut into load batches, as the incremental tests replay them."""

from __future__ import annotations

import json
import random


def split(lines: list[str], rng: random.Random, order: str) -> list[list[str]]:
    """*lines* (JSON events) in 3-6 batches (``random``: each line anywhere), or 5-8
    (``time``: in time order, as a live site sends them, about 3 % arriving in a later
    batch)."""
    if order == "random":
        batches = rng.randint(3, 6)
        parts: list[list[str]] = [[] for _ in range(batches)]
        for line in lines:
            parts[rng.randrange(batches)].append(line)
        return parts
    lines = sorted(lines, key=lambda line: json.loads(line)["timestamp"])
    batches = rng.randint(5, 8)
    parts = [[] for _ in range(batches)]
    for i, line in enumerate(lines):
        k = i * batches // len(lines)
        if k < batches - 1 and rng.random() < 0.03:
            k = rng.randrange(k + 1, batches)
        parts[k].append(line)
    return parts

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


#: values a client may send that no simulated market does: addresses that are not dotted
#: quads (IPv6, a quad over 255, a forwarded list), text that is not a URL, traits of the
#: wrong type, ids with the identifier prefixes in them, user ids shared between browsers
ODD_IPS = ["::1", "2001:db8::1", "1.2.3.256", "999.999.999.999", "", " ", "x" * 300,
           "1.2.3.4, 5.6.7.8", "::ffff:10.0.0.1", "fe80::1%eth0", "01.02.03.04",
           "1.2.3.4:8080", "0.0.0.0", None, 5]
ODD_TEXT = ["", " ", "ä" * 50, "javascript:alert(1)", "://", "%zz", "x" * 3000, "\u0000",
            "http://[::1]:80/x?utm_source=a&utm_source=b", "'; DROP TABLE events; --",
            "a\nb", "https://"]
ODD_TRAITS = ["@", "a@b@c.com", "UPPER@CASE.COM ", "a@", "@acme.com", "x@[::1]", 123,
              ["a@b.com"], {"a": 1}]
ODD_IDS = ["a:b", "user:x", "anon:y", "ü", "0", "  ", "x" * 200, "email:a@b.com"]


def odd(message: dict, rng: random.Random) -> dict:
    """*message* with one field given an odd value (see :data:`ODD_IPS` and the rest)."""
    ctx = message.setdefault("context", {})
    kind = rng.randrange(7)
    if kind == 0:
        ctx["ip"] = rng.choice(ODD_IPS)
    elif kind == 1:
        field = rng.choice(["url", "referrer", "path", "title"])
        message.setdefault("properties", {})[field] = rng.choice(ODD_TEXT)
        if "page" in ctx:
            ctx["page"][field] = rng.choice(ODD_TEXT)
    elif kind == 2 and message["type"] in ("identify", "group"):
        message.setdefault("traits", {})[rng.choice(
            ["email", "website", "title", "domain", "jobTitle"])] = rng.choice(
            ODD_TRAITS + ODD_TEXT)
    elif kind == 3:
        message["userId"] = rng.choice(ODD_IDS)
    elif kind == 4:
        message["anonymousId"] = rng.choice(ODD_IDS)
    elif kind == 5 and message["type"] == "track":
        message["event"] = rng.choice([*ODD_TEXT, " Demo Requested ", "DEMO REQUESTED"])
    elif kind == 6:
        ctx["campaign"] = {"source": rng.choice(ODD_TEXT), "medium": rng.choice(ODD_TEXT),
                           "name": 5}
    return message

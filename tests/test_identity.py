"""The identity graph: retroactive identification, aliases, shared devices, explain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from demandloop.resolve.identity import components, resolve_persons
from tests.conftest import write_jsonl


def page(i: int, anon: str, ts: str, user: str | None = None) -> dict:  # type: ignore[type-arg]
    m = {"type": "page", "messageId": f"p{i}", "anonymousId": anon, "timestamp": ts,
         "properties": {"url": "https://acme.io/pricing", "path": "/pricing"},
         "context": {"ip": "98.0.0.1"}}
    if user:
        m["userId"] = user
    return m


def identify(i: int, anon: str | None, user: str, email: str, ts: str) -> dict:  # type: ignore[type-arg]
    m = {"type": "identify", "messageId": f"i{i}", "userId": user, "timestamp": ts,
         "traits": {"email": email, "title": "VP Marketing"}}
    if anon:
        m["anonymousId"] = anon
    return m


def test_components_match_a_brute_force_union_find() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 300, 400).astype(str)
    b = rng.integers(0, 300, 400).astype(str)
    c = components(a, b)
    label = dict(zip(np.concatenate([a, b]), np.concatenate([c.labels_a, c.labels_b]),
                     strict=True))
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for x, y in zip(a, b, strict=True):
        parent[find(x)] = find(y)
    for x in set(a) | set(b):
        for y in list(set(a))[:20]:
            assert (find(x) == find(y)) == (label[x] == label[y])


def test_identification_is_retroactive_across_devices(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = write_jsonl(tmp_path / "e.jsonl", [
        page(1, "laptop", "2026-01-01T10:00:00Z"),
        page(2, "phone", "2026-01-02T10:00:00Z"),
        identify(1, "laptop", "u1", "Jane@Acme.io", "2026-01-03T10:00:00Z"),
        identify(2, "phone", "u1", "jane@acme.io", "2026-01-04T10:00:00Z"),
        page(3, "laptop", "2026-01-05T10:00:00Z", user="u1"),
        page(4, "stranger", "2026-01-05T11:00:00Z"),
    ])
    ws.ingest(f)
    r = ws.resolve()
    assert r.persons == 1
    t = ws.touches().set_index("message_id")
    # the anonymous views before the identify belong to Jane, and so to acme.io
    assert list(t.loc[["p1", "p2", "p3"], "person_id"]) == ["jane@acme.io"] * 3
    assert list(t.loc[["p1", "p2", "p3"], "account_id"]) == ["acme.io"] * 3
    assert pd.isna(t.loc["p4", "person_id"])
    info = ws.explain_person("phone")
    assert info["person"]["person_id"] == "jane@acme.io"
    assert info["account"] == {"account_id": "acme.io", "source": "email_domain",
                               "confidence": 0.9}
    merged = {(m["from"], m["to"], m["message_id"]) for m in info["merged_by"]}
    assert ("anon:phone", "user:u1", "i2") in merged
    assert info["anonymous_touches_attributed"] == 2
    assert info["person"]["seniority"] == "vp" and info["person"]["function"] == "marketing"


def test_alias_merges_and_shared_devices_do_not(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    msgs = [identify(1, None, "old-id", "a@one.io", "2026-01-01T00:00:00Z"),
            {"type": "alias", "messageId": "al1", "previousId": "old-id", "userId": "new-id",
             "timestamp": "2026-01-02T00:00:00Z"},
            page(1, "dev-a", "2026-01-03T00:00:00Z", user="new-id")]
    # a kiosk browser used by three different people
    for k in range(3):
        msgs.append(identify(10 + k, "kiosk", f"k{k}", f"k{k}@two.io", "2026-01-04T00:00:00Z"))
    ws.ingest(write_jsonl(tmp_path / "e.jsonl", msgs))
    ws.resolve()
    ids = ws.store.con.execute(
        "SELECT identifier, person_id FROM person_identifiers").df().set_index("identifier")
    assert ids.loc["user:new-id", "person_id"] == ids.loc["user:old-id", "person_id"] == "a@one.io"
    assert ids.loc["anon:dev-a", "person_id"] == "a@one.io"
    assert "anon:kiosk" not in ids.index
    assert {ids.loc[f"user:k{k}", "person_id"] for k in range(3)} == {
        "k0@two.io", "k1@two.io", "k2@two.io"}


def test_person_ids_prefer_crm_emails() -> None:
    edges = pd.DataFrame({"a": ["user:u1", "user:u1"], "b": ["email:z@x.io", "email:a@x.io"]})
    out = resolve_persons(edges, {"z@x.io"})
    assert set(out["person_id"]) == {"z@x.io"}
    assert set(resolve_persons(edges)["person_id"]) == {"a@x.io"}


def test_explain_unknown_person(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("-w", str(tmp_path), "explain", "person", "nobody@x.io")
    assert code == 5 and "no person known by 'nobody@x.io'" in err

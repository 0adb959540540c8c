"""Privacy as a self-hosting user relies on it: a person's data exported and erased from
everywhere the workspace keeps it (searched for byte by byte), retention applied, and the
IP policy keeping the account an address matched while dropping the address."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest

import demandloop
from demandloop.activate.sequence_queries import suppressed
from demandloop.store.privacy import email_hash
from tests.collector_helpers import collector

EMAIL, USER, ANON = "Erin.Erased@Acme-Target.com", "usr_erin_42", "anon-erin-7f3a9c"
OTHER = "olive.other@elsewhere.io"


def _person(live: Any, anon: str, user: str, email: str, tag: str, pages: int) -> list[str]:
    ids = [f"{tag}-p{i}" for i in range(pages)]
    batch = [{"type": "page", "anonymousId": anon, "messageId": m,
              "properties": {"url": f"https://vendor.example/pricing?x={i}",
                             "path": "/pricing"},
              "context": {"ip": "203.0.113.9", "traits": {"email": email}}}
             for i, m in enumerate(ids)]
    batch.append({"type": "identify", "anonymousId": anon, "userId": user,
                  "messageId": f"{tag}-id", "traits": {"email": email, "firstName": "E",
                                                       "title": "VP Marketing"}})
    r = httpx.post(live.url + "/v1/batch", json={"batch": batch}, auth=(live.key, ""))
    assert r.status_code == 200
    return [*ids, f"{tag}-id"]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and "market" not in p.parts]


def _hits(root: Path, needles: list[bytes]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in _files(root):
        data = path.read_bytes().lower()
        hit = [n.decode() for n in needles if n.lower() in data]
        if hit:
            found[str(path.relative_to(root))] = hit
    return found


def _parquet_mentions(directory: Path, needle: str) -> int:
    con = duckdb.connect()
    total = 0
    for f in directory.glob("*.parquet"):
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{f}'").fetchall()]
        if not cols:
            continue
        cond = " OR ".join(f"contains(lower(CAST(\"{c}\" AS VARCHAR)), ?)" for c in cols)
        total += con.execute(f"SELECT count(*) FROM '{f}' WHERE {cond}",
                             [needle.lower()] * len(cols)).fetchone()[0]
    return total


def test_erase_leaves_no_trace_in_the_database_log_dead_letters_or_exports(
        tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "w"
    export_dir = tmp_path / "backup"
    with collector(d) as live:
        mine = _person(live, ANON, USER, EMAIL, "erin", 6)
        theirs = _person(live, "anon-olive", "usr_olive", OTHER, "olive", 4)
        live.wait_loaded()
        live.ws.resolve()
        live.ws.score()
        live.ws.export_parquet(export_dir)
        # the log holds events not loaded yet, and a dead letter names the person
        live.loader.stop(drain=False)
        late = _person(live, ANON, USER, EMAIL, "erin-late", 2)
        live.loader._dead("default", [("a test dead letter", orjson.dumps(
            {"type": "track", "event": "X", "userId": USER}))])
    needles = [EMAIL.encode(), USER.encode(), ANON.encode()]
    before = _hits(d, needles)
    # the positive control: every place is searched where the person is known to be
    assert any(p.startswith("collector-log") for p in before), before
    assert any(p.endswith(".duckdb") for p in before), before
    assert _parquet_mentions(export_dir, EMAIL) > 0

    code, out, err = cli("-w", str(d), "privacy", "erase", EMAIL, "--yes", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["rows"]["events"] == len(mine) + len(late)
    assert result["exports_rewritten"] == [str(export_dir.resolve())]

    assert _hits(d, needles) == {}
    assert _parquet_mentions(export_dir, EMAIL) == 0
    assert _parquet_mentions(export_dir, USER) == 0
    with demandloop.open(d) as ws:
        con = ws.store.con
        stored = {m for (m,) in con.execute("SELECT message_id FROM events").fetchall()}
        assert stored == set(theirs)  # the other person is untouched
        assert con.execute("SELECT count(*) FROM persons WHERE email = ?",
                           [OTHER]).fetchone()[0] == 1
        # never mailed again: the address is suppressed as a hash only
        sup = suppressed(ws.store)
        assert EMAIL.lower() in sup and sup[EMAIL.lower()] == "erased"
        assert list(sup) == [email_hash(EMAIL)]
        # the erasure is recorded, without the personal data
        (rows,) = con.execute("SELECT rows FROM erasures").fetchone()
        assert json.loads(rows)["events"] == len(mine) + len(late)
        assert EMAIL.lower() not in rows.lower()
    # the workspace still works, and the person is gone from every answer
    code, _, err = cli("-w", str(d), "privacy", "export", EMAIL)
    assert code != 0 and "nothing is stored" in err
    with demandloop.open(d) as ws:
        ws.resolve()
        assert ws.export_parquet(tmp_path / "after")["events"] == len(theirs)


def test_erase_needs_confirmation_and_changes_nothing_without_it(
        tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "w"
    with collector(d) as live:
        _person(live, ANON, USER, EMAIL, "erin", 2)
        live.wait_loaded()
    code, _, err = cli("-w", str(d), "privacy", "erase", EMAIL)
    assert code == 2 and "--yes" in err
    code, _, err = cli("-w", str(d), "privacy", "erase", "nobody@nowhere.example", "--yes")
    assert code != 0 and "nothing is stored" in err
    with demandloop.open(d) as ws:
        assert ws.counts()["events"] == 3


def test_export_holds_every_row_about_the_person(tmp_path: Path, cli  # type: ignore[no-untyped-def]
                                                 ) -> None:
    d = tmp_path / "w"
    with collector(d) as live:
        mine = _person(live, ANON, USER, EMAIL, "erin", 5)
        _person(live, "anon-olive", "usr_olive", OTHER, "olive", 3)
        live.wait_loaded()
        live.ws.resolve()
        live.loader.stop(drain=False)
        late = _person(live, ANON, USER, EMAIL, "late", 1)  # acknowledged, not loaded
    out_file = tmp_path / "dsar.json"
    # by the anonymous id: the same person, all their identifiers
    code, _, err = cli("-w", str(d), "privacy", "export", ANON, "--out", str(out_file))
    assert code == 0, err
    data = json.loads(out_file.read_text())
    assert {e["message_id"] for e in data["tables"]["events"]} == set(mine + late)
    assert data["identifiers"]["emails"] == [EMAIL.lower()]
    # what is held, not what was searched for: the anonymous id is not a user id
    assert data["identifiers"]["user_ids"] == [USER]
    assert data["identifiers"]["anonymous_ids"] == [ANON]
    with demandloop.open(d) as ws:
        touches = ws.store.con.execute(
            "SELECT count(*) FROM touches WHERE anonymous_id = ?", [ANON]).fetchone()[0]
    assert len(data["tables"]["touches"]) == touches > 0
    assert all(OTHER not in json.dumps(rows) for rows in data["tables"].values())
    # a folder: the export goes in it; a file that cannot be written: one line, exit 3
    code, _, err = cli("-w", str(d), "privacy", "export", ANON, "--out", str(tmp_path))
    assert code == 0, err
    assert json.loads((tmp_path / "privacy-export.json").read_text()) == data
    code, _, err = cli("-w", str(d), "privacy", "export", ANON, "--out",
                       str(out_file / "x.json"))
    assert code == 3 and "cannot write" in err, err


def test_retention_deletes_raw_events_older_than_the_setting(
        tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "w"
    with collector(d, "[collect]\nretention_days = 30\n") as live:
        _person(live, ANON, USER, EMAIL, "erin", 9)
        live.wait_loaded()
        live.ws.store.con.execute(
            "UPDATE events SET received_at = received_at - INTERVAL 40 DAY "
            "WHERE message_id IN ('erin-p0', 'erin-p1', 'erin-p2')")
    code, out, err = cli("-w", str(d), "privacy", "retention", "--json")
    assert code == 0, err
    assert json.loads(out) == {"deleted": 3, "retention_days": 30}
    with demandloop.open(d) as ws:
        assert ws.counts()["events"] == 7
    (d / "demandloop.toml").write_text("")
    code, _, err = cli("-w", str(d), "privacy", "retention")
    assert code == 2 and "retention_days" in err


@pytest.mark.parametrize("policy, kept", [("truncate", "203.0.113.0"), ("drop", None)])
def test_the_ip_policy_keeps_the_account_and_drops_the_address(
        tmp_path: Path, policy: str, kept: str | None) -> None:
    d = tmp_path / "w"
    (tmp_path / "ranges.csv").write_text("cidr,domain\n203.0.113.0/25,acme-target.com\n")
    with collector(d, f'[collect]\nip = "{policy}"\n') as live:
        live.ws.import_ip_ranges(tmp_path / "ranges.csv")
        r = httpx.post(live.url + "/v1/batch", auth=(live.key, ""), json={"batch": [
            {"type": "page", "anonymousId": f"visitor-{i}", "messageId": f"v{i}",
             "properties": {"url": "https://vendor.example/", "path": "/"},
             "context": {"ip": ip}} for i, ip in enumerate(["203.0.113.77", "203.0.113.200"])]})
        assert r.status_code == 200
        live.wait_loaded()
        ws = live.ws
        for _ in range(2):  # the second run sees only the kept address
            ws.resolve()
            touches = dict(ws.store.con.execute(
                "SELECT message_id, account_id FROM touches").fetchall())
            # .77 is in the company's /25, .200 is not: the match made on the whole address
            assert touches == {"v0": "acme-target.com", "v1": None}
            ips = {r[0] for r in ws.store.con.execute("SELECT ip FROM events").fetchall()}
            assert ips == {kept}
            assert {r[0] for r in ws.store.con.execute("SELECT ip FROM touches").fetchall()} \
                == {kept}


def test_the_server_applies_retention_on_its_own(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Hourly in production (every 0.3 s here), whether or not events arrive."""
    import time

    from demandloop.serve import run

    monkeypatch.setattr(run, "RETENTION_EVERY", 0.3)
    with collector(tmp_path / "w", "[collect]\nretention_days = 30\n") as live:
        _person(live, ANON, USER, EMAIL, "erin", 4)
        live.wait_loaded()
        with live.ws.store.writer() as cur:
            cur.execute("UPDATE events SET received_at = received_at - INTERVAL 31 DAY "
                        "WHERE message_id IN ('erin-p0', 'erin-p1')")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and live.query("SELECT count(*) FROM events")[0][0] \
                != 3:
            time.sleep(0.1)
        assert {m for (m,) in live.query("SELECT message_id FROM events")} == \
            {"erin-p2", "erin-p3", "erin-id"}


def test_erasure_drops_the_address_lookups_only_the_person_used(tmp_path: Path) -> None:
    """resolve keeps each address it looked up (ip_lookups): an erased person's addresses
    go with their events, while an address someone else still uses stays."""
    msgs = [
        {"type": "identify", "messageId": "i1", "anonymousId": ANON, "userId": USER,
         "traits": {"email": EMAIL}, "timestamp": "2026-03-02T09:00:00Z"},
        {"type": "page", "messageId": "p1", "anonymousId": ANON,
         "timestamp": "2026-03-02T09:01:00Z", "context": {"ip": "198.51.100.17"}},
        {"type": "page", "messageId": "p2", "anonymousId": ANON,
         "timestamp": "2026-03-02T09:02:00Z", "context": {"ip": "203.0.113.9"}},
        {"type": "page", "messageId": "p3", "anonymousId": "someone-else",
         "timestamp": "2026-03-02T09:03:00Z", "context": {"ip": "203.0.113.9"}},
    ]
    f = tmp_path / "e.jsonl"
    f.write_text("".join(json.dumps(m) + "\n" for m in msgs))
    with demandloop.open(tmp_path / "w") as ws:
        ws.ingest(f)
        ws.resolve()

        def looked_up() -> set[str]:
            return {r[0] for r in ws.store.con.execute("SELECT ip FROM ip_lookups").fetchall()}

        assert looked_up() == {"198.51.100.17", "203.0.113.9"}
        ws.erase_person(EMAIL)
        assert looked_up() == {"203.0.113.9"}
        assert ws.resolve().mode == "rebuild"  # events it had read are gone
        assert looked_up() == {"203.0.113.9"}


def test_retention_drops_the_address_lookups_of_the_events_it_deletes(tmp_path: Path
                                                                      ) -> None:
    msgs = [{"type": "page", "messageId": f"p{i}", "anonymousId": f"visitor-{i}",
             "timestamp": "2026-03-02T09:00:00Z", "context": {"ip": f"198.51.100.{i}"}}
            for i in range(1, 4)]
    # and the titles resolve kept of identify calls (described_calls)
    msgs += [{"type": "identify", "messageId": f"i{i}", "userId": f"user-{i}",
              "timestamp": "2026-03-02T09:00:00Z", "traits": {"title": f"Title {i}"}}
             for i in range(1, 3)]
    f = tmp_path / "e.jsonl"
    f.write_text("".join(json.dumps(m) + "\n" for m in msgs))
    with demandloop.open(tmp_path / "w") as ws:
        ws.ingest(f)
        ws.resolve()
        ws.store.con.execute("UPDATE events SET received_at = received_at - INTERVAL 40 DAY "
                             "WHERE message_id = 'p1'")
        assert ws.apply_retention() == 0  # retention_days = 0: keep everything
        from demandloop.privacy import apply_retention
        assert ws.store.con.execute("SELECT count(*) FROM described_calls"
                                    ).fetchone() == (2,)
        ws.store.con.execute("UPDATE events SET received_at = received_at - INTERVAL 40 DAY "
                             "WHERE message_id = 'i1'")
        assert apply_retention(ws.store, 30) == 2
        ips = {r[0] for r in ws.store.con.execute("SELECT ip FROM ip_lookups").fetchall()}
        assert ips == {"198.51.100.2", "198.51.100.3"}
        assert ws.store.con.execute("SELECT message_id, user_id, title FROM described_calls"
                                    ).fetchall() == [("i2", "user-2", "Title 2")]


def test_erase_through_a_running_server_loses_no_acknowledged_event(
        tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """While 'demandloop serve' holds the workspace and events keep arriving, 'privacy
    erase' runs inside the server: the person is gone from the database file and the log,
    and every event acknowledged meanwhile (before, during and after) is stored."""
    import signal
    import threading

    from tests.collector_helpers import served_with_key

    d = tmp_path / "w"
    key, port, proc = served_with_key(d, "[collector]\nrescore_minutes = 0\n")
    url = f"http://127.0.0.1:{port}"

    class Live:
        pass

    live = Live()
    live.url, live.key = url, key  # type: ignore[attr-defined]
    try:
        mine = _person(live, ANON, USER, EMAIL, "erin", 6)
        acknowledged: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(auth=(key, ""), timeout=30) as client:
                n = 0
                while not stop.is_set():
                    ids = [f"bg-{n}-{i}" for i in range(20)]
                    try:
                        r = client.post(url + "/v1/batch", json={"batch": [
                            {"type": "track", "event": "Viewed",
                             "anonymousId": f"anon-bg-{n % 7}", "messageId": m}
                            for m in ids]})
                    except httpx.HTTPError:  # not acknowledged: nothing to find later
                        n += 1
                        continue
                    if r.status_code == 200:
                        acknowledged.extend(ids)
                    n += 1

        sender = threading.Thread(target=traffic)
        sender.start()
        try:
            deadline = time.monotonic() + 30
            while len(acknowledged) < 200 and time.monotonic() < deadline:
                time.sleep(0.05)
            code, out, err = cli("-w", str(d), "privacy", "erase", EMAIL, "--yes", "--json")
            during = len(acknowledged)
            time.sleep(0.5)
        finally:
            stop.set()
            sender.join(timeout=30)
        assert code == 0, err
        result = json.loads(out)
        assert result["rows"]["events"] == len(mine)
        assert result["log_segments_retired"] >= 1, result
        assert len(acknowledged) > during > 200  # traffic went on around the erasure
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert _hits(d, [EMAIL.encode(), USER.encode(), ANON.encode()]) == {}
    with demandloop.open(d) as ws:
        stored = {m for (m,) in ws.store.con.execute("SELECT message_id FROM events")
                  .fetchall()}
    assert set(acknowledged) <= stored
    assert not stored & set(mine)


def test_erase_and_export_cover_chat_and_meetings(tmp_path: Path) -> None:
    """A visitor's chat (their browser's conversation, its messages, one naming their
    address from another browser) and their meeting are part of their data: exported
    on request, erased with them; another visitor's stay."""
    events = tmp_path / "e.jsonl"
    events.write_text("\n".join(json.dumps(m) for m in [
        {"type": "identify", "anonymousId": ANON, "userId": USER, "messageId": "m1",
         "timestamp": "2026-11-01T10:00:00Z", "traits": {"email": EMAIL}},
        {"type": "identify", "anonymousId": "anon-olive-1", "messageId": "m2",
         "timestamp": "2026-11-01T10:00:00Z", "traits": {"email": OTHER}}]) + "\n")
    with demandloop.open(tmp_path / "w") as ws:
        ws.ingest(events)
        ws.resolve()
        con = ws.store.con
        for sid, anon in (("cs_erin", ANON), ("cs_olive", "anon-olive-1"),
                          ("cs_desk", "anon-desk-2"), ("cs_booked", "anon-lab-3")):
            con.execute("INSERT INTO chat_sessions VALUES ('default', ?, ?, NULL, NULL, NULL, "
                        "NULL, '{}', now()::TIMESTAMP, now()::TIMESTAMP)", [sid, anon])
            con.execute("INSERT INTO chat_messages VALUES ('default', ?, 1, 'visitor', "
                        "'How much is the Team plan?', NULL, NULL, now()::TIMESTAMP)", [sid])
        # another browser: a message naming the address; a meeting booked with it
        con.execute("INSERT INTO chat_messages VALUES ('default', 'cs_desk', 2, 'visitor', "
                    "?, NULL, NULL, now()::TIMESTAMP)", [f"reach me at {EMAIL.lower()}"])
        for mid, email, sid in (("mt1", EMAIL, "cs_booked"), ("mt2", OTHER, "cs_olive")):
            con.execute("INSERT INTO meetings (workspace_id, meeting_id, rep, starts_at, "
                        "ends_at, email, name, session_id, status, sequence, created_at, "
                        "updated_at) VALUES ('default', ?, 'Ana', now()::TIMESTAMP, "
                        "now()::TIMESTAMP, ?, 'x', ?, 'booked', 0, now()::TIMESTAMP, "
                        "now()::TIMESTAMP)",
                        [mid, email, sid])
        # what became of each invite (one of the other visitor's quotes the address: a
        # mail server's answer naming it)
        for mid, who, detail in (("mt1", "visitor", "connection refused"),
                                 ("mt2", "visitor", None),
                                 ("mt2", "rep", f"451 <{EMAIL}> try later")):
            con.execute("INSERT INTO meeting_invites VALUES ('default', ?, ?, 0, 'REQUEST', "
                        "'deferred', 1, ?, now()::TIMESTAMP, now()::TIMESTAMP)",
                        [mid, who, detail])
        exported = ws.export_person(EMAIL)["tables"]
        assert sorted((r["meeting_id"], r["recipient"])
                      for r in exported["meeting_invites"]) == [("mt1", "visitor"),
                                                                ("mt2", "rep")]
        assert {r["session_id"] for r in exported["chat_sessions"]} == {"cs_erin",
                                                                       "cs_booked"}
        assert {(r["session_id"], r["seq"]) for r in exported["chat_messages"]} == {
            ("cs_erin", 1), ("cs_booked", 1), ("cs_desk", 2)}
        assert [r["meeting_id"] for r in exported["meetings"]] == ["mt1"]
        ws.erase_person(EMAIL)
        con = ws.store.con  # (the file was rewritten)
        assert sorted(con.execute("SELECT session_id FROM chat_sessions").fetchall()) == [
            ("cs_desk",), ("cs_olive",)]
        assert sorted(con.execute("SELECT session_id, seq FROM chat_messages").fetchall()
                      ) == [("cs_desk", 1), ("cs_olive", 1)]
        assert con.execute("SELECT meeting_id FROM meetings").fetchall() == [("mt2",)]
        assert con.execute("SELECT meeting_id, recipient FROM meeting_invites").fetchall() == [
            ("mt2", "visitor")]


def test_erase_reaches_a_file_mailboxs_outbox_and_the_jobs_that_name_them(
        tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """The demo's sequence writes .eml files (a mailbox with transport = "file") and its
    workflow's enrol job says whom it enrolled: an erasure left both, the address in the
    clear, while it said the person was gone."""
    import re
    from email.utils import parseaddr

    d = tmp_path / "w"
    code, _, err = cli("demo", "--dir", str(d), "--accounts", "120", "--days", "60")
    assert code == 0, err
    mails = sorted((d / "outbox").glob("*.eml"))
    found = re.search(r"^To: (.+)$", mails[0].read_text(), re.MULTILINE)
    assert found is not None and len(mails) >= 2
    email = parseaddr(found.group(1))[1]
    with demandloop.open(d) as ws:
        (job, account), = ws.store.con.execute(
            "SELECT job_id, account_id FROM jobs WHERE contains(lower(result), ?)",
            [email.lower()]).fetchall()
    before = _hits(d, [email.encode()])
    assert str(mails[0].relative_to(d)) in before and any(
        p.endswith(".duckdb") for p in before), before

    code, out, err = cli("-w", str(d), "privacy", "erase", email, "--yes", "--json")
    assert code == 0, err
    assert json.loads(out)["outbox_messages_removed"] == 1
    assert _hits(d, [email.encode()]) == {}
    assert sorted((d / "outbox").glob("*.eml")) == mails[1:]  # the others' mail stays
    with demandloop.open(d) as ws:
        # the account's job stays (its history, its firing done once), its text blanked
        assert ws.store.con.execute(
            "SELECT account_id, status, result FROM jobs WHERE job_id = ?", [job]
        ).fetchall() == [(account, "done", "(erased: it named a person erased since)")]

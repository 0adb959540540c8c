"""Booking through a real collector: iCalendar invites to a real SMTP server (aiosmtpd) that
parse and hold the right times and people, one booking when visitors race for a slot,
reschedule and cancel through the signed links, and ``Meeting Booked`` entering the loop
(the rep's workflow alert, a touch, the sequence stopping)."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import re
import socket
import threading
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import icalendar
import orjson
import pytest
from aiosmtpd.controller import Controller

from demandloop.activate import chat_queries, sequence_queries
from demandloop.errors import UsageError
from demandloop.store.activity_pages import activity_lists
from demandloop.store.schema_later import V18
from demandloop.workspace import invites
from tests.collector_helpers import Running, collector, free_port
from tests.test_sequences import Inbox
from tests.test_snippet_browser import _until
from tests.test_workflows import Receiver

#: what a booking reaches beyond chat: the invites' mailbox, a sequence to stop, and a
#: workflow alerting the rep (``{port}``: the SMTP server's, ``{hook}``: the receiver's)
LOOP = """
[[activate.mailboxes]]
name = "meetings"
address = "meetings@northwind.example"
display_name = "Northwind meetings"
host = "127.0.0.1"
port = {port}
security = "none"
warmup = []

[[activate.sequences]]
name = "nurture"
mailboxes = ["meetings"]
[[activate.sequences.steps]]
type = "email"
subject = "Hello"
body = "Hi"

[[activate.workflows]]
name = "meeting-alert"
when = {{trigger = "event", event = "Meeting Booked"}}
then = [{{action = "notify", url = "{hook}/meeting", format = "webhook"}}]
"""

TOML = """
[collector]
rescore_minutes = 0

[chat]
enabled = true

[meetings]
fallback = ["Ana", "Ben"]
lead_minutes = 0
mailbox = "meetings"
company = "Northwind"
[[meetings.reps]]
name = "Ana"
email = "ana@northwind.example"
timezone = "Europe/Lisbon"
hours = "00:00-24:00"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
[[meetings.reps]]
name = "Ben"
email = "ben@northwind.example"
timezone = "America/New_York"
hours = "00:00-24:00"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
""" + LOOP


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Running, Inbox, Receiver]]:
    inbox, port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    hook = Receiver()
    try:
        with collector(tmp_path / "ws", TOML.format(port=port, hook=hook.url)) as run:
            with run.ws.store.writer() as cur:
                cur.execute("INSERT INTO accounts (workspace_id, account_id, domain, name, "
                            "target) VALUES ('default', 'acme.com', 'acme.com', 'Acme', true)")
            run.ws.publish_personalization()
            yield run, inbox, hook
    finally:
        hook.httpd.shutdown()
        smtp.stop()


def _session(run: Running, anon: str) -> str:
    r = httpx.post(run.url + "/v1/chat/sessions", json={"writeKey": run.key,
                                                        "anonymousId": anon})
    assert r.status_code == 201, r.text
    return str(r.json()["session"])


def _slots(run: Running, sid: str, tz: str = "Europe/Paris") -> list[dict[str, Any]]:
    r = httpx.get(f"{run.url}/v1/chat/sessions/{sid}/slots", params={"k": run.key, "tz": tz})
    assert r.status_code == 200, r.text
    return list(r.json()["slots"])


def _book(run: Running, sid: str, start: str, who: str = "jo@acme.com") -> httpx.Response:
    return httpx.post(f"{run.url}/v1/chat/sessions/{sid}/bookings",
                      json={"writeKey": run.key, "start": start, "email": who, "name": "Jo Ng",
                            "timezone": "Europe/Paris"})


def _invites(inbox: Inbox) -> list[tuple[str, icalendar.Calendar, email.message.EmailMessage]]:
    out = []
    for _, rcpts, raw in inbox.messages:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
        out.append((rcpts[0], icalendar.Calendar.from_ical(part.get_content()), msg))
    return out


def test_a_booking_sends_both_an_invite_with_the_right_time_and_people(
        setup: tuple[Running, Inbox, Receiver]) -> None:
    run, inbox, hook = setup
    sid = _session(run, "anon-jo")
    slot = _slots(run, sid)[3]
    start = dt.datetime.fromisoformat(slot["start"].replace("Z", "+00:00"))
    local = start.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert (slot["time"], slot["day"]) == (f"{local:%H:%M}", f"{local:%a %d %b}")
    booked = _book(run, sid, slot["start"])
    assert booked.status_code == 201, booked.text
    body = booked.json()
    assert body["invites"] == {"visitor": "sent", "rep": "sent"}
    rep_email = {"Ana": "ana@northwind.example", "Ben": "ben@northwind.example"}[body["rep"]]
    invites = _invites(inbox)
    assert sorted(r for r, _, _ in invites) == sorted(["jo@acme.com", rep_email])
    for _, cal, msg in invites:
        assert str(cal["METHOD"]) == "REQUEST"
        (ev,) = cal.walk("VEVENT")
        assert ev.decoded("DTSTART") == start
        assert ev.decoded("DTEND") == start + dt.timedelta(minutes=30)
        attendees = sorted(str(a).lower() for a in ev.get("ATTENDEE"))
        assert attendees == sorted(["mailto:jo@acme.com", f"mailto:{rep_email}"])
        assert str(ev["ORGANIZER"]).lower() == f"mailto:{rep_email}"
        assert str(ev["UID"]) == f"{body['meeting']}@demandloop" and int(ev["SEQUENCE"]) == 0
        assert "Northwind" in str(msg["Subject"])
    visitor = next(m for r, _, m in invites if r == "jo@acme.com")
    assert body["links"]["reschedule"] in visitor.get_body(("plain",)).get_content()
    # the loop hears of it: the rep's workflow alert, a stop signal for sequences, a touch
    got = _until(lambda: hook.got, timeout=20)
    assert got and got[0]["path"] == "/meeting"
    alert = orjson.loads(got[0]["body"])
    assert alert["account"]["account_id"] == "acme.com"
    assert alert["account"]["why"].startswith("Meeting Booked")
    run.wait_loaded()
    stops = sequence_queries.signals(run.ws.store, {"meeting": ["Meeting Booked"]}, None)
    assert stops.get("jo@acme.com") == {"meeting"}
    run.ws.resolve()
    touches = run.query("SELECT activity, account_id FROM touches WHERE activity = "
                        "'meeting_booked'")
    assert touches == [("meeting_booked", "acme.com")]


def test_two_visitors_racing_for_one_slot_get_one_booking(
        setup: tuple[Running, Inbox, Receiver]) -> None:
    run, _, _ = setup
    sessions = [_session(run, f"anon-{i}") for i in range(8)]
    start = _slots(run, sessions[0])[0]["start"]
    # both reps are free: the first two bookings take one each, the rest find it taken
    results: list[int] = []
    gate = threading.Barrier(len(sessions))

    def go(sid: str, i: int) -> None:
        gate.wait()
        results.append(_book(run, sid, start, f"v{i}@acme.com").status_code)

    threads = [threading.Thread(target=go, args=(s, i)) for i, s in enumerate(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201, 201] + [409] * 6
    rows = run.query("SELECT rep, count(*) FROM meetings WHERE status = 'booked' "
                     "GROUP BY rep ORDER BY rep")
    assert rows == [("Ana", 1), ("Ben", 1)]


def test_reschedule_and_cancel_through_the_signed_link(
        setup: tuple[Running, Inbox, Receiver]) -> None:
    run, inbox, _ = setup
    sid = _session(run, "anon-r")
    slots = _slots(run, sid)
    booked = _book(run, sid, slots[0]["start"]).json()
    link = booked["links"]["reschedule"]
    path = link[link.index("/m/"):]
    assert httpx.get(run.url + path[:-3] + "xyz").status_code == 400  # a forged token
    page = httpx.get(run.url + path)
    assert page.status_code == 200 and booked["rep"] in page.text

    def paris(start: str) -> str:  # the visitor booked in Paris: times read as there
        at = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        return f"{at.astimezone(zoneinfo.ZoneInfo('Europe/Paris')):%a %d %b %Y %H:%M}" \
            " (Europe/Paris)"
    assert paris(slots[0]["start"]) in page.text
    assert run.query("SELECT status FROM meetings") == [("booked",)]  # a GET changes nothing
    later = slots[4]["start"]
    assert later in page.text
    inbox.messages.clear()
    moved = httpx.post(run.url + path, data={"start": later})
    assert moved.status_code == 200 and "Moved" in moved.text
    assert paris(later) in moved.text  # (it said "2026-12-09T10:00:00.000Z")
    (ev,) = _invites(inbox)[0][1].walk("VEVENT")
    assert int(ev["SEQUENCE"]) == 1 and str(ev["UID"]) == f"{booked['meeting']}@demandloop"
    assert ev.decoded("DTSTART") == dt.datetime.fromisoformat(later.replace("Z", "+00:00"))
    inbox.messages.clear()
    cancelled = httpx.post(run.url + path, data={"cancel": "1"})
    assert cancelled.status_code == 200 and "Cancelled" in cancelled.text
    invites = _invites(inbox)
    assert len(invites) == 2 and all(str(c["METHOD"]) == "CANCEL" for _, c, _ in invites)
    assert run.query("SELECT status, sequence FROM meetings") == [("cancelled", 2)]
    assert run.query("SELECT count(*) FROM meeting_slots") == [(0,)]
    # the freed time can be booked again
    assert _book(run, _session(run, "anon-s"), later).status_code == 201


def test_bookings_refuse_bad_input(setup: tuple[Running, Inbox, Receiver]) -> None:
    run, _, _ = setup
    sid = _session(run, "anon-b")
    start = _slots(run, sid)[0]["start"]
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat()
    first = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    # times no slots call offers, though a rep is free then (both work around the clock)
    off_grid = (first + dt.timedelta(minutes=7)).isoformat()
    next_year = (first + dt.timedelta(days=365)).isoformat()
    for body, why in (({"start": start, "email": "not-an-email"}, "email"),
                      # each was booked, the slot taken, and then the invite failed: 500
                      ({"start": start, "email": "jo@"}, "'jo@' is not an email address"),
                      ({"start": start, "email": "jo@@acme.com"}, "not an email address"),
                      ({"start": start, "email": "jo@acme.com\r\nBcc: x@evil.example"},
                       "not an email address"),
                      ({"start": "tomorrow", "email": "a@b.co"}, "not a time"),
                      ({"start": past, "email": "a@b.co"}, "passed"),
                      ({"start": off_grid, "email": "a@b.co"}, "not one of the slots"),
                      ({"start": next_year, "email": "a@b.co"}, "too far ahead"),
                      ({"start": start, "email": "a@b.co", "timezone": "Mars/Base"},
                       "time zone")):
        r = httpx.post(f"{run.url}/v1/chat/sessions/{sid}/bookings",
                       json={"writeKey": run.key, **body})
        assert r.status_code == 400 and re.search(why, r.json()["error"]["message"]), r.text
    assert run.query("SELECT count(*) FROM meetings") == [(0,)]
    # the last slot offered is bookable (its meeting may end past the days ahead), by a
    # visitor who typed a line break into their name: it is a space in the invite
    r = httpx.post(f"{run.url}/v1/chat/sessions/{sid}/bookings", json={
        "writeKey": run.key, "start": _slots(run, sid)[-1]["start"], "email": " jo@acme.com ",
        "name": "Jo\r\nBcc: x@evil.example", "timezone": "Europe/Paris"})
    assert r.status_code == 201, r.text
    assert run.query("SELECT email, name FROM meetings") == [
        ("jo@acme.com", "Jo Bcc: x@evil.example")]


def test_a_booked_meeting_moves_a_fitting_account_to_mqa(
        setup: tuple[Running, Inbox, Receiver]) -> None:
    run, _, _ = setup
    with run.ws.store.writer() as cur:  # a good fit: an industry and size the rules like
        cur.execute("UPDATE accounts SET industry = 'Software', employees = 400, "
                    "country = 'US' WHERE account_id = 'acme.com'")
    sid = _session(run, "anon-m")
    assert _book(run, sid, _slots(run, sid)[0]["start"]).status_code == 201
    run.wait_loaded()
    run.ws.resolve()
    result = run.ws.score()
    row = run.ws.latest_scores().set_index("entity_id").loc["acme.com"]
    # the default rules: fit >= 50 and (engagement >= 25, a demo request, a meeting, a surge)
    assert float(row["fit"]) >= 50 and result.stages == {"mqa": 1}
    # the meeting qualifies it: no other touch, engagement far below the bar
    assert row["stage"] == "mqa" and float(row["engagement"]) < 25
    reasons = run.query("SELECT details->>'$.stage_reasons' FROM scores WHERE "
                        "entity_id = 'acme.com'")[-1][0]
    assert "meetings_30d >= 1 (is 1)" in orjson.loads(reasons)
    changes = run.query("SELECT to_stage FROM stage_changes WHERE entity_id = 'acme.com'")
    assert changes and changes[-1][0] == row["stage"]


def test_slots_skip_the_reps_calendar_feed_busy_times(
        setup: tuple[Running, Inbox, Receiver], tmp_path: Path) -> None:
    """Ana's feed (served over HTTP) and Ben's (a file) block the next two hours: no slot
    is offered then, and a slot after them is."""
    import functools
    import http.server

    run, _, _ = setup
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    busy_until = now + dt.timedelta(hours=3)
    ics = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
           "UID:busy-1\r\nDTSTAMP:20260101T000000Z\r\n"
           f"DTSTART:{(now - dt.timedelta(hours=1)):%Y%m%dT%H%M%SZ}\r\n"
           f"DTEND:{busy_until:%Y%m%dT%H%M%SZ}\r\nSUMMARY:Offsite\r\nEND:VEVENT\r\n"
           "END:VCALENDAR\r\n")
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "ana.ics").write_text(ics)
    (run.directory / "ben.ics").write_text(ics)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(feeds))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    toml = (run.directory / "demandloop.toml").read_text()
    toml = toml.replace('timezone = "Europe/Lisbon"',
                        'timezone = "Europe/Lisbon"\nbusy_ics = '
                        f'"http://127.0.0.1:{httpd.server_address[1]}/ana.ics"')
    toml = toml.replace('timezone = "America/New_York"',
                        'timezone = "America/New_York"\nbusy_ics = "ben.ics"')
    (run.directory / "demandloop.toml").write_text(toml)
    try:
        from demandloop.activate.decide_index import empty_snapshot
        from demandloop.config import Settings
        from demandloop.workspace.chat import ChatService
        from demandloop.workspace.personalize import make_decider

        settings = Settings.load(run.directory)
        decider = make_decider(empty_snapshot(), [], settings)
        service = ChatService(run.directory, settings, run.ws.store, lambda: decider)
        sid = service.start(ip=None, anonymous_id="anon-c", url=None, referrer=None
                            ).data["session"]
        starts = [dt.datetime.fromisoformat(s["start"].replace("Z", "+00:00"))
                  for s in service.slots(sid, "UTC")["slots"]]
        assert starts and min(starts) >= busy_until
        assert min(starts) < busy_until + dt.timedelta(hours=1)
    finally:
        httpd.shutdown()


def test_each_rep_is_offered_on_their_own_clock(
        setup: tuple[Running, Inbox, Receiver]) -> None:
    """Reps in Kathmandu (UTC+05:45) and Kolkata (UTC+05:30) working 09:00-17:00 with
    hour-long steps are offered at 09:00, 10:00, ... on their own clocks (a grid of UTC
    minutes gave them 09:45 and 09:30 starts, and one slot less a day); a booking at one of
    them goes to the rep whose grid it is, and a start on neither grid is refused."""
    import pandas as pd

    from demandloop.activate.decide_index import empty_snapshot
    from demandloop.config import Settings
    from demandloop.workspace.chat import ChatService
    from demandloop.workspace.personalize import make_decider

    run, inbox, _ = setup
    toml = (run.directory / "demandloop.toml").read_text()
    toml = toml.replace('timezone = "Europe/Lisbon"\nhours = "00:00-24:00"',
                        'timezone = "Asia/Kathmandu"\nhours = "09:00-17:00"')
    toml = toml.replace('timezone = "America/New_York"\nhours = "00:00-24:00"',
                        'timezone = "Asia/Kolkata"\nhours = "09:00-17:00"')
    toml = toml.replace("lead_minutes = 0", "lead_minutes = 0\nstep_minutes = 60")
    (run.directory / "demandloop.toml").write_text(toml)
    settings = Settings.load(run.directory)
    assert [r.timezone for r in settings.meetings.reps] == ["Asia/Kathmandu", "Asia/Kolkata"]
    decider = make_decider(empty_snapshot(), [], settings)
    service = ChatService(run.directory, settings, run.ws.store, lambda: decider)
    sid = service.start(ip=None, anonymous_id="anon-k", url=None, referrer=None
                        ).data["session"]
    now = dt.datetime.now(dt.UTC)
    got = {pd.Timestamp(s["start"]) for s in service.slots(sid, "UTC")["slots"]}
    # each rep's hours, every day (they work all week), as pandas lays them out
    expected: set[pd.Timestamp] = set()
    for zone in ("Asia/Kathmandu", "Asia/Kolkata"):
        first = pd.Timestamp(now).tz_convert(zone).normalize() - pd.Timedelta(days=1)
        for day in pd.date_range(first, periods=settings.meetings.days_ahead + 3, freq="D"):
            expected |= {t.tz_convert("UTC") for t in pd.date_range(
                day + pd.Timedelta(hours=9), day + pd.Timedelta(hours=16), freq="h")}
    until = pd.Timestamp(now) + pd.Timedelta(days=settings.meetings.days_ahead)
    expected = {t for t in expected if pd.Timestamp(now) <= t < until}
    assert got == expected
    assert {t.minute for t in got} == {15, 30}  # 09:00 in Kathmandu and in Kolkata
    kathmandu = min(t for t in got if t.minute == 15)
    booked = service.book(sid, kathmandu.isoformat(), email="jo@acme.com", name="Jo",
                          zone="Asia/Kathmandu").data
    assert booked["rep"] == "Ana"
    assert run.query("SELECT rep, starts_at FROM meetings") == [
        ("Ana", kathmandu.tz_convert("UTC").to_pydatetime().replace(tzinfo=None))]
    on_the_hour = (kathmandu + pd.Timedelta(minutes=45)).isoformat()  # 10:00 UTC: neither's
    with pytest.raises(UsageError, match="not one of the slots"):
        service.book(sid, on_the_hour, email="jo@acme.com", name="Jo", zone="UTC")
    _until(lambda: len(inbox.messages) == 2, 15)
    rep_invite = next(cal for to, cal, _ in _invites(inbox) if to == "ana@northwind.example")
    start = next(c for c in rep_invite.walk("VEVENT")).decoded("DTSTART")
    assert start.astimezone(zoneinfo.ZoneInfo("Asia/Kathmandu")).strftime("%H:%M") in {
        f"{h:02d}:00" for h in range(9, 17)}


def _known_session(run: Running, anon: str) -> str | None:
    """A session of *anon* once the server recognises its account (it reloads published
    snapshots every second), else None."""
    r = httpx.post(run.url + "/v1/chat/sessions", json={"writeKey": run.key,
                                                        "anonymousId": anon})
    assert r.status_code == 201, r.text
    return str(r.json()["session"]) if r.json()["account"] else None


def test_invites_a_down_mail_server_deferred_are_sent_again_until_the_meeting_starts(
        tmp_path: Path) -> None:
    """The mailbox's server is down when a visitor books: the booking stands, its invites
    are deferred and kept, and the server's retry sends them once it is up, as the meeting
    stands; one still undelivered when its meeting starts is given up, never sent late."""
    inbox, port, hook = Inbox(), free_port(), Receiver()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    try:
        with collector(tmp_path / "ws", TOML.format(port=port, hook=hook.url)) as run:
            with run.ws.store.writer() as cur:  # a known browser: its account names the invite
                cur.execute("INSERT INTO accounts (workspace_id, account_id, domain, name) "
                            "VALUES ('default', 'acme.com', 'acme.com', 'Acme')")
                cur.execute("INSERT INTO persons (workspace_id, person_id, email, account_id) "
                            "VALUES ('default', 'jo@acme.com', 'jo@acme.com', 'acme.com')")
                cur.execute("INSERT INTO person_identifiers VALUES ('default', "
                            "'anon:anon-down', 'anon', 'jo@acme.com')")
            run.ws.publish_personalization()
            sid = _until(lambda: _known_session(run, "anon-down"), timeout=30)
            slot = _slots(run, sid)[3]
            booked = _book(run, sid, slot["start"])
            assert booked.status_code == 201, booked.text
            body = booked.json()
            assert all(v.startswith("deferred: ") for v in body["invites"].values()), body
            at = dt.datetime.now(dt.UTC)

            def kept() -> dict[str, tuple[str, int]]:
                return {r: (s, n) for r, s, n in run.query(
                    "SELECT recipient, status, attempts FROM meeting_invites "
                    f"WHERE meeting_id = '{body['meeting']}'")}
            assert kept() == {"visitor": ("deferred", 1), "rep": ("deferred", 1)}
            # the dashboard's activity page says so
            (shown,) = activity_lists(run.ws.store)["meetings"]
            assert shown["invites"] == "rep: deferred, visitor: deferred"
            # not due yet (the first wait is a minute), then due and still down: one is
            # tried, and the other waits for the next look rather than for a second timeout
            assert sum(run.ws.retry_invites(at + dt.timedelta(seconds=20)).values()) == 0
            assert run.ws.retry_invites(at + dt.timedelta(minutes=2)) == {
                "sent": 0, "deferred": 1, "bounced": 0, "failed": 0}
            assert sorted(n for _, n in kept().values()) == [1, 2]
            # the next look tries the other; the first waits twice as long as before
            assert run.ws.retry_invites(at + dt.timedelta(minutes=3))["deferred"] == 1
            assert kept() == {"visitor": ("deferred", 2), "rep": ("deferred", 2)}
            assert sum(run.ws.retry_invites(at + dt.timedelta(minutes=3, seconds=30)
                                            ).values()) == 0
            smtp.start()
            got = run.ws.retry_invites(at + dt.timedelta(minutes=5))
            assert got["sent"] == 2, got
            assert kept() == {"visitor": ("sent", 3), "rep": ("sent", 3)}
            assert activity_lists(run.ws.store)["meetings"][0]["invites"] == (
                "rep: sent (3 attempts), visitor: sent (3 attempts)")
            invites = _invites(inbox)
            assert sorted(r for r, _, _ in invites) == sorted(
                ["jo@acme.com", {"Ana": "ana@northwind.example",
                                 "Ben": "ben@northwind.example"}[body["rep"]]])
            start = dt.datetime.fromisoformat(slot["start"].replace("Z", "+00:00"))
            for _, cal, _ in invites:
                (ev,) = cal.walk("VEVENT")
                assert str(cal["METHOD"]) == "REQUEST" and ev.decoded("DTSTART") == start
                # titled as the booking's own invite would have been: the account's name
                assert str(ev["SUMMARY"]) == "Northwind: meeting with Acme"
                assert str(ev["UID"]) == f"{body['meeting']}@demandloop"
            assert sum(run.ws.retry_invites(at + dt.timedelta(hours=3)).values()) == 0
            # down again: a meeting whose invites are still deferred when it starts
            smtp.stop()
            late = _book(run, _session(run, "anon-late"), _slots(run, sid)[5]["start"]).json()
            assert all(v.startswith("deferred: ") for v in late["invites"].values()), late
            begun = dt.datetime.fromisoformat(late["starts_at"].replace("Z", "+00:00"))
            assert run.ws.retry_invites(begun + dt.timedelta(minutes=1))["failed"] == 2
            assert {s for (s,) in run.query(
                "SELECT status FROM meeting_invites WHERE meeting_id = "
                f"'{late['meeting']}'")} == {"failed"}
            assert len(inbox.messages) == 2
            assert sum(run.ws.retry_invites(begun + dt.timedelta(hours=2)).values()) == 0
    finally:
        hook.httpd.shutdown()
        with contextlib.suppress(Exception):
            smtp.stop()


def test_an_older_invites_outcome_never_hides_a_newer_ones() -> None:
    """A retry of the invite before a reschedule that lands after the new invite's outcome
    (deferred) must not mark it done: the moved meeting's invite would never be sent."""
    con = duckdb.connect()
    con.execute(V18)
    now = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    later = now + dt.timedelta(minutes=1)
    chat_queries.record_invite(con, "w", "mt1", "rep", 1, "REQUEST", "deferred", "down", 1,
                               now, later)
    chat_queries.record_invite(con, "w", "mt1", "rep", 0, "REQUEST", "sent", "", 1, now, None)
    assert con.execute("SELECT sequence, status, attempts FROM meeting_invites").fetchall() == [
        (1, "deferred", 1)]
    chat_queries.record_invite(con, "w", "mt1", "rep", 1, "REQUEST", "deferred", "down", 2,
                               later, later)
    chat_queries.record_invite(con, "w", "mt1", "rep", 2, "CANCEL", "sent", "", 1, later,
                               None)
    assert con.execute("SELECT sequence, method, status, attempts FROM meeting_invites"
                       ).fetchall() == [(2, "CANCEL", "sent", 1)]
    assert con.execute("SELECT next_at FROM meeting_invites").fetchall() == [(None,)]


def test_a_mail_server_that_never_answers_holds_a_booking_for_one_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mailbox whose server accepts connections but never answers (a firewall, a hung
    server): the booking answers after one short timeout, its invites deferred (and sent
    again later), not after the SMTP default for each recipient."""
    monkeypatch.setattr(invites, "SEND_TIMEOUT", 1.0)
    hook = Receiver()
    with socket.socket() as silent:  # the kernel completes the handshake; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        toml = TOML.format(port=silent.getsockname()[1], hook=hook.url)
        try:
            with collector(tmp_path / "ws", toml) as run:
                sid = _session(run, "anon-hung")
                start = _slots(run, sid)[2]["start"]
                began = time.monotonic()
                booked = httpx.post(f"{run.url}/v1/chat/sessions/{sid}/bookings", timeout=120,
                                    json={"writeKey": run.key, "start": start,
                                          "email": "jo@acme.com", "timezone": "UTC"})
                took = time.monotonic() - began
                assert booked.status_code == 201, booked.text
                assert all(v.startswith("deferred: ")
                           for v in booked.json()["invites"].values()), booked.text
                assert took < 15, took  # (the SMTP default alone is 30 s)
                assert {s for (s,) in run.query("SELECT status FROM meeting_invites")} == {
                    "deferred"}
        finally:
            hook.httpd.shutdown()

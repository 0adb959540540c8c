"""Chat in headless Chromium (Debian's, driven by Playwright): a visitor from a target
account opens the widget on a small shipped site, asks a question, gets an answer that
cites the right page, books a slot in their own time zone; a real SMTP server receives the
two invites, the rep's workflow alert arrives, and the visitor's sequence stops."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import shutil
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import icalendar
import pytest
from aiosmtpd.controller import Controller

from demandloop.activate import sequence_queries
from tests.collector_helpers import Running, collector, free_port
from tests.test_chat import BASE, SITE
from tests.test_meetings import LOOP
from tests.test_sequences import Inbox
from tests.test_snippet_browser import _browser, _site, _until
from tests.test_workflows import Receiver

TOML = f"""
[collector]
trusted_proxies = ["127.0.0.1/32"]
cors_origins = ["*"]
rescore_minutes = 0

[content]
base_url = "{BASE}"

[chat]
enabled = true
[[chat.playbooks]]
name = "targets"
audience = [{{{{field = "target", value = true}}}}]
greeting = "Welcome back, {{{{{{{{ account.name }}}}}}}}!"

[meetings]
fallback = ["Ana"]
lead_minutes = 60
mailbox = "meetings"
company = "Northwind"
[[meetings.reps]]
name = "Ana"
email = "ana@northwind.example"
hours = "00:00-24:00"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
[[meetings.reps]]
name = "Owen"
email = "owen@northwind.example"
timezone = "America/Chicago"
hours = "00:00-24:00"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

[activate.mail]
tick_seconds = 3600  # the test runs the sender itself
""" + LOOP

PAGE = """<!doctype html><html><head><title>Northwind</title>
<script src="{collector}/dl.js?k={key}" data-chat="on"></script></head>
<body><h1>Northwind Analytics</h1></body></html>"""
OFFICE = "10.9.0.77"  # inside acme.com's range below


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    browser = _browser()
    root = tmp_path_factory.mktemp("chat-browser")
    inbox, port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    hook = Receiver()
    site = Path(shutil.copytree(SITE, root / "site"))
    try:
        with collector(root / "ws", TOML.format(port=port, hook=hook.url)) as run:
            run.ws.index_content([str(site)])
            with run.ws.store.writer() as cur:
                cur.execute("INSERT INTO accounts (workspace_id, account_id, domain, name, "
                            "owner, target) VALUES ('default', 'acme.com', 'acme.com', "
                            "'Acme', 'Owen', true)")
                cur.execute("INSERT INTO ip_ranges (workspace_id, start_ip, end_ip, "
                            "account_id, source) VALUES ('default', 168361984, 168362239, "
                            "'acme.com', 'crm')")
                cur.execute("INSERT INTO scores VALUES ('default', now()::TIMESTAMP, "
                            "'account', 'acme.com', 80, 10, 2, 'mqa', '{}')")
            run.ws.publish_personalization()
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            sequence_queries.enrol(run.ws.store, [{
                "enrolment_id": "enr-jo", "sequence": "nurture", "person_id": "jo@acme.com",
                "account_id": "acme.com", "email": "jo@acme.com", "mailbox": "meetings",
                "timezone": "Europe/Paris", "stage_at_enrolment": "mqa",
                "workflow": None, "enrolled_at": now - dt.timedelta(hours=1)}])
            (site / "chat.html").write_text(PAGE.format(collector=run.url, key=run.key))
            gen = _site(site)
            origin = next(gen)
            yield {"run": run, "origin": origin, "inbox": inbox, "hook": hook,
                   "browser": browser}
            next(gen, None)
    finally:
        hook.httpd.shutdown()
        smtp.stop()


@pytest.fixture(scope="module")
def chromium(setup: dict[str, Any]) -> Iterator[Any]:
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=setup["browser"], headless=True,
                              args=["--no-sandbox", "--disable-gpu",
                                    "--disable-background-networking"])
        yield b
        b.close()


def test_a_target_visitor_asks_gets_a_cited_answer_and_books(
        setup: dict[str, Any], chromium: Any) -> None:
    run: Running = setup["run"]
    ctx = chromium.new_context(extra_http_headers={"X-Forwarded-For": OFFICE},
                               timezone_id="Asia/Tokyo")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # the server maps the published snapshot within a second: until then Acme is unknown
    _until(lambda: _greeted(page, setup["origin"]), timeout=15)
    assert page.text_content("#dl-chat .dl-bot") == "Welcome back, Acme!"
    # a hot target account: its owner's calendar is offered at once
    page.wait_for_selector("#dl-chat .dl-book .dl-choice")

    page.fill("#dl-chat .dl-ask input", "How much is the Team plan per seat?")
    page.click("#dl-chat .dl-ask button")
    answer = page.wait_for_selector("#dl-chat .dl-bot[data-known='true']")
    assert "$49 per seat" in answer.text_content()
    link = page.query_selector("#dl-chat .dl-bot[data-known='true'] a.dl-cite")
    assert link is not None and link.get_attribute("href") == f"{BASE}/pricing/"

    page.click("#dl-chat .dl-book .dl-choice")
    first = page.wait_for_selector("#dl-chat .dl-slots .dl-choice")
    label = first.text_content()
    first.click()
    page.fill("#dl-chat .dl-details input[name=email]", "jo@acme.com")
    page.fill("#dl-chat .dl-details input[name=name]", "Jo Ng")
    page.click("#dl-chat .dl-details button")
    page.wait_for_function("document.querySelector('#dl-chat .dl-log').textContent"
                           ".indexOf('Booked with Owen') >= 0", timeout=15_000)
    assert errors == []
    # the panel closes (it had no way to: on a phone it covered the page for good), and
    # opens again on the same conversation
    sessions = run.query("SELECT count(*) FROM chat_sessions")
    page.click("#dl-chat .dl-close")
    assert not page.is_visible("#dl-chat .dl-panel") and page.is_visible("#dl-chat .dl-launch")
    page.click("#dl-chat .dl-launch")
    assert page.is_visible("#dl-chat .dl-panel")
    assert "Booked with Owen" in page.text_content("#dl-chat .dl-log")
    assert run.query("SELECT count(*) FROM chat_sessions") == sessions

    # the slot the visitor picked, in their zone, is the meeting's start
    (starts,) = run.query("SELECT starts_at FROM meetings WHERE status = 'booked'")[0]
    start = starts.replace(tzinfo=dt.UTC)
    tokyo = start.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert label == f"{tokyo:%a %d %b} {tokyo:%H:%M}"
    invites = []
    for _, rcpts, raw in setup["inbox"].messages:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
        invites.append((rcpts[0], icalendar.Calendar.from_ical(part.get_content())))
    assert sorted(r for r, _ in invites) == ["jo@acme.com", "owen@northwind.example"]
    for _, cal in invites:
        (ev,) = cal.walk("VEVENT")
        assert ev.decoded("DTSTART") == start
        assert ev.decoded("DTEND") == start + dt.timedelta(minutes=30)
        assert sorted(str(a).lower() for a in ev.get("ATTENDEE")) == \
            ["mailto:jo@acme.com", "mailto:owen@northwind.example"]
    # the rep's alert, and the enrolment stops on the meeting
    alerts = _until(lambda: setup["hook"].got, timeout=20)
    assert alerts and alerts[0]["path"] == "/meeting"
    run.wait_loaded()
    run.ws.run_sequences()
    assert run.query("SELECT status, stop_reason FROM enrolments") == [("stopped", "meeting")]
    assert setup["inbox"].messages and len(setup["inbox"].messages) == 2  # no sequence mail
    ctx.close()


def _greeted(page: Any, origin: str) -> bool:
    page.goto(origin + "/chat.html")
    page.click("#dl-chat .dl-launch")
    page.wait_for_selector("#dl-chat .dl-bot", timeout=10_000)
    return bool(page.text_content("#dl-chat .dl-bot") == "Welcome back, Acme!")

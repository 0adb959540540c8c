"""Content and chat: pages parsed as a reader sees them, an index that re-reads only what
changed (files, and a real HTTP site with a sitemap), answers that cite the page they come
from and say "I don't know" when the pages do not hold the answer, playbooks, and the chat
endpoints of a real collector (server-sent events, write keys, bad input)."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import demandloop
from demandloop.activate import chat
from demandloop.activate.knowledge import Hit
from demandloop.collect.pages import parse_html, parse_markdown, passages
from demandloop.config import Settings
from demandloop.errors import ConfigError, UsageError
from tests.collector_helpers import Running, collector
from tests.test_snippet_browser import _until

SITE = Path(__file__).parent / "data" / "site"
BASE = "https://northwind.example"

TOML = f"""
[collector]
trusted_proxies = ["127.0.0.1/32"]

[content]
base_url = "{BASE}"

[chat]
enabled = true

[[chat.playbooks]]
name = "targets"
audience = [{{field = "target", value = true}}]
greeting = "Welcome back, {{{{ account.name }}}}!"

[[chat.playbooks]]
name = "everyone"
greeting = "Hi{{% if account.name %}} {{{{ account.name }}}}{{% endif %}}! Ask me anything."
[[chat.playbooks.questions]]
trait = "role"
ask = "What is your role?"
options = ["Marketing", "Sales", "Other"]
[[chat.playbooks.questions]]
trait = "team_size"
ask = "How large is your team?"

[meetings]
fallback = ["Ana"]
lead_minutes = 0
[[meetings.reps]]
name = "Ana"
email = "ana@northwind.example"
hours = "00:00-24:00"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
[[meetings.reps]]
name = "Owen"
email = "owen@northwind.example"
weight = 0
hours = "00:00-24:00"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
"""


# -- pages -------------------------------------------------------------------------------
def test_html_keeps_the_content_and_drops_navigation_scripts_and_footers() -> None:
    page = parse_html(b"""<html><head><title>Plans</title><script>var x = 'secret'</script>
        <link rel="canonical" href="https://x.io/plans"></head><body><nav>Home Blog</nav>
        <main><h1>Plans</h1><p>Team costs <b>$49</b>.</p><ul><li>SSO</li><li>Audit logs</li>
        </ul><h2>FAQ</h2><div>Cancel any time<script>track()</script> online.</div></main>
        <footer>Copyright</footer></body></html>""", "file:///plans.html")
    assert page.url == "https://x.io/plans" and page.title == "Plans"
    assert [(s.heading, s.text) for s in page.sections] == [
        ("Plans", "Team costs $49 . SSO. Audit logs."), ("FAQ", "Cancel any time online.")]
    text = " ".join(s.text for s in page.sections)
    for hidden in ("Home", "secret", "track", "Copyright"):
        assert hidden not in text


def test_markdown_front_matter_names_the_page() -> None:
    page = parse_markdown("---\ntitle: Setup guide\nurl: https://x.io/setup\n---\n# Install\n\n"
                          "Run `pip install x`.\nThen *start* it.\n\n## Configure\n\n"
                          "```\nkey = 1\n```\n", "file:///setup.md")
    assert (page.url, page.title) == ("https://x.io/setup", "Setup guide")
    assert [(s.heading, s.text) for s in page.sections] == [
        ("Install", "Run pip install x. Then start it."), ("Configure", "key = 1")]


def test_passages_keep_whole_sentences_under_the_limit() -> None:
    sentence = "Word " * 9 + "end."
    page = parse_markdown("# H\n\n" + " ".join([sentence] * 7), "u")
    cut = passages(page, max_words=25)
    assert [len(p.text.split()) for p in cut] == [20, 20, 20, 10]
    assert all(p.text.endswith("end.") and p.heading == "H" for p in cut)


# -- the index -----------------------------------------------------------------------------
@pytest.fixture
def site(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SITE, tmp_path / "site"))


def _ws(tmp_path: Path) -> demandloop.Workspace:
    (tmp_path / "ws").mkdir(exist_ok=True)
    (tmp_path / "ws" / "demandloop.toml").write_text(f'[content]\nbase_url = "{BASE}"\n')
    return demandloop.open(tmp_path / "ws")


def test_answers_cite_the_page_that_holds_them(tmp_path: Path, site: Path) -> None:
    with _ws(tmp_path) as ws:
        done = ws.index_content([str(site)])
        assert (done.pages, done.added) == (4, 4)
        cases = {"How much is the Team plan per seat?": (f"{BASE}/pricing/", "Team"),
                 "Where is customer data encrypted at rest?": (f"{BASE}/security/",
                                                               "Encryption"),
                 "How often does Salesforce sync?": (f"{BASE}/docs/integrations",
                                                     "Salesforce"),
                 "Is there a discount for schools?": (f"{BASE}/pricing/", "Discounts")}
        for question, (url, heading) in cases.items():
            best = ws.search_content(question, 3)[0]
            assert (best["url"], best["heading"]) == (url, heading), question
            assert best["relevance"] >= 0.5
        # nothing on the site says anything of these
        for question in ("What is your refund policy?", "Who won the football match?"):
            hits = [Hit(**h) for h in ws.search_content(question, 3)]
            assert not chat.answer(hits, 0.5).known


def test_a_reindex_reads_only_what_changed(tmp_path: Path, site: Path) -> None:
    with _ws(tmp_path) as ws:
        ws.index_content([str(site)])
        again = ws.index_content([str(site)])
        assert (again.unchanged, again.changed, again.added, again.removed) == (4, 0, 0, 0)
        pricing = site / "pricing" / "index.html"
        pricing.write_text(pricing.read_text().replace("$49", "$59"))
        (site / "docs" / "integrations.md").unlink()
        (site / "careers.md").write_text("# Careers\n\nWe are hiring engineers in Lisbon.\n")
        third = ws.index_content([str(site)])
        assert (third.pages, third.unchanged, third.changed, third.added, third.removed) == \
            (4, 2, 1, 1, 1)
        team = ws.search_content("Team plan price per seat", 1)[0]
        assert "$59" in team["text"] and "$49" not in team["text"]
        assert ws.search_content("Salesforce sync", 3) == []
        assert ws.search_content("hiring engineers", 1)[0]["url"] == f"{BASE}/careers"


def test_a_missing_source_is_refused_and_changes_nothing(tmp_path: Path, site: Path) -> None:
    with _ws(tmp_path) as ws:
        first = ws.index_content([str(site)])
        with pytest.raises(UsageError, match="not a file, a folder or an http"):
            ws.index_content([str(site), str(tmp_path / "nope")])
        index = ws.content_index()
        assert index is not None and index.generation == first.generation


class _Counting(http.server.SimpleHTTPRequestHandler):
    """A static site that counts GETs per path and answers 500 for /broken.html."""

    hits: dict[str, int]

    def do_GET(self) -> None:  # noqa: N802
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/broken.html":
            self.send_error(500)
            return
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_site(site: Path) -> Iterator[tuple[str, Path, dict[str, int]]]:
    hits: dict[str, int] = {}
    handler = type("Counted", (_Counting,), {"hits": hits})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", site, hits
    httpd.shutdown()


def _sitemap(site: Path, base: str, pages: dict[str, str]) -> None:
    urls = "".join(f"<url><loc>{base}{p}</loc>" + (f"<lastmod>{m}</lastmod>" if m else "")
                   + "</url>" for p, m in pages.items())
    (site / "sitemap.xml").write_text('<?xml version="1.0" encoding="UTF-8"?><urlset xmlns='
                                      f'"http://www.sitemaps.org/schemas/sitemap/0.9">{urls}'
                                      "</urlset>")


def test_a_sitemap_is_read_with_lastmod_and_conditional_gets(
        tmp_path: Path, http_site: tuple[str, Path, dict[str, int]]) -> None:
    base, site, hits = http_site
    pages = {"/pricing/index.html": "2026-11-01", "/security/index.html": "",
             "/docs/integrations.md": "2026-11-02"}
    _sitemap(site, base, pages)
    with _ws(tmp_path) as ws:
        first = ws.index_content([f"{base}/sitemap.xml"])
        assert (first.pages, first.added, first.failed) == (3, 3, {})
        hit = ws.search_content("data residency Frankfurt", 1)[0]
        assert hit["url"] == f"{base}/security/index.html"
        before = dict(hits)
        second = ws.index_content([f"{base}/sitemap.xml"])
        assert (second.unchanged, second.changed) == (3, 0)
        # lastmod unchanged: not fetched at all; no lastmod: a conditional GET (304)
        assert hits["/pricing/index.html"] == before["/pricing/index.html"] == 1
        assert hits["/security/index.html"] == before["/security/index.html"] + 1
        # a page leaves the sitemap, one fails: the first leaves the index, the other is
        # reported (and had no earlier version to keep)
        del pages["/docs/integrations.md"]
        pages["/broken.html"] = ""
        _sitemap(site, base, pages)
        third = ws.index_content([f"{base}/sitemap.xml"])
        assert third.removed == 1 and list(third.failed) == [f"{base}/broken.html"]
        assert third.pages == 2
        assert ws.search_content("Salesforce", 1) == []


def test_a_re_index_that_reads_nothing_fails(
        cli, tmp_path: Path, http_site: tuple[str, Path, dict[str, int]]) -> None:  # type: ignore[no-untyped-def]
    # it exited 0 once an earlier index held pages: a cron job never saw the site was down
    base, _, _ = http_site
    w = str(tmp_path / "w")
    assert cli("-w", w, "content", "index", f"{base}/pricing/index.html")[0] == 0
    code, _, err = cli("-w", w, "content", "index", f"{base}/broken.html")
    assert code == 1 and "not read:" in err and "no source could be read" in err
    # some read, one not: done, the one named
    code, _, err = cli("-w", w, "content", "index", f"{base}/pricing/index.html",
                       f"{base}/broken.html")
    assert code == 0 and "not read:" in err and "no source could be read" not in err


# -- conversation rules ----------------------------------------------------------------------
def test_playbooks_and_the_fast_lane_for_hot_target_accounts(tmp_path: Path) -> None:
    (tmp_path / "demandloop.toml").write_text(TOML)
    s = Settings.load(tmp_path)
    reps = ["Ana", "Owen"]
    hot = {"target": True, "stage": "mqa", "owner": "Owen", "name": "Acme"}
    assert chat.choose(s.chat.playbooks, hot).name == "targets"  # type: ignore[union-attr]
    assert chat.greeting(s.chat, chat.choose(s.chat.playbooks, hot), hot) == \
        "Welcome back, Acme!"
    assert chat.next_step(s.chat, None, hot, {}, reps).as_json() == \
        {"kind": "meeting", "reason": "owner"}
    everyone = s.chat.playbooks[1]
    for row in ({**hot, "stage": "engaged"}, {**hot, "target": False},
                {**hot, "owner": "Nobody"}, {}):
        step = chat.next_step(s.chat, everyone, row, {}, reps)
        assert (step.kind, step.trait) == ("question", "role"), row
        step = chat.next_step(s.chat, everyone, row, {"role": "Sales"}, reps)
        assert (step.kind, step.trait) == ("question", "team_size")
        step = chat.next_step(s.chat, everyone, row, {"role": "Sales", "team_size": "5"},
                              reps)
        assert step.as_json() == {"kind": "meeting", "reason": "qualified"}
    assert chat.greeting(s.chat, everyone, {}) == "Hi! Ask me anything."
    assert chat.next_step(s.chat, everyone, {}, {"role": "x", "team_size": "y"}, []).kind == \
        "none"


def test_unknown_playbook_fields_are_refused(tmp_path: Path) -> None:
    (tmp_path / "demandloop.toml").write_text(
        '[[chat.playbooks]]\nname = "x"\ngreeting = "hi"\n'
        'audience = [{field = "revenue_band", value = 1}]\n')
    with pytest.raises(ConfigError, match="revenue_band"):
        Settings.load(tmp_path)


# -- the endpoints ---------------------------------------------------------------------------
@pytest.fixture
def served(tmp_path: Path, site: Path) -> Iterator[Running]:
    with collector(tmp_path / "srv", TOML) as run:
        with_hot_target(run.ws, site)
        yield run


def with_hot_target(ws: demandloop.Workspace, site: Path) -> None:
    """Index *site* and add a hot target account behind 10.9.0.0/24 (Acme, owned by Owen),
    published for the server to map visitors to."""
    ws.index_content([str(site)])
    with ws.store.writer() as cur:
        cur.execute("INSERT INTO accounts (workspace_id, account_id, domain, name, owner, "
                    "target) VALUES ('default', 'acme.com', 'acme.com', 'Acme', 'Owen', true)")
        cur.execute("INSERT INTO ip_ranges (workspace_id, start_ip, end_ip, account_id, "
                    "source) VALUES ('default', 168361984, 168362239, 'acme.com', 'crm')")
        cur.execute("INSERT INTO scores VALUES ('default', now()::TIMESTAMP, 'account', "
                    "'acme.com', 80, 10, 2, 'mqa', '{}')")
    ws.publish_personalization()


def _events(response: httpx.Response) -> list[tuple[str, Any]]:
    out, name = [], None
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            out.append((name, orjson.loads(line[5:].strip())))
    return out


def _start(run: Running, headers: dict[str, str] | None = None, **body: Any
           ) -> httpx.Response:
    return httpx.post(run.url + "/v1/chat/sessions",
                      json={"writeKey": run.key, "url": BASE + "/pricing/", **body},
                      headers=headers or {})


def test_a_session_records_the_person_of_a_known_browser(served: Running) -> None:
    with served.ws.store.writer() as cur:
        cur.execute("INSERT INTO persons (workspace_id, person_id, email, seniority, "
                    "job_function, account_id) VALUES ('default', 'jo@acme.com', "
                    "'jo@acme.com', 'vp', 'marketing', 'acme.com')")
        cur.execute("INSERT INTO person_identifiers VALUES ('default', 'anon:anon-jo', "
                    "'anon', 'jo@acme.com')")
    served.ws.publish_personalization()
    deadline = time.monotonic() + 30  # the server reloads published snapshots every second
    known = _start(served, anonymousId="anon-jo", url=BASE + "/blog/")
    while not known.json()["account"] and time.monotonic() < deadline:
        time.sleep(0.2)
        known = _start(served, anonymousId="anon-jo", url=BASE + "/blog/")
    stranger = _start(served, anonymousId="anon-nobody")
    assert known.status_code == stranger.status_code == 201
    with served.ws.store.reader() as cur:
        rows = dict(cur.execute(
            "SELECT session_id, (person_id, account_id) FROM chat_sessions").fetchall())
    assert rows[known.json()["session"]] == ("jo@acme.com", "acme.com")
    assert rows[stranger.json()["session"]] == (None, None)


def test_a_question_streams_an_answer_that_cites_its_page(served: Running) -> None:
    started = _start(served, anonymousId="anon-1")
    assert started.status_code == 201
    session = started.json()
    assert session["playbook"] == "everyone" and session["greeting"] == "Hi! Ask me anything."
    assert session["next"]["trait"] == "role"
    with httpx.stream("POST", f"{served.url}/v1/chat/sessions/{session['session']}/messages",
                      json={"writeKey": served.key, "text": "How much is the Team plan?"}
                      ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _events(r)
    names = [n for n, _ in events]
    assert names[-3:] == ["answer", "next", "done"] and names.count("token") >= 2
    answer = dict(events)["answer"]
    assert "".join(d["text"] for n, d in events if n == "token") == answer["text"]
    assert "$49 per seat" in answer["text"] and answer["known"] is True
    assert answer["citations"] == [{"url": f"{BASE}/pricing/", "heading": "Team",
                                    "title": "Pricing | Northwind Analytics"}]
    with httpx.stream("POST", f"{served.url}/v1/chat/sessions/{session['session']}/messages",
                      json={"writeKey": served.key, "text": "What is your refund policy?"}
                      ) as r:
        events = _events(r)
    answer = dict(events)["answer"]
    assert answer["known"] is False and answer["text"] == chat.DONT_KNOW
    assert answer["citations"] == []
    # not answered: a person is offered at once, before any qualification question
    assert dict(events)["next"] == {"kind": "meeting", "reason": "unanswered"}
    transcript = served.query("SELECT role, text FROM chat_messages ORDER BY seq")
    assert [r[0] for r in transcript] == ["bot", "visitor", "bot", "visitor", "bot"]


def test_pages_with_no_address_on_the_site_are_never_cited_to_a_visitor(
        tmp_path: Path, site: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Indexed from a folder without content.base_url, a page was cited by its file://
    path: the answer event named the server's folders to every visitor (the widget showed
    no link). The index says so as it is made."""
    toml = TOML.replace(f'base_url = "{BASE}"', "")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "demandloop.toml").write_text(toml)
    code, out, err = cli("-w", str(tmp_path / "ws"), "content", "index", str(site))
    assert code == 0 and "warning: 4 page(s) have no address on your site" in err
    assert "set content.base_url" in err
    with collector(tmp_path / "srv", toml) as run:
        run.ws.index_content([str(site)])
        session = _start(run, anonymousId="anon-f").json()["session"]
        with httpx.stream("POST", f"{run.url}/v1/chat/sessions/{session}/messages",
                          json={"writeKey": run.key, "text": "How much is the Team plan?"}
                          ) as r:
            body = r.read().decode()
        answer = dict(_events(httpx.Response(200, content=body)))["answer"]
        stored = run.query("SELECT citations FROM chat_messages WHERE role = 'bot' "
                           "ORDER BY seq DESC LIMIT 1")[0][0]
    assert "$49 per seat" in answer["text"] and answer["known"] is True
    assert answer["citations"] == [] and "file:" not in body and str(site) not in body
    # the transcript keeps what was read (the dashboard counts unanswered questions by it)
    assert "file:" in stored


def test_a_hot_target_account_gets_its_owners_calendar_at_once(served: Running) -> None:
    # the server maps the snapshot published in the fixture within a second
    session = _until(lambda: (lambda s: s if s["playbook"] == "targets" else None)(
        _start(served, headers={"X-Forwarded-For": "10.9.0.77"}).json()))
    assert session["playbook"] == "targets" and session["greeting"] == "Welcome back, Acme!"
    assert session["next"] == {"kind": "meeting", "reason": "owner"}
    assert session["account"] == {"name": "Acme"}  # nothing else of the account leaks
    slots = httpx.get(f"{served.url}/v1/chat/sessions/{session['session']}/slots",
                      params={"k": served.key, "tz": "Asia/Tokyo"}).json()
    assert slots["owner"] == "Owen" and slots["timezone"] == "Asia/Tokyo"
    assert slots["slots"] and all(s["minutes"] == 30 for s in slots["slots"])


def test_answers_to_questions_become_traits_of_the_visitor(served: Running) -> None:
    sid = _start(served, anonymousId="anon-q").json()["session"]
    url = f"{served.url}/v1/chat/sessions/{sid}/answers"
    bad = httpx.post(url, json={"writeKey": served.key, "trait": "role", "value": "CEO"})
    assert bad.status_code == 400 and "not an option" in bad.json()["error"]["message"]
    ok = httpx.post(url, json={"writeKey": served.key, "trait": "role", "value": "Sales"})
    assert ok.status_code == 200 and ok.json()["next"]["trait"] == "team_size"
    served.wait_loaded()
    rows = served.query("SELECT type, anonymous_id, traits->>'$.role' FROM events "
                        "WHERE type = 'identify'")
    assert rows == [("identify", "anon-q", "Sales")]


def test_bad_requests_get_one_clear_error_and_change_nothing(served: Running) -> None:
    before = served.query("SELECT count(*) FROM chat_sessions")[0][0]
    cases = [
        (httpx.post(served.url + "/v1/chat/sessions", json={"writeKey": "wrong"}), 401,
         "invalid_write_key"),
        (httpx.post(served.url + "/v1/chat/sessions", content=b"{not json",
                    headers={"content-type": "application/json"}), 400, "invalid_json"),
        (httpx.post(served.url + "/v1/chat/sessions",
                    json={"writeKey": served.key, "url": "x" * 20_000}), 413, "too_large"),
        (httpx.post(served.url + "/v1/chat/sessions/cs_nope/messages",
                    json={"writeKey": served.key, "text": "hi"}), 404, "not_found"),
        (httpx.post(served.url + "/v1/chat/sessions",
                    json={"writeKey": served.key, "anonymousId": 5}), 400, "invalid_request"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
    sid = _start(served).json()["session"]
    long = httpx.post(f"{served.url}/v1/chat/sessions/{sid}/messages",
                      json={"writeKey": served.key, "text": "x" * 5000})
    assert long.status_code == 400 and "longer than" in long.json()["error"]["message"]
    assert served.query("SELECT count(*) FROM chat_sessions")[0][0] == before + 1
    assert served.query("SELECT count(*) FROM chat_messages WHERE role = 'visitor'") == [(0,)]


def test_a_bug_is_one_json_error_not_a_page_of_text(
        served: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    # the widget reads every answer as JSON: a bug answered "Internal Server Error" as text
    from demandloop.workspace.chat import ChatService

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail")
    sid = _start(served).json()["session"]
    monkeypatch.setattr(ChatService, "slots", boom)
    r = httpx.get(f"{served.url}/v1/chat/sessions/{sid}/slots", params={"k": served.key})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "RuntimeError" in r.json()["error"]["message"] and "secret" not in r.text


def test_the_widget_is_in_dl_js_only_with_chat_enabled(tmp_path: Path) -> None:
    from demandloop.serve.app import chat_widget
    from demandloop.serve.snippet import snippet

    (tmp_path / "demandloop.toml").write_text(TOML)
    s = Settings.load(tmp_path)
    plain, with_chat = snippet(s.collector), snippet(s.collector, None, chat_widget(s))
    assert "function chatWidget" not in plain and "function chatWidget" in with_chat
    # sites without chat keep the small snippet (7 KB, 3 KB as served, gzipped)
    assert len(plain.encode()) < 8000 and len(with_chat) > len(plain) + 4000
    assert '"launcher":"Chat with us"' in with_chat

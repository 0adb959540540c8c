"""Personalisation in headless Chromium (Debian's, driven by Playwright): a static site on
loopback with dl.js, visitors from different companies' offices (the collector trusts
loopback as a proxy, so each browser context sends its office address as X-Forwarded-For).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demandloop.activate.personalize import in_control
from tests.collector_helpers import Running, collector
from tests.conftest import load_market
from tests.test_snippet_browser import _browser, _site, _until

PAGE = """<!doctype html><html><head><title>Home</title>
<script src="{collector}/dl.js?k={key}"></script></head><body>
<h1 id="headline">The original headline</h1>
<a id="cta" href="/signup.html">Start free</a>
<p id="rest">Everything else on the page</p>
<div id="promo">Our promo</div></body></html>"""

TOML = """
[collector]
trusted_proxies = ["127.0.0.1/32"]

[personalize]
timeout_ms = 800

[[personalize.experiences]]
name = "target-hero"
zone = "hero"
priority = 10
audience.all = [{field = "target", value = true}]
[[personalize.experiences.changes]]
selector = "#headline"
text = "Pipeline for {{ account.name }}"
[[personalize.experiences.changes]]
selector = "#cta"
attribute = "href"
value = "/demo.html?company={{ account.domain }}"
[[personalize.experiences.changes]]
selector = "#cta"
text = "Book your demo"

[[personalize.experiences]]
name = "named-promo"
zone = "promo"
control = 0.0
audience.all = [{field = "target", value = false}, {field = "account_known", value = true}]
[[personalize.experiences.changes]]
selector = "#promo"
html = '<b>Hello {{ account.name }}</b><img src="x" onerror="window.__pwned = 2">'


[[personalize.experiences]]
name = "old-page"
zone = "page"
control = 0.0
audience.all = [{field = "path", value = "/old.html"}]
[[personalize.experiences.changes]]
redirect = "/index.html?moved=1"

[[personalize.experiences]]
name = "pricing-page"
zone = "pricing"
control = 0.0
audience.all = [{field = "path", value = "/pricing"}]
[[personalize.experiences.changes]]
selector = "#price"
text = "Plans, for you"

[[personalize.experiences]]
name = "g2-landing"
zone = "g2"
control = 0.0
audience.all = [{field = "utm_source", value = "g2"}]
[[personalize.experiences.changes]]
redirect = "/g2.html?utm_source=g2"
"""

#: every animation frame: the headline's visibility and text, and the rest's visibility
FRAMES = """
window.__frames = [];
(function rec() {
  var h = document.getElementById("headline"), r = document.getElementById("rest");
  if (h) window.__frames.push([getComputedStyle(h).visibility, h.textContent,
                               r ? getComputedStyle(r).visibility : "none"]);
  requestAnimationFrame(rec);
})();
"""
EVIL = 'Evil<img src=x onerror="window.__pwned=1">Corp'
#: an app that renders after its page loads, and moves with history.pushState
APP = """<!doctype html><html><head><title>App</title>
<script src="{collector}/dl.js?k={key}"></script></head><body><div id="root"></div>
<script>
function render(path) {{
  var root = document.getElementById("root");
  root.innerHTML = "";
  setTimeout(function () {{
    root.innerHTML = path === "/pricing" ? '<h1 id="price">Plans</h1>'
      : '<h1 id="headline">The original headline</h1><p id="rest">The rest</p>';
  }}, 400);
}}
render(location.pathname);
function go() {{ history.pushState({{}}, "", "/pricing"); render("/pricing"); }}
</script></body></html>"""


@pytest.fixture(scope="module")
def setup(market: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Running, str, dict[str, Any]]]:
    browser = _browser()
    root = tmp_path_factory.mktemp("personalize")
    directory = load_market(root / "ws", market)
    truth = json.loads((market / "truth.json").read_text())
    evil = next(a for a in truth["accounts"] if not a["target"] and a["in_crm"])
    with collector(directory, TOML) as run:
        with run.ws.store.writer() as cur:  # an account name that tries to inject markup
            cur.execute("UPDATE accounts SET name = ? WHERE account_id = ?",
                        [EVIL, evil["domain"]])
        run.ws.publish_personalization()
        site = root / "site"
        site.mkdir()
        for name in ("index.html", "old.html", "g2.html"):
            (site / name).write_text(PAGE.format(collector=run.url, key=run.key))
        (site / "app.html").write_text(APP.format(collector=run.url, key=run.key))
        gen = _site(site)
        origin = next(gen)
        yield run, origin, {"truth": truth, "evil": evil, "browser": browser}
        next(gen, None)


@pytest.fixture(scope="module")
def chromium(setup: tuple[Running, str, dict[str, Any]]) -> Iterator[Any]:
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=setup[2]["browser"], headless=True,
                              args=["--no-sandbox", "--disable-gpu",
                                    "--disable-background-networking"])
        yield b
        b.close()


def _office(account: dict[str, Any], host: int = 41) -> str:
    return account["office_cidr"].split("/")[0].rsplit(".", 1)[0] + f".{host}"


def _visit(chromium: Any, origin: str, ip: str, route: Any = None) -> Any:
    ctx = chromium.new_context(extra_http_headers={"X-Forwarded-For": ip})
    ctx.add_init_script(FRAMES)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    if route is not None:
        page.route("**/v1/decide**", route)
    page.goto(origin + "/index.html")
    page.errors = errors
    return page


def _settled(page: Any) -> None:
    """Wait until dl.js has decided (or given up) and shown the targets."""
    page.wait_for_function("document.getElementById('dl-prehide') === null", timeout=10_000)


def _exposures(run: Running) -> list[tuple[Any, ...]]:
    run.loader.load_once()
    return run.query("SELECT ip, json_extract_string(properties, '$.experience'), "
                     "json_extract_string(properties, '$.variant'), "
                     "json_extract_string(properties, '$.control') FROM events "
                     "WHERE event = 'Experience Viewed' ORDER BY received_at")


def _arms(truth: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    targets = [a for a in truth["accounts"] if a["target"] and a["in_crm"]]
    shown = next(a for a in targets if not in_control("target-hero", a["domain"], 0.5))
    held = next(a for a in targets if in_control("target-hero", a["domain"], 0.5))
    return shown, held


def test_target_visitor_sees_the_personalised_page_without_flicker(
        setup: tuple[Running, str, dict[str, Any]], chromium: Any) -> None:
    run, origin, ctx = setup
    shown, _ = _arms(ctx["truth"])
    page = _visit(chromium, origin, _office(shown))
    _settled(page)
    name = run.query("SELECT name FROM accounts WHERE account_id = ?", [shown["domain"]])[0][0]
    assert page.text_content("#headline") == f"Pipeline for {name}"
    assert page.text_content("#cta") == "Book your demo"
    assert page.get_attribute("#cta", "href") == f"/demo.html?company={shown['domain']}"
    frames = page.evaluate("window.__frames")
    assert frames, "no animation frame was recorded"
    # the original headline was never on screen, and the rest of the page never hidden
    assert not [f for f in frames if f[0] == "visible" and f[1] == "The original headline"]
    assert all(f[2] == "visible" for f in frames)
    exposures = _until(lambda: [e for e in _exposures(run) if e[0] == _office(shown)])
    assert [e[1:] for e in exposures] == [("target-hero", "personalized", "false")]
    assert page.errors == []


def test_control_and_unknown_visitors_see_the_original(
        setup: tuple[Running, str, dict[str, Any]], chromium: Any) -> None:
    run, origin, ctx = setup
    _, held = _arms(ctx["truth"])
    for ip, exposure in ((_office(held), [("target-hero", "control", "true")]),
                         ("8.8.8.8", [])):
        page = _visit(chromium, origin, ip)
        _settled(page)
        assert page.text_content("#headline") == "The original headline"
        assert page.get_attribute("#cta", "href") == "/signup.html"
        assert page.is_visible("#headline") and page.is_visible("#rest")
        assert page.text_content("#promo") == "Our promo"
        if exposure:
            got = _until(lambda ip=ip: [e for e in _exposures(run) if e[0] == ip])
            assert [e[1:] for e in got] == exposure
        else:
            time.sleep(0.5)
            assert [e for e in _exposures(run) if e[0] == ip] == []
        assert page.errors == []


def test_a_slow_decision_shows_the_original_and_is_then_ignored(
        setup: tuple[Running, str, dict[str, Any]], chromium: Any) -> None:
    run, origin, ctx = setup
    shown, _ = _arms(ctx["truth"])
    held: list[Any] = []
    started = time.monotonic()
    # the decide request is held, never answered
    page = _visit(chromium, origin, _office(shown), route=lambda r: held.append(r))
    assert time.monotonic() - started < 0.8  # the page loaded before the timeout
    # meanwhile only the targets are hidden: the rest of the page shows
    assert page.evaluate("getComputedStyle(document.getElementById('headline')).visibility") \
        == "hidden"
    assert page.is_visible("#rest")
    _settled(page)
    assert time.monotonic() - started >= 0.7
    assert page.text_content("#headline") == "The original headline"
    # the answer arrives late: the page does not flip
    held[0].fulfill(status=200, content_type="application/json", body=json.dumps(
        {"decisions": [{"experience": "target-hero", "zone": "hero", "variant": "personalized",
                        "control": False, "changes": [{"selector": "#headline",
                                                       "action": "text", "value": "Late"}]}]}))
    time.sleep(0.5)
    assert page.text_content("#headline") == "The original headline"
    frames = page.evaluate("window.__frames")
    assert all(f[1] == "The original headline" for f in frames)
    assert all(f[2] == "visible" for f in frames)


def test_a_change_the_browser_refuses_leaves_the_others_and_the_page_shown(
        setup: tuple[Running, str, dict[str, Any]], chromium: Any) -> None:
    # (the settings refuse such a selector; a decision is data from the network all the
    # same: one change that throws stopped the rest and left the targets hidden)
    run, origin, ctx = setup
    shown, _ = _arms(ctx["truth"])
    body = {"decisions": [{"experience": "target-hero", "zone": "hero",
                           "variant": "personalized", "control": False, "changes": [
                               {"selector": "#headline[", "action": "text", "value": "x"},
                               {"selector": "#headline", "action": "text",
                                "value": "Still applied"}]}]}
    page = _visit(chromium, origin, _office(shown), route=lambda r: r.fulfill(
        status=200, content_type="application/json", body=json.dumps(body)))
    _settled(page)
    assert page.text_content("#headline") == "Still applied"
    assert page.is_visible("#headline") and page.errors == []


def test_injected_markup_is_neutralised(setup: tuple[Running, str, dict[str, Any]],
                                        chromium: Any) -> None:
    run, origin, ctx = setup
    page = _visit(chromium, origin, _office(ctx["evil"]))
    _settled(page)
    page.wait_for_function("document.querySelector('#promo b') !== null")
    time.sleep(0.3)  # an onerror handler would have run by now
    assert page.evaluate("window.__pwned") is None
    assert page.text_content("#promo b") == f"Hello {EVIL}"  # the name shows as text
    assert page.evaluate("document.querySelectorAll('#promo img').length") == 1
    assert page.evaluate("document.querySelector('#promo img').getAttribute('onerror')") is None
    assert page.errors == []


def test_without_consent_it_personalises_by_account_and_stores_nothing(
        setup: tuple[Running, str, dict[str, Any]], chromium: Any) -> None:
    run, origin, ctx = setup
    shown, _ = _arms(ctx["truth"])
    ip = _office(shown).rsplit(".", 1)[0] + ".42"
    context = chromium.new_context(extra_http_headers={"X-Forwarded-For": ip})
    context.add_cookies([{"name": "dl_consent", "value": "denied", "url": origin}])
    page = context.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/v1/decide" in r.url else None)
    page.goto(origin + "/index.html")
    _settled(page)
    assert page.text_content("#headline").startswith("Pipeline for ")  # by the address
    assert len(asked) == 1 and "aid=" not in asked[0]  # no identifier sent
    assert {c["name"] for c in context.cookies()} == {"dl_consent"}  # none stored
    time.sleep(1.0)
    assert [e for e in _exposures(run) if e[0] == ip] == []  # and no event sent
    assert run.query("SELECT count(*) FROM events WHERE ip = ?", [ip]) == [(0,)]


def test_a_redirect_experience_sends_the_visitor_on(
        setup: tuple[Running, str, dict[str, Any]], chromium: Any) -> None:
    _, origin, _ = setup
    page = chromium.new_context(extra_http_headers={"X-Forwarded-For": "8.8.4.4"}).new_page()
    page.goto(origin + "/old.html")
    page.wait_for_url("**/index.html?moved=1", timeout=10_000)
    _settled(page)
    assert page.text_content("#headline") == "The original headline"


def test_a_redirect_to_the_page_its_audience_matches_happens_once(
        setup: tuple[Running, str, dict[str, Any]], chromium: Any) -> None:
    # the landing page matches the audience too: dl.js compared the redirect's path with
    # the page's whole address, found them different, and reloaded the page for ever
    _, origin, _ = setup
    page = chromium.new_context(extra_http_headers={"X-Forwarded-For": "8.8.4.5"}).new_page()
    landed: list[str] = []
    page.on("framenavigated", lambda f: landed.append(f.url) if f == page.main_frame else None)
    page.goto(origin + "/index.html?utm_source=g2")
    page.wait_for_url("**/g2.html?utm_source=g2", timeout=10_000)
    _settled(page)
    time.sleep(1.5)  # a loop would have reloaded it several times by now
    assert [u.split("/")[-1] for u in landed] == ["index.html?utm_source=g2",
                                                  "g2.html?utm_source=g2"]
    assert page.text_content("#headline") == "The original headline"


def test_an_app_that_renders_after_load_and_navigates_in_the_page_is_personalised(
        setup: tuple[Running, str, dict[str, Any]], chromium: Any) -> None:
    """A site whose app draws the page after it loads: the decision was applied to
    elements not there yet, the original headline showed; and a client-side navigation
    (history.pushState) to a page an experience targets was never decided at all."""
    run, origin, ctx = setup
    shown, _ = _arms(ctx["truth"])
    ip = _office(shown, 43)  # (a visitor of its own: others from the office came before)
    c = chromium.new_context(extra_http_headers={"X-Forwarded-For": ip})
    c.add_init_script(FRAMES)
    page = c.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(origin + "/app.html")
    name = run.query("SELECT name FROM accounts WHERE account_id = ?", [shown["domain"]])[0][0]
    page.wait_for_function(f"(h => h && h.textContent === {json.dumps('Pipeline for ' + name)})"
                           "(document.getElementById('headline'))", timeout=10_000)
    page.wait_for_function("document.getElementById('dl-pending') === null", timeout=10_000)
    frames = page.evaluate("window.__frames")
    # drawn 400 ms after the page, after the decision: never on screen as it was written
    assert frames  # (frames are recorded once the headline is in the page)
    assert not [f for f in frames if f[0] == "visible" and f[1] == "The original headline"]
    assert page.evaluate("getComputedStyle(document.getElementById('headline')).visibility"
                         ) == "visible"
    # in the app, to /pricing: decided again for that address, applied when it is drawn
    page.evaluate("go()")
    page.wait_for_function("(p => p && p.textContent === 'Plans, for you')"
                           "(document.getElementById('price'))", timeout=10_000)
    page.wait_for_function("document.getElementById('dl-pending') === null", timeout=10_000)
    assert page.evaluate("getComputedStyle(document.getElementById('price')).visibility"
                         ) == "visible"
    exposures = _until(lambda: len([e for e in _exposures(run) if e[0] == ip
                                    and e[1] == "pricing-page"]) == 1
                       and _exposures(run))
    # (the hero's audience is any page of a target account's: decided on /pricing too;
    # each exposure is a request of its own, which may arrive in either order)
    assert sorted(e[1] for e in exposures if e[0] == ip) == [
        "pricing-page", "target-hero", "target-hero"]
    assert errors == []
    c.close()

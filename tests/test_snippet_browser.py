"""dl.js in headless Chromium (Debian's, driven by Playwright) against a live collector: a page
view with UTM parameters, an identify on form submit, nothing under Global Privacy Control."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.collector_helpers import collector

PAGE = """<!doctype html><html><head><title>{title}</title>
<script src="{collector}/dl.js?k={key}"></script></head><body>
<form action="/thanks.html" method="get"><input type="email" name="email">
<input name="company" data-dl-capture><input name="phone"><input name="role">
<input type="radio" name="size" value="1-10" data-dl-capture>
<input type="radio" name="size" value="11-50" data-dl-capture>
<input type="radio" name="size" value="51-200" data-dl-capture>
<input type="checkbox" name="newsletter" value="yes" data-dl-capture>
<button type="submit">Get the guide</button></form></body></html>"""


def _browser() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        if os.environ.get("DEMANDLOOP_REQUIRE_BROWSER"):
            pytest.fail("chromium is required here (DEMANDLOOP_REQUIRE_BROWSER is set)")
        pytest.skip("Debian's chromium is not installed")
    return path


def _site(folder: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


def _until(fn, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    return fn()


def test_snippet_records_page_view_with_utm_and_identify_on_submit(tmp_path: Path) -> None:
    browser_path = _browser()
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with collector(tmp_path / "w", '[collector]\nform_fields = ["role"]\n') as run:
        site = tmp_path / "site"
        site.mkdir()
        for name, title in (("pricing.html", "Pricing"), ("thanks.html", "Thanks")):
            (site / name).write_text(PAGE.format(title=title, collector=run.url, key=run.key))
        gen = _site(site)
        origin = next(gen)

        def events(kind: str) -> list[tuple]:  # type: ignore[type-arg]
            run.loader.load_once()
            return run.query("SELECT anonymous_id, url, path, title, utm_source, utm_medium, "
                             "utm_campaign, traits, referrer FROM events WHERE type = ? "
                             "ORDER BY received_at", [kind])

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=browser_path, headless=True,
                                  args=["--no-sandbox", "--disable-gpu",
                                        "--disable-background-networking"])
            page = b.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{origin}/pricing.html?utm_source=linkedin&utm_medium=paid_social"
                      "&utm_campaign=q1-abm")
            views = _until(lambda: events("page"))
            assert len(views) == 1
            anon, url, path, title, source, medium, campaign, _, _ = views[0]
            assert (path, title, source, medium, campaign) == (
                "/pricing.html", "Pricing", "linkedin", "paid_social", "q1-abm")
            assert url.startswith(origin) and "utm_source=linkedin" in url
            cookie = {c["name"]: c["value"] for c in page.context.cookies()}
            assert cookie["dl_aid"] == anon  # first-party anonymous id
            page.fill("input[name=email]", "Dana@Acme.com")
            page.fill("input[name=company]", "Acme")
            page.fill("input[name=phone]", "+1 555 0100")  # not marked, not listed: stays
            page.fill("input[name=role]", "CMO")  # listed in collector.form_fields
            # the option chosen, not the group's last; a box left unticked is no "yes"
            # (each radio's and the checkbox's value was taken, ticked or not)
            page.check("input[name=size][value='11-50']")
            page.click("button[type=submit]")
            page.wait_for_url("**/thanks.html**")
            identifies = _until(lambda: events("identify"))
            assert len(identifies) == 1
            assert identifies[0][0] == anon
            assert json.loads(identifies[0][7]) == {"email": "dana@acme.com", "company": "Acme",
                                                    "role": "CMO", "size": "11-50"}
            # the visitor's address, for IP-to-company resolution, though dl.js sends none
            assert run.query("SELECT DISTINCT ip FROM events") == [("127.0.0.1",)]
            second = _until(lambda: len(events("page")) == 2 and events("page"))
            assert second[1][0] == anon and second[1][2] == "/thanks.html"
            assert errors == []

            # Global Privacy Control: the workspace respects it by default, nothing is sent
            ctx = b.new_context()
            ctx.add_init_script("Object.defineProperty(navigator, 'globalPrivacyControl', "
                                "{get: () => true})")
            quiet = ctx.new_page()
            quiet.goto(f"{origin}/pricing.html?utm_source=gpc")
            quiet.wait_for_function("window.dl !== undefined")
            time.sleep(1.0)
            assert [e for e in events("page") if e[4] == "gpc"] == []
            b.close()
        next(gen, None)


def test_consent_denied_by_default_sends_nothing_until_granted(tmp_path: Path) -> None:
    browser_path = _browser()
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with collector(tmp_path / "w", '[collector]\nconsent_default = "denied"\n') as run:
        site = tmp_path / "site"
        site.mkdir()
        (site / "p.html").write_text(PAGE.format(title="P", collector=run.url, key=run.key))
        gen = _site(site)
        origin = next(gen)

        def count() -> int:
            run.loader.load_once()
            return int(run.query("SELECT count(*) FROM events")[0][0])

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=browser_path, headless=True,
                                  args=["--no-sandbox", "--disable-gpu",
                                        "--disable-background-networking"])
            page = b.new_page()
            page.goto(f"{origin}/p.html")
            page.wait_for_function("window.dl !== undefined")
            page.evaluate("dl.track('Clicked', {})")
            time.sleep(1.0)
            names = {c["name"] for c in page.context.cookies()}
            assert count() == 0 and "dl_aid" not in names  # nothing sent, nothing set
            page.evaluate("dl.consent('granted')")  # the visitor agrees: this page counts
            assert _until(lambda: count() == 1)
            aid = {c["name"]: c["value"] for c in page.context.cookies()}["dl_aid"]
            page.reload()  # the choice is remembered
            assert _until(lambda: count() == 2)
            assert run.query("SELECT DISTINCT anonymous_id FROM events") == [(aid,)]
            page.evaluate("dl.consent('denied')")  # withdrawn: the id goes, nothing more
            page.evaluate("dl.track('After', {})")
            time.sleep(1.0)
            assert count() == 2
            assert "dl_aid" not in {c["name"] for c in page.context.cookies()}
            b.close()
        next(gen, None)


SPA = """<!doctype html><html><head><title>Home</title>
<script src="{collector}/dl.js?k={key}"></script></head><body>
<script>
function go(path, title, then) {{
  history.pushState({{}}, "", path); document.title = title; if (then) then();
}}
</script></body></html>"""


def test_a_single_page_apps_navigations_are_page_views(tmp_path: Path) -> None:
    """A site that moves with history.pushState (React, Vue, Next.js) sent one page view,
    its first: the pricing page a visitor reached in the app was never seen. Each new
    address is a view now, its referrer the page before; a #fragment is not, nor a second
    view when the site calls dl.page() itself for the same navigation."""
    browser_path = _browser()
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with collector(tmp_path / "w") as run:
        site = tmp_path / "site"
        site.mkdir()
        (site / "app.html").write_text(SPA.format(collector=run.url, key=run.key))
        gen = _site(site)
        origin = next(gen)

        def views() -> list[tuple]:  # type: ignore[type-arg]
            run.loader.load_once()
            return run.query("SELECT path, title, referrer FROM events "
                             "WHERE type = 'page' ORDER BY timestamp, received_at")

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=browser_path, headless=True,
                                  args=["--no-sandbox", "--disable-gpu",
                                        "--disable-background-networking"])
            page = b.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{origin}/app.html")
            assert _until(lambda: len(views()) == 1)
            page.evaluate("go('/pricing', 'Pricing')")
            assert _until(lambda: len(views()) == 2)
            page.evaluate("go('/pricing#faq', 'Pricing')")  # the same page
            page.evaluate("go('/docs', 'Docs', () => dl.page())")  # the site's own, first
            assert _until(lambda: len(views()) == 3)
            page.evaluate("go('/features', 'Features', "
                          "() => setTimeout(() => dl.page(), 300))")  # the site's, after
            assert _until(lambda: len(views()) == 4)
            page.go_back()  # the back button: /pricing#faq -> ... popstate to /docs
            assert _until(lambda: len(views()) == 5)
            time.sleep(1.0)  # nothing more comes
            got = views()
            b.close()
        next(gen, None)
    assert errors == []
    assert [(path, title) for path, title, _ in got] == [
        ("/app.html", "Home"), ("/pricing", "Pricing"), ("/docs", "Docs"),
        ("/features", "Features"), ("/docs", "Features")]
    # each view's referrer is the page before it (the first: none), so an in-app page is
    # internal navigation, not a new arrival
    assert [r for _, _, r in got] == [
        "", f"{origin}/app.html", f"{origin}/pricing", f"{origin}/docs",
        f"{origin}/features"]

"""``demandloop aeo audit`` on a small shipped site with known defects, as a folder and
served on loopback: every defect found, no false alarm on the clean pages."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

import demandloop

SITE = Path(__file__).parent / "data" / "aeo_site"
BASE = "https://northwind.example/"
#: the planted defects, per page (the clean pages have none)
DEFECTS = {
    "/": [],
    "/pricing/": [],
    "/docs/setup.html": ["description", "canonical"],
    "/blog/two-titles.html": ["one_h1", "question_headings", "schema"],
    # rendered by JavaScript: no title worth the name, no text, no date a reader sees (its
    # JSON-LD dateModified alone does not count)
    "/app.html": ["title", "one_h1", "answer_first", "server_rendered", "date_modified"],
    "/heavy.html": ["page_weight"],
    # a valid FAQPage and a broken block: the broken one is named (extruct read none of
    # them, and the advice was to add the FAQPage the page had)
    "/broken-ld.html": ["schema"],
}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The shipped site plus a page too heavy to quote (written here: 400 KB)."""
    folder = Path(shutil.copytree(SITE, tmp_path / "site"))
    clean = (folder / "pricing" / "index.html").read_text()
    filler = "<!-- " + "x" * 400_000 + " -->"
    (folder / "heavy.html").write_text(
        clean.replace("/pricing/", "/heavy.html").replace("</main>", filler + "</main>"))
    broken = '<script type="application/ld+json">{"@type": "Thing" "name": 1}</script>'
    (folder / "broken-ld.html").write_text(clean.replace("/pricing/", "/broken-ld.html")
                                           .replace("</head>", broken + "</head>"))
    sitemap = folder / "sitemap.xml"
    sitemap.write_text(sitemap.read_text().replace(
        "</urlset>", "<url><loc>https://northwind.example/heavy.html</loc></url>"
        "<url><loc>https://northwind.example/broken-ld.html</loc></url></urlset>"))
    return folder


def _check(result: dict[str, Any], served: bool) -> None:
    got = {p["page"]: sorted(f["name"] for f in p["fixes"]) for p in result["pages"]}
    assert got == {page: sorted(names) for page, names in DEFECTS.items()}
    fixes = {f["name"]: f["fix"] for p in result["pages"] if p["page"] == "/broken-ld.html"
             for f in p["fixes"]}
    assert fixes["schema"].startswith("1 of the page's 2 JSON-LD block(s) is not valid JSON")
    scores = {p["page"]: p["score"] for p in result["pages"]}
    assert scores["/"] == scores["/pricing/"] == 100 and scores["/app.html"] == 50
    site = {c["check"]: c for c in result["site"]}
    assert not site["ai_search_crawlers_allowed"]["ok"]
    assert "OAI-SearchBot" in site["ai_search_crawlers_allowed"]["fix"]
    assert "GPTBot" not in site["ai_search_crawlers_allowed"]["fix"]  # training: a choice
    assert site["training_crawlers"]["ok"] and "GPTBot" in site["training_crawlers"]["note"]
    assert not site["llms_txt"]["ok"] and "/guides/old/" in site["llms_txt"]["fix"]
    assert "/docs/setup.html" not in site["llms_txt"]["fix"]  # an existing page: fine
    assert not site["sitemap"]["ok"]
    assert "/app.html" in site["sitemap"]["fix"] and "/blog/two-titles.html" in \
        site["sitemap"]["fix"]
    allowed = {c["crawler"]: c["allowed"] for c in result["crawlers"]}
    assert allowed["GPTBot"] is False and allowed["OAI-SearchBot"] is False
    assert allowed["ClaudeBot"] is True and allowed["PerplexityBot"] is True


def test_the_audit_of_a_folder(tmp_path: Path, site: Path) -> None:
    with demandloop.open(tmp_path / "ws") as ws:
        _check(ws.audit_site(str(site), BASE), served=False)


def test_the_audit_of_the_served_site(tmp_path: Path, site: Path) -> None:
    # served: the site's own address in every absolute link
    port_holder: list[int] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    port_holder.append(httpd.server_address[1])
    base = f"http://127.0.0.1:{port_holder[0]}/"
    for f in [*site.rglob("*.html"), site / "llms.txt", site / "sitemap.xml"]:
        f.write_text(f.read_text().replace(BASE, base))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with demandloop.open(tmp_path / "ws") as ws:
            result = ws.audit_site(base)
    finally:
        httpd.shutdown()
    assert result["base"] == base and result["failed"] == {}
    _check(result, served=True)


def test_the_cli_fails_below_the_minimum_score(tmp_path: Path, site: Path, cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("-w", str(tmp_path / "ws"), "init", str(tmp_path / "ws"))
    code, out, _ = cli("-w", str(tmp_path / "ws"), "aeo", "audit", str(site),
                       "--base-url", BASE, "--min-score", "95")
    assert code == 1
    assert "server_rendered: render the text on the server" in out
    code, _, _ = cli("-w", str(tmp_path / "ws"), "aeo", "audit", str(site),
                     "--base-url", BASE, "--min-score", "50")
    assert code == 0


def test_a_missing_folder_is_one_clear_error(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    cli("-w", str(tmp_path / "ws"), "init", str(tmp_path / "ws"))
    code, _, err = cli("-w", str(tmp_path / "ws"), "aeo", "audit", str(tmp_path / "nope"))
    assert code == 2 and "is neither a folder nor an http(s) URL" in err


def test_each_site_check_that_passes_says_what_it_found(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """A passing site check printed its name and an empty reason ("ok sitemap: ")."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><head><title>Northwind analytics</title></head>"
                                     "<body><h1>Northwind</h1><p>Analytics.</p></body></html>")
    (site / "robots.txt").write_text("User-agent: *\nAllow: /\nSitemap: "
                                     "https://northwind.example/sitemap.xml\n")
    (site / "llms.txt").write_text("# Northwind\n\n- [Home](https://northwind.example/)\n")
    (site / "sitemap.xml").write_text(
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url>'
        "<loc>https://northwind.example/</loc></url></urlset>")
    code, out, err = cli("-w", str(tmp_path / "ws"), "aeo", "audit", str(site),
                         "--base-url", "https://northwind.example")
    assert code == 0, err
    lines = [line.strip() for line in out.splitlines() if line.strip().startswith("ok ")]
    assert {line.split(":")[0] for line in lines} >= {
        "ok ai_search_crawlers_allowed", "ok training_crawlers", "ok llms_txt", "ok sitemap"}
    assert all(line.split(":", 1)[1].strip() for line in lines), lines

"""Access logs: each format read to the same rows (times in UTC, agents decoded), AI
crawlers named and categorised from the shipped list, re-imports that add nothing, bad lines
reported as FILE:LINE with nothing written, and counts that match an independent count over
a generated log."""

from __future__ import annotations

import datetime as dt
import gzip
import random
import shutil
from pathlib import Path

import pytest

import demandloop
from demandloop.enrich.crawlers import CATEGORIES, SOURCE, catalog
from demandloop.errors import InputError

LOGS = Path(__file__).parent / "data" / "access_logs"
UA = {
    "GPTBot": "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
              "+https://openai.com/gptbot)",
    "OAI-SearchBot": "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; "
                     "OAI-SearchBot/1.0; +https://openai.com/searchbot",
    "ChatGPT-User": "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; "
                    "ChatGPT-User/1.0; +https://openai.com/bot",
    "ClaudeBot": "Mozilla/5.0 (compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
    "Claude-SearchBot": "Mozilla/5.0 (compatible; Claude-SearchBot/1.0)",
    "PerplexityBot": "Mozilla/5.0 (compatible; PerplexityBot/1.0; "
                     "+https://perplexity.ai/perplexitybot)",
    "Perplexity-User": "Mozilla/5.0 (compatible; Perplexity-User/1.0)",
    None: "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
}


def _rows(tmp_path: Path, name: str) -> list[dict[str, object]]:
    """The rows a log's import stores, in line order."""
    with demandloop.open(tmp_path / name) as ws:
        r = ws.import_access_logs(LOGS / name)
        assert r.invalid == 0
        rel = ws.store.con.execute("SELECT * EXCLUDE (workspace_id) FROM access_log "
                                   "ORDER BY ts, line_hash")
        cols = [d[0] for d in rel.description]
        return [dict(zip(cols, row, strict=True)) for row in rel.fetchall()]


def test_each_format_reads_to_the_same_fields(tmp_path: Path) -> None:
    combined = _rows(tmp_path, "combined.log")
    assert len(combined) == 8
    assert [r["ts"] for r in combined[:3]] == [  # the +0100 line, 11:00:02 there, in UTC
        dt.datetime(2026, 12, 1, 10, 0, 1), dt.datetime(2026, 12, 1, 10, 0, 2),
        dt.datetime(2026, 12, 1, 10, 0, 2)]
    chatgpt = next(r for r in combined if r["referrer"] == "https://chatgpt.com/")
    assert (chatgpt["path"], chatgpt["status"], chatgpt["bytes"], chatgpt["ip"],
            chatgpt["method"], chatgpt["crawler"]) == \
        ("/pricing/?plan=team", 200, 5120, "198.51.100.4", "GET", None)
    not_modified = next(r for r in combined if r["status"] == 304)
    assert (not_modified["bytes"], not_modified["referrer"]) == (None, "https://www.google.com/")
    cloudflare = _rows(tmp_path, "cloudflare.jsonl")
    assert [r["ts"] for r in cloudflare] == [dt.datetime(2026, 12, 1, 10, 10),
                                            dt.datetime(2026, 12, 1, 10, 11)]  # ns epoch
    assert (cloudflare[0]["host"], cloudflare[0]["ip"], cloudflare[0]["bytes"],
            cloudflare[0]["crawler"]) == ("northwind.example", "3.211.124.183", 5120,
                                         "PerplexityBot")
    (cloudfront,) = _rows(tmp_path, "cloudfront.jsonl")
    assert cloudfront["ts"] == dt.datetime(2026, 12, 1, 10, 12)
    assert cloudfront["crawler"] == "Perplexity-User"  # its agent URL-decoded first
    assert (cloudfront["status"], cloudfront["path"]) == (200, "/docs/integrations")
    (fastly,) = _rows(tmp_path, "fastly.jsonl")
    assert (fastly["path"], fastly["referrer"]) == ("/pricing/?utm_source=chatgpt.com",
                                                    "https://chatgpt.com/")


def test_proxy_style_targets_keep_only_the_path(tmp_path: Path) -> None:
    log = tmp_path / "proxy.log"
    log.write_text('1.2.3.4 - - [01/Dec/2026:10:00:01 +0000] "GET https://northwind.example'
                   '/pricing/?a=1 HTTP/1.1" 200 10 "-" "curl/8"\n'
                   '1.2.3.4 - - [01/Dec/2026:10:00:02 +0000] "GET http://northwind.example '
                   'HTTP/1.1" 200 10 "-" "curl/8"\n')
    with demandloop.open(tmp_path / "ws") as ws:
        ws.import_access_logs(log)
        assert ws.store.con.execute("SELECT path FROM access_log ORDER BY ts").fetchall() == \
            [("/pricing/?a=1",), ("/",)]


def test_crawlers_are_named_and_categorised() -> None:
    c = catalog()
    expected = {"GPTBot": "training", "OAI-SearchBot": "search", "ChatGPT-User": "user",
                "ClaudeBot": "training", "Claude-SearchBot": "search",
                "PerplexityBot": "search", "Perplexity-User": "user"}
    for name, category in expected.items():
        found = c.classify(UA[name])
        assert found is not None and (found.name, found.category) == (name, category)
    assert c.classify(UA[None]) is None
    assert c.classify("Mozilla/5.0 (compatible; Googlebot/2.1)") is None  # not an AI bot
    assert len(c.crawlers) >= 150 and SOURCE[0].endswith("ai.robots.txt")
    assert {x.category for x in c.crawlers.values()} == set(CATEGORIES)


def test_import_skips_what_is_already_there(tmp_path: Path) -> None:
    gz = tmp_path / "combined.log.gz"
    gz.write_bytes(gzip.compress((LOGS / "combined.log").read_bytes()))
    with demandloop.open(tmp_path / "ws") as ws:
        files = sorted(LOGS.iterdir())
        first = ws.import_access_logs(*files)
        assert (first.lines, first.imported, first.invalid) == (12, 12, 0)
        # GPTBot and PerplexityBot come from their operators' published addresses; the
        # OAI-SearchBot and Perplexity-User lines do not: spoofed
        assert first.crawls == {"training": 2, "search": 2, "user": 1, "spoofed": 2}
        again = ws.import_access_logs(*files, gz)
        assert (again.imported, again.duplicates) == (0, 20)
        rows = ws.store.con.execute(
            "SELECT crawler, crawler_category, crawler_verified, count(*) FROM access_log "
            "WHERE crawler IS NOT NULL GROUP BY ALL ORDER BY 1").fetchall()
        assert rows == [("ChatGPT-User", "user", None, 1),
                        ("Claude-SearchBot", "search", None, 1),
                        ("ClaudeBot", "training", None, 1), ("GPTBot", "training", True, 1),
                        ("OAI-SearchBot", "search", False, 1),
                        ("Perplexity-User", "user", False, 1),
                        ("PerplexityBot", "search", True, 1)]


def test_bad_lines_are_listed_and_nothing_is_written(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "mixed.log"
    good = (LOGS / "combined.log").read_text().splitlines()
    bad.write_text("\n".join([good[0], "this is not a log line", good[1], '{"oops": 1}',
                              "{broken json", good[2],
                              good[3].replace("01/Dec", "31/Nov")]) + "\n")
    with demandloop.open(tmp_path / "ws") as ws:
        with pytest.raises(InputError) as caught:
            ws.import_access_logs(bad)
        assert caught.value.problems == [
            f"{bad}:2: not a combined-format or JSON line",
            f"{bad}:4: no timestamp or no path (see docs/aeo.md for the fields read)",
            f"{bad}:5: not valid JSON",
            f"{bad}:7: the time is not a real time"]
        assert ws.store.con.execute("SELECT count(*) FROM access_log").fetchone() == (0,)
        kept = ws.import_access_logs(bad, skip_invalid=True)
        assert (kept.imported, kept.invalid) == (3, 4)
    shutil.rmtree(tmp_path / "ws")
    (tmp_path / "ws2").mkdir()
    code, out, err = cli("-w", str(tmp_path / "ws2"), "init", str(tmp_path / "ws2"))
    code, out, err = cli("-w", str(tmp_path / "ws2"), "import", "access-logs", str(bad))
    assert code == 3
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: 4 of 7 line(s) are not access-log lines; nothing was "
                               "written (")
    assert f"{bad}:2: not a combined-format or JSON line" in err


def test_counts_match_an_independent_count(tmp_path: Path) -> None:
    rng = random.Random(5)
    names = list(UA)
    paths = [f"/page{i}" for i in range(40)]
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    lines, truth = [], {n: 0 for n in names}
    for i in range(20_000):
        who = rng.choice(names)
        truth[who] += 1
        at = start + dt.timedelta(seconds=i * 7)
        local = at.astimezone(dt.timezone(dt.timedelta(hours=rng.choice([-5, 0, 2]))))
        lines.append(f'10.0.{i % 250}.{i % 7} - - [{local:%d/%b/%Y:%H:%M:%S %z}] '
                     f'"GET {rng.choice(paths)} HTTP/1.1" 200 {rng.randint(100, 9000)} "-" '
                     f'"{UA[who]}"')
    log = tmp_path / "gen.log"
    log.write_text("\n".join(lines) + "\n")
    with demandloop.open(tmp_path / "ws") as ws:
        r = ws.import_access_logs(log)
        assert r.imported == 20_000
        got = dict(ws.store.con.execute("SELECT coalesce(crawler, 'human'), count(*) FROM "
                                        "access_log GROUP BY 1").fetchall())
        span = ws.store.con.execute("SELECT min(ts), max(ts) FROM access_log").fetchone()
    assert got == {("human" if n is None else n): k for n, k in truth.items()}
    assert span == (start.replace(tzinfo=None),
                    (start + dt.timedelta(seconds=19_999 * 7)).replace(tzinfo=None))


def test_a_real_crawler_address_against_a_spoofed_one() -> None:
    from demandloop.enrich.crawlers import verifier

    v = verifier()
    # inside OpenAI's published GPTBot range, and a residential address using its name
    assert v.verify("GPTBot", "74.7.227.10") is True
    assert v.verify("GPTBot", "198.51.100.23") is False
    assert v.verify("GPTBot", "not an address") is False
    assert v.verify("OAI-SearchBot", "51.8.102.77") is True
    assert v.verify("PerplexityBot", "3.211.124.183") is True
    assert v.verify("PerplexityBot", "3.211.124.184") is False  # a /32: its neighbour is not
    assert v.verify("ClaudeBot", "1.2.3.4") is None  # Anthropic publishes no crawler list


def test_build_crawlers_reads_the_operators_lists(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """From lists served on loopback in the operators' format; a list that fails keeps its
    last version, and the new file is what verification reads."""
    import functools
    import http.server
    import json
    import threading

    from demandloop.enrich.crawlers import Verifier

    (tmp_path / "gptbot.json").write_text(json.dumps({"creationTime": "2026-12-01", "prefixes": [
        {"ipv4Prefix": "20.171.206.0/24"}, {"ipv6Prefix": "2603:1030::/48"}]}))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    out = tmp_path / "ranges.json"
    out.write_text(json.dumps({"crawlers": {"PerplexityBot": {
        "url": "old", "prefixes": ["3.211.124.183/32"]}}}))
    try:
        code, stdout, err = cli(
            "data", "build-crawlers", "--out", str(out),
            "--from", f"GPTBot=http://127.0.0.1:{httpd.server_address[1]}/gptbot.json",
            "--from", f"PerplexityBot=http://127.0.0.1:{httpd.server_address[1]}/nope.json")
    finally:
        httpd.shutdown()
    assert code == 0, err
    assert "not read (kept its last list): PerplexityBot" in stdout
    snap = json.loads(out.read_text())
    assert snap["crawlers"]["GPTBot"]["prefixes"] == ["20.171.206.0/24", "2603:1030::/48"]
    assert snap["crawlers"]["PerplexityBot"]["prefixes"] == ["3.211.124.183/32"]
    v = Verifier(snap)
    assert v.verify("GPTBot", "20.171.206.9") and v.verify("GPTBot", "2603:1030::1")
    assert v.verify("GPTBot", "74.7.227.10") is False  # not in this (smaller) list

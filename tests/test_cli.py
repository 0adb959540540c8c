"""The command line as a user meets it: the demo, JSON output, errors, export/import."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import demandloop


def test_demo_shows_the_market(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "demo"
    code, out, err = cli("demo", "--dir", str(d), "--accounts", "120", "--days", "40")
    assert code == 0, err
    for section in ("1. Simulated", "2. Ingested", "3. Events by type",
                    "4. Touches by channel and motion", "Who is it:", "5. In the workspace",
                    "6. Most active accounts", "10. Act:"):
        assert section in out
    # the alert is shown as a reader sees it in Slack, not in Slack's escaped form
    alert = next(line for line in out.splitlines() if "first alert:" in line)
    assert ">=" in alert and "&gt;" not in alert and "&amp;" not in alert
    assert (d / "demandloop.duckdb").is_file() and (d / "market" / "truth.json").is_file()
    # running it again is idempotent: nothing new, nothing doubled
    code, out, _ = cli("demo", "--dir", str(d), "--accounts", "120", "--days", "40", "--json")
    report = json.loads(out)
    assert report["ingest"]["inserted"] == 0
    assert report["ingest"]["duplicates"] == report["simulation"]["events"]
    assert report["counts"]["events"] == report["simulation"]["events"]
    # the ranked accounts are real accounts with known people active in the last 30 days
    with demandloop.open(d) as ws:
        known = set(ws.accounts()["account_id"])
    assert report["top_accounts"] and all(a["account_id"] in known and a["people"] >= 1
                                          for a in report["top_accounts"])
    people = [a["people"] for a in report["top_accounts"]]
    assert people == sorted(people, reverse=True)
    # act: the alerts, enrolments and emails the workflows made are in the store and on disk
    act = report["act"]
    with demandloop.open(d) as ws:
        con = ws.store.con
        notified = con.execute("SELECT count(*) FROM jobs WHERE action = 'notify' AND "
                               "status = 'done'").fetchone()[0]
        enrolled = con.execute("SELECT count(*) FROM enrolments").fetchone()[0]
        sent = con.execute("SELECT count(*) FROM mail_messages WHERE status = 'sent'").fetchone()[0]
    assert act["alerts"] == notified and act["enrolled"] == enrolled >= 1
    assert len(list((d / "outbox").glob("*.eml"))) == sent
    # a subject names its topic as words ("intent data"), not as its slug ("intent-data")
    import email as _email

    subjects = {_email.message_from_bytes(f.read_bytes())["Subject"]
                for f in (d / "outbox").glob("*.eml")}
    assert subjects and all("-" not in s.rsplit(" and ", 1)[1] for s in subjects), subjects
    assert act["alerts_received"] == 0  # the second run: nothing new, nothing sent twice
    # the list the demo's workflow fills is listed with the saved segments
    with demandloop.open(d) as ws:
        filled = ws.store.con.execute("SELECT count(*) FROM audience_members WHERE "
                                      "audience = 'mqa-linkedin'").fetchone()[0]
    code, out, _ = cli("-w", str(d), "audiences", "list", "--json")
    lists = {a["name"]: a["members"] for a in json.loads(out)}
    assert filled >= 1 and lists["mqa-linkedin"] == filled


def test_the_demo_builds_where_it_is_told_and_into_no_other_data(
        cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # -w names the demo's folder, as it names every other command's workspace
    d = tmp_path / "via-w"
    r = subprocess.run([sys.executable, "-m", "demandloop", "-w", str(d), "demo",
                        "--accounts", "40", "--days", "10", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (d / "demandloop.duckdb").is_file() and not (tmp_path / "demandloop-demo").exists()
    events = json.loads(r.stdout)["counts"]["events"]
    # another market into the same folder would be added to the first: refused, nothing moved
    code, _, err = cli("demo", "--dir", str(d), "--accounts", "40", "--days", "10",
                       "--seed", "7")
    assert code == 3 and "--accounts 40 --days 10 --seed 42" in err and "--seed 7" in err
    assert "delete" in err and err.count("error:") == 1
    with demandloop.open(d) as ws:
        assert ws.counts()["events"] == events
    # a workspace of the user's own is never given a simulated market
    mine = tmp_path / "mine"
    assert cli("-w", str(mine), "status")[0] == 0
    before = sorted(p.name for p in mine.iterdir())
    code, _, err = cli("demo", "--dir", str(mine), "--accounts", "40", "--days", "10")
    assert code == 3 and "did not build" in err
    assert sorted(p.name for p in mine.iterdir()) == before
    # nor is a file
    (tmp_path / "a.duckdb").write_bytes(b"")
    code, _, err = cli("demo", "--dir", str(tmp_path / "a.duckdb"))
    assert code == 3 and "is a file" in err
    # a market too small to make an event: said so, and nothing left behind, where the
    # run failed at scoring ("ingest events and run 'demandloop resolve' first") and left a
    # demo folder in which a demo of another size was then refused
    tiny = tmp_path / "tiny"
    code, _, err = cli("demo", "--dir", str(tiny), "--accounts", "1", "--days", "1")
    assert code == 2 and err.startswith("error: a market of 1 account(s) over 1 day(s) "
                                        "makes no events (give the demo more --accounts")
    assert not tiny.exists()
    assert cli("demo", "--dir", str(tiny), "--accounts", "20", "--days", "10")[0] == 0


def test_status_accounts_and_json(cli, market: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = str(tmp_path / "w")
    assert cli("-w", w, "ingest", str(market / "events.jsonl"))[0] == 0
    assert cli("-w", w, "import", "accounts", str(market / "accounts.csv"))[0] == 0
    code, out, _ = cli("-w", w, "status", "--json")
    assert code == 0 and json.loads(out)["events"] == len(
        (market / "events.jsonl").read_text().splitlines())
    code, out, _ = cli("-w", w, "accounts", "--json", "--limit", "5")
    assert code == 0 and len(json.loads(out)) <= 5


def test_accounts_filters_match_a_computation_over_the_tables(
        cli, market: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import load_market

    d = tmp_path / "w"
    code, _, err = cli("-w", str(d), "accounts", "--target")
    assert code == 2 and "--target filters the latest scores, and there are none yet" in err
    load_market(d, market)
    with demandloop.open(d) as ws:
        crm = ws.accounts().set_index("account_id")
        scored = ws.scored_accounts().set_index("account")
    both = scored.join(crm[["target", "owner", "industry", "name", "domain", "country"]],
                       how="left")
    owner = str(both["owner"].dropna().iloc[0])
    cases = [
        (["--target", "--band", "strong"], (both["target"] == True)  # noqa: E712
         & (both["band"] == "Strong")),
        (["--not-target"], both["target"] == False),  # noqa: E712
        (["--surging", "--stage", "MQA"], both["surging"] & (both["stage"] == "mqa")),
        (["--owner", owner.upper()], both["owner"].str.lower() == owner.lower()),
        (["--industry", "software"], both["industry"].str.lower() == "software"),
        # a country as people write it finds the accounts stored by its code
        (["--country", "United States"], both["country"] == "US"),
        (["--country", "deu"], both["country"] == "DE"),
        (["--search", "CO"], both["name"].fillna("").str.lower().str.contains("co")
         | both["domain"].fillna("").str.lower().str.contains("co")),
    ]
    for args, expected in cases:
        code, out, err = cli("-w", str(d), "accounts", *args, "--limit", "100000", "--json")
        assert code == 0, err
        want = set(both.index[expected.fillna(False).astype(bool)])
        assert {r["account"] for r in json.loads(out)} == want, args
        assert want, f"{args} matches no account: the case tests nothing"
    code, out, _ = cli("-w", str(d), "accounts", "--owner", "nobody-at-all")
    assert code == 0 and out.strip() == "no accounts match --owner"
    code, _, err = cli("-w", str(d), "accounts", "--band", "best")
    assert code == 2 and "unknown band 'best'" in err
    # an account that is not there is said to be so, not listed as having nobody
    code, _, err = cli("-w", str(d), "people", "--account", "nowhere.example")
    assert code == 5 and err.startswith("error: no account 'nowhere.example'")
    some = next(iter(both.index))
    code, out, _ = cli("-w", str(d), "people", "--account", some.upper(), "--json")
    assert code == 0 and all(p["account_id"] == some for p in json.loads(out))


def test_export_import_via_cli(cli, market: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    cli("-w", a, "ingest", str(market / "events.jsonl"))
    code, out, _ = cli("-w", a, "export", "--format", "parquet", str(tmp_path / "x"))
    assert code == 0 and (tmp_path / "x" / "manifest.json").is_file()
    assert cli("-w", b, "import", "parquet", str(tmp_path / "x"))[0] == 0
    code, _, err = cli("-w", b, "import", "parquet", str(tmp_path / "x"))
    assert code == 2 and "--replace" in err
    code, _, err = cli("-w", a, "export", "--format", "csv", str(tmp_path / "y"))
    assert code == 2 and "unknown export format 'csv'" in err
    # a file named as the folder: said so (it was an internal error, FileExistsError)
    note = tmp_path / "notes.txt"
    note.write_text("mine")
    for fmt in ("parquet", "lake"):
        code, _, err = cli("-w", a, "export", "--format", fmt, str(note))
        assert code == 3 and "is a file: an export is a folder of Parquet files" in err, err
    assert note.read_text() == "mine"


def test_usage_errors_exit_2_without_traceback(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("frobnicate")
    assert code == 2 and "No such command" in err and "Traceback" not in err


def test_console_script_runs() -> None:
    r = subprocess.run([sys.executable, "-m", "demandloop", "--help"], capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0 and "demo" in r.stdout


def test_accounts_before_resolve_says_what_to_do(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("-w", str(tmp_path), "accounts")
    assert code == 0 and "run 'demandloop resolve'" in err


def test_only_init_creates_a_workspace(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A misspelt -w is an error naming 'init', and creates nothing (not even after a
    failed ingest); once 'init' ran, the same commands work."""
    from demandloop.cli import main

    def run(*args: str) -> tuple[int, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, capsys.readouterr().err

    typo = tmp_path / "worksapce"
    events = tmp_path / "e.jsonl"
    events.write_text('{"type": "track", "userId": "u"}\n')  # invalid: no event name
    for args in (("status",), ("ingest", str(events)), ("accounts",), ("keys", "list")):
        code, err = run("-w", str(typo), *args)
        assert code == 5, err
        assert err.strip().count("\n") == 0 and f"demandloop init {typo}" in err
    assert not typo.exists()
    made = tmp_path / "made"
    assert run("init", str(made))[0] == 0
    code, err = run("-w", str(made), "ingest", str(events))
    assert code == 3  # the file's own problem now, not the workspace's
    assert run("-w", str(made), "status")[0] == 0
    # -w names the folder init creates, as it names every command's (it wrote
    # ./demandloop.toml, and the next '-w DIR' command found no workspace)
    named = tmp_path / "named"
    assert run("-w", str(named), "init")[0] == 0
    assert (named / "demandloop.toml").is_file() and run("-w", str(named), "status")[0] == 0
    # a file is no folder: said so (it was an internal error, FileExistsError)
    (tmp_path / "f.txt").write_text("x")
    code, err = run("init", str(tmp_path / "f.txt"))
    assert code == 2 and "is a file: a workspace is a folder" in err


def test_long_work_shows_a_bar_before_its_first_step() -> None:
    """A statement that reports no progress of its own (one big file, a resolve) still
    shows that it is working, after the delay and before any step completes; a step
    total learnt later (score --backfill) is shown as done/total."""
    import io
    import time

    from rich.console import Console

    from demandloop.progress import LazyProgress

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    with LazyProgress(console, "resolving identities", None, delay=0.05) as bar:
        time.sleep(0.5)
        assert "resolving identities" in buf.getvalue()  # shown, nothing advanced yet
        bar.step(2, 5)
        time.sleep(0.3)
    assert "2/5" in buf.getvalue()
    quiet = io.StringIO()
    with LazyProgress(Console(file=quiet, force_terminal=True), "short", 10, delay=5):
        pass
    assert quiet.getvalue() == ""  # short work stays quiet


def test_a_restore_still_honours_unsubscribe_links_already_sent(tmp_path: Path) -> None:
    from demandloop.activate.compose import (
        UNSUBSCRIBE_KEY_FILE,
        make_token,
        unsubscribe_key,
        verify_token,
    )

    a, b = tmp_path / "a", tmp_path / "b"
    with demandloop.open(a) as ws:
        token = make_token(unsubscribe_key(a), "default", "jo@acme.com")  # a link sent
        ws.export_parquet(tmp_path / "backup")
    assert (tmp_path / "backup" / UNSUBSCRIBE_KEY_FILE).stat().st_mode & 0o077 == 0
    with demandloop.open(b) as ws:
        ws.import_parquet(tmp_path / "backup")
    assert verify_token(token, unsubscribe_key(b)) == ("default", "jo@acme.com")
    assert (b / UNSUBSCRIBE_KEY_FILE).stat().st_mode & 0o077 == 0


def test_tables_fit_the_terminal_by_choosing_columns() -> None:
    """A table wider than the terminal keeps the columns that fit, says which it left out,
    and cuts no cell to '…'; a wide terminal shows everything."""
    import io

    import pandas as pd
    from rich.console import Console

    from demandloop.render import frame_table

    df = pd.DataFrame({"account": ["a-very-long-account-domain.example.com"], "stage": ["mqa"],
                       "fit": [71.5], "surge_topics": [["email-deliverability",
                                                        "account-based-marketing"]]})
    for width, hidden in ((60, True), (200, False)):
        buf = io.StringIO()
        Console(file=buf, width=width).print(frame_table(df, "t", width=width))
        text = buf.getvalue()
        assert "…" not in text and "a-very-long-account-domain.example.com" in text
        assert ("not shown, too wide for this terminal: surge_topics" in text) == hidden
        assert ("email-deliverability, account-based-marketing" in text) != hidden
        assert max(len(line) for line in text.splitlines()) <= width


def test_data_is_printed_as_it_is_not_as_markup(cli, market: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Values from a user's data that look like Rich markup or emoji codes ("[/x]",
    "[b]", ":x:", a Next.js path "/blog/[slug]") are shown verbatim: as markup, an
    unmatched closing tag failed the command and the rest lost characters."""
    from tests.conftest import load_market

    w = load_market(tmp_path / "w", market, history_every=30)
    weird = "Software [/x] [b]SaaS :x: /blog/[slug]"
    with demandloop.open(w) as ws, ws.store.writer() as cur:
        cur.execute("UPDATE accounts SET industry = ? WHERE account_id IN "
                    "(SELECT account_id FROM accounts ORDER BY account_id LIMIT 40)", [weird])
    code, out, err = cli("-w", str(w), "report", "funnel", "--by", "industry")
    assert code == 0, err
    assert weird in out.replace("\n", "")
    # a wrong CSV's header is quoted in the error as the file has it
    bad = tmp_path / "passwd.csv"
    bad.write_text("root:x:0:0:root:/root:/bin/bash\n")
    code, _, err = cli("-w", str(w), "import", "accounts", str(bad))
    assert code != 0 and "root:x:0:0:root" in err.replace("\n", ""), err


def _commands(cmd: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, [*path, name])


def test_every_help_shows_the_settings_it_names_in_brackets() -> None:
    # Rich read "[compute]" and "[activate.segments]" in help texts as markup tags and
    # printed nothing in their place ("default: lake", "Saved segments ([])")
    import re

    import typer
    from typer.testing import CliRunner

    from demandloop.cli import app

    bracketed = re.compile(r"\[[^\[\]\s]+\]")
    checked = 0
    for path, cmd in _commands(typer.main.get_command(app), []):
        texts = [cmd.help or "", *(getattr(p, "help", None) or "" for p in cmd.params),
                 *(c.help or "" for c in getattr(cmd, "commands", {}).values())]
        # what the text says once Rich's escapes are read
        wanted = {t for text in texts for t in bracketed.findall(text.replace("\\[", "["))}
        if not wanted:
            continue
        shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
        assert shown.exit_code == 0, path
        flat = " ".join(shown.output.replace("│", " ").split())
        for token in wanted:
            assert token in flat, (path, token)
            checked += 1
    assert checked >= 10  # the settings named in brackets when this test was written


@pytest.mark.parametrize(("args", "said"), [
    (("accounts", "--limit", "-5"), "'--limit'"),  # pandas' head(-5): all but the last 5
    (("accounts", "--limit", "0"), "'--limit'"),
    (("accounts", "--days", "0"), "'--days'"),
    (("serve", "--port", "70000"), "'--port'"),  # listened on 70000 - 65536 = 4464
    (("serve", "--workers", "0"), "'--workers'"),
])
def test_a_number_out_of_its_range_is_refused_before_anything_runs(
        tmp_path: Path, args: tuple[str, ...], said: str) -> None:
    # in a process of its own, with a time limit: a serve not refused would run on
    (tmp_path / "demandloop.toml").write_text("")
    done = subprocess.run([sys.executable, "-m", "demandloop", "-w", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"Invalid value for {said}" in done.stderr
    assert not (tmp_path / "server.json").exists()


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    """uvicorn said it in its own log line ("ERROR: [Errno 98] ..."), once the workspace was
    open and its loader started; now one line, exit 2, before either."""
    import socket

    from tests.collector_helpers import free_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for serve, said in ((["--port", str(port)], f"error: port {port} on 127.0.0.1 is "
                             "in use (stop what listens there, or pass another --port)"),
                            # several workers: the API's port is taken
                            (["--port", str(free_port()), "--workers", "2"],
                             f"error: port {port} on 127.0.0.1 is in use (with several "
                             "workers the API listens on collector.api_port")):
            (tmp_path / "demandloop.toml").write_text(f"[collector]\napi_port = {port}\n")
            done = subprocess.run([sys.executable, "-m", "demandloop", "-w", str(tmp_path),
                                   "serve", *serve],
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 2, done.stdout + done.stderr
            assert done.stderr.startswith(said) and done.stderr.count("\n") == 1, done.stderr
            assert not (tmp_path / "server.json").exists()


def test_a_list_of_commands_shows_each_summary_on_one_line() -> None:
    # Typer's Rich help kept a docstring's line breaks in the list of commands: "... within
    # the horizon, from" and "firmographics and how ..." on two lines, however wide the
    # terminal
    import inspect

    import typer
    from typer.testing import CliRunner

    from demandloop.cli import app

    shown = 0
    for path, cmd in _commands(typer.main.get_command(app), []):
        subs = getattr(cmd, "commands", {})
        if not subs:
            continue
        lines = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400"}).output
        for name, sub in subs.items():
            doc = inspect.cleandoc(sub.help or "").split("\n\n")[0]
            summary = " ".join(doc.replace("\\[", "[").split())
            assert any(f"{name} " in line and summary in line
                       for line in lines.splitlines()), (path, name, summary)
            shown += 1
    assert shown >= 60

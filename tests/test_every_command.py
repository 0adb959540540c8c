"""Every command of the CLI, listed from the Typer app itself, run in every state a new user
meets: an empty workspace, CRM data only, the real Olist funnel, events only, resolved,
scored, and while ``demandloop serve`` holds the database. None may end in an internal error
(exit 70) or a traceback; every failure is one line saying what is wrong and what to do.

A command added to the CLI is covered without anyone remembering it: one with a required
argument that :data:`ARGS` does not fill makes :func:`test_every_command_has_arguments`
fail.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from demandloop.cli import app, main
from tests.collector_helpers import free_port, start_subprocess

OLIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "olist"
STATES = ["empty", "crm", "olist", "events", "resolved", "scored", "serving"]
#: commands whose outcome does not depend on the workspace: run once
STATELESS = {"init", "simulate", "demo", "data build-asn", "data build-crawlers", "mail check"}
#: representative arguments ({m}: the simulated market, {o}: Olist, {t}: a scratch folder)
ARGS: dict[str, list[str]] = {
    "init": ["{t}/new"],
    "simulate": ["--accounts", "20", "--days", "5", "--out", "{t}/sim"],
    "demo": ["--dir", "{t}/demo", "--accounts", "40", "--days", "10"],
    "ingest": ["{m}/events.jsonl"],
    "export": ["{t}/export"],
    "import accounts": ["{m}/accounts.csv"],
    "import contacts": ["{m}/contacts.csv"],
    "import opportunities": ["{m}/opportunities.csv"],
    "import ip-ranges": ["{m}/ip_ranges.csv"],
    "import olist": ["{o}"],
    "import parquet": ["{x}"],
    "import spend": ["{m}/spend.csv"],
    "report lead-scoring": ["--split", "2026-01-20"],
    "report html": ["{t}/report.html"],
    "explain person": ["{person}"],
    "explain account": ["{account}"],
    "experiences preview": ["{account}"],
    "data build-asn": ["{t}/missing.tgz"],
    "audiences export": ["mqa-accounts", "--format", "csv", "--out", "{t}/aud.csv"],
    "mail check": ["example.invalid", "--nameserver", "127.0.0.1:9"],
    "keys revoke": ["dl_notakey"],
    "tokens revoke": ["dlt_notatoken"],
    "users create": ["--email", "someone@example.com", "--password-stdin"],
    "users disable": ["nobody@example.com"],
    "privacy export": ["{person}"],
    "privacy erase": ["{person}", "--yes"],
    "suppress add": ["someone@example.com"],
    "suppress remove": ["someone@example.com"],
    "suppress import": ["{m}/contacts.csv"],
    "content index": [str(Path(__file__).resolve().parent / "data" / "site")],
    "content search": ["How much is a seat?"],
    "data build-crawlers": ["--from", "GPTBot={t}/missing.json", "--out", "{t}/ranges.json"],
    "aeo audit": [str(Path(__file__).resolve().parent / "data" / "aeo_site")],
    "import access-logs": [str(Path(__file__).resolve().parent / "data" / "access_logs"
                               / "combined.log")],
}
ERROR_LINE = re.compile(r"^error: .+ \(.+\)$")


def _commands() -> list[tuple[str, Any]]:
    found = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
        else:
            found.append((" ".join(path), cmd))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()


def test_every_command_has_arguments() -> None:
    missing = [name for name, cmd in COMMANDS
               if any(p.required for p in cmd.params) and name not in ARGS]
    assert missing == [], f"give representative arguments in ARGS for: {missing}"


def test_every_command_but_serve_takes_json() -> None:
    without = [name for name, cmd in COMMANDS
               if name != "serve" and not any(p.name == "as_json" for p in cmd.params)]
    assert without == []


def _run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Each state built once; every command then runs on its own copy of it."""
    from demandloop import simulate as sim
    from demandloop.workspace import Workspace

    base = tmp_path_factory.mktemp("states")
    market = base / "market"
    sim.simulate(accounts=60, days=40, seed=3, out=market)
    built: dict[str, Any] = {"market": market}

    def make(name: str, steps: list[str]) -> Path:
        d = base / name
        d.mkdir()
        ws = Workspace.open(d)
        try:
            for step in steps:
                if step == "crm":
                    for kind in ("accounts", "contacts", "opportunities"):
                        ws.import_crm(kind, market / f"{kind}.csv")
                    ws.import_ip_ranges(market / "ip_ranges.csv")
                    ws.import_spend(market / "spend.csv")
                elif step == "events":
                    ws.ingest(market / "events.jsonl")
                elif step == "olist":
                    ws.import_olist(OLIST)
                elif step == "resolve":
                    ws.resolve()
                elif step == "score":
                    ws.score()
                    ws.export_parquet(base / "export")
        finally:
            ws.close()
        return d

    built["empty"] = make("empty", [])
    built["crm"] = make("crm", ["crm"])
    built["olist"] = make("olist", ["olist"]) if OLIST.is_dir() else None
    built["events"] = make("events", ["events"])
    built["resolved"] = make("resolved", ["crm", "events", "resolve"])
    built["scored"] = make("scored", ["crm", "events", "resolve", "score"])
    built["export"] = base / "export"
    serving = base / "serving"
    shutil.copytree(built["scored"], serving)
    port = free_port()
    proc = start_subprocess(serving, port)
    built["serving"] = serving
    try:
        yield built
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def _fill(args: list[str], market: Path, scratch: Path, export: Path) -> list[str]:
    import csv

    with (market / "contacts.csv").open() as fh:
        first = next(csv.DictReader(fh))
    person = next(v for k, v in first.items() if "mail" in k.lower())
    account = person.split("@", 1)[1]
    values = {"m": str(market), "o": str(OLIST), "t": str(scratch), "x": str(export),
              "person": person, "account": account}
    return [a.format(**values) for a in args]


@pytest.mark.parametrize("state", STATES)
def test_no_command_ends_in_an_internal_error(
        state: str, states: dict[str, Any], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = states[state]
    if source is None:
        pytest.skip("the Olist dataset is not beside this checkout")
    failures = []
    for name, _ in COMMANDS:
        if name == "serve" and state != "serving":
            continue  # runs until stopped: the collector's own tests cover it
        if name in STATELESS and state != "empty":
            continue
        scratch = tmp_path / name.replace(" ", "-")
        scratch.mkdir()
        if state == "serving":
            workspace = source  # held by the server: commands must say so, not crash
        else:
            workspace = scratch / "ws"
            shutil.copytree(source, workspace)
        args = _fill(ARGS.get(name, []), states["market"], scratch, states["export"])
        code, out, err = _run("-w", str(workspace), *name.split(), *args, capsys=capsys)
        text = out + err
        problem = None
        if code == 70 or "Traceback" in text or "internal error" in text:
            problem = "internal error"
        elif code != 0:
            lines = [ln for ln in err.splitlines() if ln.strip()]
            first = lines[0] if lines else ""
            if not ERROR_LINE.match(first) and not (name == "mail check" and code == 1):
                problem = "not one line saying what to do"
        if problem:
            failures.append(f"{name} [{state}] exit {code}: {problem}: {text.strip()[:400]}")
    assert failures == [], "\n".join(failures)


def test_ctrl_c_during_ingest_says_nothing_was_written(tmp_path: Path) -> None:
    """A real Ctrl-C (SIGINT to the process) in the middle of a large ingest."""
    from demandloop import simulate as sim

    market = tmp_path / "market"
    sim.simulate(accounts=300, days=90, seed=1, out=market)
    big = tmp_path / "big.jsonl"
    with big.open("wb") as fh:
        data = (market / "events.jsonl").read_bytes()
        for _ in range(30):
            fh.write(data)
    d = tmp_path / "w"
    d.mkdir()
    (d / "demandloop.toml").write_text("")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "demandloop", "-w", str(d), "ingest",
                             str(big)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    import time

    # once the workspace is open (on a loaded machine the imports alone can take seconds,
    # and an interrupt during them is not one during an ingest), then into the ingest
    deadline = time.monotonic() + 120
    while not (d / "demandloop.duckdb").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the ingest finished before the interrupt (a very fast machine)")
    assert proc.returncode == 130, err.decode()
    lines = [ln for ln in err.decode().splitlines() if ln.strip() and "ingesting" not in ln]
    assert lines[-1].startswith("interrupted") and "nothing" in lines[-1]
    assert "Traceback" not in err.decode()
    import demandloop

    with demandloop.open(d) as ws:
        assert ws.counts()["events"] == 0

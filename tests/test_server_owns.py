"""The server owns the workspace: while ``demandloop serve`` runs, every command of the CLI
is sent to it (through ``server.json``) and prints exactly what it prints without a server.

Two copies of one scored workspace; a real ``demandloop serve`` subprocess holds the second.
Every command (listed from the Typer app, as in test_every_command) runs on both, in the
same order, so writes (imports, suppressions, erasure) move both copies alike; the exit code,
standard output and standard error must be equal once the two folders' names are made equal
and the figures that measure time (a rate, seconds) are masked.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import time
from pathlib import Path

import httpx
import orjson
import pytest

from demandloop.serve import keys as keystore
from demandloop.serve import owner
from tests.collector_helpers import free_port, served_with_key, server_log, start_subprocess
from tests.test_every_command import ARGS, COMMANDS, STATELESS, _fill, _run

#: commands that open no workspace (they run where they are called) and serve itself
SKIP = STATELESS | {"serve"}
#: what measures time rather than data
TIMING = [(re.compile(r'"seconds": [0-9.e-]+'), '"seconds": <t>'),
          (re.compile(r"\([0-9,]+ msg/s\)"), "(<rate> msg/s)"),
          (re.compile(r"in [0-9.]+ ?s\b"), "in <t>s"),
          (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?( UTC|\+00:00)?"), "<now>"),
          # a new write key or API token is random, and so is its id in the lists
          (re.compile(r"\bdlt?_[A-Za-z0-9_-]{6,}"), "<secret>"),
          (re.compile(r"│ [0-9a-f]{8} │"), "│ <id> │")]


def _normal(text: str, folders: dict[str, str]) -> str:
    for path, name in folders.items():
        text = text.replace(path, name)
    for pattern, repl in TIMING:
        text = pattern.sub(repl, text)
    return text


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from demandloop import simulate as sim
    from demandloop.workspace import Workspace

    base = tmp_path_factory.mktemp("pair")
    market = base / "market"
    sim.simulate(accounts=60, days=40, seed=3, out=market)
    a, b = base / "ws_a", base / "ws_b"
    a.mkdir()
    (a / "demandloop.toml").write_text("")
    with Workspace.open(a) as ws:
        for kind in ("accounts", "contacts", "opportunities"):
            ws.import_crm(kind, market / f"{kind}.csv")
        ws.import_ip_ranges(market / "ip_ranges.csv")
        ws.import_spend(market / "spend.csv")
        ws.ingest(market / "events.jsonl")
        ws.resolve()
        ws.score()
    shutil.copytree(a, b)
    # each copy its own export: erasing a person rewrites the exports its workspace wrote
    for ws_dir in (a, b):
        with Workspace.open(ws_dir) as ws:
            ws.export_parquet(base / f"export_{ws_dir.name}")
    proc = start_subprocess(b, free_port())
    try:
        yield a, b, market, base, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_the_server_file_names_the_server_and_only_its_owner_reads_it(pair) -> None:  # type: ignore[no-untyped-def]
    _, b, _, _, proc = pair
    path = b / owner.SERVER_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = orjson.loads(path.read_bytes())
    assert data["pid"] == proc.pid and data["url"].startswith("http://127.0.0.1:")
    assert owner.find(b) is not None


def test_dl_js_and_invite_links_name_the_port_serve_was_given(tmp_path: Path) -> None:
    # 'serve --port 9000' told analytics.js to send every browser's events to the
    # settings' 8642, and invite links named it too
    key, port, proc = served_with_key(tmp_path / "ws")
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/v1/projects/{key}/settings", timeout=30)
        assert r.json()["integrations"]["Segment.io"]["apiHost"] == f"127.0.0.1:{port}/v1"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_serve_says_at_start_what_the_settings_leave_undone(tmp_path: Path) -> None:
    # chat with no content index answered every question "I don't know", and meetings
    # with no mailbox sent no invitation: each visitor met it, nothing said so before
    d = tmp_path / "ws"
    d.mkdir()
    (d / "demandloop.toml").write_text(
        '[chat]\nenabled = true\n[meetings]\nfallback = ["ann"]\n'
        '[[meetings.reps]]\nname = "ann"\nemail = "ann@vendor.example"\n')
    proc = start_subprocess(d, free_port())
    try:
        said = server_log(d).read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert "chat is enabled but there is no content index" in said
    assert "meetings.mailbox is empty: meetings booked through chat send no invitation" in said


def test_a_command_run_by_a_server_says_when_the_settings_changed_since_it_started(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a 'score' after an edit of the stages ran on the server's old ones, where the same
    # command without a server ran on the new, and nothing said which
    from demandloop.serve.forward import SETTINGS_CHANGED

    d = tmp_path / "ws"
    _, _, proc = served_with_key(d, '[activate]\nmax_signal_age_days = 14\n')
    try:
        code, before, err = _run("-w", str(d), "status", capsys=capsys)
        assert code == 0 and err == ""
        toml = d / "demandloop.toml"
        toml.write_text("# who changed what, and why\n" + toml.read_text())  # the same settings
        assert _run("-w", str(d), "status", capsys=capsys) == (0, before, "")
        toml.write_text(toml.read_text().replace("= 14", "= 3"))
        code, out, err = _run("-w", str(d), "status", capsys=capsys)
        assert (code, out) == (0, before) and err == SETTINGS_CHANGED
        assert "restart the server to use the new ones" in err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_a_second_serve_names_the_server_running(
        pair, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    _, b, _, _, proc = pair
    code, _, err = _run("-w", str(b), "serve", "--port", str(free_port()), capsys=capsys)
    url = orjson.loads((b / owner.SERVER_FILE).read_bytes())["url"]
    assert code == 4
    assert f"a server already runs this workspace at {url} (process {proc.pid})" in err
    assert proc.poll() is None and owner.find(b) is not None


def test_every_command_prints_the_same_with_and_without_a_server(
        pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    a, b, market, base, _ = pair
    differences, forwarded = [], 0
    for name, _ in COMMANDS:
        if name in SKIP:
            continue
        answers = []
        for ws, side in ((a, "t_a"), (b, "t_b")):
            scratch = tmp_path / side / name.replace(" ", "-")
            scratch.mkdir(parents=True)
            args = _fill(ARGS.get(name, []), market, scratch, base / f"export_{ws.name}")
            code, out, err = _run("-w", str(ws), *name.split(), *args, capsys=capsys)
            folders = {str(scratch): "<scratch>", str(ws): "<ws>",
                       str(base / f"export_{ws.name}"): "<export>"}
            answers.append((code, _normal(out, folders), _normal(err, folders)))
        if answers[0] != answers[1]:
            differences.append(f"{name}:\n  direct:  {answers[0]!r:.600}\n"
                               f"  served:  {answers[1]!r:.600}")
        forwarded += 1
    assert differences == [], "\n".join(differences)
    assert forwarded >= 40


def test_a_relative_path_means_the_callers_folder(pair, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    _, b, _, _, _ = pair
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, out, _ = _run("-w", str(b), "report", "html", "mine.html", capsys=capsys)
    finally:
        os.chdir(here)
    assert code == 0 and "mine.html" in out
    assert (tmp_path / "mine.html").stat().st_size > 10_000
    assert not (b / "mine.html").exists()


def test_a_stale_server_file_is_ignored(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "ws"
    d.mkdir()
    (d / "demandloop.toml").write_text("")
    # a server killed with SIGKILL leaves its file: its process is gone
    (d / owner.SERVER_FILE).write_bytes(orjson.dumps(
        {"url": "http://127.0.0.1:9", "token": "dlt_x_y", "pid": 2 ** 22 + 7}))
    code, out, err = _run("-w", str(d), "status", "--json", capsys=capsys)
    assert code == 0, err
    assert orjson.loads(out)["events"] == 0
    assert not (d / owner.SERVER_FILE).exists()


def test_a_server_file_copied_with_the_folder_leads_nowhere(
        pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """A folder copied (a backup restored, a copy to try something) while its server runs
    carries the server's file: commands in the copy ran on the original's server, on the
    original's data (a score, an import, an erasure)."""
    _, b, _, _, proc = pair
    c = tmp_path / "copy"
    c.mkdir()
    for name in ("demandloop.toml", owner.SERVER_FILE):
        shutil.copy2(b / name, c / name)
    code, out, err = _run("-w", str(c), "status", "--json", capsys=capsys)
    assert code == 0, err
    assert orjson.loads(out)["events"] == 0  # the copy's own (empty) store, not b's
    assert not (c / owner.SERVER_FILE).exists()
    # the original's file still leads to its server, through a link to its folder too
    link = tmp_path / "link"
    link.symlink_to(b, target_is_directory=True)
    found = owner.find(link)
    assert found is not None and found.pid == proc.pid


def test_a_server_that_does_not_answer_is_one_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "ws"
    d.mkdir()
    (d / "demandloop.toml").write_text("")
    port = free_port()  # nothing listens there
    # a live process (pytest's parent) that is no server: the file names it
    (d / owner.SERVER_FILE).write_bytes(orjson.dumps(
        {"url": f"http://127.0.0.1:{port}", "token": "dlt_x_y", "pid": os.getppid()}))
    code, _, err = _run("-w", str(d), "status", capsys=capsys)
    assert code == 4
    assert err.startswith("error: the server (pid ") and "does not answer" in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1


def test_with_several_workers_the_process_holding_the_database_answers(
        pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """--workers 2: the HTTP workers have no database; the process that has serves /api/v1
    on collector.api_port and the CLI finds it there."""
    a, _, _, _, _ = pair
    c = tmp_path / "ws_c"
    shutil.copytree(a, c)
    code, direct, _ = _run("-w", str(c), "report", "funnel", "--json", capsys=capsys)
    assert code == 0
    port = free_port()
    (c / "demandloop.toml").write_text(f"[collector]\napi_port = {free_port()}\n")
    key, _ = keystore.create(c, "default", "site")
    proc = start_subprocess(c, port, workers=2)
    try:
        deadline = time.monotonic() + 60
        while owner.find(c) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        running = owner.find(c)
        assert running is not None and not running.url.endswith(f":{port}")
        # a worker tells analytics.js the port it serves on (it named the settings' 8642,
        # where every browser's events went to nothing)
        r = httpx.get(f"http://127.0.0.1:{port}/v1/projects/{key}/settings", timeout=30)
        assert r.json()["integrations"]["Segment.io"]["apiHost"] == f"127.0.0.1:{port}/v1"
        code, served, err = _run("-w", str(c), "report", "funnel", "--json", capsys=capsys)
        assert (code, served) == (0, direct), err
        # each port, asked for what the other serves, names the other (FastAPI's {"detail":
        # "Not Found"} on the API's, "no endpoint" alone on the workers')
        api_port = int(running.url.rsplit(":", 1)[1])
        for asked, at, other in (("/api/v1/accounts", port, api_port), ("/app/login", port,
                                 api_port), ("/v1/batch", api_port, port),
                                 ("/dl.js", api_port, port)):
            r = httpx.get(f"http://127.0.0.1:{at}{asked}", timeout=30)
            error = r.json()["error"]
            assert r.status_code == 404 and f"on port {other}" in error["message"], (asked, r.text)
        # an erasure needs each worker's log: refused before anything changes
        code, _, err = _run("-w", str(c), "privacy", "erase", "x@example.com", "--yes",
                            capsys=capsys)
        assert code == 2 and "several workers" in err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert not (c / owner.SERVER_FILE).exists()

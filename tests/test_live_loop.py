"""The live loop: ``demandloop serve`` resolves (incrementally), scores and runs workflows
a couple of seconds after events load, so a stage change reaches the rep in seconds, not at
the next ``rescore_minutes``. A real server with its default timing, a real SDK request, a
real webhook receiver."""

from __future__ import annotations

import datetime as dt
import http.server
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

import demandloop
from demandloop.serve import keys as keystore
from demandloop.serve import tokens
from demandloop.serve.loader import Loader
from demandloop.serve.traffic import SERVING, Serving
from tests.collector_helpers import collector, free_port, start_subprocess


class Hooks:
    """A webhook receiver on loopback: every body it got, and when."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append((time.monotonic(), orjson.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_a_stage_change_fires_its_workflow_seconds_after_the_event(
        tmp_path: Path, market: Path) -> None:
    d = tmp_path / "w"
    with demandloop.open(d) as ws:
        ws.load_simulation(market, spend=False)
        ws.resolve()
        ws.score()
        ws.run_workflows()
        last = ws.store.con.execute("SELECT max(ts) FROM touches").fetchone()[0]
        candidates = ws.store.con.execute("""
            SELECT v.account_id, min(substr(i.identifier, 6))
            FROM account_view v JOIN persons p USING (workspace_id, account_id)
            JOIN person_identifiers i USING (workspace_id, person_id)
            WHERE v.fit >= 50 AND v.stage NOT IN ('mqa', 'opportunity', 'customer')
              AND i.identifier LIKE 'user:%'
            GROUP BY 1 ORDER BY 1""").fetchall()
    assert candidates, "the market has no account that fits and is not an MQA yet"
    account, user = candidates[0]
    hooks = Hooks()
    # the defaults (rescore_minutes = 15) but for the market's clock, months behind ours
    (d / "demandloop.toml").write_text(f"""
[activate]
max_signal_age_days = 3650
[[activate.workflows]]
name = "mqa-alert"
when = {{trigger = "stage_changed", to = "mqa"}}
then = [{{action = "notify", url = "{hooks.url}/hook", format = "webhook"}}]
""")
    key, _ = keystore.create(d, "default", "sdk")
    token, _ = tokens.create(d, "read", "test")
    port = free_port()
    proc = start_subprocess(d, port)
    try:
        sent = time.monotonic()
        r = httpx.post(f"http://127.0.0.1:{port}/v1/track", auth=(key, ""), json={
            "userId": user, "event": "Demo Requested", "messageId": f"t-{uuid.uuid4()}",
            "timestamp": (last + dt.timedelta(minutes=1)).isoformat() + "Z"})
        assert r.status_code == 200
        deadline = sent + 60  # a loaded CI machine; the benchmark measures the real figure
        while time.monotonic() < deadline:
            mine = [(at, b) for at, b in hooks.got if account in orjson.dumps(b).decode()]
            if mine:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no alert for {account} within 60 s (rescore_minutes is 15)")
        at, body = mine[0]
        assert body["workflow"] == "mqa-alert"
        page = httpx.get(f"http://127.0.0.1:{port}/api/v1/accounts/{account}",
                         headers={"Authorization": f"Bearer {token}"}).json()
        assert page["account"]["stage"] == "mqa"
        assert page["stage_history"][0]["to_stage"] == "mqa"
        assert any(t["activity"] == "demo_request" for t in page["touches"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_the_live_loop_keeps_one_snapshot_a_day(tmp_path: Path, market: Path) -> None:
    """Scored every few seconds, a server would store every account's row each time: it
    keeps the day's latest snapshot (and every earlier day's) and the one before the
    latest, stage changes untouched."""
    with demandloop.open(tmp_path / "w") as ws:
        ws.load_simulation(market, spend=False)
        ws.resolve()
        last = ws.store.con.execute("SELECT max(ts) FROM touches").fetchone()[0]
        day = last.replace(hour=0, minute=0, second=0, microsecond=0)
        earlier = [max(day, last - dt.timedelta(seconds=s)) for s in (20, 10)]
        assert len(set(earlier)) == 2, "the market's last touch is too close to midnight"
        moments = [day - dt.timedelta(hours=19), *earlier, last]
        for at in moments:
            ws.score(at)
        changes = ws.store.con.execute("SELECT count(*) FROM stage_changes").fetchone()[0]
        per_snapshot = ws.store.con.execute(
            "SELECT count(*) FROM scores WHERE as_of = ?", [last]).fetchone()[0]
        deleted = ws.keep_one_snapshot_per_day()
        kept = [a for (a,) in ws.store.con.execute(
            "SELECT DISTINCT as_of FROM scores ORDER BY 1").fetchall()]
        # the latest two stay (the loop compares them, and makes the next from the older)
        assert kept == [moments[0], earlier[1], last]
        assert deleted == per_snapshot
        assert ws.store.con.execute("SELECT count(*) FROM stage_changes").fetchone()[0] \
            == changes


def _loader_after_one_run(tmp_path: Path, requests_meanwhile: float) -> Any:
    """A loader (not started) whose maintenance takes 0.2 s, during which the server
    answered requests for *requests_meanwhile* seconds; after one run."""

    serving = Serving()

    def run() -> None:
        time.sleep(0.2)
        serving.add(requests_meanwhile)

    with demandloop.open(tmp_path / "ws") as ws:
        (tmp_path / "log").mkdir()
        loader = Loader(ws.store, tmp_path / "log", maintenance=run, maintenance_every=0.05,
                        serving=serving.seconds)
        loader._loaded_since, loader._next_maintenance = True, 0.0
        before = time.monotonic()
        loader._maybe_maintain()
        return loader, before


def test_the_loop_rests_only_when_requests_were_answered_during_its_run(
        tmp_path: Path) -> None:
    # nobody served: the next run may start at once (the rest would only delay the alert)
    quiet, before = _loader_after_one_run(tmp_path / "q", 0.001)
    assert quiet.status["rest_seconds"] == 0.0
    assert quiet._next_maintenance - before < quiet.status["maintenance_seconds"] + 0.1
    # reads answered during it (for half its time): it rests twice its run, as before
    busy, before = _loader_after_one_run(tmp_path / "b", 0.1)
    took = busy.status["maintenance_seconds"]
    assert busy.status["rest_seconds"] == pytest.approx(2 * took, abs=0.002)
    assert busy._next_maintenance - before >= 3 * 0.2


def test_every_request_of_the_server_counts_as_serving(tmp_path: Path) -> None:

    with collector(tmp_path / "ws") as c:
        before = SERVING.seconds()
        for _ in range(5):
            assert httpx.get(f"{c.url}/healthz", timeout=5).status_code == 200
        # a refused request is answered too
        assert httpx.post(f"{c.url}/v1/batch", content=b"{", timeout=5).status_code == 400
        assert SERVING.seconds() > before


def test_the_loop_runs_on_every_core_only_while_the_server_is_quiet(tmp_path: Path) -> None:
    """DuckDB's thread count is the database's: the server keeps one between runs (its
    other cores answer requests); a run after a quiet spell gets every core
    (``store.threads``), one after requests were answered keeps one."""
    from demandloop.serve.run import Threads

    (tmp_path / "demandloop.toml").write_text("[store]\nthreads = 2\n")
    served = [0.0]

    def setting(ws: Any) -> int:
        return int(ws.store.con.execute("SELECT current_setting('threads')").fetchone()[0])

    with demandloop.open(tmp_path) as ws:
        threads = Threads(ws, lambda: served[0])
        assert setting(ws) == 1  # between runs
        time.sleep(0.2)
        with threads.for_loop():  # nothing answered since: every core
            assert setting(ws) == 2
            served[0] += 0.5  # requests answered during the run do not change it
            assert setting(ws) == 2
        assert setting(ws) == 1
        time.sleep(0.2)
        served[0] += 0.05  # a quarter of the time since the last run spent answering
        with threads.for_loop():
            assert setting(ws) == 1
        assert threads.last == 1
        time.sleep(0.4)
        served[0] += 0.001  # a request now and then is quiet
        with threads.for_loop():
            assert setting(ws) == 2
        assert setting(ws) == 1

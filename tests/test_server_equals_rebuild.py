"""A real ``demandloop serve`` holds what a rebuild and a full score hold.

The property tests replay batches through the library (``test_incremental_resolve.py``,
``test_score_live.py``). Here the whole server does it, as a site feeds it: a market's
events posted to ``/v1/batch`` in time order (its history in big batches, its last two
days in small ones, each scored before the next, so that the loop rescores both whole and
live), a few events late, while a client reads the accounts API and the CLI runs a report
through the server. The collector logs them, the loader loads them in its own batches, and
after each load the live loop resolves incrementally and rescores live (``/metrics`` must
say it did). Once the loop has scored the last touch, the server stops; then, on a copy of
its workspace, a rebuild must write the same resolve tables and a full score at the same
time the same snapshot.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import pytest

import demandloop
from demandloop.resolve import state
from demandloop.score import live
from demandloop.serve import keys as keystore
from demandloop.serve import tokens
from tests.collector_helpers import free_port, metric_values, start_subprocess
from tests.test_incremental_resolve import assert_same, snapshot
from tests.test_score_live import assert_same as assert_same_scores

SCORES = ("SELECT as_of, entity, entity_id, fit, engagement, intent, stage, details "
          "FROM scores WHERE as_of = ? ORDER BY ALL")


def _when(m: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).replace(tzinfo=None)


def _scored_at(url: str, headers: dict[str, str]) -> dt.datetime | None:
    """The time of the accounts' latest score, as the API answers it."""
    rows = httpx.get(f"{url}/api/v1/accounts", params={"limit": 1}, headers=headers,
                     timeout=120).json()["data"]
    return dt.datetime.fromisoformat(rows[0]["as_of"]) if rows and rows[0]["as_of"] else None


def _wait_scored(url: str, headers: dict[str, str], at: dt.datetime) -> None:
    """Until the live loop has scored the touches up to *at* (a loaded machine:
    generous; the benchmarks time it)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = _scored_at(url, headers)
        if found is not None and found >= at:
            return
        time.sleep(0.2)
    raise AssertionError(f"the live loop did not score the touches up to {at} in 240 s")


def _send(url: str, key: str, messages: list[dict], rng: random.Random,
          sizes: tuple[int, int], scored: Callable[[dt.datetime], None] | None = None
          ) -> None:
    """*messages* in time order in batches of *sizes* (least, most) messages, about 3 % of
    them a batch or more late; after each batch, *scored* is given its newest touch's
    time (to wait for the loop), else a pause of up to half a second."""
    pending: list[dict] = list(messages)
    held: list[dict] = []
    while pending or held:
        n = rng.randint(*sizes)
        batch, pending = pending[:n], pending[n:]
        late = [m for m in batch if pending and rng.random() < 0.03]
        batch = [m for m in batch if m not in late] + [
            m for m in held if not pending or rng.random() < 0.5]
        held = [m for m in held if m not in batch] + late
        if not batch:
            continue
        r = httpx.post(f"{url}/v1/batch", auth=(key, ""), json={"batch": batch}, timeout=60)
        assert r.status_code == 200, r.text
        touches = [_when(m) for m in batch if m["type"] in ("page", "track")]
        if scored is not None and touches:
            scored(max(touches))
        else:
            time.sleep(rng.choice([0, 0.2, 0.5]))


@pytest.mark.parametrize("workers", [1, 2])
def test_the_servers_live_loop_ends_where_a_rebuild_and_a_full_score_do(
        tmp_path: Path, market: Path, workers: int) -> None:
    served_equals_rebuild(tmp_path, market, workers)


def served_equals_rebuild(tmp_path: Path, market: Path, workers: int,
                          every_event: bool = True) -> None:
    """The test, on *market* with *workers* (also replayed by hand on other markets; with
    an erasure meanwhile, not *every_event* stays)."""
    d = tmp_path / "served"
    with demandloop.open(d) as ws:
        for kind in ("accounts", "contacts", "opportunities"):
            ws.import_crm(kind, market / f"{kind}.csv")
        ws.import_ip_ranges(market / "ip_ranges.csv")
    port, api_port = free_port(), free_port()
    # with several workers the events go to them, the API and the CLI to the process that
    # holds the database
    (d / "demandloop.toml").write_text("[collector]\nrescore_after_load_seconds = 0.5\n"
                                       f"api_port = {api_port}\n")
    key, _ = keystore.create(d, "default", "sdk")
    token, _ = tokens.create(d, "read", "test")
    headers = {"Authorization": f"Bearer {token}"}
    messages = sorted((json.loads(line) for line in
                       (market / "events.jsonl").read_text().splitlines()),
                      key=lambda m: m["timestamp"])
    # the newest touch goes last, alone: once the accounts are scored at its time, the
    # loop has resolved every load
    final = max((m for m in messages if m["type"] in ("page", "track")),
                key=lambda m: m["timestamp"])
    messages.remove(final)
    last_touch = _when(final)
    url = f"http://127.0.0.1:{port}"
    api = f"http://127.0.0.1:{api_port if workers > 1 else port}"
    proc = start_subprocess(d, port, workers)
    stop, failures = threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            r = httpx.get(f"{api}/api/v1/accounts", params={"sort": "-engagement"},
                          headers=headers, timeout=120)
            if r.status_code != 200:
                failures.append(f"GET /api/v1/accounts: {r.status_code} {r.text[:200]}")
            time.sleep(0.05)

    def report() -> None:
        while not stop.is_set():
            r = subprocess.run([sys.executable, "-m", "demandloop", "-w", str(d), "report",
                                "funnel", "--json"], capture_output=True, timeout=300)
            if r.returncode != 0:
                failures.append(f"report funnel: {r.stderr.decode()[-300:]}")
            time.sleep(1.0)

    helpers = [threading.Thread(target=read), threading.Thread(target=report)]
    try:
        for t in helpers:
            t.start()
        # the history in big batches (the loop scores days at a time: full scores);
        # then the last two days in small ones, each scored before the next is sent (a
        # few hours at a time: live rescores, however slow the machine); then the newest
        # touch
        tail = last_touch - dt.timedelta(days=2)
        rng = random.Random(3)
        _send(url, key, [m for m in messages if _when(m) < tail], rng, (100, 600))
        _send(url, key, [m for m in messages if _when(m) >= tail], rng, (15, 45),
              lambda at: _wait_scored(api, headers, at))
        _send(url, key, [final], rng, (1, 1))
        _wait_scored(api, headers, last_touch)
        metrics = httpx.get(f"{url}/metrics", timeout=60).text
    finally:
        stop.set()
        for t in helpers:
            t.join(timeout=300)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert not failures, failures[:3]
    # the loop rescored live (only what changed) at least once, and reported it
    values = metric_values(metrics)
    live_runs = values.get('demandloop_live_rescores{mode="incremental"}', 0.0)
    assert live_runs >= 1, [x for x in metrics.splitlines() if "rescore" in x]
    assert values["demandloop_loop_seconds"] > 0

    with demandloop.open(d) as ws:
        served = snapshot(ws)
        with ws.store.reader() as cur:
            as_of = cur.execute("SELECT max(as_of) FROM scores").fetchone()[0]
            scored = cur.execute(SCORES, [as_of]).df()
            loads = cur.execute("SELECT count(DISTINCT load_id), count(*), max(load_id) "
                                "FROM events").fetchone()
            resolved = cur.execute("SELECT loaded_to FROM resolve_state").fetchone()
    assert loads[1] == len(messages) + 1 or not every_event
    assert resolved == (loads[2],), "the server stopped before resolving its last load"
    assert loads[0] >= 5, f"the server loaded everything in {loads[0]} batches"
    assert as_of == last_touch
    copy = tmp_path / "copy"
    shutil.copytree(d, copy)
    with demandloop.open(copy) as ws:
        with ws.store.writer() as cur:
            state.clear(cur, ws.store.workspace_id)
        assert ws.resolve().mode == "rebuild"
        assert_same(served, snapshot(ws))
        live.forget()
        assert ws.score(as_of).mode == "full"
        with ws.store.reader() as cur:
            full: pd.DataFrame = cur.execute(SCORES, [as_of]).df()
    assert len(full) > 100
    assert_same_scores({"scores": scored}, {"scores": full})

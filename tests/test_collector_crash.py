"""Crash test: events are sent while `demandloop serve` is killed with SIGKILL and restarted;
every event that got a 200 is stored exactly once."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

import demandloop
from demandloop.serve import keys as keystore
from tests.collector_helpers import served_with_key, start_subprocess


def _sender(url: str, key: str, tag: str, acked: list[str], stop: threading.Event) -> None:
    """Like an SDK: send a batch, and on any failure send the same batch again."""
    n = 0
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            ids = [f"{tag}-{n}-{i}" for i in range(25)]
            batch = {"batch": [{"type": "track", "event": "Load", "userId": f"u{i}",
                                "messageId": m, "properties": {"n": n}}
                               for i, m in enumerate(ids)]}
            while not stop.is_set():
                try:
                    r = client.post(url + "/v1/batch", json=batch, auth=(key, ""))
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    acked.extend(ids)
                    break
                time.sleep(0.05)
            n += 1


def _served(tmp_path: Path, name: str) -> tuple[Path, str, int, str, subprocess.Popen[bytes]]:
    """A workspace with a write key, served by a `demandloop serve` process."""
    d = tmp_path / "w"
    key, port, proc = served_with_key(d, name=name)
    return d, key, port, f"http://127.0.0.1:{port}", proc


def test_sigkill_loses_nothing_acknowledged_and_stores_nothing_twice(tmp_path: Path) -> None:
    d, key, port, url, proc = _served(tmp_path, "crash")
    acked: list[str] = []
    stop = threading.Event()
    senders = [threading.Thread(target=_sender, args=(url, key, f"s{i}", acked, stop))
               for i in range(4)]
    for t in senders:
        t.start()
    try:
        time.sleep(2.0)
        before_kill = len(acked)
        proc.send_signal(signal.SIGKILL)  # mid-stream: requests in flight, log unloaded
        proc.wait(timeout=10)
        logged = sum(p.stat().st_size for p in (d / "collector-log").rglob("*.log"))
        time.sleep(0.5)
        proc = start_subprocess(d, port)
        time.sleep(1.5)
    finally:
        stop.set()
        for t in senders:
            t.join(timeout=30)
        proc.send_signal(signal.SIGTERM)  # graceful: loads everything before exiting
        proc.wait(timeout=60)
    assert before_kill > 0 and len(acked) > before_kill and logged > 0
    with demandloop.open(d) as ws:
        rows = dict(ws.store.con.execute(
            "SELECT message_id, count(*) FROM events GROUP BY 1").fetchall())
    missing = [m for m in acked if m not in rows]
    assert missing == []
    assert max(rows.values()) == 1  # nothing stored twice, replays included


def test_several_workers_share_one_loader(tmp_path: Path) -> None:
    d = tmp_path / "w"
    key, port, proc = served_with_key(d, workers=2, name="workers")
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client() as client:  # new connections spread over the workers
            for i in range(40):
                if i == 20:  # the key's first uses are written; those after, at the stop
                    time.sleep(1.5)
                    sent = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
                r = httpx.post(url + "/v1/track", auth=(key, ""),
                               json={"event": "E", "userId": "u", "messageId": f"w{i}"})
                assert r.status_code == 200
            assert client.get(url + "/readyz").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # each worker writes its last uses when it stops (the later ones were not written
    # before: at most once a minute), so the key's time is that of its last events
    assert keystore.list_keys(d)[0].last_used_at >= sent
    with demandloop.open(d) as ws:
        rows = ws.store.con.execute("SELECT count(DISTINCT message_id), count(*), "
                                    "min(source) FROM events").fetchone()
    assert rows is not None and rows[0] == rows[1] == 40
    assert rows[2].startswith("collector:w")


def test_sigterm_loads_everything_acknowledged_before_exiting(tmp_path: Path) -> None:
    """docker stop and systemd send SIGTERM: the server stops accepting, then loads what it
    acknowledged (uvicorn's own handling re-raised the signal and died before that)."""
    d, key, _, url, proc = _served(tmp_path, "term")
    acked: list[str] = []
    try:
        with httpx.Client(timeout=10) as client:
            for n in range(40):
                ids = [f"t{n}-{i}" for i in range(100)]
                r = client.post(url + "/v1/batch", auth=(key, ""), json={"batch": [
                    {"type": "track", "event": "Load", "userId": f"u{i}", "messageId": m,
                     "properties": {"pad": "p" * 300}} for i, m in enumerate(ids)]})
                assert r.status_code == 200
                acked.extend(ids)
    finally:
        proc.send_signal(signal.SIGTERM)  # at once: most of it is still in the log
        code = proc.wait(timeout=60)
    assert code == 0
    with demandloop.open(d) as ws:
        stored = {m for (m,) in ws.store.con.execute("SELECT message_id FROM events").fetchall()}
    assert len(acked) == 4000 and set(acked) <= stored

"""Benchmark: signal to action. How long from an SDK's POST of "Demo Requested" to the
collector until the rep's webhook receives the alert, with ``demandloop serve``'s live path.

Builds the demo market (500 accounts, 90 days: ingested, resolved, scored), runs the
collector in this process (log, loader, live workflows: as ``demandloop serve`` does) with an
``event`` workflow that notifies a local HTTP receiver, and sends one event at a time for a
known person. The baseline, in the same process, is the batch path the alert would
otherwise wait for: one ``resolve + score + workflows run`` over the workspace after the event
(with ``rescore_minutes`` between runs on top of it, 15 minutes by default).

    python benchmarks/signal_to_action.py --events 30
"""

from __future__ import annotations

import argparse
import http.server
import shutil
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import demandloop
from demandloop.collect.log import DurableLog
from demandloop.serve import keys as keystore
from demandloop.serve.app import create_app
from demandloop.serve.keys import KeyRing
from demandloop.serve.loader import Loader
from demandloop.serve.run import _hooks
from demandloop.serve.state import CollectorState
from demandloop.simulate import simulate


class Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.cond:
                    outer.arrived[body.decode()] = time.perf_counter()
                    outer.cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, marker: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for body, at in self.arrived.items():
                    if marker in body:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(marker)
                self.cond.wait(left)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dl-s2a-"))
    try:
        run(tmp, args.events)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: Path, n: int) -> None:
    market, d = tmp / "market", tmp / "w"
    simulate(accounts=500, days=90, seed=42, out=market)
    with demandloop.open(d) as ws:
        ws.load_simulation(market, spend=False)
        ws.resolve()
        ws.score()
        user = ws.store.con.execute(
            "SELECT substr(i.identifier, 6) FROM person_identifiers i JOIN persons p USING "
            "(workspace_id, person_id) WHERE i.identifier LIKE 'user:%' AND p.account_id IS "
            "NOT NULL ORDER BY 1 LIMIT 1").fetchone()[0]
    receiver = Receiver()
    (d / "demandloop.toml").write_text(f"""
[collector]
rescore_minutes = 0
[[activate.workflows]]
name = "demo-alert"
when = {{trigger = "event", event = "Demo Requested"}}
then = [{{action = "notify", url = "{receiver.url}/hook", format = "webhook"}}]
""")
    key, _ = keystore.create(d, "default", "bench")
    ws = demandloop.open(d)
    root = d / ws.settings.collector.log_dir
    log = DurableLog(root / "main")
    loader = Loader(ws.store, root, own=log, **_hooks(ws, threading.RLock())).start()
    state = CollectorState(log=log, keys=KeyRing(d), log_root=root, loader=loader)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ws.settings, state), host="127.0.0.1",
                                           port=port, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    latencies = []
    with httpx.Client(auth=(key, "")) as client:
        for i in range(n + 2):
            mid = f"bench-{uuid.uuid4().hex}"
            t0 = time.perf_counter()
            r = client.post(url + "/v1/track", json={
                "userId": user, "event": "Demo Requested", "messageId": mid,
                "properties": {"seats": i}})
            assert r.status_code == 200, r.text
            arrived = receiver.wait_for("Demo Requested")  # any new one
            if i >= 2:  # the first two warm the caches
                latencies.append(arrived - t0)
            receiver.arrived.clear()
            time.sleep(0.1)
    server.should_exit = True
    loader.stop(drain=True)
    log.close()
    # the batch path, in the same process: one maintenance run after one new event
    batch = []
    for _ in range(3):
        t0 = time.perf_counter()
        ws.resolve()
        ws.score()
        ws.run_workflows()
        batch.append(time.perf_counter() - t0)
    ws.close()
    latencies.sort()
    med = statistics.median(latencies)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    base = statistics.median(batch)
    print(f"signal to action over {len(latencies)} events: median {med * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms (target < 1 s)")
    print(f"batch path (resolve + score + workflows on the demo market): {base:.2f} s "
          f"(ratio {base / med:.0f}x), plus up to collector.rescore_minutes of waiting")


if __name__ == "__main__":
    main()

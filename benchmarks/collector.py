"""Benchmark: durable events/s through `demandloop serve`, against the raw fsync limit.

Starts `demandloop serve` (one worker, access log on, as by default) in a fresh workspace,
and drives it from a separate load-generator process over loopback (keep-alive HTTP/1.1 on
several connections, bounded in count and time):

* batched: `POST /v1/batch` with 100 events per request -> durable events/s;
* single: `POST /v1/track` with one event per request -> requests/s;

each with p50/p99 latency. A 200 means the events were fsync'd. In the same run it measures
the raw limit of the disk: append + fsync of the same bytes, one call at a time, and prints
each figure's ratio to it (group commit lets the server beat it). Targets on the 2-core
machine: >= 50k events/s batched, >= 3k single calls/s, p99 < 50 ms.

    python benchmarks/collector.py --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from demandloop.serve import keys as keystore


def _event(i: int) -> dict[str, Any]:
    return {"type": "track", "event": "Page Engaged", "userId": f"user-{i % 5000}",
            "messageId": uuid.uuid4().hex, "timestamp": "2026-11-24T10:00:00.000Z",
            "properties": {"path": "/pricing", "seconds": i % 90, "plan": "pro"},
            "context": {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
                        "page": {"url": "https://vendor.io/pricing?utm_source=g2"}}}


def _requests(host: str, path: str, key: str, batch: int, count: int) -> list[bytes]:
    """*count* distinct requests (every event its own messageId), built before the clock
    starts so the generator's own CPU does not limit the server."""
    import base64

    auth = base64.b64encode(f"{key}:".encode()).decode()
    out = []
    for n in range(count):
        events = [_event(n * batch + i) for i in range(batch)]
        body = orjson.dumps({"batch": events} if batch > 1 else events[0])
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        out.append(head.encode() + body)
    return out


async def _connection(host: str, port: int, requests: list[bytes], deadline: float,
                      out: list[float], counter: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    while time.perf_counter() < deadline and counter[0] < len(requests):
        request = requests[counter[0]]
        counter[0] += 1
        t = time.perf_counter()
        writer.write(request)
        status = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if b" 200 " not in status:
            raise RuntimeError(f"server answered {status!r}")
        out.append(time.perf_counter() - t)
    writer.close()


def _load(host: str, port: int, path: str, key: str, batch: int, connections: int,
          seconds: float, limit: int, queue: Any) -> None:
    """The load generator process: returns latencies and wall time through *queue*."""
    requests = _requests(host, path, key, batch, limit)

    async def main() -> tuple[list[float], float]:
        lat: list[float] = []
        counter = [0]
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(_connection(host, port, requests, deadline, lat, counter)
                               for _ in range(connections)))
        return lat, time.perf_counter() - start

    queue.put(asyncio.run(main()))


def _run_load(port: int, key: str, path: str, batch: int, connections: int, seconds: float,
              limit: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_load, args=("127.0.0.1", port, path, key, batch, connections,
                                        seconds, limit, q))
    p.start()
    lat, wall = q.get(timeout=seconds + 600)
    p.join()
    lat.sort()
    return {"requests": len(lat), "req_s": len(lat) / wall, "events_s": len(lat) * batch / wall,
            "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


def _raw_fsync(folder: Path, size: int, seconds: float = 2.0) -> float:
    """Appends of *size* bytes, each followed by fsync, per second (one at a time)."""
    fd = os.open(folder / "raw.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    data = b"x" * size
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        os.write(fd, data)
        os.fsync(fd)
        n += 1
    rate = n / (time.perf_counter() - start)
    os.close(fd)
    return rate


def _drained(port: int, expected: int, timeout: float = 600) -> int:
    """Wait until the loader has stored *expected* events; returns how many it stored."""
    import urllib.request

    deadline = time.monotonic() + timeout
    loaded = 0
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        for line in text.splitlines():
            if line.startswith("demandloop_events_loaded "):
                loaded = int(float(line.split()[1]))
        if loaded >= expected:
            break
        time.sleep(0.2)
    return loaded


def _wait(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the collector did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="per phase")
    ap.add_argument("--batches", type=int, default=6_000,
                    help="distinct batch requests prepared (the batched phase's bound)")
    ap.add_argument("--singles", type=int, default=60_000,
                    help="distinct single-event requests prepared (the single phase's bound)")
    ap.add_argument("--batch-connections", type=int, default=4,
                    help="concurrent connections sending batches (SDK clients)")
    ap.add_argument("--single-connections", type=int, default=32,
                    help="concurrent connections sending single events (browsers)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp)
        (folder / "demandloop.toml").write_text("")  # a workspace, as 'demandloop init' makes
        key, _ = keystore.create(folder, "default", "bench")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "demandloop", "-w", str(folder),
                                   "serve", "--port", str(port)],  # access log on: default
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(port)
            time.sleep(1.0)
            batch_size = len(orjson.dumps({"batch": [_event(i) for i in range(100)]}))
            single_size = len(orjson.dumps(_event(0)))
            raw_batch = _raw_fsync(folder, batch_size)
            raw_single = _raw_fsync(folder, single_size)
            t0 = time.perf_counter()
            batched = _run_load(port, key, "/v1/batch", 100, args.batch_connections,
                                args.seconds, args.batches)
            loaded = _drained(port, int(batched["requests"]) * 100)
            load_rate = loaded / (time.perf_counter() - t0)
            single = _run_load(port, key, "/v1/track", 1, args.single_connections,
                               args.seconds, args.singles)
        finally:
            server.terminate()
            server.wait(timeout=120)
    print(f"raw append+fsync, one at a time: {raw_batch:,.0f}/s of {batch_size:,} B "
          f"(= {raw_batch * 100:,.0f} events/s), {raw_single:,.0f}/s of {single_size} B")
    print(f"batched (100/request, {args.batch_connections} connections): "
          f"{batched['events_s']:,.0f} durable events/s, {batched['req_s']:,.0f} req/s, "
          f"p50 {batched['p50_ms']:.1f} ms, p99 {batched['p99_ms']:.1f} ms, "
          f"ratio to raw {batched['events_s'] / (raw_batch * 100):.2f}x  (target >= 50,000/s)")
    print(f"loader: {load_rate:,.0f} events/s into DuckDB from the first request to the last "
          "event stored (it runs at a lower priority; the log absorbs bursts)")
    print(f"single events ({args.single_connections} connections): {single['req_s']:,.0f} req/s, "
          f"p50 {single['p50_ms']:.1f} ms, p99 {single['p99_ms']:.1f} ms, "
          f"ratio to raw {single['req_s'] / raw_single:.2f}x  (target >= 3,000/s, p99 < 50 ms)")


if __name__ == "__main__":
    main()

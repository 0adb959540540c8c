"""Benchmark: ``GET /v1/decide`` at a steady ``--rate`` requests/s on loopback, with
``--accounts`` accounts and ``--experiences`` experiences.

The store: a simulated market copied in SQL to ``--accounts`` accounts (see
benchmarks/resolve.py), resolved and scored. The experiences: ``--experiences`` generated
ones over ten zones, with audiences on industry, country, stage, fit band, target, size,
surging topic, persona, UTM source and path, and templated text and links.

The visitors: addresses drawn inside the workspace's company ranges (half), anywhere else
(a quarter), and browsers of known persons (a quarter), on a few pages with and without UTM
parameters. A real ``demandloop serve`` (one worker) answers; this process sends requests
open-loop (each at its scheduled time, whether or not earlier ones answered, as browsers
do) for ``--seconds`` and reports the latency percentiles it saw, queueing included.

The baseline, the same way: a server that decides the same experiences with the same
function but reads the visitor's person, the address's range and the account's row from
DuckDB for each request (three indexed point queries on the same database, threads off the
event loop): what an implementation without the in-memory snapshot does.

    python benchmarks/decide.py                              # ~100k accounts, 1,000 req/s
    python benchmarks/decide.py --accounts 20000 --copies 2 --rate 500 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from resolve import build  # type: ignore[import-not-found]  # noqa: E402

import demandloop  # noqa: E402
from demandloop.serve import keys as keystore  # noqa: E402

INDUSTRIES = ["Software", "Financial Services", "Healthcare", "Manufacturing", "Retail",
              "Education", "Energy", "Media"]
COUNTRIES = ["US", "GB", "DE", "FR", "IN", "BR", "AU", "CA"]
TOPICS = ["intent data", "lead scoring", "abm", "attribution", "pricing"]


def experiences(n: int, seed: int) -> str:
    """*n* experiences as an experiences/*.toml file."""
    r = random.Random(seed)
    conditions = [
        lambda: f'{{field = "industry", value = "{r.choice(INDUSTRIES)}"}}',
        lambda: f'{{field = "country", op = "in", value = {r.sample(COUNTRIES, 3)}}}'.replace(
            "'", '"'),
        lambda: '{field = "stage", op = "in", value = ["aware", "engaged", "mqa"]}',
        lambda: '{field = "band", value = "Strong"}',
        lambda: '{field = "target", value = true}',
        lambda: f'{{field = "employees", op = ">=", value = {r.choice([50, 200, 1000])}}}',
        lambda: f'{{field = "surge_topics", op = "contains", value = "{r.choice(TOPICS)}"}}',
        lambda: '{field = "known", value = true}',
        lambda: '{field = "utm_source", value = "linkedin"}',
        lambda: '{field = "path", op = "contains", value = "/pricing"}',
    ]
    out = []
    for i in range(n):
        picked = ", ".join(r.choice(conditions)() for _ in range(r.randint(1, 3)))
        out.append(f"""
[[experiences]]
name = "exp-{i:02d}"
zone = "zone-{i % 10}"
priority = {r.randint(0, 100)}
control = {r.choice([0.1, 0.5])}
audience.all = [{picked}]
[[experiences.changes]]
selector = "#zone-{i % 10} h2"
text = "For {{{{ account.name }}}} in {{{{ account.industry }}}}"
fallback = "For teams like yours"
[[experiences.changes]]
selector = "#zone-{i % 10} a"
attribute = "href"
value = "/demo?c={{{{ account.domain }}}}&e={i}"
""")
    return "".join(out)


_BASELINE = """
import asyncio, sys
import duckdb, numpy as np, orjson, uvicorn
from urllib.parse import parse_qs
import demandloop
from demandloop.activate.decide_index import page_fields
from demandloop.activate.personalize import compile_experiences, decide
from demandloop.ipaddr import ip_key
path, port = sys.argv[1], int(sys.argv[2])
with demandloop.open(path) as ws:
    found = compile_experiences(ws.experiences())
con = duckdb.connect(f"{path}/demandloop.duckdb", read_only=True)
FIELDS = ("account_id, name, domain, industry, employees, country, owner, target, tier, "
          "stage, fit, band, intent, surging, surge_topics")
def one(ip, aid, url, ref):
    cur = con.cursor()
    row = {"known": False}
    account = None
    if aid:
        p = cur.execute("SELECT p.account_id, p.seniority, p.job_function FROM "
                        "person_identifiers i JOIN persons p USING (workspace_id, person_id) "
                        "WHERE i.identifier = ?", ["anon:" + aid]).fetchone()
        if p:
            account = p[0]
            row.update(known=True, seniority=p[1], job_function=p[2])
    if account is None and ip:
        k = ip_key(ip)
        hit = cur.execute("SELECT account_id FROM ip_ranges WHERE start_ip <= ? AND "
                          "end_ip >= ? ORDER BY start_ip DESC LIMIT 1", [k, k]).fetchone()
        account = hit[0] if hit else None
    row["account_known"] = account is not None
    if account is not None:
        a = cur.execute(f"SELECT {FIELDS} FROM account_view WHERE account_id = ?",
                        [account]).fetchone()
        if a:
            names = [f.strip() for f in FIELDS.split(",")]
            row.update(dict(zip(names, a)))
            row["surge_topics"] = orjson.loads(row["surge_topics"]) if row["surge_topics"] else []
    row.update(page_fields(url, ref))
    return [d.as_json() for d in decide(found, row, account or aid)]
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    q = parse_qs(scope["query_string"].decode())
    g = lambda k: (q.get(k) or [None])[0]
    ip = dict(scope["headers"]).get(b"x-forwarded-for", b"").decode() or None
    body = orjson.dumps({"decisions": await asyncio.to_thread(one, ip, g("aid"), g("url"),
                                                                g("ref"))})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(url: str, path: str = "/healthz", timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url + path, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"no server at {url}")


def visitors(directory: Path, n: int, seed: int) -> list[dict[str, str]]:
    r = random.Random(seed)
    with demandloop.open(directory) as ws, ws.store.reader() as cur:
        ranges = cur.execute("SELECT start_ip, end_ip FROM ip_ranges USING SAMPLE 5000 "
                             "ROWS").fetchall()
        anons = [a for (a,) in cur.execute(
            "SELECT substr(identifier, 6) FROM person_identifiers WHERE kind = 'anon' "
            "USING SAMPLE 5000 ROWS").fetchall()]

    def quad(k: int) -> str:
        return ".".join(str((k >> s) & 255) for s in (24, 16, 8, 0))

    pages = ["https://site.example/", "https://site.example/pricing",
             "https://site.example/blog/abm?utm_source=linkedin&utm_medium=paid_social",
             "https://site.example/customers?utm_source=google"]
    out = []
    for i in range(n):
        v = {"url": r.choice(pages), "ref": r.choice(["", "https://www.google.com/"])}
        kind = i % 4
        if kind in (0, 1):
            lo, hi = r.choice(ranges)
            v["ip"] = quad(r.randint(lo, hi))
        else:
            v["ip"] = quad(r.randint(1 << 24, 223 << 24))
            if kind == 3:
                v["aid"] = r.choice(anons)
        out.append(v)
    return out


async def _load(url: str, key: str | None, visits: list[dict[str, str]], rate: float,
                seconds: float) -> tuple[list[float], int]:
    """Open-loop requests at *rate*/s for *seconds*: latencies (ms, from each request's
    scheduled time, so a server that falls behind is charged its queue) and failures.

    Hand-written HTTP/1.1 over asyncio streams on keep-alive connections: httpx's client
    spent about a millisecond of CPU per request, which at 1,000 requests/s on two cores
    made the client's own queue most of the measured tail."""
    host, port = url.removeprefix("http://").split(":")
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    failed = 0

    def request(v: dict[str, str]) -> bytes:
        params = {k: v[k] for k in ("url", "ref", "aid") if k in v}
        if key:
            params["k"] = key
        return (f"GET /v1/decide?{urlencode(params)} HTTP/1.1\r\nHost: {host}\r\n"
                f"X-Forwarded-For: {v['ip']}\r\n\r\n").encode()

    async def one(raw: bytes, due: float) -> None:
        nonlocal failed
        ok = False
        for attempt in range(2):
            # a kept-alive connection the server closed meanwhile (after its keep-alive
            # timeout) fails at once: retried on a new one, as any HTTP client does
            reused = bool(idle) and attempt == 0
            conn = idle.pop() if reused else await asyncio.open_connection(host, int(port))
            reader, writer = conn
            try:
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                ok = head.startswith(b"HTTP/1.1 200") and body.startswith(b'{"decisions"')
                idle.append(conn)
                break
            except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
                writer.close()
                if not reused:
                    break
        latencies.append((time.perf_counter() - due) * 1000)
        failed += not ok

    raws = [request(v) for v in visits]
    # This process built the store (pandas, Ibis, DuckDB are loaded): a full collection of
    # its heap paused the sender for ~100 ms, and every request due meanwhile was charged
    # the pause. The sender's few objects need no collector for a run of seconds.
    gc.collect()
    gc.freeze()
    gc.disable()
    tasks = []
    start = time.perf_counter() + 0.2
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(raws[i % len(raws)], due)))
    await asyncio.gather(*tasks)
    gc.enable()
    for _, writer in idle:
        writer.close()
    return latencies, failed


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=1000)[int(q * 1000) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # simulated accounts: about 60 % reach the CRM, so 170k make ~100k accounts in the store
    ap.add_argument("--accounts", type=int, default=170_000)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--experiences", type=int, default=50)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-baseline", action="store_true", help="measure decide only")
    ap.add_argument("--keep", type=Path, help="build the store in this folder and keep it; "
                    "a later run with the same folder reuses it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dl-decide-") as scratch:
        tmp = str(args.keep or scratch)
        started = time.perf_counter()
        d = Path(tmp) / "ws"
        if not (args.keep and (d / "experiences").is_dir()):
            Path(tmp).mkdir(parents=True, exist_ok=True)
            build(Path(tmp), args.accounts, args.days, args.copies, args.seed)
            (d / "experiences").mkdir()
            (d / "demandloop.toml").write_text(
                '[collector]\ntrusted_proxies = ["127.0.0.1/32"]\n')
            with demandloop.open(d) as ws:
                ws.resolve()
                ws.score()
        (d / "experiences" / "bench.toml").write_text(experiences(args.experiences, args.seed))
        with demandloop.open(d) as ws:
            accounts = ws.store.table_counts()["accounts"]
        key, _ = keystore.create(d, "default", "bench")
        visits = visitors(d, 20_000, args.seed)
        print(f"store: {accounts:,} accounts, {args.experiences} experiences, ready in "
              f"{time.perf_counter() - started:.0f} s")

        port = _port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "access.log"
        server = subprocess.Popen([sys.executable, "-m", "demandloop", "-w", str(d), "serve",
                                   "--port", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=log.open("wb"))
        try:
            _up(url)
            asyncio.run(_load(url, key, visits, 200, 2))  # warm up
            quiet, _ = asyncio.run(_load(url, key, visits, 50, 10))
            ours, failed = asyncio.run(_load(url, key, visits, args.rate, args.seconds))
            decided = sum(1 for v in visits[:2000] if httpx.get(
                url + "/v1/decide", params={"k": key, "url": v["url"]},
                headers={"x-forwarded-for": v["ip"]}).json()["decisions"])
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
        inside = [json.loads(line)["ms"] for line in log.read_text().splitlines()
                  if '"/v1/decide"' in line]

        if args.no_baseline:
            _report(ours, failed, inside, decided, args.rate, [], 0)
            return
        base_port = _port()
        base_url = f"http://127.0.0.1:{base_port}"
        baseline = subprocess.Popen([sys.executable, "-c", _BASELINE, str(d), str(base_port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _up(base_url, "/v1/decide")
            asyncio.run(_load(base_url, None, visits, 20, 2))
            base_quiet, _ = asyncio.run(_load(base_url, None, visits, 50, 10))
            t0 = time.perf_counter()
            theirs, base_failed = asyncio.run(_load(base_url, None, visits, args.rate,
                                                    args.seconds))
            served = len(theirs) / (time.perf_counter() - t0)
        finally:
            baseline.send_signal(signal.SIGTERM)
            baseline.wait(timeout=60)
    _report(ours, failed, inside, decided, args.rate, theirs, base_failed)
    print(f"unloaded (50 requests/s): decide p50 {_pct(quiet, 0.5):.2f} ms, p99 "
          f"{_pct(quiet, 0.99):.2f} ms; the baseline p50 {_pct(base_quiet, 0.5):.2f} ms, p99 "
          f"{_pct(base_quiet, 0.99):.2f} ms ({_pct(base_quiet, 0.99) / _pct(quiet, 0.99):.1f}x)")
    print(f"the baseline answered {served:,.0f} requests/s at most: at {args.rate:,.0f}/s its "
          "latency is its queue")


def _report(ours: list[float], failed: int, inside: list[float], decided: int, rate: float,
            theirs: list[float], base_failed: int) -> None:
    print(f"decide ({len(ours):,} requests at {rate:,.0f}/s, {decided / 20:.0f} % of "
          f"visits got a decision, {failed} failed): p50 {_pct(ours, 0.5):.2f} ms, "
          f"p99 {_pct(ours, 0.99):.2f} ms, max {max(ours):.1f} ms")
    print(f"  inside the server (its access log): p50 {_pct(inside, 0.5):.2f} ms, "
          f"p99 {_pct(inside, 0.99):.2f} ms")
    if not theirs:
        return
    print(f"baseline, DuckDB per request ({base_failed} failed): p50 "
          f"{_pct(theirs, 0.5):.2f} ms, p99 {_pct(theirs, 0.99):.2f} ms")
    print(f"ratio: p99 {_pct(theirs, 0.99) / _pct(ours, 0.99):.1f}x lower than the baseline's "
          f"at the same load")


if __name__ == "__main__":
    main()

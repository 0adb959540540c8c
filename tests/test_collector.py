"""The collector with real SDKs: Segment's and RudderStack's Python clients against a live
`demandloop serve`, auth, limits, errors, keys, retries after a forced 503."""

from __future__ import annotations

import gzip
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from demandloop.serve import keys as keystore
from tests.collector_helpers import collector, metric_values


def _events(run, where: str = "true") -> dict[str, dict]:  # type: ignore[no-untyped-def]
    rows = run.query("SELECT message_id, type, event, user_id, anonymous_id, group_id, "
                     f"properties, traits, context, url, utm_source FROM events_full WHERE {where}")
    cols = ("message_id", "type", "event", "user_id", "anonymous_id", "group_id",
            "properties", "traits", "context", "url", "utm_source")
    out = {}
    for r in rows:
        d = dict(zip(cols, r, strict=True))
        for k in ("properties", "traits", "context"):
            d[k] = json.loads(d[k]) if d[k] else None
        out[d["message_id"]] = d
    return out


def _send_all(client, tag: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """One of each call the SDKs make; returns messageId -> kind."""
    ids = {}
    _, m = client.identify("user-1", {"email": "ana@acme.com", "title": "CFO"},
                           context={"ip": "10.1.2.3"})
    ids[m["messageId"]] = "identify"
    _, m = client.track("user-1", "Demo Requested", {"plan": "pro", "seats": 12},
                        context={"campaign": {"source": "linkedin"}})
    ids[m["messageId"]] = "track"
    _, m = client.group("user-1", "acme.com", {"name": "Acme", "employees": 500})
    ids[m["messageId"]] = "group"
    _, m = client.page("user-1", name=f"Pricing {tag}",
                       properties={"url": "https://vendor.io/pricing?utm_source=g2",
                                   "path": "/pricing"})
    ids[m["messageId"]] = "page"
    return ids


def test_segment_python_sdk_events_arrive_once_with_traits_and_context(tmp_path: Path) -> None:
    from segment.analytics import Client

    with collector(tmp_path / "w") as run:
        client = Client(write_key=run.key, host=run.url, max_retries=3, upload_interval=0.05)
        ids = _send_all(client, "segment")
        client.flush()
        client.join()
        run.wait_loaded()
        got = _events(run)
    assert set(got) == set(ids) and len(got) == 4
    by_kind = {ids[k]: v for k, v in got.items()}
    assert by_kind["identify"]["traits"] == {"email": "ana@acme.com", "title": "CFO"}
    assert by_kind["identify"]["context"]["ip"] == "10.1.2.3"
    assert by_kind["identify"]["context"]["library"]["name"] == "analytics-python"
    assert by_kind["track"]["event"] == "Demo Requested"
    assert by_kind["track"]["properties"] == {"plan": "pro", "seats": 12}
    assert by_kind["track"]["utm_source"] == "linkedin"
    assert by_kind["group"]["group_id"] == "acme.com"
    assert by_kind["group"]["traits"]["employees"] == 500
    assert by_kind["page"]["url"] == "https://vendor.io/pricing?utm_source=g2"
    assert by_kind["page"]["utm_source"] == "g2"


def test_rudder_python_sdk_gzip_and_context_traits(tmp_path: Path) -> None:
    from rudderstack.analytics.client import Client

    with collector(tmp_path / "w") as run:
        client = Client(write_key=run.key, host=run.url, max_retries=3, upload_interval=0.05,
                        gzip=True)
        ids = _send_all(client, "rudder")
        client.flush()
        client.join()
        run.wait_loaded()
        got = _events(run)
    assert set(got) == set(ids)
    by_kind = {ids[k]: v for k, v in got.items()}
    # Rudder puts identify traits in context.traits: they land as the event's traits
    assert by_kind["identify"]["traits"] == {"email": "ana@acme.com", "title": "CFO"}
    assert by_kind["identify"]["context"]["library"]["name"] == "analytics-python"
    assert by_kind["track"]["properties"] == {"plan": "pro", "seats": 12}
    assert by_kind["group"]["group_id"] == "acme.com"


def test_a_string_cut_inside_an_emoji_costs_nothing_of_its_batch(tmp_path: Path) -> None:
    """Python's json.dumps (as analytics.js's JSON.stringify) writes half of a surrogate
    pair as an escape: valid JSON text, which orjson refuses. Segment's API takes it as
    U+FFFD; a 400 here lost the whole batch (and Rudder's SDK re-sends it)."""
    from rudderstack.analytics.client import Client

    cut = "Caf\u00e9 \U0001f600"[:-1] + "\ud83d"  # an emoji's first half, as a slice leaves it
    with collector(tmp_path / "w") as run:
        client = Client(write_key=run.key, host=run.url, max_retries=1, upload_interval=0.5,
                        gzip=True)
        ids = [client.track("user-1", f"Searched {i}",
                            {"q": cut if i == 1 else "ok \U0001f600", "i": i})[1]["messageId"]
               for i in range(3)]
        client.flush()
        client.join()
        run.wait_loaded()
        got = _events(run)
        # the same by hand, the escape in a key too: one answer, 200
        body = ('{"batch":[{"type":"track","userId":"u","event":"x","properties":'
                '{"\\udc00k":"a\\ud800b"}}]}')
        answer = httpx.post(f"{run.url}/v1/batch", content=body, auth=(run.key, ""),
                            headers={"content-type": "application/json"})
        assert answer.status_code == 200, answer.text
        bad = httpx.post(f"{run.url}/v1/batch", auth=(run.key, ""),
                         content='{"batch":[{"type":"track","userId":"\\ud800","event":NaN}]}',
                         headers={"content-type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
        # Latin-1 is not mended: said in words (orjson's "str is not valid UTF-8:
        # surrogates not allowed" read as if the surrogates were the fault)
        latin = httpx.post(f"{run.url}/v1/track", auth=(run.key, ""),
                           content='{"userId": "u", "event": "Caf\u00e9"}'.encode("latin-1"),
                           headers={"content-type": "application/json; charset=iso-8859-1"})
        assert latin.status_code == 400
        assert latin.json()["error"]["message"] == (
            "the body is not valid JSON: it is not UTF-8 text (JSON is sent as UTF-8, "
            "whatever the charset says)")
        run.wait_loaded()
        mended = _events(run, "user_id = 'u'")
    assert set(got) == set(ids)
    by_i = {v["properties"]["i"]: v for v in got.values()}
    assert by_i[1]["properties"]["q"] == "Caf\u00e9 \ufffd"
    assert by_i[0]["properties"]["q"] == "ok \U0001f600"  # a whole pair stays the emoji
    assert [v["properties"] for v in mended.values()] == [{"\ufffdk": "a\ufffdb"}]


@pytest.mark.parametrize("sdk", ["segment", "rudder"])
def test_a_forced_503_is_retried_and_stored_once(tmp_path: Path, sdk: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if sdk == "segment":
        from segment.analytics import Client
    else:
        from rudderstack.analytics.client import Client  # type: ignore[no-redef]

    with collector(tmp_path / "w") as run:
        log = run.state.log
        real = log._write
        failures = {"left": 2}

        def flaky(data: bytes) -> None:
            real(data)  # the bytes reach the log: a retry must not duplicate them
            if failures["left"]:
                failures["left"] -= 1
                raise OSError(5, "Input/output error")

        monkeypatch.setattr(log, "_write", flaky)
        seen = []
        client = Client(write_key=run.key, host=run.url, max_retries=5, upload_interval=0.05,
                        on_error=lambda e, batch: seen.append(e))
        ids = _send_all(client, "retry")
        client.flush()
        client.join()
        run.wait_loaded()
        got = run.query("SELECT message_id, count(*) FROM events GROUP BY 1")
    assert failures["left"] == 0 and seen == []
    assert dict(got) == dict.fromkeys(ids, 1)


def test_the_ruby_and_java_sdks_older_batch_path_is_a_batch(tmp_path: Path) -> None:
    """analytics-ruby and analytics-java post their batches to /v1/import (Segment's older
    name for /v1/batch): each of their events was answered 404 and lost."""
    with collector(tmp_path / "w") as run:
        body = {"sentAt": "2026-12-07T10:00:00.000Z", "batch": [
            {"type": "identify", "userId": "rb-1", "messageId": "rb-i",
             "traits": {"email": "ann@acme.com"}, "context": {"library": {
                 "name": "analytics-ruby", "version": "2.4.0"}}},
            {"type": "track", "userId": "rb-1", "messageId": "rb-t", "event": "Signed Up",
             "timestamp": "2026-12-07T09:59:59.000Z"}]}
        r = httpx.post(run.url + "/v1/import", json=body, auth=(run.key, ""))
        assert (r.status_code, r.json()) == (200, {"success": True}), r.text
        assert httpx.get(run.url + "/v1/import", auth=(run.key, "")).status_code == 405
        run.wait_loaded()
        got = _events(run)
    assert {k: (v["type"], v["user_id"]) for k, v in got.items()} == {
        "rb-i": ("identify", "rb-1"), "rb-t": ("track", "rb-1")}
    assert got["rb-i"]["traits"] == {"email": "ann@acme.com"}


def test_a_client_clock_years_ahead_is_stored_at_receipt(tmp_path: Path) -> None:
    with collector(tmp_path / "w") as run:
        ahead = {"type": "track", "event": "E", "userId": "u", "messageId": "ahead",
                 "timestamp": "2099-01-01T00:00:00Z"}
        r = httpx.post(run.url + "/v1/batch", json={"batch": [ahead]}, auth=(run.key, ""))
        assert r.status_code == 200, r.text
        run.wait_loaded()
        (ts, received, sent), = run.query(
            "SELECT timestamp, received_at, original_timestamp FROM events_full "
            "WHERE message_id = 'ahead'")
    assert str(ts) == str(received) and str(sent).startswith("2099-01-01")


def test_auth_limits_and_error_shape(tmp_path: Path) -> None:
    toml = "[collector]\nmax_request_bytes = 100000\nrate_limit = 50\nrate_burst = 60\n"
    with collector(tmp_path / "w", toml) as run:
        url, key = run.url, run.key
        msg = {"type": "track", "event": "E", "userId": "u"}
        # wrong key, no key: 401 and nothing written
        for auth in (("nope", ""), None):
            r = httpx.post(url + "/v1/batch", json={"batch": [msg]}, auth=auth)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_write_key"
        # an endpoint asked with the wrong method: 405 naming the one that works
        for method, path in (("GET", "/v1/batch"), ("HEAD", "/v1/t"), ("PUT", "/v1/track")):
            r = httpx.request(method, url + path, auth=(key, ""))
            assert r.status_code == 405 and r.headers["allow"] == "POST", (method, path)
        assert httpx.get(url + "/v1/nonsense").status_code == 404
        # writeKey in a text/plain body (analytics.js) on a short path
        r = httpx.post(url + "/v1/t", content=json.dumps({**msg, "writeKey": key}),
                       headers={"Content-Type": "text/plain"})
        assert r.status_code == 200 and r.json() == {"success": True}
        # over the request size (raw, and once decompressed): 413
        big = {"batch": [{**msg, "properties": {"x": "y" * 40000}}] * 3}
        r = httpx.post(url + "/v1/batch", json=big, auth=(key, ""))
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        assert "over 100,000 bytes" in r.json()["error"]["message"]
        # one event over 32 KB in a request under the limit: 413 naming the event
        r = httpx.post(url + "/v1/batch", json={"batch": [msg, big["batch"][0]]}, auth=(key, ""))
        assert r.status_code == 413
        assert r.json()["error"]["problems"][0].startswith("batch[1]: message is 400")
        bomb = gzip.compress(json.dumps({"batch": [msg], "pad": "0" * 500_000}).encode())
        r = httpx.post(url + "/v1/batch", content=bomb, auth=(key, ""),
                       headers={"Content-Encoding": "gzip"})
        assert r.status_code == 413
        r = httpx.post(url + "/v1/batch", content=b"{not json", auth=(key, ""))
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        r = httpx.post(url + "/v1/batch", json={"batch": [msg, {"type": "track", "userId": "u"}]},
                       auth=(key, ""))
        assert r.status_code == 400
        assert r.json()["error"]["problems"] == ['batch[1]: track needs "event"']
        r = httpx.post(url + "/v1/batch", content=b"garbage", auth=(key, ""),
                       headers={"Content-Encoding": "gzip"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_gzip"
        # rate: 60 at once is the burst, the next ones wait
        r = httpx.post(url + "/v1/batch", json={"batch": [msg] * 55}, auth=(key, ""))
        assert r.status_code == 200
        r = httpx.post(url + "/v1/batch", json={"batch": [msg] * 20}, auth=(key, ""))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"
        assert httpx.post(url + "/v1/m", content=b"{}").status_code == 200  # ignored
        run.wait_loaded()
        assert run.query("SELECT count(*) FROM events") == [(56,)]
        metrics = httpx.get(url + "/metrics").text
        assert 'demandloop_events_total{outcome="accepted"} 56.0' in metrics
        assert "demandloop_request_seconds_bucket" in metrics
        assert httpx.get(url + "/readyz").status_code == 200


def test_keys_revoked_within_a_second(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    with collector(tmp_path / "w") as run:
        code, out, _ = cli("-w", str(run.directory), "keys", "create", "--name", "web",
                           "--json")
        key = json.loads(out)["key"]
        body = {"batch": [{"type": "page", "anonymousId": "a"}]}
        time.sleep(0.2)
        assert httpx.post(run.url + "/v1/batch", json=body, auth=(key, "")).status_code == 200
        code, out, _ = cli("-w", str(run.directory), "keys", "list", "--json")
        assert code == 0 and {k["name"] for k in json.loads(out)} == {"tests", "web"}
        assert cli("-w", str(run.directory), "keys", "revoke", key[:10])[0] == 0
        time.sleep(0.3)
        assert httpx.post(run.url + "/v1/batch", json=body, auth=(key, "")).status_code == 401
        stored = (run.directory / keystore.KEYS_FILE).read_text()
        assert key not in stored  # only a hash is kept
        code, _, err = cli("-w", str(run.directory), "keys", "revoke", "dl_nothere")
        assert code != 0 and "no write key" in err


def test_access_log_is_one_json_line_per_request(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with collector(tmp_path / "w") as run, caplog.at_level(logging.INFO, "demandloop.access"):
        httpx.get(run.url + "/healthz")
    lines = [json.loads(r.message) for r in caplog.records if r.name == "demandloop.access"]
    assert lines and lines[-1]["path"] == "/healthz" and lines[-1]["status"] == 200
    assert lines[-1]["method"] == "GET" and lines[-1]["ms"] >= 0


def test_the_server_resolves_and_scores_what_it_collects(tmp_path: Path, market: Path) -> None:
    """The loop runs while serving: events in over HTTP, accounts scored, no restart."""
    with collector(tmp_path / "w", maintain_every=0.3) as run:
        for kind in ("accounts", "contacts"):
            run.ws.import_crm(kind, market / f"{kind}.csv")
        run.ws.import_ip_ranges(market / "ip_ranges.csv")
        lines = (market / "events.jsonl").read_text().splitlines()
        with httpx.Client() as client:
            for i in range(0, len(lines), 400):
                body = "{\"batch\": [" + ",".join(lines[i:i + 400]) + "]}"
                r = client.post(run.url + "/v1/batch", content=body, auth=(run.key, ""),
                                timeout=30)
                assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        scored: list[tuple[Any, ...]] = [(0,)]
        while time.monotonic() < deadline:
            scored = run.query("SELECT count(*) FROM scores WHERE entity = 'account'")
            loaded = run.query("SELECT count(*) FROM events")[0][0]
            if scored[0][0] and loaded == len(lines) and run.loader.status.get(
                    "maintained_at", 0) > 0 and not run.loader._loaded_since:
                break
            time.sleep(0.2)
        accounts = run.query("SELECT count(*) FROM accounts")[0][0]
        touched = run.query("SELECT count(DISTINCT account_id) FROM touches")[0][0]
    assert loaded == len(lines)
    assert touched > 0 and scored[0][0] >= min(accounts, touched)
    assert run.loader.status.get("maintenance_error") is None


def test_a_first_identify_alone_runs_the_loop_without_an_error(tmp_path: Path) -> None:
    """A new site's first calls may all be identifies: no touch to score yet. Every run of
    the loop failed ("no touches to score", a traceback in the log and /readyz's reason)
    until a page view came."""
    with collector(tmp_path / "w", maintain_every=0.1) as run:
        r = httpx.post(run.url + "/v1/identify", auth=(run.key, ""), json={
            "userId": "u1", "traits": {"email": "ann@acme.example"}, "messageId": "id-1"})
        assert r.status_code == 200, r.text
        # (the loader's own thread loads it, which is what starts a run of the loop)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not run.loader.status.get("maintenance") \
                and not run.loader.status.get("maintenance_error"):
            time.sleep(0.1)
        assert run.loader.status.get("maintenance_error") is None
        assert run.loader.status["maintenance"]["score_mode"] == "none"
        assert run.query("SELECT count(*) FROM events") == [(1,)]


def test_metrics_report_the_live_loops_runs() -> None:
    """/metrics reads the live loop's last run and its rescores by mode from the loader's
    status (the process's own, or the status file a worker reads)."""
    from demandloop.serve.metrics import Metrics

    before = metric_values(Metrics().render(0, {"heartbeat": 0}).decode())
    assert before["demandloop_loop_seconds"] == 0.0
    assert not [k for k in before if k.startswith("demandloop_live_rescores")]
    status = {"heartbeat": 0, "maintenance_seconds": 1.25, "rest_seconds": 2.5,
              "maintained_at": 1_765_000_000.0,
              "maintenance": {"resolve_seconds": 0.4, "score_seconds": 0.7,
                              "score_mode": "incremental", "accounts": 150, "recomputed": 12,
                              "rescores": {"incremental": 7, "full": 2}}}
    got = metric_values(Metrics().render(0, json.loads(json.dumps(status))).decode())
    assert got["demandloop_loop_seconds"] == 1.25
    assert got["demandloop_loop_rest_seconds"] == 2.5
    assert got["demandloop_loop_last_run_timestamp_seconds"] == 1_765_000_000.0
    assert got['demandloop_loop_step_seconds{step="resolve"}'] == 0.4
    assert got['demandloop_loop_step_seconds{step="score"}'] == 0.7
    assert got['demandloop_live_rescores{mode="incremental"}'] == 7
    assert got['demandloop_live_rescores{mode="full"}'] == 2
    assert got["demandloop_rescore_accounts_recomputed"] == 12

"""Workflows: stage change -> route -> alert, against a local HTTP receiver; idempotent runs,
retries with backoff, the dead letter list, signed webhooks, and a crash mid-run."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import demandloop
from demandloop.errors import ConfigError
from demandloop.outbound import webhooks
from tests.conftest import load_market


class Receiver:
    """A local HTTP endpoint recording every POST; can be told to fail the next N."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.fail_next = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail_next > 0:
                    outer.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.got.append({"path": self.path, "headers": dict(self.headers),
                                  "body": body})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.httpd.shutdown()


FLOWS = """
[activate]
max_signal_age_days = 0  # the simulated market lies in the past
max_attempts = 3
retry_base_seconds = 60

[[activate.workflows]]
name = "mqa-alert"
when = {{trigger = "stage_changed", to = "mqa"}}
if = [{{field = "target", op = "==", value = true}}]
then = [
  {{action="assign", strategy="round_robin", owners=["ana", "ben"], respect_existing=false}},
  {{action = "create_task", title = "Call {{name}} today", due_days = 1}},
  {{action = "notify", url = "{url}/slack", format = "slack"}},
]
"""


@pytest.fixture
def scored(market: Path, tmp_path: Path) -> Path:
    return load_market(tmp_path / "w", market)


def _expected(ws: demandloop.Workspace) -> set[tuple[str, str]]:
    """Independently: target accounts with a stage change into mqa, and when."""
    rows = ws.store.con.execute(
        "SELECT c.entity_id, c.changed_at::VARCHAR FROM stage_changes c JOIN accounts a ON "
        "a.account_id = c.entity_id WHERE c.entity = 'account' AND c.to_stage = 'mqa' "
        "AND a.target").fetchall()
    return set(rows)


def test_stage_change_routes_creates_a_task_and_alerts_once(scored: Path,
                                                            receiver: Receiver) -> None:
    (scored / "demandloop.toml").write_text(FLOWS.format(url=receiver.url))
    with demandloop.open(scored) as ws:
        expected = _expected(ws)
        assert expected
        r = ws.run_workflows()
        assert r.fired == len(expected) and r.dead == 0
        assert r.done == 3 * len(expected)
        assert len(receiver.got) == len(expected)
        names = dict(ws.store.con.execute("SELECT account_id, name FROM accounts").fetchall())
        owners = dict(ws.store.con.execute("SELECT account_id, owner FROM accounts").fetchall())
        alerted = {}
        for hit in receiver.got:
            text = json.loads(hit["body"])["blocks"][0]["text"]["text"]
            account = next(a for a, _ in expected if f"({a})" in text)
            alerted[account] = text
            assert names[account] in text and "became mqa" in text
            assert f"Owner: {owners[account]}" in text  # the alert names the new owner
            assert "Top signals:" in text and "Buying-committee gaps:" in text
        assert set(alerted) == {a for a, _ in expected}
        assert {owners[a] for a in alerted} <= {"ana", "ben"}
        if len(alerted) > 1:
            assert {owners[a] for a in alerted} == {"ana", "ben"}  # round robin
        tasks = ws.store.con.execute("SELECT account_id, title FROM tasks").fetchall()
        assert {(a, f"Call {names[a]} today") for a in alerted} == set(tasks)
        # a second run finds nothing new: no second alert, no second task
        again = ws.run_workflows()
        assert (again.fired, again.enqueued, again.done) == (0, 0, 0)
        assert len(receiver.got) == len(expected)
        keys = [h["headers"]["Idempotency-Key"] for h in receiver.got]
        assert len(set(keys)) == len(keys)
        trail = ws.workflow_history(next(iter(alerted)))
        assert list(trail.sort_values("step")["action"]) == ["assign", "create_task", "notify"]
        assert set(trail["status"]) == {"done"}
        # the account as a person types it: the same trail (it was an empty table)
        typed = ws.workflow_history(f"https://www.{next(iter(alerted)).upper()}/")
        assert typed.equals(trail)


def test_a_backtest_into_the_recorded_history_fires_nothing(scored: Path, receiver: Receiver,
                                                             cli) -> None:  # type: ignore[no-untyped-def]
    """`score --as-of` a date inside the recorded stage history wrote its stage changes
    beside the ones recorded after it (each move twice), and workflows fired on them as
    new signals: alerts and enrolments for stages reached weeks before."""
    (scored / "demandloop.toml").write_text(FLOWS.format(url=receiver.url))
    with demandloop.open(scored) as ws:
        ws.run_workflows()
        sent = len(receiver.got)
        (first, last), = ws.store.con.execute(
            "SELECT min(changed_at), max(changed_at) FROM stage_changes").fetchall()
        history = ws.store.con.execute(
            "SELECT * FROM stage_changes ORDER BY seq").fetchall()
    inside = (first + (last - first) / 2).strftime("%Y-%m-%dT%H:%M:%S")
    code, out, err = cli("-w", str(scored), "score", "--as-of", inside, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["stage_changes"] > 0 and result["changes_recorded"] is False
    with demandloop.open(scored) as ws:
        assert ws.store.con.execute(
            "SELECT * FROM stage_changes ORDER BY seq").fetchall() == history
        # the backtest's snapshot is kept to read; the latest scores are still the latest
        assert ws.store.con.execute("SELECT count(*) FROM scores WHERE as_of = ?",
                                    [dt.datetime.fromisoformat(inside)]).fetchone()[0] > 0
        again = ws.run_workflows()
        assert (again.fired, again.enqueued) == (0, 0) and len(receiver.got) == sent
    # a score after the history extends it, as before
    code, out, _ = cli("-w", str(scored), "score", "--json")
    assert code == 0 and json.loads(out)["changes_recorded"] is True


def test_the_history_of_an_account_with_none_says_so(scored: Path, cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("-w", str(scored), "workflows", "history", "--account", "nosuch.example")
    assert code == 0 and out == ""
    assert err.startswith("no workflow action for account 'nosuch.example'")


def test_failures_back_off_then_go_to_the_dead_letter_list(scored: Path,
                                                           receiver: Receiver) -> None:
    (scored / "demandloop.toml").write_text(FLOWS.format(url=receiver.url))
    now = dt.datetime(2030, 1, 1)
    with demandloop.open(scored) as ws:
        n = len(_expected(ws))
        receiver.fail_next = n  # every first attempt fails
        r = ws.run_workflows(now=now)
        assert r.retried == n and receiver.got == []
        # not due yet: nothing is retried before the backoff
        assert ws.run_workflows(now=now + dt.timedelta(seconds=30)).done == 0
        r = ws.run_workflows(now=now + dt.timedelta(seconds=61))
        assert r.done == n and len(receiver.got) == n
        # a receiver that is always down: 3 attempts, then dead, later steps skipped
        (scored / "demandloop.toml").write_text(FLOWS.format(url=receiver.url).replace(
            'name = "mqa-alert"', 'name = "mqa-alert-2"').replace(
            "/slack", "/down").replace(', "ben"]', "]"))
    with demandloop.open(scored) as ws:
        ws.store.con.execute("DELETE FROM workflow_cursors")  # evaluate history again
        receiver.fail_next = 10**6
        t = now + dt.timedelta(days=1)
        ws.run_workflows(now=t)
        ws.run_workflows(now=t + dt.timedelta(seconds=61))
        ws.run_workflows(now=t + dt.timedelta(seconds=61 + 121))
        status = dict(ws.store.con.execute(
            "SELECT status, count(*) FROM jobs WHERE workflow = 'mqa-alert-2' AND "
            "action = 'notify' GROUP BY 1").fetchall())
    assert status == {"dead": n}


def test_a_stage_change_written_at_the_cursors_time_still_fires(
        scored: Path, receiver: Receiver) -> None:
    """A rescore's time is its newest touch: when a batch brings no newer one (an event
    from a visitor whose clock is behind), its stage changes are written at the same time
    as the last rescore's, where the workflows' cursor already is. They still fire, once;
    those already fired do not fire again."""
    (scored / "demandloop.toml").write_text(FLOWS.format(url=receiver.url))
    with demandloop.open(scored) as ws:
        first = ws.run_workflows()
        assert first.fired == len(_expected(ws)) > 0
        at = ws.store.con.execute("SELECT max(changed_at) FROM stage_changes").fetchone()[0]
        (late,) = ws.store.con.execute(
            "SELECT account_id FROM accounts WHERE target AND account_id NOT IN (SELECT "
            "entity_id FROM stage_changes WHERE to_stage = 'mqa') ORDER BY 1 LIMIT 1"
        ).fetchone()
        # as a rescore writes it (score.snapshot)
        ws.store.con.execute("INSERT INTO stage_changes VALUES ('default', 'account', ?, "
                             "'engaged', 'mqa', ?, '[]', nextval('stage_change_seq'))",
                             [late, at])
        again = ws.run_workflows()
        assert (again.fired, again.enqueued) == (1, 3)
        assert len(receiver.got) == first.fired + 1
        assert f"({late})" in json.loads(receiver.got[-1]["body"])["blocks"][0]["text"]["text"]
        assert ws.run_workflows().fired == 0


def test_signed_webhook_on_an_event_and_exactly_once_across_a_crash(
        scored: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    (scored / "demandloop.toml").write_text(f"""
[activate]
max_signal_age_days = 0
[[activate.workflows]]
name = "demo-request"
when = {{trigger = "event", event = "Demo Requested"}}
then = [
  {{action="notify", url="{receiver.url}/hook", format="webhook", secret_env="DL_TEST_SECRET"}},
]
""")
    monkeypatch.setenv("DL_TEST_SECRET", "s3cret")
    calls = {"n": 0}

    def crashing_post(url: str, body: bytes, headers: dict[str, str]) -> int:
        calls["n"] += 1
        if calls["n"] == 3:  # the process dies before the third request leaves
            raise KeyboardInterrupt
        return webhooks.post(url, body, headers)

    with demandloop.open(scored) as ws:
        demos = ws.store.con.execute(
            "SELECT count(*) FROM events e JOIN touches t USING (message_id) "
            "WHERE e.event = 'Demo Requested' AND t.account_id IS NOT NULL").fetchone()[0]
        assert demos >= 3
        with pytest.raises(KeyboardInterrupt):
            ws.run_workflows(post=crashing_post)
    with demandloop.open(scored) as ws:  # restarted: the rest, and nothing twice
        ws.run_workflows()
    keys = [h["headers"]["Idempotency-Key"] for h in receiver.got]
    assert len(keys) == len(set(keys)) == demos
    for hit in receiver.got:
        signature = hit["headers"]["X-Demandloop-Signature"]
        ts, v1 = (p.split("=", 1)[1] for p in signature.split(","))
        mac = hmac.new(b"s3cret", f"{ts}.".encode() + hit["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(mac, v1)
        body = json.loads(hit["body"])
        assert body["account"]["why"].startswith("Demo Requested")


def test_bad_workflows_are_config_errors(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "w"
    d.mkdir()
    (d / "demandloop.toml").write_text("""
[[activate.workflows]]
name = "x"
when = {trigger = "stage_changed"}
then = [{action = "notify", url = "http://x"}]
""")
    code, _, err = cli("-w", str(d), "workflows", "validate")
    assert code == 2 and "trigger 'stage_changed' needs to" in err
    (d / "demandloop.toml").write_text("")
    (d / "workflows").mkdir()
    (d / "workflows" / "a.toml").write_text("""
[[workflows]]
name = "y"
when = {trigger = "surge"}
if = [{field = "colour", op = "==", value = "red"}]
then = [{action = "assign", strategy = "fixed", owners = ["ana"]}]
""")
    code, _, err = cli("-w", str(d), "workflows", "validate")
    assert code == 2 and "unknown account field 'colour'" in err and "a.toml" in err
    # the table by its name and its place counted from 1 (pydantic's '0.if' before)
    assert "invalid workflow 'y' (table 1 of [[workflows]]): unknown account field" in \
        " ".join(err.split())
    (d / "workflows" / "a.toml").write_text("""
[[workflows]]
name = "y"
when = {trigger = "surge"}
then = [{action = "assign", strategy = "fixed", owners = ["ana"]}]
""")
    code, out, _ = cli("-w", str(d), "workflows", "validate")
    assert code == 0 and "1 workflow(s) valid: y" in out
    # a signing secret not set where the workflows run: its webhooks went unsigned
    (d / "demandloop.toml").write_text("""
[[activate.workflows]]
name = "signed"
when = {trigger = "surge"}
[[activate.workflows.then]]
action = "notify"
url = "https://hooks.example.com/x"
format = "webhook"
secret_env = "DL_TEST_UNSET_SECRET"
""")
    code, _, err = cli("-w", str(d), "workflows", "validate")
    assert code == 2 and "secret_env names DL_TEST_UNSET_SECRET, which is not set" in err
    (d / "demandloop.toml").write_text("")
    with pytest.raises(ConfigError):
        (d / "workflows" / "b.toml").write_text((d / "workflows" / "a.toml").read_text())
        with demandloop.open(d) as ws:
            ws.workflows()


def test_serve_fires_event_workflows_live_from_a_segment_client(
        scored: Path, receiver: Receiver) -> None:
    """A "Demo Requested" sent by the Segment SDK to a running collector alerts the account's
    rep without waiting for a scoring run (rescore_minutes is 0: no maintenance at all)."""
    from segment.analytics import Client

    from tests.collector_helpers import collector

    with demandloop.open(scored) as ws:  # a known person with a user id and an account
        user, account = ws.store.con.execute(
            "SELECT substr(i.identifier, 6), p.account_id FROM person_identifiers i JOIN "
            "persons p USING (workspace_id, person_id) WHERE i.identifier LIKE 'user:%' AND "
            "p.account_id IS NOT NULL ORDER BY 1 LIMIT 1").fetchone()
    toml = f"""
[collector]
rescore_minutes = 0
[[activate.workflows]]
name = "demo-live"
when = {{trigger = "event", event = "Demo Requested"}}
then = [{{action = "notify", url = "{receiver.url}/live", format = "webhook"}}]
"""
    with collector(scored, toml) as run:
        client = Client(write_key=run.key, host=run.url, upload_interval=0.01)
        started = time.monotonic()
        client.track(user, "Demo Requested", {"plan": "team"})
        client.flush()
        while not receiver.got and time.monotonic() - started < 20:
            time.sleep(0.01)
        client.join()
    assert len(receiver.got) == 1
    body = json.loads(receiver.got[0]["body"])
    assert body["workflow"] == "demo-live"
    assert body["account"]["account_id"] == account
    assert body["account"]["why"].startswith("Demo Requested")


LIVE = """
[[workflows]]
name = "demo-live"
when = {{trigger = "event", event = "{event}"}}
then = [{{action = "notify", url = "{url}/live", format = "webhook"}}]
"""


def test_a_workflow_file_broken_while_serving_keeps_the_workflows_in_force(
        scored: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    """A typo saved in a workflow file while the server runs: the workflows in force keep
    firing, the loop keeps scoring, the log says why once; fixed, the new ones fire. (Each
    load's live workflows and each rescore failed with a traceback before, so no alert and
    no decide snapshot until the file was fixed.)"""
    import httpx

    from tests.collector_helpers import collector

    with demandloop.open(scored) as ws:
        user = ws.store.con.execute(
            "SELECT substr(i.identifier, 6) FROM person_identifiers i JOIN persons p USING "
            "(workspace_id, person_id) WHERE i.identifier LIKE 'user:%' AND p.account_id IS "
            "NOT NULL ORDER BY 1 LIMIT 1").fetchone()[0]
    (scored / "workflows").mkdir()
    path = scored / "workflows" / "live.toml"
    path.write_text(LIVE.format(event="Live Poll Answered", url=receiver.url))
    toml = "[activate]\nmax_signal_age_days = 0\n"

    def track(run: Any, event: str, n: int) -> None:
        r = httpx.post(run.url + "/v1/track", auth=(run.key, ""),
                       json={"userId": user, "event": event})
        assert r.status_code == 200
        deadline = time.monotonic() + 30
        while len(receiver.got) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(receiver.got) == n, (event, run.loader.status)

    caplog.set_level("WARNING", logger="demandloop.loader")
    with collector(scored, toml, maintain_every=0.2) as run:
        path.write_text(path.read_text() + '[[workflows]]\nname = "broken"\n'
                        'when = {trigger = "stage_changd"}\nthen = []\n')
        track(run, "Live Poll Answered", 1)  # the workflow in force fired
        track(run, "Live Poll Answered", 2)
        deadline = time.monotonic() + 30
        while "maintenance" not in run.loader.status and time.monotonic() < deadline:
            time.sleep(0.05)
        status = run.loader.status
        assert status.get("live_error") is None and status.get("maintenance_error") is None
        assert "invalid workflow 'broken' (table 2 of [[workflows]]) at 'when.trigger'" in \
            status["maintenance"]["workflows_problem"]
        said = [r for r in caplog.records if r.getMessage().startswith("workflows: ")]
        assert len(said) == 1 and not any(r.exc_info for r in caplog.records)
        # mended (another event now): the new workflows are the ones in force
        path.write_text(LIVE.format(event="Live Quiz Answered", url=receiver.url))
        track(run, "Live Quiz Answered", 3)
        r = httpx.post(run.url + "/v1/track", auth=(run.key, ""),
                       json={"userId": user, "event": "Live Poll Answered"})
        assert r.status_code == 200
        run.wait_loaded()
        time.sleep(0.5)
        assert len(receiver.got) == 3  # the old trigger no longer fires
    assert [json.loads(g["body"])["account"]["why"].split(" (")[0]
                                           for g in receiver.got] == \
        ["Live Poll Answered", "Live Poll Answered",
         "Live Quiz Answered"]


def test_an_experience_file_that_cannot_be_read_is_said_once_per_edit(
        scored: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A server started with an experience file it cannot read said so twice at start
    ("not reloaded", though nothing had been loaded) and once more at every rescore."""
    import httpx

    from tests.collector_helpers import collector

    (scored / "experiences").mkdir(exist_ok=True)
    path = scored / "experiences" / "hero.toml"
    broken = ('[[experiences]]\nname = "hero"\nzone = "hero"\n'
              'audience = [{field = "colour", value = "red"}]\n'
              'changes = [{selector = "#h", text = "Hi"}]\n')
    path.write_text(broken)
    caplog.set_level("WARNING")

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("experiences")]

    def until(test: Any, what: str) -> None:
        deadline = time.monotonic() + 30
        while not test() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert test(), what

    with collector(scored, "[activate]\nmax_signal_age_days = 0\n", maintain_every=0.2) as run:
        for n in range(3):  # three loads, three rescores
            before = run.loader.status.get("maintained_at")
            r = httpx.post(run.url + "/v1/track", auth=(run.key, ""),
                           json={"userId": f"someone-{n}", "event": "Pinged"})
            assert r.status_code == 200
            until(lambda b=before: run.loader.status.get("maintained_at") != b, "a rescore")
        assert run.loader.status.get("maintenance_error") is None
        first = said()
        assert len(first) == 1 and first[0].startswith(
            "experiences not loaded, none in force: ") and "unknown audience field 'colour'" \
            in first[0], first
        path.write_text(broken.replace("colour", "industry"))  # mended, then broken again
        time.sleep(2.5)  # (the decide service looks every second)
        path.write_text(broken.replace("colour", "colur"))
        until(lambda: len(said()) == 2, "the second edit said")
        assert said()[1].startswith("experiences not reloaded, the ones in force stay: ")
        time.sleep(1.5)
        assert len(said()) == 2


def test_sigkill_mid_run_then_restart_delivers_each_alert_once(
        scored: Path, tmp_path: Path) -> None:
    """A real `demandloop workflows run` process is killed (SIGKILL) while a webhook is in
    flight; after a restart every alert has arrived, and the only repeat is the in-flight
    one, with the same Idempotency-Key (so a receiver that honours the key acts once)."""
    import os
    import signal
    import subprocess
    import sys

    hold = threading.Event()
    got: list[str] = []

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            got.append(self.headers["Idempotency-Key"])
            if len(got) == 3 and not hold.is_set():
                hold.set()
                time.sleep(30)  # the sender is killed while waiting for this answer
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    (scored / "demandloop.toml").write_text(FLOWS.format(url=url))
    with demandloop.open(scored) as ws:
        expected = len(_expected(ws))
    assert expected >= 4
    cmd = [sys.executable, "-m", "demandloop", "-w", str(scored), "workflows", "run"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert hold.wait(60), proc.stderr.read().decode() if proc.stderr else ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    httpd.shutdown()
    counts = {k: got.count(k) for k in got}
    assert len(counts) == expected  # every alert arrived
    repeats = [k for k, n in counts.items() if n > 1]
    assert repeats == [got[2]] and counts[got[2]] == 2  # only the one in flight, same key


def test_a_first_run_over_old_history_alerts_nobody(scored: Path, receiver: Receiver) -> None:
    """By default signals older than 14 days never fire (a first run over imported history
    must not page the sales team about last quarter), and they are not fired later either."""
    (scored / "demandloop.toml").write_text(
        FLOWS.format(url=receiver.url).replace("max_signal_age_days = 0", ""))
    with demandloop.open(scored) as ws:
        old = len(_expected(ws))
        assert old >= 4
        latest = ws.store.con.execute("SELECT max(changed_at) FROM stage_changes").fetchone()[0]
        r = ws.run_workflows(now=latest + dt.timedelta(days=30))
        assert (r.fired, r.enqueued) == (0, 0) and r.stale >= old
        ws.settings.activate.max_signal_age_days = 0
        again = ws.run_workflows(now=latest + dt.timedelta(days=30))
    assert again.fired == 0 and receiver.got == []


def test_signals_wait_for_a_workflow_and_can_be_replayed(scored: Path,
                                                         receiver: Receiver) -> None:
    """A run before any workflow exists consumes nothing; --dry-run lists and changes
    nothing; a workflow added after others ran fires on the past with --since."""
    with demandloop.open(scored) as ws:
        assert ws.run_workflows().fired == 0  # no workflow yet: the signals stay
        expected = _expected(ws)
    (scored / "demandloop.toml").write_text(FLOWS.format(url=receiver.url))
    with demandloop.open(scored) as ws:
        dry = ws.run_workflows(dry_run=True)
        assert dry.enqueued == 3 * len(expected) and len(dry.details) == dry.enqueued
        assert ws.store.con.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0
        assert receiver.got == []
        assert ws.run_workflows().fired == len(expected)  # the signals were still there
        assert len(receiver.got) == len(expected)
    # the committee gaps in the alert are the account's own, as 'explain account' says
    with demandloop.open(scored) as ws:
        for hit in receiver.got:
            text = json.loads(hit["body"])["blocks"][0]["text"]["text"]
            account = next(a for a, _ in expected if f"({a})" in text)
            gaps = ", ".join(ws.explain_account(account)["committee"]["missing_roles"])
            assert f"Buying-committee gaps: {gaps or 'none'}" in text
        assert any("gaps: none" not in json.loads(h["body"])["blocks"][0]["text"]["text"]
                   for h in receiver.got)
    # a second workflow, added later: only a replay shows it the past
    (scored / "demandloop.toml").write_text(FLOWS.format(url=receiver.url) + """
[[activate.workflows]]
name = "mqa-task"
when = {trigger = "stage_changed", to = "mqa"}
if = [{field = "target", op = "==", value = true}]
then = [{action = "create_task", title = "Research {name}", due_days = 2}]
""")
    with demandloop.open(scored) as ws:
        assert ws.run_workflows().fired == 0
        first = min(d for _, d in expected)[:10]
        replay = ws.run_workflows(since=dt.datetime.fromisoformat(first)
                                  - dt.timedelta(days=1))
        assert replay.enqueued == len(expected)  # the new workflow's tasks only
        assert len(receiver.got) == len(expected)  # nobody alerted twice
        assert ws.store.con.execute("SELECT count(*) FROM tasks WHERE title LIKE "
                                    "'Research %'").fetchone()[0] == len(expected)


def test_an_event_loaded_after_a_later_received_one_still_fires(
        tmp_path: Path, receiver: Receiver) -> None:
    """A booking's events are stamped when the booking began and logged once its invites
    are sent: a page view received later can be loaded first. Live (`react`) and scheduled
    (`workflows run`) firing both follow the loads, not the receipt times, so the earlier
    "Demo Requested" still alerts, once."""
    d = tmp_path / "w"
    d.mkdir()
    (d / "demandloop.toml").write_text(f"""
[activate]
max_signal_age_days = 0
[[activate.workflows]]
name = "demo"
when = {{trigger = "event", event = "Demo Requested"}}
then = [{{action = "notify", url = "{receiver.url}/demo", format = "webhook"}}]
""")
    t0 = dt.datetime(2026, 12, 1, 9, 0, 0)

    def batch(name: str, msg: dict[str, Any]) -> Path:
        at = msg.pop("at").isoformat() + "Z"
        p = tmp_path / f"{name}.jsonl"
        p.write_text(json.dumps({**msg, "timestamp": at, "receivedAt": at,
                                 "messageId": name}) + "\n")
        return p

    with demandloop.open(d) as ws:
        ws.store.con.execute("INSERT INTO accounts (workspace_id, account_id, domain, name) "
                             "VALUES ('default', 'acme.com', 'acme.com', 'Acme')")
        ws.react()  # the server starts the cursor
        ws.ingest(batch("first", {"type": "page", "anonymousId": "a1", "at": t0,
                                  "properties": {"url": "https://x.example/"}}))
        ws.react()
        later = {"type": "page", "anonymousId": "a2", "at": t0 + dt.timedelta(seconds=5),
                 "properties": {"url": "https://x.example/p"}}
        ws.ingest(batch("later", later))
        ws.react()
        demo = {"type": "track", "event": "Demo Requested", "anonymousId": "a3",
                "at": t0 + dt.timedelta(seconds=2), "properties": {"email": "jo@acme.com"}}
        ws.ingest(batch("demo", demo))  # received before "later", loaded after it
        ws.react()
        assert [h["path"] for h in receiver.got] == ["/demo"]
        ws.react()
        ws.run_workflows()  # the scheduled run finds the job already there
    assert len(receiver.got) == 1
    # the scheduled run alone (no server) follows the loads too
    receiver.got.clear()
    (d / "demandloop.toml").write_text((d / "demandloop.toml").read_text()
                                       .replace('name = "demo"', 'name = "demo-2"'))
    with demandloop.open(d) as ws:
        ws.run_workflows()  # its cursor is past what is stored: nothing
        assert receiver.got == []
        ws.ingest(batch("later2", {**later, "at": t0 + dt.timedelta(seconds=9)}))
        ws.run_workflows()
        ws.ingest(batch("demo2", {**demo, "at": t0 + dt.timedelta(seconds=3)}))
        ws.run_workflows()
    assert [json.loads(h["body"])["workflow"] for h in receiver.got] == ["demo-2"]


def test_became_mql_with_a_condition_fires_for_each_mql_of_a_matching_account(
        scored: Path) -> None:
    """A workflow reads the rows of the accounts its signals name: a person's MQL names
    their account, whose own fields the condition reads."""
    (scored / "demandloop.toml").write_text("""
[activate]
max_signal_age_days = 0
[[activate.workflows]]
name = "mql-task"
when = {trigger = "became_mql"}
if = [{field = "target", op = "==", value = true}]
then = [{action = "create_task", title = "Call the new MQL at {name}"}]
""")
    with demandloop.open(scored) as ws:
        expected = sorted(ws.store.con.execute(
            "SELECT a.account_id, 'Call the new MQL at ' || a.name FROM stage_changes c "
            "JOIN persons p ON p.person_id = c.entity_id JOIN accounts a ON "
            "a.account_id = p.account_id WHERE c.entity = 'person' AND c.to_stage = 'mql' "
            "AND a.target").fetchall())
        assert expected
        r = ws.run_workflows()
        assert r.fired == len(expected)
        assert sorted(ws.store.con.execute("SELECT account_id, title FROM tasks").fetchall()
                      ) == expected
        # a later MQL alone (no change of its account in the same run) names its account
        person, account, name = ws.store.con.execute(
            "SELECT p.person_id, a.account_id, a.name FROM persons p JOIN accounts a USING "
            "(workspace_id, account_id) WHERE a.target AND p.person_id NOT IN (SELECT "
            "entity_id FROM stage_changes WHERE to_stage = 'mql') ORDER BY 1 LIMIT 1"
        ).fetchone()
        ws.store.con.execute("INSERT INTO stage_changes VALUES ('default', 'person', ?, NULL, "
                             "'mql', now()::TIMESTAMP, '[]', nextval('stage_change_seq'))",
                             [person])
        assert ws.run_workflows().fired == 1
        assert ws.store.con.execute("SELECT count(*) FROM tasks WHERE account_id = ? AND "
                                    "title = ?", [account, f"Call the new MQL at {name}"]
                                    ).fetchone() == (expected.count(
                                        (account, f"Call the new MQL at {name}")) + 1,)


@pytest.mark.parametrize(("when", "action", "says"), [
    ('{trigger = "stage_changed", to = "mqx"}', 'url = "http://127.0.0.1:9/hook"',
     "workflow 'z': no stage 'mqx' (stages: customer, opportunity, mqa, engaged, aware, "
     "target, unaware)"),
    ('{trigger = "surge"}', 'url = "hooks.slack.com/services/T0/B0/x"',
     "notify: 'hooks.slack.com/services/T0/B0/x' is not an http(s) URL"),
    ('{trigger = "surge"}', 'url = "ftp://example.com/hook"', "is not an http(s) URL"),
])
def test_a_workflow_that_could_never_deliver_or_fire_is_refused_before_it_runs(
        tmp_path: Path, cli, when: str, action: str, says: str) -> None:  # type: ignore[no-untyped-def]
    # before: a URL without its scheme was retried on every firing until the dead-letter
    # list, and a stage no rule gives never fired, both without a word
    d = tmp_path / "w"
    (d / "workflows").mkdir(parents=True)
    (d / "workflows" / "a.toml").write_text(
        f'[[workflows]]\nname = "z"\nwhen = {when}\n'
        f'then = [{{action = "notify", {action}}}]\n')
    for command in (("workflows", "validate"), ("workflows", "run")):
        code, out, err = cli("-w", str(d), *command)
        assert code == 2, out
        assert says in err and "Value error" not in err
        assert err.count("\n") == 1
    assert not (d / "demandloop.duckdb").exists() or _jobs(d) == 0


def _jobs(d: Path) -> int:
    with demandloop.open(d) as ws:
        row = ws.store.con.execute("SELECT count(*) FROM jobs").fetchone()
    return int(row[0]) if row else 0


def test_a_slack_alert_shows_a_name_as_text_not_as_markup() -> None:
    """A company name or a page title can come from a visitor's browser: in the alert,
    ``<!channel>`` pinged everyone and ``<https://...|Pay>`` was a link."""
    from demandloop.activate.actions import notify

    hostile = "<!channel> <https://evil.example|Pay here> & Co"
    effect = notify({"format": "slack", "url": "https://hooks.example.com/x"},
                    {"account_id": "evil.example", "name": hostile, "owner": "<@U123>",
                     "top_signals": ["viewed <!here>"]}, "became mqa (was aware)")
    body = json.loads(effect.body)
    texts = [body["text"], body["blocks"][0]["text"]["text"]]
    for text in texts:
        assert "<!" not in text and "<https" not in text and "<@" not in text
    assert ("&lt;!channel&gt; &lt;https://evil.example|Pay here&gt; &amp; Co"
            in body["blocks"][0]["text"]["text"])
    assert "&lt;!here&gt;" in texts[1] and "&lt;@U123&gt;" in texts[1]

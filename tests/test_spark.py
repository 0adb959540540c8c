"""The Spark engine: the workspace as a Parquet lake, and the same score computed from it by
Spark in local mode as by DuckDB from the store, on the simulated market (2,000 accounts x
180 days)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import demandloop
from demandloop.simulate import simulate
from demandloop.store import export_parquet
from demandloop.store.schema import NOT_ANALYSED
from tests.conftest import load_market, write_jsonl


def _spark_or_skip() -> None:
    """Spark needs pyspark and Java; in CI (DEMANDLOOP_REQUIRE_SPARK) both must be there."""
    missing = []
    try:
        import pyspark  # noqa: F401
    except ImportError:
        missing.append("pyspark")
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        missing.append("Java")
    if missing:
        if os.environ.get("DEMANDLOOP_REQUIRE_SPARK"):
            pytest.fail(f"{' and '.join(missing)} required here (DEMANDLOOP_REQUIRE_SPARK)")
        pytest.skip(f"{' and '.join(missing)} not installed")


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace of the simulated market, resolved and scored every 30 days (so stage
    changes have a history), with its lake written."""
    market = tmp_path_factory.mktemp("big_market")
    simulate(accounts=2000, days=180, seed=5, out=market)
    directory = load_market(tmp_path_factory.mktemp("spark") / "ws", market,
                            history_every=30)
    with demandloop.open(directory) as ws:
        # not through the workspace, which records its exports: a copy of this folder
        # erasing a person (see below) would otherwise rewrite this lake too
        export_parquet(ws.store, ws.lake_path(), lake=True)
    return directory


def _copy(directory: Path, to: Path) -> Path:
    shutil.copytree(directory, to)
    return to


def _snapshot(directory: Path, as_of: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    with demandloop.open(directory) as ws:
        scores = ws.store.con.execute(
            "SELECT entity, entity_id, fit, engagement, intent, stage, details FROM scores "
            "WHERE as_of = ? ORDER BY entity, entity_id", [as_of]).df()
        changes = ws.store.con.execute(
            "SELECT entity, entity_id, from_stage, to_stage, reasons FROM stage_changes "
            "WHERE changed_at = ? ORDER BY entity, entity_id", [as_of]).df()
    return scores, changes


def _close(a: object, b: object) -> bool:
    """Equal, numbers to 1e-9 of themselves (sums in another order differ in the last bits)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and bool(
            abs(a - b) <= 1e-9 * max(1.0, abs(a)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _assert_same(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert len(duck) == len(spark) > 0
    for column in ("entity", "entity_id", "stage"):
        assert duck[column].fillna("").tolist() == spark[column].fillna("").tolist()
    for column in ("fit", "engagement", "intent"):
        a, b = duck[column].to_numpy(float), spark[column].to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b))
        ok = ~np.isnan(a)
        np.testing.assert_allclose(b[ok], a[ok], rtol=1e-9, atol=1e-12)
    differ = [(x, y) for x, y in zip(duck["details"], spark["details"], strict=True)
              if not _close(json.loads(x), json.loads(y))]
    assert not differ, differ[:2]


@pytest.mark.parametrize("days_back", [0, 47])
def test_score_on_spark_equals_the_score_on_duckdb(scored: Path, tmp_path: Path,
                                                   days_back: int) -> None:
    # the same workspace twice: one scored by DuckDB from the store, one by Spark local[2]
    # from the lake; at the last touch and at a time inside the history (windows cut
    # touches on both sides of it)
    _spark_or_skip()
    duck_dir, spark_dir = _copy(scored, tmp_path / "duck"), _copy(scored, tmp_path / "spark")
    with demandloop.open(duck_dir) as ws:
        last = ws.store.con.execute("SELECT max(ts) FROM touches").fetchone()[0]
        at = last - dt.timedelta(days=days_back, hours=5, microseconds=123457)
        duck = ws.score(at, engine="duckdb")
    with demandloop.open(spark_dir) as ws:
        spark = ws.score(at, engine="spark")
    assert (spark.accounts, spark.stages, spark.stage_changes, spark.mqls, spark.surging) == (
        duck.accounts, duck.stages, duck.stage_changes, duck.mqls, duck.surging)
    assert spark.mode == "full"
    duck_rows, duck_changes = _snapshot(duck_dir, at)
    spark_rows, spark_changes = _snapshot(spark_dir, at)
    _assert_same(duck_rows, spark_rows)
    # not trivially equal: engagement decays, stages differ, and stages moved
    assert duck_rows["engagement"].nunique() > 100 and duck_rows["stage"].nunique() > 3
    assert len(duck_changes) > 10
    pd.testing.assert_frame_equal(duck_changes, spark_changes)


def test_the_lake_is_partitioned_by_day_and_imports_back_whole(scored: Path,
                                                               tmp_path: Path) -> None:
    lake = scored / "lake"
    manifest = json.loads((lake / "manifest.json").read_text())
    assert manifest["layout"] == "lake"
    assert {"events": "timestamp", "touches": "ts"}.items() <= manifest[
        "partitioned"].items()
    con = duckdb.connect()
    with demandloop.open(scored) as ws:
        days = {str(d) for (d,) in ws.store.con.execute(
            "SELECT DISTINCT CAST(timestamp AS DATE) FROM events").fetchall()}
        counts = ws.store.table_counts()
        digest = {t: ws.store.con.execute(
            f"SELECT count(*), sum(hash(x)) FROM (SELECT * EXCLUDE (workspace_id) FROM {t}) x"
        ).fetchone() for t in ("events", "touches", "persons", "accounts", "scores")}
    folders = {p.name.removeprefix("day=") for p in (lake / "events").iterdir()}
    assert folders == days and len(days) > 150
    # each day's folder holds that day's events only
    one = sorted(days)[len(days) // 2]
    got = con.execute(f"SELECT DISTINCT CAST(timestamp AS DATE)::VARCHAR FROM read_parquet("
                      f"'{lake}/events/day={one}/*.parquet')").fetchall()
    assert got == [(one,)]
    # and the lake imports into another workspace as the export format does
    with demandloop.open(tmp_path / "copy") as other:
        assert other.import_parquet(lake) == {t: n for t, n in counts.items()}
        for table, want in digest.items():
            assert other.store.con.execute(
                f"SELECT count(*), sum(hash(x)) FROM (SELECT * EXCLUDE (workspace_id) "
                f"FROM {table}) x").fetchone() == want


def test_erasing_a_person_reaches_the_lake(scored: Path, tmp_path: Path) -> None:
    directory = _copy(scored, tmp_path / "ws")
    with demandloop.open(directory) as ws:
        lake = ws.lake_path()
        ws.export_parquet(lake, lake=True)  # (written from here: erasure knows of it)
        email = ws.store.con.execute(
            "SELECT email FROM persons WHERE email IS NOT NULL ORDER BY person_id LIMIT 1"
        ).fetchone()[0]
        person = ws.store.con.execute("SELECT person_id FROM persons WHERE email = ?",
                                      [email]).fetchone()[0]
        result = ws.erase_person(email)
    assert result["exports_rewritten"] == [str(lake.resolve())]
    manifest = json.loads((lake / "manifest.json").read_text())
    assert manifest["layout"] == "lake" and "touches" in manifest["partitioned"]
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM read_parquet('{lake}/persons/*.parquet') "
                       "WHERE email = ?", [email]).fetchone() == (0,)
    assert con.execute(f"SELECT count(*) FROM read_parquet('{lake}/touches/**/*.parquet') "
                       "WHERE person_id = ?", [person]).fetchone() == (0,)
    assert con.execute(f"SELECT count(*) FROM read_parquet('{lake}/touches/**/*.parquet')"
                       ).fetchone()[0] > 1000


def test_score_command_on_spark(cli: Callable[..., tuple[int, str, str]], scored: Path,
                                tmp_path: Path) -> None:
    _spark_or_skip()
    duck_dir, spark_dir = _copy(scored, tmp_path / "duck"), _copy(scored, tmp_path / "spark")
    code, duck, err = cli("-w", str(duck_dir), "score", "--json")
    assert code == 0, err
    code, spark, err = cli("-w", str(spark_dir), "score", "--json", "--engine", "spark")
    assert code == 0, err
    a, b = json.loads(duck), json.loads(spark)
    assert a["top"] and [r["account"] for r in a["top"]] == [r["account"] for r in b["top"]]
    assert _close(a, b)
    # [compute] engine = "spark" is the default the option overrides
    (spark_dir / "demandloop.toml").write_text('[compute]\nengine = "spark"\n')
    code, again, err = cli("-w", str(spark_dir), "score", "--json")
    assert code == 0 and _close(json.loads(again), a), err
    code, _, err = cli("-w", str(spark_dir), "score", "--backfill", "30")
    assert code != 0 and "DuckDB only" in err
    # a lake written before a table no analytics read existed is read as it is; one
    # without a table they read is refused, with what to do
    manifest = spark_dir / "lake" / "manifest.json"
    data = json.loads(manifest.read_text())
    for table in NOT_ANALYSED:
        data["tables"].pop(table)
    manifest.write_text(json.dumps(data))
    code, older, err = cli("-w", str(spark_dir), "score", "--json")
    assert code == 0 and _close(json.loads(older), a), err
    data["tables"].pop("touches")
    manifest.write_text(json.dumps(data))
    code, _, err = cli("-w", str(spark_dir), "score", "--json")
    assert code != 0 and "'touches' is missing" in err and "export --format lake" in err, err


def test_the_engine_refuses_what_it_cannot_run(cli: Callable[..., tuple[int, str, str]],
                                               tmp_path: Path, scored: Path) -> None:
    directory = _copy(scored, tmp_path / "ws")
    shutil.rmtree(directory / "lake")
    code, _, err = cli("-w", str(directory), "score", "--engine", "spark")
    assert code != 0 and "no Parquet lake at" in err and "export --format lake" in err
    code, _, err = cli("-w", str(directory), "report", "funnel", "--engine", "spark")
    assert code != 0 and "no Parquet lake at" in err
    code, _, err = cli("-w", str(directory), "score", "--engine", "flink")
    assert code != 0 and "unknown engine 'flink'" in err
    for bad, message in (('master = "localhost"', "not a Spark master"),
                         ('options = { "executor.memory" = "2g" }', "not a Spark setting"),
                         ('colour = "red"', "colour")):
        (directory / "demandloop.toml").write_text(f"[compute.spark]\n{bad}\n")
        code, _, err = cli("-w", str(directory), "score", "--engine", "spark")
        assert code != 0 and message in err, err
    (directory / "demandloop.toml").write_text('[compute]\nlake = "s3a://bucket/lake"\n')
    code, _, err = cli("-w", str(directory), "status")
    assert code != 0 and "is a URL" in err
    # nothing was written by any of them
    (directory / "demandloop.toml").unlink()
    with demandloop.open(directory) as ws:
        assert ws.store.con.execute("SELECT count(DISTINCT as_of) FROM scores").fetchone() \
            == _distinct_snapshots(scored)


def _distinct_snapshots(directory: Path) -> tuple[int]:
    with demandloop.open(directory) as ws:
        return ws.store.con.execute("SELECT count(DISTINCT as_of) FROM scores").fetchone()


def test_funnel_health_pipeline_and_scorecard_on_spark_equal_duckdb(scored: Path) -> None:
    # the engine groups every touch (first touches per account, weekly counts); the pandas
    # code after it is shared, so the reports are equal value for value
    _spark_or_skip()
    with demandloop.open(scored) as ws:
        duck_m, spark_m = ws.milestones(engine="duckdb"), ws.milestones(engine="spark")
        pd.testing.assert_frame_equal(spark_m, duck_m, check_dtype=False)
        assert duck_m["reached_at"].notna().sum() > 1000 and duck_m["people"].sum() > 100
        assert duck_m["engaged_at"].notna().sum() > 10  # stage history from the store
        for by in (None, "channel", "motion", "cohort"):
            duck, spark = ws.funnel(by, engine="duckdb"), ws.funnel(by, engine="spark")
            pd.testing.assert_frame_equal(spark, duck, check_dtype=False)
        (duck_summary, duck_series), (spark_summary, spark_series) = (
            ws.health(engine="duckdb"), ws.health(engine="spark"))
    pd.testing.assert_frame_equal(spark_series, duck_series, check_dtype=False,
                                  check_freq=False)
    assert len(duck_series) >= 20 and duck_series["direct"].sum() > 1000
    assert spark_summary == duck_summary
    with demandloop.open(scored) as ws:
        duck_p, spark_p = ws.pipeline(engine="duckdb"), ws.pipeline(engine="spark")
    assert _close(spark_p["summary"], duck_p["summary"])
    pd.testing.assert_frame_equal(spark_p["channels"], duck_p["channels"], check_dtype=False,
                                  rtol=1e-12)
    assert duck_p["summary"]["opportunities"] > 20
    assert duck_p["channels"]["influenced_opps"].sum() > duck_p["summary"]["opportunities"]
    with demandloop.open(scored) as ws:
        duck_c, spark_c = ws.scorecard(engine="duckdb"), ws.scorecard(engine="spark")
    for part in ("card", "channels"):
        pd.testing.assert_frame_equal(spark_c[part], duck_c[part], check_dtype=False,
                                      rtol=1e-12)
    assert _close(spark_c["blended_totals"], duck_c["blended_totals"])
    assert duck_c["channels"]["sourced_opps"].sum() > 20


def test_report_commands_on_spark(cli: Callable[..., tuple[int, str, str]],
                                  scored: Path) -> None:
    _spark_or_skip()
    for report in (["funnel", "--by", "channel"], ["health"], ["pipeline"],
                   ["attribution", "--models", "linear,time_decay,w_shaped,markov,shapley"],
                   ["scorecard"]):
        code, duck, err = cli("-w", str(scored), "report", *report, "--json")
        assert code == 0, err
        code, spark, err = cli("-w", str(scored), "report", *report, "--json",
                               "--engine", "spark")
        assert code == 0, err
        assert _close(json.loads(spark), json.loads(duck)) and len(duck) > 200
    code, _, err = cli("-w", str(scored), "report", "health", "--engine", "flink")
    assert code != 0 and "unknown engine 'flink'" in err


@pytest.mark.parametrize("roles", [[], ["marketing:vp", "it"]])
def test_committee_coverage_on_spark_equals_duckdb(scored: Path, roles: list[str]) -> None:
    # with no roles it reads distinct accounts (sorted after: see
    # demandloop.measure.inputs.pipeline_parts), with roles one row of flags per account
    _spark_or_skip()
    from demandloop.compute import tables
    from demandloop.score.measures import committee_coverage

    with demandloop.open(scored) as ws:
        at = ws.store.con.execute("SELECT max(ts) FROM touches").fetchone()[0]
        duck = committee_coverage(tables(ws.store), at, 90, roles)
        spark = committee_coverage(ws.engine_tables("spark"), at, 90, roles)
    assert len(duck) > 100 and duck["account_id"].is_unique
    pd.testing.assert_frame_equal(spark, duck, check_dtype=False)


#: what resolve writes; the columns that say when a row was written are left out
RESOLVED = {"identities": "", "person_identifiers": "", "account_matches": "",
            "ip_lookups": "", "touches": "", "persons": " EXCLUDE (created_at, updated_at)",
            "accounts": " EXCLUDE (created_at, updated_at)",
            "resolve_state": " EXCLUDE (resolved_at)"}


def _resolved(directory: Path) -> dict[str, pd.DataFrame]:
    with demandloop.open(directory) as ws:
        return {t: ws.store.con.execute(f"SELECT *{x} FROM {t} ORDER BY ALL").df()
                for t, x in RESOLVED.items()}


def _late_events(directory: Path) -> list[dict[str, object]]:
    """Page views on the market's last two days from its known visitors."""
    with demandloop.open(directory) as ws:
        last, visitors = ws.store.con.execute(
            "SELECT max(timestamp), list(DISTINCT anonymous_id ORDER BY anonymous_id) "
            "FILTER (WHERE anonymous_id IS NOT NULL) FROM events").fetchone()
    return [{"type": "page", "messageId": f"late-{i}", "anonymousId": visitors[i * 7],
             "timestamp": (last - dt.timedelta(hours=i)).isoformat(),
             "properties": {"path": "/pricing", "url": "https://example.com/pricing"}}
            for i in range(60)]


def test_resolve_on_spark_equals_a_rebuild_on_duckdb(scored: Path, tmp_path: Path) -> None:
    # the same workspace twice, rebuilt from every event: by DuckDB from the store, and by
    # Spark local[2] from the lake (event scans and touches there, the graph here)
    _spark_or_skip()
    duck_dir, spark_dir = _copy(scored, tmp_path / "duck"), _copy(scored, tmp_path / "spark")
    # a load after the lake was written, which the collector lands in it (store.lake)
    late = write_jsonl(tmp_path / "late.jsonl", _late_events(scored))
    for directory in (duck_dir, spark_dir):
        with demandloop.open(directory) as ws:
            ws.ingest(late)
    with demandloop.open(spark_dir) as ws:
        landed = ws.land_in_lake()
    assert not landed.rewritten and landed.events == 60 and landed.files >= 2
    # (the market's days are past: each day landed in is merged into one file, which
    # Spark then reads)
    assert landed.compacted == landed.files
    with demandloop.open(duck_dir) as ws:
        ws.store.con.execute("DELETE FROM resolve_state")  # a rebuild, as Spark's is
        duck = ws.resolve(engine="duckdb")
    with demandloop.open(spark_dir) as ws:
        spark = ws.resolve(engine="spark")
    assert duck.mode == spark.mode == "rebuild"
    for field in ("persons", "identified_devices", "accounts_created", "touches",
                  "touches_with_account", "unresolved", "touches_written"):
        assert getattr(spark, field) == getattr(duck, field), field
    duck_tables, spark_tables = _resolved(duck_dir), _resolved(spark_dir)
    for table, rows in duck_tables.items():
        pd.testing.assert_frame_equal(rows, spark_tables[table], obj=table)
    # not trivially equal: browsers merged into persons, touches of many channels,
    # matched by every source
    touches = duck_tables["touches"]
    assert len(touches) > 100_000 and touches["channel"].nunique() >= 8
    assert {"ip_range", "crm", "email_domain"} <= set(touches["match_source"])
    assert (duck_tables["person_identifiers"]["kind"] == "anon").sum() > 1000
    assert not list(tmp_path.glob("spark/.touches-*"))  # the engine's files are gone
    # the workspace goes on from the lake's last load: nothing new, nothing to do
    with demandloop.open(spark_dir) as ws:
        again = ws.resolve(engine="duckdb")
    assert again.mode == "incremental" and again.touches_written == 0


@pytest.mark.parametrize(("level", "outcome"), [("account", "opportunity"),
                                                ("account", "won"), ("person", None)])
def test_attribution_on_spark_equals_duckdb(scored: Path, level: str, outcome: str | None
                                            ) -> None:
    # journeys and rule-based models run by Spark from the lake, Markov and Shapley from
    # the distinct paths it found; the same on DuckDB from the store
    _spark_or_skip()
    from demandloop.measure.attribution import ALL_MODELS

    with demandloop.open(scored) as ws:
        # a person's journey ends at a lead, which has no value (refused: test_measure)
        for measure in ("conversions", "value") if level == "account" else ("conversions",):
            duck = ws.attribution(level=level, outcome=outcome, models=ALL_MODELS,
                                  measure=measure, engine="duckdb")
            spark = ws.attribution(level=level, outcome=outcome, models=ALL_MODELS,
                                   measure=measure, engine="spark")
            assert duck["channel"].tolist() == spark["channel"].tolist()
            assert len(duck) >= 8
            assert duck["linear"].sum() > 20  # journeys converted: credit to share
            for model in ALL_MODELS:
                np.testing.assert_allclose(spark[model], duck[model], rtol=1e-9, atol=1e-9,
                                           err_msg=f"{measure} {model}")


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server (Spark's own, started by spark-submit from the pyspark
    package, local[2]): its sc:// URL."""
    _spark_or_skip()
    import socket

    import pyspark

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    log = tmp_path_factory.mktemp("connect") / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(submit), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
             "--master", "local[2]", "--conf", f"spark.connect.grpc.binding.port={port}",
             "--conf", "spark.ui.enabled=false", "spark-internal"],
            stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180  # a loaded machine starts a JVM slowly
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no Spark Connect server: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(60)


def _run(directory: Path, *args: str) -> str:
    """A demandloop command in a process of its own (one process holds either a local
    Spark session or a Connect client, never both); its stdout."""
    done = subprocess.run([sys.executable, "-m", "demandloop", "-w", str(directory), *args],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_spark_connect_resolves_scores_and_reports_as_duckdb(
        scored: Path, tmp_path: Path, connect_server: str) -> None:
    # the commands' process holds no JVM: the Connect server plans and runs every job,
    # reading the lake from the same folder
    duck_dir, remote_dir = _copy(scored, tmp_path / "duck"), _copy(scored, tmp_path / "sc")
    (remote_dir / "demandloop.toml").write_text(
        f'[compute]\nengine = "spark"\n[compute.spark]\nmaster = "{connect_server}"\n')
    out = {}
    for directory in (duck_dir, remote_dir):
        with demandloop.open(directory) as ws:
            ws.store.con.execute("DELETE FROM resolve_state")  # both rebuild
        resolved = json.loads(_run(directory, "resolve", "--json"))
        scored_now = json.loads(_run(directory, "score", "--json"))
        funnel = json.loads(_run(directory, "report", "funnel", "--by", "channel", "--json"))
        out[directory] = (resolved, scored_now, funnel)
    (duck_r, duck_s, duck_f), (remote_r, remote_s, remote_f) = out[duck_dir], out[remote_dir]
    assert remote_r["mode"] == "rebuild" and remote_r["touches"] > 100_000
    assert {k: v for k, v in remote_r.items() if k != "seconds"} == {
        k: v for k, v in duck_r.items() if k != "seconds"}
    remote_tables = _resolved(remote_dir)
    for table, rows in _resolved(duck_dir).items():
        pd.testing.assert_frame_equal(rows, remote_tables[table], obj=table)
    assert remote_s["accounts"] > 1000 and _close(remote_s, duck_s)
    with demandloop.open(duck_dir) as ws:
        at = ws.store.con.execute("SELECT max(as_of) FROM scores").fetchone()[0]
    _assert_same(_snapshot(duck_dir, at)[0], _snapshot(remote_dir, at)[0])
    assert _close(remote_f, duck_f) and len(duck_f) > 5


def test_spark_refuses_a_lake_it_cannot_trust(
        cli: Callable[..., tuple[int, str, str]], tmp_path: Path, scored: Path) -> None:
    # each refusal leaves the workspace as it was: its touches and its resolve watermark
    _spark_or_skip()
    directory = _copy(scored, tmp_path / "ws")
    before = _resolved(directory)
    # addresses truncated as they are resolved: a copy of the events cannot be rewritten
    (directory / "demandloop.toml").write_text('[collect]\nip = "truncate"\n')
    code, _, err = cli("-w", str(directory), "resolve", "--engine", "spark")
    assert code != 0 and 'collect.ip = "full"' in err, err
    (directory / "demandloop.toml").write_text("")
    # events gone from the workspace since the lake was written (as after an erasure or a
    # retention run): the lake would bring them back
    with demandloop.open(directory) as ws:
        first = ws.store.con.execute("SELECT min(load_id) FROM events").fetchone()[0]
        ws.store.con.execute("CREATE TABLE kept AS SELECT * FROM events WHERE load_id = ?",
                             [first])
        ws.store.con.execute("DELETE FROM events WHERE load_id = ?", [first])
    code, _, err = cli("-w", str(directory), "resolve", "--engine", "spark")
    assert code != 0 and "write the lake again" in err, err
    with demandloop.open(directory) as ws:
        ws.store.con.execute("INSERT INTO events SELECT * FROM kept")
        ws.store.con.execute("DROP TABLE kept")
    # another workspace's lake
    manifest = directory / "lake" / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "workspace_id": "other"}))
    code, _, err = cli("-w", str(directory), "resolve", "--engine", "spark")
    assert code != 0 and "workspace 'other'" in err, err
    # the same lake for a score or a report: refused alike (it would score the other
    # workspace's accounts into this one)
    for command in (["score"], ["report", "funnel"]):
        code, _, err = cli("-w", str(directory), *command, "--engine", "spark")
        assert code != 0 and "workspace 'other'" in err, err
    assert _distinct_snapshots(directory) == _distinct_snapshots(scored)
    after = _resolved(directory)
    for table, rows in before.items():
        pd.testing.assert_frame_equal(rows, after[table], obj=table)

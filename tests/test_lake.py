"""The collector lands its loads in the Parquet lake (store.lake): each landing appends the
new loads' events as files of the day partitions, the lake's events stay exactly the
workspace's, a landing cut short by a crash is redone without doubling anything, and a
lake that cannot be appended to is written again, never another workspace's."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import uuid
from pathlib import Path

import duckdb
import httpx
import pytest

import demandloop
from demandloop.errors import UsageError
from demandloop.store import lake as lake_module
from tests.collector_helpers import collector
from tests.conftest import write_jsonl

START = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)


def _events(n: int, day: int, who: str) -> list[dict[str, object]]:
    """*n* page views spread over three days from *day* (so a load spans day folders)."""
    return [{"type": "page", "messageId": str(uuid.uuid4()), "anonymousId": f"{who}-{i % 7}",
             "timestamp": (START + dt.timedelta(days=day + i % 3, minutes=i)).isoformat(),
             "context": {"ip": f"198.51.100.{i % 200}"},
             "properties": {"path": f"/p/{i % 11}", "url": f"https://x.test/p/{i % 11}"}}
            for i in range(n)]


def _ingest(ws: demandloop.Workspace, tmp: Path, n: int, day: int, who: str) -> None:
    ws.ingest(write_jsonl(tmp / f"{who}-{day}.jsonl", _events(n, day, who)))


def _lake_events(lake: Path) -> list[tuple[object, ...]]:
    """The lake's events as another engine reads them: every Parquet file under
    events/, with the day from the folder names."""
    return duckdb.sql(
        f"SELECT * EXCLUDE (day) FROM read_parquet('{lake}/events/**/*.parquet', "
        "hive_partitioning = true) ORDER BY message_id").fetchall()


def _store_events(ws: demandloop.Workspace) -> list[tuple[object, ...]]:
    return ws.store.con.execute("SELECT * FROM events ORDER BY message_id").fetchall()


def _manifest(lake: Path) -> dict[str, object]:
    return json.loads((lake / "manifest.json").read_text())


def test_loads_are_appended_as_day_files_and_the_lake_stays_the_workspace(
        tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()  # (landing alone: past days' files not merged)
    (tmp_path / "ws" / "demandloop.toml").write_text("[collector]\nlake_compact_files = 0\n")
    with demandloop.open(tmp_path / "ws") as ws:
        _ingest(ws, tmp_path, 40, 0, "a")
        lake = ws.lake_path()
        first = ws.land_in_lake()  # no lake yet: written whole
        assert first.rewritten and first.events == 40
        exported = sorted(p.name for p in lake.glob("events/day=*/*.parquet"))
        _ingest(ws, tmp_path, 30, 2, "b")
        _ingest(ws, tmp_path, 20, 4, "c")  # two loads, landed as one
        landed = ws.land_in_lake()
        assert not landed.rewritten and landed.events == 50
        newest = ws.store.con.execute("SELECT max(load_id) FROM events").fetchone()[0]
        assert landed.last_load == newest
        # the export's files are untouched, the new ones sit beside them, named by loads
        files = sorted(lake.glob("events/day=*/*.parquet"))
        new = [p for p in files if p.name not in exported or p.name.startswith("load-")]
        assert len(new) == landed.files >= 3  # days 2-6
        assert {p.parent.name for p in new} >= {"day=2026-11-03", "day=2026-11-07"}
        # what another engine reads is the workspace's events, column for column
        assert _lake_events(lake) == _store_events(ws)
        manifest = _manifest(lake)
        assert manifest["tables"]["events"] == 90 and manifest["last_load"] == newest
        assert "pending" not in manifest
        # nothing new: nothing written
        assert ws.land_in_lake().events == 0
        assert sorted(lake.glob("events/day=*/*.parquet")) == files
    # the lake imports back whole, as any export
    with demandloop.open(tmp_path / "copy") as other:
        other.import_parquet(lake)
        with demandloop.open(tmp_path / "ws") as ws:
            assert _store_events(other) == _store_events(ws)


def test_a_landing_cut_short_is_redone_without_doubling(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with demandloop.open(tmp_path / "ws") as ws:
        _ingest(ws, tmp_path, 40, 0, "a")
        ws.land_in_lake()
        _ingest(ws, tmp_path, 60, 1, "b")
        lake = ws.lake_path()
        real, calls = lake_module.os.replace, []

        def dies(src: object, dst: object) -> None:
            calls.append(dst)
            if len(calls) == 3:  # the pending manifest and one file moved, then a crash
                raise OSError("killed")
            real(src, dst)  # type: ignore[arg-type]

        monkeypatch.setattr(lake_module.os, "replace", dies)
        with pytest.raises(OSError):
            ws.land_in_lake()
        monkeypatch.setattr(lake_module.os, "replace", real)
        assert _manifest(lake).get("pending")
        assert len(_lake_events(lake)) > 40  # a reader would see part of the landing
        again = ws.land_in_lake()
        assert not again.rewritten and again.events == 60
        assert _lake_events(lake) == _store_events(ws)
        assert "pending" not in _manifest(lake)


def test_a_lake_that_lost_events_is_written_again(tmp_path: Path) -> None:
    with demandloop.open(tmp_path / "ws") as ws:
        _ingest(ws, tmp_path, 40, 0, "a")
        ws.land_in_lake()
        _ingest(ws, tmp_path, 10, 3, "b")
        # an erasure since the lake was written: appending would keep the erased events
        ws.store.con.execute("DELETE FROM events WHERE anonymous_id = 'a-3'")
        landed = ws.land_in_lake()
        assert landed.rewritten and landed.events == len(_store_events(ws))
        assert _lake_events(ws.lake_path()) == _store_events(ws)
        # a lake written before landings existed (no last_load) is written again too
        manifest = _manifest(ws.lake_path())
        del manifest["last_load"]
        (ws.lake_path() / "manifest.json").write_text(json.dumps(manifest))
        assert ws.land_in_lake().rewritten


def test_never_another_workspaces_lake_or_a_folder_of_other_files(tmp_path: Path) -> None:
    with demandloop.open(tmp_path / "ws") as ws:
        _ingest(ws, tmp_path, 20, 0, "a")
        ws.land_in_lake()
        lake = ws.lake_path()
        manifest = {**_manifest(lake), "workspace_id": "other"}
        (lake / "manifest.json").write_text(json.dumps(manifest))
        before = sorted(lake.rglob("*"))
        _ingest(ws, tmp_path, 20, 1, "b")
        with pytest.raises(UsageError, match="workspace 'other'"):
            ws.land_in_lake()
        assert sorted(lake.rglob("*")) == before
        # a folder that is not a lake at all
        (lake / "manifest.json").unlink()
        (lake / "notes.txt").write_text("mine")
        with pytest.raises(UsageError, match="no lake"):
            ws.land_in_lake()
        assert (lake / "notes.txt").read_text() == "mine"


def test_the_server_lands_what_it_acknowledged(tmp_path: Path) -> None:
    directory = tmp_path / "ws"
    with collector(directory, "[collector]\nland_lake_seconds = 0.2\n") as c:
        batch = {"batch": [{**e, "type": "track", "event": "Signed Up"}
                           for e in _events(25, 0, "s")]}
        r = httpx.post(f"{c.url}/v1/batch", json=batch, auth=(c.key, ""), timeout=10)
        assert r.status_code == 200
        c.wait_loaded()
        lake = c.ws.lake_path()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (lake / "manifest.json").is_file() and \
                    _manifest(lake)["tables"]["events"] == 25:
                break
            time.sleep(0.1)
        assert _lake_events(lake) == c.query("SELECT * FROM events ORDER BY message_id")
        r = httpx.post(f"{c.url}/v1/batch", json={"batch": _events(15, 5, "t")},
                       auth=(c.key, ""), timeout=10)
        assert r.status_code == 200
        c.wait_loaded()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _manifest(lake)["tables"]["events"] != 40:
            time.sleep(0.1)
        assert _lake_events(lake) == c.query("SELECT * FROM events ORDER BY message_id")
        assert list(lake.glob("events/day=2026-11-0[678]/load-*.parquet"))
        assert c.loader.status.get("lake_error") is None


def test_a_lake_without_events_is_written_again_only_once_they_come(tmp_path: Path) -> None:
    with demandloop.open(tmp_path / "ws") as ws:
        assert ws.land_in_lake().rewritten  # nothing yet: the lake, with its empty tables
        written = (ws.lake_path() / "manifest.json").stat().st_mtime_ns
        again = ws.land_in_lake()
        assert not again.rewritten and again.events == 0  # nothing new: left as it is
        assert (ws.lake_path() / "manifest.json").stat().st_mtime_ns == written
        _ingest(ws, tmp_path, 12, 0, "a")  # events, and no day folders to add them to
        landed = ws.land_in_lake()
        assert landed.rewritten and landed.events == 12
        assert _lake_events(ws.lake_path()) == _store_events(ws)
        _ingest(ws, tmp_path, 5, 1, "b")
        assert ws.land_in_lake().events == 5
        assert _lake_events(ws.lake_path()) == _store_events(ws)


def test_a_copied_workspace_erases_in_its_own_lake(tmp_path: Path) -> None:
    # the lake inside the workspace folder is recorded relative to it: a copy of the folder
    # (a restore, a staging copy) erasing a person rewrites its own lake, not the original's
    with demandloop.open(tmp_path / "a") as ws:
        _ingest(ws, tmp_path, 40, 0, "a")
        ws.export_parquet(ws.lake_path(), lake=True)
    shutil.copytree(tmp_path / "a", tmp_path / "b")

    def visits(lake: Path) -> int:
        return sum(1 for row in duckdb.sql(
            f"SELECT anonymous_id FROM read_parquet('{lake}/events/**/*.parquet', "
            "hive_partitioning = true)").fetchall() if row[0] == "a-3")

    assert visits(tmp_path / "a" / "lake") == visits(tmp_path / "b" / "lake") > 0
    with demandloop.open(tmp_path / "b") as ws:
        done = ws.erase_person("a-3")
    assert done["exports_rewritten"] == [str((tmp_path / "b" / "lake").resolve())]
    assert visits(tmp_path / "b" / "lake") == 0
    assert visits(tmp_path / "a" / "lake") > 0


def _files(lake: Path) -> dict[str, list[str]]:
    """The events files of each day folder, by folder."""
    out: dict[str, list[str]] = {}
    for path in sorted(lake.glob("events/day=*/*.parquet")):
        out.setdefault(path.parent.name, []).append(path.name)
    return out


def _today_events(n: int) -> list[dict[str, object]]:
    """*n* page views of today (UTC), within the last hour: today's folder."""
    now = dt.datetime.now(dt.UTC)
    start = max(now - dt.timedelta(hours=1), now.replace(hour=0, minute=0, second=0))
    return [{"type": "page", "messageId": str(uuid.uuid4()), "anonymousId": f"today-{i % 3}",
             "timestamp": (start + (now - start) * i / (n + 1)).isoformat(),
             "properties": {"path": "/today"}} for i in range(n)]


def test_past_days_are_merged_into_one_file_each(tmp_path: Path) -> None:
    directory = tmp_path / "ws"
    directory.mkdir()
    (directory / "demandloop.toml").write_text("[collector]\nlake_compact_files = 3\n")
    with demandloop.open(directory) as ws:
        _ingest(ws, tmp_path, 30, 0, "a")  # 1-3 November
        lake = ws.lake_path()
        assert ws.land_in_lake().rewritten
        # a landing with more of those days: each has two files, and is weeks old: merged
        _ingest(ws, tmp_path, 9, 0, "b")
        landed = ws.land_in_lake()
        assert (landed.events, landed.compacted) == (9, 3)
        files = _files(lake)
        assert all(len(names) == 1 and names[0].startswith("compact-")
                   for names in files.values()), files
        assert _lake_events(lake) == _store_events(ws)
        assert "compacting" not in _manifest(lake)
        assert not lake.with_name(f".{lake.name}.compacting").exists()
        # as on 3 November: the 2nd (yesterday) waits for three files, the 1st (older)
        # is merged at two, the 3rd (today) never
        on = dt.date(2026, 11, 3)
        for i in range(2):
            _ingest(ws, tmp_path, 9, 0, f"c{i}")
            assert lake_module.land_loads(ws.store, lake).events == 9  # (no merge)
            counts = {day: len(names) for day, names in _files(lake).items()}
            assert lake_module.compact_days(lake, 3, today=on) == [1, 2][i]
            after = {day: len(names) for day, names in _files(lake).items()}
            assert after["day=2026-11-01"] == 1
            assert after["day=2026-11-02"] == (counts["day=2026-11-02"] if i == 0 else 1)
            assert after["day=2026-11-03"] == counts["day=2026-11-03"] == 2 + i
            assert _lake_events(lake) == _store_events(ws)
        # the real today: its folder still receives loads, never merged
        today = f"day={dt.datetime.now(dt.UTC).date().isoformat()}"
        for i in range(3):
            ws.ingest(write_jsonl(tmp_path / f"t{i}.jsonl", _today_events(4)))
            ws.land_in_lake()
        if today not in _files(lake):  # (the test ran across midnight, UTC: today moved)
            pytest.skip("the day changed while the test ran")
        assert len(_files(lake)[today]) == 3
        assert _lake_events(lake) == _store_events(ws)
    with demandloop.open(tmp_path / "copy") as other:  # and the lake imports back whole
        other.import_parquet(lake)
        with demandloop.open(directory) as ws:
            assert _store_events(other) == _store_events(ws)


@pytest.mark.parametrize("moved", [False, True])
def test_a_merge_cut_short_is_undone_or_finished(tmp_path: Path, moved: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with demandloop.open(tmp_path / "ws") as ws:
        _ingest(ws, tmp_path, 20, 0, "a")
        lake = ws.lake_path()
        ws.land_in_lake()
        for i in range(3):
            _ingest(ws, tmp_path, 6, 0, f"b{i}")
            lake_module.land_loads(ws.store, lake)  # (landed, not merged)
        before = _files(lake)
        staging = lake.with_name(f".{lake.name}.compacting")
        real_replace, real_rmtree = lake_module.os.replace, lake_module.shutil.rmtree

        def replace(src: object, dst: object) -> None:
            if not moved and "compacting" in str(src):
                raise OSError("killed before the merged file was moved in")
            real_replace(src, dst)  # type: ignore[arg-type]

        def rmtree(path: object, **kw: object) -> None:
            if moved and Path(str(path)) == staging and any(
                    p.name.startswith("compact-") for p in lake.glob("events/*/*")):
                raise OSError("killed after the merged file was moved in")
            real_rmtree(path, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(lake_module.os, "replace", replace)
        monkeypatch.setattr(lake_module.shutil, "rmtree", rmtree)
        with pytest.raises(OSError, match="killed"):
            lake_module.compact_days(lake, 2)
        monkeypatch.undo()
        assert _manifest(lake)["compacting"]
        if moved:  # a reader meanwhile sees the merged rows beside the ones they replace
            assert len(_lake_events(lake)) > len(_store_events(ws))
        else:  # nothing in the lake changed
            assert _files(lake) == before and _lake_events(lake) == _store_events(ws)
        # the next landing finishes the merge or undoes it first, and then merges (three
        # days had several files: the first day's merge was finished, or undone)
        landed = ws.land_in_lake()
        assert (landed.events, landed.compacted) == (0, 2 if moved else 3)
        assert "compacting" not in _manifest(lake) and not staging.exists()
        assert all(len(names) == 1 for names in _files(lake).values())
        assert _lake_events(lake) == _store_events(ws)

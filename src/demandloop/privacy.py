"""Data-subject requests and retention over a whole workspace: the database, the collector's
log and dead letters, and the Parquet exports the workspace wrote.

* :func:`export_person` (access request): first loads whatever the collector acknowledged but
  had not stored yet, then every row about the person (:mod:`demandloop.store.privacy`).
* :func:`erase_person`: the same load, then the rows are deleted and the database file is
  rewritten; the collector's log segments, already loaded, are retired (a fresh empty
  segment takes over, so no byte of them stays on disk); dead letters naming the person are
  dropped, and so are the ``.eml`` files a ``file`` mailbox wrote to them; each export the
  workspace wrote (``exports.json``) is rewritten without them.
* :func:`apply_retention`: raw events received more than ``collect.retention_days`` ago are
  deleted (the server runs it with its maintenance).

While ``demandloop serve`` holds the workspace these run inside it (the CLI sends them
there), and the server lends the workspace a :class:`LogAccess` of its own: loading goes
through its loader, the log it is writing is rotated before its old segments are removed,
and nothing else reads or writes while the database file is rewritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from demandloop.collect.log import retire_loaded
from demandloop.store import privacy
from demandloop.store.db import Store
from demandloop.store.parquet import MANIFEST, export_parquet, import_parquet, read_manifest

if TYPE_CHECKING:
    from demandloop.workspace import Workspace

EXPORTS_FILE = "exports.json"


def record_export(directory: Path, target: Path) -> None:
    """Remember that *directory*'s workspace wrote an export to *target* (so an erasure can
    reach it). An export inside the workspace's folder (its lake, by default) is recorded
    relative to it: a copy of the folder then erases in its own copy of the export, not in
    the original's."""
    known = _recorded(directory)
    resolved, base = target.resolve(), directory.resolve()
    entry = str(resolved.relative_to(base)) if resolved.is_relative_to(base) \
        else str(resolved)
    if str(resolved) not in _absolute(directory, known):
        path = directory / EXPORTS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"exports": [*known, entry]}, option=orjson.OPT_INDENT_2))
        os.replace(tmp, path)


def _recorded(directory: Path) -> list[str]:
    """The entries of ``exports.json`` as written (relative to *directory*, or absolute)."""
    path = directory / EXPORTS_FILE
    if not path.is_file():
        return []
    try:
        return [str(p) for p in orjson.loads(path.read_bytes()).get("exports", [])]
    except (orjson.JSONDecodeError, AttributeError):
        return []


def _absolute(directory: Path, names: list[str]) -> list[str]:
    return [n if Path(n).is_absolute() else str(directory.resolve() / n) for n in names]


def _exports(directory: Path) -> list[str]:
    """The exports *directory*'s workspace wrote, as absolute paths."""
    return _absolute(directory, _recorded(directory))


class LogAccess(Protocol):
    """How an erasure reaches the collector's log: directly (no server runs), or through
    the server that is writing it (see demandloop.serve.quiesce)."""

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Nothing else loads, reads or writes the workspace meanwhile."""
        ...

    def load_all(self) -> int:
        """Store everything acknowledged so far; returns the events loaded."""
        ...

    def retire(self) -> int:
        """Remove every loaded segment, so no byte of the erased person stays on disk;
        returns the segments removed."""
        ...


class DirectLog:
    """The log's folders when no server runs: nothing writes them meanwhile."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.root = ws.directory / ws.settings.collector.log_dir

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        yield

    def load_all(self) -> int:
        from demandloop.serve.loader import Loader

        if not self.root.is_dir():
            return 0
        loader = Loader(self.ws.store, self.root)
        while loader.load_once():
            pass
        return int(loader.status["loaded"])

    def retire(self) -> int:
        folders = sorted(p for p in self.root.iterdir() if p.is_dir()) \
            if self.root.is_dir() else []
        return sum(retire_loaded(folder) for folder in folders)


def _log(ws: Workspace) -> LogAccess:
    return ws.log_access or DirectLog(ws)


def load_collector_log(ws: Workspace) -> int:
    """Store everything the collector acknowledged and had not loaded; returns the events
    loaded."""
    return _log(ws).load_all()


def export_person(ws: Workspace, key: str) -> dict[str, Any]:
    """Everything stored about the person *key* (email, user id or anonymous id) names."""
    load_collector_log(ws)
    return privacy.export(ws.store, key)


def erase_person(ws: Workspace, key: str, now: dt.datetime | None = None
                 ) -> dict[str, Any]:
    """Remove the person *key* names from the workspace (see the module docstring)."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    log = _log(ws)
    with log.exclusive():
        log.load_all()
        subject, counts = privacy.erase(ws.store, key, now)
        ws.store.rewrite()
        retired = log.retire()
    dead = _drop_dead_letters(ws, subject.needles())
    mail = _drop_outbox_messages(ws, subject.needles())
    exports = [str(p) for p in _erase_in_exports(ws, key, now)]
    return {"found": subject.found, "rows": counts, "log_segments_retired": retired,
            "dead_letters_removed": dead, "outbox_messages_removed": mail,
            "exports_rewritten": exports, "suppressed_hashes": len(subject.emails)}


def _drop_outbox_messages(ws: Workspace, needles: set[str]) -> int:
    """Delete the ``.eml`` files a mailbox with ``transport = "file"`` wrote (its dry run:
    the demo's sequence, a test of one) that name the person: their address in ``To``,
    their name and what they read in the body."""
    folders = {ws.directory / box.outbox for box in ws.settings.activate.mailboxes
               if box.transport == "file"}
    removed = 0
    for folder in sorted(folders):
        if not folder.is_dir() or not needles:
            continue
        for path in sorted(folder.glob("*.eml")):
            text = path.read_bytes().decode("utf-8", "replace").lower()
            if any(n in text for n in needles):
                path.unlink()
                removed += 1
    return removed


def _drop_dead_letters(ws: Workspace, needles: set[str]) -> int:
    from demandloop.serve.dead_letters import DEAD_LETTER

    path = ws.directory / ws.settings.collector.log_dir / DEAD_LETTER
    if not path.is_file() or not needles:
        return 0
    kept, dropped = [], 0
    for line in path.read_bytes().splitlines():
        text = line.decode("utf-8", "replace").lower()
        if any(n in text for n in needles):
            dropped += 1
        else:
            kept.append(line + b"\n")
    if dropped:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)
    return dropped


def _erase_in_exports(ws: Workspace, key: str, now: dt.datetime) -> list[Path]:
    done = []
    for name in _exports(ws.directory):
        target = Path(name)
        if not (target / MANIFEST).is_file():
            continue
        manifest = read_manifest(target)
        copy = Store.open(":memory:", workspace_id=manifest.workspace_id)
        try:
            import_parquet(copy, target)
            _, counts = privacy.erase(copy, key, now)
            if counts:  # in the layout it had (a lake stays a lake)
                export_parquet(copy, target, lake=manifest.layout == "lake")
                done.append(target)
        finally:
            copy.close()
    return done


def apply_retention(store: Store, days: int, now: dt.datetime | None = None) -> int:
    """Delete raw events received more than *days* ago (0: none); returns how many."""
    if days <= 0:
        return 0
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with store.writer() as cur:
        rows = cur.execute("DELETE FROM events WHERE workspace_id = $ws AND received_at < $t "
                           "RETURNING 1", {"ws": store.workspace_id,
                                           "t": now - dt.timedelta(days=days)}).fetchall()
        if rows:  # and the addresses resolve looked up for them alone, and what it kept
            # of their identify and group calls
            cur.execute("DELETE FROM ip_lookups WHERE workspace_id = $ws AND ip NOT IN "
                        "(SELECT ip FROM events WHERE workspace_id = $ws AND ip IS NOT NULL)",
                        {"ws": store.workspace_id})
            cur.execute("DELETE FROM described_calls WHERE workspace_id = $ws AND message_id "
                        "NOT IN (SELECT message_id FROM events WHERE workspace_id = $ws)",
                        {"ws": store.workspace_id})
    return len(rows)

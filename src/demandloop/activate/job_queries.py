"""Durable workflow jobs: enqueue idempotently, pick what is due, record every outcome.

A job is one action of one firing (see :mod:`demandloop.activate.workflows`); its id is a
hash of the firing and the step, so enqueuing the same firing twice stores nothing new.
Statuses: ``pending`` -> ``done`` | ``pending`` again after a failure (``attempts`` + 1,
``next_attempt_at`` backed off) -> ``dead`` after the last attempt (the dead letter list);
the steps after a dead one become ``skipped``. The rows are the audit trail per account.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from demandloop.store.db import Store

_COLS = ("job_id", "workflow", "firing", "step", "action", "account_id", "trigger", "payload")


def enqueue(store: Store, rows: list[dict[str, Any]], now: dt.datetime) -> int:
    """Add jobs not already known; returns how many were new."""
    if not rows:
        return 0
    table = pa.table({c: pa.array([r[c] for r in rows],
                                  pa.int32() if c == "step" else pa.string()) for c in _COLS})
    with store.writer() as cur:
        cur.register("_jobs", table)
        try:
            before = cur.execute("SELECT count(*) FROM jobs WHERE workspace_id = ?",
                                 [store.workspace_id]).fetchone()
            cur.execute(
                f"INSERT INTO jobs (workspace_id, {', '.join(_COLS)}, status, attempts, "
                "next_attempt_at, created_at) "
                f"SELECT $ws, {', '.join(_COLS)}, 'pending', 0, $now, $now FROM _jobs "
                "ON CONFLICT DO NOTHING", {"ws": store.workspace_id, "now": now})
            after = cur.execute("SELECT count(*) FROM jobs WHERE workspace_id = ?",
                                [store.workspace_id]).fetchone()
        finally:
            cur.unregister("_jobs")
    return int(after[0]) - int(before[0]) if after and before else 0


def known_ids(store: Store) -> set[str]:
    """Every job id enqueued so far (what a dry run would not add again)."""
    with store.reader() as cur:
        return {r[0] for r in cur.execute("SELECT job_id FROM jobs WHERE workspace_id = ?",
                                          [store.workspace_id]).fetchall()}


def due(store: Store, now: dt.datetime, limit: int = 1000) -> pd.DataFrame:
    """Pending jobs whose time has come and whose previous step is done, in order."""
    with store.reader() as cur:
        return cur.execute(
            "SELECT j.* EXCLUDE (workspace_id) FROM jobs j WHERE j.workspace_id = $ws "
            "AND j.status = 'pending' AND j.next_attempt_at <= $now AND (j.step = 0 OR EXISTS "
            "(SELECT 1 FROM jobs p WHERE p.workspace_id = j.workspace_id AND p.firing = "
            "j.firing AND p.step = j.step - 1 AND p.status = 'done')) "
            "ORDER BY j.created_at, j.firing, j.step LIMIT $limit",
            {"ws": store.workspace_id, "now": now, "limit": limit}).df()


def finish(store: Store, job: str, *, status: str, now: dt.datetime, result: str | None = None,
           error: str | None = None, next_at: dt.datetime | None = None,
           effect: tuple[str, Any] | None = None) -> None:
    """Record an attempt's outcome; *effect* (``("set", (account, field, value))`` or
    ``("task", row)``) is applied in the same transaction as ``done``."""
    with store.writer() as cur:
        _finish(cur, store.workspace_id, job, status=status, now=now, result=result,
                error=error, next_at=next_at, effect=effect)


def finish_done(store: Store, done: list[tuple[str, str, tuple[str, Any] | None]],
                counters: dict[str, int], now: dt.datetime) -> None:
    """Record many jobs as done (``(job_id, result, effect)``, effects as in :func:`finish`)
    and the round-robin *counters* they moved, in one transaction: each job's effect still
    commits with its ``done``, and a crash before the commit leaves them all pending, to be
    run again (their effects are idempotent: an owner set, a task keyed by its id)."""
    if not done and not counters:
        return
    with store.writer() as cur:
        for job, result, effect in done:
            _finish(cur, store.workspace_id, job, status="done", now=now, result=result,
                    effect=effect)
        for name, counter in counters.items():
            cur.execute("INSERT OR REPLACE INTO workflow_cursors VALUES (?, ?, NULL, ?)",
                        [store.workspace_id, name, counter])


def _finish(cur: duckdb.DuckDBPyConnection, ws: str, job: str, *, status: str, now: dt.datetime,
            result: str | None = None, error: str | None = None,
            next_at: dt.datetime | None = None,
            effect: tuple[str, Any] | None = None) -> None:
    if effect is not None and effect[0] == "set":
        account, field, value = effect[1]
        cur.execute(f"UPDATE accounts SET {field} = ?, updated_at = ? WHERE "
                    "workspace_id = ? AND account_id = ?", [value, now, ws, account])
    elif effect is not None and effect[0] == "task":
        t = effect[1]
        cur.execute("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [ws, t["task_id"], t["account_id"], t["title"], t["owner"], t["due_at"],
                     t["workflow"], now])
    cur.execute(
        "UPDATE jobs SET status = $status, attempts = attempts + 1, result = $result, "
        "last_error = $error, next_attempt_at = $next, "
        "done_at = CASE WHEN $status IN ('done', 'dead') THEN $now END "
        "WHERE workspace_id = $ws AND job_id = $job",
        {"status": status, "result": result, "error": error, "next": next_at, "now": now,
         "ws": ws, "job": job})
    if status == "dead":
        cur.execute("UPDATE jobs SET status = 'skipped', last_error = 'an earlier step "
                    "failed' WHERE workspace_id = ? AND status = 'pending' AND firing = "
                    "(SELECT firing FROM jobs WHERE workspace_id = ? AND job_id = ?)",
                    [ws, ws, job])


def cursor(store: Store, name: str) -> tuple[dt.datetime | None, int]:
    with store.reader() as cur:
        row = cur.execute("SELECT value, counter FROM workflow_cursors WHERE workspace_id = ? "
                          "AND name = ?", [store.workspace_id, name]).fetchone()
    return (row[0], int(row[1] or 0)) if row else (None, 0)


def set_cursor(store: Store, name: str, value: dt.datetime | None, counter: int = 0) -> None:
    with store.writer() as cur:
        cur.execute("INSERT OR REPLACE INTO workflow_cursors VALUES (?, ?, ?, ?)",
                    [store.workspace_id, name, value, counter])


def history(store: Store, account: str | None = None, limit: int = 200) -> pd.DataFrame:
    with store.reader() as cur:
        return cur.execute(
            "SELECT created_at, workflow, step, action, account_id, trigger, status, attempts, "
            "result, last_error, done_at FROM jobs WHERE workspace_id = $ws "
            "AND ($account IS NULL OR account_id = $account) "
            "ORDER BY created_at DESC, firing, step LIMIT $limit",
            {"ws": store.workspace_id, "account": account, "limit": limit}).df()


def retry(store: Store, job: str, now: dt.datetime) -> bool:
    """Give a dead job another try now (and the steps after it, skipped when it died);
    False if *job* is not dead."""
    with store.writer() as cur:
        row = cur.execute("SELECT firing, step FROM jobs WHERE workspace_id = ? AND job_id = ? "
                          "AND status = 'dead'", [store.workspace_id, job]).fetchone()
        if row is None:
            return False
        cur.execute("UPDATE jobs SET status = 'pending', next_attempt_at = $now, done_at = NULL, "
                    "last_error = NULL WHERE workspace_id = $ws AND firing = $f AND ("
                    "job_id = $job OR (status = 'skipped' AND step > $step))",
                    {"now": now, "ws": store.workspace_id, "f": row[0], "job": job,
                     "step": row[1]})
    return True

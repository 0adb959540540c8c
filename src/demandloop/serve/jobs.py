"""Work the API starts and a client polls: ``POST /api/v1/rescore`` answers 202 with a job,
``GET /api/v1/jobs/{id}`` says queued, running, done (with its result) or failed (with the
error). Jobs run one at a time in a thread of their own, holding the server's loop lock, so
a rescore never interleaves with the loader's own resolve and score; imports hold the same
lock in the request's thread (:meth:`Jobs.run_now`).

Jobs live in memory for the server's run (the last :data:`KEEP` of them): what a job did is
in the workspace; the job record only says when it finished.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger("demandloop.loader")
KEEP = 500
T = TypeVar("T")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Jobs:
    """The job runner of one server."""

    def __init__(self, lock: threading.RLock) -> None:
        self.lock = lock
        self.on_done: Callable[[], None] | None = None
        self._jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dl-job")
        self._guard = threading.Lock()

    def submit(self, kind: str, fn: Callable[[], Any]) -> dict[str, Any]:
        """Queue *fn*; returns the job's record (its ``id`` to poll)."""
        job: dict[str, Any] = {"id": secrets.token_hex(8), "kind": kind, "status": "queued",
                               "submitted_at": _now(), "started_at": None,
                               "finished_at": None, "result": None, "error": None}
        with self._guard:
            self._jobs[job["id"]] = job
            while len(self._jobs) > KEEP:
                self._jobs.popitem(last=False)
        self._pool.submit(self._run, job, fn)
        return dict(job)

    def _run(self, job: dict[str, Any], fn: Callable[[], Any]) -> None:
        job["status"], job["started_at"] = "running", _now()
        try:
            with self.lock:
                job["result"] = fn()
            job["status"] = "done"
        except Exception as exc:  # a job's failure is its answer, never the server's end
            log.exception("job %s (%s) failed", job["id"], job["kind"])
            job["status"], job["error"] = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job["finished_at"] = _now()
            if self.on_done is not None:
                self.on_done()

    def run_now(self, fn: Callable[[], T]) -> T:
        """Run *fn* in this thread under the loop lock (imports: the caller waits)."""
        with self.lock:
            return fn()

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._guard:
            job = self._jobs.get(job_id)
            return None if job is None else dict(job)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

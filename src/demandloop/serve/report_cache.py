"""Reports cached per state of the data, for ``GET /api/v1/reports/{name}``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from demandloop.serve import reports

if TYPE_CHECKING:
    from demandloop.workspace import Workspace


class ReportCache:
    """Reports computed once per state of the data: the key is the report, its parameters
    and :meth:`generation`, which moves with every scoring snapshot, resolve, and write made
    through this server. A heavy report (attribution over every path) is computed by the
    first request after a change; the others get the same answer at once."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.writes = 0
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()

    def changed(self) -> None:
        self.writes += 1

    def generation(self) -> tuple[Any, ...]:
        with self.ws.store.reader() as cur:
            row = cur.execute(
                "SELECT (SELECT max(as_of) FROM scores WHERE workspace_id = $ws), "
                "(SELECT max(resolved_at) FROM resolve_state WHERE workspace_id = $ws), "
                "(SELECT count(*) FROM opportunities WHERE workspace_id = $ws), "
                "(SELECT count(*) FROM spend WHERE workspace_id = $ws)",
                {"ws": self.ws.store.workspace_id}).fetchone()
        return (*(row or ()), self.writes)

    def get(self, name: str, params: dict[str, Any]) -> Any:
        key = (name, tuple(sorted(params.items())), self.generation())
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        data = reports.payload(self.ws, name, params)
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if k[2] == key[2]}
            self._cache[key] = data
        return data

"""Reports cached per state of the data, for ``GET /api/v1/reports/{name}``, and the
current accounts that ``GET /api/v1/accounts`` pages through."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from demandloop.serve import reports
from demandloop.store import account_pages as pages

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
                "(SELECT count(*) FROM spend WHERE workspace_id = $ws), "
                "(SELECT max(updated_at) FROM accounts WHERE workspace_id = $ws), "
                "(SELECT count(*) FROM accounts WHERE workspace_id = $ws)",
                {"ws": self.ws.store.workspace_id}).fetchone()
        return (*(row or ()), self.writes)

    def accounts(self) -> pa.Table:
        """Every account's current row (see account_pages.current_accounts), once per
        state of the data."""
        return self.get("_accounts", {}, lambda: pages.current_accounts(self.ws.store))

    def get(self, name: str, params: dict[str, Any],
            compute: Callable[[], Any] | None = None) -> Any:
        key = (name, tuple(sorted(params.items())), self.generation())
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        data = compute() if compute is not None else reports.payload(self.ws, name, params)
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if k[2] == key[2]}
            self._cache[key] = data
        return data

"""demandloop: an open-source, self-hosted account-based go-to-market engine.

Example:
    >>> import tempfile, demandloop
    >>> ws = demandloop.open(tempfile.mkdtemp())
    >>> ws.counts()["events"]
    0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from demandloop.errors import DemandloopError

if TYPE_CHECKING:
    from demandloop.workspace import Workspace, open

__version__ = "0.1.0"
__all__ = ["DemandloopError", "Workspace", "__version__", "open"]


def __getattr__(name: str) -> Any:
    # the workspace (pandas, Ibis, DuckDB) loads on first use, not with every submodule:
    # 'demandloop --help' imports demandloop.cli, which imports this package first
    if name in ("Workspace", "open"):
        from demandloop import workspace

        return getattr(workspace, name)
    raise AttributeError(f"module 'demandloop' has no attribute {name!r}")

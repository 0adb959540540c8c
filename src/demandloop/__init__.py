"""demandloop: an open-source, self-hosted account-based go-to-market engine.

Example:
    >>> import tempfile, demandloop
    >>> ws = demandloop.open(tempfile.mkdtemp())
    >>> ws.counts()["events"]
    0
"""

from demandloop.errors import DemandloopError
from demandloop.workspace import Workspace, open

__version__ = "0.1.0"
__all__ = ["DemandloopError", "Workspace", "__version__", "open"]

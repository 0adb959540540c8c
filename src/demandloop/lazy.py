"""Modules imported on first use, so ``demandloop --help`` and the quick commands do not pay
for pandas, Ibis and scikit-learn (measured with ``python -X importtime``: importing the CLI
took 1.0 s on a quiet machine, of which 0.87 s went to the workspace's dependencies)."""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    """Stands for the module *name*; the first attribute read imports it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attr)

"""The names reports accept (funnel stages and breakdowns, attribution models), kept apart
from the modules that compute them so the command line can list them without importing
pandas."""

from __future__ import annotations

from demandloop.errors import InputError

STAGES: tuple[str, ...] = ("reached", "engaged", "mql", "mqa", "opportunity", "won")
DIMENSIONS: tuple[str, ...] = ("channel", "motion", "band", "industry", "size", "target",
                               "cohort")
HEURISTIC_MODELS: tuple[str, ...] = ("first_touch", "last_touch", "last_non_direct", "linear",
                                     "time_decay", "position_based", "w_shaped")
#: every model name attribution accepts, in display order
ALL_MODELS: tuple[str, ...] = (*HEURISTIC_MODELS, "markov", "markov_2", "markov_3", "shapley")
DEFAULT_MODELS: tuple[str, ...] = ("first_touch", "last_touch", "linear", "w_shaped",
                                   "markov", "shapley")


def dimension(by: str | None) -> str | None:
    """*by* when the funnel can be broken down by it (or None: no breakdown); else the one
    error every edge gives (the CLI, the API, the dashboard)."""
    if by is not None and by not in DIMENSIONS:
        raise InputError(f"cannot break the funnel down by '{str(by)[:40]}'",
                         hint=f"choose from {', '.join(DIMENSIONS)}")
    return by

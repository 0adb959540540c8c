"""The names reports accept (funnel stages and breakdowns, attribution models), kept apart
from the modules that compute them so the command line can list them without importing
pandas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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


def attribution_note(rows: Sequence[Mapping[Any, Any]], models: Sequence[str], *,
                     level: str, outcome: str | None, measure: str) -> str | None:
    """What an attribution table cannot say by itself, said once for the command line and
    the dashboard: no journey at all, or journeys none of which ends in the outcome (a
    table of 0.00 for every channel and model). None when there is credit to show."""
    if not rows:
        return "no journeys to credit yet: ingest events and run 'demandloop resolve'"
    if any(r.get(m) for r in rows for m in models):
        return None
    goal = (outcome or "opportunity") if level == "account" else "lead"
    ends = {"opportunity": "an opportunity", "won": "a won deal"}.get(goal, "a lead")
    where = ("a person's first form fill, demo request, trial or webinar registration ends "
             "theirs" if level == "person" else
             "import opportunities with 'demandloop import opportunities FILE'")
    value = " with a value" if measure == "value" else ""
    return f"nothing to credit: no journey ends in {ends}{value} yet ({where})"

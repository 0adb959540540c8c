"""The names reports accept (funnel stages and breakdowns, attribution models), kept apart
from the modules that compute them so the command line can list them without importing
pandas."""

from __future__ import annotations

STAGES: tuple[str, ...] = ("reached", "engaged", "mql", "mqa", "opportunity", "won")
DIMENSIONS: tuple[str, ...] = ("channel", "motion", "band", "industry", "size", "target",
                               "cohort")
HEURISTIC_MODELS: tuple[str, ...] = ("first_touch", "last_touch", "last_non_direct", "linear",
                                     "time_decay", "position_based", "w_shaped")
#: every model name attribution accepts, in display order
ALL_MODELS: tuple[str, ...] = (*HEURISTIC_MODELS, "markov", "markov_2", "markov_3", "shapley")
DEFAULT_MODELS: tuple[str, ...] = ("first_touch", "last_touch", "linear", "w_shaped",
                                   "markov", "shapley")

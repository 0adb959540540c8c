"""The reports as JSON: one shape for ``demandloop report <name> --json`` and
``GET /api/v1/reports/<name>``, so a script gets the same figures from either."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from demandloop.errors import UsageError
from demandloop.measure.names import ALL_MODELS, DEFAULT_MODELS, dimension
from demandloop.render import records

if TYPE_CHECKING:
    from demandloop.workspace import Workspace

REPORTS = ("funnel", "health", "attribution", "pipeline", "scorecard", "sla", "personalization",
           "aeo")
#: what velocity and speed to lead say before stage changes have dates of their own
NO_HISTORY = ("one scoring run dates every stage change to that run, so there is no "
              "history to measure yet: run 'demandloop score --backfill 7' (or let "
              "'demandloop serve' score as events arrive)")


def models(text: str) -> tuple[str, ...]:
    """``--models`` / ``?models=``: comma-separated model names."""
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    if not names:
        raise UsageError("no attribution model given",
                         hint=f"use a comma-separated list of {', '.join(ALL_MODELS)}")
    return names


def payload(ws: Workspace, name: str, params: dict[str, Any], *, engine: str = "duckdb"
            ) -> Any:
    """Report *name* with *params* as JSON-ready data, the funnel, health, attribution,
    pipeline and scorecard computed on *engine* (the server's reports read its store:
    ``duckdb``)."""
    if name == "funnel":
        return records(ws.funnel(dimension(params.get("by")), engine=engine))
    if name == "health":
        summary, series = ws.health(engine=engine)
        return {**summary, "series": records(series.reset_index())}
    if name == "attribution":
        return records(ws.attribution(
            level=params.get("level", "account"), outcome=params.get("outcome"),
            models=models(params.get("models") or ",".join(DEFAULT_MODELS)),
            measure=params.get("measure", "conversions"), engine=engine))
    if name == "pipeline":
        data = ws.pipeline(engine=engine)
        return {"summary": data["summary"], "channels": records(data["channels"])}
    if name == "scorecard":
        data = ws.scorecard(engine=engine)
        return {**{k: v for k, v in data.items() if k not in ("card", "channels")},
                "card": records(data["card"]), "channels": records(data["channels"])}
    if name == "sla":
        data = ws.sla()
        note = NO_HISTORY if ws.score_snapshots() <= 1 else None
        return {**data, "note": note} if note else data
    if name == "personalization":
        import pandas as pd  # here: the CLI imports this module, and pandas is slow to load

        as_of = params.get("as_of")
        try:
            at = pd.Timestamp(as_of) if as_of else None
        except ValueError:
            raise UsageError(f"as_of: '{str(as_of)[:40]}' is not a date or timestamp",
                             hint="use an ISO date such as 2026-03-01") from None
        return ws.personalization(at)
    if name == "aeo":
        import pandas as pd

        text = params.get("as_of")
        try:
            when = pd.Timestamp(text).to_pydatetime() if text else None
        except ValueError:
            raise UsageError(f"as_of: '{str(text)[:40]}' is not a date or timestamp",
                             hint="use an ISO date such as 2026-03-01") from None
        return ws.aeo(int(params.get("days") or 28), when)
    raise UsageError(f"no report '{name[:40]}'", hint=f"use one of {', '.join(REPORTS)}")

"""The report pages (funnel, attribution, demand health, pipeline, scorecard, speed to lead,
personalisation lift, AI crawlers and answers)
as charts and tables, from the same cached JSON as ``GET /api/v1/reports/{name}``; and the
demand-health banner every page loads after it renders (htmx), so a slow report never holds
up a page."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from demandloop.errors import DemandloopError, UsageError
from demandloop.measure.names import (
    ALL_MODELS,
    DEFAULT_MODELS,
    DIMENSIONS,
    STAGES,
    attribution_note,
)
from demandloop.serve.web import charts
from demandloop.serve.web.site import HEADERS, Site
from demandloop.store.account_pages import check_choices

TITLES = {"funnel": "Funnel", "attribution": "Attribution", "health": "Demand health",
          "pipeline": "Pipeline", "scorecard": "Scorecard", "sla": "Speed to lead",
          "personalization": "Personalisation", "aeo": "AI answers (AEO)"}


def register(web: FastAPI, site: Site) -> None:
    """Add the report pages and the banner to *web*."""

    def report(name: str, params: dict[str, Any]) -> Any:
        with site.gate.shared():
            return site.cache.get(name, params)

    @web.get("/reports/{name}")
    async def report_page(request: Request, name: str, by: str = "", level: str = "account",
                          outcome: str = "opportunity", measure: str = "conversions"
                          ) -> Response:
        if level == "person":
            # the form always sends its outcome and measure; a lead has neither (the API
            # refuses them), so "person" chosen on the form was a 400 page
            outcome, measure = "opportunity", "conversions"
        chosen = request.query_params.getlist("model")
        models = chosen or list(DEFAULT_MODELS)
        user, session = site.who(request)
        if name not in TITLES:
            return site.page(request, "error.html", user, session, 404,
                             message=f"no report '{name[:40]}'")
        try:
            # a model misspelt in a bookmark, or a funnel broken down twice, is a page
            # saying so (as the API answers), not the defaults shown as if asked for
            check_choices("model", chosen, ALL_MODELS)
            if len(request.query_params.getlist("by")) > 1:
                raise UsageError("the funnel is broken down by one dimension at a time",
                                 hint=f"choose one of {', '.join(DIMENSIONS)}")
        except UsageError as exc:
            return site.page(request, "error.html", user, session, 400, message=str(exc))
        choices: dict[str, dict[str, Any]] = {
            "funnel": {"by": by or None},
            "attribution": {"level": level,
                            "outcome": outcome if level != "person" else None,
                            "models": ",".join(models), "measure": measure}}
        params = choices.get(name, {})
        try:
            data = await run_in_threadpool(report, name, params)
        except DemandloopError as exc:
            return site.page(request, "error.html", user, session, 400, message=str(exc))
        chart, table = _view(name, data, params, models)
        note = attribution_note(data, models, level=level, outcome=outcome, measure=measure
                                ) if name == "attribution" else None
        if note or not table[1] or (name == "health" and not data.get("series")):
            chart = None  # (an empty chart, or one of zeros, says nothing)
        return site.page(request, "report.html", user, session, name=name, titles=TITLES,
                         data=data, chart=chart, table=table, note=note, by=by, level=level,
                         outcome=outcome, measure=measure, dimensions=DIMENSIONS,
                         all_models=ALL_MODELS, models=models)

    @web.get("/banner")
    async def banner(request: Request) -> Response:
        site.who(request)
        try:
            health = await run_in_threadpool(report, "health", {})
        except DemandloopError:
            return HTMLResponse("", headers=HEADERS)
        if not health.get("alarm"):
            return HTMLResponse("", headers=HEADERS)
        return site.render(request, "banner.html", verdict=health["verdict"])


def _view(name: str, data: Any, params: dict[str, Any], models: list[str]
          ) -> tuple[Any, tuple[list[str], list[list[Any]]]]:
    """The chart and the table (columns, rows) of report *name*."""
    if name == "funnel":
        groups = data[:6]
        chart = charts.bars("Accounts reaching each stage", STAGES, {
            str(g.get(params.get("by") or "group", "all")): [g[s] for s in STAGES]
            for g in groups})
        return chart, _table(data)
    if name == "attribution":
        channels = [r["channel"] for r in data]
        models = [m for m in models if data and m in data[0]]
        return charts.bars("Credit per channel, by model", channels,
                           {m: [r[m] for r in data] for m in models}), _table(data)
    if name == "health":
        series = data.get("series", [])
        keys = [k for k in (series[0] if series else {}) if k != "week"]
        chart = charts.lines("Weekly demand and capture", [str(r["week"])[:10] for r in series],
                             {k: [r[k] for r in series] for k in keys})
        trends = [{"indicator": k, **{f: v.get(f) for f in ("direction", "change", "tau", "p")}}
                  for k, v in data.get("trends", {}).items()]
        return chart, _table(trends)
    if name == "pipeline":
        rows = data["channels"]
        return charts.bars("Pipeline sourced and influenced per channel",
                           [r["channel"] for r in rows],
                           {"sourced": [r["sourced_amount"] for r in rows],
                            "influenced": [r["influenced_amount"] for r in rows]}), _table(rows)
    if name == "scorecard":
        card = data["card"]
        return charts.bars("Demand gen and lead gen, per criterion (0-10)",
                           [r["criterion"] for r in card],
                           {"demand gen": [r["demand_gen_blended"] for r in card],
                            "lead gen": [r["lead_gen_blended"] for r in card]}), _table(card)
    if name == "aeo":
        weeks = sorted({str(r["week"])[:10] for r in data["crawls"]})
        kinds = sorted({r["category"] for r in data["crawls"]})
        counts = {(str(r["week"])[:10], r["category"]): 0 for r in data["crawls"]}
        for r in data["crawls"]:
            counts[(str(r["week"])[:10], r["category"])] += r["requests"]
        chart = charts.lines("AI crawler requests per week", weeks,
                             {k: [counts.get((w, k), 0) for w in weeks] for k in kinds})
        rows = [{**r, "never_crawled_by_ai_search": r["search_crawls"] == 0}
                for r in data["pages"]]
        return chart, _table(rows)
    if name == "personalization":
        lifts = data["lifts"]
        labels = [f"{r['experience']} / {r['goal']}" for r in lifts]
        shown = [{k: r[k] for k in ("experience", "goal", "exposed", "exposed_rate", "control",
                                    "control_rate", "difference", "difference_low",
                                    "difference_high", "p_value", "pending", "statement")}
                 for r in lifts]
        return charts.bars("Conversion rate, exposed and control accounts", labels,
                           {"exposed": [r["exposed_rate"] for r in lifts],
                            "control": [r["control_rate"] for r in lifts]}), _table(shown)
    rows = [{"stage": k, **v} for k, v in data.items() if isinstance(v, dict)]
    return charts.bars("Hours to the first sales touch (median)", [r["stage"] for r in rows],
                       {"median hours": [r.get("median_hours") for r in rows]}), _table(rows)


def _table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    columns = list(rows[0]) if rows else []
    return columns, [[r.get(c) for c in columns] for r in rows]

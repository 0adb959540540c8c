"""``demandloop report funnel|health|attribution|pipeline|scorecard|html|conversion|
lead-scoring|sla``: the measure stage's commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from demandloop.cli.base import (
    EngineOpt,
    HorizonOpt,
    JsonOpt,
    _date,
    _json,
    _open,
    _print_report,
    _records,
    _say,
    _stdout,
    _table,
    err,
    out,
    report_app,
)
from demandloop.csvfiles import cells
from demandloop.errors import UsageError
from demandloop.lazy import LazyModule
from demandloop.measure.names import (
    ALL_MODELS,
    DEFAULT_MODELS,
    DIMENSIONS,
    STAGES,
    attribution_note,
)
from demandloop.serve import reports
from demandloop.serve.reports import NO_HISTORY

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: 'demandloop --help' and the quick commands need none
    pd = LazyModule("pandas")


CsvOpt = typer.Option(False, "--csv", help="Print CSV instead of tables.")


def _emit(df: pd.DataFrame, title: str, as_json: bool, as_csv: bool,
          formats: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
    if as_json and as_csv:
        raise UsageError("--json and --csv cannot be used together")
    if as_json:
        _json({**(extra or {}), "rows": _records(df)} if extra else _records(df))
    elif as_csv:
        cells(df).to_csv(_stdout(), index=False)
    else:
        out.print(_table(df, title, formats))


@report_app.command("funnel")
def report_funnel(
    by: str | None = typer.Option(None, "--by", help=f"One of {', '.join(DIMENSIONS)}."),
    engine: str | None = EngineOpt,
    as_json: bool = JsonOpt, as_csv: bool = CsvOpt,
) -> None:
    """Reach -> engaged -> MQL -> MQA -> opportunity -> won: counts, rates, velocity."""
    if as_json and not as_csv:
        with _open() as ws:
            _json(reports.payload(ws, "funnel", {"by": by}, engine=ws.engine(engine)))
        return
    with _open() as ws:
        df = ws.funnel(by, engine=ws.engine(engine))
        note = NO_HISTORY if ws.score_snapshots() <= 1 else None
    if not (as_json or as_csv):
        key = by or "group"
        rates = {c: _short(c) for c in df.columns if "_to_" in c and not c.startswith("days_")}
        days = {c: _short(c) for c in df.columns if c.startswith("days_")}
        # cpl is spend per MQL *person* (a lead): their count stands beside it, not the
        # accounts-at-MQL count of the stage table
        money = [c for c in ("pipeline", "revenue", "spend", "mqls", "cpl", "cost_per_opp",
                             "roi") if c in df.columns and (c != "mqls" or "cpl" in df)]
        title = f"funnel{' by ' + by if by else ''}"
        out.print(_table(df[[key, *STAGES]], f"{title}: accounts reaching each stage"))
        out.print(_table(df[[key, *rates]].rename(columns=rates),
                         f"{title}: conversion from stage to stage",
                         dict.fromkeys(rates.values(), "{:.1%}")))
        out.print(_table(df[[key, *days]].rename(columns=days),
                         f"{title}: velocity (median days)",
                         dict.fromkeys(days.values(), "{:.1f}")))
        if note:
            out.print(f"[yellow]velocity:[/yellow] {note}", soft_wrap=True)
        if money:
            out.print(_table(df[[key, *money]].rename(columns={"mqls": "mql_people"}),
                             f"{title}: money", {**dict.fromkeys(money, "{:,.0f}"),
                                                 "mql_people": "{:,.0f}", "roi": "{:.2f}"}))
        return
    _emit(df, "funnel", as_json, as_csv)


_ABBREV = {"reached": "reach", "engaged": "eng", "opportunity": "opp"}


def _short(column: str) -> str:
    """``days_reached_to_engaged`` -> ``reach>eng`` for narrow terminals."""
    a, b = column.removeprefix("days_").split("_to_")
    return f"{_ABBREV.get(a, a)}>{_ABBREV.get(b, b)}"


@report_app.command("health")
def report_health(engine: str | None = EngineOpt, as_json: bool = JsonOpt,
                  as_csv: bool = CsvOpt) -> None:
    """Demand vs capture trends (Mann-Kendall, Theil-Sen) and the shrinking-pool alarm."""
    if as_json and not as_csv:
        with _open() as ws:
            _json(reports.payload(ws, "health", {}, engine=ws.engine(engine)))
        return
    with _open() as ws:
        summary, series = ws.health(engine=ws.engine(engine))
    if as_csv:
        series.reset_index().to_csv(_stdout(), index=False)
        return
    rows = pd.DataFrame([{"indicator": k, **{f: v[f] for f in ("tau", "p", "slope",
                                                                "change", "direction")}}
                         for k, v in summary["trends"].items()])
    span = f" ({summary['start']} to {summary['end']})" if summary["weeks"] else ""
    out.print(_table(rows, f"demand health, {summary['weeks']} full weeks{span}",
                     {"tau": "{:+.2f}", "p": "{:.3f}", "slope": "{:+.2f}",
                      "change": "{:+.0%}"}))
    style = "bold red" if summary["alarm"] else "green"
    out.print(f"[{style}]{'ALARM: ' if summary['alarm'] else ''}{summary['verdict']}[/]")


@report_app.command("attribution")
def report_attribution(
    level: str = typer.Option("account", "--level", help="account or person."),
    outcome: str | None = typer.Option(None, "--outcome", help="Account level only: "
                                       "opportunity (the default) or won."),
    models: str = typer.Option(",".join(DEFAULT_MODELS), "--models",
                               help=f"Comma-separated: {', '.join(ALL_MODELS)}."),
    measure: str = typer.Option("conversions", "--measure", help="conversions or value."),
    engine: str | None = EngineOpt, as_json: bool = JsonOpt, as_csv: bool = CsvOpt,
) -> None:
    """Credit per channel under each attribution model, side by side."""
    names = reports.models(models)
    if as_json and not as_csv:
        with _open() as ws:
            _json(reports.payload(ws, "attribution", {"level": level, "outcome": outcome,
                                                      "models": models, "measure": measure},
                                  engine=ws.engine(engine)))
        return
    with _open() as ws:
        df = ws.attribution(level=level, outcome=outcome, models=names, measure=measure,
                            engine=ws.engine(engine))
    note = attribution_note(_records(df), names, level=level, outcome=outcome,
                            measure=measure)
    if df.empty and not as_csv:  # (an empty table said nothing of why)
        out.print(note, markup=False)
        return
    fmt = "{:,.0f}" if measure == "value" else "{:.2f}"
    goal = (outcome or "opportunity") if level == "account" else "lead"
    _emit(df, f"attribution ({level} level, {goal}; {measure})", as_json, as_csv,
          dict.fromkeys(names, fmt))
    if note and not as_csv:  # (a table of zeros said nothing of why)
        out.print(note, markup=False)


@report_app.command("pipeline")
def report_pipeline(engine: str | None = EngineOpt, as_json: bool = JsonOpt,
                    as_csv: bool = CsvOpt) -> None:
    """Pipeline sourced (first touch) vs influenced (touch in the window) per channel."""
    if as_json and not as_csv:
        with _open() as ws:
            _json(reports.payload(ws, "pipeline", {}, engine=ws.engine(engine)))
        return
    with _open() as ws:
        data = ws.pipeline(engine=ws.engine(engine))
    s = data["summary"]
    if not as_csv:
        d = s["demand_influenced"]
        out.print(f"{s['opportunities']:,} opportunities, {s['amount']:,.0f} pipeline, "
                  f"{s['won']:,.0f} won; demand-influenced ({s['window_days']} days): "
                  f"{d['opportunities']:,} ({d['share']:.0%}), {d['amount']:,.0f} pipeline, "
                  f"{d['won']:,.0f} won")
        if s.get("undated"):
            out.print(f"not counted: {s['undated']:,} opportunities with no creation date "
                      "(created_at), which the pipeline's windows are measured from; import "
                      "it with them to count them", markup=False)
    money = ("sourced_amount", "sourced_won", "influenced_amount", "influenced_won")
    _emit(data["channels"], "pipeline by channel", False, as_csv,
          dict.fromkeys(money, "{:,.0f}"))


@report_app.command("scorecard")
def report_scorecard(engine: str | None = EngineOpt, as_json: bool = JsonOpt,
                     as_csv: bool = CsvOpt) -> None:
    """Demand gen vs lead gen: the published rubric next to your measured criteria."""
    if as_json and not as_csv:
        with _open() as ws:
            _json(reports.payload(ws, "scorecard", {}, engine=ws.engine(engine)))
        return
    with _open() as ws:
        data = ws.scorecard(engine=ws.engine(engine))
    _emit(data["card"], "program scorecard (0-10 per criterion)", False, as_csv,
          {c: "{:.1f}" for c in data["card"].columns if c not in ("criterion",)})
    if not as_csv:
        out.print(f"published: {data['published_verdict']}  (totals "
                  f"{data['published_totals']['demand_gen']:g} vs "
                  f"{data['published_totals']['lead_gen']:g})")
        out.print(f"with your measured criteria: {data['blended_verdict']}")
        for seg, rec in data["segments"].items():
            out.print(f"{seg}: favour {rec['favour'].replace('_', ' ')} "
                      f"({rec['totals']['demand_gen']:g} vs {rec['totals']['lead_gen']:g})")


@report_app.command("html")
def report_html(path: Path = typer.Argument(..., help="Where to write the report."),
                as_json: bool = JsonOpt) -> None:
    """One self-contained HTML report: funnel, attribution, demand health, scorecard."""
    with _open() as ws:
        written = ws.report_html(path)
    _say(as_json, {"wrote": str(written)}, f"wrote {written}")




@report_app.command("conversion")
def report_conversion(
    by: str = typer.Option("origin", "--by", help="origin, channel or landing_page."),
    as_json: bool = JsonOpt,
) -> None:
    """MQL -> won conversion rate per lead origin (or channel, landing page)."""
    if by not in ("origin", "channel", "landing_page"):
        raise UsageError(f"cannot group by '{by}'", hint="use origin, channel or landing_page")
    with _open() as ws:
        df = ws.lead_conversion(by)
    if as_json:
        _json(_records(df))
        return
    if df.empty:  # (an empty table said nothing of why)
        out.print("no leads to count yet: import a lead source ('demandloop import olist "
                  "DIR')")
        return
    out.print(_table(df, f"MQL -> won by {by}", {"rate": "{:.1%}", "mqls": "{:,}"}))


@report_app.command("lead-scoring")
def report_lead_scoring(split: str | None = typer.Option(
                            None, "--split", help="Test snapshot date (YYYY-MM-DD); training "
                            "is one horizon earlier. Default: the latest whose outcome window "
                            "has ended."),
                        horizon: int = HorizonOpt, as_json: bool = JsonOpt) -> None:
    """Predictive lead scoring (will an open lead be won within the horizon) against an
    origin-only baseline."""
    with _open() as ws:
        r = ws.lead_scoring(_date(split) if split else None, horizon)
    _print_report(r, "lead scoring (baseline: origin alone)", as_json)


@report_app.command("personalization")
def report_personalization(
    as_of: str = typer.Option(None, "--as-of", help="Judge at this time (ISO date or "
                              "timestamp): only what was known then is read."),
    as_json: bool = JsonOpt,
) -> None:
    """Personalisation lift: per experience, exposed vs control accounts per goal, with a
    confidence interval and whether it is significant."""
    at = _timestamp(as_of)
    with _open() as ws:
        data = reports.payload(ws, "personalization", {"as_of": at})
        configured = bool(data["experiences"]) or any(e.enabled for e in ws.experiences())
    if as_json:
        _json(data)
        return
    if not data["experiences"]:
        out.print("no 'Experience Viewed' events yet: "
                  + ("dl.js sends one for each decision on a page that loads it from "
                     "'demandloop serve' (check one with 'demandloop experiences preview')"
                     if configured else "configure experiences (docs/personalization.md) "
                     "and serve dl.js"), markup=False)
        return
    out.print(_table(pd.DataFrame(data["experiences"]), "experiences (accounts by arm)", {}))
    lifts = pd.DataFrame(data["lifts"])
    shown = lifts[["experience", "goal", "exposed", "exposed_rate", "control", "control_rate",
                   "difference", "difference_low", "difference_high", "relative", "p_value",
                   "pending"]]
    pct = "{:+.1%}"
    out.print(_table(shown, f"lift at {data['as_of'][:19]} ({data['confidence']:.0%} "
                     "intervals)", {"exposed_rate": "{:.1%}", "control_rate": "{:.1%}",
                                    "difference": pct, "difference_low": pct,
                                    "difference_high": pct, "relative": pct,
                                    "p_value": "{:.3f}"}))
    for row in data["lifts"]:
        out.print(f"{row['experience']} / {row['goal']}: {row['statement']}", markup=False,
                  highlight=False, soft_wrap=True)


def _timestamp(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return pd.Timestamp(text).isoformat()
    except ValueError:
        raise UsageError(f"--as-of: '{text[:40]}' is not a date or timestamp",
                         hint="use an ISO date such as 2026-03-01") from None


@report_app.command("aeo")
def report_aeo(
    days: int = typer.Option(28, "--days", min=1, max=3650, help="The window crawls and "
                             "landings are counted in."),
    as_of: str = typer.Option(None, "--as-of", help="Judge at this time (ISO date or "
                              "timestamp): only what was known then is read."),
    as_json: bool = JsonOpt,
) -> None:
    """Answer-engine optimisation: AI crawls per week and section, key pages AI search
    crawlers skipped, and what AI-assistant visitors went on to do (docs/aeo.md)."""
    with _open() as ws:
        data = reports.payload(ws, "aeo", {"days": days, "as_of": _timestamp(as_of)})
    if as_json:
        _json(data)
        return
    if not data["requests"]:
        out.print("no access log yet: run 'demandloop import access-logs FILE' (docs/aeo.md)")
        return
    out.print(f"{data['requests']:,} requests logged up to {str(data['as_of'])[:19]}, "
              f"{data['crawler_requests']:,} of them from AI crawlers")
    weekly = pd.DataFrame(data["crawls"])
    if not weekly.empty:
        totals = weekly.pivot_table(index="week", columns="category", values="requests",
                                    aggfunc="sum", fill_value=0).reset_index()
        # the last week ends at the data's end: say so, or its few days read as a drop
        last, end = pd.Timestamp(totals["week"].iloc[-1]), pd.Timestamp(data["as_of"])
        partial = end < last + pd.Timedelta(days=7) - pd.Timedelta(seconds=1)
        out.print(_table(totals.tail(8), "AI crawler requests per week" + (
            f" (the last one up to {end:%Y-%m-%d %H:%M} only)" if partial else ""), {}))
    out.print(_table(pd.DataFrame(data["sections"]).head(15),
                     f"by section, last {data['days']} days", {}))
    pages = pd.DataFrame(data["pages"])
    if not pages.empty:
        out.print(_table(pages.drop(columns=["last_search_crawl"]).head(25),
                         f"key pages ({data['key_pages_from']}): crawled -> referred -> "
                         "converted", {"pipeline": "{:,.0f}"}))
    for s in data["spoofed"]:
        out.print(f"[yellow]spoofed:[/yellow] {s['requests']:,} request(s) named {s['crawler']} "
                  f"from {s['addresses']:,} address(es) that are not its operator's "
                  "(counted as no crawl)", highlight=False)
    if data["uncrawled"]:
        out.print(f"[bold]{len(data['uncrawled'])} key page(s) no AI search crawler fetched "
                  f"in {data['days']} days:[/bold] "
                  + ", ".join(r["page"] for r in data["uncrawled"][:20]))
    elif not data["key_pages"]:
        # (it said every key page was fetched: of none, true and of no use)
        out.print("no key pages to check yet: no content index, and no page people visited "
                  f"in the last {data['days']} days (index your site with 'demandloop content "
                  "index', or import an access log with people's visits)")
    else:
        out.print(f"every key page was fetched by an AI search crawler in {data['days']} days")


@report_app.command("sla")
def report_sla(as_json: bool = JsonOpt) -> None:
    """Speed to lead: hours from MQA / MQL to the first sales touch, and SLA breaches."""
    if as_json:
        with _open() as ws:
            _json(reports.payload(ws, "sla", {}))
        return
    with _open() as ws:
        data = ws.sla()
        hours = ws.settings.score.sla_hours
        note = NO_HISTORY if ws.score_snapshots() <= 1 else None
    df = pd.DataFrame([{"stage": k, **v} for k, v in data.items()])
    out.print(_table(df, f"speed to lead (SLA {hours:g} h)", {"median_hours": "{:.1f}"}))
    if note:
        err.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)

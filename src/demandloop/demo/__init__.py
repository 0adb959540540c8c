"""``demandloop demo``: simulate a market, ingest it, and show what demandloop sees.

Each capability extends the demo, so a new user sees the whole loop from one command.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from demandloop.config import CONFIG_FILE, example_toml
from demandloop.demo import act as demo_act
from demandloop.errors import InputError, UsageError
from demandloop.measure.evaluation import evaluate
from demandloop.measure.names import attribution_note
from demandloop.render import frame_table as _table
from demandloop.simulate import simulate
from demandloop.workspace import Workspace


def _evaluate(ws: Workspace, truth: dict[str, Any], start: dt.date, days: int
              ) -> dict[str, Any]:
    """Score at mid-period, point in time (only what was known then), and compare with the
    hidden truth (see :func:`demandloop.measure.evaluation.evaluate`)."""
    at = dt.datetime.combine(start, dt.time()) + dt.timedelta(days=days // 2)
    return evaluate(ws.account_scores(at), truth, at, min(90, days - days // 2))


def market_quality(seed: int, accounts: int, days: int, folder: Path) -> dict[str, Any]:
    """Simulate a market into *folder*, load it as a user would (events, CRM files, IP
    ranges) and judge point-in-time scores at mid-period against its hidden truth
    (:func:`~demandloop.measure.evaluation.evaluate`); used by benchmarks/evaluation.py and
    the tests, over several seeds."""
    s = simulate(accounts=accounts, days=days, seed=seed, out=folder / "market")
    truth = orjson.loads((folder / "market" / "truth.json").read_bytes())
    (folder / CONFIG_FILE).write_text(
        f"[enrich]\nbrand_terms = {orjson.dumps(truth['brand_terms']).decode()}\n",
        encoding="utf-8")
    with Workspace.open(folder) as ws:
        ws.load_simulation(folder / "market", spend=False)
        return _evaluate(ws, truth, s.start, days)


def _refuse_to_mix(directory: Path, accounts: int, days: int, seed: int) -> None:
    """Refuse a *directory* where the demo would mix its simulated market into other data:
    a workspace the demo did not build (a user's own, given by mistake), or a demo built
    with another market (its events would join the old ones: ingestion keeps what is
    stored). The same demo again is safe: it loads the same events and files."""
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory} is a file: the demo builds a workspace folder",
                         hint="give it a folder with --dir (or -w)")
    truth_file = directory / "market" / "truth.json"
    database = any(directory.glob("*.duckdb"))
    if not (database or (directory / CONFIG_FILE).is_file()):
        return
    if not truth_file.is_file():
        raise InputError(
            f"{directory} holds a workspace the demo did not build: the demo would mix a "
            "simulated market into its data",
            hint="give the demo a folder of its own, e.g. 'demandloop demo --dir "
            "demandloop-demo'")
    try:
        truth = orjson.loads(truth_file.read_bytes())
        built = (len(truth["accounts"]), int(truth["days"]), int(truth["seed"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        built = None
    if built != (accounts, days, seed) and database:
        was = ("another market" if built is None else
               f"--accounts {built[0]} --days {built[1]} --seed {built[2]}")
        raise InputError(
            f"{directory} holds the demo built with {was}: a market of --accounts "
            f"{accounts} --days {days} --seed {seed} would be added to it, not replace it",
            hint=f"delete {directory} first, or give another --dir")


def run_demo(directory: Path, *, accounts: int = 500, days: int = 90, seed: int = 42,
             console: Console | None = None) -> dict[str, Any]:
    """Build the demo workspace in *directory*; print to *console* (if given) and return a
    JSON-ready report. Re-running is safe: ingestion and imports are idempotent. A folder
    holding another workspace, or a demo of another market, is refused: nothing is
    written there."""
    _refuse_to_mix(directory, accounts, days, seed)
    say = console.print if console else (lambda *a, **k: None)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    market = directory / "market"
    existed, had_market = directory.exists(), market.exists()
    s = simulate(accounts=accounts, days=days, seed=seed, out=market)
    if s.events == 0:
        # nothing to resolve or score: the run failed at scoring, having written a
        # workspace that a demo of another size was then refused in
        if not had_market:
            shutil.rmtree(market)
        if not existed:
            shutil.rmtree(directory)
        raise UsageError(f"a market of {accounts:,} account(s) over {days:,} day(s) makes no "
                         "events", hint="give the demo more --accounts or --days; it "
                         "simulates 500 accounts over 90 days by default")
    truth = orjson.loads((market / "truth.json").read_bytes())
    config = directory / CONFIG_FILE
    if not config.exists():  # the simulated vendor's brand, so branded search is recognised
        config.write_text(demo_act.configure(example_toml().replace(
            "brand_terms = []", f"brand_terms = {orjson.dumps(truth['brand_terms']).decode()}")),
            encoding="utf-8")
    timings["simulate"] = time.perf_counter() - t0
    say(f"[bold]1. Simulated[/bold] a B2B market: {s.accounts:,} accounts, {s.people:,} people, "
        f"{s.events:,} events, {s.start} to {s.end} (seed {seed}) -> {market}")
    with Workspace.open(directory) as ws:
        loaded = ws.load_simulation(market)
        r = loaded.ingest
        timings["ingest"] = loaded.ingest_seconds
        resolved = ws.resolve()
        quality = ws.resolution_quality(truth)
        t2 = time.perf_counter()
        # every 14 days, as a scheduled job would have, so stage history carries dates
        scored = ws.score_history(14)[-1]
        timings["score"] = time.perf_counter() - t2
        latest = ws.scored_accounts()
        evaluation = _evaluate(ws, truth, s.start, days)
        say(f"[bold]2. Ingested[/bold] {r.inserted:,} new events ({r.duplicates:,} already "
            f"stored) in {timings['ingest']:.1f}s; CRM: {loaded.accounts:,} accounts, "
            f"{loaded.contacts:,} contacts, {loaded.opportunities:,} opportunities")
        types = ws.event_counts()
        channels = ws.touch_channels()
        opps = ws.opportunities()
        ranked = ws.ranked_accounts(days=30, limit=10)
        counts = ws.counts()
        t3 = time.perf_counter()
        funnel = ws.funnel()
        models = ("first_touch", "last_touch", "linear", "markov", "shapley")
        credit = ws.attribution(models=models)
        pipe = ws.pipeline()["summary"]
        health, _ = ws.health()
        answer = ws.aeo(days=30)
        report = ws.report_html(directory / "report.html")
        timings["measure"] = time.perf_counter() - t3
    if console:
        console.print(_table(types.head(12), "3. Events by type", {"events": "{:,}"}))
        console.print(_table(channels, "4. Touches by channel and motion",
                             {"touches": "{:,}", "share": "{:.1%}", "accounts": "{:,}"}))
        console.print(
            f"[bold]Who is it:[/bold] {resolved.persons:,} persons "
            f"({resolved.identified_devices:,} identified browsers, their earlier anonymous "
            f"visits included); anonymous visits matched to the right account: "
            f"{quality['right_share']:.1%} of those from an account, wrongly matched: "
            f"{quality['wrong_share']:.2%} of all "
            f"({quality['wrong']:,} of {quality['visits']:,}); the rest come from home, mobile "
            f"or hosting networks, reported as unresolved")
        won = int(opps["won"].sum()) if not opps.empty else 0
        lost = int((opps["is_closed"] & ~opps["won"]).sum()) if not opps.empty else 0
        console.print(f"[bold]5. In the workspace:[/bold] {counts['accounts']:,} accounts, "
                      f"{counts['persons']:,} known people, {len(opps):,} opportunities "
                      f"({won} won, {lost} lost, {len(opps) - won - lost} open)")
        console.print(_table(ranked.drop(columns=["account_id", "last_seen"]),
                             "6. Most active accounts (last 30 days)", {}))
        top = latest.sort_values(["recent", "engagement"], ascending=False).head(10)
        top = top[["account", "stage", "fit", "band", "engagement", "surging"]].assign(
            committee=top["committee_coverage"].map("{:.0%}".format))
        console.print(_table(top,
                             f"7. Top in-market accounts (as of {scored.as_of:%Y-%m-%d}; "
                             "stages: " + ", ".join(f"{k} {v}" for k, v in
                                                    scored.stages.items()) + ")", {}))
        console.print(
            f"[bold]How ready are they, against the truth[/bold] (scored at "
            f"{evaluation['at']} knowing only what was known then): in-market "
            f"precision@{evaluation['k']} {evaluation['precision']:.2f}; AUC of priority for "
            f"an opportunity in the next {evaluation['horizon_days']} days "
            f"{evaluation['auc']:.2f} (fit alone {evaluation['auc_fit']:.2f}; the hidden fit "
            f"itself {evaluation['auc_hidden_fit']:.2f}); fit vs hidden fit, Spearman "
            f"{evaluation['spearman_fit']:.2f}")
        stages = funnel[["reached", "engaged", "mql", "mqa", "opportunity", "won"]]
        console.print(_table(stages, "8. Funnel (accounts reaching each stage)", {}))
        note = attribution_note(credit.to_dict("records"), list(models), level="account",
                                outcome=None, measure="conversions")
        if note:  # (a tiny market may have no opportunity: a table of zeros said nothing)
            console.print(f"[bold]9. Who gets the credit for opportunities:[/bold] {note}")
        else:
            console.print(_table(credit, "9. Who gets the credit for opportunities "
                                 "(account level, by model)", dict.fromkeys(models, "{:.1f}")))
        d = pipe["demand_influenced"]
        console.print(f"[bold]Pipeline:[/bold] {pipe['opportunities']} opportunities, "
                      f"{pipe['amount']:,.0f}; demand-influenced in the "
                      f"{pipe['window_days']} days before creation: {d['opportunities']} "
                      f"({d['share']:.0%}), sourced by demand (first touch): "
                      f"{pipe['sourced_by_motion'].get('demand', {}).get('opportunities', 0)}")
        style = "bold red" if health["alarm"] else "green"
        console.print(f"[bold]Demand health[/bold] ({health['weeks']} weeks): "
                      f"[{style}]{health['verdict']}[/]")
        by_kind: dict[str, int] = {}
        for row in answer["crawls"]:
            by_kind[row["category"]] = by_kind.get(row["category"], 0) + row["requests"]
        console.print(
            f"[bold]AI crawlers[/bold] (the site's access log): "
            f"{answer['crawler_requests']:,} requests ("
            + ", ".join(f"{n:,} {k}" for k, n in sorted(by_kind.items()))
            + f"); {len(answer['uncrawled'])} of {answer['key_pages']} key pages no AI "
            f"search crawler fetched in 30 days: "
            + (", ".join(r["page"] for r in answer["uncrawled"][:5]) or "none")
            + " (demandloop report aeo)", soft_wrap=True)
        console.print(f"[bold]Report:[/bold] {report}")
    t4 = time.perf_counter()
    acted = demo_act.act(directory, say)
    timings["act"] = time.perf_counter() - t4
    if console:
        console.print(f"\nWorkspace: {directory.resolve()}  (try: demandloop -w {directory} "
                      "accounts, demandloop -w " f"{directory} status)")
        console.print(f"Done in {time.perf_counter() - t0:.1f}s.")
        console.print(
            f"\n[bold]Open the dashboard:[/bold] demandloop -w {directory} users create "
            f"--email you@example.com --role admin, then demandloop -w {directory} serve, "
            "then http://127.0.0.1:8642/app (log in with that email)", soft_wrap=True)
    return {
        "workspace": str(directory.resolve()),
        "simulation": {k: str(v) if isinstance(v, Path) else v for k, v in s.__dict__.items()},
        "ingest": r.__dict__,
        "crm": {k: getattr(loaded, k) for k in ("accounts", "contacts", "opportunities",
                                                "ip_ranges", "spend")}, "counts": counts,
        "resolve": resolved.__dict__, "resolution_quality": quality,
        "score": scored.__dict__, "score_evaluation": evaluation,
        "events_by_type": types.to_dict("records"),
        "channels": channels.to_dict("records"),
        "top_accounts": ranked.astype(object).where(ranked.notna(), None).to_dict("records"),
        "funnel": funnel.astype(object).where(funnel.notna(), None).to_dict("records"),
        "attribution": credit.to_dict("records"), "pipeline": pipe,
        "health": {k: health[k] for k in ("weeks", "alarm", "verdict", "demand_falling")},
        "aeo": {"crawler_requests": answer["crawler_requests"],
                "uncrawled": [r["page"] for r in answer["uncrawled"]]},
        "report": str(report), "act": acted,
        "seconds": timings | {"total": time.perf_counter() - t0},
    }

"""``demandloop score``, ``accounts``, ``people``, ``explain account`` and ``fit train``:
the score stage's commands."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from demandloop.cli.base import (
    EngineOpt,
    HorizonOpt,
    JsonOpt,
    _date,
    _json,
    _open,
    _print_report,
    _records,
    _table,
    app,
    err,
    explain_app,
    fit_app,
    out,
)
from demandloop.errors import NotFoundError, UsageError
from demandloop.lazy import LazyModule
from demandloop.progress import LazyProgress

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: 'demandloop --help' and the quick commands need none
    pd = LazyModule("pandas")


SORTS = {"engagement": "engagement", "priority": "priority", "intent": "intent", "fit": "fit",
         "people": "people", "coverage": "committee_coverage"}


@app.command()
def accounts(
    stage: str | None = typer.Option(None, "--stage", help="Only accounts in this stage."),
    band: str | None = typer.Option(None, "--band", help="Only this fit band (Strong, "
                                    "Moderate, Weak)."),
    target: bool | None = typer.Option(None, "--target/--not-target",
                                       help="Only target accounts, or only the others."),
    surging: bool | None = typer.Option(None, "--surging/--not-surging",
                                        help="Only accounts surging now, or only the others."),
    owner: str | None = typer.Option(None, "--owner", help="Only this owner's (any case)."),
    industry: str | None = typer.Option(None, "--industry", help="Only this industry (any "
                                        "case)."),
    country: str | None = typer.Option(None, "--country", help="Only this country code."),
    topic: str | None = typer.Option(None, "--topic", help="Only accounts surging on this "
                                     "topic."),
    search: str | None = typer.Option(None, "--search", help="Part of the name or domain "
                                      "(any case), or an account id."),
    sort: str = typer.Option("engagement", "--sort",
                             help="engagement, priority (the order to work accounts "
                             "in), intent, fit, people or coverage."),
    days: int = typer.Option(30, "--days", min=1, max=3650,
                             help="Activity window before 'score' has run."),
    limit: int = typer.Option(20, "--limit", min=1, max=100_000, help="How many accounts."),
    as_json: bool = JsonOpt,
) -> None:
    """Accounts from the latest scores (fit, engagement, intent, stage, committee), or by
    recent touches before 'demandloop score' has run. The filters are the API's
    (GET /api/v1/accounts) and the dashboard's."""
    if sort not in SORTS:
        raise UsageError(f"cannot sort by '{sort}'", hint=f"use one of {', '.join(SORTS)}")
    given = {"--stage": stage, "--band": band, "--target": target, "--surging": surging,
             "--owner": owner, "--industry": industry, "--country": country,
             "--topic": topic, "--search": search}
    filtered = [k for k, v in given.items() if v is not None]
    with _open() as ws:
        scores = ws.scored_accounts()
        if not scores.empty:
            from demandloop.score.fit import BANDS
            from demandloop.score.stages import stage_names  # (pandas: on first use)
            from demandloop.store.account_pages import AccountFilter, check_choices

            # the API's own checks and conditions: one meaning, one message at every edge
            where = AccountFilter(
                tuple(check_choices("stage", [stage], stage_names(ws.settings.score.stages))
                      if stage is not None else ()),
                tuple(check_choices("band", [band], BANDS) if band is not None else ()),
                None, surging, target, owner, industry, search, None, None, country, topic)
            if filtered:
                scores = scores[scores["account"].isin(ws.account_ids(where))]
                if scores.empty and not as_json:
                    out.print(f"no accounts match {' '.join(filtered)}", markup=False)
                    return
            _scored_accounts(scores, SORTS[sort], limit, as_json)
            return
        if filtered:
            raise UsageError(f"{filtered[0]} filters the latest scores, and there are none "
                             "yet", hint="run 'demandloop score' first")
        df = ws.ranked_accounts(days=days, limit=limit)
        no_touches = ws.counts()["touches"] == 0
    if as_json:
        _json(_records(df))
        return
    if no_touches:
        err.print("no touches yet: run 'demandloop resolve' after ingesting events")
        return
    out.print(_table(df, f"most active accounts, last {days} days"))


@app.command()
def people(
    mql: bool | None = typer.Option(None, "--mql/--not-mql",
                                    help="Only MQLs, or only people who are not (by the "
                                    "latest score)."),
    account: str | None = typer.Option(None, "--account", help="Only this account's people."),
    search: str | None = typer.Option(None, "--search",
                                      help="Part of the email or name (any case)."),
    sort: str = typer.Option("-engagement", "--sort",
                             help="-engagement (highest first, never scored last) or "
                             "person_id."),
    limit: int = typer.Option(20, "--limit", min=1, max=100_000, help="How many people."),
    as_json: bool = JsonOpt,
) -> None:
    """People with their latest scores: stage (MQL), engagement, account fit and why, e.g.
    the MQLs to work: demandloop people --mql."""
    with _open() as ws:
        rows, _ = ws.people(account, search, mql, sort, limit)
        # (an empty list read as "this account has nobody")
        unknown = account is not None and not rows and ws.held_account(account) is None
    if unknown:
        raise NotFoundError(f"no account '{str(account).strip()[:80]}'",
                            hint="give an account's id or domain, as 'demandloop accounts' "
                            "lists them")
    if as_json:
        _json(rows)
        return
    if not rows:
        out.print("no people match" + ("" if mql is None else
                                       " (run 'demandloop score' for MQLs)"))
        return
    shown = [{"person": r["person_id"], "name": " ".join(
        x for x in (r["first_name"], r["last_name"]) if x), "title": r["title"],
        "account": r["account_id"], "stage": r["stage"], "engagement": r["engagement"],
        "account_fit": r["account_fit"], "why": "; ".join(r["mql_reasons"] or [])}
        for r in rows]
    out.print(_table(pd.DataFrame(shown), "people (latest scores)",
                     {"engagement": "{:.1f}", "account_fit": "{:.1f}"}))


def _scored_accounts(scores: pd.DataFrame, sort: str, limit: int, as_json: bool) -> None:
    df = scores.drop(columns=["recent"]).assign(
        missing_roles=scores["missing_roles"].map(", ".join))
    df = df.sort_values([sort, "account"], ascending=[False, True]).head(limit)
    if as_json:
        _json(_records(df))
        return
    out.print(_table(df.drop(columns=["missing_roles"]), "accounts (latest scores)",
                     {"committee_coverage": "{:.0%}", "priority": "{:.2f}"}))


@app.command()
def score(
    backfill: int | None = typer.Option(
        None, "--backfill", metavar="DAYS",
        help="Also score every DAYS days from the first touch, each knowing only what was "
        "known then, so stage history has dates."),
    as_of: str | None = typer.Option(
        None, "--as-of", metavar="DATE",
        help="Score as of DATE (YYYY-MM-DD[THH:MM]) knowing only what was known then: events "
        "up to DATE, and CRM rows, contacts, IP ranges and opportunities created by then."),
    engine: str | None = EngineOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Score every account: ICP fit, engagement, intent surge, stage and priority (the order
    to work accounts in); run after 'resolve'."""
    if as_of is not None and backfill is not None:
        raise UsageError("--as-of and --backfill do not go together",
                         hint="--backfill scores every DAYS days up to the last touch")
    when = _date(as_of) if as_of is not None else None
    if when is not None and when > dt.datetime.now(dt.UTC).replace(tzinfo=None):
        # (a typo such as 2030 for 2026 wrote a snapshot dated then, every stage moved to
        # it, and made it the latest scores everything reads)
        raise UsageError(f"--as-of {as_of} is in the future: a score then would decay every "
                         "signal to a time not reached yet and date stage changes at it",
                         hint="give a time up to now (UTC), or leave --as-of out to score as "
                         "of the last touch")
    with _open() as ws:
        if when is not None:
            from demandloop.score.queries import touch_span

            first, _ = touch_span(ws.store)
            if first is not None and when < first:
                # (it wrote a snapshot of no account, dated then)
                raise UsageError(f"--as-of {as_of} is before the first touch "
                                 f"({first:%Y-%m-%d %H:%M}): nothing was known then to "
                                 "score", hint="give a time after it")
        if backfill is None:
            with LazyProgress(err, "scoring", None):
                r = ws.score(when, point_in_time=when is not None, engine=engine)
        else:
            with LazyProgress(err, "scoring history", None, unit="snapshots") as bar:
                r = ws.score_history(backfill, progress=bar.step, engine=engine)[-1]
        from demandloop.store.schema_later import PRIORITY

        priority = PRIORITY.format(s="scores")
        top = ws.store.con.execute(
            f"SELECT entity_id AS account, round({priority}, 2) "
            "AS priority, round(fit, 1) AS fit, "
            "details ->> '$.fit_band' AS band, round(engagement, 1) AS engagement, "
            "round(intent, 2) AS surge, (details ->> '$.surging')::BOOLEAN AS surging, "
            "stage, (details ->> '$.people')::INT AS people FROM scores "
            "WHERE workspace_id = ? AND as_of = ? AND entity = 'account' "
            f"ORDER BY {priority} DESC, account LIMIT 15",
            [ws.store.workspace_id, r.as_of]).df()
    if as_json:
        # how it was computed (a server's rescore is incremental) is not what was scored:
        # the output is the same with and without a running server
        shown = {k: v for k, v in r.__dict__.items()
                 if k not in ("mode", "recomputed", "windowed")}
        _json({**shown, "top": _records(top)})
        return
    out.print(f"scored {r.accounts:,} accounts as of {r.as_of:%Y-%m-%d %H:%M}: "
              f"{r.strong_fit:,} strong fit, {r.surging:,} surging; stages: "
              + ", ".join(f"{k} {v:,}" for k, v in r.stages.items())
              + f"; {r.stage_changes:,} stage changes"
              + ("" if r.changes_recorded else " (a backtest: not recorded, the stage "
                 "history already runs past it)") + f"; {r.mqls:,} MQLs")
    if r.known:
        out.print("known then (of stored now): " + ", ".join(
            f"{name} {then:,} of {now:,}" for name, (then, now) in r.known.items())
            + " (a row without a creation date is known from its import)")
    out.print(_table(top, "accounts by priority (fit x engagement: work them in this order)"))


@explain_app.command("account")
def explain_account(key: str = typer.Argument(..., help="Account domain or id."),
                    as_json: bool = JsonOpt) -> None:
    """Fit criteria, the signals behind engagement (decayed), surge, stage history."""
    with _open() as ws:
        info = ws.explain_account(key)
    if as_json:
        _json(info)
        return
    f, e, i = info["fit"], info["engagement"], info["intent"]
    out.print(f"[bold]{escape(info['account_id'])}[/bold]  "
              + escape(f"stage: {info['stage']}  (as of {info['as_of'][:16]})"),
              highlight=False)
    # (with no criterion met the line ended at "Weak): ", as if cut off)
    out.print(f"fit {f['score']:.1f} ({f['band']}): " + ("; ".join(f["criteria"]) if
              f["criteria"] else "no fit criterion met (fit reads the account's industry, "
              "size, country and technologies: 'demandloop import accounts' brings them "
              "from your CRM)"), markup=False, highlight=False)
    out.print(f"engagement {e['score']:.1f} from {e['touches']} touches by {e['people']} "
              f"people; intent surge {i['surge']:.2f}"
              + (f" (surging on {', '.join(i['topics'])})" if i["topics"] else ""),
              markup=False, highlight=False)
    out.print("stage because: " + "; ".join(info["stage_reasons"] or []), markup=False,
              highlight=False)
    c = info["committee"]
    out.print(f"buying committee: {c['coverage']:.0%} covered; missing: "
              f"{', '.join(c['missing_roles']) or 'none'}", markup=False, highlight=False)
    out.print(_table(pd.DataFrame(e["top_signals"]), "top signals (weight x decay)"))
    if info["stage_history"]:
        out.print(_table(pd.DataFrame(info["stage_history"]).drop(columns=["reasons"]),
                         "stage history"))


@fit_app.command("train")
def fit_train(split: str | None = typer.Option(
                  None, "--split", help="Test snapshot date (YYYY-MM-DD); training is one "
                  "horizon earlier. Default: the latest whose outcome window has ended."),
              horizon: int = HorizonOpt, as_json: bool = JsonOpt) -> None:
    """Predictive fit: learn which accounts open an opportunity within the horizon, from
    firmographics and how they came in; stores each account's probability."""
    with _open() as ws, LazyProgress(err, "training the fit model", None):
        r = ws.train_fit(_date(split) if split else None, horizon)
    _print_report(r, "predictive fit (baseline: industry alone)", as_json)

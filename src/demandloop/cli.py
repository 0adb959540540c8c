"""The ``demandloop`` command: parse, call one stage function, render (Rich or ``--json``).

Errors are rendered once, here: ``error: <what is wrong> (<what to do>)`` plus any
``FILE:LINE: reason`` lines, and a non-zero exit; a traceback only with ``--debug``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from demandloop.errors import DemandloopError, Interrupted, NotFoundError, UsageError
from demandloop.lazy import LazyModule
from demandloop.progress import LazyProgress
from demandloop.render import frame_table

if TYPE_CHECKING:
    import pandas as pd

    from demandloop import simulate as sim
    from demandloop.workspace import Workspace
else:  # imported on first use: 'demandloop --help' and 'keys' need none of them
    pd = LazyModule("pandas")
    sim = LazyModule("demandloop.simulate")

CONFIG_FILE = "demandloop.toml"

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Account-based go-to-market engine: collect, resolve, score, act, measure.",
)
import_app = typer.Typer(no_args_is_help=True, help="Import CRM exports, Olist data or Parquet.")
report_app = typer.Typer(no_args_is_help=True, help="Reports over the workspace.")
config_app = typer.Typer(no_args_is_help=True, help="Show or create the configuration.")
app.add_typer(import_app, name="import")
app.add_typer(report_app, name="report")
app.add_typer(config_app, name="config")
explain_app = typer.Typer(no_args_is_help=True, help="Explain the signals behind a record.")
data_app = typer.Typer(no_args_is_help=True, help="Maintain shipped data files.")
fit_app = typer.Typer(no_args_is_help=True, help="Predictive fit models.")
app.add_typer(fit_app, name="fit")
app.add_typer(explain_app, name="explain")
app.add_typer(data_app, name="data")

def _console(stderr: bool = False) -> Console:
    """The terminal's own width; piped output (a file, less, CI logs) is not cut at 80
    columns as Rich would do, but at $COLUMNS or 200."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", "0") or 0) or 200
    return Console(stderr=stderr, width=width)


out = _console()
err = _console(stderr=True)
_state: dict[str, Any] = {"workspace": Path("."), "debug": False}

JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")


def _version(value: bool) -> None:
    if value:
        from demandloop import __version__

        out.print(f"demandloop {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    workspace: Path = typer.Option(
        Path("."), "--workspace", "-w", envvar="DEMANDLOOP_DIR",
        help="Workspace directory (holds demandloop.toml and the database).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                 help="Print the version and exit."),
) -> None:
    _state["workspace"], _state["debug"] = workspace, debug


def _workspace_dir() -> Path:
    """The workspace folder, which must exist: only 'init' (and 'demo') create one, so a
    misspelt -w is an error, not a new empty workspace."""
    d = Path(_state["workspace"])
    if d.suffix == ".duckdb" and d.is_file():
        return d
    settings_file = d / CONFIG_FILE
    if d.is_dir() and (settings_file.is_file() or any(d.glob("*.duckdb"))):
        return d
    raise NotFoundError(f"no demandloop workspace in {d}",
                        hint=f"run 'demandloop init {d}' to create one, or pass the right "
                        "folder with -w")


def _open(path: Path | None = None) -> Workspace:
    from demandloop.workspace import Workspace

    return Workspace.open(path or _workspace_dir())


def _json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2
                                  | orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    clean = df.astype(object).where(df.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in clean.to_dict("records")]


def _table(df: pd.DataFrame, title: str, formats: dict[str, str] | None = None) -> Any:
    """A frame as a table that fits the terminal (see :func:`frame_table`)."""
    return frame_table(df, title, formats, width=out.width)


def _say(as_json: bool, data: dict[str, Any], message: str) -> None:
    """A command's outcome: *data* as JSON with ``--json``, else the sentence."""
    if as_json:
        _json(data)
    else:
        out.print(message)


# -- set-up ---------------------------------------------------------------------------------
@app.command()
def init(
    directory: Path = typer.Argument(Path("."), help="Workspace directory to create."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing demandloop.toml."),
    as_json: bool = JsonOpt,
) -> None:
    """Write a commented demandloop.toml documenting every setting."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / CONFIG_FILE
    if target.exists() and not force:
        raise UsageError(f"{target} already exists", hint="pass --force to overwrite it")
    from demandloop.config import example_toml

    target.write_text(example_toml(), encoding="utf-8")
    _say(as_json, {"wrote": str(target)}, f"wrote {target}")


@config_app.command("show")
def config_show(as_json: bool = JsonOpt) -> None:
    """Print the effective settings (file + environment), secrets masked."""
    from demandloop.config import Settings

    settings = Settings.load(_state["workspace"])
    data = settings.public_dict()
    if as_json:
        _json(data)
        return
    for section, values in data.items():
        # escaped: Rich would read "[workspace]" as a markup tag and print nothing
        out.print(f"[bold]{escape(f'[{section}]')}[/bold]")
        for k, v in values.items():
            out.print(f"  {k} = {v!r}", markup=False, highlight=False, soft_wrap=True)


# -- simulate, ingest, import, export ------------------------------------------------------
@app.command()
def simulate(
    accounts: int = typer.Option(500, "--accounts", help="Accounts in the market."),
    days: int = typer.Option(90, "--days", help="Days of activity."),
    seed: int = typer.Option(42, "--seed", help="Random seed (same seed, same market)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder to write the files into."),
    scenario: str = typer.Option("normal", "--scenario",
                                 help="normal or shrinking-pool (demand decays)."),
    as_json: bool = JsonOpt,
) -> None:
    """Simulate a B2B market: events, CRM exports, IP ranges and the ground truth."""
    started = time.perf_counter()
    with LazyProgress(err, "simulating days", days, unit="days") as progress:
        s = sim.simulate(accounts=accounts, days=days, seed=seed, out=out_dir,
                         scenario=scenario, progress=progress.advance)
    if as_json:
        _json({**s.__dict__, "seconds": time.perf_counter() - started})
        return
    out.print(f"simulated {s.accounts:,} accounts, {s.people:,} people, {s.events:,} events, "
              f"{s.opportunities:,} opportunities ({s.won:,} won) from {s.start} to {s.end} "
              f"in {time.perf_counter() - started:.1f}s -> {s.out}")


@app.command()
def ingest(
    files: list[Path] = typer.Argument(..., help="Segment-spec JSONL/JSON files (.gz too)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid",
                                      help="Write the valid messages, report the rest."),
    as_json: bool = JsonOpt,
) -> None:
    """Validate, deduplicate and store Segment-spec events from files."""
    from demandloop.collect.files import event_files

    files = event_files(files)
    total = sum(f.stat().st_size for f in files if f.is_file())
    started = time.perf_counter()
    with _open() as ws, LazyProgress(err, "ingesting", total, unit="bytes") as progress:
        try:
            r = ws.ingest(*files, skip_invalid=skip_invalid, progress=progress.advance)
        except (KeyboardInterrupt, Exception) as exc:
            if isinstance(exc, KeyboardInterrupt) or _is_interrupt(exc):
                # one transaction: rolled back whole
                raise Interrupted("interrupted, nothing written") from None
            raise
    seconds = time.perf_counter() - started
    if as_json:
        _json({**r.__dict__, "seconds": seconds})
        return
    for p in r.problems:
        err.print(p, markup=False, highlight=False, soft_wrap=True)
    if r.messages == 0:
        err.print(f"warning: no messages in {', '.join(str(f) for f in files)} (empty?)",
                  markup=False, highlight=False)
    out.print(f"{r.inserted:,} events written, {r.duplicates:,} duplicates skipped, "
              f"{r.invalid:,} invalid skipped ({r.messages / max(seconds, 1e-9):,.0f} msg/s)")


@import_app.command("accounts")
def import_accounts(file: Path, map_: list[str] = typer.Option([], "--map",
                    help="COLUMN=FIELD for a header demandloop does not recognise."),
                    as_json: bool = JsonOpt) -> None:
    """Import a CRM accounts/companies CSV (HubSpot, Salesforce or plain)."""
    _import_crm("accounts", file, map_, as_json)


@import_app.command("contacts")
def import_contacts(file: Path, map_: list[str] = typer.Option([], "--map",
                    help="COLUMN=FIELD for a header demandloop does not recognise."),
                    as_json: bool = JsonOpt) -> None:
    """Import a CRM contacts CSV (HubSpot, Salesforce or plain)."""
    _import_crm("contacts", file, map_, as_json)


@import_app.command("opportunities")
def import_opportunities(file: Path, map_: list[str] = typer.Option([], "--map",
                         help="COLUMN=FIELD for a header demandloop does not recognise."),
                         as_json: bool = JsonOpt) -> None:
    """Import a CRM opportunities/deals CSV (HubSpot, Salesforce or plain)."""
    _import_crm("opportunities", file, map_, as_json)


def _import_crm(kind: str, file: Path, pairs: list[str], as_json: bool) -> None:
    from demandloop.collect.crm import KINDS, parse_mapping

    assert kind in KINDS
    mapping = parse_mapping(pairs, kind)
    ignored: list[str] = []
    with _open() as ws:
        n = ws.import_crm(kind, file, mapping, ignored)
    _say(as_json, {"imported": n, "kind": kind, "file": str(file), "ignored_columns": ignored},
         f"{n:,} {kind} imported from {file}")
    if ignored and not as_json:
        err.print(f"not imported, no field recognised: {', '.join(ignored)} (pass --map "
                  "'COLUMN=FIELD' to import one)", markup=False, highlight=False,
                  soft_wrap=True)


@import_app.command("ip-ranges")
def import_ip_ranges(file: Path = typer.Argument(..., help="CSV: cidr (or start,end) and "
                                                 "domain and/or organisation."),
                     as_json: bool = JsonOpt) -> None:
    """Import company IP ranges, used to resolve anonymous visitors to accounts."""
    with _open() as ws:
        n = ws.import_ip_ranges(file)
    _say(as_json, {"imported": n, "file": str(file)}, f"{n:,} IP ranges imported from {file}")


@import_app.command("olist")
def import_olist(directory: Path = typer.Argument(..., help="Folder with the Olist CSVs."),
                 as_json: bool = JsonOpt) -> None:
    """Import the Olist marketing funnel: MQLs as leads, closed deals as won opportunities."""
    with _open() as ws:
        n = ws.import_olist(directory)
    _say(as_json, n, f"imported {n['leads']:,} leads and {n['opportunities']:,} won "
         f"opportunities from {directory}")


@import_app.command("parquet")
def import_parquet(
    directory: Path,
    replace: bool = typer.Option(False, "--replace", help="Replace the workspace's data."),
    as_json: bool = JsonOpt,
) -> None:
    """Load a Parquet export (from 'demandloop export') into this workspace."""
    with _open() as ws:
        n = ws.import_parquet(directory, replace=replace)
    _say(as_json, n, f"imported {sum(n.values()):,} rows from {directory}")


@app.command()
def export(
    directory: Path,
    fmt: str = typer.Option("parquet", "--format", help="Export format (parquet)."),
    as_json: bool = JsonOpt,
) -> None:
    """Export every table of the workspace, losslessly."""
    if fmt != "parquet":
        raise UsageError(f"unknown export format '{fmt}'", hint="use --format parquet")
    with _open() as ws:
        n = ws.export_parquet(directory)
    _say(as_json, n, f"exported {sum(n.values()):,} rows in {len(n)} tables to {directory}")


# -- read -----------------------------------------------------------------------------------
@app.command()
def status(as_json: bool = JsonOpt) -> None:
    """Rows per table in this workspace."""
    from rich.table import Table

    from demandloop.config import locate
    from demandloop.store.db import Store

    # the store alone (no pandas, no Ibis): status answers at once
    _, settings, path = locate(_workspace_dir())
    store = Store.open(path, workspace_id=settings.workspace.id, threads=settings.store.threads,
                       memory_limit=settings.store.memory_limit)
    try:
        counts = store.table_counts()
    finally:
        store.close()
    if as_json:
        _json(counts)
        return
    table = Table(title="workspace tables", title_justify="left", header_style="bold")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in counts.items():
        table.add_row(name, f"{n:,}")
    out.print(table)


SORTS = {"engagement": "engagement", "intent": "intent", "fit": "fit", "people": "people",
         "coverage": "committee_coverage"}


@app.command()
def accounts(
    stage: str | None = typer.Option(None, "--stage", help="Only accounts in this stage."),
    sort: str = typer.Option("engagement", "--sort",
                             help="engagement, intent, fit, people or coverage."),
    days: int = typer.Option(30, "--days", help="Activity window before 'score' has run."),
    limit: int = typer.Option(20, "--limit", help="How many accounts."),
    as_json: bool = JsonOpt,
) -> None:
    """Accounts from the latest scores (fit, engagement, intent, stage, committee), or by
    recent touches before 'demandloop score' has run."""
    if sort not in SORTS:
        raise UsageError(f"cannot sort by '{sort}'", hint=f"use one of {', '.join(SORTS)}")
    with _open() as ws:
        scores = ws.scored_accounts()
        if not scores.empty:
            names = [s.name for s in ws.settings.score.stages] + ["unaware"]
            if stage is not None and stage not in names:
                raise UsageError(f"unknown stage '{stage}'",
                                 hint=f"stages: {', '.join(names)}")
            _scored_accounts(scores, stage, SORTS[sort], limit, as_json)
            return
        if stage is not None:
            raise UsageError("no stages yet", hint="run 'demandloop score' first")
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
def resolve(as_json: bool = JsonOpt) -> None:
    """Resolve persons and accounts and derive touches from everything stored."""
    with _open() as ws, LazyProgress(err, "resolving identities and accounts", None):
        r = ws.resolve()
    if as_json:
        _json(r.__dict__)
        return
    share = r.touches_with_account / max(r.touches, 1)
    out.print(f"{r.persons:,} persons ({r.identified_devices:,} identified browsers), "
              f"{r.accounts_created:,} new accounts from email domains and group calls; "
              f"{r.touches:,} touches, {share:.1%} matched to an account ({r.seconds:.1f}s)")
    top = sorted(r.unresolved.items(), key=lambda kv: -kv[1])[:6]
    if top:
        out.print(_table(pd.DataFrame(top, columns=["unresolved because", "touches"]),
                         "touches without an account", {"touches": "{:,}"}))


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
    as_json: bool = JsonOpt,
) -> None:
    """Score every account: ICP fit, engagement, intent surge, stage and priority (the order
    to work accounts in); run after 'resolve'."""
    if as_of is not None and backfill is not None:
        raise UsageError("--as-of and --backfill do not go together",
                         hint="--backfill scores every DAYS days up to the last touch")
    when = _date(as_of) if as_of is not None else None
    with _open() as ws:
        if backfill is None:
            with LazyProgress(err, "scoring", None):
                r = ws.score(when, point_in_time=when is not None)
        else:
            with LazyProgress(err, "scoring history", None, unit="snapshots") as bar:
                r = ws.score_history(backfill, progress=bar.step)[-1]
        top = ws.store.con.execute(
            "SELECT entity_id AS account, round((details ->> '$.priority')::DOUBLE, 2) "
            "AS priority, round(fit, 1) AS fit, "
            "details ->> '$.fit_band' AS band, round(engagement, 1) AS engagement, "
            "round(intent, 2) AS surge, (details ->> '$.surging')::BOOLEAN AS surging, "
            "stage, (details ->> '$.people')::INT AS people FROM scores "
            "WHERE workspace_id = ? AND as_of = ? AND entity = 'account' "
            "ORDER BY (details ->> '$.priority')::DOUBLE DESC, account LIMIT 15",
            [ws.store.workspace_id, r.as_of]).df()
    if as_json:
        _json({**r.__dict__, "top": _records(top)})
        return
    out.print(f"scored {r.accounts:,} accounts as of {r.as_of:%Y-%m-%d %H:%M}: "
              f"{r.strong_fit:,} strong fit, {r.surging:,} surging; stages: "
              + ", ".join(f"{k} {v:,}" for k, v in r.stages.items())
              + f"; {r.stage_changes:,} stage changes; {r.mqls:,} MQLs")
    if r.known:
        out.print("known then (of stored now): " + ", ".join(
            f"{name} {then:,} of {now:,}" for name, (then, now) in r.known.items())
            + " (a row without a creation date is known from its import)")
    out.print(_table(top, "accounts by priority (fit x engagement: work them in this order)"))


@explain_app.command("person")
def explain_person(key: str = typer.Argument(..., help="Person id, email, user id or "
                                             "anonymous id."), as_json: bool = JsonOpt) -> None:
    """Identifiers, the messages that merged them, the account and its source."""
    with _open() as ws:
        info = ws.explain_person(key)
    if as_json:
        _json(info)
        return
    p = info["person"]
    out.print(f"[bold]{escape(str(p.get('person_id')))}[/bold]  {escape(str(p.get('title') or ''))}"
              f"  ({p.get('seniority') or '?'}, {p.get('function') or '?'})")
    acc = info["account"]
    out.print(f"account: {acc['account_id']} via {acc['source']} (confidence "
              f"{acc['confidence']:.2f})" if acc else "account: not resolved")
    out.print("identifiers: " + ", ".join(info["identifiers"]))
    for link in info["merged_by"]:
        out.print(f"  merged {link['from']} + {link['to']} by {link['message_type']} "
                  f"{link['message_id']} at {link['first_seen']}", highlight=False)
    out.print(f"anonymous touches attributed after identification: "
              f"{info['anonymous_touches_attributed']:,}")
    if info["touches_by_channel"]:
        out.print(_table(pd.DataFrame(info["touches_by_channel"]), "touches by channel"))


@data_app.command("build-asn")
def build_asn(source: Path = typer.Argument(..., help="'npm pack @ip-location-db/asn' .tgz "
                                            "or its unpacked folder."),
              target: Path | None = typer.Option(None, "--out", help="Where to write "
                                                 "(default: the package's data file)."),
              as_json: bool = JsonOpt) -> None:
    """Rebuild the IP-to-organisation table from the @ip-location-db/asn npm package."""
    from demandloop.resolve import asn

    dest = target or Path(asn.__file__).resolve().parent.parent / "data" / asn.DATA_FILE
    n = asn.build(source, dest)
    _say(as_json, {**n, "path": str(dest)},
         f"{n['ranges']:,} ranges of {n['organisations']:,} organisations "
         f"(from {n['source_rows']:,} rows) -> {dest}")


@app.command()
def demo(
    directory: Path = typer.Option(Path("demandloop-demo"), "--dir",
                                   help="Workspace to (re)build for the demo."),
    accounts_: int = typer.Option(500, "--accounts", help="Accounts in the simulated market."),
    days: int = typer.Option(90, "--days", help="Days simulated."),
    seed: int = typer.Option(42, "--seed", help="Random seed."),
    as_json: bool = JsonOpt,
) -> None:
    """Simulate a B2B market, ingest it, and show what demandloop sees."""
    from demandloop.demo import run_demo

    report = run_demo(directory, accounts=accounts_, days=days, seed=seed,
                      console=None if as_json else out)
    if as_json:
        _json(report)


def _scored_accounts(scores: pd.DataFrame, stage: str | None, sort: str, limit: int,
                     as_json: bool) -> None:
    df = scores.drop(columns=["recent"]).assign(
        missing_roles=scores["missing_roles"].map(", ".join))
    if stage is not None:
        df = df[df["stage"] == stage]
    df = df.sort_values([sort, "account"], ascending=[False, True]).head(limit)
    if as_json:
        _json(_records(df))
        return
    out.print(_table(df.drop(columns=["missing_roles"]), "accounts (latest scores)",
                     {"committee_coverage": "{:.0%}"}))


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
    out.print(f"[bold]{info['account_id']}[/bold]  stage: {info['stage']}  (as of "
              f"{info['as_of'][:16]})", highlight=False)
    out.print(f"fit {f['score']:.1f} ({f['band']}): " + "; ".join(f["criteria"] or []),
              highlight=False)
    out.print(f"engagement {e['score']:.1f} from {e['touches']} touches by {e['people']} "
              f"people; intent surge {i['surge']:.2f}"
              + (f" (surging on {', '.join(i['topics'])})" if i["topics"] else ""),
              highlight=False)
    out.print("stage because: " + "; ".join(info["stage_reasons"] or []), highlight=False)
    c = info["committee"]
    out.print(f"buying committee: {c['coverage']:.0%} covered; missing: "
              f"{', '.join(c['missing_roles']) or 'none'}", highlight=False)
    out.print(_table(pd.DataFrame(e["top_signals"]), "top signals (weight x decay)"))
    if info["stage_history"]:
        out.print(_table(pd.DataFrame(info["stage_history"]).drop(columns=["reasons"]),
                         "stage history"))


def _date(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"'{text}' is not a date", hint="use YYYY-MM-DD") from None


# the measure stage's commands register themselves on report_app and import_app
from demandloop import cli_activate, cli_collect, cli_mail, cli_measure  # noqa: E402,F401


# -- entry point ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Run the CLI; errors become one line (plus FILE:LINE details) and an exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(
        os.environ.get("DEMANDLOOP_DEBUG"))
    try:
        code = app(args=argv, standalone_mode=False)
        # without standalone mode, click returns a command's typer.Exit code instead
        if isinstance(code, int) and code:
            sys.exit(code)
    except Interrupted as exc:
        err.print(str(exc), highlight=False)
        sys.exit(exc.exit_code)
    except DemandloopError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False,
                  soft_wrap=True)
        for line in getattr(exc, "problems", []):
            err.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _interrupted()
    except Exception as exc:
        if _is_interrupt(exc):
            _interrupted()
        # Usage errors and exits: Typer >= 0.20 raises its own copies of click's exception
        # classes, so recognise them by what they do rather than by class.
        if hasattr(exc, "exit_code"):
            if hasattr(exc, "show"):
                exc.show()
            sys.exit(exc.exit_code)
        # anything else is a bug: say so plainly, keep the details for --debug
        if debug:
            traceback.print_exc()
        err.print(f"[bold red]internal error:[/bold red] {type(exc).__name__}: "
                  f"{escape(str(exc))} (rerun with --debug and report it)", highlight=False,
                  soft_wrap=True)
        sys.exit(70)


def _is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C inside a DuckDB query surfaces as DuckDB's interrupt, not KeyboardInterrupt."""
    import duckdb

    return isinstance(exc, duckdb.InterruptException) or (
        isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower())


def _interrupted() -> None:
    err.print("interrupted (what a command had committed stays; run it again to finish)",
              highlight=False)
    sys.exit(130)

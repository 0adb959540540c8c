"""``demandloop init``, ``config show``, ``status``, ``simulate``, ``demo``, ``export``,
``import parquet``, ``data build-asn`` and ``privacy export|erase|retention``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import typer
from rich.markup import escape

from demandloop.cli.base import (
    _SERVED,
    CONFIG_FILE,
    JsonOpt,
    _forward_if_served,
    _json,
    _open,
    _say,
    _state,
    _workspace_dir,
    app,
    config_app,
    data_app,
    err,
    import_app,
    out,
)
from demandloop.errors import NotFoundError, UsageError
from demandloop.lazy import LazyModule
from demandloop.progress import LazyProgress

if TYPE_CHECKING:
    from demandloop import simulate as sim
else:  # imported on first use: 'demandloop --help' and the quick commands need none
    sim = LazyModule("demandloop.simulate")


@app.command()
def init(
    directory: Path | None = typer.Argument(
        None, help="Workspace directory to create (default: the one -w or DEMANDLOOP_DIR "
        "names, else the current one)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing demandloop.toml."),
    as_json: bool = JsonOpt,
) -> None:
    """Write a commented demandloop.toml documenting every setting."""
    # (-w DIR init wrote ./demandloop.toml, and the next '-w DIR' command found no workspace)
    directory = directory or _state["workspace"]
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is a file: a workspace is a folder",
                         hint="name a new or existing folder")
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


@app.command()
def simulate(
    accounts: int = typer.Option(500, "--accounts", help="Accounts in the market."),
    days: int = typer.Option(90, "--days", help="Days of activity."),
    seed: int = typer.Option(42, "--seed", help="Random seed (same seed, same market)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder to write the files into."),
    scenario: str = typer.Option("normal", "--scenario",
                                 help="normal, shrinking-pool (demand decays) or personalization "
                                      "(a website experiment with a planted lift)."),
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
    directory: Path | None = typer.Argument(
        None, help="Where to write (with --format lake, default: \\[compute] lake)."),
    fmt: str = typer.Option(
        "parquet", "--format",
        help="parquet (one file per table) or lake (a folder per table, events and "
        "touches partitioned by day: what --engine spark reads)."),
    as_json: bool = JsonOpt,
) -> None:
    """Export every table of the workspace, losslessly."""
    if fmt not in ("parquet", "lake"):
        raise UsageError(f"unknown export format '{fmt}'", hint="use --format parquet or lake")
    if directory is None and fmt != "lake":
        raise UsageError("where to export?", hint="give a folder: demandloop export DIR")
    with _open() as ws:
        if directory is None:
            directory = ws.lake_path()
        n = ws.export_parquet(directory, lake=fmt == "lake")
    _say(as_json, n, f"exported {sum(n.values()):,} rows in {len(n)} tables to {directory}")


@app.command()
def status(as_json: bool = JsonOpt) -> None:
    """Rows per table in this workspace."""
    from rich.table import Table

    from demandloop.config import locate
    from demandloop.store.db import Store

    served = _SERVED.get()
    if served is not None:
        counts = served.store.table_counts()
    else:
        # the store alone (no pandas, no Ibis): status answers at once
        directory = _workspace_dir()
        _forward_if_served(directory)
        _, settings, path = locate(directory)
        store = Store.open(path, workspace_id=settings.workspace.id,
                           threads=settings.store.threads,
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
    directory: Path | None = typer.Option(
        None, "--dir", show_default=False,
        help="Workspace to build the demo in (default: the one -w names, else "
        "demandloop-demo). A folder holding a workspace of your own is refused."),
    accounts_: int = typer.Option(500, "--accounts", help="Accounts in the simulated market."),
    days: int = typer.Option(90, "--days", help="Days simulated."),
    seed: int = typer.Option(42, "--seed", help="Random seed."),
    as_json: bool = JsonOpt,
) -> None:
    """Simulate a B2B market, ingest it, and show what demandloop sees."""
    from demandloop.demo import run_demo

    if directory is None:
        directory = _state["workspace"] if _state["workspace_given"] else Path("demandloop-demo")
    report = run_demo(directory, accounts=accounts_, days=days, seed=seed,
                      console=None if as_json else out)
    if as_json:
        _json(report)


privacy_app = typer.Typer(no_args_is_help=True,
                          help="Data-subject requests (export, erase) and raw-event retention.")


app.add_typer(privacy_app, name="privacy")


def _nobody(person: str) -> NotFoundError:
    return NotFoundError(f"nothing is stored about '{person}'",
                         hint="give an email, user id or anonymous id as sent to demandloop")


@privacy_app.command("export")
def privacy_export(
    person: str = typer.Argument(..., help="An email, user id or anonymous id."),
    out_file: Path | None = typer.Option(None, "--out", help="Write the JSON here (a "
                                         "folder: privacy-export.json in it; else "
                                         "standard output)."),
    as_json: bool = typer.Option(False, "--json", help="Accepted for symmetry: the export "
                                 "is JSON either way."),
) -> None:
    """Everything stored about one person, as JSON (a data-subject access request)."""
    with _open() as ws:
        data = ws.export_person(person)
    if not data["found"]:
        raise _nobody(person)
    if out_file is None:
        _json(data)
        return

    from demandloop import outfiles

    out_file = outfiles.target(out_file, "privacy-export.json")
    with outfiles.written(out_file):
        out_file.write_bytes(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2))
    rows = sum(len(v) for v in data["tables"].values())
    out.print(f"wrote {rows:,} rows from {len(data['tables'])} tables to {out_file}")


@privacy_app.command("erase")
def privacy_erase(
    person: str = typer.Argument(..., help="An email, user id or anonymous id."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: erasing cannot be undone."),
    as_json: bool = JsonOpt,
) -> None:
    """Remove one person from every table, the collector's log and dead letters, a file
    mailbox's outbox and the Parquet exports this workspace wrote; their address stays
    suppressed (as a hash)."""
    if not yes:
        raise UsageError(f"erasing '{person}' cannot be undone",
                         hint="run 'demandloop privacy export' first if you need a copy, "
                         "then pass --yes")
    with _open() as ws:
        result = ws.erase_person(person)
    if not result["found"]:
        raise _nobody(person)
    if as_json:
        _json(result)
        return
    rows = result["rows"]
    out.print(f"erased {sum(rows.values()):,} rows ("
              + ", ".join(f"{t}: {n:,}" for t, n in rows.items()) + "); "
              f"{result['suppressed_hashes']} address(es) suppressed as a hash; "
              + (f"{result['outbox_messages_removed']} outbox message(s) removed; "
                 if result["outbox_messages_removed"] else "")
              + f"{len(result['exports_rewritten'])} export(s) rewritten")


@privacy_app.command("retention")
def privacy_retention(as_json: bool = JsonOpt) -> None:
    """Delete raw events older than collect.retention_days (the server does it itself)."""
    with _open() as ws:
        days = ws.settings.collect.retention_days
        if days <= 0:
            raise UsageError("collect.retention_days is 0: raw events are kept forever",
                             hint="set [collect] retention_days in demandloop.toml")
        n = ws.apply_retention()
    if as_json:
        _json({"deleted": n, "retention_days": days})
        return
    out.print(f"deleted {n:,} raw events received more than {days} days ago")


@data_app.command("build-crawlers")
def build_crawlers(
    sources: list[str] = typer.Option([], "--from", help="NAME=URL_OR_FILE: read only these "
                                      "crawlers' lists, from here (default: every operator's "
                                      "URL)."),
    target: Path | None = typer.Option(None, "--out", help="Where to write (default: the "
                                       "package's data file)."),
    as_json: bool = JsonOpt,
) -> None:
    """Refresh the AI crawlers' published addresses (spoofed agents are told by them) from
    the operators' own lists; a list that cannot be read keeps its last version."""
    import datetime as dt
    import json

    import httpx

    from demandloop.enrich import crawlers
    from demandloop.errors import InputError, UsageError

    urls = {} if sources else dict(crawlers.OFFICIAL_RANGES)
    for pair in sources:
        name, sep, where = pair.partition("=")
        if not sep or not name or not where:
            raise UsageError(f"--from '{pair[:80]}' is not NAME=URL_OR_FILE",
                             hint="for example --from GPTBot=gptbot.json")
        urls[name] = where
    dest = target or Path(crawlers.__file__).resolve().parent.parent / "data" / \
        crawlers.RANGES_FILE
    before = json.loads(dest.read_text()) if dest.exists() else {"crawlers": {}}
    entries, failed = dict(before.get("crawlers", {})), {}
    for name, where in sorted(urls.items()):
        try:
            if where.startswith(("http://", "https://")):
                response = httpx.get(where, timeout=20, follow_redirects=True)
                response.raise_for_status()
                data = response.content
            else:
                data = Path(where).read_bytes()
            entries[name] = {"url": where, "prefixes": crawlers.prefixes(data)}
        except (OSError, ValueError, httpx.HTTPError) as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    if len(failed) == len(urls):
        raise InputError("no crawler list could be read; nothing was written",
                         hint="check the addresses (or pass --from NAME=FILE)",
                         problems=[f"{n}: {why}" for n, why in failed.items()])
    snapshot = {"about": f"built by 'demandloop data build-crawlers' from the operators' lists "
                f"({', '.join(sorted(urls))})", "built": dt.date.today().isoformat(),
                "crawlers": entries}
    dest.write_text(json.dumps(snapshot, indent=1))
    crawlers.verifier.cache_clear()
    counts = {n: len(e["prefixes"]) for n, e in sorted(entries.items())}
    _say(as_json, {"path": str(dest), "prefixes": counts, "failed": failed},
         f"{sum(counts.values()):,} prefixes of {len(counts)} crawlers written to {dest}"
         + "".join(f"\n  not read (kept its last list): {n}: {why}"
                   for n, why in failed.items()))

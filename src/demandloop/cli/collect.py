"""``demandloop ingest`` and ``demandloop import accounts|contacts|opportunities|ip-ranges|
olist|spend``: the collect stage's commands."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from demandloop.cli.base import (
    JsonOpt,
    _is_interrupt,
    _json,
    _open,
    _say,
    app,
    err,
    import_app,
    out,
)
from demandloop.errors import Interrupted
from demandloop.progress import LazyProgress


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
    unlinked: list[str] = []
    skipped: list[str] = []
    with _open() as ws:
        n = ws.import_crm(kind, file, mapping, ignored, unlinked, skipped)
    _say(as_json, {"imported": n, "kind": kind, "file": str(file), "ignored_columns": ignored,
                   **({"unlinked": unlinked, "skipped": skipped} if kind == "contacts"
                      else {})},
         f"{n:,} {kind} imported from {file}")
    if skipped and not as_json:
        shown = "\n".join(f"  {u}" for u in skipped[:10])
        more = f"\n  ... and {len(skipped) - 10:,} more" if len(skipped) > 10 else ""
        err.print(f"{len(skipped):,} contact(s) without an email address were not imported "
                  f"(a person is known by their email):\n{shown}{more}", markup=False,
                  highlight=False, soft_wrap=True)
    if ignored and not as_json:
        err.print(f"not imported, no field recognised: {', '.join(ignored)} (pass --map "
                  "'COLUMN=FIELD' to import one)", markup=False, highlight=False,
                  soft_wrap=True)
    if unlinked and not as_json:
        shown = "\n".join(f"  {u}" for u in unlinked[:10])
        more = f"\n  ... and {len(unlinked) - 10:,} more" if len(unlinked) > 10 else ""
        err.print(f"{len(unlinked):,} contact(s) imported without their account, which is "
                  "not in the workspace (import the accounts, then these contacts again):\n"
                  f"{shown}{more}", markup=False, highlight=False, soft_wrap=True)


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


@import_app.command("spend")
def import_spend(file: Path = typer.Argument(..., help="CSV: date, channel, campaign, spend, "
                                             "impressions, clicks."),
                 as_json: bool = JsonOpt) -> None:
    """Import ad/program spend (for CPL, cost per opportunity and ROI in the funnel)."""
    warnings: list[str] = []
    with _open() as ws:
        n = ws.import_spend(file, warnings)
    _say(as_json, {"imported": n, "file": str(file), "warnings": warnings},
         f"{n:,} spend rows imported from {file}")
    if not as_json:
        for w in warnings:
            err.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)


@import_app.command("access-logs")
def import_access_logs(
    files: list[Path] = typer.Argument(..., help="nginx/Apache combined-format logs, or "
                                       "Cloudflare, CloudFront or Fastly JSON lines (.gz too)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid",
                                      help="Import the good lines, report the bad ones."),
    as_json: bool = JsonOpt,
) -> None:
    """Import web server and CDN access logs: which AI crawlers read which pages (see
    docs/aeo.md). Lines already imported are skipped."""
    with _open() as ws:
        r = ws.import_access_logs(*files, skip_invalid=skip_invalid)
    if as_json:
        _json(r.as_json())
        return
    for p in r.problems:
        err.print(p, markup=False, highlight=False, soft_wrap=True)
    bots = ", ".join(f"{n:,} {k}" for k, n in sorted(r.crawls.items())) or "none"
    out.print(f"{r.imported:,} requests imported, {r.duplicates:,} already there, "
              f"{r.invalid:,} bad lines skipped, in {r.seconds:.1f} s; AI crawler "
              f"requests: {bots}")

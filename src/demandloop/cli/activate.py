"""``demandloop workflows``, ``audiences``, ``experiences`` and ``mail check``: the activate
stage's commands (sequences and suppressions are in :mod:`demandloop.cli.sequences`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from demandloop.cli.base import (
    JsonOpt,
    _date,
    _json,
    _open,
    _records,
    _table,
    app,
    err,
    out,
)
from demandloop.errors import UsageError
from demandloop.lazy import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: 'demandloop --help' and the quick commands need none
    pd = LazyModule("pandas")


audiences_app = typer.Typer(no_args_is_help=True, help="Audiences: segments for ad platforms.")


app.add_typer(audiences_app, name="audiences")


@audiences_app.command("list")
def audiences_list(as_json: bool = JsonOpt) -> None:
    """Saved segments ([\\[activate.segments]]) and the lists workflows fill
    (add_to_audience), with their current size."""
    with _open() as ws:
        rows = [{"name": s.name, "entity": s.entity, "members": len(ws.segment(s.name)[1]),
                 "description": s.description} for s in ws.segments()]
        named = {r["name"] for r in rows}
        rows += [{"name": name, "entity": "account", "members": n,
                  "description": "filled by workflows (add_to_audience)"}
                 for name, n in ws.audience_lists().items() if name not in named]
    if as_json:
        _json(rows)
        return
    out.print(_table(pd.DataFrame(rows, columns=["name", "entity", "members", "description"]),
                     "segments"))


@audiences_app.command("export")
def audiences_export(
    name: str = typer.Argument(..., help="Segment name (see 'audiences list')."),
    fmt: str = typer.Option("csv", "--format", help="csv, linkedin (accounts) or google "
                            "(people, hashed Customer Match)."),
    path: Path = typer.Option(..., "--out", help="CSV file to write (a folder: "
                              "NAME-FORMAT.csv in it)."),
    as_json: bool = JsonOpt,
) -> None:
    """Write a segment in the format an ad platform uploads."""
    with _open() as ws:
        n, warnings, path = ws.export_audience(name, fmt, path)
    if as_json:
        _json({"rows": n, "segment": name, "format": fmt, "path": str(path),
               "warnings": warnings})
        return
    out.print(f"wrote {n:,} rows of '{name}' ({fmt}) to {path}", markup=False)
    for w in warnings:
        out.print(f"[yellow]warning:[/yellow] {escape(w)}")


workflows_app = typer.Typer(no_args_is_help=True, help="Workflows: signal -> route -> alert.")


app.add_typer(workflows_app, name="workflows")


@workflows_app.command("validate")
def workflows_validate(as_json: bool = JsonOpt) -> None:
    """Check demandloop.toml's and workflows/*.toml's workflows; exit 0 when all are valid."""
    with _open() as ws:
        flows = ws.workflows()
    if as_json:
        _json({"valid": [w.name for w in flows]})
        return
    out.print(f"{len(flows)} workflow(s) valid: {', '.join(w.name for w in flows) or '(none)'}",
              markup=False)


@workflows_app.command("list")
def workflows_list(as_json: bool = JsonOpt) -> None:
    """Workflows: trigger, conditions and actions."""
    with _open() as ws:
        rows = [{"name": w.name, "enabled": w.enabled,
                 "when": w.when.trigger + "".join(
                     f" {k}={v}" for k, v in w.when.model_dump().items()
                     if k != "trigger" and v is not None),
                 "if": " and ".join(f"{c.field} {c.op} {c.value}" for c in w.if_) or "-",
                 "then": " -> ".join(a.action for a in w.then)} for w in ws.workflows()]
    if as_json:
        _json(rows)
        return
    out.print(_table(pd.DataFrame(rows, columns=["name", "enabled", "when", "if", "then"]),
                     "workflows"))


@workflows_app.command("run")
def workflows_run(
    dry_run: bool = typer.Option(False, "--dry-run", help="List the actions a run would "
                                 "enqueue; change nothing."),
    since: str | None = typer.Option(None, "--since", help="Replay the signals after this "
                                     "date (YYYY-MM-DD), e.g. for a workflow added later; "
                                     "what already fired is not repeated."),
    as_json: bool = JsonOpt,
) -> None:
    """Fire workflows on what changed since the last run (run after 'score'), then carry out
    every due action (retries included)."""

    with _open() as ws:
        r = ws.run_workflows(since=_date(since) if since else None, dry_run=dry_run)
    if as_json:
        _json(r.__dict__)
        return
    if dry_run:
        out.print(f"dry run: {r.fired:,} firing(s) would enqueue {r.enqueued:,} new "
                  f"action(s){f' ({r.stale:,} signal(s) too old to fire)' if r.stale else ''}"
                  "; nothing was changed")
        for line in r.details:
            out.print(f"  {line}", markup=False, highlight=False)
        return
    out.print(f"{r.fired:,} firing(s), {r.enqueued:,} new action(s); done {r.done:,}, "
              f"retrying {r.retried:,}, dead {r.dead:,}; {r.enrolled:,} enrolled"
              + (f"; {r.stale:,} signal(s) older than activate.max_signal_age_days skipped"
                 if r.stale else ""))
    for line in r.details[:20]:
        out.print(f"  {line}", markup=False, highlight=False)


@workflows_app.command("history")
def workflows_history(
    account: str | None = typer.Option(None, "--account", help="One account's trail."),
    as_json: bool = JsonOpt,
) -> None:
    """The audit trail: every action taken, pending, retried or dead, newest first."""
    with _open() as ws:
        df = ws.workflow_history(account)
    if as_json:
        _json(_records(df))
        return
    if df.empty and account:  # (an empty table read as a misspelt account's history)
        err.print(f"no workflow action for account '{escape(account)}' (its id or domain; "
                  "'demandloop accounts' lists them)")
        return
    out.print(_table(df.drop(columns=["trigger"]), "workflow history"))


experiences_app = typer.Typer(no_args_is_help=True,
                              help="Website personalisation: experiences dl.js applies.")


app.add_typer(experiences_app, name="experiences")


@experiences_app.command("validate")
def experiences_validate(as_json: bool = JsonOpt) -> None:
    """Check demandloop.toml's and experiences/*.toml's experiences (fields, templates,
    links); exit 0 when all are valid."""
    with _open() as ws:
        found = ws.experiences()
    if as_json:
        _json({"valid": [e.name for e in found]})
        return
    out.print(f"{len(found)} experience(s) valid: "
              f"{', '.join(e.name for e in found) or '(none)'}", markup=False)


@experiences_app.command("list")
def experiences_list(as_json: bool = JsonOpt) -> None:
    """Experiences in the order they are tried: zone, priority, control share, audience
    and changes."""
    from demandloop.config.personalize import tried_order

    with _open() as ws:
        found = tried_order(ws.experiences())
    def said(conditions: list[Any]) -> list[str]:
        return [f"{c.field} {c.op} {c.value}" for c in conditions]

    rows = [{"name": e.name, "enabled": e.enabled, "zone": e.zone_name,
             "priority": e.priority, "control": e.control,
             "audience": " and ".join(said(e.audience.all) + (
                 [f"any of ({'; '.join(said(e.audience.any))})"] if e.audience.any else [])
             ) or "everyone",
             "changes": ", ".join(f"{c.selector or '(page)'} {c.attribute or c.action}"
                                 for c in e.changes)}
            for e in found]
    if as_json:
        _json(rows)
        return
    out.print(_table(pd.DataFrame(rows, columns=["name", "enabled", "zone", "priority",
                                                 "control", "audience", "changes"]),
                     "experiences (tried from the top)"))


@experiences_app.command("preview")
def experiences_preview(
    account: str = typer.Argument(..., help="Account id or domain."),
    url: str = typer.Option("", "--url", help="The page visited (its path and UTM "
                            "parameters), e.g. https://example.com/pricing?utm_source=x."),
    referrer: str = typer.Option("", "--referrer", help="The page's referrer."),
    as_json: bool = JsonOpt,
) -> None:
    """What a visitor from ACCOUNT would see: each experience's audience, the account's
    arm and the changes rendered for it."""
    with _open() as ws:
        got = ws.preview_experiences(account, url or None, referrer or None)
    if as_json:
        _json(got)
        return
    shown = sum(1 for e in got["experiences"] if e["applies"])
    out.print(f"{got['account_id']}{' on ' + url if url else ''}: {shown} of "
              f"{len(got['experiences'])} experience(s) apply", markup=False)
    for e in got["experiences"]:
        head = f"  {e['experience']} (zone {e['zone']}, priority {e['priority']}): "
        if not e["applies"]:
            out.print(head + f"not shown: {e['why_not']}", markup=False, highlight=False)
            continue
        arm = ("the control arm: sees the original; the personalised arm would get"
               if e["variant"] == "control" else "the personalised arm")
        out.print(head + f"{arm} (control share {e['control_share']:.0%})", markup=False,
                  highlight=False)
        for c in e["changes"]:
            what = c.get("attribute") or c["action"]
            value = c.get("skipped") or c.get("value", "")
            out.print(f"    {c['selector'] or '(page)'} {what}"
                      + (f": {' '.join(str(value).split())}" if value else ""),
                      markup=False, highlight=False, soft_wrap=True)


mail_app = typer.Typer(no_args_is_help=True, help="Email deliverability.")


app.add_typer(mail_app, name="mail")


@mail_app.command("check")
def mail_check(
    domain: str = typer.Argument(..., help="The domain you send from (e.g. acme.com)."),
    selector: list[str] = typer.Option([], "--selector",
                                       help="DKIM selector(s) you sign with (default: common "
                                       "ones)."),
    nameserver: str | None = typer.Option(None, "--nameserver",
                                          help="Ask this DNS server (IP or IP:PORT)."),
    as_json: bool = JsonOpt,
) -> None:
    """Check SPF, DKIM and DMARC and say what to fix; exits 1 when a check fails."""
    from demandloop.activate import deliverability as mail
    from demandloop.domains import canonical_domain
    from demandloop.outbound.dns import txt_lookup

    # a URL or an address names its domain; anything else is no domain to ask DNS about
    # (it was asked, and "not a domain!" came back as "does not exist in DNS")
    named = canonical_domain(domain)
    if named is None or not any(c.isalpha() for c in named):
        raise UsageError(f"'{domain[:80]}' is not a domain",
                         hint="give the domain you send mail from, e.g. acme.com")
    domain = named
    selectors = tuple(selector) or mail.DEFAULT_SELECTORS
    findings = mail.check(domain, txt_lookup(nameserver), selectors)
    if as_json:
        _json([f.__dict__ for f in findings])
    else:
        colour = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for f in findings:
            out.print(f"[{colour[f.status]}]{f.status.upper():4}[/] {f.check:5} "
                      f"{escape(f.message)}")
    if any(f.status == "fail" for f in findings):
        raise typer.Exit(1)



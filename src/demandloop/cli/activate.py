"""``demandloop workflows``, ``audiences``, ``sequences``, ``suppress`` and ``mail check``:
the activate stage's commands."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from demandloop.cli.base import (
    JsonOpt,
    _date,
    _json,
    _open,
    _records,
    _say,
    _table,
    app,
    out,
)
from demandloop.errors import InputError
from demandloop.lazy import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: 'demandloop --help' and the quick commands need none
    pd = LazyModule("pandas")


audiences_app = typer.Typer(no_args_is_help=True, help="Audiences: segments for ad platforms.")


app.add_typer(audiences_app, name="audiences")


@audiences_app.command("list")
def audiences_list(as_json: bool = JsonOpt) -> None:
    """Saved segments ([[activate.segments]]) and the lists workflows fill
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
    path: Path = typer.Option(..., "--out", help="CSV file to write."),
    as_json: bool = JsonOpt,
) -> None:
    """Write a segment in the format an ad platform uploads."""
    with _open() as ws:
        n, warnings = ws.export_audience(name, fmt, path)
    if as_json:
        _json({"rows": n, "segment": name, "format": fmt, "path": str(path),
               "warnings": warnings})
        return
    out.print(f"wrote {n:,} rows of '{name}' ({fmt}) to {path}")
    for w in warnings:
        out.print(f"[yellow]warning:[/yellow] {w}")


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
    out.print(f"{len(flows)} workflow(s) valid: {', '.join(w.name for w in flows) or '(none)'}")


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
        out.print(f"  {line}")


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
    out.print(_table(df.drop(columns=["trigger"]), "workflow history"))


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
    from demandloop.outbound.dns import txt_lookup

    selectors = tuple(selector) or mail.DEFAULT_SELECTORS
    findings = mail.check(domain, txt_lookup(nameserver), selectors)
    if as_json:
        _json([f.__dict__ for f in findings])
    else:
        colour = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for f in findings:
            out.print(f"[{colour[f.status]}]{f.status.upper():4}[/] {f.check:5} {f.message}")
    if any(f.status == "fail" for f in findings):
        raise typer.Exit(1)


sequences_app = typer.Typer(no_args_is_help=True,
                            help="Sequences: personalised multi-step email, sent safely.")


app.add_typer(sequences_app, name="sequences")


@sequences_app.command("list")
def sequences_list(as_json: bool = JsonOpt) -> None:
    """Sequences, their steps and mailboxes, and how many people are in each."""
    with _open() as ws:
        counts = ws.enrolments().groupby(["sequence", "status"]).size()
        rows = [{"name": q.name, "steps": " -> ".join(
                    s.type + (f" {s.days}d" if s.type == "wait" else "") for s in q.steps),
                 "mailboxes": ", ".join(q.mailboxes), "gate": q.quality_gate,
                 "active": int(counts.get((q.name, "active"), 0)),
                 "finished": int(counts.get((q.name, "finished"), 0)),
                 "stopped": int(counts.get((q.name, "stopped"), 0))}
                for q in ws.settings.activate.sequences]
    if as_json:
        _json(rows)
        return
    out.print(_table(pd.DataFrame(rows, columns=["name", "steps", "mailboxes", "gate",
                                                 "active", "finished", "stopped"]),
                     "sequences"))


@sequences_app.command("validate")
def sequences_validate(as_json: bool = JsonOpt) -> None:
    """Render every step against a sample person and check mailboxes (DKIM keys, password
    variables); exit 1 on any problem (warnings do not fail)."""
    with _open() as ws:
        problems = ws.check_sequences()
        n = len(ws.settings.activate.sequences)
    failed = any(not p.startswith("warning") for p in problems)
    if as_json:
        _json({"sequences": n, "problems": problems, "valid": not failed})
        if failed:
            raise typer.Exit(1)
        return
    for p in problems:
        out.print(("[yellow]" if p.startswith("warning") else "[bold red]") + p + "[/]")
    if any(not p.startswith("warning") for p in problems):
        raise typer.Exit(1)
    out.print(f"{n} sequence(s) valid")


@sequences_app.command("run")
def sequences_run(as_json: bool = JsonOpt) -> None:
    """Stop what must stop and send what is due now, within each mailbox's send window,
    warm-up and caps ('demandloop serve' does this every activate.mail.tick_seconds)."""
    with _open() as ws:
        r = ws.run_sequences()
    if as_json:
        _json(r.__dict__)
        return
    out.print(f"sent {r.sent}, bounced {r.bounced}, deferred {r.deferred}, stopped "
              f"{r.stopped}, finished {r.finished}, waiting {r.waiting} (outside the "
              f"recipient's hours or over a mailbox limit), tasks {r.tasks}"
              + (f", in doubt {r.in_doubt}" if r.in_doubt else ""))
    for line in r.details[:20]:
        out.print(f"  {line}")


@sequences_app.command("enrolments")
def sequences_enrolments(
    sequence: str | None = typer.Option(None, "--sequence", help="Only this sequence."),
    as_json: bool = JsonOpt,
) -> None:
    """Who is in which sequence: mailbox, step, status, why it stopped, emails sent."""
    with _open() as ws:
        df = ws.enrolments(sequence)
    if as_json:
        _json(_records(df))
        return
    out.print(_table(df, "enrolments"))


@sequences_app.command("messages")
def sequences_messages(as_json: bool = JsonOpt) -> None:
    """Every sequence email: to, subject, mailbox, status (sent, bounced, deferred,
    in_doubt) and error."""
    with _open() as ws:
        df = ws.mail_messages()
    if as_json:
        _json(_records(df))
        return
    out.print(_table(df.drop(columns=["enrolment_id", "message_id"]), "messages"))


suppress_app = typer.Typer(no_args_is_help=True,
                           help="The suppression list: addresses never mailed.")


app.add_typer(suppress_app, name="suppress")


@suppress_app.command("add")
def suppress_add(
    emails: list[str] = typer.Argument(..., help="Addresses to never mail again."),
    reason: str = typer.Option("manual", "--reason", help="Why (shown in the list)."),
    as_json: bool = JsonOpt,
) -> None:
    """Add addresses to the suppression list."""
    bad = [e for e in emails if "@" not in e]
    if bad:
        raise InputError(f"not an email address: {bad[0]}",
                         hint="give addresses such as jane@acme.com")
    with _open() as ws:
        n = ws.suppress(emails, reason=reason, source="cli")
    _say(as_json, {"added": n, "already": len(emails) - n},
         f"suppressed {n} new address(es) ({len(emails) - n} already were)")


@suppress_app.command("remove")
def suppress_remove(email: str = typer.Argument(..., help="Address to allow again."),
                    as_json: bool = JsonOpt) -> None:
    """Allow mailing an address again (only when they asked you to)."""
    with _open() as ws:
        found = ws.unsuppress(email)
    if not found:
        raise InputError(f"{email} is not on the suppression list",
                         hint="'demandloop suppress list' shows who is")
    _say(as_json, {"removed": email}, f"{email} removed from the suppression list")


@suppress_app.command("list")
def suppress_list(as_json: bool = JsonOpt) -> None:
    """The suppression list, oldest first."""
    with _open() as ws:
        df = ws.suppressions()
    if as_json:
        _json(_records(df))
        return
    out.print(_table(df, "suppressions"))


@suppress_app.command("import")
def suppress_import(
    path: Path = typer.Argument(..., help="CSV with an 'email' column (an ESP's export)."),
    reason: str = typer.Option("imported", "--reason", help="Why (shown in the list)."),
    as_json: bool = JsonOpt,
) -> None:
    """Import a suppression list; a file with a bad row imports nothing."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = {c.strip().lower(): c for c in reader.fieldnames or []}
            column = columns.get("email") or columns.get("email address")
            if column is None:
                raise InputError(f"{path}: no 'email' column (columns: "
                                 f"{', '.join(reader.fieldnames or []) or 'none'})",
                                 hint="export the list with an 'email' header")
            emails = []
            for line, row in enumerate(reader, start=2):
                value = (row.get(column) or "").strip()
                if "@" not in value:
                    raise InputError(f"{path}:{line}: not an email address: '{value}'",
                                     hint="fix the row; nothing was imported")
                emails.append(value)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    with _open() as ws:
        n = ws.suppress(emails, reason=reason, source=f"import:{path.name}")
    _say(as_json, {"imported": len(emails), "new": n},
         f"imported {len(emails):,} address(es), {n:,} new, at "
         f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")

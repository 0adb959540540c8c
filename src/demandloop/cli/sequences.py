"""``demandloop sequences list|validate|run|enrolments|messages`` and ``demandloop suppress
add|remove|list|import``: personalised email, sent safely (the activate stage)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from demandloop.cli.base import (
    JsonOpt,
    _json,
    _open,
    _records,
    _say,
    _table,
    app,
    err,
    out,
)
from demandloop.errors import InputError
from demandloop.lazy import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: 'demandloop --help' and the quick commands need none
    pd = LazyModule("pandas")


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
    else:
        out.print(f"sent {r.sent}, bounced {r.bounced}, deferred {r.deferred}, stopped "
                  f"{r.stopped}, finished {r.finished}, waiting {r.waiting} (outside the "
                  f"recipient's hours, over a mailbox limit or its mailbox resting), tasks "
                  f"{r.tasks}" + (f", in doubt {r.in_doubt}" if r.in_doubt else "")
                  + (f", held {r.held}" if r.held else ""))
        for line in r.details[:20]:
            out.print(f"  {line}", markup=False, highlight=False)
    if r.problems:  # the rest was sent: what is held needs the user
        for line in r.problems:
            err.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
        err.print(f"  {r.held} enrolment(s) wait at that step: fix it, check with "
                  "'demandloop sequences validate', and they go at the next run",
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)


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
    emails: list[str] = typer.Argument(..., help="Addresses to never mail again (@acme.com: "
                                       "everyone at acme.com)."),
    reason: str = typer.Option("manual", "--reason", help="Why (shown in the list)."),
    as_json: bool = JsonOpt,
) -> None:
    """Add addresses, or @domain for everyone at a domain, to the suppression list."""
    from demandloop.activate.suppression_csv import ENTRY_HINT, entry

    entries = [entry(e) for e in emails]
    bad = [e for e, found in zip(emails, entries, strict=True) if found is None]
    if bad:
        raise InputError(f"not an email address or @domain: {bad[0][:80]}", hint=ENTRY_HINT)
    with _open() as ws:
        n = ws.suppress([e for e in entries if e], reason=reason, source="cli")
    _say(as_json, {"added": n, "already": len(emails) - n},
         f"suppressed {n} new address(es) ({len(emails) - n} already were)")


@suppress_app.command("remove")
def suppress_remove(email: str = typer.Argument(..., help="Address to allow again."),
                    as_json: bool = JsonOpt) -> None:
    """Allow mailing an address again (only when they asked you to)."""
    from demandloop.activate.suppression_csv import entry

    with _open() as ws:
        found = ws.unsuppress(entry(email) or email)
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
    from demandloop.activate.suppression_csv import read_emails

    emails = read_emails(path)
    with _open() as ws:
        n = ws.suppress(emails, reason=reason, source=f"import:{path.name}")
    _say(as_json, {"imported": len(emails), "new": n},
         f"imported {len(emails):,} address(es), {n:,} new, at "
         f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")


"""``demandloop resolve`` and ``demandloop explain person``: the resolve stage's commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from demandloop.cli.base import (
    EngineOpt,
    JsonOpt,
    _json,
    _open,
    _table,
    app,
    err,
    explain_app,
    out,
)
from demandloop.lazy import LazyModule
from demandloop.progress import LazyProgress

if TYPE_CHECKING:
    import pandas as pd
else:  # imported on first use: 'demandloop --help' and the quick commands need none
    pd = LazyModule("pandas")


@app.command()
def resolve(engine: str | None = EngineOpt, as_json: bool = JsonOpt) -> None:
    """Resolve persons and accounts and derive touches (incrementally: see docs/resolution.md;
    --engine spark rebuilds them from the Parquet lake: docs/scale.md)."""
    with _open() as ws, LazyProgress(err, "resolving identities and accounts", None):
        r = ws.resolve(engine=engine)
    if as_json:
        _json(r.__dict__)
        return
    share = r.touches_with_account / max(r.touches, 1)
    out.print(f"{r.persons:,} persons ({r.identified_devices:,} identified browsers), "
              f"{r.accounts_created:,} new accounts from email domains and group calls; "
              f"{r.touches:,} touches, {share:.1%} matched to an account ({r.seconds:.1f}s)")
    out.print("rebuilt from every event" if r.mode == "rebuild" else
              f"incremental: {r.touches_written:,} touches of the visitors new events reached")
    top = sorted(r.unresolved.items(), key=lambda kv: -kv[1])[:6]
    if top:
        out.print(_table(pd.DataFrame(top, columns=["unresolved because", "touches"]),
                         "touches without an account", {"touches": "{:,}"}))


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
              f"{acc['confidence']:.2f})" if acc else "account: not resolved", markup=False)
    out.print("identifiers: " + ", ".join(info["identifiers"]), markup=False)
    for link in info["merged_by"]:
        out.print(f"  merged {link['from']} + {link['to']} by {link['message_type']} "
                  f"{link['message_id']} at {link['first_seen']}", markup=False, highlight=False)
    out.print(f"anonymous touches attributed after identification: "
              f"{info['anonymous_touches_attributed']:,}")
    if info["touches_by_channel"]:
        out.print(_table(pd.DataFrame(info["touches_by_channel"]), "touches by channel"))

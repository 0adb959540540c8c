"""``demandloop aeo audit``: can AI assistants read your site, and quote it (docs/aeo.md)."""

from __future__ import annotations

import typer
from rich.markup import escape

from demandloop.cli.base import JsonOpt, _json, _open, app, out

aeo_app = typer.Typer(no_args_is_help=True, help="Answer-engine optimisation: AI crawlers "
                      "and your site.")
app.add_typer(aeo_app, name="aeo")


@aeo_app.command("audit")
def aeo_audit(
    source: str = typer.Argument(..., help="The site's build folder, or its URL."),
    base_url: str = typer.Option("", "--base-url", help="The site's address, for a folder "
                                 "(default: content.base_url)."),
    limit: int = typer.Option(200, "--limit", min=1, max=10_000, help="Pages at most."),
    min_score: int = typer.Option(0, "--min-score", min=0, max=100, help="Exit 1 when the "
                                  "site's score is below this (for CI)."),
    as_json: bool = JsonOpt,
) -> None:
    """Check robots.txt for each AI crawler, llms.txt, the sitemap, and every page: title,
    description, one H1, question headings, schema.org JSON-LD, an answer-first paragraph,
    a date modified, a canonical URL, server-rendered text and page weight."""
    with _open() as ws:
        result = ws.audit_site(source, base_url, limit)
    if as_json:
        _json(result)
    else:
        out.print(f"[bold]{escape(result['base'])}[/bold]: score {result['score']} / 100 over "
                  f"{len(result['pages'])} page(s)")
        for c in result["site"]:
            mark = "[green]ok[/green]" if c["ok"] else "[red]fix[/red]"
            out.print(f"  {mark} {c['check']}: {escape(c.get('fix') or c.get('note') or '')}",
                      highlight=False)
        for p in result["pages"]:
            out.print(f"  {p['score']:>3} {p['page']}", markup=False, highlight=False)
            for f in p["fixes"]:
                out.print(f"        - {f['name']}: {f['fix']}", markup=False, highlight=False)
        for where, why in result["failed"].items():
            out.print(f"  [yellow]not read:[/yellow] {escape(f'{where}: {why}')}", highlight=False)
    if result["score"] < min_score:
        raise typer.Exit(1)

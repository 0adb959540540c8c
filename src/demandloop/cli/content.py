"""``demandloop content``: index the vendor's own pages (what chat answers from and the
dashboard searches) and search them."""

from __future__ import annotations

import typer
from rich.markup import escape

from demandloop.cli.base import JsonOpt, _json, _open, app, err, out

content_app = typer.Typer(no_args_is_help=True,
                          help="Content: index your own pages for chat and search.")
app.add_typer(content_app, name="content")


@content_app.command("index")
def content_index(
    sources: list[str] = typer.Argument(..., help="Folders or files of .html/.md pages, "
                                        "page URLs or sitemap URLs."),
    as_json: bool = JsonOpt,
) -> None:
    """Read pages into the content index; a re-index reads only what changed (file
    bytes, the sitemap's lastmod, or the server's 304 to a conditional GET)."""
    with _open() as ws:
        result = ws.index_content(sources)
    if as_json:
        _json(result.as_json())
    else:
        out.print(f"indexed {result.pages:,} pages ({result.passages:,} passages) in "
                  f"{result.seconds:.1f} s: {result.added:,} new, {result.changed:,} "
                  f"changed, {result.unchanged:,} unchanged, {result.removed:,} removed")
        if result.unaddressed:
            err.print(f"[yellow]warning:[/yellow] {result.unaddressed:,} page(s) have no "
                      "address on your site (read from a folder, with no content.base_url, "
                      "canonical link or url: front matter): chat answers from them but "
                      "cites no link; set content.base_url to the site's address",
                      markup=True, highlight=False)
        for location, why in result.failed.items():
            where = escape(f"{location}: {why}")
            err.print(f"[yellow]not read:[/yellow] {where} (its last version, "
                      "if any, stays in the index)", markup=True, highlight=False)
    if result.failed and not (result.added + result.changed + result.unchanged):
        # nothing read this run (a site down, a sitemap gone): a failure a scheduled job
        # must see, even while the last index still answers
        if not as_json:
            err.print("error: no source could be read; the index is as it was",
                      markup=False, highlight=False)
        raise typer.Exit(1)


@content_app.command("search")
def content_search(
    query: str = typer.Argument(..., help="What to look for, as a visitor would ask it."),
    limit: int = typer.Option(5, "--limit", min=1, max=50, help="Passages to show."),
    as_json: bool = JsonOpt,
) -> None:
    """The passages that best answer QUERY, with their page and relevance (the share of
    the question's terms they hold; chat answers above chat.min_relevance)."""
    with _open() as ws:
        if ws.content_index() is None:
            from demandloop.errors import UsageError

            raise UsageError("there is no content index yet",
                             hint="run 'demandloop content index FOLDER|URL' first")
        hits = ws.search_content(query, limit)
    if as_json:
        _json(hits)
        return
    if not hits:
        out.print("no passage holds any word of the question")
    for h in hits:
        where = escape(f"{h['url']}  {h['heading']}")
        out.print(f"[bold]{h['relevance']:.0%}[/bold] {where}")
        out.print(f"    {h['text'][:300]}", markup=False, highlight=False)

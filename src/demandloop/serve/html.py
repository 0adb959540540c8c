"""The small HTML pages the collector answers links with (unsubscribe, reschedule or cancel
a meeting): one plain, self-contained page, never cached nor indexed."""

from __future__ import annotations

from html import escape

from fastapi.responses import HTMLResponse

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.4rem .8rem;margin:.2rem}}</style></head><body>
<h1>{title}</h1>{body}</body></html>"""


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A page titled *title* (escaped here) around *body* (HTML, escaped by the caller)."""
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status,
                        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"})

"""``/u/{token}``: the unsubscribe link of every sequence email.

* ``POST`` unsubscribes: RFC 8058 one-click (mail clients POST ``List-Unsubscribe=One-Click``
  when the user presses their own "Unsubscribe" button) and the confirmation page's button.
* ``GET`` only shows that page: link scanners and previews fetch links, so a GET must never
  unsubscribe anyone (RFC 8058, section 3.2).

The token is signed (:func:`demandloop.activate.compose.make_token`), so nobody can
unsubscribe an address they did not receive mail at. An unsubscribe is written to the durable
log as a Segment ``Unsubscribed`` track event before the answer goes out, exactly like an
ingested event: the loader lands it, and the sequence runner, which runs after loading,
suppresses the address before its next send. The messageId is derived from the address, so
pressing the button twice stores one event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from html import escape
from pathlib import Path

import orjson
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from demandloop.activate.compose import unsubscribe_key, verify_token
from demandloop.errors import StoreError
from demandloop.serve.html import page
from demandloop.serve.state import CollectorState


def event(workspace: str, email: str, now: dt.datetime) -> bytes:
    """The log line an unsubscribe becomes (a Segment track call)."""
    digest = hashlib.sha256(f"{workspace}\x1f{email}".encode()).hexdigest()
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return orjson.dumps({
        "type": "track", "event": "Unsubscribed", "messageId": f"unsubscribe-{digest[:40]}",
        "anonymousId": f"unsubscribe-{digest[:16]}", "timestamp": stamp, "receivedAt": stamp,
        "properties": {"email": email, "source": "list-unsubscribe"},
        "context": {"traits": {"email": email}}})


def register(app: FastAPI, state: CollectorState, directory: Path) -> None:
    """Add ``GET`` and ``POST /u/{token}`` to *app*."""

    def _who(token: str) -> tuple[str, str] | None:
        return verify_token(token, unsubscribe_key(directory))

    invalid = ("This link is not valid", "<p>The unsubscribe link is incomplete or was "
               "changed. Use the link in the email you received, or reply to it asking to "
               "be removed.</p>")

    @app.get("/u/{token}")
    async def confirm(token: str) -> HTMLResponse:
        who = _who(token)
        if who is None:
            return page(*invalid, status=400)
        return page("Unsubscribe", f"<p>Stop emails to <b>{escape(who[1])}</b>?</p>"
                     '<form method="post"><button type="submit">Unsubscribe</button></form>')

    @app.post("/u/{token}")
    async def unsubscribe(token: str) -> HTMLResponse:
        who = _who(token)
        if who is None:
            return page(*invalid, status=400)
        workspace, email = who
        try:
            await state.log.append(workspace, event(workspace, email, dt.datetime.now(dt.UTC)))
        except StoreError:
            return page("Please try again", "<p>We could not record this right now; "
                         "please try again in a minute.</p>", status=503)
        return page("You are unsubscribed", f"<p><b>{escape(email)}</b> will get no more "
                     "of these emails.</p>")

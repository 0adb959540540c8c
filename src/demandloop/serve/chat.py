"""``/v1/chat``: the chat widget's conversation and booking endpoints, and ``/m/{token}``,
the page behind an invite's reschedule and cancel links. HTTP only: the rules are in
:class:`~demandloop.workspace.chat.ChatService`.

Every ``/v1/chat`` call carries the site's write key (``writeKey`` in the JSON body, or
``?k=``), like the collector's own calls; the session id a conversation starts with is the
conversation's secret. Answers stream as server-sent events (``text/event-stream``:
``token`` pieces, ``reset`` when an LLM failed mid-answer, then ``answer`` with citations and
``next``). Segment messages a call produces (a question's answer as a trait, ``Meeting
Booked``) are written to the durable log before the answer goes out: the loader lands them
like any event. Errors use the one JSON shape.

Chat runs in the process that holds the database; with several workers, each forwards
these routes there (:mod:`.chat_proxy`).
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections.abc import AsyncIterator, Callable
from html import escape
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from sse_starlette import EventSourceResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from demandloop.activate.booking import read_token
from demandloop.activate.compose import unsubscribe_key
from demandloop.config import Settings
from demandloop.errors import DemandloopError, StoreError
from demandloop.serve.envelope import Origins, Reject, json_object
from demandloop.serve.guard import AuthThrottle, client_address, networks
from demandloop.serve.html import page
from demandloop.serve.state import CollectorState
from demandloop.workspace.chat import ChatService, NotFound, Outcome, SlotTaken

logger = logging.getLogger("demandloop.chat")
MAX_BODY = 8192
MAX_QUESTION = 1000


def _from_error(exc: DemandloopError) -> Reject:
    status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, SlotTaken) else 400
    code = {404: "not_found", 409: "slot_taken"}.get(status, "invalid_request")
    return Reject(status, code, str(exc))


def register(app: FastAPI, settings: Settings, state: CollectorState, service: ChatService,
             throttle: AuthThrottle) -> None:
    """Add ``/v1/chat/...`` and ``/m/{token}`` to *app*."""
    c = settings.collector
    proxies = networks(c.trusted_proxies)
    origins = Origins(c.cors_origins)
    directory = state.keys.path.parent

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise Reject(413, "too_large", f"the request is over {MAX_BODY:,} bytes")
        return json_object(raw or b"{}")

    def workspace(request: Request, body: dict[str, Any]) -> str:
        """The write key's workspace, or 401 (403 for a foreign origin)."""
        headers = dict(request.scope["headers"])
        if not origins.allows(headers.get(b"origin")):
            raise Reject(403, "origin_not_allowed", "this origin may not chat (add it to "
                         "collector.cors_origins)")
        key = body.get("writeKey") or request.query_params.get("k")
        return throttle.admit(client_address(request.scope, headers, proxies),
                              state.keys.workspace(key) if isinstance(key, str) else None,
                              Reject(401, "invalid_write_key", "missing or unknown write key "
                                     "(send writeKey in the body or ?k=)"))

    def text(body: dict[str, Any], name: str, limit: int = 2048, required: bool = True
             ) -> str | None:
        v = body.get(name)
        if v is None or v == "":
            if required:
                raise Reject(400, "invalid_request", f"'{name}' is required")
            return None
        if not isinstance(v, str):
            raise Reject(400, "invalid_request", f"'{name}' must be a string")
        if len(v) > limit:
            raise Reject(400, "invalid_request", f"'{name}' is longer than {limit} characters")
        return v

    def cors(request: Request) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in
                origins.headers(dict(request.scope["headers"]).get(b"origin"))}

    async def log(ws: str, outcome: Outcome) -> None:
        await _append(state, ws, outcome)

    async def guarded(request: Request, call: Callable[[], Any]) -> Response:
        try:
            return await call()  # type: ignore[no-any-return]
        except Reject as r:
            return _with(r.response(), cors(request))
        except StoreError:
            return _with(Reject(503, "unavailable", "could not record this now; "
                                "try again in a minute", retry_after=5).response(),
                         cors(request))
        except DemandloopError as exc:
            return _with(_from_error(exc).response(), cors(request))

    def ok(request: Request, data: dict[str, Any], status: int = 200) -> Response:
        return Response(orjson.dumps(data), status_code=status, media_type="application/json",
                        headers={"Cache-Control": "no-store", **cors(request)})

    @app.post("/v1/chat/sessions")
    async def start(request: Request) -> Response:
        async def go() -> Response:
            body = await body_of(request)
            ws = workspace(request, body)
            headers = dict(request.scope["headers"])
            out = await run_in_threadpool(
                service.start, ip=client_address(request.scope, headers, proxies),
                anonymous_id=text(body, "anonymousId", 200, required=False),
                url=text(body, "url", required=False),
                referrer=text(body, "referrer", required=False))
            await log(ws, out)
            return ok(request, out.data, 201)
        return await guarded(request, go)

    @app.post("/v1/chat/sessions/{session_id}/messages")
    async def message(session_id: str, request: Request) -> Response:
        async def go() -> Response:
            body = await body_of(request)
            workspace(request, body)
            question = (text(body, "text", MAX_QUESTION) or "").strip()
            if not question:
                raise Reject(400, "invalid_request", "'text' is empty")
            await run_in_threadpool(service.transcript, session_id)  # 404 before streaming

            async def events() -> AsyncIterator[dict[str, str]]:
                async for name, data in iterate_in_threadpool(service.ask(session_id,
                                                                          question)):
                    yield {"event": name, "data": orjson.dumps(data).decode()}
                yield {"event": "done", "data": "{}"}

            return EventSourceResponse(events(), headers={"Cache-Control": "no-store",
                                                          **cors(request)}, ping=15)
        return await guarded(request, go)

    @app.post("/v1/chat/sessions/{session_id}/answers")
    async def answers(session_id: str, request: Request) -> Response:
        async def go() -> Response:
            body = await body_of(request)
            ws = workspace(request, body)
            out = await run_in_threadpool(service.answer_question, session_id,
                                          text(body, "trait", 40) or "",
                                          text(body, "value", 500) or "")
            await log(ws, out)
            return ok(request, out.data)
        return await guarded(request, go)

    @app.get("/v1/chat/sessions/{session_id}/slots")
    async def slots(session_id: str, request: Request) -> Response:
        async def go() -> Response:
            workspace(request, {})
            zone = request.query_params.get("tz", "UTC")[:64]
            return ok(request, await run_in_threadpool(service.slots, session_id, zone))
        return await guarded(request, go)

    @app.post("/v1/chat/sessions/{session_id}/bookings")
    async def book(session_id: str, request: Request) -> Response:
        async def go() -> Response:
            body = await body_of(request)
            ws = workspace(request, body)
            out = await run_in_threadpool(
                lambda: service.book(session_id, text(body, "start", 40) or "",
                                     email=text(body, "email", 254) or "",
                                     name=text(body, "name", 200, required=False) or "",
                                     zone=text(body, "timezone", 64, required=False)
                                     or "UTC"))
            await log(ws, out)
            return ok(request, out.data, 201)
        return await guarded(request, go)

    _register_links(app, service, state, directory)


async def _append(state: CollectorState, workspace: str, outcome: Outcome) -> None:
    """*outcome*'s messages as one log record (one line each, as the collector writes a
    request's batch): they load together, so the live workflows see them together (two
    records with one receivedAt could fall in two loads, and the second be skipped)."""
    if outcome.events:
        await state.log.append(workspace, b"\n".join(orjson.dumps(e) for e in outcome.events))


def _local(at: dt.datetime, zone: str) -> str:
    """*at* (UTC; naive means UTC, as the store keeps times) as a person in *zone* reads
    it: ``Tue 08 Dec 2026 11:00 (Europe/Paris)``; in UTC when *zone* is not a zone."""
    try:
        tz = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz, zone = zoneinfo.ZoneInfo("UTC"), "UTC"
    local = (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(tz)
    return f"{local:%a %d %b %Y %H:%M} ({zone})"


def _with(response: Response, headers: dict[str, str]) -> Response:
    response.headers.update(headers)
    return response


def _register_links(app: FastAPI, service: ChatService, state: CollectorState,
                    directory: Path) -> None:
    """``GET /m/{token}`` shows a meeting with its free slots and a cancel button (a GET
    changes nothing: link scanners fetch links); ``POST`` cancels or moves it."""
    invalid = ("This link is not valid", "<p>The link is incomplete or was changed. Use the "
               "link in your invitation.</p>")

    def meeting_of(token: str) -> tuple[str, dict[str, Any]] | None:
        found = read_token(token, unsubscribe_key(directory))
        if found is None:
            return None
        try:
            return found[0], service.meeting(found[1])
        except NotFound:
            return None

    @app.get("/m/{token}")
    async def show(token: str, tz: str = "") -> HTMLResponse:
        found = await run_in_threadpool(meeting_of, token)
        if found is None:
            return page(*invalid, status=400)
        m = found[1]
        zone = tz or m["visitor_timezone"] or "UTC"
        if m["status"] != "booked":
            return page("This meeting was cancelled", "<p>Book a new time on our site.</p>")
        try:
            free = await run_in_threadpool(service.rep_slots, m["meeting_id"], zone)
        except DemandloopError:
            free = []
        when = escape(_local(m["starts_at"], zone))
        buttons = "".join(f'<button name="start" value="{escape(s["start"])}">'
                          f'{escape(s["day"])} {escape(s["time"])}</button>' for s in free[:40])
        return page("Your meeting", f"<p>With <b>{escape(m['rep'])}</b>, {when}.</p>"
                     f'<form method="post"><h2>Move it to</h2>{buttons or "<p>No free time."}'
                     '</form><form method="post"><input type="hidden" name="cancel" '
                     'value="1"><button type="submit">Cancel the meeting</button></form>')

    @app.post("/m/{token}")
    async def change(token: str, request: Request) -> HTMLResponse:
        found = await run_in_threadpool(meeting_of, token)
        if found is None:
            return page(*invalid, status=400)
        ws, m = found
        form = await request.form()
        try:
            if form.get("cancel"):
                out = await run_in_threadpool(service.cancel, m["meeting_id"])
                title, body = "Cancelled", "<p>The meeting is cancelled; both of you got a " \
                    "cancellation.</p>"
            else:
                start = str(form.get("start") or "")
                out = await run_in_threadpool(service.reschedule, m["meeting_id"], start)
                # (in the visitor's time, as the page listed the slots: not an ISO stamp)
                moved = _local(dt.datetime.fromisoformat(str(out.data["starts_at"])),
                               m["visitor_timezone"] or "UTC")
                title, body = "Moved", f"<p>The meeting now starts {escape(moved)}; a new " \
                    "invitation is on its way.</p>"
        except SlotTaken:
            return page("That time was just taken", "<p>Go back and pick another.</p>", 409)
        except DemandloopError as exc:
            return page("Not changed", f"<p>{escape(str(exc))}</p>", 400)
        try:
            await _append(state, ws, out)
        except StoreError as exc:  # the meeting changed; only the loop's record of it is lost
            logger.error("meeting %s changed but its event was not logged: %s",
                         m["meeting_id"], exc)
        return page(title, body)

"""The dashboard at ``/app``: server-rendered pages (Jinja2, htmx vendored in ``static/``),
served by the process that holds the workspace, beside ``/api/v1``.

Pages read what the API reads (the same account pages and account detail), so a page and
its JSON twin show the same figures. Login is by email and password (``demandloop users
create``); roles: ``rep`` reads, ``marketer`` also acts, ``admin`` also sees settings.
Every form carries a CSRF token (see :mod:`.session`); logins are rate-limited per address.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from demandloop.errors import DemandloopError
from demandloop.serve.guard import AuthThrottle, client_address
from demandloop.serve.users import UserRing
from demandloop.serve.web import accounts as accounts_pages
from demandloop.serve.web import people as people_pages
from demandloop.serve.web import reports as reports_pages
from demandloop.serve.web.session import COOKIE, CSRF_COOKIE, SESSION_HOURS, Signer
from demandloop.serve.web.site import HERE, Refused, Site

if TYPE_CHECKING:
    from demandloop.serve.quiesce import Gate
    from demandloop.serve.report_cache import ReportCache
    from demandloop.workspace import Workspace

STATIC = {"htmx.min.js": "application/javascript", "app.css": "text/css"}


def create_web(ws: Workspace, users: UserRing, secret: bytes, cache: ReportCache,
               gate: Gate, secure: bool, lock: threading.RLock) -> FastAPI:
    """The dashboard over the server's workspace (*cache*: the API's, so both read the
    same current accounts)."""
    web = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    signer = Signer(secret)
    site = Site(ws, users, signer, cache, gate, secure, lock)
    render, who = site.render, site.who
    throttle = AuthThrottle(10)

    @web.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        if exc.status == 303:
            target = "/app/login?" + urlencode({"next": request.url.path})
            return RedirectResponse(target, status_code=303)
        return render(request, "error.html", status=exc.status, user=None, csrf="",
                      message=str(exc) or "forbidden")

    @web.exception_handler(DemandloopError)
    async def failed(request: Request, exc: DemandloopError) -> Response:
        # a page asked with a parameter it cannot take (a sort, a cursor, a report's
        # option edited in the address bar): the message, on a page, with its 4xx
        return render(request, "error.html", status=exc.http_status, user=None, csrf="",
                      message=str(exc))

    @web.exception_handler(StarletteHTTPException)
    async def no_page(request: Request, exc: StarletteHTTPException) -> Response:
        # an address no page answers (a link cut short, a typo): a page saying so, as
        # every other dashboard error is, not the framework's JSON
        said = {404: f"no page {request.url.path[:80]}",
                405: f"{request.url.path[:80]} cannot be asked with {request.method}"}
        return render(request, "error.html", status=exc.status_code, user=None, csrf="",
                      message=said.get(exc.status_code, str(exc.detail)))

    @web.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            return Response(status_code=404)
        return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                            headers={"Cache-Control": "public, max-age=3600"})

    @web.get("/login")
    async def login_form(request: Request, next: str = "/app/accounts") -> Response:  # noqa: A002
        token = request.cookies.get(CSRF_COOKIE) or signer.issue("login").split(".")[2]
        response = render(request, "login.html", user=None, csrf=token, error=None,
                          next=_safe(next))
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=secure, path="/app")
        return response

    @web.post("/login")
    async def login(request: Request, email: str = Form(""), password: str = Form(""),  # noqa: B008
                    csrf: str = Form(""), next: str = Form("/app/accounts")  # noqa: A002, B008
                    ) -> Response:
        if not signer.csrf_ok(None, csrf, request.cookies.get(CSRF_COOKIE)):
            return render(request, "error.html", 403, user=None, csrf="",
                          message="the form expired or came from elsewhere: reload the "
                          "login page")
        client = client_address(request.scope, dict(request.scope["headers"]), [])
        if throttle.blocked(client):
            return render(request, "login.html", 429, user=None, csrf=csrf, next=_safe(next),
                          error="too many failed logins from this address: wait a minute")
        user = await run_in_threadpool(users.verify, email, password)
        if user is None:
            throttle.failed(client)
            return render(request, "login.html", 401, user=None, csrf=csrf, next=_safe(next),
                          error="wrong email or password")
        response = RedirectResponse(_safe(next), status_code=303)
        response.set_cookie(COOKIE, signer.issue(user.id), max_age=SESSION_HOURS * 3600,
                            httponly=True, samesite="lax", secure=secure, path="/app")
        return response

    @web.post("/logout")
    async def logout(request: Request, csrf: str = Form("")) -> Response:  # noqa: B008
        user, session = who(request)
        if not signer.csrf_ok(session, csrf):
            return render(request, "error.html", 403, user=user, csrf="",
                          message="the form expired or came from elsewhere")
        response = RedirectResponse("/app/login", status_code=303)
        response.delete_cookie(COOKIE, path="/app")
        return response

    @web.get("/")
    async def home() -> Response:
        return RedirectResponse("/app/accounts", status_code=303)

    # (the timeline, /accounts/{id}/timeline, before the account page, whose id may hold
    # a slash: a CRM's "ACC/2024/001")
    people_pages.register(web, site)
    accounts_pages.register(web, site)
    reports_pages.register(web, site)
    return web


def _safe(target: str) -> str:
    """Where to go after login: a path of this dashboard only (no open redirect)."""
    return target if target.startswith("/app/") and "//" not in target else "/app/accounts"

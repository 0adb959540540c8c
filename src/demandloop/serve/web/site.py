"""What every dashboard page shares: the templates, who is asking (session, user, role),
and rendering with the security headers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from demandloop.serve.users import User, UserRing
from demandloop.serve.web.session import COOKIE, Session, Signer

if TYPE_CHECKING:
    from demandloop.serve.quiesce import Gate
    from demandloop.serve.report_cache import ReportCache
    from demandloop.workspace import Workspace

HERE = Path(__file__).parent
HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
           "Content-Security-Policy": "default-src 'self'; style-src 'self'; "
                                      "img-src 'self' data:; frame-ancestors 'none'"}


class Refused(Exception):
    """A page the visitor may not see: to the login page (303), or a 403."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return ""
    return f"{float(value):,.{digits}f}"


@dataclass
class Site:
    """The dashboard's shared parts (one per server)."""

    ws: Workspace
    users: UserRing
    signer: Signer
    cache: ReportCache
    gate: Gate
    secure: bool
    lock: threading.RLock  # the server's loop lock: writes never interleave with the loop
    env: jinja2.Environment = field(init=False)

    def __post_init__(self) -> None:
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                      autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.filters["number"] = _number
        self.env.filters["percent"] = lambda v: "" if v is None else f"{float(v):.0%}"
        currency = self.ws.settings.measure.currency
        self.env.filters["money"] = (
            lambda v: "" if v is None else f"{currency}{float(v):,.0f}")

    def render(self, request: Request, template: str, status: int = 200, **ctx: Any
               ) -> HTMLResponse:
        html = self.env.get_template(template).render(request=request, **ctx)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def who(self, request: Request, role: str = "rep") -> tuple[User, Session]:
        """The signed-in user, with at least *role* (else :class:`Refused`)."""
        session = self.signer.read(request.cookies.get(COOKIE))
        user = self.users.by_id(session.user_id) if session else None
        if session is None or user is None:
            raise Refused(303)
        if not user.may(role):
            raise Refused(403, f"your role ({user.role}) cannot open this page")
        return user, session

    def page(self, request: Request, template: str, user: User, session: Session,
             status: int = 200, **ctx: Any) -> HTMLResponse:
        return self.render(request, template, status, user=user,
                           csrf=self.signer.csrf(session), **ctx)

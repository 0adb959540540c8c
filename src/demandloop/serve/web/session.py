"""Dashboard sessions and CSRF tokens, signed with a secret of the workspace.

A session is a cookie ``user id . issued . nonce . signature`` (HMAC-SHA256 with the secret
in ``web-secret.key``, mode 0600, made on first use), ``HttpOnly``, ``SameSite=Lax``, and
``Secure`` when the dashboard is served over TLS. It carries no data but who and when: the
user is looked up on every request, so a disabled user is out within a second. Sessions
last :data:`SESSION_HOURS`.

Every form carries a CSRF token: for a session, an HMAC of its nonce; for the login form
(no session yet), the value of a random ``dl_csrf`` cookie it must match (double submit).
Why hand-written: the dependency it replaces (itsdangerous, starlette's SessionMiddleware)
would put the session's content in the cookie; this keeps only an id and is 60 lines.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

SECRET_FILE = "web-secret.key"
COOKIE = "dl_session"
CSRF_COOKIE = "dl_csrf"
SESSION_HOURS = 12


def load_secret(directory: Path) -> bytes:
    """The workspace's session secret, created (0600) on first use."""
    path = directory / SECRET_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


@dataclass(frozen=True)
class Session:
    user_id: str
    issued: int
    nonce: str


class Signer:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _sign(self, text: str) -> str:
        return hmac.new(self.secret, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, user_id: str) -> str:
        body = f"{user_id}.{int(time.time())}.{secrets.token_hex(8)}"
        return f"{body}.{self._sign(body)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session *cookie* holds, if its signature is ours and it has not expired."""
        if not cookie or len(cookie) > 300:
            return None
        body, _, sig = cookie.rpartition(".")
        if not hmac.compare_digest(sig, self._sign(body)):
            return None
        user_id, issued, nonce = (body.split(".") + ["", "", ""])[:3]
        if not issued.isdigit() or time.time() - int(issued) > SESSION_HOURS * 3600:
            return None
        return Session(user_id, int(issued), nonce)

    def csrf(self, session: Session) -> str:
        return self._sign(f"csrf.{session.nonce}")[:32]

    def csrf_ok(self, session: Session | None, given: str | None,
                login_cookie: str | None = None) -> bool:
        """Does *given* (the form's token) match the session's, or, before a session, the
        login form's cookie?"""
        if not given:
            return False
        expected = self.csrf(session) if session is not None else (login_cookie or "")
        return bool(expected) and hmac.compare_digest(given, expected)

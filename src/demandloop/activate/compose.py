"""Sequence emails: render a step for a person, build the MIME message, sign it (pure).

* Templates are Jinja2, rendered in a **sandbox** (a template is configuration, and may come
  from anyone who can edit the workspace) with **StrictUndefined** (a misspelt variable is an
  error at ``sequences validate``, never an email saying "Hi ,"). Text is not escaped; the
  HTML part is autoescaped.
* The context: ``person`` (first_name, last_name, name, email, title), ``account`` (name,
  domain, industry, country, stage, fit, band, engagement, intent, surging, owner,
  committee_coverage, missing_roles), ``engaged`` (the content they engaged with, newest
  first: title, path, topic, channel, day), ``topic`` (their surge topic, else their most
  engaged topic), ``case_study`` (title and url for their industry, else ``'*'``'s),
  ``sender`` (name, email) and ``unsubscribe_url``.
* Every message carries ``List-Unsubscribe`` (the signed one-click link, plus a mailto when
  configured) and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058, which
  Gmail and Yahoo require of bulk senders), a footer with the link and the postal address,
  and a Message-ID derived from the enrolment and step, so a message is the same message
  however many times it is built. DKIM signing (RFC 6376, relaxed/simple) uses dkimpy over
  the headers receivers check, the unsubscribe ones included.

Example:
    >>> t = Templates(None)
    >>> t.render_text("Hi {{ person.first_name }}", {"person": {"first_name": "Ana"}})
    'Hi Ana'
    >>> verify_token(make_token(b"k", "ws", "ana@acme.com"), b"k")
    ('ws', 'ana@acme.com')
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

import dkim
import jinja2
from jinja2.sandbox import SandboxedEnvironment

from demandloop.config.sequences import StepSetting

SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
                  b"content-type", b"list-unsubscribe", b"list-unsubscribe-post")


# RFC 5322's hard line limit: at the default 78 a long unsubscribe URL would be folded as an
# RFC 2047 encoded-word, which mail clients do not read as a URL
_POLICY = SMTP.clone(max_line_length=998)


class TemplateProblem(ValueError):
    """A template does not parse, or names a variable the context does not have."""


class Templates:
    """Jinja2 sandboxes for text (no escaping) and HTML (autoescaped), reading files from
    *folder* (``templates/``) when given."""

    def __init__(self, folder: Path | None) -> None:
        loader = jinja2.FileSystemLoader(str(folder)) if folder is not None else None
        self.folder = folder
        self.text = SandboxedEnvironment(loader=loader, undefined=jinja2.StrictUndefined,
                                         autoescape=False, keep_trailing_newline=True)
        self.html = SandboxedEnvironment(loader=loader, undefined=jinja2.StrictUndefined,
                                         autoescape=True, keep_trailing_newline=True)
        self._cache: dict[tuple[bool, str], jinja2.Template] = {}

    def _compile(self, html: bool, source: str) -> jinja2.Template:
        key = (html, source)
        if key not in self._cache:
            env = self.html if html else self.text
            try:
                self._cache[key] = env.from_string(source)
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateProblem(f"line {exc.lineno}: {exc.message}") from None
        return self._cache[key]

    def _file(self, name: str) -> str | None:
        if self.folder is None:
            return None
        path = self.folder / name
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def render_text(self, source: str, ctx: dict[str, Any]) -> str:
        return self._render(False, source, ctx)

    def render_html(self, source: str, ctx: dict[str, Any]) -> str:
        return self._render(True, source, ctx)

    def _render(self, html: bool, source: str, ctx: dict[str, Any]) -> str:
        try:
            return self._compile(html, source).render(ctx)
        except jinja2.UndefinedError as exc:
            raise TemplateProblem(str(exc.message)) from None
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateProblem(f"not allowed in a template: {exc}") from None

    def step_sources(self, step: StepSetting) -> tuple[str, str, str | None]:
        """(subject, text, html) sources of an email step (inline or from files)."""
        if step.template:
            text = self._file(f"{step.template}.txt.j2")
            if text is None:
                raise TemplateProblem(f"no template file {step.template}.txt.j2 in "
                                      f"{self.folder}")
            return step.subject or "", text, self._file(f"{step.template}.html.j2")
        # an email step's settings require a subject and a body (or a template)
        return step.subject or "", step.body or "", step.html


@dataclass
class Rendered:
    subject: str
    text: str
    html: str | None


def render(templates: Templates, step: StepSetting, ctx: dict[str, Any]) -> Rendered:
    """Render an email step for one recipient (a :class:`TemplateProblem` names the part:
    the subject, the body or the file)."""
    subject, text, html = templates.step_sources(step)

    def part(name: str, fn: Any, source: str) -> str:
        try:
            return str(fn(source, ctx))
        except TemplateProblem as exc:
            raise TemplateProblem(f"{name}: {exc}") from None

    t = step.template
    out_subject = " ".join(part("the subject", templates.render_text, subject).split())
    return Rendered(out_subject,  # (one header line)
                    part(f"templates/{t}.txt.j2" if t else "the body",
                         templates.render_text, text),
                    part(f"templates/{t}.html.j2" if t else "the html",
                         templates.render_html, html) if html else None)


def _clean(v: Any) -> Any:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return v


def person_context(person: dict[str, Any]) -> dict[str, Any]:
    """A template's ``person``: first_name, last_name, email, title and a display name."""
    p = {k: _clean(person.get(k)) for k in ("first_name", "last_name", "email", "title")}
    p["name"] = " ".join(x for x in (p["first_name"], p["last_name"]) if x) or p["email"]
    return p


def context(person: dict[str, Any], account: dict[str, Any], engaged: list[dict[str, Any]],
            case_studies: dict[str, Any], sender: dict[str, str],
            unsubscribe_url: str) -> dict[str, Any]:
    """The variables a template sees (missing values are empty strings, not ``None``)."""
    keys = ("name", "domain", "industry", "country", "stage", "fit", "band", "engagement",
            "intent", "surging", "owner", "committee_coverage", "missing_roles")
    a = {k: _clean(account.get(k)) for k in keys}
    a["name"] = a["name"] or a["domain"] or _clean(account.get("account_id"))
    a["missing_roles"] = list(account.get("missing_roles") or [])
    surge = list(account.get("surge_topics") or [])
    topics = [e["topic"] for e in engaged if e.get("topic")]
    # the most engaged topic; a tie goes to the most recent (engaged is newest first), never
    # to a set's order, which changes with Python's hash seed from run to run
    topic = surge[0] if surge else (max(topics, key=lambda t: (topics.count(t),
                                                               -topics.index(t)))
                                    if topics else "")
    study = case_studies.get(str(account.get("industry"))) or case_studies.get("*")
    ctx = {"person": person_context(person), "account": a, "engaged": engaged,
           "topic": topic, "sender": sender, "unsubscribe_url": unsubscribe_url}
    if study:  # else undefined: a template naming it fails instead of sending a blank line
        ctx["case_study"] = dict(study)
    return ctx


def message_id(enrolment_id: str, step: int, domain: str) -> str:
    """Stable per (enrolment, step): a rebuilt message is recognisably the same one."""
    return f"<{enrolment_id}.{step}@{domain}>"


def build(rendered: Rendered, *, sender: str, sender_name: str, to: str, msg_id: str,
          unsubscribe: str, mailto: str | None, postal: str, date: dt.datetime) -> bytes:
    """The message as bytes (CRLF), footer and unsubscribe headers included."""
    footer = "\n\n--\n" + (f"{postal}\n" if postal else "") + \
        f"Unsubscribe: {unsubscribe}\n"
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = formataddr((sender_name, sender)) if sender_name else sender
    msg["To"] = to
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(date.replace(tzinfo=dt.UTC))
    msg["Message-ID"] = msg_id
    targets = [f"<{unsubscribe}>"] + ([f"<mailto:{mailto}?subject=unsubscribe>"]
                                      if mailto else [])
    msg["List-Unsubscribe"] = ", ".join(targets)
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(rendered.text.rstrip("\n") + footer)
    if rendered.html:
        from html import escape

        html_footer = (f'<p style="color:#888;font-size:12px">{escape(postal)}<br>'
                       f'<a href="{escape(unsubscribe)}">Unsubscribe</a></p>')
        msg.add_alternative(rendered.html + html_footer, subtype="html")
    return msg.as_bytes()


def sign(raw: bytes, selector: str, domain: str, key_pem: bytes) -> bytes:
    """Prepend a DKIM-Signature (rsa-sha256, relaxed/simple) to *raw*."""
    header = dkim.sign(raw, selector.encode(), domain.encode(), key_pem,
                       include_headers=list(SIGNED_HEADERS))
    return bytes(header) + raw


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(key: bytes, workspace: str, email: str) -> str:
    """A signed unsubscribe token naming the workspace and address (not guessable, so no
    one can unsubscribe someone else)."""
    payload = f"{workspace}\x1f{email.lower()}".encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def verify_token(token: str, key: bytes) -> tuple[str, str] | None:
    """(workspace, email) of a genuine token, else None."""
    try:
        a, b = token.split(".", 1)
        payload, mac = _unb64(a), _unb64(b)
    except (ValueError, TypeError):
        return None
    good = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(good, mac):
        return None
    workspace, _, email = payload.decode("utf-8", "replace").partition("\x1f")
    return (workspace, email) if email else None


UNSUBSCRIBE_KEY_FILE = "unsubscribe.key"


def unsubscribe_key(directory: Path) -> bytes:
    """The workspace's secret for signing unsubscribe links (created on first use, mode
    0600). Beside keys.json for the same reason: the collector must read it while it holds
    the database. Deleting it invalidates every link already sent."""
    path = Path(directory) / UNSUBSCRIBE_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # a name of this call's own (mkstemp: mode 0600): two requests of one server
        # process creating the key at once shared a per-process name, and the second's
        # link found the file the first had already removed (a 500 to a visitor booking)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix="unsubscribe.", suffix=".tmp")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode())
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # never replaces a key another process created meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_bytes().strip()

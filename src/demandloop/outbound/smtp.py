"""Outgoing mail: the user's own SMTP server (STARTTLS or implicit TLS, AUTH), or a folder.

The only place demandloop opens an SMTP connection. A transport sends one message at a time
over a connection it opens on first use and keeps for the run, and classifies every result
the way the sequence runner needs it:

* ``sent``: the server took the message (250 after DATA);
* ``bounced``: the server refused this recipient or this message permanently (5xx at RCPT
  TO or DATA): the address is suppressed and the enrolment ends;
* ``deferred``: anything temporary (4xx, a dropped connection, a timeout) or a problem of
  the mailbox itself (login refused, sender refused): try again later, address untouched.

The ``file`` transport writes ``<outbox>/<message-id>.eml`` (atomically) instead: a dry run
the user opens in a mail client.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from demandloop.config.sequences import MailboxSetting


@dataclass
class Outcome:
    status: str  # sent, bounced, deferred
    detail: str = ""
    mailbox_down: bool = False  # the mailbox itself failed: try it again next tick


def backoff(first: dt.timedelta, longest: dt.timedelta, failures: int) -> dt.timedelta:
    """How long to wait after *failures* failed attempts in a row before the next: *first*
    after one, twice as long after each more, never over *longest* (as a mail server's own
    queue backs off)."""
    return min(first * (1 << min(max(failures - 1, 0), 20)), longest)


class Transport(Protocol):
    """What the sequence runner sends through: :class:`SmtpTransport`, :class:`FileTransport`
    or a test's recorder."""

    def send(self, to: str, raw: bytes) -> Outcome: ...

    def close(self) -> None: ...


#: a mailbox's settings -> its transport (the runner opens one per mailbox and tick)
Transports = Callable[[MailboxSetting], Transport]


class SmtpTransport:
    """One mailbox's SMTP connection (opened lazily, reused, closed by :meth:`close`)."""

    def __init__(self, box: MailboxSetting, password: str | None, timeout: float = 30.0,
                 ca_file: Path | None = None) -> None:
        self.box, self.password, self.timeout, self.ca_file = box, password, timeout, ca_file
        self._smtp: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        # certificates and host names are always verified: an unverified STARTTLS is open to
        # a downgrade by anyone on the path, and it carries the mailbox's password
        return ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None)

    def _connect(self) -> smtplib.SMTP:
        box = self.box
        if box.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(box.host, box.port, timeout=self.timeout,
                                                  context=self._context())
        else:
            smtp = smtplib.SMTP(box.host, box.port, timeout=self.timeout)
            smtp.ehlo()
            if box.security == "starttls":
                smtp.starttls(context=self._context())
                smtp.ehlo()
        if box.username:
            smtp.login(box.username, self.password or "")
        return smtp

    def send(self, to: str, raw: bytes) -> Outcome:
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            self._smtp.sendmail(self.box.address, [to], raw)
            return Outcome("sent")
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return _classify(code, text)
        except smtplib.SMTPDataError as exc:
            return _classify(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused) as exc:
            self.close()
            return Outcome("deferred", f"mailbox problem: {exc.smtp_code} "
                           f"{_text(exc.smtp_error)}", mailbox_down=True)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return Outcome("deferred", f"{type(exc).__name__}: {exc}", mailbox_down=True)

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._smtp = None


class FileTransport:
    """Writes each message as ``<outbox>/<message-id>.eml``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, to: str, raw: bytes) -> Outcome:
        found = re.search(rb"^Message-ID:\s*<([^>]+)>", raw, re.MULTILINE | re.IGNORECASE)
        name = re.sub(r"[^A-Za-z0-9._-]", "_", found.group(1).decode() if found else "msg")
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, self.folder / f"{name}.eml")
        return Outcome("sent", str(self.folder / f"{name}.eml"))

    def close(self) -> None:
        pass


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _classify(code: int, text: Any) -> Outcome:
    detail = f"{code} {_text(text)}"
    return Outcome("bounced" if 500 <= code < 600 else "deferred", detail)


def transport(box: MailboxSetting, workspace_dir: Path, password: str | None,
              timeout: float = 30.0) -> SmtpTransport | FileTransport:
    """The transport a mailbox's settings ask for (*timeout*: seconds an SMTP server may
    take to answer before the message is deferred)."""
    if box.transport == "file":
        return FileTransport(workspace_dir / box.outbox)
    ca = workspace_dir / box.tls_ca_file if box.tls_ca_file else None
    return SmtpTransport(box, password, timeout=timeout, ca_file=ca)

"""``demandloop sequences validate``: every sequence's templates render on a sample
person and account, every mailbox's password and key are where the settings say, and the
unsubscribe link and postal address a sender needs are set."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from demandloop.activate import compose
from demandloop.activate.sequence_inputs import key_pem, sender, templates
from demandloop.errors import ConfigError

if TYPE_CHECKING:  # the runners are called by the facade, which they never import
    from demandloop.workspace import Workspace


_SAMPLE_PERSON = {"first_name": "Ana", "last_name": "Ruiz", "email": "ana@example.com",
                  "title": "VP Marketing"}
_SAMPLE_ACCOUNT = {"account_id": "example.com", "name": "Example Corp",
                   "domain": "example.com", "industry": "Software", "country": "US",
                   "stage": "mqa", "fit": 88.0, "band": "Strong", "engagement": 31.5,
                   "intent": 2.4, "surging": True, "owner": "ana",
                   "committee_coverage": 0.5, "missing_roles": ["finance"],
                   "surge_topics": ["attribution"]}
_SAMPLE_ENGAGED = [{"title": "Pricing", "path": "/pricing", "topic": "pricing",
                    "channel": "direct", "day": dt.date(2026, 1, 5)}]


def check(ws: Workspace) -> list[str]:
    """Every problem that would stop or spoil sending, found without sending: templates
    that do not render (against a sample person), unreadable DKIM keys, unset password
    variables. Lines starting ``warning:`` do not stop sending."""
    problems: list[str] = []
    settings = ws.settings.activate
    tpl = templates(ws)
    boxes = {b.name: b for b in settings.mailboxes}
    for q in settings.sequences:
        box = boxes[q.mailboxes[0]]
        ctx = compose.context(_SAMPLE_PERSON, _SAMPLE_ACCOUNT, _SAMPLE_ENGAGED,
                              {k: v.model_dump() for k, v in settings.mail.case_studies.items()},
                              sender(box), "https://example.com/u/token")
        for i, step in enumerate(q.steps, start=1):
            try:
                if step.type == "email":
                    compose.render(tpl, step, ctx)
                elif step.type == "task":
                    tpl.render_text(step.title or "", ctx)
            except compose.TemplateProblem as exc:
                problems.append(f"sequence '{q.name}' step {i} ({step.type}): {exc}")
    for b in settings.mailboxes:
        if b.password_env and b.password_env not in os.environ:
            problems.append(f"mailbox '{b.name}': environment variable {b.password_env} "
                            "is not set")
        try:
            pem = key_pem(ws, b)
            if pem is not None:
                compose.sign(b"From: a@b.c\r\nTo: d@e.f\r\nSubject: x\r\n\r\nx\r\n",
                             str(b.dkim_selector), b.address.split("@", 1)[1], pem)
        except ConfigError as exc:
            problems.append(exc.message)
        except Exception as exc:  # dkimpy raises its own and key-parsing errors
            problems.append(f"mailbox '{b.name}': DKIM key cannot sign: {exc}")
    studies = settings.mail.case_studies
    for q in settings.sequences:
        uses = any("case_study" in " ".join(str(v) for v in step.model_dump().values())
                   for step in q.steps)
        if uses and "*" not in studies:
            problems.append(
                f"sequence '{q.name}' uses case_study, but activate.mail.case_studies has "
                + ("none" if not studies else f"only {', '.join(sorted(studies))} and no '*'")
                + ": an account in another industry would get an email that cannot render "
                "(add a '*' case study)")
    host = urlsplit(settings.mail.unsubscribe_url).hostname or ""
    if settings.sequences and (host in ("localhost", "") or _loopback(host)):
        problems.append(f"warning: activate.mail.unsubscribe_url is {settings.mail.unsubscribe_url}"
                        ", which recipients cannot reach (set it to your collector's public "
                        "address + /u)")
    if settings.sequences and not settings.mail.postal_address:
        problems.append("warning: activate.mail.postal_address is empty (CAN-SPAM asks for "
                        "a postal address in every commercial email)")
    return problems


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

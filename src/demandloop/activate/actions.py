"""Actions: what a workflow step does, as a description the runner carries out (pure).

An ordered registry of small functions: each takes the step's settings, the account as it is
now (so a notify after an assign names the new owner) and the trigger's "why now", and
returns an :class:`Effect`: an HTTP request to send, an account field to set, a task to
create, or nothing to do (with the reason).

Example:
    >>> e = assign({"strategy": "fixed", "owners": ["ana"], "respect_existing": True},
    ...            {"account_id": "acme.com", "owner": None}, "", counter=0)
    >>> e.kind, e.field, e.value
    ('set', 'owner', 'ana')
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from demandloop.activate import sequences
from demandloop.conditions import Condition, select

if TYPE_CHECKING:
    from demandloop.config.sequences import SequenceSetting


@dataclass
class Effect:
    """``http`` (url, body, headers), ``set`` (field, value), ``task`` (task), ``enrol``
    (rows: enrolments), ``audience`` (value: the list's name) or ``none``."""

    kind: str
    summary: str
    url: str = ""
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    field: str = ""
    value: Any = None
    task: dict[str, Any] = dataclasses.field(default_factory=dict)
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def _context(account: dict[str, Any], why: str) -> dict[str, Any]:
    """The account context an alert carries: why now, stage, fit, signals, gaps, owner."""
    keys = ("account_id", "name", "domain", "stage", "fit", "band", "engagement", "intent",
            "surging", "people", "committee_coverage", "missing_roles", "owner", "target",
            "industry", "country", "top_signals")
    ctx = {k: account.get(k) for k in keys}
    ctx["why"] = why
    return {k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in ctx.items()}


def _plain(value: Any) -> str:
    """*value* as Slack shows text, not markup: ``&``, ``<`` and ``>`` escaped, as Slack
    asks. A company name or a page title can come from a visitor's browser, and
    ``<!channel>`` or ``<https://evil.example|Your invoice>`` in one was a mention of
    everyone, or a link, in the rep's alert."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(ctx: dict[str, Any], workflow: str) -> dict[str, Any]:
    name = _plain(ctx.get("name") or ctx["account_id"])
    why = _plain(ctx["why"])
    gaps = _plain(", ".join(ctx.get("missing_roles") or []) or "none")
    signals = "\n".join(f"• {_plain(s)}" for s in (ctx.get("top_signals") or [])[:5]) \
        or "• (none)"
    fit = f"{ctx['fit']:.0f} ({_plain(ctx.get('band'))})" if ctx.get("fit") is not None \
        else "n/a"
    text = (f"*{name}* ({_plain(ctx.get('domain') or ctx['account_id'])}): {why}\n"
            f"Stage: {_plain(ctx.get('stage'))} · Fit: {fit} · Engagement: "
            f"{(ctx.get('engagement') or 0):.1f} · Owner: "
            f"{_plain(ctx.get('owner') or 'unassigned')}\n"
            f"Top signals:\n{signals}\nBuying-committee gaps: {gaps}")
    return {"text": f"{name}: {why}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}},
                       {"type": "context", "elements": [{"type": "mrkdwn",
                                                         "text": f"workflow `{workflow}`"}]}]}


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<body>">`` (Stripe's scheme)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def notify(spec: dict[str, Any], account: dict[str, Any], why: str, *, job_id: str = "",
           workflow: str = "", secret: str | None = None, **_: Any) -> Effect:
    ctx = _context(account, why)
    if spec.get("format") == "webhook":
        body = orjson.dumps({"type": "demandloop.workflow", "workflow": workflow,
                             "job_id": job_id, "account": ctx}, default=str)
    else:
        body = orjson.dumps(_slack(ctx, workflow), default=str)
    headers = {"Content-Type": "application/json", "Idempotency-Key": job_id,
               "User-Agent": "demandloop-workflows"}
    if secret:
        headers["X-Demandloop-Signature"] = sign(secret, body, int(time.time()))
    return Effect("http", f"notified {spec['url']}", url=spec["url"], body=body,
                  headers=headers)


def assign(spec: dict[str, Any], account: dict[str, Any], why: str, *, counter: int = 0,
           **_: Any) -> Effect:
    current = account.get("owner")
    if spec.get("respect_existing", True) and isinstance(current, str) and current:
        return Effect("none", f"kept the existing owner {current}")
    owner: str | None = None
    if spec["strategy"] == "fixed":
        owner = spec["owners"][0]
    elif spec["strategy"] == "round_robin":
        owner = spec["owners"][counter % len(spec["owners"])]
    else:
        row = pd.DataFrame([account])
        for t in spec["territories"]:
            conds = [Condition(c["field"], c["op"], c["value"]) for c in t["where"]]
            if not select(row, conds).empty:
                owner = t["owner"]
                break
    if owner is None:
        return Effect("none", "no territory matched")
    return Effect("set", f"assigned to {owner}", field="owner", value=owner)


def set_field(spec: dict[str, Any], account: dict[str, Any], why: str, **_: Any) -> Effect:
    return Effect("set", f"set {spec['field']} = {spec['value']}", field=spec["field"],
                  value=spec["value"])


def create_task(spec: dict[str, Any], account: dict[str, Any], why: str, *,
                now: dt.datetime | None = None, job_id: str = "", workflow: str = "",
                **_: Any) -> Effect:
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    fields = {k: ("" if v is None else v) for k, v in account.items()}
    try:
        title = spec["title"].format(**fields)
    except (KeyError, IndexError, ValueError):
        title = spec["title"]
    task = {"task_id": job_id, "account_id": account.get("account_id"), "title": title,
            "owner": account.get("owner"), "due_at": now + dt.timedelta(days=spec["due_days"]),
            "workflow": workflow}
    return Effect("task", f"task '{title}'", task=task)


def enrol(spec: dict[str, Any], account: dict[str, Any], why: str, *,
          sequence: SequenceSetting | None = None, people: pd.DataFrame | None = None,
          suppressed: Container[str] = frozenset(),
          stage_order: tuple[str, ...] | list[str] = (),
          mqa_stage: str = "mqa", mailbox_load: dict[str, int] | None = None,
          default_timezone: str = "UTC", now: dt.datetime | None = None, workflow: str = "",
          **_: Any) -> Effect:
    """Enrol the account's best people in *sequence* (after the quality gate); each stays
    with one mailbox: the account owner's when it is one of the sequence's, else the least
    loaded."""
    if sequence is None:  # the runner passes it (see sequence_inputs.enrol_kwargs)
        raise ValueError("enrol needs its sequence's settings")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if sequence.quality_gate:
        refused = sequences.quality_gate(account, stage_order, mqa_stage)
        if refused:
            return Effect("none", refused)
    chosen = sequences.choose_people(people if people is not None else pd.DataFrame(),
                                     sequence.roles, sequence.people, suppressed)
    if chosen.empty:
        return Effect("none", f"not enrolled in {sequence.name}: nobody to mail (no known "
                      "person with an unsuppressed email" + (" in the sequence's roles"
                                                            if sequence.roles else "") + ")")
    load = dict(mailbox_load or {})
    rows = []
    for p in chosen.to_dict("records"):
        owner = account.get("owner")
        box: str = owner if isinstance(owner, str) and owner in sequence.mailboxes else min(
            sequence.mailboxes, key=lambda b: (load.get(b, 0), sequence.mailboxes.index(b)))
        load[box] = load.get(box, 0) + 1
        rows.append({
            "enrolment_id": hashlib.sha256(
                f"{sequence.name}\x1f{p['person_id']}".encode()).hexdigest()[:32],
            "sequence": sequence.name, "person_id": p["person_id"],
            "account_id": account.get("account_id"), "email": str(p["email"]).lower(),
            "mailbox": box, "stage_at_enrolment": account.get("stage"),
            "timezone": sequences.zone_for(p.get("timezone"), account.get("country"),
                                           default_timezone),
            "workflow": workflow, "enrolled_at": now})
    who = ", ".join(r["email"] for r in rows)
    return Effect("enrol", f"enrolled {who} in {sequence.name}", rows=rows)


def add_to_audience(spec: dict[str, Any], account: dict[str, Any], why: str,
                    **_: Any) -> Effect:
    return Effect("audience", f"added to audience {spec['audience']}", value=spec["audience"])


#: ordered registry of actions: name -> effect(spec, account, why, **runtime)
ACTIONS: dict[str, Callable[..., Effect]] = {
    "assign": assign,
    "set_field": set_field,
    "create_task": create_task,
    "notify": notify,
    "enrol": enrol,
    "add_to_audience": add_to_audience,
}

"""What a sequence tick reads and renders: the send window, templates, an account's people
and context, the pages a person engaged with, the sender and DKIM key, and one composed
message. Reads go through the store's reader; rendering is :mod:`.compose`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from demandloop.activate import compose, sequences
from demandloop.activate import sequence_queries as mailstore
from demandloop.config.sequences import MailboxSetting, SequenceSetting, StepSetting
from demandloop.errors import ConfigError
from demandloop.store.accounts import SCORE_COLUMNS, account_view, rounded

if TYPE_CHECKING:  # the runners are called by the facade, which they never import
    from demandloop.workspace import Workspace


def window(ws: Workspace) -> sequences.Window:
    m = ws.settings.activate.mail
    try:
        return sequences.Window.parse(m.send_window, list(m.send_days), list(m.holidays))
    except ValueError as exc:
        raise ConfigError(f"activate.mail: {exc}") from None


def _sequence(ws: Workspace, name: str) -> SequenceSetting:
    for q in ws.settings.activate.sequences:
        if q.name == name:
            return q
    raise ConfigError(f"no sequence '{name}'")


def templates(ws: Workspace) -> compose.Templates:
    folder = Path(ws.directory) / ws.settings.activate.mail.templates_dir
    return compose.Templates(folder if folder.is_dir() else None)


def people_of(ws: Workspace, account_id: str) -> pd.DataFrame:
    """An account's known people: email, role fields, engagement, time zone trait."""
    with ws.store.reader() as cur:
        people: pd.DataFrame = cur.execute(
            "SELECT p.person_id, p.email, p.first_name, p.last_name, p.title, p.seniority, "
            "p.job_function, p.traits ->> '$.timezone' AS timezone, s.engagement "
            "FROM persons p LEFT JOIN (SELECT entity_id, engagement FROM scores WHERE "
            "workspace_id = $ws AND entity = 'person' QUALIFY row_number() OVER "
            "(PARTITION BY entity_id ORDER BY as_of DESC) = 1) s ON s.entity_id = p.person_id "
            "WHERE p.workspace_id = $ws AND p.account_id = $a",
            {"ws": ws.store.workspace_id, "a": account_id}).df()
    return people


def enrol_kwargs(ws: Workspace, spec: dict[str, Any], account_id: str) -> dict[str, Any]:
    """What the pure ``enrol`` action needs besides the account."""
    s = ws.settings
    with ws.store.reader() as cur:
        load = dict(cur.execute("SELECT mailbox, count(*) FROM enrolments WHERE workspace_id "
                                "= ? AND status = 'active' GROUP BY 1",
                                [ws.store.workspace_id]).fetchall())
    return {"sequence": _sequence(ws, spec["sequence"]), "people": people_of(ws, account_id),
            "suppressed": mailstore.suppressed(ws.store),
            "stage_order": [st.name for st in s.score.stages], "mqa_stage": s.score.mqa_stage,
            "mailbox_load": load, "default_timezone": s.activate.mail.default_timezone}


def _engaged(ws: Workspace, person_id: str, account_id: str | None) -> list[dict[str, Any]]:
    """The content a person engaged with (else their account), newest first, distinct."""
    with ws.store.reader() as cur:
        rows = cur.execute(
            "SELECT coalesce(e.title, e.properties ->> '$.title', e.properties ->> "
            "'$.asset_name') AS title, "
            "e.path, t.topic, t.channel, t.ts::DATE AS day, t.person_id = $p AS own "
            "FROM touches t JOIN events e ON e.workspace_id = t.workspace_id AND "
            "e.message_id = t.message_id WHERE t.workspace_id = $ws AND title IS NOT NULL AND "
            "(t.person_id = $p OR "
            "t.account_id = $a) ORDER BY own DESC, t.ts DESC LIMIT 200",
            {"ws": ws.store.workspace_id, "p": person_id, "a": account_id}).fetchall()
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for title, path, topic, channel, day, _ in rows:
        if title and title not in seen:
            seen.add(title)
            out.append({"title": title, "path": path or "", "topic": topic or "",
                        "channel": channel, "day": day})
        if len(out) == 5:
            break
    return out


def accounts_of(ws: Workspace, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The due enrolments' accounts as templates and stop rules see them: CRM fields and
    the latest scores (one query for just these accounts; a tick runs every few seconds)."""
    df = account_view(ws.store, ids=ids, columns=(
        "domain", "name", "industry", "employees", "country", "owner", "target", "tier",
        *SCORE_COLUMNS))
    df = rounded(df.drop(columns=["recent", "priority"]))
    clean = df.astype(object).where(df.notna(), None)
    return {str(r["account_id"]): {str(k): v for k, v in r.items()}
            for r in clean.to_dict("records")}


def sender(box: MailboxSetting) -> dict[str, str]:
    return {"name": box.display_name or box.address.split("@")[0], "email": box.address}


def key_pem(ws: Workspace, box: MailboxSetting) -> bytes | None:
    if not box.dkim_key_file:
        return None
    path = Path(ws.directory) / box.dkim_key_file
    try:
        return bytes(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"mailbox '{box.name}': cannot read DKIM key {path}: "
                          f"{exc.strerror}") from None


def compose_message(ws: Workspace, tpl: compose.Templates, enrolment: dict[str, Any],
                    step: StepSetting, person: dict[str, Any], account: dict[str, Any],
                    box: MailboxSetting,
                    now: dt.datetime, key: bytes) -> tuple[bytes, str, str]:
    """(raw bytes, subject, Message-ID) of one sequence email, signed when configured."""
    m = ws.settings.activate.mail
    token = compose.make_token(key, ws.store.workspace_id, enrolment["email"])
    unsubscribe = f"{m.unsubscribe_url.rstrip('/')}/{token}"
    ctx = compose.context(person, account, _engaged(ws, enrolment["person_id"],
                                                    enrolment["account_id"]),
                          {k: v.model_dump() for k, v in m.case_studies.items()},
                          sender(box), unsubscribe)
    rendered = compose.render(tpl, step, ctx)
    domain = box.address.split("@", 1)[1]
    msg_id = compose.message_id(enrolment["enrolment_id"], int(enrolment["step"]), domain)
    raw = compose.build(rendered, sender=box.address, sender_name=box.display_name,
                        to=enrolment["email"], msg_id=msg_id, unsubscribe=unsubscribe,
                        mailto=m.unsubscribe_mailto, postal=m.postal_address, date=now)
    pem = key_pem(ws, box)
    if pem is not None and box.dkim_selector:  # settings require both or neither
        raw = compose.sign(raw, box.dkim_selector, domain, pem)
    return raw, rendered.subject, msg_id

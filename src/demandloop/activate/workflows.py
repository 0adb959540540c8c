"""Workflows: which accounts a trigger fires for, and the jobs that follow (pure).

A workflow is ``when`` (a trigger) -> ``if`` (conditions on the account, the segment
language) -> ``then`` (ordered actions). Triggers are small functions in an ordered registry,
each turning what changed since the last evaluation into *firings*: one account, a key that
names this occurrence (so the same change never fires twice) and a sentence saying why now.

Every action of a firing becomes a job whose id hashes the firing key and the step: enqueuing
the same firing again (a re-run, a crash, a retry) adds nothing, which is what makes
execution idempotent.

Example:
    >>> import pandas as pd
    >>> changes = pd.DataFrame({"entity": ["account"], "entity_id": ["acme.com"],
    ...     "from_stage": ["engaged"], "to_stage": ["mqa"],
    ...     "changed_at": [pd.Timestamp("2026-03-01")], "reasons": ['["fit >= 50"]']})
    >>> f = TRIGGERS["stage_changed"](Inputs(changes=changes), {"to": "mqa"})
    >>> f["account_id"].tolist(), f["why"].tolist()
    (['acme.com'], ['became mqa (was engaged): fit >= 50'])
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from demandloop.conditions import Condition, select

if TYPE_CHECKING:
    from demandloop.config.activate import WorkflowSetting

FIRING_COLUMNS = ["account_id", "key", "why"]


@dataclass
class Inputs:
    """What changed since the last evaluation, and the accounts as they are now."""

    changes: pd.DataFrame = field(default_factory=pd.DataFrame)  # stage_changes rows
    accounts: pd.DataFrame = field(default_factory=pd.DataFrame)  # audience rows, current
    previous: pd.DataFrame = field(default_factory=pd.DataFrame)  # account_id + scores before
    events: pd.DataFrame = field(default_factory=pd.DataFrame)  # message_id, event, account_id
    person_accounts: dict[str, str] = field(default_factory=dict)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=FIRING_COLUMNS)


def _reasons(raw: Any) -> str:
    try:
        items = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        return ""
    return "; ".join(str(r) for r in items or [])


def stage_changed(i: Inputs, spec: dict[str, Any]) -> pd.DataFrame:
    c = i.changes
    if c.empty:
        return _empty()
    c = c[(c["entity"] == "account") & (c["to_stage"] == spec["to"])]
    return pd.DataFrame({
        "account_id": c["entity_id"],
        "key": "stage:" + c["entity_id"] + ":" + c["to_stage"] + ":" + c["changed_at"].astype(str),
        "why": [f"became {r.to_stage}" + (f" (was {r.from_stage})" if r.from_stage else "")
                + (f": {_reasons(r.reasons)}" if _reasons(r.reasons) else "")
                for r in c.itertuples()],
    })


def became_mql(i: Inputs, spec: dict[str, Any]) -> pd.DataFrame:
    c = i.changes
    if c.empty:
        return _empty()
    c = c[(c["entity"] == "person") & (c["to_stage"] == "mql")]
    accounts = c["entity_id"].map(i.person_accounts)
    c, accounts = c[accounts.notna()], accounts[accounts.notna()]
    return pd.DataFrame({
        "account_id": accounts,
        "key": "mql:" + c["entity_id"] + ":" + c["changed_at"].astype(str),
        "why": [f"{r.entity_id} became an MQL" + (f": {_reasons(r.reasons)}"
                                                  if _reasons(r.reasons) else "")
                for r in c.itertuples()],
    })


def _compare(i: Inputs) -> pd.DataFrame:
    if i.accounts.empty or "as_of" not in i.accounts:
        return pd.DataFrame()
    prev = i.previous.set_index("account_id") if not i.previous.empty else pd.DataFrame()
    cur = i.accounts.dropna(subset=["as_of"]).set_index("account_id")
    return cur.join(prev, rsuffix="_before", how="left")


def surge(i: Inputs, spec: dict[str, Any]) -> pd.DataFrame:
    j = _compare(i)
    if j.empty:
        return _empty()
    before = j["surging_before"] if "surging_before" in j else pd.Series(False, index=j.index)
    hit = j[j["surging"].fillna(False).astype(bool) & ~before.fillna(False).astype(bool)]
    return pd.DataFrame({"account_id": hit.index,
                         "key": "surge:" + hit.index + ":" + hit["as_of"].astype(str),
                         "why": [f"intent surging ({v:.1f}x its usual level)"
                                 for v in hit["intent"].fillna(0)]})


def score_crossed(i: Inputs, spec: dict[str, Any]) -> pd.DataFrame:
    j = _compare(i)
    name, above = spec["field"], float(spec["above"])
    if j.empty or name not in j:
        return _empty()
    before = j.get(f"{name}_before", pd.Series(float("nan"), index=j.index)).fillna(-1e300)
    hit = j[(j[name] > above) & (before <= above)]
    return pd.DataFrame({"account_id": hit.index,
                         "key": f"{name}>{above:g}:" + hit.index + ":" + hit["as_of"].astype(str),
                         "why": [f"{name} crossed {above:g} (now {v:.1f})" for v in hit[name]]})


def event(i: Inputs, spec: dict[str, Any]) -> pd.DataFrame:
    e = i.events
    if e.empty:
        return _empty()
    e = e[(e["event"] == spec["event"]) & e["account_id"].notna()]
    return pd.DataFrame({"account_id": e["account_id"], "key": "event:" + e["message_id"],
                         "why": [f"{spec['event']} ({r.ts:%Y-%m-%d %H:%M})"
                                 for r in e.itertuples()]})


#: ordered registry of triggers: name -> firings(inputs, spec)
TRIGGERS: dict[str, Callable[[Inputs, dict[str, Any]], pd.DataFrame]] = {
    "stage_changed": stage_changed,
    "became_mql": became_mql,
    "surge": surge,
    "score_crossed": score_crossed,
    "event": event,
}


def firings(workflow: WorkflowSetting, inputs: Inputs) -> pd.DataFrame:
    """The accounts *workflow* fires for: its trigger, then its ``if`` conditions."""
    if not workflow.enabled:
        return _empty()
    spec = workflow.when.model_dump()
    fired = TRIGGERS[workflow.when.trigger](inputs, spec)
    fired = fired.drop_duplicates("key")
    if fired.empty or not workflow.if_:
        return fired.reset_index(drop=True)
    conds = [Condition(c.field, c.op, c.value) for c in workflow.if_]
    ok = set(select(inputs.accounts, conds)["account_id"]) if not inputs.accounts.empty else set()
    return fired[fired["account_id"].isin(ok)].reset_index(drop=True)


def job_id(workflow: str, key: str, step: int) -> str:
    return hashlib.sha256(f"{workflow}\x1f{key}\x1f{step}".encode()).hexdigest()[:32]


def jobs(workflow: WorkflowSetting, fired: pd.DataFrame) -> list[dict[str, Any]]:
    """One job per (firing, action), ids stable across re-runs."""
    out = []
    for f in fired.itertuples():
        firing = job_id(workflow.name, str(f.key), -1)
        for step, action in enumerate(workflow.then):
            out.append({
                "job_id": job_id(workflow.name, str(f.key), step), "workflow": workflow.name,
                "firing": firing, "step": step, "action": action.action,
                "account_id": f.account_id, "trigger": f.why,
                "payload": orjson.dumps(action.model_dump()).decode(),
            })
    return out

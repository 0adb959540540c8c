"""Runs workflows over a workspace: read what changed, fire (pure), enqueue, execute.

``evaluate`` turns the stage changes, score snapshots and events since the last evaluation
into jobs (idempotent: see :mod:`demandloop.activate.job_queries`); ``execute`` carries out the jobs
that are due, in step order per firing, recording each outcome: at-least-once, with the job
id as the ``Idempotency-Key`` of every webhook, exponential backoff, and the dead letter list
after ``activate.max_attempts``. Like :mod:`demandloop.enrich.run`, this module only wires the
store, the pure stage functions and the edges together.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from demandloop.activate import job_queries as jobstore
from demandloop.activate import sequence_inputs
from demandloop.activate import sequence_queries as mailstore
from demandloop.activate.actions import ACTIONS
from demandloop.activate.signal_queries import (
    newest_change_seq,
    newest_load,
    read_events,
    read_inputs,
)
from demandloop.activate.workflow_files import workflows
from demandloop.activate.workflows import Inputs, firings, jobs
from demandloop.config.activate import WorkflowSetting
from demandloop.outbound import webhooks

if TYPE_CHECKING:  # the runners are called by the facade, which they never import
    from demandloop.workspace import Workspace

Post = Callable[[str, bytes, dict[str, str]], int]


@dataclass
class RunResult:
    fired: int = 0
    enqueued: int = 0
    done: int = 0
    retried: int = 0
    dead: int = 0
    enrolled: int = 0
    stale: int = 0  # signals older than activate.max_signal_age_days, not fired
    details: list[str] = field(default_factory=list)


def react(ws: Workspace, now: dt.datetime | None = None, post: Post = webhooks.post,
          flows: list[WorkflowSetting] | None = None) -> RunResult:
    """The live path (``demandloop serve`` calls it after each load): fire the ``event``
    workflows on the events just loaded, without waiting for resolution and scoring, and
    execute what is due. The firing key is the event's messageId, as in :func:`evaluate`,
    so the scoring run that follows finds these jobs already enqueued. *flows*: the
    workflows to fire (default: as the files say now; a server passes the ones in force,
    see :class:`~demandloop.activate.workflow_files.Held`)."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    flows = [w for w in (workflows(ws) if flows is None else flows)
             if w.enabled and w.when.trigger == "event"]
    result = RunResult()
    if not flows:
        return result
    store = ws.store
    since, loaded = jobstore.cursor(store, "live_events")
    if since is None:  # first run: only what arrives from now on
        with store.reader() as cur:
            last, last_load = newest_load(cur, store.workspace_id)
        # an empty store starts at the epoch: else the cursor stayed unset, and the first
        # batch ever loaded only set it, firing nothing
        jobstore.set_cursor(store, "live_events", last or dt.datetime(1970, 1, 1), last_load)
        return result
    with store.reader() as cur:
        newest, newest_id = newest_load(cur, store.workspace_id)
        # the loads after the cursor's (a cursor set before loads were numbered: what was
        # received at or after it; those already fired enqueue nothing twice, job ids)
        events = read_events(cur, store.workspace_id, since, sorted({str(w.when.event)
                                                                 for w in flows}), True,
                             after_load=loaded)
    if newest is not None and (newest_id, newest) != (loaded, since):
        jobstore.set_cursor(store, "live_events", max(newest, since), max(newest_id, loaded))
    events = events[events["account_id"].notna()]
    if events.empty:
        return result
    accounts = ws.audience_rows("account", ids=sorted(set(events["account_id"].astype(str))))
    inputs = Inputs(events=events, accounts=accounts)
    result.stale = _drop_stale(inputs, ws.settings.activate.max_signal_age_days, now)
    for wf in flows:
        fired = firings(wf, inputs)
        result.fired += len(fired)
        result.enqueued += jobstore.enqueue(store, jobs(wf, fired), now)
    if result.enqueued:
        done = execute(ws, now, post)
        done.fired, done.enqueued, done.stale = result.fired, result.enqueued, result.stale
        return done
    return result


def evaluate(ws: Workspace, now: dt.datetime | None = None, *, since: dt.datetime | None = None,
             dry_run: bool = False, flows: list[WorkflowSetting] | None = None) -> RunResult:
    """Fire every enabled workflow on what changed since the last evaluation; enqueue.

    *since* replays the signals after that time instead (a workflow added later fires on
    them; the ones that already fired enqueue nothing twice: job ids are idempotent).
    *dry_run* enqueues nothing and moves nothing: ``details`` lists the actions a run would
    add. With no enabled workflow nothing is consumed, so one added later sees the signals.
    *flows* as for :func:`react`.
    """
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    store, result = ws.store, RunResult()
    flows = [w for w in (workflows(ws) if flows is None else flows) if w.enabled]
    # each cursor is a time (how the first versions kept it, read once) and a number, the
    # last stage change's seq or event load read: numbers are given in commit order by the
    # one writer, times are not (see read_events, read_inputs)
    changes_since, changes_read = jobstore.cursor(store, "stage_changes")
    events_since, events_loaded = jobstore.cursor(store, "events")
    if since is not None:
        changes_since = events_since = since
        changes_read = events_loaded = 0  # a replay reads by time
    if not flows:  # nothing fires, nothing is consumed: nothing to read
        return result
    with store.reader() as cur:  # before the signals: what commits between is read again
        _, newest_id = newest_load(cur, store.workspace_id)
        newest_change = newest_change_seq(cur, store.workspace_id)
    # only what the enabled workflows read (every account's row is a second at 100k
    # accounts, on every run of the live loop)
    kinds = {w.when.trigger for w in flows}
    compare = bool(kinds & {"surge", "score_crossed"})
    inputs = read_inputs(ws, changes_since, events_since, after_change=changes_read,
                         after_load=events_loaded,
                         accounts=compare or any(w.if_ for w in flows),
                         all_accounts=compare, previous=compare,
                         people="became_mql" in kinds)
    # the cursors move past everything read, stale signals included: they never fire later
    changes_seen = inputs.changes["changed_at"].max() if not inputs.changes.empty else None
    events_seen = inputs.events["received_at"].max() if not inputs.events.empty else None
    result.stale = _drop_stale(inputs, ws.settings.activate.max_signal_age_days, now)
    known = jobstore.known_ids(store) if dry_run else set()
    for wf in flows:
        fired = firings(wf, inputs)
        result.fired += len(fired)
        rows = jobs(wf, fired)
        if dry_run:
            new = [r for r in rows if r["job_id"] not in known]
            result.enqueued += len(new)
            result.details += [f"{r['workflow']}: {r['action']} for {r['account_id']} "
                               f"({r['trigger']})" for r in new]
        else:
            result.enqueued += jobstore.enqueue(store, rows, now)
    if dry_run or not flows:
        return result
    for name, seen, newest in (("stage_changes", changes_seen, newest_change),
                               ("events", events_seen, newest_id)):
        current, number = jobstore.cursor(store, name)
        if seen is None or (current is not None and current > seen):
            seen = current  # a replay never moves one back
        if (seen, max(newest, number)) != (current, number):
            jobstore.set_cursor(store, name, seen, max(newest, number))
    return result


def _drop_stale(inputs: Inputs, max_age_days: float, now: dt.datetime) -> int:
    """Leave out signals older than *max_age_days* (0: keep all); returns how many. A
    stage change from last quarter, found by a first run over imported history, is not a
    reason to alert anyone today."""
    if max_age_days <= 0:
        return 0
    cutoff = now - dt.timedelta(days=max_age_days)
    n = 0
    if not inputs.changes.empty:
        old = inputs.changes["changed_at"] < cutoff
        n += int(old.sum())
        inputs.changes = inputs.changes[~old]
    if not inputs.events.empty:
        old = inputs.events["ts"] < cutoff
        n += int(old.sum())
        inputs.events = inputs.events[~old]
    if "as_of" in inputs.accounts and len(inputs.accounts) and \
            inputs.accounts["as_of"].max() < cutoff:  # a stale snapshot: no surge, no crossing
        inputs.accounts = inputs.accounts.drop(columns=["as_of"])
        n += 1
    return n


def _top_signals(ws: Workspace, accounts: list[str]) -> dict[str, list[str]]:
    """Each account's five most frequent recent signals (activity via channel, in the 30
    days before the last touch), for all *accounts* in one query."""
    with ws.store.reader() as cur:
        rows = cur.execute(
            "WITH s AS (SELECT account_id, coalesce(activity, 'visit') || ' via ' || channel "
            "AS what, count(*) AS n FROM touches WHERE workspace_id = $ws AND account_id IN "
            "(SELECT unnest($ids)) AND ts >= (SELECT max(ts) - INTERVAL 30 DAY FROM touches "
            "WHERE workspace_id = $ws) GROUP BY ALL) SELECT account_id, what, n FROM s "
            "QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY n DESC, what) <= 5 "
            "ORDER BY account_id, n DESC, what",
            {"ws": ws.store.workspace_id, "ids": accounts}).fetchall()
    out: dict[str, list[str]] = {a: [] for a in accounts}
    for account, what, n in rows:
        out[account].append(f"{n}x {what}")
    return out


def execute(ws: Workspace, now: dt.datetime | None = None, post: Post = webhooks.post,
            max_rounds: int = 100) -> RunResult:
    """Carry out every due job (steps of a firing in order); returns the outcomes.

    A job that posts is recorded alone, right after its post, so a crash repeats at most
    that one request (with the same ``Idempotency-Key``). Jobs whose effect stays in the
    workspace (an owner, a task, nothing) are recorded together at the end of each round,
    effects and ``done`` in one transaction with the round-robin counters they moved: one
    commit per round instead of one per job. A crash before it leaves them pending, to be
    run again with the same effects."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    store, settings, result = ws.store, ws.settings.activate, RunResult()
    for _ in range(max_rounds):
        batch = jobstore.due(store, now)
        if batch.empty:
            break
        ids = sorted(set(batch["account_id"].astype(str)))
        rows = ws.audience_rows("account", ids=ids)  # once per round, kept current below
        position = {a: i for i, a in enumerate(rows["account_id"].tolist())}
        signals = _top_signals(ws, ids)
        counters: dict[str, int] = {}  # round-robin positions, read once, moved in memory
        local: list[tuple[str, str, tuple[str, Any] | None]] = []
        for job in batch.to_dict("records"):
            j_payload, j_workflow = str(job["payload"]), str(job["workflow"])
            j_step, j_action = int(job["step"]), str(job["action"])
            j_account_id, j_trigger = str(job["account_id"]), str(job["trigger"])
            j_job_id, j_attempts = str(job["job_id"]), int(job["attempts"])
            spec = orjson.loads(j_payload)
            name = f"rr:{j_workflow}:{j_step}"
            if j_action == "assign" and name not in counters:
                counters[name] = jobstore.cursor(store, name)[1]
            counter = counters.get(name, 0)
            secret = os.environ.get(spec["secret_env"]) if spec.get("secret_env") else None
            extra = sequence_inputs.enrol_kwargs(ws, spec, j_account_id) if j_action == "enrol" \
                else {}
            i = position.get(j_account_id)
            account: dict[str, Any] = ({str(k): v for k, v in rows.iloc[i].items()}
                                       if i is not None else {"account_id": j_account_id})
            account["top_signals"] = signals.get(j_account_id, [])
            effect = ACTIONS[j_action](spec, account, j_trigger, job_id=j_job_id,
                                         workflow=j_workflow, counter=counter, secret=secret,
                                         now=now, **extra)
            try:
                if effect.kind == "http":
                    post(effect.url, effect.body, effect.headers)
            except webhooks.DeliveryError as exc:
                attempts = j_attempts + 1
                if attempts >= settings.max_attempts:
                    jobstore.finish(store, j_job_id, status="dead", now=now, error=str(exc))
                    result.dead += 1
                else:
                    wait = settings.retry_base_seconds * 2 ** (attempts - 1)
                    jobstore.finish(store, j_job_id, status="pending", now=now,
                                    error=str(exc), next_at=now + dt.timedelta(seconds=wait))
                    result.retried += 1
                continue
            applied: tuple[str, Any] | None = None
            if effect.kind == "set":
                applied = ("set", (j_account_id, effect.field, effect.value))
                # a later job of this round (another workflow) sees the new value
                if i is not None:
                    if effect.field not in rows:
                        rows[effect.field] = None
                    rows.loc[rows.index[i], effect.field] = effect.value
                if j_action == "assign":
                    counters[name] = counter + 1
            elif effect.kind == "task":
                applied = ("task", effect.task)
            elif effect.kind == "enrol":
                # enrolments are keyed by (sequence, person): a person goes through a
                # sequence once, however often the account fires
                added = mailstore.enrol(store, effect.rows)
                result.enrolled += added
                if added < len(effect.rows):
                    effect.summary += f" ({len(effect.rows) - added} already enrolled before)"
            elif effect.kind == "audience":
                mailstore.add_to_audience(store, str(effect.value), j_account_id, j_workflow,
                                          now)
            if effect.kind in ("http", "enrol", "audience"):
                jobstore.finish(store, j_job_id, status="done", now=now, result=effect.summary,
                                effect=applied)
            else:
                local.append((j_job_id, effect.summary, applied))
            result.done += 1
            result.details.append(f"{j_workflow} {j_account_id}: {effect.summary}")
        jobstore.finish_done(store, local, counters, now)
    return result

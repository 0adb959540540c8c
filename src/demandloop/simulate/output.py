"""Run a simulation and write its files (events, CRM exports, IP ranges, ground truth)."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from demandloop.errors import UsageError
from demandloop.simulate import catalog as cat
from demandloop.simulate.behaviour import Simulator
from demandloop.simulate.crawlers import write_access_log
from demandloop.simulate.world import Timeline, World, build_world

SCENARIOS = ("normal", "shrinking-pool", "personalization")
DEFAULT_START = dt.date(2026, 1, 5)


@dataclass
class SimulationSummary:
    """What a simulation produced (counts shown by the CLI)."""

    out: Path
    accounts: int
    people: int
    events: int
    sessions: int
    opportunities: int
    won: int
    in_market_accounts: int
    start: dt.date
    end: dt.date


def simulate(
    *,
    accounts: int,
    days: int,
    seed: int,
    out: Path,
    start: dt.date = DEFAULT_START,
    scenario: str = "normal",
    progress: Callable[[float], None] | None = None,
) -> SimulationSummary:
    """Simulate *accounts* accounts for *days* days into folder *out* (deterministic per seed).

    *progress*, if given, is called with 1 after each simulated day.
    """
    if accounts < 1 or accounts > 2_000_000:
        raise UsageError(f"--accounts must be between 1 and 2,000,000, got {accounts}")
    if days < 1 or days > 3650:
        raise UsageError(f"--days must be between 1 and 3650, got {days}")
    if scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario '{scenario}'", hint=f"one of {', '.join(SCENARIOS)}")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    world = build_world(rng, accounts)
    n_events = 0
    with (out / "events.jsonl").open("wb", buffering=1 << 20) as fh:
        write = fh.write
        dumps = orjson.dumps

        def emit(msg: dict[str, Any]) -> None:
            nonlocal n_events
            n_events += 1
            write(dumps(msg) + b"\n")

        sim = Simulator(world, rng, start, days, emit, scenario)
        timeline = sim.run(on_day=(lambda _day: progress(1)) if progress else None)
    end = start + dt.timedelta(days=days)
    known = _write_crm(out, world, timeline, rng, start)
    _write_spend(out, timeline, seed)
    _write_truth(out, world, timeline, seed, start, days, scenario, known,
                 sim.experiment.truth() if sim.experiment is not None else None,
                 write_access_log(out, seed, start, days))
    return SimulationSummary(
        out=out, accounts=accounts, people=len(world.people), events=n_events,
        sessions=timeline.sessions, opportunities=len(timeline.opportunities),
        won=sum(1 for o in timeline.opportunities if o.won),
        in_market_accounts=len(timeline.windows), start=start, end=end,
    )


#: paid programmes: simulated channel -> (spend channel, cost per click/visit, click-through)
PAID = {"paid_social": ("paid_social", 7.5, 0.008), "paid_search": ("paid_search", 11.0, 0.04),
        "display": ("display", 3.0, 0.002), "webinar": ("events", 60.0, 0.05)}


def _write_spend(out: Path, timeline: Timeline, seed: int) -> None:
    """Daily spend per paid channel: the visits it bought times a noisy cost per visit (its
    own random stream, so adding spend changed no event of an existing seed)."""
    rng = np.random.default_rng(seed + 7919)
    with (out / "spend.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["date", "channel", "campaign", "spend", "impressions", "clicks"])
        for (day, channel), visits in sorted(timeline.daily_sessions.items()):
            if channel not in PAID:
                continue
            name, cpc, ctr = PAID[channel]
            clicks = int(visits * rng.uniform(2.0, 3.0))  # visits from unknown people too
            spend = round(clicks * cpc * float(rng.lognormal(0, 0.15)), 2)
            w.writerow([day.isoformat(), name, f"{name}-always-on", spend,
                        int(clicks / ctr), clicks])


def _iso(ts: dt.datetime | None) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ") if ts else ""


def _write_crm(out: Path, world: World, timeline: Timeline, rng: np.random.Generator,
               start: dt.date) -> dict[int, dt.datetime]:
    """CRM exports and office ranges, each row dated by when it became known, so a score at
    any date can use only what the vendor knew then (``score --as-of``).

    * Accounts: the targets and a third of the rest were in the CRM before the period (sales'
      book); any other account is created with its first opportunity, as sales does.
    * Contacts: prospected buyers of targets were there before the period; everyone who
      filled a form is created at that first form fill, linked to an account by domain
      (an account not in the CRM yet is then only known from the email domain).
    * Opportunities: created and closed dates as they happened; open ones stay open.
    * Office IP ranges: known with the account (the vendor's reverse-IP data is matched
      to the accounts in its CRM).

    Returns each CRM account's known time.
    """
    before = dt.datetime.combine(start, dt.time())
    known: dict[int, dt.datetime] = {}
    for a in world.accounts:
        if a.target or rng.random() < 0.35:
            known[a.index] = before - dt.timedelta(days=int(rng.integers(30, 720)))
    for o in sorted(timeline.opportunities, key=lambda o: o.created):
        known.setdefault(o.account, o.created - dt.timedelta(hours=1))
    with (out / "accounts.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["crm_id", "domain", "name", "industry", "employees", "annual_revenue",
                    "country", "technologies", "owner", "target", "tier", "created_date"])
        for a in world.accounts:
            if a.index not in known:
                continue
            tier = ("1" if a.fit > 0.7 else "2" if a.fit > 0.45 else "3") if a.target else ""
            w.writerow([f"CRM-A{a.index:05d}", a.domain, a.name, a.industry, a.employees,
                        int(a.revenue), a.country, ";".join(a.technologies), a.owner or "",
                        "true" if a.target else "false", tier, _iso(known[a.index])])
    with (out / "contacts.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["crm_id", "email", "first_name", "last_name", "title", "account_domain",
                    "created_date"])
        for p in world.people:
            acc = world.accounts[p.account]
            prospected = acc.target and p.role in ("economic_buyer", "champion")
            if prospected and rng.random() < 0.7:
                created = before - dt.timedelta(days=int(rng.integers(1, 365)))
            elif p.person_id in timeline.identified:
                created = timeline.identified[p.person_id]
            else:
                continue
            w.writerow([f"CRM-C{p.person_id[4:]}", p.work_email, p.first_name, p.last_name,
                        p.title, acc.domain, _iso(created)])
    with (out / "opportunities.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["crm_id", "account_domain", "name", "amount", "stage", "created_date",
                    "close_date", "is_closed", "is_won", "owner"])
        for o in timeline.opportunities:
            acc = world.accounts[o.account]
            w.writerow([o.opportunity_id.replace("opp_", "CRM-O"), acc.domain,
                        f"{acc.name} - Loopwise", f"{o.amount:.2f}", o.stage, _iso(o.created),
                        _iso(o.closed), "true" if o.won is not None else "false",
                        "true" if o.won else "false", o.owner])
    with (out / "ip_ranges.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["cidr", "domain", "organisation", "known_since"])
        for a in world.accounts:
            if a.index in known:
                w.writerow([a.office_cidr, a.domain, a.name, _iso(known[a.index])])
    return known


def _write_truth(out: Path, world: World, timeline: Timeline, seed: int, start: dt.date,
                 days: int, scenario: str, known: dict[int, dt.datetime],
                 experiment: dict[str, Any] | None = None,
                 aeo: dict[str, Any] | None = None) -> None:
    truth: dict[str, Any] = {"personalization": experiment} if experiment else {}
    if aeo is not None:  # the access log's planted crawl gaps (simulate.crawlers)
        truth["aeo"] = aeo
    truth |= {
        "seed": seed, "start": start.isoformat(), "days": days, "scenario": scenario,
        "vendor_domain": cat.VENDOR_DOMAIN, "brand_terms": list(cat.BRAND_TERMS),
        "channel_effects": cat.CHANNEL_EFFECTS,
        "channel_sessions": timeline.channel_sessions,
        "isp_blocks": [{"cidr": c, "organisation": o} for c, o in world.isp_blocks],
        "accounts": [{
            "account_id": a.account_id, "domain": a.domain, "name": a.name,
            "industry": a.industry, "employees": a.employees, "country": a.country,
            "fit": round(a.fit, 6), "target": a.target, "in_crm": a.index in known,
            "crm_known_at": _iso(known.get(a.index)) or None,
            "office_cidr": a.office_cidr,
            "in_market_windows": [[(start + dt.timedelta(days=s)).isoformat(),
                                   (start + dt.timedelta(days=e)).isoformat()]
                                  for s, e in timeline.windows.get(a.index, [])],
        } for a in world.accounts],
        "people": [{
            "person_id": p.person_id, "account_id": world.accounts[p.account].account_id,
            "user_id": p.user_id, "work_email": p.work_email, "personal_email": p.personal_email,
            "title": p.title, "seniority": p.seniority, "function": p.function, "role": p.role,
            "anonymous_ids": p.devices,
            "identified_at": _iso(timeline.identified.get(p.person_id)) or None,
        } for p in world.people],
        "other_visitors": {anon: world.accounts[a].account_id
                           for anon, a in timeline.other_visitors.items()},
        "opportunities": [{
            "crm_id": o.opportunity_id.replace("opp_", "CRM-O"),
            "account_id": world.accounts[o.account].account_id, "created": _iso(o.created),
            "won": o.won, "amount": o.amount,
        } for o in timeline.opportunities],
    }
    (out / "truth.json").write_bytes(orjson.dumps(truth))

"""What the simulated market does each day: in-market windows, sessions, forms, outbound.

The day loop is vectorised over accounts (in-market hazards and session counts); sessions are
then written one by one, which is where events come from. The causal story, kept in the ground
truth: fit and recent demand-gen exposure raise the daily hazard of an account becoming
in-market; in-market accounts visit more, more of their committee shows up, they read pricing,
case studies and integrations, search for the brand and request demos; opportunities follow
from in-market windows, more often and more successfully for well-fitting accounts.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from demandloop.simulate import catalog as cat
from demandloop.simulate import pages
from demandloop.simulate.experiment import PlantedExperiment
from demandloop.simulate.world import (
    Account,
    Opportunity,
    Person,
    Timeline,
    World,
    anonymous_id,
)

Emit = Callable[[dict[str, Any]], None]


class Simulator:
    """Generates the event stream of one world over ``days`` days from ``start``."""

    def __init__(self, world: World, rng: np.random.Generator, start: dt.date, days: int,
                 emit: Emit, scenario: str = "normal") -> None:
        self.w, self.rng, self.days, self.emit = world, rng, days, emit
        # Per-session draws use the stdlib generator (seeded from the numpy one): numpy's
        # per-call overhead made single draws the bulk of the simulation's time.
        self.r = random.Random(int(rng.integers(2**63)))
        self.start = dt.datetime.combine(start, dt.time())
        self.scenario = scenario
        self.experiment = PlantedExperiment() if scenario == "personalization" else None
        self.harvest = 1.0
        self.timeline = Timeline()
        self.msg_no = 0
        self.device_user: dict[str, str] = {}  # anonymous id -> user id once identified
        self.in_market_until = np.full(len(world.accounts), -1)
        self.cooldown_until = np.full(len(world.accounts), -1)
        self.exposure = np.zeros(len(world.accounts))
        self.fit = np.array([a.fit for a in world.accounts])
        size = np.array([a.employees for a in world.accounts])
        self.reach = np.clip(np.log10(size) / 3.0, 0.4, 1.6)
        self.channels = list(cat.CHANNELS)
        self.targets = [a.index for a in world.accounts if a.target]
        self.committees = [[world.people[i] for i in a.people] for a in world.accounts]
        self.buying_weights = [[p.buying_weight for p in c] for c in self.committees]
        out_p = np.array([cat.CHANNELS[c][1] for c in self.channels])
        in_p = np.array([cat.CHANNELS[c][2] for c in self.channels])
        self.cum_out = list(np.cumsum(out_p / out_p.sum()))
        self.cum_in = list(np.cumsum(in_p / in_p.sum()))

    # -- the day loop -------------------------------------------------------------------------
    def run(self, on_day: Callable[[int], None] | None = None) -> Timeline:
        n = len(self.w.accounts)
        for day in range(self.days):
            if on_day:
                on_day(day)
            date = self.start + dt.timedelta(days=day)
            weekday = date.weekday() < 5
            demand_scale = self._demand_scale(day)
            # harvesting: as organic demand shrinks, the vendor gates more content and pushes
            # every visit to a form, so form fills and MQLs hold while the pool drains
            self.harvest = 1.0 / demand_scale
            # becoming in-market: fit and recent demand exposure raise the hazard
            free = (self.in_market_until < day) & (self.cooldown_until < day)
            hazard = 0.0006 * np.exp(2.6 * self.fit) * (1.0 + self.exposure) * demand_scale
            start_now = free & (self.rng.random(n) < hazard)
            for a in np.flatnonzero(start_now):
                length = int(self.rng.integers(21, 70))
                self.in_market_until[a] = day + length
                self.cooldown_until[a] = day + length + int(self.rng.integers(30, 120))
                self.timeline.windows.setdefault(int(a), []).append((day, day + length))
                self._maybe_opportunity(int(a), day, length)
            self.exposure *= 0.93  # exposure fades with a ~10-day half-life
            in_market = self.in_market_until >= day
            rate = self.reach * (0.05 + 0.22 * self.fit) * demand_scale
            rate = np.where(in_market, rate * 5.0 + 0.35, rate)
            rate *= 1.0 if weekday else 0.25
            counts = self.rng.poisson(rate)
            for a in np.flatnonzero(counts):
                for _ in range(counts[a]):
                    self._session(self.w.accounts[a], date, bool(in_market[a]))
            if weekday:
                self._outbound(date, day)
                if self.harvest > 1.0:
                    self._syndicated(date, n)
            noise = self.rng.poisson(n * 0.08 * (1.0 if weekday else 0.4) * demand_scale)
            for _ in range(noise):
                self._noise_session(date)
        return self.timeline

    def _syndicated(self, date: dt.datetime, n: int) -> None:
        """Harvesting: gated assets pushed to bought lists (content syndication) bring new
        form fills from people with no real demand, more as organic demand shrinks."""
        for _ in range(int(self.rng.poisson(n * 0.006 * (self.harvest - 1.0)))):
            acc = self.w.accounts[int(self.rng.integers(len(self.w.accounts)))]
            self._session(acc, date, False, channel="email", kinds=["guide"])

    def _demand_scale(self, day: int) -> float:
        """The 'shrinking pool' scenario: organic demand decays over the period (to a quarter
        by the end) while capture is pushed harder (see ``harvest``)."""
        if self.scenario != "shrinking-pool":
            return 1.0
        return float(max(0.25, 1.0 - 0.75 * day / max(self.days - 1, 1)))

    def _maybe_opportunity(self, a: int, day: int, length: int) -> None:
        acc = self.w.accounts[a]
        p = 1.0 / (1.0 + np.exp(-(-1.3 + 3.4 * acc.fit + 0.4 * acc.target)))
        if self.rng.random() >= p:
            return
        created = self.start + dt.timedelta(
            days=day + int(self.rng.integers(7, max(8, length))),
            hours=int(self.rng.integers(9, 18)))
        amount = float(round(8000 * (acc.employees ** 0.35) * self.rng.lognormal(0, 0.4), -2))
        won_p = 0.12 + 0.55 * acc.fit
        cycle = int(self.rng.integers(25, 120))
        closed = created + dt.timedelta(days=cycle)
        end = self.start + dt.timedelta(days=self.days)
        if created > end:
            return
        if closed > end:
            won, closed_at = None, None
            stage = cat.OPEN_STAGES[min(3, (end - created).days * 4 // max(cycle, 1))]
        else:
            won = bool(self.rng.random() < won_p)
            closed_at, stage = closed, "Closed Won" if won else "Closed Lost"
        self.timeline.opportunities.append(Opportunity(
            opportunity_id=f"opp_{len(self.timeline.opportunities):05d}", account=a,
            created=created, amount=amount, won=won, closed=closed_at, stage=stage,
            owner=acc.owner or cat.REPS[a % len(cat.REPS)],
        ))

    # -- sessions -----------------------------------------------------------------------------
    def _when(self, date: dt.datetime, country: str) -> dt.datetime:
        offset = cat.COUNTRIES[country][2]
        local_hour = min(23.0, max(6.0, self.r.gauss(13.0, 2.8)))
        return date + dt.timedelta(hours=local_hour - offset, seconds=self.r.randrange(3600))

    def _device(self, person: Person) -> str:
        if not person.devices or (len(person.devices) < 3 and self.r.random() < 0.04):
            person.devices.append(anonymous_id(self.r))
        return self.r.choice(person.devices)

    def _ip(self, acc: Account | None, at_office: bool) -> str:
        if acc is not None and at_office:
            base = acc.office_cidr.split("/")[0].rsplit(".", 1)[0]
            return f"{base}.{self.r.randrange(2, 254)}"
        cidr, _ = self.r.choice(self.w.isp_blocks)
        a, b = cidr.split(".")[:2]
        return f"{a}.{b}.{self.r.randrange(256)}.{self.r.randrange(1, 255)}"

    def _session(self, acc: Account, date: dt.datetime, in_market: bool,
                 channel: str | None = None, kinds: list[str] | None = None) -> None:
        r = self.r
        person: Person | None
        # an employee outside the buying committee, never identified
        if channel is None and r.random() < 0.25:
            person, anon = None, anonymous_id(r)
            self.timeline.other_visitors[anon] = acc.index
        else:
            weights = self.buying_weights[acc.index] if in_market else None
            person = r.choices(self.committees[acc.index], weights=weights)[0]
            anon = self._device(person)
        cum = self.cum_in if in_market else self.cum_out
        channel = channel or r.choices(self.channels, cum_weights=cum)[0]
        if channel == "outbound" and person is None:
            channel = "direct"
        ts = self._when(date, acc.country)
        at_office = ts.weekday() < 5 and r.random() < 0.6
        ctx = {"ip": self._ip(acc, at_office), "userAgent": r.choice(cat.USER_AGENTS)}
        self.timeline.sessions += 1
        sessions = self.timeline.channel_sessions
        sessions[channel] = sessions.get(channel, 0) + 1
        key = (date.date(), channel)
        self.timeline.daily_sessions[key] = self.timeline.daily_sessions.get(key, 0) + 1
        if channel in cat.CHANNEL_EFFECTS:
            self.exposure[acc.index] += cat.CHANNEL_EFFECTS[channel] * 0.25
        kinds = kinds or pages.journey(self.r, channel, in_market)
        user_id = self.device_user.get(anon)
        if self.experiment is not None:
            self.experiment.viewed(self, acc, anon, user_id, ts, ctx)
        for i, kind in enumerate(kinds):
            path = pages.page_path(self.r, kind, acc)
            self._page(anon, user_id, ts, path, ctx, channel if i == 0 else None, kind)
            ts += dt.timedelta(seconds=r.randrange(15, 240))
        if person is not None:
            self._forms(person, acc, anon, ts, ctx, kinds, in_market)

    # -- messages -----------------------------------------------------------------------------
    def _message(self, kind: str, ts: dt.datetime, anon: str | None, user_id: str | None,
                 ctx: dict[str, Any], **fields: Any) -> None:
        self.msg_no += 1
        msg: dict[str, Any] = {"type": kind, "messageId": f"sim-{self.msg_no:09d}",
                               "timestamp": ts.isoformat(timespec="milliseconds") + "Z"}
        if anon:
            msg["anonymousId"] = anon
        if user_id:
            msg["userId"] = user_id
        msg.update(fields)
        msg["context"] = ctx
        self.emit(msg)

    def _page(self, anon: str, user_id: str | None, ts: dt.datetime, path: str,
              ctx: dict[str, Any], channel: str | None, kind: str) -> None:
        referrer, utm = (pages.landing(self.r, channel) if channel
                         else (f"https://{cat.VENDOR_DOMAIN}/", {}))
        query = "&".join(f"{k}={v.replace(' ', '%20')}" for k, v in utm.items())
        url = f"https://{cat.VENDOR_DOMAIN}{path}" + (f"?{query}" if query else "")
        title = path.strip("/").replace("-", " ").replace("/", " - ").title() or "Home"
        page_ctx = dict(ctx)
        page_ctx["page"] = {"path": path, "referrer": referrer, "url": url, "title": title,
                            "search": f"?{query}" if query else ""}
        if utm:
            page_ctx["campaign"] = {k.replace("utm_", "").replace("campaign", "name"): v
                                    for k, v in utm.items()}
        page_ctx["library"] = {"name": "analytics.js", "version": "next-1.70.0"}
        self._message("page", ts, anon, user_id, page_ctx, name=title,
                      properties={"path": path, "url": url, "referrer": referrer, "title": title})

    def _forms(self, person: Person, acc: Account, anon: str, ts: dt.datetime,
               ctx: dict[str, Any], kinds: list[str], in_market: bool) -> None:
        r = self.r
        event = None
        if "demo" in kinds and in_market and r.random() < 0.6:
            # the personalization scenario plants its audience's demo requests itself
            planted = self.experiment is not None and self.experiment.owns(acc)
            event = None if planted else "Demo Requested"
        elif "guide" in kinds and r.random() < min(0.95, 0.25 * self.harvest):
            event = "Asset Downloaded"
        elif "webinar" in kinds and r.random() < min(0.9, 0.4 * self.harvest):
            event = "Webinar Registered"
        elif "pricing" in kinds and in_market and r.random() < 0.08:
            event = "Trial Started"
        if event is None:
            return
        email = person.personal_email if (person.personal_email and r.random() < 0.3) \
            else person.work_email
        self.device_user[anon] = person.user_id
        self.timeline.identified.setdefault(person.person_id, ts)
        traits = {"email": email, "firstName": person.first_name, "lastName": person.last_name,
                  "title": person.title, "company": acc.name}
        self._message("identify", ts, anon, person.user_id, dict(ctx), traits=traits)
        ts += dt.timedelta(seconds=2)
        props: dict[str, Any] = {"form": event.lower().replace(" ", "_")}
        if event == "Asset Downloaded":
            props["asset"] = "guide"
        self._message("track", ts, anon, person.user_id, dict(ctx), event=event, properties=props)
        if event == "Trial Started":
            self._message("group", ts + dt.timedelta(seconds=1), anon, person.user_id, dict(ctx),
                          groupId=f"org_{acc.index:05d}",
                          traits={"name": acc.name, "website": f"https://{acc.domain}",
                                  "employees": acc.employees, "industry": acc.industry})
        attended = ts + dt.timedelta(days=r.randrange(3, 15))
        end = self.start + dt.timedelta(days=self.days)
        if event == "Webinar Registered" and r.random() < 0.55 and attended < end:
            self._message("track", attended, None,
                          person.user_id, {"library": {"name": "zoom-webhook"}},
                          event="Webinar Attended", properties={"minutes": r.randrange(10, 60)})

    def _outbound(self, date: dt.datetime, day: int) -> None:
        """SDR sequences: target accounts' known contacts get sales emails (server-side)."""
        r = self.r
        for a in self.targets:
            if r.random() >= 0.03:
                continue
            acc = self.w.accounts[a]
            person = self.w.people[r.choice(acc.people)]
            ts = self._when(date, acc.country)
            self._message("track", ts, None, person.user_id, {"library": {"name": "outreach-sync"}},
                          event="Email Sent", properties={"sequence": "sdr-abm", "step": 1,
                                                          "to": person.work_email})
            if r.random() < 0.35:
                self._message("track", ts + dt.timedelta(hours=3), None, person.user_id,
                              {"library": {"name": "outreach-sync"}}, event="Email Opened",
                              properties={"sequence": "sdr-abm"})

    def _noise_session(self, date: dt.datetime) -> None:
        """Traffic that belongs to no account: students, job seekers, bots on home/mobile IPs."""
        r = self.r
        anon = anonymous_id(r)
        ts = date + dt.timedelta(seconds=r.randrange(86400))
        ctx = {"ip": self._ip(None, False), "userAgent": r.choice(cat.USER_AGENTS)}
        channel = r.choice(("organic_search", "direct", "organic_social", "referral"))
        kind = r.choice(("blog", "careers", "home"))
        path = pages.page_path(self.r, kind, self.w.accounts[0])
        self._page(anon, None, ts, path, ctx, channel, kind)

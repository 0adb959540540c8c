"""Meeting routing: which rep takes a meeting with an account at a slot.

Order, as Qualified and Chili Piper route: the account's CRM owner, when they are a rep free
at the slot; else the first rule (``[[meetings.rules]]``, the one condition language) the
account meets; else the fallback. Within the reps so chosen, only those free at the slot
count, and a weighted round robin picks one (:func:`pick`).

**Fair shares** (Cal.com's weighted round robin, made exact): every booking owes each rep
who was eligible for it (free, in its pool) a share ``weight / sum of the eligible reps'
weights``. A rep's *target* is the sum of the shares owed to them, their *shortfall* the
target minus the bookings they got; the rep furthest behind is picked, then the higher
priority, then the least recently booked, then by name. A rep who joins later, or was away
or busy, is owed nothing for the bookings they could not take, so they are neither flooded
on return nor starved: Cal.com's "calibration" without a separate rule.

**Availability**: working hours on working days in the rep's time zone, minus busy times
from an iCalendar feed (:func:`busy_from_ics`: events not marked transparent or cancelled,
recurrences expanded, free/busy periods). Meetings start on the rep's own grid, every
``step_minutes`` from the start of their working hours in their time zone, as Calendly's
and Cal.com's start-time increments do: a rep in Kathmandu (UTC+05:45) working 09:00-17:00
is booked at 09:00 and 09:30 there, not on a grid of UTC minutes (09:15, 09:45), and one
working from 09:30 with hour-long steps at 09:30, 10:30.
"""

from __future__ import annotations

import bisect
import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import icalendar
from dateutil.rrule import rrulestr

from demandloop.activate.personalize import holds
from demandloop.conditions import Condition
from demandloop.config.meetings import DAYS, MeetingSettings, RepSetting

UTC = dt.UTC
Busy = tuple[dt.datetime, dt.datetime]


@dataclass(frozen=True)
class Rep:
    """A rep as routing sees them: hours in minutes after local midnight, busy times in
    UTC, sorted; *step*: minutes between the starts of their meetings, from the start of
    their hours."""

    name: str
    email: str
    zone: zoneinfo.ZoneInfo
    start_minute: int
    end_minute: int
    days: frozenset[int]
    weight: int = 100
    priority: int = 2
    paused: bool = False
    busy: tuple[Busy, ...] = ()
    step: int = 30

    def on_grid(self, start: dt.datetime) -> bool:
        """Whether a meeting of this rep may start at *start*: a whole minute a multiple of
        :attr:`step` after the start of their hours, on their clock."""
        a = start.astimezone(self.zone)
        return (not a.second and not a.microsecond
                and (a.hour * 60 + a.minute - self.start_minute) % self.step == 0)

    def starts(self, since: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
        """The starts of the rep's grid in [since, until) on their working days and within
        their hours (UTC; busy times not applied: :meth:`free` does)."""
        out = []
        day = since.astimezone(self.zone).date()
        last = until.astimezone(self.zone).date()
        while day <= last:
            if day.weekday() in self.days:
                for minute in range(self.start_minute, self.end_minute, self.step):
                    local = dt.datetime.combine(day, dt.time(minute // 60, minute % 60),
                                                self.zone)
                    at = local.astimezone(UTC)
                    # (a wall time a clock change skips does not come back as itself)
                    if since <= at < until and at.astimezone(self.zone).time() == local.time():
                        out.append(at)
            day += dt.timedelta(days=1)
        return out

    def free(self, start: dt.datetime, end: dt.datetime) -> bool:
        """Whether the rep can take a meeting [start, end) (aware datetimes): on their grid
        (:meth:`on_grid`), a working day, within their hours, outside their busy times."""
        if self.paused or end <= start or not self.on_grid(start):
            return False
        a, b = start.astimezone(self.zone), end.astimezone(self.zone)
        if a.weekday() not in self.days:
            return False
        first = a.hour * 60 + a.minute
        minutes = (b - a).total_seconds() / 60
        if first < self.start_minute or first + minutes > self.end_minute:
            return False
        # the last busy interval starting before the slot's end must end by its start
        i = bisect.bisect_left(self.busy, (end.astimezone(UTC),)) - 1
        while i >= 0 and self.busy[i][1] > start:
            if self.busy[i][0] < end:
                return False
            i -= 1
        return True


def rep_from(setting: RepSetting, busy: Iterable[Busy] = (), step: int = 30) -> Rep:
    """A rep's settings as routing sees them; *step*: ``meetings.step_minutes``."""
    h = setting.hours
    return Rep(name=setting.name, email=setting.email,
               zone=zoneinfo.ZoneInfo(setting.timezone),
               start_minute=int(h[:2]) * 60 + int(h[3:5]),
               end_minute=int(h[6:8]) * 60 + int(h[9:11]),
               days=frozenset(DAYS.index(d) for d in setting.days), weight=setting.weight,
               priority=setting.priority, paused=setting.paused,
               busy=tuple(sorted(busy)), step=step)


def _aware(value: Any, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """An iCalendar DATE or DATE-TIME as an aware UTC datetime (dates and floating times in
    *zone*: an all-day event is busy from the rep's midnight)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
    return dt.datetime.combine(value, dt.time(), zone).astimezone(UTC)


def busy_from_ics(data: bytes | str, zone: zoneinfo.ZoneInfo, since: dt.datetime,
                  until: dt.datetime) -> list[Busy]:
    """Busy intervals in [since, until) from an iCalendar feed: VEVENTs (recurrences
    expanded with their exceptions; transparent and cancelled events skipped) and
    VFREEBUSY periods."""
    cal = icalendar.Calendar.from_ical(data)
    out: list[Busy] = []
    for ev in cal.walk("VEVENT"):
        if str(ev.get("TRANSP", "")).upper() == "TRANSPARENT" or \
                str(ev.get("STATUS", "")).upper() == "CANCELLED" or "DTSTART" not in ev:
            continue
        raw_start = ev.decoded("DTSTART")
        start = _aware(raw_start, zone)
        if "DTEND" in ev:
            length = _aware(ev.decoded("DTEND"), zone) - start
        elif "DURATION" in ev:
            length = ev.decoded("DURATION")
        else:
            length = dt.timedelta(days=1) if not isinstance(raw_start, dt.datetime) \
                else dt.timedelta(0)
        starts = [start]
        if "RRULE" in ev:
            text = ev["RRULE"].to_ical()
            rule = rrulestr(text.decode() if isinstance(text, bytes) else str(text),
                            dtstart=start)
            found = ev.get("EXDATE")
            lists = found if isinstance(found, list) else [found] if found else []
            skipped = {_aware(d.dt, zone) for x in lists for d in x.dts}
            starts = [s for s in rule.between(since - length, until, inc=True)
                      if s not in skipped]
        out += [(s, s + length) for s in starts if s < until and s + length > since]
    for fb in cal.walk("VFREEBUSY"):
        found = fb.get("FREEBUSY")
        for period in found if isinstance(found, list) else [found] if found else []:
            if str(period.params.get("FBTYPE", "BUSY")).upper() == "FREE":
                continue
            begin, stop = period.dt
            begin = _aware(begin, zone)
            end = begin + stop if isinstance(stop, dt.timedelta) else _aware(stop, zone)
            if begin < until and end > since:
                out.append((begin, end))
    return sorted(out)


@dataclass(frozen=True)
class Booking:
    """A past booking as the round robin counts it: who took it, when, and who was
    eligible for it (free and in its pool)."""

    rep: str
    at: dt.datetime
    eligible: tuple[str, ...]


class Ledger:
    """The round robin's running account: each rep's shortfall (target minus bookings) and
    last booking. Built once from the stored bookings, then updated per booking, so a pick
    costs the candidates, not the history."""

    def __init__(self, weights: dict[str, int], history: Iterable[Booking] = ()) -> None:
        self.weights = dict(weights)
        self.short: dict[str, float] = dict.fromkeys(weights, 0.0)
        self.last: dict[str, dt.datetime] = {}
        for b in history:
            self.record(b)

    def record(self, b: Booking) -> None:
        """Count a booking: every eligible rep is owed its share, the taker one less."""
        total = sum(self.weights.get(n, 0) for n in b.eligible)
        if total > 0:
            for n in b.eligible:
                if n in self.short:
                    self.short[n] += self.weights[n] / total
        if b.rep in self.short:
            self.short[b.rep] -= 1.0
        self.last[b.rep] = max(b.at, self.last.get(b.rep, b.at))

    def pick(self, candidates: Sequence[Rep]) -> Rep:
        """The rep of *candidates* (free at the slot, weight above zero) a booking goes to:
        furthest behind, then higher priority, then least recently booked, then name."""
        never = dt.datetime.min.replace(tzinfo=UTC)
        return min(candidates, key=lambda r: (-round(self.short.get(r.name, 0.0), 9),
                                              -r.priority, self.last.get(r.name, never),
                                              r.name))


def pick(candidates: Sequence[Rep], history: Sequence[Booking]) -> Rep:
    """:meth:`Ledger.pick` over *history* (a ledger of the candidates' weights)."""
    return Ledger({r.name: r.weight for r in candidates}, history).pick(candidates)


@dataclass(frozen=True)
class Route:
    rep: str
    reason: str  # "owner", "rule <name>" or "fallback"
    eligible: tuple[str, ...] = field(default=())


def route(account: dict[str, Any], reps: dict[str, Rep], settings: MeetingSettings,
          start: dt.datetime, ledger: Ledger,
          free: Callable[[Rep, dt.datetime, dt.datetime], bool] | None = None
          ) -> Route | None:
    """Who takes a meeting with *account* (its fields: ``owner`` and whatever the rules
    name) at *start*, by the round robin of *ledger* (whose weights are every rep's); None
    when nobody of its pool is free then."""
    end = start + dt.timedelta(minutes=settings.minutes)
    is_free = free or (lambda r, a, b: r.free(a, b))
    owner = account.get("owner")
    if isinstance(owner, str) and owner in reps and is_free(reps[owner], start, end):
        return Route(owner, "owner", (owner,))
    names, reason = list(settings.fallback), "fallback"
    for rule in settings.rules:
        if all(holds(Condition(c.field, c.op, c.value), account) for c in rule.where):
            names, reason = list(rule.reps), f"rule {rule.name}"
            break
    pool = [reps[n] for n in names if n in reps and reps[n].weight > 0
            and is_free(reps[n], start, end)]
    if not pool:
        return None
    chosen = ledger.pick(pool)
    return Route(chosen.name, reason, tuple(r.name for r in pool))


def candidates(reps: Iterable[Rep], since: dt.datetime, until: dt.datetime
               ) -> list[dt.datetime]:
    """Every start in [since, until) on the grid of one of *reps*, sorted (UTC)."""
    return sorted({t for r in reps for t in r.starts(since, until)})


def slots(reps: Sequence[Rep], since: dt.datetime, until: dt.datetime, minutes: int
          ) -> list[dt.datetime]:
    """Slot starts in [since, until) (UTC), each a meeting of *minutes* that ends by
    *until*, when one of *reps* is free (on their grid)."""
    length = dt.timedelta(minutes=minutes)
    return [t for t in candidates(reps, since, until)
            if t + length <= until and any(r.free(t, t + length) for r in reps)]

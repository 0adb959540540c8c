"""Sequences: who is enrolled, when each step is due, and how much a mailbox may send (pure).

Everything here is a function of its arguments (the clock included), so a multi-day run can
be simulated in a test by moving ``now``. Times are naive UTC like the rest of the store;
the recipient's local time decides sending hours and business days.

* **Who**: ``choose_people`` ranks an account's known people with an email that is not
  suppressed: committee role first (the sequence's ``roles``, else any), then engagement.
  ``quality_gate`` keeps sequences to target or Strong/Moderate-fit accounts at the MQA stage
  or above ("quality over volume").
* **When**: ``next_open`` is the first moment inside the send window (``09:00-17:00`` on
  business days, holidays excluded) in the recipient's zone; ``after_business_days`` counts
  waits in business days with numpy's ``busday_offset``. A person's zone is their
  ``timezone`` trait (analytics.js and Segment's ``context.timezone``), else their account
  country's main zone (pytz's ``country_timezones``), else the configured default.
* **How much**: ``allowance`` is what a mailbox may send right now: under the warm-up
  ramp's limit for its day (day 1 is its first send, or ``warmup_start``), the daily cap
  (counted from the mailbox's own midnight), the hourly cap, and ``min_gap_seconds`` since
  the last send.

Example:
    >>> w = Window.parse("09:00-17:00", ["mon", "tue", "wed", "thu", "fri"], [])
    >>> next_open(dt.datetime(2026, 11, 28, 12, 0), "Europe/Berlin", w)  # a Saturday
    datetime.datetime(2026, 11, 30, 8, 0)
    >>> daily_limit([5, 10], 50, day=2), daily_limit([5, 10], 50, day=9)
    (10, 50)
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytz

from demandloop.score.committee import covers

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
GOOD_BANDS = ("Strong", "Moderate")
UTC = dt.UTC


@dataclass(frozen=True)
class Window:
    """Sending hours (local) and business days."""

    start: dt.time
    end: dt.time
    weekmask: str  # numpy's "1111100"
    holidays: tuple[dt.date, ...]

    @classmethod
    def parse(cls, hours: str, days: list[str], holidays: list[dt.date]) -> Window:
        a, b = hours.split("-")
        start, end = dt.time.fromisoformat(a), dt.time.fromisoformat(b)
        if end <= start:
            raise ValueError(f"send window '{hours}': the end must be after the start")
        mask = "".join("1" if d in days else "0" for d in WEEKDAYS)
        if mask == "0000000":
            raise ValueError("send_days is empty: nothing could ever be sent")
        return cls(start, end, mask, tuple(sorted(holidays)))

    def business_day(self, day: dt.date) -> bool:
        return bool(np.is_busday(np.datetime64(day, "D"), weekmask=self.weekmask,
                                 holidays=list(self.holidays)))


def zone_for(trait: Any, country: Any, default: str) -> str:
    """The recipient's IANA zone: their own trait, their country's main zone, the default."""
    if isinstance(trait, str) and trait:
        try:
            ZoneInfo(trait)
            return trait
        except (KeyError, ValueError):
            pass
    if isinstance(country, str) and len(country) == 2:
        zones = pytz.country_timezones.get(country.upper())
        if zones:
            return str(zones[0])
    return default


def local_time(t: dt.datetime, tz: str) -> dt.datetime:
    return t.replace(tzinfo=UTC).astimezone(ZoneInfo(tz))


def _utc(local: dt.datetime) -> dt.datetime:
    return local.astimezone(UTC).replace(tzinfo=None)


def in_window(t: dt.datetime, tz: str, w: Window) -> bool:
    local = local_time(t, tz)
    return w.business_day(local.date()) and w.start <= local.time() < w.end


def next_open(t: dt.datetime, tz: str, w: Window) -> dt.datetime:
    """The first instant at or after *t* (naive UTC) inside the window, in naive UTC."""
    if in_window(t, tz, w):
        return t
    local = local_time(t, tz)
    day = local.date() if local.time() < w.start else local.date() + dt.timedelta(days=1)
    nxt = np.busday_offset(np.datetime64(day, "D"), 0, roll="forward", weekmask=w.weekmask,
                           holidays=list(w.holidays))
    opening = dt.datetime.combine(nxt.astype(dt.date), w.start, tzinfo=ZoneInfo(tz))
    return _utc(opening)


def after_business_days(t: dt.datetime, days: int, tz: str, w: Window) -> dt.datetime:
    """*days* business days after *t* at the same local time (then inside the window)."""
    local = local_time(t, tz)
    d = np.busday_offset(np.datetime64(local.date(), "D"), days, roll="forward",
                         weekmask=w.weekmask, holidays=list(w.holidays))
    moved = dt.datetime.combine(d.astype(dt.date), local.time().replace(tzinfo=None),
                                tzinfo=ZoneInfo(tz))
    return next_open(_utc(moved), tz, w)


def daily_limit(warmup: list[int], cap: int, day: int) -> int:
    """The limit on the mailbox's *day* (1 = its first sending day)."""
    ramp = warmup[day - 1] if 1 <= day <= len(warmup) else cap
    return min(ramp, cap)


def allowance(now: dt.datetime, sends: list[dt.datetime], *, tz: str, warmup: list[int],
              daily_cap: int, hourly_cap: int, min_gap_seconds: float,
              first_day: dt.date | None) -> int:
    """How many messages a mailbox may send at *now*; *sends* sorted, naive UTC."""
    today = local_time(now, tz).date()
    day = (today - first_day).days + 1 if first_day is not None else 1
    midnight = _utc(dt.datetime.combine(today, dt.time(0), tzinfo=ZoneInfo(tz)))
    sent_today = len(sends) - bisect.bisect_left(sends, midnight)
    sent_hour = len(sends) - bisect.bisect_right(sends, now - dt.timedelta(hours=1))
    left = min(daily_limit(warmup, daily_cap, max(day, 1)) - sent_today,
               hourly_cap - sent_hour)
    if left <= 0:
        return 0
    if min_gap_seconds > 0:
        if sends and (now - sends[-1]).total_seconds() < min_gap_seconds:
            return 0
        return 1  # one now; the next after the gap
    return left


def stage_rank(stage: Any, order: Sequence[str]) -> int:
    """Position in the configured stage list (0 = highest); unknown stages rank last."""
    return list(order).index(stage) if isinstance(stage, str) and stage in order else len(order)


def quality_gate(account: dict[str, Any], order: Sequence[str], mqa_stage: str) -> str | None:
    """Why the account may not be enrolled, or None: target or Strong/Moderate fit, at the
    MQA stage or above."""
    good_fit = bool(account.get("target")) is True or account.get("band") in GOOD_BANDS
    if not good_fit:
        return f"not enrolled: not a target account and fit band is {account.get('band')}"
    if stage_rank(account.get("stage"), order) > stage_rank(mqa_stage, order):
        return f"not enrolled: stage {account.get('stage')} is below {mqa_stage}"
    return None


def choose_people(people: pd.DataFrame, roles: list[str], limit: int,
                  suppressed: Container[str]) -> pd.DataFrame:
    """The best *limit* people to mail: an email not suppressed, in *roles* if given,
    ranked by role order then engagement (highest first). *people* has ``person_id,
    email, seniority, job_function, engagement``."""
    if people.empty:
        return people
    p = people[people["email"].notna() & (people["email"].astype(str).str.len() > 0)]
    # a membership test per address: an erased person is suppressed as a hash
    p = p[~p["email"].str.lower().map(lambda e: e in suppressed).astype(bool)]
    if roles:
        rank = [next((i for i, r in enumerate(roles) if covers(r, s, f)), -1)
                for s, f in zip(p["seniority"], p["job_function"], strict=True)]
        p = p.assign(_rank=rank)
        p = p[p["_rank"] >= 0]
    else:
        p = p.assign(_rank=0)
    p = p.assign(_eng=p["engagement"].fillna(0.0))
    p = p.sort_values(["_rank", "_eng", "person_id"], ascending=[True, False, True])
    return p.drop(columns=["_rank", "_eng"]).head(limit)


def stop_reason(enrolment: dict[str, Any], stop_on: list[str], suppressed: dict[str, str],
                seen: set[str], account_stage: Any) -> str | None:
    """Why an active enrolment ends now, or None; *seen* holds the person's stop signals
    (reply, meeting, unsubscribe, bounce). Suppression always ends it (the list is never
    bypassed, whatever ``stop_on`` says)."""
    email = str(enrolment["email"]).lower()
    if email in suppressed:
        return suppressed[email]
    for reason in ("reply", "meeting", "unsubscribe", "bounce"):
        if reason in seen and (reason in stop_on or reason in ("unsubscribe", "bounce")):
            return reason
    at = enrolment.get("stage_at_enrolment")
    if "stage_change" in stop_on and at is not None and account_stage is not None \
            and account_stage != at:
        return "stage_change"
    return None

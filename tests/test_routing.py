"""Meeting routing: the owner first, then rules, then the fallback; only reps free at the slot;
a weighted round robin whose shares hold over 10k bookings; working hours and iCalendar busy
times; settings that refuse what cannot route."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from demandloop.activate.routing import (
    Booking,
    Ledger,
    Rep,
    busy_from_ics,
    pick,
    rep_from,
    route,
)
from demandloop.config.meetings import MeetingSettings, RepSetting

UTC = dt.UTC
MONDAY = dt.datetime(2026, 12, 7, tzinfo=UTC)  # a Monday


def _rep(name: str, weight: int = 100, priority: int = 2, **kw: object) -> Rep:
    return rep_from(RepSetting.model_validate({"name": name, "email": f"{name}@v.io",
                                               "weight": weight, "priority": priority,
                                               "hours": "00:00-24:00",
                                               "days": ["mon", "tue", "wed", "thu", "fri",
                                                        "sat", "sun"], **kw}))


def _run(reps: list[Rep], n: int, available: float, seed: int) -> list[Booking]:
    """*n* bookings, each with every rep free with probability *available*."""
    r = random.Random(seed)
    history: list[Booking] = []
    ledger = Ledger({rep.name: rep.weight for rep in reps})
    for i in range(n):
        pool = [rep for rep in reps if r.random() < available] or [r.choice(reps)]
        chosen = ledger.pick(pool)
        booking = Booking(chosen.name, MONDAY + dt.timedelta(minutes=i),
                          tuple(p.name for p in pool))
        ledger.record(booking)
        history.append(booking)
    return history


@settings(max_examples=12, deadline=None)
@given(weights=st.lists(st.integers(1, 400), min_size=2, max_size=6),
       available=st.sampled_from([1.0, 0.7, 0.4]), seed=st.integers(0, 10_000))
def test_each_reps_share_is_within_two_points_of_its_target(weights: list[int],
                                                            available: float,
                                                            seed: int) -> None:
    reps = [_rep(f"r{i}", w) for i, w in enumerate(weights)]
    history = _run(reps, 10_000, available, seed)
    # the target, computed independently: each booking owes every eligible rep its weight's
    # share of that booking
    weight = {r.name: r.weight for r in reps}
    target = dict.fromkeys(weight, 0.0)
    for b in history:
        total = sum(weight[n] for n in b.eligible)
        for n in b.eligible:
            target[n] += weight[n] / total
    for name in weight:
        share = sum(b.rep == name for b in history) / len(history)
        assert abs(share - target[name] / len(history)) <= 0.02
        if available == 1.0:  # always free: the share is the weight's share
            assert abs(share - weight[name] / sum(weights)) <= 0.02


def test_ties_go_to_priority_then_the_least_recently_booked() -> None:
    a, b, c = _rep("a", priority=2), _rep("b", priority=4), _rep("c", priority=2)
    assert pick([a, b, c], []).name == "b"
    history = [Booking("b", MONDAY, ("a", "b", "c"))]
    # a and c are owed a third each, b is ahead: a and c tie, neither booked: by name
    assert pick([a, b, c], history).name == "a"
    history.append(Booking("a", MONDAY + dt.timedelta(hours=1), ("a", "b", "c")))
    assert pick([a, b, c], history).name == "c"
    # b away for 100 bookings (a and c share them): back, b is owed nothing for those, so
    # it gets its third of what follows instead of the next hundred in a row
    ledger = Ledger({"a": 100, "b": 100, "c": 100},
                    [Booking("a" if i % 2 else "c", MONDAY + dt.timedelta(minutes=i),
                             ("a", "c")) for i in range(100)])
    after = []
    for i in range(30):
        chosen = ledger.pick([a, b, c]).name
        ledger.record(Booking(chosen, MONDAY + dt.timedelta(hours=5, minutes=i),
                              ("a", "b", "c")))
        after.append(chosen)
    assert after.count("b") == 10 and after.count("a") == 10


def test_working_hours_busy_times_and_pauses() -> None:
    berlin = rep_from(RepSetting(name="ana", email="ana@v.io", timezone="Europe/Berlin",
                                 hours="09:00-17:00"), busy=[(
        MONDAY.replace(hour=10), MONDAY.replace(hour=11))])
    half = dt.timedelta(minutes=30)
    assert berlin.free(MONDAY.replace(hour=8), MONDAY.replace(hour=8) + half)  # 09:00 local
    assert not berlin.free(MONDAY.replace(hour=7, minute=30),
                           MONDAY.replace(hour=8))  # 08:30 local
    assert not berlin.free(MONDAY.replace(hour=15, minute=45),
                           MONDAY.replace(hour=16, minute=15))  # past 17:00 local
    assert not berlin.free(MONDAY.replace(hour=10, minute=30),
                           MONDAY.replace(hour=11))  # busy
    assert berlin.free(MONDAY.replace(hour=11), MONDAY.replace(hour=11) + half)
    saturday = MONDAY + dt.timedelta(days=5, hours=10)
    assert not berlin.free(saturday, saturday + half)
    paused = rep_from(RepSetting(name="p", email="p@v.io", paused=True))
    assert not paused.free(MONDAY.replace(hour=10), MONDAY.replace(hour=11))


ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//routing//EN
BEGIN:VEVENT
UID:1
DTSTART;TZID=America/New_York:20261207T090000
DTEND;TZID=America/New_York:20261207T100000
SUMMARY:Standup
RRULE:FREQ=DAILY;COUNT=5
EXDATE;TZID=America/New_York:20261209T090000
END:VEVENT
BEGIN:VEVENT
UID:2
DTSTART:20261208T180000Z
DTEND:20261208T190000Z
TRANSP:TRANSPARENT
END:VEVENT
BEGIN:VEVENT
UID:3
DTSTART:20261208T200000Z
DURATION:PT45M
STATUS:CANCELLED
END:VEVENT
BEGIN:VEVENT
UID:4
DTSTART;VALUE=DATE:20261210
DTEND;VALUE=DATE:20261211
SUMMARY:Offsite
END:VEVENT
END:VCALENDAR
"""


def test_busy_times_from_an_icalendar_feed() -> None:
    ny = zoneinfo.ZoneInfo("America/New_York")
    busy = busy_from_ics(ICS, ny, MONDAY, MONDAY + dt.timedelta(days=7))
    standups = [b for b in busy if b[1] - b[0] == dt.timedelta(hours=1)]
    # daily at 09:00 New York (14:00 UTC) for five days, without Wednesday's
    assert [b[0].day for b in standups] == [7, 8, 10, 11]
    assert all(b[0].astimezone(ny).hour == 9 for b in standups)
    # the all-day offsite is busy from the rep's midnight; transparent and cancelled are not
    offsite = [b for b in busy if b[1] - b[0] == dt.timedelta(days=1)]
    assert offsite == [(dt.datetime(2026, 12, 10, 5, tzinfo=UTC),
                        dt.datetime(2026, 12, 11, 5, tzinfo=UTC))]
    assert len(busy) == 5
    rep = rep_from(RepSetting(name="n", email="n@v.io", timezone="America/New_York"), busy)
    nine = dt.datetime(2026, 12, 8, 14, tzinfo=UTC)
    assert not rep.free(nine, nine + dt.timedelta(minutes=30))
    assert rep.free(nine + dt.timedelta(hours=1), nine + dt.timedelta(hours=1, minutes=30))


def test_route_order_owner_rules_fallback_and_only_free_reps() -> None:
    meetings = MeetingSettings.model_validate({
        "reps": [{"name": n, "email": f"{n}@v.io", "hours": "00:00-24:00",
                  "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
                 for n in ("owner", "emea1", "emea2", "any")],
        "rules": [{"name": "emea", "where": [{"field": "country", "op": "in",
                                              "value": ["DE", "FR"]}],
                   "reps": ["emea1", "emea2"]}],
        "fallback": ["any"]})
    reps = {r.name: rep_from(r) for r in meetings.reps}
    at = MONDAY.replace(hour=12)
    ledger = Ledger({n: r.weight for n, r in reps.items()})
    assert route({"owner": "owner", "country": "DE"}, reps, meetings, at, ledger) == \
        route({"owner": "owner"}, reps, meetings, at, ledger)
    assert route({"owner": "owner"}, reps, meetings, at, ledger).reason == "owner"
    got = route({"owner": "someone else", "country": "FR"}, reps, meetings, at, ledger)
    assert got is not None and got.reason == "rule emea" and got.eligible == ("emea1", "emea2")
    assert route({"country": "US"}, reps, meetings, at, ledger).rep == "any"
    # the owner busy: the account goes on to its rule, and only its free reps count
    busy = {"owner", "emea1"}
    got = route({"owner": "owner", "country": "DE"}, reps, meetings, at, ledger,
                free=lambda r, a, b: r.name not in busy)
    assert (got.rep, got.eligible) == ("emea2", ("emea2",))
    assert route({"country": "US"}, reps, meetings, at, ledger,
                 free=lambda r, a, b: False) is None


@pytest.mark.parametrize(("body", "message"), [
    ({"reps": [{"name": "a", "email": "a@v.io"}]}, "fallback is required"),
    ({"reps": [{"name": "a", "email": "a@v.io"}], "fallback": ["b"]}, "unknown rep 'b'"),
    ({"reps": [{"name": "a", "email": "a@v.io", "timezone": "Mars/Olympus"}],
      "fallback": ["a"]}, "unknown time zone"),
    ({"reps": [{"name": "a", "email": "a@v.io", "hours": "17:00-09:00"}],
      "fallback": ["a"]}, "start before the end"),
])
def test_meeting_settings_refuse_what_cannot_route(body: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MeetingSettings.model_validate(body)


def test_a_reps_grid_starts_at_their_hours_on_their_clock_across_a_clock_change() -> None:
    """Starts every step from the start of the rep's hours in their zone: 45-minute steps
    from 09:00 (not drifting from UTC midnight), 09:30 with hour-long steps, and on the
    night New York skips 02:00-03:00 no start at a wall time that does not exist."""
    paris = rep_from(RepSetting(name="p", email="p@v.io", timezone="Europe/Paris",
                                hours="09:00-17:00"), step=45)
    local = [t.astimezone(paris.zone).strftime("%H:%M")
             for t in paris.starts(MONDAY, MONDAY + dt.timedelta(days=1))]
    assert local == ["09:00", "09:45", "10:30", "11:15", "12:00", "12:45", "13:30", "14:15",
                     "15:00", "15:45", "16:30"]
    # a 30-minute meeting at 16:30 ends by 17:00; a 45-minute one would not
    assert paris.free(paris.starts(MONDAY, MONDAY + dt.timedelta(days=1))[-1],
                      paris.starts(MONDAY, MONDAY + dt.timedelta(days=1))[-1]
                      + dt.timedelta(minutes=30))
    nine = dt.datetime(2026, 12, 7, 9, 0, tzinfo=paris.zone)
    assert paris.on_grid(nine) and paris.free(nine, nine + dt.timedelta(minutes=30))
    half_past = nine + dt.timedelta(minutes=30)  # within the hours, off the grid
    assert not paris.on_grid(half_past)
    assert not paris.free(half_past, half_past + dt.timedelta(minutes=30))
    late = rep_from(RepSetting(name="l", email="l@v.io", timezone="Europe/Paris",
                               hours="09:30-17:00"), step=60)
    assert [t.astimezone(late.zone).hour for t in late.starts(MONDAY, MONDAY
            + dt.timedelta(days=1))] == list(range(9, 17))
    assert all(t.astimezone(late.zone).minute == 30
               for t in late.starts(MONDAY, MONDAY + dt.timedelta(days=1)))
    ny = rep_from(RepSetting(name="n", email="n@v.io", timezone="America/New_York",
                             hours="00:00-24:00", days=["sun"]), step=60)
    spring = dt.datetime(2026, 3, 8, 0, tzinfo=ny.zone)  # 02:00 does not happen
    hours = [t.astimezone(ny.zone).hour
             for t in ny.starts(spring, dt.datetime(2026, 3, 9, 0, tzinfo=ny.zone))]
    assert hours == [0, 1, *range(3, 24)]

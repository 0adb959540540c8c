"""The ``personalization`` scenario: a website experiment with a planted lift.

Target accounts are the audience of one experience (``target-hero``, half held out). Every
session of a target account views it: the page sends ``Experience Viewed`` with the arm the
account is assigned by the same hash ``/v1/decide`` uses. At its first view that names the
account (from its office, or by a known person) an account draws whether it will request a
demo within 30 days: with probability ``P_CONTROL`` in the control and ``P_VARIANT`` when
personalised, and its natural demo requests are left out, so the difference between the
arms' conversion rates is planted exactly (``truth.json`` states it) and ``demandloop
report personalization`` must find it inside its interval.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from demandloop.activate.personalize import in_control

if TYPE_CHECKING:
    from demandloop.simulate.behaviour import Simulator
    from demandloop.simulate.world import Account

NAME = "target-hero"
CONTROL = 0.5
P_CONTROL = 0.08
P_VARIANT = 0.16
WITHIN_DAYS = 30


@dataclass
class PlantedExperiment:
    """What the scenario needs to remember: each account's first view."""

    first_view: dict[int, dt.datetime] = field(default_factory=dict)

    def owns(self, acc: Account) -> bool:
        """Is *acc* in the audience (its demand conversions are then the planted ones)?"""
        return acc.target

    def viewed(self, sim: Simulator, acc: Account, anon: str, user_id: str | None,
               ts: dt.datetime, ctx: dict[str, Any]) -> None:
        """A session of *acc* views the experience (on its first page)."""
        if not self.owns(acc):
            return
        control = in_control(NAME, acc.domain, CONTROL)
        sim._message("track", ts + dt.timedelta(seconds=1), anon, user_id, dict(ctx),
                     event="Experience Viewed",
                     properties={"experience": NAME,
                                 "variant": "control" if control else "personalized",
                                 "control": control})
        base = acc.office_cidr.split("/")[0].rsplit(".", 1)[0]
        # the clock starts at the first view an account-level report can see: from the
        # office (its address names the account) or by a known person; a view from a home
        # address by an unknown browser is the account's, but nobody can tell yet
        seen = ctx["ip"].startswith(base + ".") or user_id is not None
        if acc.index in self.first_view or not seen:
            return
        self.first_view[acc.index] = ts
        if sim.r.random() >= (P_CONTROL if control else P_VARIANT):
            return
        when = ts + dt.timedelta(days=sim.r.uniform(0.5, WITHIN_DAYS - 0.5))
        if when >= sim.start + dt.timedelta(days=sim.days):
            return
        person = sim.w.people[sim.r.choice(acc.people)]
        device = sim._device(person)
        office = {"ip": f"{base}.{sim.r.randrange(2, 254)}", "userAgent": ctx["userAgent"]}
        sim.device_user[device] = person.user_id
        sim.timeline.identified.setdefault(person.person_id, when)
        sim._message("identify", when, device, person.user_id, dict(office),
                     traits={"email": person.work_email, "firstName": person.first_name,
                             "lastName": person.last_name, "title": person.title,
                             "company": acc.name})
        sim._message("track", when + dt.timedelta(seconds=2), device, person.user_id,
                     dict(office), event="Demo Requested",
                     properties={"form": "demo_requested"})

    def truth(self) -> dict[str, Any]:
        return {"experience": NAME, "audience": "target accounts", "control": CONTROL,
                "goal": "demo request", "activity": "demo_request",
                "within_days": WITHIN_DAYS, "p_control": P_CONTROL, "p_variant": P_VARIANT,
                "planted_difference": P_VARIANT - P_CONTROL,
                "exposed_accounts": len(self.first_view)}

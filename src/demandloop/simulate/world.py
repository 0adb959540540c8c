"""The population of the simulated market (accounts, buying committees, networks) and the
record of what it did (:class:`Timeline`).

Everything is drawn from one ``numpy.random.Generator`` so a seed reproduces the world.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
from dataclasses import dataclass, field

import numpy as np

from demandloop.simulate import catalog as cat


@dataclass
class Opportunity:
    opportunity_id: str
    account: int
    created: dt.datetime
    amount: float
    won: bool | None  # None: still open at the end of the simulation
    closed: dt.datetime | None
    stage: str
    owner: str


@dataclass
class Timeline:
    """What the simulation did, for the CRM files, the spend and the ground truth."""

    windows: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    opportunities: list[Opportunity] = field(default_factory=list)
    identified: dict[str, dt.datetime] = field(default_factory=dict)  # person -> first form
    # anonymous ids of employees outside the buying committee -> account index
    other_visitors: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    channel_sessions: dict[str, int] = field(default_factory=dict)
    # (day, channel) -> sessions, for the paid channels' spend
    daily_sessions: dict[tuple[dt.date, str], int] = field(default_factory=dict)


@dataclass
class Person:
    person_id: str
    account: int
    user_id: str
    first_name: str
    last_name: str
    title: str
    seniority: str
    function: str
    role: str
    buying_weight: float
    work_email: str
    personal_email: str | None
    devices: list[str] = field(default_factory=list)  # anonymous ids, one per browser


@dataclass
class Account:
    index: int
    account_id: str
    name: str
    domain: str
    industry: str
    employees: int
    revenue: float
    country: str
    technologies: list[str]
    fit: float  # hidden ICP fit in [0, 1]
    target: bool
    owner: str | None
    office_cidr: str
    people: list[int] = field(default_factory=list)


@dataclass
class World:
    accounts: list[Account]
    people: list[Person]
    isp_blocks: list[tuple[str, str]]  # (cidr, organisation) of home broadband and mobile


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-x))
    return out


def _hex_id(rng: np.random.Generator, n: int = 16) -> str:
    return "".join(f"{b:02x}" for b in rng.integers(0, 256, n // 2))


def anonymous_id(r: random.Random) -> str:
    """A UUID-4-shaped id, as analytics.js makes for a new browser."""
    h = f"{r.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _company_names(rng: np.random.Generator, n: int) -> list[str]:
    seen: set[str] = set()
    names: list[str] = []
    while len(names) < n:
        head = cat.NAME_HEADS[rng.integers(len(cat.NAME_HEADS))]
        tail = cat.NAME_TAILS[rng.integers(len(cat.NAME_TAILS))]
        base = head + tail
        if base in seen:
            base = f"{base}{rng.integers(2, 99)}"
            if base in seen:
                continue
        seen.add(base)
        names.append(base + cat.NAME_SUFFIXES[rng.integers(len(cat.NAME_SUFFIXES))])
    return names


def build_world(rng: np.random.Generator, n_accounts: int) -> World:
    """Draw accounts with firmographics and a hidden fit, their committees and networks."""
    industries = list(cat.INDUSTRIES)
    countries = list(cat.COUNTRIES)
    shares = np.array([cat.COUNTRIES[c][0] for c in countries])
    ind = rng.integers(len(industries), size=n_accounts)
    cty = rng.choice(len(countries), size=n_accounts, p=shares / shares.sum())
    employees = np.clip(np.round(rng.lognormal(5.4, 1.5, n_accounts)), 5, 250_000).astype(int)
    techs = [list(cat.TECHNOLOGIES)[j] for j in range(len(cat.TECHNOLOGIES))]
    size_boost = np.clip(np.log10(employees) / 4, 0.2, 1.2)
    has_tech = rng.random((n_accounts, len(techs))) < (
        np.array([cat.TECHNOLOGIES[t][0] for t in techs])[None, :] * size_boost[:, None] * 1.3
    )
    # hidden ICP fit: industry, a size sweet spot (200-5,000 staff), country, technologies
    log_e = np.log10(employees)
    size_w = 1.2 - 1.1 * np.abs(log_e - 3.0)
    x = (
        np.array([cat.INDUSTRIES[industries[i]][0] for i in ind])
        + size_w
        + np.array([cat.COUNTRIES[countries[c]][1] for c in cty])
        + has_tech @ np.array([cat.TECHNOLOGIES[t][1] for t in techs])
        + rng.normal(0, 0.6, n_accounts)
        - 1.0
    )
    fit = _sigmoid(x)
    # sales picks ~30% of accounts as targets, by a noisy view of fit
    perceived = fit + rng.normal(0, 0.15, n_accounts)
    target = perceived >= np.quantile(perceived, 0.70)
    names = _company_names(rng, n_accounts)
    accounts: list[Account] = []
    for i in range(n_accounts):
        industry, country = industries[ind[i]], countries[cty[i]]
        tld = cat.COUNTRIES[country][3]
        slug = "".join(ch for ch in names[i].split(" ")[0].lower() if ch.isalnum())
        revenue = float(employees[i] * cat.INDUSTRIES[industry][1] * rng.lognormal(0, 0.35))
        # office networks: a /24 per account from a block reserved for the simulation
        net = ipaddress.IPv4Network((int(ipaddress.IPv4Address("23.0.0.0")) + i * 256, 24))
        accounts.append(Account(
            index=i, account_id=f"acc_{i:05d}", name=names[i], domain=f"{slug}.{tld}",
            industry=industry, employees=int(employees[i]), revenue=round(revenue, -3),
            country=country, technologies=[t for j, t in enumerate(techs) if has_tech[i, j]],
            fit=float(fit[i]), target=bool(target[i]),
            owner=cat.REPS[i % len(cat.REPS)] if target[i] or rng.random() < 0.3 else None,
            office_cidr=str(net),
        ))
    people = _committees(rng, accounts)
    isp = [(str(ipaddress.IPv4Network((int(ipaddress.IPv4Address("98.0.0.0")) + k * 65536, 16))),
            org) for k, org in enumerate(("Comcast Cable", "Charter Spectrum", "Verizon Wireless",
                                           "BT Broadband", "Deutsche Telekom", "Vodafone",
                                           "Orange", "Telstra", "Rogers", "AT&T Mobility"))]
    return World(accounts=accounts, people=people, isp_blocks=isp)


def _committees(rng: np.random.Generator, accounts: list[Account]) -> list[Person]:
    people: list[Person] = []
    for acc in accounts:
        size = int(np.clip(round(2 + 1.6 * np.log10(acc.employees) + rng.poisson(1.0)), 3, 14))
        # always an economic buyer and a champion, then roles by weight
        picks = [int(rng.integers(0, 2)), int(rng.integers(2, 4))]
        weights = np.array([r[4] for r in cat.ROLES])
        picks += list(rng.choice(len(cat.ROLES), size=size - 2, p=weights / weights.sum()))
        used: set[str] = set()
        for r in picks:
            role, seniority, function, titles, weight = cat.ROLES[r]
            for _ in range(5):
                first = cat.FIRST_NAMES[rng.integers(len(cat.FIRST_NAMES))]
                last = cat.LAST_NAMES[rng.integers(len(cat.LAST_NAMES))]
                local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
                if local not in used:
                    break
            used.add(local)
            personal = None
            if rng.random() < 0.35:
                dom = cat.PERSONAL_DOMAINS[rng.integers(len(cat.PERSONAL_DOMAINS))]
                personal = f"{local.replace('.', '')}{rng.integers(1, 99)}@{dom}"
            n = len(people)
            people.append(Person(
                person_id=f"per_{n:06d}", account=acc.index, user_id=f"usr_{_hex_id(rng, 12)}",
                first_name=first, last_name=last, title=titles[rng.integers(len(titles))],
                seniority=seniority, function=function, role=role, buying_weight=weight,
                work_email=f"{local}@{acc.domain}", personal_email=personal,
            ))
            acc.people.append(n)
    return people

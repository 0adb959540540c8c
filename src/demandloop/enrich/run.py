"""Run the resolve and enrich stages over a workspace: read tables, call the pure stage
functions, write the derived tables (identities, person_identifiers, persons, accounts,
account_matches, touches) in one transaction.

The derived tables are rebuilt from the events each run, so a run after new events (or new
IP ranges, or a config change) gives the same answer as if everything had arrived at once.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from demandloop.config import Settings
from demandloop.domains import alias_map, canonical_domain, personal_domains
from demandloop.enrich.channels import rules_for, user_rule
from demandloop.enrich.personas import classify_title
from demandloop.enrich.touches import build_touches
from demandloop.ipaddr import anonymise_ip
from demandloop.resolve import asn as asn_table
from demandloop.resolve.accounts import (
    CONFIDENCE,
    ip_accounts,
    normalise_name,
    person_accounts,
)
from demandloop.resolve.identity import resolve_persons
from demandloop.resolve.ipranges import RangeIndex
from demandloop.resolve.queries import read_inputs, write_outputs
from demandloop.store.db import Store


@dataclass
class ResolveResult:
    persons: int = 0
    identified_devices: int = 0
    accounts_created: int = 0
    touches: int = 0
    touches_with_account: int = 0
    unresolved: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def identity_edges(ev: pd.DataFrame) -> pd.DataFrame:
    """Edges ``a, b, source, message_id, ts`` between identifiers seen in one message."""
    out = []
    both = ev[ev["anonymous_id"].notna() & ev["user_id"].notna()]
    out.append(pd.DataFrame({"a": "anon:" + both["anonymous_id"], "b": "user:" + both["user_id"],
                             "source": both["type"], "message_id": both["message_id"],
                             "ts": both["timestamp"]}))
    alias = ev[(ev["type"] == "alias") & ev["previous_id"].notna() & ev["user_id"].notna()]
    if not alias.empty:
        anons = set(ev["anonymous_id"].dropna())
        prev_kind = np.where(alias["previous_id"].isin(anons), "anon:", "user:")
        out.append(pd.DataFrame({"a": prev_kind + alias["previous_id"],
                                 "b": "user:" + alias["user_id"], "source": "alias",
                                 "message_id": alias["message_id"], "ts": alias["timestamp"]}))
    ident = ev[(ev["type"] == "identify") & ev["email"].notna()]
    if not ident.empty:
        who = np.where(ident["user_id"].notna(), "user:" + ident["user_id"].fillna(""),
                       "anon:" + ident["anonymous_id"].fillna(""))
        out.append(pd.DataFrame({"a": who, "b": "email:" + ident["email"],
                                 "source": "identify", "message_id": ident["message_id"],
                                 "ts": ident["timestamp"]}))
    edges = pd.concat(out, ignore_index=True)
    # keep the first message that made each link: that is what `explain` shows
    return edges.sort_values("ts", kind="stable").drop_duplicates(["a", "b"])


def _channel_rules(settings: Settings) -> list[Any]:
    extra = [user_rule(r.channel, utm_source=r.utm_source, utm_medium=r.utm_medium,
                       referrer_host=r.referrer_host, url_contains=r.url_contains)
             for r in settings.enrich.channel_rules]
    return rules_for(tuple(settings.enrich.brand_terms), extra)


def run(store: Store, settings: Settings) -> ResolveResult:
    """Resolve identities and accounts, derive touches, and store everything."""
    started = time.perf_counter()
    inp = read_inputs(store)
    ev = inp.events
    personal = personal_domains(settings.identity.personal_email_domains,
                                settings.identity.business_email_domains)
    edges = identity_edges(ev)
    crm = inp.persons[inp.persons["email"].notna()]
    ids = resolve_persons(edges[["a", "b"]], set(crm["person_id"]),
                          settings.identity.max_users_per_device)
    # every CRM contact is a person even without web activity
    crm_ids = pd.DataFrame({"identifier": "email:" + crm["email"], "kind": "email",
                            "person_id": crm["person_id"]})
    ids = pd.concat([ids, crm_ids[~crm_ids["identifier"].isin(ids["identifier"])]],
                    ignore_index=True)
    person_emails = ids[ids["kind"] == "email"].assign(
        email=lambda d: d["identifier"].str.removeprefix("email:"))[["person_id", "email"]]

    by_identifier = dict(zip(ids["identifier"], ids["person_id"], strict=True))
    groups = ev[(ev["type"] == "group")].copy()
    groups["person_id"] = ("user:" + groups["user_id"].fillna("")).map(by_identifier)
    groups["domain"] = groups["group_website"].map(
        lambda w: canonical_domain(w) if isinstance(w, str) else None)
    group_links = groups.dropna(subset=["person_id", "domain"])[["person_id", "domain",
                                                                 "group_name"]]
    aliases = alias_map(settings.identity.domain_aliases)
    group_links = group_links.assign(domain=group_links["domain"].replace(aliases))
    matches = person_accounts(person_emails, crm[["email", "account_id"]],
                              group_links[["person_id", "domain"]], personal)
    # a known alias (a second brand or country domain) belongs to its main account
    matches["account_id"] = matches["account_id"].replace(aliases)

    known_accounts = set(inp.accounts["account_id"])
    new = matches[~matches["account_id"].isin(known_accounts)].drop_duplicates("account_id")
    names = dict(zip(group_links["domain"], group_links["group_name"], strict=True))
    new_accounts = pd.DataFrame({
        "account_id": new["account_id"], "domain": new["account_id"],
        "name": new["account_id"].map(names), "source": new["source"],
    })

    persons = _persons(ids, person_emails, matches, inp.persons, inp.titles)
    account_of_person = dict(zip(matches["person_id"], matches["account_id"], strict=True))
    source_of_person = dict(zip(matches["person_id"], matches["source"], strict=True))

    ranges = inp.ip_ranges
    index = RangeIndex.build(ranges["start_ip"].to_numpy(), ranges["end_ip"].to_numpy(),
                             np.arange(len(ranges)))
    range_accounts = ranges["account_id"].to_numpy(dtype=object)
    accounts_by_name = {normalise_name(n): a for a, n in
                        zip(inp.accounts["account_id"], inp.accounts["name"], strict=True)
                        if isinstance(n, str) and n.strip()}
    table = asn_table.load() if settings.identity.use_asn else None
    frozen = inp.ip_matches.drop_duplicates("message_id").set_index("message_id")

    def resolve_account(t: pd.DataFrame) -> pd.DataFrame:
        person = ("anon:" + t["anonymous_id"].fillna("")).map(by_identifier)
        person = person.fillna(("user:" + t["user_id"].fillna("")).map(by_identifier))
        person = person.astype(object)
        account = person.map(account_of_person).astype(object)
        source = person.map(source_of_person).astype(object)
        detail = pd.Series(None, index=t.index, dtype=object)
        # an address the IP policy truncated or dropped: what it matched while whole
        held = account.isna() & t["message_id"].isin(frozen.index)
        if held.any():
            mids = t.loc[held, "message_id"]
            account[held] = mids.map(frozen["account_id"])
            source[held] = mids.map(frozen["source"]).where(account[held].notna())
            detail[held] = mids.map(frozen["detail"]).fillna("no ip")
        need = account.isna() & ~held
        unique_ips = pd.Series(t.loc[need, "ip"].dropna().unique())
        ip_res = ip_accounts(unique_ips, index, range_accounts, table, accounts_by_name)
        ip_res.index = unique_ips
        account[need] = t.loc[need, "ip"].map(ip_res["account_id"])
        source[need] = t.loc[need, "ip"].map(ip_res["source"])
        detail[need] = t.loc[need, "ip"].map(ip_res["detail"]).fillna("no ip")
        conf = source.map(CONFIDENCE).fillna(0.0)
        source = source.where(account.notna(), "unresolved: " + detail.fillna("unknown"))
        return pd.DataFrame({"person_id": person, "account_id": account,
                             "match_source": source, "confidence": conf})

    touches = build_touches(ev.drop(columns=["person_id"], errors="ignore"),
                            rules=_channel_rules(settings),
                            topic_rules=[(k, re.compile(v)) for k, v in
                                         settings.enrich.topics.items()],
                            resolve_account=resolve_account)
    account_matches = pd.DataFrame({
        "subject_kind": "person", "subject": matches["person_id"],
        "account_id": matches["account_id"], "source": matches["source"],
        "confidence": matches["confidence"], "detail": None,
    })
    ip_frozen = ip_kept = None
    policy = settings.collect.ip
    if policy != "full":
        ip_frozen, ip_kept = _freeze_ips(ev, frozen, policy, lambda ips: ip_accounts(
            ips, index, range_accounts, table, accounts_by_name))
        kept = dict(zip(ip_kept["ip"], ip_kept["kept"], strict=True))
        touches["ip"] = touches["ip"].map(lambda ip: kept.get(ip, ip), na_action="ignore")
    write_outputs(store, edges=edges, ids=ids, persons=persons, new_accounts=new_accounts,
                  matches=account_matches, touches=touches, ip_frozen=ip_frozen,
                  ip_kept=ip_kept)
    unresolved = touches.loc[touches["account_id"].isna(), "match_source"].value_counts()
    return ResolveResult(
        persons=persons["person_id"].nunique(),
        identified_devices=int((ids["kind"] == "anon").sum()),
        accounts_created=len(new_accounts), touches=len(touches),
        touches_with_account=int(touches["account_id"].notna().sum()),
        unresolved={str(k): int(v) for k, v in unresolved.items()},
        seconds=time.perf_counter() - started,
    )


def _freeze_ips(ev: pd.DataFrame, frozen: pd.DataFrame, policy: str,
                lookup: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The IP policy (``collect.ip`` truncate or drop), applied once an address has been
    resolved: what each new event's whole address matched (kept in ``ip_matches``, so later
    runs still attribute the visit), and the address each one keeps."""
    new = ev[ev["ip"].notna() & ~ev["message_id"].isin(frozen.index)]
    ips = pd.Series(new["ip"].unique(), dtype=object)
    res = lookup(ips)
    res.index = ips
    matched = pd.DataFrame({
        "message_id": new["message_id"].to_numpy(),
        "account_id": new["ip"].map(res["account_id"]).to_numpy(),
        "source": new["ip"].map(res["source"]).to_numpy(),
        "confidence": new["ip"].map(res["source"]).map(CONFIDENCE).fillna(0.0).to_numpy(),
        "detail": new["ip"].map(res["detail"]).to_numpy()})
    kept = pd.DataFrame({"ip": ips, "kept": [anonymise_ip(str(ip), policy) for ip in ips]})
    return matched, kept


def _persons(ids: pd.DataFrame, person_emails: pd.DataFrame, matches: pd.DataFrame,
             crm: pd.DataFrame, titles: pd.DataFrame) -> pd.DataFrame:
    """One row per person: emails, account, title and persona."""
    emails = person_emails.groupby("person_id")["email"].agg(lambda s: sorted(set(s)))
    people = pd.DataFrame({"person_id": ids["person_id"].unique()})
    people["emails"] = people["person_id"].map(emails)
    people["email"] = people["emails"].map(lambda e: e[0] if isinstance(e, list) else None)
    people = people.merge(matches[["person_id", "account_id"]], on="person_id", how="left")
    # title: the CRM's, else the latest identify traits of any of the person's user ids
    crm_titles = dict(zip(crm["person_id"], crm["title"], strict=True))
    user_person = ids[ids["kind"] == "user"].assign(
        user_id=lambda d: d["identifier"].str.removeprefix("user:"))
    t = titles.merge(user_person[["user_id", "person_id"]], on="user_id")
    web_titles = t.sort_values("timestamp").groupby("person_id")["title"].last()
    people["title"] = people["person_id"].map(crm_titles).astype(object)
    people["title"] = people["title"].fillna(people["person_id"].map(web_titles).astype(object))
    persona = people["title"].map(classify_title)
    people["seniority"] = persona.map(lambda p: p[0])
    people["job_function"] = persona.map(lambda p: p[1])
    return people

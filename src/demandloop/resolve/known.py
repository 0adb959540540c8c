"""Known people: events tied to an account through an identified person.

A visitor becomes known when an ``identify`` call links their anonymous id to a user id with
an email address; from then on *all* their events, earlier anonymous ones included, belong to
that person. The person belongs to the account whose domain their business email carries, or
to the account their CRM contact record names.

This is the direct-link resolution the spine needs to rank accounts; the full identity graph
(transitive merges, aliases) and IP-based resolution of anonymous visitors live in
:mod:`demandloop.resolve.identity` and :mod:`demandloop.resolve.accounts` once built.
"""

from __future__ import annotations

from typing import Any

import ibis


def person_accounts(events: Any, persons: Any, accounts: Any) -> Any:
    """Table ``(user_id, email, account_id)``: each identified user's latest email and account.

    Email domain matches a stored account's domain; a CRM contact with that email wins.
    """
    identified = events.filter(
        (events.type == "identify") & events.user_id.notnull() & events.traits.notnull()
    ).mutate(email=events.traits["email"].str.lower().strip())
    identified = identified.filter(identified.email.notnull() & identified.email.contains("@"))
    latest = identified.mutate(
        rank=ibis.row_number().over(group_by=identified.user_id,
                                    order_by=ibis.desc(identified.timestamp))
    )
    users = latest.filter(latest.rank == 0).select("user_id", "email")
    users = users.mutate(domain=users.email.split("@")[1])
    by_domain = accounts.filter(accounts.domain.notnull()).select(
        d_domain=accounts.domain, d_account=accounts.account_id)
    crm = persons.filter(persons.email.notnull() & persons.account_id.notnull()).select(
        c_email=persons.email, c_account=persons.account_id)
    joined = users.left_join(by_domain, users.domain == by_domain.d_domain).left_join(
        crm, users.email == crm.c_email)
    return joined.select(
        "user_id", "email", account_id=ibis.coalesce(joined.c_account, joined.d_account))


def known_events(events: Any, persons: Any, accounts: Any) -> Any:
    """Events of identified people with their ``account_id`` (earlier anonymous ones too)."""
    links = events.filter(events.user_id.notnull() & events.anonymous_id.notnull()).select(
        l_anon=events.anonymous_id, l_user=events.user_id).distinct()
    # an anonymous id seen with several users (a shared browser) is ambiguous: drop it
    counts = links.group_by("l_anon").agg(n=links.l_user.count())
    links = links.join(counts.filter(counts.n == 1).select("l_anon"), "l_anon")
    people = person_accounts(events, persons, accounts)
    e = events.left_join(links, events.anonymous_id == links.l_anon)
    e = e.mutate(resolved_user=ibis.coalesce(e.user_id, e.l_user))
    out = e.join(people, e.resolved_user == people.user_id)
    return out.filter(out.account_id.notnull()).select(
        "message_id", "type", "event", "path", "timestamp", "account_id",
        user=out.resolved_user)

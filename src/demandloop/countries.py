"""Countries as ISO 3166-1 alpha-2 codes: the form fit (``score.fit.countries``), the
``country`` filters and conditions, send times and ad platforms read. Hand-written around
pycountry (which reads codes, alpha-3 codes and ISO names) for the few names CRMs and people
write that ISO does not (``UK``, ``Holland``, ``Deutschland``)."""

from __future__ import annotations

#: what CRMs and people write for a country that ISO 3166 does not name (pycountry reads
#: the codes, alpha-3 codes and the ISO names: "United States", "USA", "Germany")
_COUNTRY_ALIASES = {
    "uk": "GB", "u.k.": "GB", "great britain": "GB", "britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "northern ireland": "GB", "u.s.": "US", "u.s.a.": "US",
    "america": "US", "korea": "KR", "republic of korea": "KR", "holland": "NL",
    "russia": "RU", "turkey": "TR", "uae": "AE", "ivory coast": "CI", "czechia": "CZ",
    "deutschland": "DE", "brasil": "BR", "españa": "ES", "espana": "ES", "méxico": "MX",
    "italia": "IT", "schweiz": "CH", "suisse": "CH", "österreich": "AT", "polska": "PL",
    "nederland": "NL", "sverige": "SE", "norge": "NO", "danmark": "DK", "suomi": "FI",
    "belgique": "BE", "belgië": "BE", "éire": "IE", "laos": "LA", "macau": "MO",
    "vatican": "VA", "kosovo": "XK",
}


def as_country(value: str) -> str | None:
    """A country as the ISO 3166-1 alpha-2 code fit, filters, send times and ad platforms
    read (``US``): HubSpot's and Salesforce's exports write names ("United States",
    "Germany"), which matched no fit criterion (``countries = {US = 15, ...}``), no
    ``--country US`` filter, and sent mail at 09:00 UTC to people in New York (their zone
    is their country's). Names, alpha-3 codes and common aliases (``UK``, ``Holland``) are
    read with pycountry; a value it does not know is kept as written."""
    text = " ".join(value.split())
    if not text:
        return None
    key = text.lower().removeprefix("the ")
    if key in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[key]
    import pycountry  # (its data loads on the first lookup; most commands never need it)

    try:
        return str(pycountry.countries.lookup(key).alpha_2)
    except LookupError:
        return text

"""Deliverability checks: is a sending domain's SPF, DKIM and DMARC set up, and what to fix.

Pure: the checks read DNS through a ``txt(name) -> list[str]`` function the caller supplies
(:mod:`demandloop.outbound.dns` in the CLI, a test's own DNS server in tests), so every rule is
testable. What is checked, after RFC 7208 (SPF), RFC 6376 (DKIM) and RFC 7489 (DMARC):

* SPF: exactly one ``v=spf1`` record; an ``all`` that fails strangers (``-all``, or ``~all``
  with a note; ``+all``/``?all`` let anyone send); at most 10 DNS-querying terms across the
  whole include tree (more is a permanent error at every receiver);
* DKIM: a key at one of the selectors (``v=DKIM1``, a non-empty ``p=``; an RSA key of at
  least 1024 bits, 2048 recommended);
* DMARC: a ``v=DMARC1`` record at ``_dmarc.<domain>`` with a policy; ``p=none`` only
  monitors; reports (``rua``) should be collected.

Example:
    >>> zone = {"acme.com": ["v=spf1 include:_spf.mail.io -all"],
    ...         "_spf.mail.io": ["v=spf1 ip4:192.0.2.0/24 -all"]}
    >>> [f.status for f in check_spf("acme.com", lambda n: zone.get(n, []))]
    ['ok']
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

Txt = Callable[[str], list[str]]
DEFAULT_SELECTORS = ("default", "dkim", "mail", "google", "selector1", "selector2", "k1", "s1")
_LOOKUP_TERMS = ("include:", "a", "mx", "ptr", "exists:", "redirect=")


@dataclass
class Finding:
    check: str
    status: str  # ok, warn, fail
    message: str
    record: str = ""


def _spf_records(name: str, txt: Txt) -> list[str]:
    return [r for r in txt(name) if r.lower().startswith("v=spf1")]


def _lookups(record: str, txt: Txt, seen: set[str], depth: int = 0) -> int:
    """DNS-querying terms in *record* and, recursively, in what it includes."""
    count = 0
    for term in record.split()[1:]:
        t = term.lstrip("+-~?").lower()
        if t in ("a", "mx", "ptr") or t.startswith(("a:", "a/", "mx:", "mx/", "ptr:")) \
                or t.startswith(("include:", "exists:", "redirect=")):
            count += 1
        target = t.split(":", 1)[1] if t.startswith("include:") else (
            t.split("=", 1)[1] if t.startswith("redirect=") else None)
        if target and target not in seen and depth < 10:
            seen.add(target)
            inner = _spf_records(target, txt)
            if inner:
                count += _lookups(inner[0], txt, seen, depth + 1)
    return count


def check_spf(domain: str, txt: Txt) -> list[Finding]:
    records = _spf_records(domain, txt)
    if not records:
        return [Finding("SPF", "fail", f"no SPF record: publish one TXT record at {domain}, "
                        "e.g. 'v=spf1 include:<your mail provider> -all'")]
    if len(records) > 1:
        return [Finding("SPF", "fail", f"{len(records)} SPF records: receivers treat that as "
                        "an error; merge them into one", " | ".join(records))]
    record = records[0]
    out: list[Finding] = []
    terms = [t.lower() for t in record.split()[1:]]
    alls = [t for t in terms if t.lstrip("+-~?") == "all"]
    if not alls:
        out.append(Finding("SPF", "warn", "no 'all' at the end: add '-all' (or '~all' while "
                           "you find every sender) so strangers fail", record))
    elif alls[-1] in ("+all", "all"):
        out.append(Finding("SPF", "fail", "'+all' lets anyone send as you: use '-all'", record))
    elif alls[-1] == "?all":
        out.append(Finding("SPF", "warn", "'?all' is neutral: strangers are not failed; use "
                           "'-all'", record))
    lookups = _lookups(record, txt, {domain})
    if lookups > 10:
        out.append(Finding("SPF", "fail", f"{lookups} DNS lookups across the includes, over "
                           "the limit of 10: flatten includes or drop unused senders", record))
    if not out:
        note = " ('~all' soft-fails strangers; '-all' is stricter)" if alls[-1] == "~all" else ""
        out.append(Finding("SPF", "ok", f"one record, {lookups} DNS lookups{note}", record))
    return out


def _rsa_bits(p: str) -> int | None:
    try:
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        key = load_der_public_key(base64.b64decode(p))
    except (ValueError, TypeError, ImportError):
        return None
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else None


def check_dkim(domain: str, txt: Txt, selectors: tuple[str, ...] = DEFAULT_SELECTORS
               ) -> list[Finding]:
    out = []
    for sel in selectors:
        name = f"{sel}._domainkey.{domain}"
        records = [r for r in txt(name) if "p=" in r]
        if not records:
            continue
        tags = dict(kv.strip().split("=", 1) for kv in records[0].split(";") if "=" in kv)
        p = tags.get("p", "").replace(" ", "")
        if not p:
            out.append(Finding("DKIM", "fail", f"the key at {name} is revoked (empty p=): "
                               "publish the public key of your signing key", records[0]))
            continue
        bits = _rsa_bits(p) if tags.get("k", "rsa").strip() == "rsa" else None
        if bits is not None and bits < 1024:
            out.append(Finding("DKIM", "fail", f"{name}: a {bits}-bit key; receivers ignore "
                               "keys under 1024 bits: publish a 2048-bit key", records[0][:80]))
        elif bits is not None and bits < 2048:
            out.append(Finding("DKIM", "warn", f"{name}: a {bits}-bit key; 2048 bits is "
                               "recommended", records[0][:80]))
        else:
            size = f"{bits}-bit " if bits else ""
            out.append(Finding("DKIM", "ok", f"{size}key at {name}", records[0][:80]))
    if not out:
        return [Finding("DKIM", "fail", f"no DKIM key at {', '.join(selectors)}: publish your "
                        f"signing key as TXT at <selector>._domainkey.{domain} (or pass the "
                        "selector you use)")]
    return out


def check_dmarc(domain: str, txt: Txt) -> list[Finding]:
    records = [r for r in txt(f"_dmarc.{domain}") if r.upper().startswith("V=DMARC1")]
    if not records:
        return [Finding("DMARC", "fail", f"no DMARC record: publish TXT at _dmarc.{domain}, "
                        f"e.g. 'v=DMARC1; p=none; rua=mailto:dmarc@{domain}', then tighten")]
    tags = {k.strip().lower(): v.strip() for k, v in
            (kv.split("=", 1) for kv in records[0].split(";") if "=" in kv)}
    out = []
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        out.append(Finding("DMARC", "fail", "no valid policy (p=none|quarantine|reject)",
                           records[0]))
    elif policy == "none":
        out.append(Finding("DMARC", "warn", "p=none only monitors: move to p=quarantine, then "
                           "p=reject, once the reports show only your own senders", records[0]))
    if "rua" not in tags:
        out.append(Finding("DMARC", "warn", "no rua=: add rua=mailto:... to receive the "
                           "aggregate reports that show who sends as you", records[0]))
    if tags.get("pct", "100") != "100":
        out.append(Finding("DMARC", "warn", f"pct={tags['pct']}: the policy applies to only "
                           "part of your mail", records[0]))
    if not out:
        out.append(Finding("DMARC", "ok", f"policy {policy}, reports collected", records[0]))
    return out


def check(domain: str, txt: Txt, selectors: tuple[str, ...] = DEFAULT_SELECTORS
          ) -> list[Finding]:
    """Every SPF, DKIM and DMARC finding for *domain*. A domain that does not exist says so
    (one finding), rather than "no record" three times; a missing sub-name
    (``_dmarc.``, a DKIM selector) is just no record."""
    d = domain.strip().lower().rstrip(".")
    try:
        txt(d)
    except LookupError:
        return [Finding("DNS", "fail", f"{d} does not exist in DNS (NXDOMAIN): check the "
                        "spelling, or the domain's registration and name servers")]

    def lookup(name: str) -> list[str]:
        try:
            return txt(name)
        except LookupError:
            return []

    return [*check_spf(d, lookup), *check_dkim(d, lookup, selectors),
            *check_dmarc(d, lookup)]

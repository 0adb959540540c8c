"""`demandloop mail check` against a real DNS server (dnslib) on loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from tests.collector_helpers import free_port


def _key(bits: int) -> str:
    k = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    der = k.public_bytes(serialization.Encoding.DER,
                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def _chunks(text: str) -> list[bytes]:
    return [text[i:i + 255].encode() for i in range(0, len(text), 255)]


ZONE: dict[str, list[str]] = {
    "good.test": ["v=spf1 include:_spf.provider.test -all", "google-site-verification=x"],
    "_spf.provider.test": ["v=spf1 ip4:192.0.2.0/24 include:_spf2.provider.test ~all"],
    "_spf2.provider.test": ["v=spf1 ip4:198.51.100.0/24 -all"],
    "_dmarc.good.test": ["v=DMARC1; p=reject; rua=mailto:dmarc@good.test"],
    "bad.test": ["v=spf1 +all", "v=spf1 include:x.test -all"],
    "sel1._domainkey.bad.test": ["v=DKIM1; k=rsa; p="],
    "_dmarc.bad.test": ["v=DMARC1; p=none"],
    "deep.test": ["v=spf1 " + " ".join(f"include:n{i}.test" for i in range(6)) + " -all"],
    **{f"n{i}.test": ["v=spf1 a mx -all"] for i in range(6)},
}


class Zone(BaseResolver):  # type: ignore[misc]
    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if not any(name == k or name.endswith("." + k) for k in ZONE):
            reply.header.rcode = RCODE.NXDOMAIN  # a name that does not exist at all
            return reply
        if request.q.qtype == QTYPE.TXT:
            for text in ZONE.get(name, []):
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(_chunks(text)), ttl=60))
        return reply


@pytest.fixture(scope="module")
def nameserver() -> Iterator[str]:
    ZONE["s2048._domainkey.good.test"] = [f"v=DKIM1; k=rsa; p={_key(2048)}"]
    ZONE["s1024._domainkey.good.test"] = [f"v=DKIM1; k=rsa; p={_key(1024)}"]
    port = free_port()
    quiet = DNSLogger("-recv,-send,-request,-reply,-truncated,-error,-data")
    server = DNSServer(Zone(), port=port, address="127.0.0.1", logger=quiet)
    server.start_thread()
    yield f"127.0.0.1:{port}"
    server.stop()


def test_a_well_configured_domain_passes(cli, nameserver: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("mail", "check", "good.test", "--nameserver", nameserver,
                       "--selector", "s2048", "--json")
    got = {(f["check"], f["status"]): f["message"] for f in json.loads(out)}
    assert code == 0
    assert set(got) == {("SPF", "ok"), ("DKIM", "ok"), ("DMARC", "ok")}
    assert "2 DNS lookups" in got[("SPF", "ok")]  # include -> include, across the tree
    assert got[("DKIM", "ok")].startswith("2048-bit key")


def test_each_problem_says_what_to_fix(cli, nameserver: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("mail", "check", "bad.test", "--nameserver", nameserver,
                       "--selector", "sel1", "--json")
    findings = json.loads(out)
    assert code == 1
    messages = " | ".join(f["message"] for f in findings)
    assert "2 SPF records" in messages and "merge them into one" in messages
    assert "revoked (empty p=)" in messages
    assert "p=none only monitors" in messages and "no rua=" in messages
    code, out, _ = cli("mail", "check", "deep.test", "--nameserver", nameserver, "--json")
    spf = [f for f in json.loads(out) if f["check"] == "SPF"]
    assert spf[0]["status"] == "fail" and "18 DNS lookups" in spf[0]["message"]
    dkim = [f for f in json.loads(out) if f["check"] == "DKIM"]
    assert dkim[0]["status"] == "fail" and "no DKIM key at default" in dkim[0]["message"]
    code, out, _ = cli("mail", "check", "good.test", "--nameserver", nameserver,
                       "--selector", "s1024", "--json")
    dkim = [f for f in json.loads(out) if f["check"] == "DKIM"]
    assert dkim[0]["status"] == "warn" and "1024-bit key" in dkim[0]["message"]


def test_a_domain_that_does_not_exist_says_so(cli, nameserver: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("mail", "check", "nosuch.test", "--nameserver", nameserver, "--json")
    findings = json.loads(out)
    assert code == 1 and len(findings) == 1
    assert findings[0]["check"] == "DNS" and "does not exist" in findings[0]["message"]


def test_what_is_not_a_domain_is_refused_and_a_url_names_its_domain(
        cli, nameserver: str) -> None:  # type: ignore[no-untyped-def]
    # "not a domain!" was asked of DNS, and came back as "does not exist in DNS"
    for given in ("not a domain!", "localhost", ""):
        code, _, err = cli("mail", "check", given, "--nameserver", nameserver)
        assert code == 2 and "is not a domain" in err, (given, err)
    code, out, _ = cli("mail", "check", "https://www.good.test/pricing", "--nameserver",
                       nameserver, "--selector", "s2048", "--json")
    assert code == 0 and {f["status"] for f in json.loads(out)} == {"ok"}

"""DNS TXT lookups for ``demandloop mail check`` (dnspython)."""

from __future__ import annotations

from collections.abc import Callable

import dns.exception
import dns.resolver

from demandloop.errors import UsageError


class NoSuchName(LookupError):
    """The name does not exist in DNS at all (NXDOMAIN), as opposed to having no TXT."""


def txt_lookup(nameserver: str | None = None, timeout: float = 5.0
               ) -> Callable[[str], list[str]]:
    """A ``txt(name)`` function: the TXT strings of *name* ([] when it has none).
    *nameserver*: ``IP`` or ``IP:PORT`` to ask instead of the system's resolver."""
    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver:
        host, _, port = nameserver.partition(":")
        resolver.nameservers = [host]
        if port:
            resolver.port = int(port)
    resolver.lifetime = timeout

    def txt(name: str) -> list[str]:
        try:
            answer = resolver.resolve(name, "TXT")
        except dns.resolver.NXDOMAIN:
            raise NoSuchName(name) from None
        except dns.resolver.NoAnswer:
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
            raise UsageError(f"cannot look up {name}: {exc}",
                             hint="check the network or pass --nameserver") from None
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

    return txt

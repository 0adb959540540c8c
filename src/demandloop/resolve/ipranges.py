"""IP ranges: parsing user range files and vectorised range lookups.

Addresses become one integer key each so IPv4 and IPv6 share one sorted index: an IPv4
address is its 32-bit value; an IPv6 address is its upper 64 bits (networks are routed and
assigned in /64 or larger blocks, so the upper half identifies the network). IPv4-mapped
IPv6 addresses (``::ffff:a.b.c.d``) count as IPv4. Global unicast IPv6 (``2000::/3``) keys are
far above every IPv4 key, so the two never collide.

Lookups are ``numpy.searchsorted`` over sorted, non-overlapping ranges: millions per second.
"""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from demandloop.collect.crm import parse_timestamp
from demandloop.domains import canonical_domain
from demandloop.errors import InputError

_V6_LIMIT = 1 << 63  # keys must fit a signed 64-bit column


def ip_key(text: str) -> int | None:
    """Integer key of an address (see module docstring); None when it is not an address."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return int(addr.ipv4_mapped)
        key = int(addr) >> 64
        return key if key < _V6_LIMIT else None
    return int(addr)


def ip_keys(ips: pd.Series) -> np.ndarray:
    """Keys for a column of address strings (-1 where missing or not an address).

    IPv4 dotted quads, the bulk of real traffic, are converted with Arrow compute kernels
    (about 2M/s); anything else goes through :func:`ip_key`.
    """
    s = ips.fillna("").astype(str)
    arr = pa.array(s.to_numpy(dtype=object), pa.string())
    v4 = pc.match_substring_regex(arr, r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
    v4_np = v4.to_numpy(zero_copy_only=False)
    keys = np.full(len(s), -1, dtype=np.int64)
    if v4_np.any():
        parts = pc.list_flatten(pc.split_pattern(arr.filter(v4), "."))
        octets = pc.cast(parts, pa.int64()).to_numpy().reshape(-1, 4)
        ok = (octets <= 255).all(axis=1)
        vals = (octets[:, 0] << 24) | (octets[:, 1] << 16) | (octets[:, 2] << 8) | octets[:, 3]
        idx = np.flatnonzero(v4_np)
        keys[idx[ok]] = vals[ok]
    other = np.flatnonzero(~v4_np & (s != "").to_numpy())
    for i in other:
        k = ip_key(str(s.iat[int(i)]))
        if k is not None:
            keys[i] = k
    return keys


def range_keys(spec: str) -> tuple[int, int]:
    """``10.0.0.0/24`` or ``2001:db8::/48`` -> (first key, last key); ValueError if malformed."""
    net = ipaddress.ip_network(spec.strip(), strict=True)
    if isinstance(net, ipaddress.IPv6Network):
        first, last = int(net.network_address) >> 64, int(net.broadcast_address) >> 64
        if last >= _V6_LIMIT:
            raise ValueError(f"'{spec}' is outside global unicast IPv6 space")
        return first, last
    return int(net.network_address), int(net.broadcast_address)


@dataclass
class RangeIndex:
    """Sorted, non-overlapping ranges ``[start, end]`` with one value index each."""

    starts: np.ndarray
    ends: np.ndarray
    values: np.ndarray

    @classmethod
    def build(cls, starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> RangeIndex:
        order = np.argsort(starts, kind="stable")
        return cls(np.asarray(starts)[order].astype(np.int64),
                   np.asarray(ends)[order].astype(np.int64), np.asarray(values)[order])

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Position of the range holding each key, or -1.

        Example:
            >>> idx = RangeIndex.build(np.array([10, 20]), np.array([15, 30]), np.array([0, 1]))
            >>> idx.lookup(np.array([9, 10, 16, 25])).tolist()
            [-1, 0, -1, 1]
        """
        keys = np.asarray(keys, dtype=np.int64)
        pos = np.searchsorted(self.starts, keys, side="right") - 1
        hit = (pos >= 0) & (keys >= 0)
        pos_safe = np.where(hit, pos, 0)
        hit &= keys <= self.ends[pos_safe] if len(self.ends) else False
        return np.where(hit, pos, -1)


@dataclass
class UserRange:
    start: int
    end: int
    domain: str | None
    organisation: str | None
    line: int
    known_since: dt.datetime | None = None


#: headers of the optional column saying since when a range was known (for backtests)
KNOWN_SINCE = ("known_since", "since", "valid_from", "added", "created_date")


def read_ip_ranges(path: Path) -> list[UserRange]:
    """Read a user IP-range file: ``cidr`` or ``start,end`` columns plus ``domain`` and/or
    ``organisation``, and optionally ``known_since`` (a date: since when the range was known;
    a point-in-time score before it does not use the range; without it, the import time).
    Malformed blocks and overlapping ranges are errors naming the line."""
    if not path.is_file():
        raise InputError(f"{path}: no such file", hint="check the path")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        has_cidr, has_pair = "cidr" in cols, "start" in cols and "end" in cols
        if not (has_cidr or has_pair) or not ({"domain", "organisation", "organization"}
                                              & cols.keys()):
            raise InputError(
                f"{path}: needs a 'cidr' column (or 'start' and 'end') and a 'domain' or "
                f"'organisation' column; found {', '.join(reader.fieldnames or []) or 'none'}",
                hint="e.g. header: cidr,domain,organisation",
            )
        org_col = cols.get("organisation") or cols.get("organization")
        since_col = next((cols[c] for c in KNOWN_SINCE if c in cols), None)
        ranges, problems = [], []
        for row in reader:
            line = reader.line_num
            try:
                if has_cidr and (row[cols["cidr"]] or "").strip():
                    start, end = range_keys(row[cols["cidr"]])
                else:
                    s, e = ip_key(row[cols["start"]] or ""), ip_key(row[cols["end"]] or "")
                    if s is None or e is None or s > e:
                        raise ValueError(f"'{row[cols['start']]}-{row[cols['end']]}' is not a "
                                         "valid start-end range")
                    start, end = s, e
            except (ValueError, KeyError) as exc:
                msg = str(exc) if "valid" in str(exc) or "outside" in str(exc) else (
                    f"'{row.get(cols.get('cidr', ''), '')}' is not a CIDR block")
                problems.append(f"{path}:{line}: {msg}")
                continue
            raw_domain = (row.get(cols["domain"]) or "") if "domain" in cols else ""
            domain = canonical_domain(raw_domain) if raw_domain.strip() else None
            if raw_domain.strip() and domain is None:
                problems.append(f"{path}:{line}: '{raw_domain}' is not a domain")
                continue
            org = (row.get(org_col) or "").strip() or None if org_col else None
            if not domain and not org:
                problems.append(f"{path}:{line}: needs a domain or an organisation")
                continue
            try:
                since = parse_timestamp(row.get(since_col) or "") if since_col else None
            except ValueError as exc:
                problems.append(f"{path}:{line}: {since_col}: {exc}")
                continue
            ranges.append(UserRange(start, end, domain, org, line, since))
    ordered = sorted(ranges, key=lambda r: r.start)
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        if cur.start <= prev.end:
            problems.append(f"{path}:{cur.line}: range overlaps line {prev.line}")
    if problems:
        raise InputError(f"{path}: {len(problems)} problem(s); nothing was imported",
                         hint="fix the lines listed above", problems=problems[:20])
    return ranges


def anonymise_ip(ip: str, policy: str) -> str | None:
    """*ip* as ``collect.ip`` keeps it: ``full`` as is, ``truncate`` to its /24 (IPv4) or
    /48 (IPv6) network address, ``drop`` (or anything unparseable) as None.

    >>> anonymise_ip("203.0.113.77", "truncate"), anonymise_ip("2001:db8:1:2::9", "truncate")
    ('203.0.113.0', '2001:db8:1::')
    """
    if policy == "full":
        return ip
    if policy == "drop":
        return None
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)

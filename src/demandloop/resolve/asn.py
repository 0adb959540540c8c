"""The open IP-to-organisation table, built from the npm package ``@ip-location-db/asn``.

Data: RouteViews, DB-IP and NRO via ip-location-db, licensed CC BY 4.0 (attribution in the
README). ``demandloop data build-asn PATH`` converts the package's ``asn-ipv4-num.csv`` and
``asn-ipv6-num.csv`` (from ``npm pack @ip-location-db/asn``, as a .tgz or an unpacked folder)
into ``demandloop/data/asn.npz``: adjacent ranges of one organisation merged, organisations
stored once, each classified as ``isp``, ``mobile``, ``hosting``, ``education``,
``government`` or ``business``. Lookups never touch the network.

ISP, mobile-carrier and hosting networks carry most real traffic and say nothing about which
company a visitor works for, so they never become accounts.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from demandloop.errors import InputError
from demandloop.resolve.ipranges import RangeIndex

DATA_FILE = "asn.npz"
KINDS = ("business", "isp", "mobile", "hosting", "education", "government")

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("mobile", re.compile(
        r"\b(mobile|mobil|wireless|cellular|t-mobile|vodafone|telcel|movistar|airtel|jio|"
        r"tim celular|vivo|claro|mtn|safaricom|orange polska|verizon wireless|at&t mobility|"
        r"sprint|o2 |ee limited|three|hutchison|smartone|globe telecom|smart communications|"
        r"telkomsel|indosat|viettel|turkcell|beeline|megafon|mts pjsc|tele2)\b", re.I)),
    ("hosting", re.compile(
        r"\b(hosting|host|hostroyale|cloud|clouds|data ?cent(er|re)|datacamp|server|servers|vps|"
        r"colo|colocation|amazon|aws|google|microsoft|azure|akamai|cloudflare|fastly|"
        r"digitalocean|digital ocean|ovh|hetzner|linode|vultr|choopa|leaseweb|m247|contabo|"
        r"scaleway|oracle|alibaba|aliyun|tencent|rackspace|equinix|ionos|godaddy|"
        r"colocrossing|psychz|quadranet|zscaler|netskope|vpn|proxy|cdn|edgecast|limelight|"
        r"stackpath|ibm cloud|softlayer|hurricane electric|cogent|level 3|lumen|gtt|"
        r"zayo|ntt america|telia carrier|he\.net)\b", re.I)),
    ("education", re.compile(
        r"\b(universit\w*|college|school|academy|academic|institute of technology|"
        r"research and education|edu(net|cation)?|janet|renater|dfn|surfnet|internet2)\b",
        re.I)),
    ("government", re.compile(
        r"\b(government|ministry|ministerio|department of|dod|federal|state of|county of|"
        r"city of|municipal|parliament|bundes\w*|gouvernement|navy|army|air force)\b", re.I)),
    ("isp", re.compile(
        r"\b(telecom\w*|telekom\w*|telecommunications?|communications?|broadband|cable|"
        r"internet|isp|net(work)?s?|telefonica|telefonica|comcast|charter|spectrum|cox|"
        r"frontier|centurylink|windstream|verizon|at&t|bt|sky|virgin media|telstra|optus|"
        r"rogers|bell|shaw|telus|kpn|ziggo|proximus|swisscom|telia|telenor|iliad|free sas|"
        r"bouygues|sfr|orange|chinanet|china unicom|china mobile|rostelecom|kddi|softbank|"
        r"ntt|sk broadband|lg dacom|korea telecom|bharti|reliance|tata|pldt|telmex|"
        r"liberty global|altice|ono|fastweb|wind|iinet|tpg|spark new zealand|starlink|"
        r"viasat|hughes|telecable|kabel|fibre|fiber|dsl|online s\.a\.s|provider)\b", re.I)),
]


def classify_org(name: str) -> str:
    """``isp``, ``mobile``, ``hosting``, ``education``, ``government`` or ``business``.

    Example:
        >>> classify_org("Comcast Cable Communications, LLC"), classify_org("Acme Corp")
        ('isp', 'business')
    """
    for kind, pattern in _PATTERNS:
        if pattern.search(name):
            return kind
    return "business"


def _read_csv(data: bytes, v6: bool) -> pd.DataFrame:
    df = pd.read_csv(io.BytesIO(data), header=None, names=["start", "end", "asn", "org"],
                     dtype={"start": "str", "end": "str", "asn": "Int64", "org": "str"},
                     keep_default_na=False)
    if v6:
        # keep the upper 64 bits (see demandloop.resolve.ipranges); drop non-unicast space
        start = df["start"].map(lambda x: int(x) >> 64)
        end = df["end"].map(lambda x: int(x) >> 64)
        keep = end < (1 << 63)
        df = df[keep].assign(start=start[keep], end=end[keep])
    df["start"] = df["start"].astype(np.int64)
    df["end"] = df["end"].astype(np.int64)
    return df


def build(source: Path, target: Path) -> dict[str, int]:
    """Convert the npm package (a .tgz or an unpacked folder) into *target* (.npz)."""
    files: dict[str, bytes] = {}
    wanted = ("asn-ipv4-num.csv", "asn-ipv6-num.csv")
    if source.is_dir():
        for name in wanted:
            p = source / name if (source / name).exists() else source / "package" / name
            if p.exists():
                files[name] = p.read_bytes()
    elif source.is_file():
        try:
            with tarfile.open(source) as tar:
                for m in tar.getmembers():
                    if m.name.rsplit("/", 1)[-1] in wanted:
                        f = tar.extractfile(m)
                        if f:
                            files[m.name.rsplit("/", 1)[-1]] = f.read()
        except tarfile.TarError as exc:
            raise InputError(f"{source}: not a .tgz package: {exc}") from exc
    if "asn-ipv4-num.csv" not in files:
        raise InputError(f"{source}: no asn-ipv4-num.csv found",
                         hint="run 'npm pack @ip-location-db/asn' and pass the .tgz")
    frames = [_read_csv(files["asn-ipv4-num.csv"], v6=False)]
    if "asn-ipv6-num.csv" in files:
        frames.append(_read_csv(files["asn-ipv6-num.csv"], v6=True))
    df = pd.concat(frames, ignore_index=True).sort_values("start", kind="stable")
    # merge adjacent ranges of the same organisation: fewer rows, same answers
    new_block = (df["org"] != df["org"].shift()) | (df["start"] > df["end"].shift() + 1)
    block = new_block.cumsum()
    merged = df.groupby(block).agg(start=("start", "first"), end=("end", "max"),
                                   asn=("asn", "first"), org=("org", "first"))
    orgs, org_idx = np.unique(merged["org"].to_numpy(dtype=str), return_inverse=True)
    kinds = np.array([KINDS.index(classify_org(o)) for o in orgs], dtype=np.int8)
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(target, start=merged["start"].to_numpy(np.int64),
                        end=merged["end"].to_numpy(np.int64),
                        asn=merged["asn"].fillna(0).to_numpy(np.uint32),
                        org=org_idx.astype(np.int32), orgs=orgs, kinds=kinds)
    return {"ranges": len(merged), "organisations": len(orgs),
            "source_rows": sum(len(f) for f in frames)}


@dataclass
class AsnTable:
    index: RangeIndex  # values: organisation positions
    asn: np.ndarray
    orgs: np.ndarray
    kinds: np.ndarray

    def organisations(self, keys: np.ndarray) -> np.ndarray:
        """The organisation (a position in ``orgs``) announcing each key, or -1: names and
        kinds are then read once per distinct organisation, not once per address."""
        pos = self.index.lookup(keys)
        hit = pos >= 0
        return np.where(hit, self.index.values[np.where(hit, pos, 0)], -1)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(organisation name or '', kind name or '', asn or 0) for each key."""
        pos = self.index.lookup(keys)
        hit = pos >= 0
        org_pos = np.where(hit, self.index.values[np.where(hit, pos, 0)], 0)
        names = np.where(hit, self.orgs[org_pos], "")
        kinds = np.where(hit, np.array(KINDS, dtype=object)[self.kinds[org_pos]], "")
        asn = np.where(hit, self.asn[np.where(hit, pos, 0)], 0)
        return names, kinds, asn


@lru_cache(maxsize=2)
def load(path: str | None = None) -> AsnTable | None:
    """The shipped table (or one at *path*); None when no table has been built."""
    if path is None:
        ref = resources.files("demandloop") / "data" / DATA_FILE
        if not ref.is_file():
            return None
        raw = ref.read_bytes()
    else:
        raw = Path(path).read_bytes()
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        index = RangeIndex(z["start"], z["end"], z["org"])
        return AsnTable(index, z["asn"], z["orgs"], z["kinds"])

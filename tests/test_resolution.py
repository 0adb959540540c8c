"""Account resolution: IP ranges, the ASN table, personal email, priorities, truth."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from demandloop.domains import personal_domains
from demandloop.errors import InputError
from demandloop.ipaddr import ip_key, ip_keys, range_keys
from demandloop.resolve.asn import classify_org, load
from demandloop.resolve.ipranges import RangeIndex
from tests.conftest import write_jsonl


def test_ip_keys_vectorised_equal_scalar() -> None:
    raw = ["10.0.0.1", "255.255.255.255", "0.0.0.0", "2001:db8::1", "::ffff:1.2.3.4",
           "999.1.1.1", "nonsense", None, "fe80::1"]
    expected = [ip_key(x) if x else None for x in raw]
    assert list(ip_keys(pd.Series(raw))) == [-1 if k is None else k for k in expected]
    assert ip_key("::ffff:1.2.3.4") == ip_key("1.2.3.4")


def test_sql_address_keys_equal_python_and_never_fail_a_run(tmp_path: Path) -> None:
    """Resolve parses dotted quads in DuckDB (``addresses.V4_KEY``). Stored addresses that
    DuckDB keeps dictionary-compressed, an IPv6 one and a dotted quad over 255 among them,
    failed the whole statement ("could not convert '::1' to INT64"): one odd address from
    a client stopped every resolve after it."""
    import duckdb

    from demandloop.resolve.addresses import V4_KEY
    odd = ["1.2.3.256", "::1", "2001:db8::1", "01.2.3.4", "1.2.3", " 1.2.3.4", "1.2.3.4.5",
           "999.1.1.1", "255.255.255.255", "nonsense", "10.0.0.1"]
    con = duckdb.connect(str(tmp_path / "ips.duckdb"))
    con.execute("CREATE TABLE n AS SELECT ($odd)[i % $k + 1] AS ip FROM range(30000) t(i)",
                {"odd": odd, "k": len(odd)})
    con.execute("CHECKPOINT")  # stored as a user's events are: compressed, in a file
    got = dict(con.execute(f"SELECT DISTINCT ip, {V4_KEY} FROM n").fetchall())
    # the SQL keys dotted quads only, each as ip_keys does; resolve sends the rest there
    python = dict(zip(odd, ip_keys(pd.Series(odd)).tolist(), strict=True))
    assert {ip: key for ip, key in got.items() if key is not None} == {
        ip: python[ip] for ip in ("01.2.3.4", "255.255.255.255", "10.0.0.1")}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 50)), max_size=30),
       st.lists(st.integers(-5, 10_100), max_size=60))
def test_range_lookup_matches_brute_force(spans: list[tuple[int, int]], keys: list[int]) -> None:
    # build non-overlapping ranges from arbitrary spans
    ranges, last = [], -1
    for start, length in sorted(spans):
        if start > last:
            ranges.append((start, start + length))
            last = start + length
    idx = RangeIndex.build(np.array([r[0] for r in ranges], dtype=np.int64),
                           np.array([r[1] for r in ranges], dtype=np.int64),
                           np.arange(len(ranges)))
    got = idx.lookup(np.array(keys, dtype=np.int64))
    for k, g in zip(keys, got, strict=True):
        want = next((i for i, (s, e) in enumerate(ranges) if s <= k <= e), -1)
        assert (idx.values[g] if g >= 0 else -1) == want


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_ip_range_file_bad_inputs_name_the_line(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = write(tmp_path / "r.csv", "cidr,domain\n10.0.0.0/24,acme.io\n10.0.1.0/33,beta.io\n"
              "10.0.0.128/25,gamma.io\n10.0.2.5/24,delta.io\n")
    with pytest.raises(InputError) as e:
        ws.import_ip_ranges(f)
    assert e.value.problems == [
        f"{f}:3: '10.0.1.0/33' is not a CIDR block",
        f"{f}:5: '10.0.2.5/24' is not a CIDR block",
        f"{f}:4: range overlaps line 2",
    ]
    assert ws.counts()["ip_ranges"] == 0 and ws.counts()["accounts"] == 0
    g = write(tmp_path / "g.csv", "network,company\n10.0.0.0/24,acme\n")
    with pytest.raises(InputError, match="needs a 'cidr' column"):
        ws.import_ip_ranges(g)
    # a line cut off, or a cell too many: said so (it read as "'None' is not a CIDR block")
    h = write(tmp_path / "h.csv", "domain,organisation,cidr\nacme.io,Acme,10.0.0.0/24\n"
              "beta.io,Beta\ngamma.io,Gamma,10.0.2.0/24,x\n")
    with pytest.raises(InputError) as e:
        ws.import_ip_ranges(h)
    assert e.value.problems == [
        f"{h}:3: 2 cell(s) where the header has 3 (a line cut off, a stray delimiter or a "
        "quote not closed?)",
        f"{h}:4: 4 cell(s) where the header has 3 (a line cut off, a stray delimiter or a "
        "quote not closed?)"]
    assert ws.counts()["ip_ranges"] == 0
    # a spreadsheet's rows of empty cells under the data are no rows (one was "'' is not a
    # CIDR block", and the file imported nothing)
    k = write(tmp_path / "k.csv", "cidr,domain,organisation\n10.0.0.0/24,acme.io,Acme\n,,\n"
              "10.0.1.0/24,beta.io,Beta\n ,,\n")
    assert ws.import_ip_ranges(k) == 2


def test_ip_ranges_start_end_ipv6_and_overlap_with_other_files(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a = write(tmp_path / "a.csv", "start,end,domain,organisation\n"
              "192.0.2.0,192.0.2.255,acme.io,Acme\n2001:db8:1::,2001:db8:1:ffff::,acme.io,Acme\n")
    assert ws.import_ip_ranges(a) == 2
    assert ws.import_ip_ranges(a) == 2  # same file again replaces, never doubles
    assert ws.counts()["ip_ranges"] == 2
    b = write(tmp_path / "b.csv", "cidr,domain\n192.0.2.128/25,other.io\n")
    with pytest.raises(InputError, match="overlap stored ranges") as e:
        ws.import_ip_ranges(b)
    assert e.value.problems == [f"{b}:2: range overlaps a range from {a}"]
    assert range_keys("2001:db8:1::/48")[0] == ip_key("2001:db8:1::1")


def test_a_semicolon_ip_range_files_dates_are_read_day_first(tmp_path: Path) -> None:
    """European Excel (semicolons) writes 03/04/2026 for the 3rd of April, as the CRM and
    spend imports read it; the IP-range import read it as the 4th of March."""
    from demandloop.collect.ipranges import read_ip_ranges

    semi = write(tmp_path / "s.csv", "cidr;domain;known_since\n10.0.0.0/24;acme.io;03/04/2026\n")
    comma = write(tmp_path / "c.csv", "cidr,domain,known_since\n10.0.0.0/24,acme.io,03/04/2026\n")
    assert read_ip_ranges(semi)[0].known_since == dt.datetime(2026, 4, 3)
    assert read_ip_ranges(comma)[0].known_since == dt.datetime(2026, 3, 4)


def test_anonymous_visitor_resolved_by_ip_range(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws.import_ip_ranges(write(tmp_path / "r.csv", "cidr,domain,organisation\n"
                              "203.0.113.0/24,acme.io,Acme Inc\n"))
    ws.ingest(write_jsonl(tmp_path / "e.jsonl", [
        {"type": "page", "anonymousId": "a1", "messageId": "m1", "context": {"ip": "203.0.113.7"},
         "properties": {"url": "https://v.io/", "path": "/"}, "timestamp": "2026-01-01T00:00:00Z"},
        {"type": "page", "anonymousId": "a2", "messageId": "m2", "context": {"ip": "73.12.4.5"},
         "properties": {"url": "https://v.io/", "path": "/"}, "timestamp": "2026-01-01T00:00:00Z"},
        {"type": "page", "anonymousId": "a3", "messageId": "m3", "context": {"ip": "52.1.1.1"},
         "properties": {"url": "https://v.io/", "path": "/"}, "timestamp": "2026-01-01T00:00:00Z"},
    ]))
    ws.resolve()
    t = ws.touches().set_index("message_id")
    assert (t.loc["m1", "account_id"], t.loc["m1", "match_source"]) == ("acme.io", "ip_range")
    assert pd.isna(t.loc["m2", "account_id"]) and t.loc["m2", "match_source"] == "unresolved: isp"
    assert t.loc["m3", "match_source"] == "unresolved: hosting"


def test_personal_email_never_creates_an_account_and_group_wins(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws.ingest(write_jsonl(tmp_path / "e.jsonl", [
        {"type": "identify", "userId": "u1", "messageId": "i1",
         "traits": {"email": "jo.smith@gmail.com"}},
        {"type": "identify", "userId": "u2", "messageId": "i2",
         "traits": {"email": "someone@hey.com"}},
        # addresses of relays that hide a person's own (Sign in with Apple, Firefox Relay)
        {"type": "identify", "userId": "u4", "messageId": "i4",
         "traits": {"email": "x7fk2@privaterelay.appleid.com"}},
        {"type": "identify", "userId": "u5", "messageId": "i5",
         "traits": {"email": "q1w2e3@mozmail.com"}},
        {"type": "identify", "userId": "u3", "messageId": "i3",
         "traits": {"email": "sam@contractor.io"}},
        {"type": "group", "userId": "u3", "groupId": "org_9", "messageId": "g1",
         "traits": {"name": "Client Co", "website": "https://www.client.co/"}},
    ]))
    ws.resolve()
    accounts = set(ws.accounts()["account_id"])
    assert "gmail.com" not in accounts and "hey.com" not in accounts
    assert not accounts & {"privaterelay.appleid.com", "mozmail.com"}
    assert "client.co" in accounts
    people = ws.persons().set_index("person_id")
    assert pd.isna(people.loc["jo.smith@gmail.com", "account_id"])
    assert people.loc["sam@contractor.io", "account_id"] == "client.co"  # group beats email
    assert ws.accounts().set_index("account_id").loc["client.co", "name"] == "Client Co"


def test_free_mail_override_list() -> None:
    personal = personal_domains()
    for d in ("gmail.com", "hey.com", "tutanota.com", "proton.me"):
        assert d in personal
    assert "acme.io" not in personal
    assert "hey.com" not in personal_domains(business=["hey.com"])


def test_asn_table_classifies_networks() -> None:
    table = load()
    assert table is not None, "the shipped asn.npz is missing"
    names, kinds, asn = table.lookup(np.array([ip_key("8.8.8.8"), ip_key("73.12.4.5"),
                                               ip_key("128.112.0.1"), ip_key("10.0.0.1")]))
    assert list(kinds) == ["hosting", "isp", "education", ""]
    assert "Google" in names[0] and asn[0] == 15169
    assert classify_org("Vodafone GmbH") == "mobile"
    assert classify_org("Hetzner Online GmbH") == "hosting"
    assert classify_org("Siemens AG") == "business"


def test_simulated_market_resolution_against_truth(ws, market: Path) -> None:  # type: ignore[no-untyped-def]
    ws.ingest(market / "events.jsonl")
    for kind in ("accounts", "contacts", "opportunities"):
        ws.import_crm(kind, market / f"{kind}.csv")
    ws.import_ip_ranges(market / "ip_ranges.csv")
    ws.resolve()
    q = ws.resolution_quality(json.loads((market / "truth.json").read_text()))
    assert q["visits"] > 1000
    assert q["wrong_of_resolved"] < 0.01 and q["wrong_share"] < 0.01
    assert q["right_share"] > 0.35
    # every identified person is in the right account
    truth = json.loads((market / "truth.json").read_text())
    domain = {a["account_id"]: a["domain"] for a in truth["accounts"]}
    work_email = {p["work_email"]: domain[p["account_id"]] for p in truth["people"]}
    people = ws.persons()
    for _, p in people[people["email"].isin(work_email)].iterrows():
        assert p["account_id"] == work_email[p["email"]]


def test_build_asn_table_from_a_package(tmp_path: Path) -> None:
    import io
    import tarfile

    from demandloop.resolve import asn

    csv_v4 = (b'16777216,16777471,13335,"Cloudflare, Inc."\n'
              b"16777472,16777727,13335,\"Cloudflare, Inc.\"\n"
              b"3232235520,3232235775,64500,Example Widgets Corp\n")
    tgz = tmp_path / "asn.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo("package/asn-ipv4-num.csv")
        info.size = len(csv_v4)
        tar.addfile(info, io.BytesIO(csv_v4))
    out = tmp_path / "asn.npz"
    n = asn.build(tgz, out)
    assert n == {"ranges": 2, "organisations": 2, "source_rows": 3}  # adjacent rows merged
    table = asn.load(str(out))
    assert table is not None
    names, kinds, numbers = table.lookup(np.array([ip_key("1.0.0.5"), ip_key("1.0.1.200"),
                                                   ip_key("192.168.0.9"), ip_key("1.0.2.1")]))
    assert list(names) == ["Cloudflare, Inc.", "Cloudflare, Inc.", "Example Widgets Corp", ""]
    assert list(kinds) == ["hosting", "hosting", "business", ""]
    assert list(numbers) == [13335, 13335, 64500, 0]
    (tmp_path / "empty.tgz").write_bytes(b"not a tarball")
    with pytest.raises(InputError):
        asn.build(tmp_path / "empty.tgz", out)


def test_cli_resolve_and_explain(cli, market: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = str(tmp_path / "w")
    assert cli("-w", w, "ingest", str(market / "events.jsonl"))[0] == 0
    code, out, _ = cli("-w", w, "import", "ip-ranges", str(market / "ip_ranges.csv"))
    assert code == 0 and "IP ranges imported" in out
    code, out, _ = cli("-w", w, "resolve", "--json")
    r = json.loads(out)
    assert code == 0 and r["touches"] > 0 and 0 < r["touches_with_account"] < r["touches"]
    truth = json.loads((market / "truth.json").read_text())
    person = next(p for p in truth["people"] if p["identified_at"] and p["anonymous_ids"])
    code, out, _ = cli("-w", w, "explain", "person", person["anonymous_ids"][0], "--json")
    info = json.loads(out)
    assert code == 0 and info["person"]["account_id"] is not None
    assert f"anon:{person['anonymous_ids'][0]}" in info["identifiers"]
    code, out, _ = cli("-w", w, "accounts", "--json")
    assert code == 0 and all(a["touches"] > 0 for a in json.loads(out))


def test_domain_aliases_map_to_the_main_account(tmp_path: Path) -> None:
    import demandloop

    (tmp_path / "demandloop.toml").write_text(
        '[identity]\ndomain_aliases = { "acme.co.uk" = "acme.com" }\n'
        '[enrich]\ntopics = { "pricing" = "^/pricing", "abm" = "(?i)account.based" }\n')
    with demandloop.open(tmp_path) as ws:
        ws.import_crm("accounts", write(tmp_path / "a.csv", "domain,name\nwww.acme.co.uk,Acme\n"))
        assert list(ws.accounts()["account_id"]) == ["acme.com"]
        ws.ingest(write_jsonl(tmp_path / "e.jsonl", [
            {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "i1",
             "traits": {"email": "kim@acme.co.uk"}},
            {"type": "page", "anonymousId": "a1", "messageId": "p1", "properties": {
                "url": "https://v.io/x", "path": "/x", "title": "Account-based marketing 101"}},
            {"type": "page", "anonymousId": "a1", "messageId": "p2",
             "properties": {"url": "https://v.io/pricing", "path": "/pricing"}},
        ]))
        ws.resolve()
        t = ws.touches().set_index("message_id")
        assert set(t["account_id"]) == {"acme.com"}
        assert (t.loc["p1", "topic"], t.loc["p2", "topic"]) == ("abm", "pricing")


_PEOPLE = st.sampled_from(["p0", "p1", "p2", "p3"])
_EMAILS = st.sampled_from(["a@acme.com", "b@acme.com", "c@gmail.com", "d@beta.io",
                           "e@Beta.io", "f@www.acme.com", "no-at-sign", "g@", "h@x@acme.com"])
_DOMAINS = st.sampled_from(["acme.com", "beta.io", "gamma.org", None])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(_PEOPLE, _EMAILS), max_size=8),
       st.lists(st.tuples(_EMAILS, _DOMAINS), max_size=5),
       st.lists(st.tuples(_PEOPLE, _DOMAINS), max_size=5))
def test_person_accounts_rank_as_the_rules_say(emails: list[tuple[str, str]],
                                               crm: list[tuple[str, str | None]],
                                               groups: list[tuple[str, str | None]]) -> None:
    """Each person's account, against the rules computed one person at a time: the
    highest confidence (group, CRM, email domain), then the most candidates, then the
    first account by name; personal domains never match."""
    from collections import Counter

    from demandloop.domains import canonical_domain
    from demandloop.resolve.accounts import CONFIDENCE, person_accounts
    personal = frozenset({"gmail.com"})
    got = person_accounts(
        pd.DataFrame(emails, columns=["person_id", "email"], dtype=object),
        pd.DataFrame(crm, columns=["email", "account_id"], dtype=object),
        pd.DataFrame(groups, columns=["person_id", "domain"], dtype=object), personal)
    candidates: dict[str, list[tuple[str, str]]] = {}
    for person, domain in groups:
        if domain is not None:
            candidates.setdefault(person, []).append((domain, "group"))
    for person, email in emails:
        candidates.setdefault(person, []).extend(
            (account, "crm") for e, account in crm if e == email and account is not None)
        domain = email.rsplit("@", 1)[1] if "@" in email else None
        if domain is not None and domain not in personal and canonical_domain(domain):
            candidates[person].append((str(canonical_domain(domain)), "email_domain"))
    expected = {}
    for person, found in candidates.items():
        if found:
            votes = Counter(account for account, _ in found)
            account, source = min(found, key=lambda c: (-CONFIDENCE[c[1]], -votes[c[0]], c[0]))
            expected[person] = (account, source, CONFIDENCE[source])
    assert list(got["person_id"]) == sorted(expected)
    assert {r.person_id: (r.account_id, r.source, r.confidence)
            for r in got.itertuples()} == expected


@pytest.mark.parametrize(("text", "said"), [
    ("a,a,b\n1,2,3\n", None),  # a column named twice: one key of two cells, not ragged
    ("a,a,b\n1,2\n", "2 cell(s) where the header has 3"),
    ("a,b,c\n1,2,3,4\n", "4 cell(s) where the header has 3"),
    ("a,b,c\n1\n", "1 cell(s) where the header has 3"),
    ('a,b,c\n1,"2,x",3\n', None),  # a quoted delimiter is one cell
])
def test_a_ragged_line_is_told_from_a_whole_one(text: str, said: str | None) -> None:
    import csv
    import io

    from demandloop.csvfiles import ragged

    reader = csv.DictReader(io.StringIO(text))
    (row,) = list(reader)
    got = ragged(row, len(reader.fieldnames or []))
    assert (got is None) if said is None else (got is not None and got.startswith(said))

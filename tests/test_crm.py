"""CRM CSV imports: HubSpot, Salesforce, Pipedrive and plain headers, --map, bad rows,
idempotence."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from demandloop.errors import InputError
from tests.conftest import write_jsonl


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_hubspot_company_export(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = write_csv(tmp_path / "hubspot-companies.csv",
                  ["Record ID", "Company name", "Company Domain Name", "Industry",
                   "Number of Employees", "Annual Revenue", "Country/Region", "Company owner",
                   "Target Account", "Ideal Customer Profile Tier", "Lifecycle Stage"],
                  [["101", "Acme Corp", "https://www.Acme.com/", "Software", "250", "30,000,000",
                    "United States", "Ana Silva", "true", "Tier 1", "lead"]])
    assert ws.import_crm("accounts", f) == 1
    a = ws.accounts().iloc[0]
    assert (a.account_id, a.domain, a["name"], a.employees, a.revenue) == (
        "acme.com", "acme.com", "Acme Corp", 250, 30_000_000.0)
    assert (a.crm_id, a.country, a.owner, bool(a.target), a.tier) == (
        "101", "US", "Ana Silva", True, "Tier 1")


def test_country_names_are_read_as_the_codes_fit_and_send_times_use(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """HubSpot's and Salesforce's exports write "United States": kept as written, it met no
    fit criterion (countries are codes: US = 15), no --country US filter, and a person's
    send time fell back to UTC (09:00 UTC: 04:00 in New York)."""
    from demandloop.activate.sequences import zone_for
    from demandloop.score.fit import score_account
    from demandloop.score.measures import rules_from

    f = write_csv(tmp_path / "companies.csv", ["Company Domain Name", "Country/Region"],
                  [["a.com", "United States"], ["b.de", "Germany"], ["c.co.uk", "UK"],
                   ["d.nl", "The Netherlands"], ["e.fr", "FRA"], ["f.io", "Atlantis"],
                   ["g.com", ""]])
    assert ws.import_crm("accounts", f) == 7
    got = ws.accounts().set_index("account_id")["country"].fillna("(none)").to_dict()
    assert got == {"a.com": "US", "b.de": "DE", "c.co.uk": "GB", "d.nl": "NL", "e.fr": "FR",
                   "f.io": "Atlantis", "g.com": "(none)"}
    points = ws.settings.score.fit.countries["US"]
    _, met = score_account(rules_from(ws.settings)[0], {"country": got["a.com"]})
    assert f"country US: +{points:g}" in met
    assert zone_for(None, got["a.com"], "UTC") == "America/New_York"


def test_an_internationalised_domain_is_one_account_however_written(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """müller-gmbh.de was "not a domain or website", and the file imported nothing; its
    ASCII form (a browser's hostname, some mail systems) must meet the same account."""
    acc = write_csv(tmp_path / "accounts.csv", ["domain", "name", "country"],
                    [["https://www.Müller-GmbH.de/", "Müller GmbH", "DE"],
                     ["xn--caf-dma.fr", "Café SA", "FR"], ["acme.com", "Acme", "US"]])
    assert ws.import_crm("accounts", acc) == 3
    assert sorted(ws.accounts()["account_id"]) == ["acme.com", "café.fr", "müller-gmbh.de"]
    con = write_csv(tmp_path / "contacts.csv", ["email", "first_name", "account_domain"],
                    [["Hans@XN--MLLER-GMBH-9DB.DE", "Hans", "müller-gmbh.de"],
                     ["anne@café.fr", "Anne", "xn--caf-dma.fr"]])
    assert ws.import_crm("contacts", con) == 2
    events = write_jsonl(tmp_path / "e.jsonl", [
        {"type": "identify", "userId": "u-jo", "messageId": "i1",
         "timestamp": "2026-02-01T10:00:00Z", "traits": {"email": "jo@xn--mller-gmbh-9db.de"}},
        {"type": "track", "userId": "u-jo", "event": "Demo Requested", "messageId": "t1",
         "timestamp": "2026-02-01T10:01:00Z"}])
    ws.ingest(events)
    ws.resolve()
    people = ws.persons().set_index("email")["account_id"].to_dict()
    assert people["hans@xn--mller-gmbh-9db.de"] == "müller-gmbh.de"
    assert people["anne@café.fr"] == "café.fr"
    assert people["jo@xn--mller-gmbh-9db.de"] == "müller-gmbh.de"
    assert len(ws.accounts()) == 3  # no second account for either form


def test_salesforce_exports_link_contacts_and_opportunities(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    acc = write_csv(tmp_path / "sf-accounts.csv",
                    ["Account ID", "Account Name", "Website", "Industry", "Employees",
                     "Billing Country", "Account Owner"],
                    [["001A", "Globex", "globex.io", "Manufacturing", "1200", "DE", "Ben"]])
    con = write_csv(tmp_path / "sf-contacts.csv",
                    ["Contact ID", "First Name", "Last Name", "Email", "Title", "Account ID"],
                    [["003A", "Hank", "Scorpio", "Hank@Globex.io", "CEO", "001A"]])
    opp = write_csv(tmp_path / "sf-opps.csv",
                    ["Opportunity ID", "Opportunity Name", "Amount", "Stage", "Created Date",
                     "Close Date", "Account ID"],
                    [["006A", "Globex - Platform", "$48,000.00", "Closed Won", "03/01/2026",
                      "04/15/2026", "001A"],
                     ["006B", "Globex - Add-on", "9000", "Proposal", "2026-04-01", "", "001A"]])
    ws.import_crm("accounts", acc)
    ws.import_crm("contacts", con)
    ws.import_crm("opportunities", opp)
    p = ws.persons().iloc[0]
    assert (p.email, p.account_id, p.title) == ("hank@globex.io", "globex.io", "CEO")
    o = ws.opportunities().set_index("opportunity_id")
    assert o.loc["006A", "account_id"] == "globex.io"
    assert (o.loc["006A", "amount"], bool(o.loc["006A", "won"]),
            bool(o.loc["006A", "is_closed"])) == (48000.0, True, True)
    assert str(o.loc["006A", "created_at"].date()) == "2026-03-01"
    assert (bool(o.loc["006B", "won"]), bool(o.loc["006B", "is_closed"])) == (False, False)


def test_pipedrive_exports_and_an_outcome_from_the_deal_status(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Pipedrive's "Object - Field" headers: its organisations were refused ("no column for
    'domain' or 'name'"), and its deals, whose stages are the team's own names, all read
    as open: the outcome is the status column (won, lost, open)."""
    acc = write_csv(tmp_path / "organizations.csv",
                    ["Organization - ID", "Organization - Name", "Organization - Website",
                     "Organization - Owner"],
                    [["1", "Acme Corp", "https://acme.com", "Ana"],
                     ["2", "Beta Ltd", "beta.io", "Ben"]])
    con = write_csv(tmp_path / "people.csv",
                    ["Person - ID", "Person - Name", "Person - First name", "Person - Last name",
                     "Person - Organization", "Person - Email - Work", "Person - Job title"],
                    [["7", "Jo Ng", "Jo", "Ng", "Acme Corp", "Jo@Acme.com", "VP Marketing"]])
    opp = write_csv(tmp_path / "deals.csv",
                    ["Deal - ID", "Deal - Title", "Deal - Value", "Deal - Currency",
                     "Deal - Organization", "Deal - Stage", "Deal - Status",
                     "Deal - Deal created", "Deal - Deal closed on"],
                    [["11", "Acme expansion", "12000", "USD", "Acme Corp",
                      "Negotiations Started", "won", "2026-01-10 09:00:00",
                      "2026-02-01 10:00:00"],
                     ["12", "Beta pilot", "5000", "USD", "Beta Ltd", "Proposal Made", "lost",
                      "2026-01-12 09:00:00", "2026-02-03 11:00:00"],
                     ["13", "Acme new team", "8000", "USD", "Acme Corp", "Qualified", "open",
                      "2026-02-20 09:00:00", ""]])
    assert ws.import_crm("accounts", acc) == 2
    assert ws.import_crm("contacts", con) == 1
    assert ws.import_crm("opportunities", opp) == 3
    a = ws.accounts().set_index("account_id")
    assert (a.loc["acme.com", "name"], a.loc["acme.com", "owner"],
            a.loc["acme.com", "crm_id"]) == ("Acme Corp", "Ana", "1")
    p = ws.persons().iloc[0]
    assert (p.email, p.first_name, p.title, p.account_id) == (
        "jo@acme.com", "Jo", "VP Marketing", "acme.com")
    o = ws.opportunities().set_index("opportunity_id")
    got = {i: (o.loc[i, "account_id"], o.loc[i, "name"], float(o.loc[i, "amount"]),
               bool(o.loc[i, "is_closed"]), bool(o.loc[i, "won"])) for i in o.index}
    assert got == {"11": ("acme.com", "Acme expansion", 12000.0, True, True),
                   "12": ("beta.io", "Beta pilot", 5000.0, True, False),
                   "13": ("acme.com", "Acme new team", 8000.0, False, False)}
    assert str(o.loc["11", "closed_at"]) == "2026-02-01 10:00:00"
    assert "status" not in o.columns  # (the outcome, not a field of its own)


def test_map_option_for_unrecognised_headers(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = write_csv(tmp_path / "a.csv", ["Firma", "Webseite"], [["Initech", "initech.com"]])
    with pytest.raises(InputError, match="no column for 'domain' or 'name'.*--map"):
        ws.import_crm("accounts", f)
    assert ws.import_crm("accounts", f, {"Firma": "name", "Webseite": "domain"}) == 1
    assert ws.accounts().iloc[0]["name"] == "Initech"


def test_a_column_named_twice_is_refused_where_it_is_imported(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # the first 'Website' was taken and the second dropped, in silence
    f = write_csv(tmp_path / "a.csv", ["Name", "Website", "Website"],
                  [["Initech", "initech.com", "initech.de"]])
    with pytest.raises(InputError, match="names column 'Website' 2 times"):
        ws.import_crm("accounts", f)
    assert ws.accounts().empty
    # a column named twice that nothing is imported from is only ignored
    f = write_csv(tmp_path / "b.csv", ["Name", "Website", "Notes", "Notes"],
                  [["Initech", "initech.com", "a", "b"]])
    ignored: list[str] = []
    assert ws.import_crm("accounts", f, ignored=ignored) == 1 and ignored == ["Notes", "Notes"]


def test_bad_rows_are_reported_by_line_and_nothing_is_written(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = write_csv(tmp_path / "a.csv", ["domain", "name", "employees", "target"],
                  [["ok.com", "OK", "10", "true"], ["bad.com", "Bad", "many", "true"],
                   ["worse.com", "Worse", "5", "perhaps"], ["not a domain", "X", "1", ""],
                   ["ok.com", "OK again", "3", ""]])
    with pytest.raises(InputError) as e:
        ws.import_crm("accounts", f)
    assert e.value.problems == [
        f"{f}:3: column 'employees': 'many' is not a number",
        f"{f}:4: column 'target': 'perhaps' is not true/false",
        f"{f}:5: column 'domain': 'not a domain' is not a domain or website",
        f"{f}:6: duplicate of line 2 ('ok.com')",
    ]
    assert ws.counts()["accounts"] == 0


def test_opportunity_for_unknown_account_writes_nothing(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = write_csv(tmp_path / "o.csv", ["crm_id", "account_domain", "amount"],
                  [["o1", "nowhere.com", "100"]])
    with pytest.raises(InputError, match="unknown accounts") as e:
        ws.import_crm("opportunities", f)
    assert e.value.problems == [f"{f}:2: account 'nowhere.com' is not in the workspace"]
    assert ws.counts()["opportunities"] == 0


def test_reimport_updates_without_duplicating_and_keeps_unsent_fields(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = write_csv(tmp_path / "a.csv", ["domain", "name", "industry", "employees"],
                      [["acme.com", "Acme", "Software", "100"]])
    second = write_csv(tmp_path / "b.csv", ["domain", "employees", "owner"],
                       [["acme.com", "150", "erin"], ["new.io", "3", ""]])
    ws.import_crm("accounts", first)
    ws.import_crm("accounts", second)
    ws.import_crm("accounts", second)
    a = ws.accounts().set_index("account_id")
    assert len(a) == 2
    assert (a.loc["acme.com", "name"], a.loc["acme.com", "industry"],
            a.loc["acme.com", "employees"], a.loc["acme.com", "owner"]) == (
        "Acme", "Software", 150, "erin")
    assert not bool(a.loc["new.io", "target"])


def test_missing_and_empty_files(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="no such file"):
        ws.import_crm("accounts", tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty file"):
        ws.import_crm("accounts", tmp_path / "empty.csv")


def test_cli_import_and_bad_map(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = write_csv(tmp_path / "a.csv", ["Firma"], [["Initech"]])
    w = str(tmp_path / "w")
    code, _, err = cli("-w", w, "import", "accounts", str(f))
    assert code == 3 and "no column for 'domain' or 'name'" in err
    code, _, err = cli("-w", w, "import", "accounts", str(f), "--map", "Firma=nom")
    assert code == 3 and "unknown field 'nom'" in err
    code, out, _ = cli("-w", w, "import", "accounts", str(f), "--map", "Firma=name")
    assert code == 0 and "1 accounts imported" in out


def test_simulated_crm_files_import(ws, market: Path) -> None:  # type: ignore[no-untyped-def]
    for kind in ("accounts", "contacts", "opportunities"):
        with (market / f"{kind}.csv").open() as fh:
            expected = sum(1 for _ in fh) - 1
        assert ws.import_crm(kind, market / f"{kind}.csv") == expected
    assert ws.counts()["opportunities"] == expected


def test_import_names_ignored_headers_and_a_reimport_updates(cli, tmp_path: Path  # type: ignore[no-untyped-def]
                                                             ) -> None:
    """Headers no field was taken from are listed; importing the same file again with
    --map for the missed domain updates the account (one row, re-keyed everywhere)
    instead of adding a second."""
    acc = write_csv(tmp_path / "a.csv", ["Record ID", "Company name", "Web Address", "Colour"],
                    [["42", "Acme Corp", "acme.com", "blue"], ["43", "Beta", "beta.io", "red"]])
    con = write_csv(tmp_path / "c.csv", ["Email", "Company ID"], [["jo@acme.com", "42"]])
    w = str(tmp_path / "w")
    code, out, err = cli("-w", w, "import", "accounts", str(acc))
    assert code == 0 and "not imported, no field recognised: Web Address, Colour" in err
    assert cli("-w", w, "import", "contacts", str(con))[0] == 0
    code, out, _ = cli("-w", w, "import", "accounts", str(acc), "--map",
                       "Web Address=domain", "--json")
    assert code == 0 and json.loads(out)["ignored_columns"] == ["Colour"]
    import demandloop

    with demandloop.open(w) as ws:
        rows = ws.store.con.execute("SELECT account_id, domain, crm_id FROM accounts "
                                    "ORDER BY 1").fetchall()
        person = ws.store.con.execute("SELECT account_id FROM persons").fetchall()
    assert rows == [("acme.com", "acme.com", "42"), ("beta.io", "beta.io", "43")]
    assert person == [("acme.com",)]


def test_a_file_that_says_less_updates_the_account_without_re_keying_it(
        cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A re-import without the domain column (matched by CRM id) or with names only
    updates the stored ``acme.com``: it is not re-keyed to ``crm:42`` or ``name:acme``,
    which would lose the id web and email signals meet on."""
    full = write_csv(tmp_path / "a.csv", ["Record ID", "Company name", "Website"],
                     [["42", "Acme", "acme.com"], ["43", "Beta", "beta.io"]])
    con = write_csv(tmp_path / "c.csv", ["Email", "Company ID"], [["jo@acme.com", "42"]])
    by_crm = write_csv(tmp_path / "b.csv", ["Record ID", "Company name", "Employees"],
                       [["42", "Acme", "120"]])
    by_name = write_csv(tmp_path / "n.csv", ["dom", "name", "industry"],
                        [["beta.io", "Beta", "Software"]])
    w = str(tmp_path / "w")
    for kind, f in (("accounts", full), ("contacts", con), ("accounts", by_crm),
                    ("accounts", by_name)):
        code, _, err = cli("-w", w, "import", kind, str(f))
        assert code == 0, err
    import demandloop

    with demandloop.open(w) as ws:
        rows = ws.store.con.execute("SELECT account_id, domain, crm_id, employees, industry "
                                    "FROM accounts ORDER BY 1").fetchall()
        person = ws.store.con.execute("SELECT account_id FROM persons").fetchall()
    assert rows == [("acme.com", "acme.com", "42", 120, None),
                    ("beta.io", "beta.io", "43", None, "Software")]
    assert person == [("acme.com",)]


def test_contacts_of_accounts_not_imported_yet_are_listed_and_linked_when_imported_again(
        cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con = write_csv(tmp_path / "c.csv", ["Email", "Company ID"],
                    [["jo@acme.com", "42"], ["al@beta.io", "43"], ["mo@solo.dev", ""]])
    acc = write_csv(tmp_path / "a.csv", ["Record ID", "Company name", "Website"],
                    [["42", "Acme", "acme.com"]])
    w = str(tmp_path / "w")
    code, out, err = cli("-w", w, "import", "contacts", str(con))
    assert code == 0 and "3 contacts imported" in out
    assert ("2 contact(s) imported without their account, which is not in the workspace "
            "(import the accounts, then these contacts again):") in err
    assert f"{con}:2: account '42' is not in the workspace" in err
    assert f"{con}:3: account '43' is not in the workspace" in err and ":4:" not in err
    assert cli("-w", w, "import", "accounts", str(acc))[0] == 0
    code, out, _ = cli("-w", w, "import", "contacts", str(con), "--json")
    assert code == 0
    assert json.loads(out)["unlinked"] == [f"{con}:3: account '43' is not in the workspace"]
    import demandloop

    with demandloop.open(w) as ws:
        linked = ws.store.con.execute("SELECT person_id, account_id FROM persons "
                                      "ORDER BY 1").fetchall()
    assert linked == [("al@beta.io", None), ("jo@acme.com", "acme.com"), ("mo@solo.dev", None)]


def test_a_contact_without_an_email_is_left_out_and_listed(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # a CRM export holds phone-only contacts: the whole file was refused ("needs an email
    # address"), so no real export could be imported without editing it first
    con = write_csv(tmp_path / "c.csv", ["Email", "First Name", "Phone"],
                    [["jo@acme.com", "Jo", "1"], ["", "Phone Only", "2"],
                     ["al@acme.com", "Al", "3"]])
    w = str(tmp_path / "w")
    code, out, err = cli("-w", w, "import", "contacts", str(con))
    assert code == 0 and "2 contacts imported" in out, err
    assert "1 contact(s) without an email address were not imported" in err
    assert f"{con}:3: no email address" in err
    code, out, _ = cli("-w", w, "import", "contacts", str(con), "--json")
    assert json.loads(out)["skipped"] == [
        f"{con}:3: no email address (a person is known by theirs)"]
    import demandloop

    with demandloop.open(w) as ws:
        assert sorted(ws.persons()["person_id"]) == ["al@acme.com", "jo@acme.com"]
    # a malformed email is still a problem, and a file where no contact has one is refused
    bad = write_csv(tmp_path / "b.csv", ["Email"], [["not-an-email"], [""]])
    code, _, err = cli("-w", w, "import", "contacts", str(bad))
    assert code == 3 and "'not-an-email' is not an email address" in err
    assert err.count(":2:") == 1
    none = write_csv(tmp_path / "n.csv", ["Email", "Name"], [["", "A"], ["", "B"]])
    code, _, err = cli("-w", w, "import", "contacts", str(none))
    assert code == 3 and "no contact has an email address" in err


def _accounts_people_touches(w: Path) -> tuple[list[tuple[object, ...]], ...]:
    import demandloop

    with demandloop.open(w) as ws:
        q = ws.store.con.execute
        return (q("SELECT account_id, domain, crm_id, name FROM accounts ORDER BY 1").fetchall(),
                q("SELECT person_id, account_id, crm_account_id FROM persons ORDER BY 1")
                .fetchall(),
                q("SELECT message_id, account_id FROM touches ORDER BY 1").fetchall())


def test_an_account_given_its_domain_later_is_merged_into_the_one_resolve_made(
        cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A visitor's email made ``acme.com``; the CRM file, first imported without its
    domain column, made ``crm:42`` with a contact. Imported again with ``--map``, the two
    become one account, and the next resolve keeps the contact, the visitor and their
    touches there: the workspace then holds what importing the file right the first time
    gives."""
    events = write_jsonl(tmp_path / "e.jsonl", [
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "i1",
         "timestamp": "2026-11-01T10:00:00Z", "traits": {"email": "jo@acme.com"}},
        {"type": "page", "anonymousId": "a1", "messageId": "p1",
         "timestamp": "2026-11-01T10:01:00Z",
         "properties": {"url": "https://x.io/pricing", "path": "/pricing"}},
        {"type": "page", "anonymousId": "a2", "messageId": "p2",
         "timestamp": "2026-11-02T10:01:00Z", "properties": {"url": "https://x.io/"}},
        {"type": "identify", "userId": "u2", "anonymousId": "a2", "messageId": "i2",
         "timestamp": "2026-11-02T10:02:00Z", "traits": {"email": "sam@acme.com"}}])
    acc = write_csv(tmp_path / "a.csv", ["Record ID", "Company name", "Web Address"],
                    [["42", "Acme Corp", "acme.com"]])
    con = write_csv(tmp_path / "c.csv", ["Email", "Company ID"], [["sam@acme.com", "42"]])
    late, right = str(tmp_path / "late"), str(tmp_path / "right")
    for args in (("ingest", str(events)), ("resolve",), ("import", "accounts", str(acc)),
                 ("import", "contacts", str(con)),
                 ("import", "accounts", str(acc), "--map", "Web Address=domain"),
                 ("resolve",)):
        code, _, err = cli("-w", late, *args)
        assert code == 0, err
    for args in (("import", "accounts", str(acc), "--map", "Web Address=domain"),
                 ("import", "contacts", str(con)), ("ingest", str(events)), ("resolve",)):
        code, _, err = cli("-w", right, *args)
        assert code == 0, err
    got = _accounts_people_touches(Path(late))
    assert got[0] == [("acme.com", "acme.com", "42", "Acme Corp")]
    assert got == _accounts_people_touches(Path(right))
    assert {a for _, a in got[2]} == {"acme.com"}
    # what was crm:42 says where it went
    code, _, err = cli("-w", late, "explain", "account", "crm:42")
    assert code == 5 and "account 'crm:42' is 'acme.com' now" in err
    assert "demandloop explain account acme.com" in err


@pytest.mark.parametrize(("text", "decimal", "number"), [
    ("1250.75", ".", 1250.75), ("$1,250.75", ".", 1250.75), ("1.250,75 €", ",", 1250.75),
    ("1 250,75", ",", 1250.75), ("1\u00a0250,75", ",", 1250.75), ("1'250.75", ".", 1250.75),
    ("EUR 1.234.567,89", ".", 1234567.89), ("1,250.75 USD", ",", 1250.75),
    ("99,90", ",", 99.9), ("99,90", ".", 99.9), ("3.400", ",", 3400.0),
    ("3,400", ".", 3400.0), ("3.400", ".", 3.4), ("120.5", ",", 120.5),
    ("30,000,000", ",", 30e6), ("-5", ".", -5.0), ("1e3", ".", 1000.0), ("", ".", None)])
def test_numbers_as_spreadsheets_write_them(text: str, decimal: str,
                                            number: float | None) -> None:
    from demandloop.collect.values import as_number

    assert as_number(text, decimal) == number


@pytest.mark.parametrize("text", ["abc", "1,23,4", "12.34.5", "1.2.3,4", "nan", "inf",
                                  "--5", ","])
def test_what_is_not_a_number_is_refused(text: str) -> None:
    from demandloop.collect.values import as_number

    with pytest.raises(ValueError, match="is not a number"):
        as_number(text, ",")


def test_a_european_export_reads_its_decimal_commas(ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Excel in continental Europe separates with semicolons and writes decimal commas:
    every comma was dropped, so a spend of 99,90 became 9990 and a deal of 3400,50 became
    340050."""
    (tmp_path / "a.csv").write_text("domain;name;employees;annual revenue\n"
                                    "acme.com;Acme;1.200;2.500.000,00\n", encoding="utf-8")
    (tmp_path / "d.csv").write_text(
        "Deal ID;Deal Name;Amount;Create Date;account_domain\n"
        "d1;EU;3400,50;01/02/2026;acme.com\nd2;EU2;1.234.567,89;31.12.2025;acme.com\n"
        "d3;EU3;\"12,5\";2026-03-04;acme.com\n", encoding="utf-8")
    (tmp_path / "s.csv").write_text("date;channel;spend;clicks\n"
                                    "01/11/2026;paid_search;1.250,75;1.024\n"
                                    "2026-11-02;paid_search;99,90;7\n", encoding="utf-8")
    ws.import_crm("accounts", tmp_path / "a.csv")
    ws.import_crm("opportunities", tmp_path / "d.csv")
    ws.import_spend(tmp_path / "s.csv")
    q = ws.store.con.execute
    assert q("SELECT employees, revenue FROM accounts").fetchall() == [(1200, 2_500_000.0)]
    assert q("SELECT opportunity_id, amount, created_at::DATE::VARCHAR FROM opportunities "
             "ORDER BY 1").fetchall() == [("d1", 3400.5, "2026-02-01"),
                                          ("d2", 1234567.89, "2025-12-31"),
                                          ("d3", 12.5, "2026-03-04")]
    assert q("SELECT date::VARCHAR, spend, clicks FROM spend ORDER BY date").fetchall() == [
        ("2026-11-01", 1250.75, 1024), ("2026-11-02", 99.9, 7)]


@pytest.mark.parametrize(("text", "day_first", "day"), [
    ("01/02/2026", False, "2026-01-02"), ("01/02/2026", True, "2026-02-01"),
    ("31/12/2025", False, "2025-12-31"), ("12/31/2025", True, "2025-12-31"),
    ("31.12.2025 10:30", False, "2025-12-31"), ("2026-01-02T10:00:00Z", True, "2026-01-02")])
def test_dates_as_spreadsheets_write_them(text: str, day_first: bool, day: str) -> None:
    from demandloop.collect.values import parse_timestamp

    found = parse_timestamp(text, day_first)
    assert found is not None and found.date().isoformat() == day


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_a_spreadsheets_semicolon_or_tab_export_imports_like_a_comma_one(
        ws, tmp_path: Path, delimiter: str) -> None:  # type: ignore[no-untyped-def]
    """Excel in most of Europe saves CSV with semicolons; many tools export tabs under a
    .csv name. They were refused ("no column for 'domain' among Domain;Name;..."); they
    now import the same rows as the comma file, a delimiter inside quotes staying data."""
    header = ["Company Domain Name", "Company name", "Industry", "Annual Revenue"]
    rows = [["acme.com", "Acme; Inc, \"the\" one", "Software", "30,000,000"],
            ["globex.com", "Globex|Tab\there", "Retail", "1200"]]
    comma = write_csv(tmp_path / "comma.csv", header, rows)
    other = tmp_path / "other.csv"
    with other.open("w", newline="", encoding="utf-8-sig") as fh:  # (Excel writes a BOM)
        csv.writer(fh, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL).writerows(
            [header, *rows])
    assert ws.import_crm("accounts", other) == 2
    got = ws.accounts().sort_values("account_id")[["account_id", "name", "industry",
                                                   "revenue"]]
    with ws.store.writer() as cur:
        cur.execute("DELETE FROM accounts")
    assert ws.import_crm("accounts", comma) == 2
    want = ws.accounts().sort_values("account_id")[["account_id", "name", "industry",
                                                    "revenue"]]
    assert got.to_dict("records") == want.to_dict("records")
    assert got["name"].tolist() == ["Acme; Inc, \"the\" one", "Globex|Tab\there"]
    # the other imports read the same way: spend and a suppression list
    spend = tmp_path / "spend.csv"
    spend.write_text(f"date{delimiter}channel{delimiter}spend\n"
                     f"2026-01-05{delimiter}Paid Social{delimiter}120.5\n")
    assert ws.import_spend(spend) == 1
    emails = tmp_path / "suppressed.csv"
    emails.write_text(f"email{delimiter}reason\nann@acme.com{delimiter}unsubscribed\n")
    from demandloop.activate.suppression_csv import read_emails

    assert read_emails(emails) == ["ann@acme.com"]

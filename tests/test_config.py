from pathlib import Path

import pytest

from demandloop.config import Settings, example_toml
from demandloop.errors import ConfigError


def test_defaults_without_a_file(tmp_path: Path) -> None:
    s = Settings.load(tmp_path)
    assert s.store.path == "demandloop.duckdb"
    assert s.workspace.id == "default"
    assert s.ingest.max_event_bytes == 32 * 1024


def test_file_values_are_read(tmp_path: Path) -> None:
    (tmp_path / "demandloop.toml").write_text('[store]\npath = "x.duckdb"\nthreads = 2\n')
    s = Settings.load(tmp_path)
    assert (s.store.path, s.store.threads) == ("x.duckdb", 2)


def test_environment_beats_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "demandloop.toml").write_text('[store]\npath = "file.duckdb"\n')
    monkeypatch.setenv("DEMANDLOOP_STORE__PATH", "env.duckdb")
    assert Settings.load(tmp_path).store.path == "env.duckdb"


def test_unknown_key_names_the_key_and_the_valid_ones(tmp_path: Path) -> None:
    (tmp_path / "demandloop.toml").write_text('[store]\npth = "x.duckdb"\n')
    with pytest.raises(ConfigError) as e:
        Settings.load(tmp_path)
    msg = str(e.value)
    assert "unknown key 'store.pth'" in msg
    assert "memory_limit, path, threads" in msg


def test_a_key_in_a_list_of_tables_is_named_as_the_file_counts_them(tmp_path: Path) -> None:
    """The second ``[[chat.playbooks]]`` table is ``chat.playbooks[2]`` (pydantic counts from
    0), and an unknown key there lists a playbook's keys (it listed the chat section's)."""
    body = ('[[chat.playbooks]]\nname = "a"\ngreeting = "Hi"\n'
            '[[chat.playbooks]]\nname = "b"\ngreeting = "Hi"\n')
    (tmp_path / "demandloop.toml").write_text(body + "audiences = []\n")
    with pytest.raises(ConfigError) as e:
        Settings.load(tmp_path)
    assert "unknown key 'chat.playbooks[2].audiences'" in str(e.value)
    assert e.value.hint == ("valid keys in [chat.playbooks[2]]: audience, enabled, greeting, "
                            "name, offer_meeting, questions")
    (tmp_path / "demandloop.toml").write_text(body + 'audience = "target"\n')
    with pytest.raises(ConfigError, match=r"invalid value for 'chat.playbooks\[2\].audience'"):
        Settings.load(tmp_path)


def test_unknown_section(tmp_path: Path) -> None:
    (tmp_path / "demandloop.toml").write_text("[sotre]\npath = 1\n")
    with pytest.raises(ConfigError, match="unknown key 'sotre'.*ingest.*store"):
        Settings.load(tmp_path)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "demandloop.toml").write_text('[ingest]\nmax_event_bytes = "big"\n')
    with pytest.raises(ConfigError, match="'ingest.max_event_bytes'"):
        Settings.load(tmp_path)


def test_invalid_toml_says_so(tmp_path: Path) -> None:
    (tmp_path / "demandloop.toml").write_text("[store\npath=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(tmp_path)


def test_example_file_documents_every_field_and_loads_to_defaults(tmp_path: Path) -> None:
    text = example_toml()
    for section, field in Settings.model_fields.items():
        assert f"[{section}]" in text
        for name in field.annotation.model_fields:  # type: ignore[union-attr]
            assert name in text
    (tmp_path / "demandloop.toml").write_text(text)
    assert Settings.load(tmp_path) == Settings.load(None)


def test_init_writes_and_refuses_to_overwrite(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("init", str(tmp_path / "w"))
    assert code == 0 and (tmp_path / "w" / "demandloop.toml").is_file()
    before = (tmp_path / "w" / "demandloop.toml").read_text()
    (tmp_path / "w" / "demandloop.toml").write_text("# mine\n")
    code, _, err = cli("init", str(tmp_path / "w"))
    assert code == 2 and "already exists" in err and "--force" in err
    assert (tmp_path / "w" / "demandloop.toml").read_text() == "# mine\n"
    assert cli("init", str(tmp_path / "w"), "--force")[0] == 0
    assert (tmp_path / "w" / "demandloop.toml").read_text() == before


def test_cli_reports_bad_config_in_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "demandloop.toml").write_text("[store]\nbogus = 1\n")
    code, out, err = cli("-w", str(tmp_path), "status")
    assert code == 2
    assert err.count("\n") == 1 and "unknown key 'store.bogus'" in err
    assert not (tmp_path / "demandloop.duckdb").exists()


def test_the_init_file_extends_the_way_the_docs_show(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Lists of tables are written as [[...]] (or commented examples): appending the docs'
    blocks to the file 'init' wrote works, and 'config show' prints every section header."""
    d = tmp_path / "w"
    assert cli("init", str(d))[0] == 0
    with (d / "demandloop.toml").open("a") as fh:
        fh.write('\n[[activate.mailboxes]]\nname = "ana"\naddress = "ana@mail.example.com"\n'
                 '\n[[activate.segments]]\nname = "hot"\nentity = "account"\n'
                 'where = [{field = "stage", op = "==", value = "mqa"}]\n')
    code, out, err = cli("-w", str(d), "config", "show")
    assert code == 0, err
    from demandloop.config import Settings

    s = Settings.load(d)
    assert [b.name for b in s.activate.mailboxes] == ["ana"]
    defaults = [seg.name for seg in Settings().activate.segments]
    assert [seg.name for seg in s.activate.segments] == [*defaults, "hot"]
    sections = [line for line in out.splitlines() if line.startswith("[")]
    assert sections[:3] == ["[workspace]", "[store]", "[ingest]"]
    assert sections == [f"[{name}]" for name in Settings.load(d).public_dict()]
    # the default stages are written out in full and read back as they were
    assert Settings.load(d).score.stages == Settings().score.stages


def test_a_bad_environment_variable_is_blamed_not_the_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    (tmp_path / "demandloop.toml").write_text("[collector]\nport = 9000\n")
    monkeypatch.setenv("DEMANDLOOP_COLLECTOR__PORT", "not-a-port")
    with pytest.raises(ConfigError) as err:
        Settings.load(tmp_path)
    assert str(err.value).startswith("environment variable DEMANDLOOP_COLLECTOR__PORT: ")
    monkeypatch.delenv("DEMANDLOOP_COLLECTOR__PORT")
    (tmp_path / "demandloop.toml").write_text("[collector]\nport = 0\n")
    with pytest.raises(ConfigError) as err:
        Settings.load(tmp_path)
    assert str(err.value).startswith(str(tmp_path / "demandloop.toml"))


def test_a_setting_variable_that_names_no_setting_is_refused(
        cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A typo in a variable's section, or one underscore where two belong, was ignored
    without a word (pydantic reads only the sections' own names): the setting the user
    meant silently kept its default. Variables that are not settings stay allowed."""
    w = tmp_path / "w"
    assert cli("-w", str(w), "status")[0] == 0
    for key, said in (("DEMANDLOOP_SCOR__HALF_LIFE_DAYS", "unknown section 'scor'"),
                      ("DEMANDLOOP_STORE_MEMORY_LIMIT", "DEMANDLOOP_STORE__MEMORY_LIMIT")):
        monkeypatch.setenv(key, "1GB")
        code, out, err = cli("-w", str(w), "status")
        assert code == 2 and out == "" and key in err and said in err, err
        assert len(err.strip().splitlines()) == 1, err
        monkeypatch.delenv(key)
    for key in ("DEMANDLOOP_DEBUG", "DEMANDLOOP_REQUIRE_BROWSER", "DEMANDLOOP_DIR"):
        monkeypatch.setenv(key, "")
    assert cli("-w", str(w), "status")[0] == 0


@pytest.mark.parametrize("size", ["lots", "80%", "100", "0MB", "-1GB", "2 gigabytes", "1,5GB"])
def test_a_memory_limit_that_is_not_a_size_is_refused_before_the_database_opens(
        cli, tmp_path: Path, size: str) -> None:  # type: ignore[no-untyped-def]
    # DuckDB refused some of these only on opening ("cannot open database"), and took
    # '-1GB' as no limit and '2 gigabytes' as none at all
    (tmp_path / "demandloop.toml").write_text(f'[store]\nmemory_limit = "{size}"\n')
    code, _, err = cli("-w", str(tmp_path), "status")
    assert code == 2
    assert err.count("\n") == 1
    assert f"invalid value for 'store.memory_limit': '{size}' is not a size" in err
    assert "cannot open" not in err and "Value error" not in err
    assert not (tmp_path / "demandloop.duckdb").exists()


@pytest.mark.parametrize("size", ["1800MB", "1.5 GiB", "4gb", "512KiB"])
def test_memory_limits_as_duckdb_writes_them_are_taken(tmp_path: Path, size: str) -> None:
    import duckdb

    (tmp_path / "demandloop.toml").write_text(f'[store]\nmemory_limit = "{size}"\n')
    assert Settings.load(tmp_path).store.memory_limit == size
    duckdb.connect().execute(f"SET memory_limit = '{size}'")  # and DuckDB takes it too


@pytest.mark.parametrize(("caps", "says"), [
    ("{pageview = 5}", "unknown activity 'pageview' (activities: page_view,"),
    ("{page_view = -1}", "the cap of 'page_view' is -1.0: a cap is 0 or more"),
    ("{form_fill = nan}", "the cap of 'form_fill' is nan"),
])
def test_a_daily_cap_on_no_activity_or_below_zero_is_refused(tmp_path: Path, caps: str,
                                                             says: str) -> None:
    (tmp_path / "demandloop.toml").write_text(f"[score]\ndaily_caps = {caps}\n")
    with pytest.raises(ConfigError, match="'score.daily_caps'") as e:
        Settings.load(tmp_path)
    assert says in str(e.value)


_REP = '[[meetings.reps]]\nname = "ann"\nemail = "ann@x.com"\n'
_BOX = ('[[activate.mailboxes]]\nname = "m"\naddress = "m@x.com"\ntransport = "file"\n')


@pytest.mark.parametrize(("toml", "says"), [
    # each was taken, and then did nothing, in silence: every invite "not sent", every
    # rule routed to the fallback, every chat answer failed over, a greeting never shown
    ('[meetings]\nfallback = ["ann"]\nmailbox = "sdr"\n' + _REP,
     "meetings.mailbox: no mailbox 'sdr' (mailboxes: none"),
    ('[meetings]\nfallback = ["ann"]\n' + _REP + '[[meetings.rules]]\nname = "dach"\n'
     'reps = ["ann"]\n[[meetings.rules.where]]\nfield = "territory"\nvalue = "DE"\n',
     "'meetings.rules[1].where': field 'territory' is unknown (fields: account_id,"),
    ('[chat.llm]\nbase_url = "localhost:11434"\nmodel = "m"\n',
     "base_url 'localhost:11434' must start with http:// or https://"),
    ('[chat.llm]\nbase_url = "http://127.0.0.1:11434/v1"\n', "model is required"),
    # written into every invite link and handed to analytics.js; into every message's
    # List-Unsubscribe, where no client shows it and Gmail finds no one-click link
    ('[collector]\npublic_url = "collect.example.com"\n',
     "public_url 'collect.example.com' must start with http:// or https://"),
    ('[activate.mail]\nunsubscribe_url = "dl.example.com/u"\n',
     "unsubscribe_url 'dl.example.com/u' must start with http:// or https://"),
    ('[collector]\npublic_url = "https://"\n', "public_url 'https://' must start with"),
    ('[activate.mail]\nunsubscribe_mailto = "unsub at example"\n',
     "unsubscribe_mailto 'unsub at example' is not an email address"),
    ('[[activate.mailboxes]]\nname = "m"\naddress = "m@x.com"\ntransport = "file"\n'
     'display_name = """Ana\nRuiz"""\n', "display_name must be one line"),
    # (refused only when a funnel was asked for)
    ('[measure]\nengaged_stage = "engagd"\n',
     "measure.engaged_stage: no stage 'engagd' (stages: customer,"),
    ('[[chat.playbooks]]\nname = "p"\ngreeting = "Hi {{ account.name "\n',
     "the greeting is not a valid template: unexpected end of template, expected "
     "'end of print statement' (line 1)"),
    # it rendered empty for every visitor: "Hi " and nothing
    ('[[chat.playbooks]]\nname = "p"\ngreeting = "Hi {{ person.first_name }}"\n',
     "the greeting names 'person.first_name', which no visit has (person's fields: "
     "known, seniority, job_function)"),
    (_BOX + '[[activate.sequences]]\nname = "s"\nmailboxes = ["m"]\n'
     '[[activate.sequences.steps]]\ntype = "email"\nsubject = "Hi"\n'
     'body = "{% if person.title %}Hello\\n"\n',
     "the step's body is not a valid template: Unexpected end of template. Jinja was "
     "looking for the following tags: 'elif' or 'else' or 'endif'"),
])
def test_a_setting_that_could_never_work_is_refused_as_the_file_loads(
        tmp_path: Path, toml: str, says: str) -> None:
    (tmp_path / "demandloop.toml").write_text(toml)
    with pytest.raises(ConfigError) as e:
        Settings.load(tmp_path)
    assert says in str(e.value)
    # mended, each loads
    (tmp_path / "demandloop.toml").write_text(
        toml.replace('mailbox = "sdr"', "").replace('"territory"', '"country"')
        .replace('"localhost:11434"', '"http://localhost:11434"')
        .replace("/v1\"\n", '/v1"\nmodel = "llama3.1:8b"\n')
        .replace("account.name ", "account.name }}")
        .replace("person.first_name", "account.name").replace("Hello\\n", "Hello{% endif %}")
        .replace('"engagd"', '"engaged"').replace('"https://"', '"https://c.example.com"')
        .replace('"collect.example.com"', '"https://collect.example.com"')
        .replace('"dl.example.com/u"', '"https://dl.example.com/u"')
        .replace('"unsub at example"', '"unsub@example.com"')
        .replace('"""Ana\nRuiz"""', '"Ana Ruiz"'))
    Settings.load(tmp_path)


@pytest.mark.parametrize(("rule", "says"), [
    # each was refused only when scoring ran (or compared a number with text there)
    ('{field = "surging", op = ">=", value = "yes"}',
     'surging >= "yes": surging is true or false'),
    ('{field = "fit", op = ">=", value = "50"}', 'fit >= "50": fit is a number'),
    ('{field = "fit", op = "in", value = 50}', "in and not_in take a list"),
    ('{field = "fit", op = ">=", value = [50]}', "in and not_in take a list"),
    ('{field = "people", op = "contains", value = 2}', "contains is for text and lists"),
])
def test_a_stage_rule_comparing_a_feature_with_another_kind_is_refused(
        tmp_path: Path, rule: str, says: str) -> None:
    (tmp_path / "demandloop.toml").write_text(
        f'[score]\nmqa_stage = "hot"\n[measure]\nengaged_stage = "hot"\n'
        f'[[score.stages]]\nname = "hot"\nall = [{rule}]\n')
    with pytest.raises(ConfigError, match=r"'score.stages\[1\].all'") as e:
        Settings.load(tmp_path)
    assert says in str(e.value)
    # the same rule with a value of the feature's kind loads
    good = rule.replace('"yes"', "true").replace('"50"', "50").replace(
        '"in", value = 50', '"in", value = [50]').replace('">=", value = [50]', '">=", value = 50'
                                                          ).replace('"contains", value = 2',
                                                                    '">=", value = 2')
    (tmp_path / "demandloop.toml").write_text(
        f'[score]\nmqa_stage = "hot"\n[measure]\nengaged_stage = "hot"\n'
        f'[[score.stages]]\nname = "hot"\nall = [{good}]\n')
    Settings.load(tmp_path)


def test_the_daily_caps_name_every_activity_a_touch_can_have(tmp_path: Path) -> None:
    from demandloop.config.score import ACTIVITY_NAMES
    from demandloop.enrich.touch_reach import PAGE_ACTIVITIES
    from demandloop.enrich.touches import ACTIVITIES
    from demandloop.score.engagement import EngagementRules

    every = {*PAGE_ACTIVITIES, *(a.name for a in ACTIVITIES)}
    assert set(ACTIVITY_NAMES) == every == set(EngagementRules().caps)
    (tmp_path / "demandloop.toml").write_text(
        "[score]\ndaily_caps = {" + ", ".join(f"{a} = 0" for a in sorted(every)) + "}\n")
    assert Settings.load(tmp_path).score.daily_caps == dict.fromkeys(every, 0.0)


def test_a_personalisation_goal_on_no_activity_is_refused_as_the_file_loads(
        tmp_path: Path) -> None:
    # it was found first when the report ran
    (tmp_path / "demandloop.toml").write_text(
        '[[personalize.goals]]\nname = "demo"\nactivity = "demo_requested"\n')
    with pytest.raises(ConfigError, match=r"'personalize.goals\[1\].activity': unknown activity "
                                          r"'demo_requested' \(use one of page_view"):
        Settings.load(tmp_path)
    (tmp_path / "demandloop.toml").write_text(
        '[[personalize.goals]]\nname = "deal"\nactivity = "opportunity"\n')
    assert Settings.load(tmp_path).personalize.goals[0].activity == "opportunity"

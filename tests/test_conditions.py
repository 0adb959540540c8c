"""The one condition language: column masks equal the row-by-row check for every operator,
missing values never match, and stage rules, segments and workflows all accept it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from demandloop.conditions import OPS, Condition, mask, select
from demandloop.config import Settings
from demandloop.errors import ConfigError

NUMBERS = st.one_of(st.none(), st.just(float("nan")), st.floats(-5, 5, allow_nan=False))
WORDS = st.one_of(st.none(), st.sampled_from(["mqa", "aware", "Software", "soft"]))


@settings(max_examples=80, deadline=None)
@given(nums=st.lists(NUMBERS, min_size=1, max_size=20), data=st.data())
def test_a_mask_equals_the_row_check(nums: list[Any], data: st.DataObject) -> None:
    words = data.draw(st.lists(WORDS, min_size=len(nums), max_size=len(nums)))
    rows = pd.DataFrame({"n": nums, "w": words})
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    for op in OPS:
        if op in ("in", "not_in"):
            conds = [Condition("w", op, ["mqa", "Software"]), Condition("n", op, [1.0, 0.0])]
        elif op == "contains":
            conds = [Condition("w", op, "SOFT")]
        elif op in ("==", "!="):
            conds = [Condition("w", op, "mqa"), Condition("n", op, 0.0)]
        else:
            conds = [Condition("n", op, 0.5)]
        for c in conds:
            assert mask(c, rows).tolist() == [c.holds(r) for r in records], (c, rows)
            # a missing value meets no condition, not even '!='
            assert not any(mask(c, rows)[rows[c.field].isna().to_numpy()])
    both = [Condition("n", ">=", 0.0), Condition("w", "in", ["mqa"])]
    expected = [i for i, r in enumerate(records) if all(c.holds(r) for c in both)]
    assert select(rows, both).index.tolist() == expected


def test_stage_rules_segments_and_workflows_share_the_language() -> None:
    s = Settings.model_validate({
        "score": {"stages": [
            {"name": "mqa", "all": [{"field": "fit", "value": 50}]},  # '>=' by default
            {"name": "target", "all": [{"field": "target", "op": "==", "value": True}]},
            {"name": "none", "all": [{"field": "people", "op": "in", "value": [1, 2]}]}],
            "mqa_stage": "mqa"},
        "measure": {"engaged_stage": "mqa"},  # (a stage of these: 'engaged' is none)
        "activate": {"segments": [{"name": "s", "where": [
            {"field": "stage", "value": "mqa"},  # '==' by default
            {"field": "fit", "op": ">=", "value": 50}]}],
            "workflows": [{"name": "w", "when": {"trigger": "surge"},
                           "if": [{"field": "industry", "op": "contains", "value": "soft"}],
                           "then": [{"action": "notify", "url": "http://x"}]}]}})
    assert s.score.stages[0].all[0].op == ">=" and s.activate.segments[0].where[0].op == "=="
    assert s.activate.workflows[0].if_[0].op == "contains"
    with pytest.raises(Exception, match="unknown field 'colour'"):
        Settings.model_validate({"score": {"stages": [
            {"name": "mqa", "all": [{"field": "colour", "value": 1}]}], "mqa_stage": "mqa"}})


def test_an_unknown_field_in_a_file_is_one_config_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "demandloop.toml").write_text(
        '[[activate.segments]]\nname = "s"\nwhere = [{field = "colour", value = "red"}]\n')
    with pytest.raises(ConfigError, match="unknown account field 'colour'"):
        Settings.load(tmp_path)

"""Command-line overrides: both spellings, bare flags, YAML values, one parser for every caller."""

from __future__ import annotations

import pytest
from litlab.sweeps import outputs

from litlab.overrides import Option, option_values, parse_options, parse_overrides
from litlab.workflows import steps


def test_options_are_read_in_both_spellings_and_a_later_one_wins() -> None:
    options = parse_options(
        [
            "--trainer.max_epochs=3",
            "--data.root",
            "/d",
            "--flag",
            '--x={"a": 1}',
            "--trainer.max_epochs=4",
        ]
    )
    assert options[1] == Option("data.root", "/d") and options[2] == Option("flag", None)
    values = option_values(options)
    assert values == {"trainer.max_epochs": 4, "data.root": "/d", "flag": True, "x": {"a": 1}}
    assert options[1].arg() == "--data.root=/d" and options[2].arg("other") == "--other"
    with pytest.raises(ValueError, match="stray"):
        parse_options(["stray"])


def test_a_bare_flag_before_another_option_takes_no_value() -> None:
    assert parse_overrides(["--data.augment", "--model.lr=0.1", "--trainer.fast_dev_run"]) == {
        "data.augment": True,
        "model.lr": 0.1,
        "trainer.fast_dev_run": True,
    }
    assert parse_overrides(["--data.root="]) == {"data.root": ""}
    for bad in (["positional"], ["--"], ["--a=1", "x", "y"]):
        with pytest.raises(ValueError, match="cannot read override .*--section.key=value"):
            parse_overrides(bad)


def test_sweeps_and_workflows_read_overrides_with_this_parser() -> None:
    assert outputs.parse_overrides is parse_overrides
    assert steps.parse_options is parse_options

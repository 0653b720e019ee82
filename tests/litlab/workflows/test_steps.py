"""Workflow steps: run keys, and a step's state from its folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import litlab.presets
from litlab.workflows.steps import LAST_CHECKPOINT, Step, folder_fingerprint, run_key

PRESET = str(Path(litlab.presets.__file__).parent / "presets" / "autism-resnet50.yaml")


def test_keys_follow_what_changes_a_result_and_nothing_else() -> None:
    base = run_key(PRESET, ["--model.lr=0.1"], "upstream")
    assert run_key(PRESET, ["--model.lr=0.1", "--data.num_workers=8"], "upstream") == base
    assert run_key(PRESET, ["--model.lr=0.1", "--trainer.devices=2"], "upstream") == base
    assert run_key(PRESET, ["--model.lr=0.2"], "upstream") != base
    assert run_key(PRESET, ["--model.lr=0.1"], "other upstream") != base


def test_folder_fingerprint_changes_with_the_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"1")
    first = folder_fingerprint(tmp_path)
    assert folder_fingerprint(tmp_path) == first
    (tmp_path / "a" / "y.png").write_bytes(b"2")
    assert folder_fingerprint(tmp_path) != first
    with pytest.raises(FileNotFoundError, match="does not exist"):
        folder_fingerprint(tmp_path / "missing")


def test_a_step_state_comes_from_its_folder(tmp_path: Path) -> None:
    step = Step("fold 0", ["fit", "--config", PRESET], tmp_path / "fold0")
    assert step.state() == "new" and step.command() == step.argv
    last = step.run_dir / LAST_CHECKPOINT
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    assert step.state() == "interrupted"
    assert step.command() == [*step.argv, f"--ckpt_path={last}"]  # resumed in its own folder
    (step.run_dir / "result.json").write_text(json.dumps({"status": "failed", "error": "x"}))
    assert step.state() == "failed" and step.command()[-1].startswith("--ckpt_path=")
    (step.run_dir / "result.json").write_text(json.dumps({"status": "finished"}))
    assert step.state() == "finished"
    copy = Step("copy", ["workflow", "remove-background"], step.run_dir)
    (step.run_dir / "result.json").unlink()
    assert copy.state() == "new" and copy.command() == copy.argv  # only fits resume


def test_keys_read_the_config_values_not_its_comments(tmp_path: Path) -> None:
    config = tmp_path / "preset.yaml"
    config.write_text("# one\nmodel:\n  init_args:\n    lr: 0.1\n")
    first = run_key(str(config), [])
    config.write_text("# another comment\nmodel:\n  init_args: {lr: 0.1}\n")
    assert run_key(str(config), []) == first
    config.write_text("model:\n  init_args:\n    lr: 0.2\n")
    assert run_key(str(config), []) != first

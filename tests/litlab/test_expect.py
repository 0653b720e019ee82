"""The end-of-target summary: the newest run's metric beside chance and the paper's figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from litlab.expect import EXPECTATIONS, main


def _run(root: Path, preset: str, stamp: str, test: dict[str, float]) -> Path:
    run = root / preset / stamp
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"status": "finished", "val": {}, "test": test}))
    return run


def test_fit_target_prints_newest_run_beside_chance_and_paper(tmp_path, capsys) -> None:
    _run(tmp_path, "fer2013-resnet50", "20240101-000000", {"test/acc": 0.31})
    newest = _run(tmp_path, "fer2013-resnet50", "20240102-000000", {"test/acc": 0.612})
    assert main(["train-fer2013", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test/acc = 0.612" in out and "0.310" not in out
    assert f"chance {EXPECTATIONS['train-fer2013'].chance:.3f}" in out
    assert "paper 0.607" in out and str(newest) in out


def test_autism_prints_both_arms_and_says_which_is_missing(tmp_path, capsys) -> None:
    _run(tmp_path, "autism-resnet50", "20240101-000000", {"test/acc": 0.75})
    main(["train-autism", "--runs", str(tmp_path)])
    out = capsys.readouterr().out
    assert "autism-resnet50 test/acc = 0.750" in out and "paper 0.837" in out
    assert "no finished run of autism-seg-resnet50" in out


def test_sweep_counts_plateau_trials(tmp_path, capsys) -> None:
    study = tmp_path / "liver-tpe"
    (study / "best-test" / "csv").mkdir(parents=True)  # a `litlab test` run: no result.json
    (study / "best-test" / "csv" / "metrics.csv").write_text(
        "epoch,step,test/dice_liver,test/miou\n0,0,0.9,0.91\n"
    )
    (study / "trials.csv").write_text(
        "number,state,value\n0,COMPLETE,0.91\n1,COMPLETE,0.0\n2,FAIL,\n3,PRUNED,0.02\n"
    )
    main(["sweep-liver", "--study", str(study)])
    out = capsys.readouterr().out
    assert "best trial test/dice_liver = 0.900" in out
    assert "2 of 3 trials (complete or pruned) ended on the all-background plateau" in out


def test_sweep_without_study_folder_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["sweep-liver"])
    assert stop.value.code == 2


def test_train_liver_prints_the_runs_test_liver_dice(tmp_path, capsys) -> None:
    _run(tmp_path, "liver-deeplabv3plus", "20240101-000000", {"test/dice_liver": 0.874})
    assert main(["train-liver", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train-liver: test/dice_liver = 0.874" in out
    assert "chance 0.000: background everywhere" in out and "paper 0.965" in out


def test_fer2013_on_embedded_data_reads_the_standard_stem_arm(tmp_path, capsys) -> None:
    _run(tmp_path, "fer2013-resnet50", "20240101-000000", {"test/acc": 0.31})
    _run(tmp_path, "fer2013-resnet50-standard", "20240101-000000", {"test/acc": 0.55})
    main(["train-fer2013", "--runs", str(tmp_path), "--preset", "fer2013-resnet50-standard"])
    out = capsys.readouterr().out
    assert "fer2013-resnet50-standard test/acc = 0.550" in out and "0.310" not in out
    assert "no figure for this preset; its best is 0.607" in out


def test_a_preset_the_target_never_fits_is_refused(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train-fer2013", "--runs", str(tmp_path), "--preset", "ckplus-resnet50"])
    assert stop.value.code == 2
    assert "train-fer2013 fits one of fer2013-resnet50, fer2013-resnet50-standard" in (
        capsys.readouterr().err
    )

"""``litlab preview``, ``litlab cv`` (folds as runs, resumable) and fast_dev_run of the CK+ presets."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import timm
import torch
import yaml

import litlab.presets
from litlab import cv as litcv
from litlab import preview
from litlab.report.run_folders import cv_runs

# Preset files by path: under pytest the name ``litlab`` can resolve to the tests/litlab folder
# (a namespace package ahead of the editable install), which breaks lookups by preset name.
PRESETS = Path(litlab.presets.__file__).parent / "presets"
SCRATCH = str(PRESETS / "ckplus-resnet50-scratch.yaml")
TRANSFER = str(PRESETS / "ckplus-resnet50.yaml")

COMMON = [
    "--trainer.fast_dev_run=true",
    "--data.num_workers=0",
    "--data.synthetic_subjects=12",
    "--wandb_mode=disabled",
]


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("anger", "happy"):
        for i in range(2):
            (root / name).mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 256, (40 + 8 * i, 40)).astype(np.uint8)  # mixed sizes
            cv2.imwrite(str(root / name / f"S01{i}_001_0000000{i}.png"), image)
    return root


def test_preview_writes_a_grid(tmp_path: Path) -> None:
    root = _folder(tmp_path / "faces")
    config = tmp_path / "preset.yaml"
    config.write_text(
        yaml.safe_dump(
            {"data": {"class_path": "x.Y", "init_args": {"root": None, "canny_low": 10}}}
        )
    )
    out = tmp_path / "grid.png"
    code = preview.main(
        ["--config", str(config), f"--data.root={root}", "--out", str(out), "--per_class", "2"]
    )
    assert code == 0
    grid = cv2.imread(str(out))
    # 4 rows (2 classes x 2) by 4 columns of 2-inch panels at 100 dpi.
    assert grid.shape[0] == 800 and grid.shape[1] == 800
    assert preview.main(["--config", str(config), "--out", str(out)]) == 2  # no root given
    assert preview.main(["--config", str(config), "--data.root", str(tmp_path / "none")]) == 2


def test_preview_of_the_preset_uses_the_embedded_data(tmp_path: Path) -> None:
    out = tmp_path / "ck.png"
    assert (
        preview.main(["--config", TRANSFER, "--data.synthetic_subjects=12", "--out", str(out)]) == 0
    )
    assert cv2.imread(str(out)).shape[0] == 7 * 200  # one row per CK+ class


def test_fold_args_and_reserved_overrides() -> None:
    args = litcv.fold_args("ckplus-resnet50", 3, 10, ["--trainer.max_epochs=2"])
    assert args[:5] == [
        "--config",
        "ckplus-resnet50",
        "--data.split=subject",
        "--data.fold=3",
        "--data.n_folds=10",
    ]
    assert "--preset_name=ckplus-resnet50-cv" in args and args[-1] == "--trainer.max_epochs=2"
    assert not any(
        a.startswith("--preset_name") for a in litcv.fold_args("p", 0, 2, ["--preset_name=x"])[:-1]
    )
    for reserved in ("--data.split=random", "--test_after_fit=false"):
        with pytest.raises(ValueError, match="conflicts"):
            litcv.fold_args("p", 0, 5, [reserved])
    with pytest.raises(ValueError, match="fold"):
        litcv.fold_args("p", 5, 5, [])


def test_aggregate_and_csv(tmp_path: Path) -> None:
    results = [
        {"test/acc": 0.5, "test/f1": 0.4},
        {"test/acc": 0.7, "test/f1": 0.6},
        {"test/acc": 0.9},
    ]
    summary = litcv.aggregate(results)
    assert summary["test/acc"][0] == pytest.approx(0.7)
    assert summary["test/acc"][1] == pytest.approx(np.std([0.5, 0.7, 0.9], ddof=1))
    assert summary["test/f1"] == pytest.approx((0.5, np.std([0.4, 0.6], ddof=1)))
    assert litcv.aggregate([{"a": 1.0}])["a"] == (1.0, 0.0)
    path = litcv.write_csv(tmp_path / "cv.csv", [0, 1, 2], results)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["fold", "test/acc", "test/f1"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "mean", "std"]
    assert float(rows[4][1]) == pytest.approx(0.7) and rows[3][2] == ""
    assert "0.7000 ± 0.2000" in litcv.format_summary(summary, 3)


def _finish(step, status: str = "finished", **test: float) -> None:
    step.run_dir.mkdir(parents=True, exist_ok=True)
    result = {"status": status, "test": test}
    (step.run_dir / "result.json").write_text(json.dumps(result))


def test_summary_is_rebuilt_from_the_folds_results(tmp_path: Path) -> None:
    folder = litcv.cv_folder(SCRATCH, 4, ["--x=1"], tmp_path)
    assert folder == litcv.cv_folder(SCRATCH, 4, ["--x=1", "--data.num_workers=3"], tmp_path)
    assert folder != litcv.cv_folder(SCRATCH, 4, ["--x=2"], tmp_path)
    assert folder != litcv.cv_folder(SCRATCH, 5, ["--x=1"], tmp_path)
    steps = litcv.fold_steps(SCRATCH, 4, ["--x=1"], folder)
    assert [s.run_dir.name for s in steps] == ["fold0", "fold1", "fold2", "fold3"]
    assert all("--data.n_folds=4" in s.argv and s.argv[-1] == "--x=1" for s in steps)
    _finish(steps[0], **{"test/acc": 0.5})
    _finish(steps[1], "failed")
    _finish(steps[2], **{"test/acc": 0.7})
    last = steps[3].run_dir / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    folds, results, unfinished = litcv.fold_results(steps)
    assert folds == [0, 2] and [r["test/acc"] for r in results] == [0.5, 0.7]
    assert unfinished == {1: "failed", 3: "interrupted"}
    assert steps[3].command()[-1] == f"--ckpt_path={last}"  # a killed fold continues in place


def test_bad_cv_options_stop_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert litcv.main(["--config", SCRATCH, "--folds", "5", "--only", "7"]) == 2
    assert litcv.main(["--config", SCRATCH, "--folds", "1"]) == 2
    assert litcv.main(["--config", SCRATCH, "--gpus", "0,1,2", "--gpus-per-fold", "2"]) == 2
    assert "--gpus-per-fold" in capsys.readouterr().out
    assert litcv.device_slots("0,1,2,3", 2, 1) == ["0,1", "2,3"]
    assert litcv.device_slots(None, 1, 3) == [None, None, None]


def _fit(args: list[str]) -> dict[str, float]:
    from litlab.cli import fit_and_test

    return fit_and_test(args)


def test_scratch_preset_fast_dev_run(tmp_path: Path) -> None:
    metrics = _fit(
        [
            "--config",
            SCRATCH,
            "--model.backbone=resnet18",
            f"--output_dir={tmp_path}",
            *COMMON,
        ]
    )
    assert {"test/acc", "test/f1", "test/precision", "test/recall"} <= set(metrics)


def test_transfer_preset_with_local_weights_and_two_channels(tmp_path: Path) -> None:
    weights = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18", num_classes=1000).state_dict(), weights)
    metrics = _fit(
        [
            "--config",
            TRANSFER,
            "--model.backbone=resnet18",
            f"--model.pretrained={weights}",
            "--model.in_chans=2",
            "--data.input_mode=both",
            f"--output_dir={tmp_path}",
            *COMMON,
        ]
    )
    assert "test/acc" in metrics


def test_transfer_preset_offline_names_the_local_alternative(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from litlab.networks import pretrained

    from litlab.cli import main

    monkeypatch.setattr(pretrained, "_hub_reachable", lambda *a, **k: False)
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    code = main(["fit", "--config", TRANSFER, f"--output_dir={tmp_path}", *COMMON])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot be reached" in err and "--model.pretrained=/path/to/fer2013" in err


def test_input_mode_and_in_chans_must_agree(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--model.in_chans=2"):
        _fit(
            [
                "--config",
                SCRATCH,
                "--model.backbone=resnet18",
                "--model.in_chans=1",  # forced against the data (in_chans follows input_mode)
                "--data.input_mode=both",
                f"--output_dir={tmp_path}",
                *COMMON,
            ]
        )


def test_cv_resume_skips_finished_folds_and_runs_folds_in_parallel(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the folds' processes share two cores
    out = tmp_path / "cv.csv"
    argv = ["--config", SCRATCH, "--folds", "3", f"--output_dir={tmp_path}",
            "--model.backbone=resnet18", "--data.val_fraction=0.25", *COMMON]  # fmt: skip

    def steps_log(*extra: str) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="litlab.workflows.steps"):
            assert litcv.main([*argv, *extra]) == 0, capsys.readouterr().out
        return [r.getMessage() for r in caplog.records if r.name == "litlab.workflows.steps"]

    first = steps_log("--only", "0")
    assert [m.split(":")[0] for m in first if ": starting in " in m] == ["fold 0"]
    (folder,) = (tmp_path / "ckplus-resnet50-scratch-cv").iterdir()  # <preset>-cv/<key>
    fold0 = folder / "fold0"
    stamp = (fold0 / "result.json").stat().st_mtime_ns
    log_size = (fold0 / "fit.log").stat().st_size

    # Folds 1 and 2 run at once; fold 0 is not run again.
    second = steps_log("--workers", "2", "--csv", str(out))
    events = [m.split(" in ")[0].split(" (")[0] for m in second]
    assert "fold 0: reused" in events
    assert events.index("fold 2: starting") < min(
        i for i, e in enumerate(events) if e.startswith("fold 1: finished")
    )  # fold 2 started before fold 1 ended
    assert (fold0 / "result.json").stat().st_mtime_ns == stamp
    assert (fold0 / "fit.log").stat().st_size == log_size
    rows = list(csv.reader(out.open()))
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "mean", "std"] and "test/acc" in rows[0]

    # Nothing left to run: the summary is rebuilt from the folds' results alone.
    summary = (folder / litcv.SUMMARY).read_text()
    third = steps_log()
    assert not any(": starting in " in m for m in third)
    assert sum("reused (finished)" in m for m in third) == 3
    assert (folder / litcv.SUMMARY).read_text() == summary
    folds = cv_runs(tmp_path, "ckplus-resnet50-scratch")  # as the CK+ report reads them
    assert [(r.fold, r.preset) for r in folds] == [(k, "ckplus-resnet50-scratch") for k in range(3)]


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["ckplus-resnet50-scratch", "ckplus-resnet50"])
def test_presets_as_shipped_fast_dev_run(preset: str, tmp_path: Path) -> None:
    weights = tmp_path / "r50.pth"
    torch.save(timm.create_model("resnet50", num_classes=1000).state_dict(), weights)
    extra = [f"--model.pretrained={weights}"] if preset == "ckplus-resnet50" else []
    path = str(PRESETS / f"{preset}.yaml")
    metrics = _fit(["--config", path, f"--output_dir={tmp_path}", *COMMON, *extra])
    assert "test/acc" in metrics

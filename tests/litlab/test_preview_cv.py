"""``litlab preview``, ``litlab cv`` and fast_dev_run of the CK+ presets."""

from __future__ import annotations

import csv
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
    assert "--preset_name=ckplus-resnet50-cv/fold3" in args and args[-1] == "--trainer.max_epochs=2"
    assert not any(
        a.startswith("--preset_name") for a in litcv.fold_args("p", 0, 2, ["--preset_name=x"])[:-1]
    )
    with pytest.raises(ValueError, match="conflicts"):
        litcv.fold_args("p", 0, 5, ["--data.split=random"])
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


def test_run_cv_calls_every_fold_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def fake(args: list[str]) -> dict[str, float]:
        calls.append(args)
        fold = int(next(a for a in args if a.startswith("--data.fold=")).split("=")[1])
        return {"test/acc": 0.1 * fold}

    folds, results = litcv.run_cv("ckplus-resnet50", 4, overrides=["--x=1"], runner=fake)
    assert folds == [0, 1, 2, 3] and [r["test/acc"] for r in results] == pytest.approx(
        [0, 0.1, 0.2, 0.3]
    )
    assert all("--data.n_folds=4" in c and c[-1] == "--x=1" for c in calls)
    import litlab.cli

    monkeypatch.setattr(litlab.cli, "fit_and_test", fake)
    out = tmp_path / "cv.csv"
    assert (
        litcv.main(
            ["--config", "ckplus-resnet50", "--folds", "5", "--only", "1,3", "--csv", str(out)]
        )
        == 0
    )
    assert [r[0] for r in csv.reader(out.open())][1:3] == ["1", "3"]
    assert litcv.main(["--config", "ckplus-resnet50", "--folds", "5", "--only", "7"]) == 2


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


def test_cv_two_folds_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "cv.csv"
    code = litcv.main(
        [
            "--config",
            SCRATCH,
            "--folds",
            "2",
            "--csv",
            str(out),
            "--model.backbone=resnet18",
            "--data.val_fraction=0.25",
            f"--output_dir={tmp_path}",
            *COMMON,
        ]
    )
    assert code == 0
    rows = list(csv.reader(out.open()))
    assert [r[0] for r in rows[1:]] == ["0", "1", "mean", "std"] and "test/acc" in rows[0]


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["ckplus-resnet50-scratch", "ckplus-resnet50"])
def test_presets_as_shipped_fast_dev_run(preset: str, tmp_path: Path) -> None:
    weights = tmp_path / "r50.pth"
    torch.save(timm.create_model("resnet50", num_classes=1000).state_dict(), weights)
    extra = [f"--model.pretrained={weights}"] if preset == "ckplus-resnet50" else []
    path = str(PRESETS / f"{preset}.yaml")
    metrics = _fit(["--config", path, f"--output_dir={tmp_path}", *COMMON, *extra])
    assert "test/acc" in metrics

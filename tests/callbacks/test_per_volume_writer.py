"""PerVolumeWriter: rows from scores, and per_volume.csv of a real liver fit checked by hand."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from litlab.callbacks.per_volume_writer import (
    PER_VOLUME_FILE,
    per_volume_rows,
    summary_line,
    write_per_volume_csv,
)
from litlab.lightning_modules.segmentation import SegmentationModule

from litlab.cli import run_cli
from tests.litlab_process import run_litlab


def test_rows_carry_counts_spacing_and_millilitres(tmp_path: Path) -> None:
    scores = {
        "volumes": torch.tensor([0, 2]),
        "slices": torch.tensor([4, 3]),
        "counts": torch.tensor([[[30, 10, 0]], [[5, 0, 5]]]),
        "dice": torch.tensor([[0.857142], [0.666667]], dtype=torch.float64),
        "iou": torch.tensor([[0.75], [0.5]], dtype=torch.float64),
    }
    info = {"volume-0": {"split": "test", "spacing": (2.0, 2.0, 5.0)}}
    rows = per_volume_rows(scores, ["liver"], ["volume-0", "volume-1", "volume-2"], info)
    assert [r["volume"] for r in rows] == ["volume-0", "volume-2"]
    assert rows[0]["liver_truth_ml"] == pytest.approx(30 * 20 / 1000)  # 30 voxels of 20 mm^3
    assert rows[0]["liver_pred_ml"] == pytest.approx(40 * 20 / 1000)
    assert math.isnan(rows[1]["spacing_row_mm"]) and math.isnan(rows[1]["liver_truth_ml"])
    path = write_per_volume_csv(tmp_path / PER_VOLUME_FILE, rows)
    read = list(csv.DictReader(path.open()))
    assert read[0]["liver_tp"] == "30" and read[0]["split"] == "test"
    assert float(read[1]["liver_dice"]) == pytest.approx(2 / 3, abs=1e-5)
    summary = {
        "dice": scores["dice"],
        "dice_mean": torch.tensor([0.7619]),
        "dice_std": torch.tensor([0.1347]),
        "iou_mean": torch.tensor([0.625]),
        "iou_std": torch.tensor([0.1768]),
        "dice_global": torch.tensor([0.8]),
    }
    line = summary_line(summary, "liver")
    assert line == (
        "liver: per-volume Dice 0.7619 ± 0.1347, IoU 0.6250 ± 0.1768 over 2 volume(s); "
        "global Dice 0.8000"
    )


def _volumes(
    root: Path, n: int = 6, size: int = 32, depth: int = 4, first_liver: int = 1
) -> dict[str, float]:
    """``n`` NIfTI volumes, each with a liver block from slice ``first_liver`` on and its own
    in-plane spacing (mm)."""
    rng = np.random.default_rng(0)
    spacing = {}
    for i in range(n):
        mm = 0.6 + 0.1 * i
        hu = rng.normal(-50, 30, (size, size, depth)).astype(np.int16)
        seg = np.zeros((size, size, depth), np.uint8)
        seg[6 + i : 20 + i, 8:24, first_liver:] = 1
        hu[seg == 1] = 120
        affine = np.diag([mm, mm, 2.5, 1.0])
        nib.save(nib.Nifti1Image(hu, affine), root / f"volume-{i}.nii.gz")
        nib.save(nib.Nifti1Image(seg, affine), root / f"segmentation-{i}.nii.gz")
        spacing[f"volume-{i}"] = mm
    return spacing


def test_fit_writes_per_volume_csv_that_matches_the_kept_model(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "lits"
    root.mkdir()
    spacing = _volumes(root)
    cli = run_cli(
        [
            "fit",
            "--config",
            "liver-deeplabv3plus",
            f"--data.root={root}",
            "--data.image_size=32",
            "--data.split_fractions=[0.5,0.17,0.33]",
            "--data.num_workers=0",
            "--data.batch_size=3",  # a volume's 4 slices span two batches
            # training: the 3 liver slices of 3 patients, 3 full batches (batch norm cannot
            # train on a last batch of one slice)
            "--data.empty_slice_fraction=0",
            "--model.arch=Unet",
            "--model.encoder_name=tu-resnet10t",
            "--model.num_overlays=2",
            "--trainer.max_epochs=1",
            "--trainer.accelerator=cpu",
            "--wandb_mode=disabled",
            f"--output_dir={tmp_path / 'runs'}",
        ]
    )
    run = Path(cli.trainer.default_root_dir)
    rows = list(csv.DictReader((run / PER_VOLUME_FILE).open()))
    test = cli.datamodule.split_patients["test"]
    assert sorted(r["volume"] for r in rows) == sorted(test) and len(test) == 2
    assert {r["split"] for r in rows} == {"test"} and {r["slices"] for r in rows} == {"4"}

    # By hand: the kept model's prediction of every slice of each test volume, pooled per volume.
    # Batched differently from the test loop, a pixel at a logit tie may flip (~1e-3 of Dice).
    model = SegmentationModule.load_from_checkpoint(cli.trainer.checkpoint_callback.best_model_path)
    model.eval()
    dm = cli.datamodule
    dice = {}
    for name in test:
        index = np.flatnonzero(dm.slices.patients == name)
        images = torch.from_numpy(dm.slices.images[index].astype(np.float32) / 255.0)[:, None]
        with torch.no_grad():
            pred = model(images).argmax(1).numpy() == 1
        truth = dm.slices.masks[index] == 1
        dice[name] = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
    for row in rows:
        assert float(row["liver_dice"]) == pytest.approx(dice[row["volume"]], abs=2e-3)
        # 32 voxels of `mm` resized to 32 pixels: the spacing is the header's
        assert float(row["spacing_row_mm"]) == pytest.approx(spacing[row["volume"]], rel=1e-5)
        assert float(row["spacing_slice_mm"]) == pytest.approx(2.5)
        assert int(row["liver_tp"]) + int(row["liver_fn"]) == 14 * 16 * 3  # the liver block
    mean = np.mean(list(dice.values()))
    assert cli.test_results["test/dice_volume"] == pytest.approx(mean, abs=2e-3)
    assert "test/dice_global" in cli.test_results
    overlays = sorted(p.name.split("-")[0] for p in (run / "images").glob("*overlay*"))
    assert overlays == ["test_overlay", "val_overlay"]


def _liver_args(root: Path, out: Path) -> list[str]:
    return [
        "--config", "liver-deeplabv3plus", f"--data.root={root}", "--data.image_size=32",
        "--data.split_fractions=[0.43,0.14,0.43]", "--data.num_workers=0", "--data.batch_size=2",
        "--model.arch=Unet", "--model.encoder_name=tu-resnet10t", "--model.num_overlays=0",
        "--trainer.accelerator=cpu", "--wandb_mode=disabled", f"--output_dir={out}",
    ]  # fmt: skip


@pytest.mark.slow
def test_two_process_ddp_scores_each_volume_as_one_process(tmp_path: Path) -> None:
    """3 test volumes of 5 slices: 15 slices, so the DistributedSampler repeats one on rank 1.
    The liver voxels of each volume (truth, whatever the model predicts) must each count once."""
    root = tmp_path / "lits"
    root.mkdir()
    _volumes(root, n=7, depth=5, first_liver=0)
    args = [*_liver_args(root, tmp_path / "runs"), "--trainer.max_epochs=1",
            "--trainer.devices=2", "--trainer.strategy=ddp"]  # fmt: skip
    run_litlab(["fit", *args], timeout=900)
    (run,) = (tmp_path / "runs" / "liver-deeplabv3plus").iterdir()
    ddp = {r["volume"]: r for r in csv.DictReader((run / PER_VOLUME_FILE).open())}
    assert len(ddp) == 3 and {r["slices"] for r in ddp.values()} == {"5"}
    for name, row in ddp.items():
        i = int(name.split("-")[1])
        assert int(row["liver_tp"]) + int(row["liver_fn"]) == 14 * 16 * 5, (name, i)
    single = run_cli(
        ["test", *_liver_args(root, tmp_path / "single"),
         f"--ckpt_path={run / 'checkpoints' / 'best.ckpt'}"]
    )  # fmt: skip
    one = {
        r["volume"]: r
        for r in csv.DictReader((Path(single.trainer.default_root_dir) / PER_VOLUME_FILE).open())
    }
    assert one.keys() == ddp.keys()
    for name in one:
        assert float(ddp[name]["liver_dice"]) == pytest.approx(
            float(one[name]["liver_dice"]), abs=2e-3
        )

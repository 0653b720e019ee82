"""Segment-then-classify: cached stages, Trainer settings reaching the nested stage, both presets."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import cv2
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from litlab.datamodules.autism import AutismSegmentedDataModule, index_autism_layout
from litlab.datamodules.synthetic.autism import write_autism_folders
from litlab.lightning_modules.pipeline import StageTrainerSettings, isolated_rng

import litlab.report
from litlab.cli import run_cli
from litlab.presets import PRESET_DIR

PRESETS = PRESET_DIR
COUNTS = {"train": 4, "valid": 2, "test": 2}
SMALL_SEGMENTER = {
    "image_size": 32,
    "segmenter_encoder": "resnet18",
    "segmenter_max_epochs": 1,
    "segmenter_batch_size": 4,
    "grabcut_size": 32,
    "num_workers": 0,
}


def _messages(caplog) -> str:
    return "\n".join(
        r.getMessage() for r in caplog.records if r.name == "litlab.lightning_modules.pipeline"
    )


def test_second_run_reuses_every_cached_stage(tmp_path: Path, caplog) -> None:
    root = str(write_autism_folders(tmp_path / "faces", COUNTS))
    with caplog.at_level(logging.INFO):
        first = AutismSegmentedDataModule(root=root, **SMALL_SEGMENTER)
        first.prepare_data()
        first.setup("fit")
    log1 = _messages(caplog)
    assert "training the DeepLabV3Plus/resnet18 face segmenter" in log1
    assert "wrote the zero-background copy" in log1
    copy = first.image_root()
    assert copy.is_dir() and len(index_autism_layout(copy).pooled()[0]) == 16
    stamp = (copy.parent / "DONE.json").stat().st_mtime_ns

    caplog.clear()
    with caplog.at_level(logging.INFO):
        second = AutismSegmentedDataModule(root=root, **SMALL_SEGMENTER)
        second.prepare_data()
        second.setup("fit")
    log2 = _messages(caplog)
    assert "reusing cached segmented copy" in log2
    assert "training" not in log2 and "wrote" not in log2
    assert (copy.parent / "DONE.json").stat().st_mtime_ns == stamp

    # Another background mode: the segmenter is reused, only the copy is rebuilt.
    caplog.clear()
    with caplog.at_level(logging.INFO):
        blur = AutismSegmentedDataModule(root=root, background="blur", **SMALL_SEGMENTER)
        blur.prepare_data()
    log3 = _messages(caplog)
    assert "reusing cached segmenter" in log3 and "wrote the blur-background copy" in log3
    assert blur.image_root() != copy


def test_segmented_copy_removes_background_and_keeps_the_layout(tmp_path: Path) -> None:
    root = write_autism_folders(tmp_path / "faces", COUNTS)
    dm = AutismSegmentedDataModule(root=str(root), **SMALL_SEGMENTER)
    dm.prepare_data()
    dm.setup("fit")
    copy = dm.image_root()
    masks_root = dm.chain().copy_masks_root()
    for image_path in sorted(copy.rglob("*.png")):
        rel = image_path.relative_to(copy)
        assert (root / rel.with_suffix(".jpg")).is_file()  # same <split>/<class>/<stem>
        image = cv2.imread(str(image_path))
        mask = cv2.imread(str(masks_root / rel), cv2.IMREAD_GRAYSCALE)
        assert image.shape[:2] == mask.shape == (32, 32)
        assert not image[mask == 0].any()  # zero mode: nothing left outside the predicted face
    info = dm.describe()
    assert info["arm"] == "segmented" and info["background"] == "zero"
    assert info["duplicates"]["test"] == 4 and len(info["source_test_paths"]) == 4


def test_stage_settings_follow_the_outer_trainer() -> None:
    trainer = pl.Trainer(
        accelerator="cpu", fast_dev_run=True, logger=False, enable_checkpointing=False
    )
    stage = StageTrainerSettings.from_trainer(trainer)
    assert stage.accelerator == "cpu" and stage.fast_dev_run == 1
    plain = StageTrainerSettings.from_trainer(
        pl.Trainer(
            accelerator="cpu", limit_train_batches=3, logger=False, enable_checkpointing=False
        )
    )
    assert plain.fast_dev_run is False and plain.limit_train_batches == 3
    assert stage.token() != plain.token() != StageTrainerSettings().token()
    assert StageTrainerSettings.from_trainer(None) == StageTrainerSettings()


def test_nested_stage_leaves_the_callers_random_state_alone() -> None:
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    expected = (torch.rand(1).item(), np.random.rand(), random.random())
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    with isolated_rng(123):
        torch.rand(100)
        np.random.rand(100)
    assert (torch.rand(1).item(), np.random.rand(), random.random()) == expected


def test_given_segmenter_checkpoint_must_exist(tmp_path: Path) -> None:
    root = str(write_autism_folders(tmp_path / "faces", COUNTS))
    dm = AutismSegmentedDataModule(root=root, segmenter_checkpoint=str(tmp_path / "nope.ckpt"))
    with pytest.raises(FileNotFoundError, match="autism-face-segmenter"):
        dm.prepare_data()
    with pytest.raises(ValueError, match="multiple of 16"):
        AutismSegmentedDataModule(image_size=40)
    with pytest.raises(ValueError, match="background"):
        AutismSegmentedDataModule(background="grey")


TINY_CLI = [
    "--trainer.fast_dev_run=true",
    "--trainer.accelerator=cpu",
    "--wandb_mode=disabled",
    "--data.image_size=32",
    "--data.batch_size=4",
    "--data.num_workers=0",
    '--data.synthetic_counts={"train": 4, "valid": 2, "test": 2}',
    "--model.backbone=resnet18",  # the test is about the chain's wiring, not the architecture
]


def test_fast_dev_run_of_both_presets_and_the_report(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    raw = run_cli(["fit", "--config", str(PRESETS / "autism-resnet50.yaml"), *TINY_CLI])
    seg = run_cli(
        [
            "fit",
            "--config",
            str(PRESETS / "autism-seg-resnet50.yaml"),
            *TINY_CLI,
            "--data.segmenter_batch_size=4",
            "--data.segmenter_encoder=resnet18",
            "--data.grabcut_size=32",
        ]
    )
    assert "test/acc" in raw.test_results and "test/acc" in seg.test_results
    # fast_dev_run reached the nested segmenter stage and made a smoke-sized copy
    chain = seg.datamodule.chain()
    done = json.loads((chain.segmenter_dir() / "DONE.json").read_text())
    assert done["stage"]["fast_dev_run"] == 1
    copy_info = json.loads((chain.copy_dir() / "DONE.json").read_text())
    assert copy_info["fast_dev_run_subset"] == 4
    # both arms classify the same test images (raw files vs their segmented copies)
    raw_info = raw.datamodule.describe()
    seg_info = seg.datamodule.describe()
    assert raw_info["test_paths"] == seg_info["source_test_paths"][: len(raw_info["test_paths"])]

    for cli in (raw, seg):
        written = json.loads(
            (Path(cli.trainer.default_root_dir) / "test_confusion.json").read_text()
        )
        assert np.asarray(written["matrix"]).sum() == 4 and written["fast_dev_run"] is True
    capsys.readouterr()
    assert litlab.report.main(["autism", "--runs", "runs", "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "83.7%" in out and "85.9%" in out and "fast_dev_run" in out
    assert (tmp_path / "rep" / "examples-raw-mask-segmented.png").is_file()

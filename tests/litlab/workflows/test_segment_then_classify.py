"""Segment-then-classify as three runs: options reach their step, keys, the stage cache, the report."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from litlab.datamodules.autism_layout import index_autism_layout
from litlab.datamodules.synthetic.autism import write_autism_folders

import litlab.report
from litlab.presets import PRESET_DIR
from litlab.workflows import cli as workflow_cli
from litlab.workflows.segment_then_classify import SegmentThenClassify

COUNTS = {"train": 4, "valid": 2, "test": 2}
SMALL = [
    "--data.image_size=32",
    "--data.batch_size=4",
    "--data.num_workers=0",
    f"--data.synthetic_counts={json.dumps(COUNTS)}",
    "--trainer.accelerator=cpu",
    "--wandb_mode=disabled",
    "--model.backbone=resnet18",  # the tests are about the steps' wiring, not the architectures
    "--segmenter.model.encoder_name=resnet18",
    "--segmenter.data.batch_size=4",
    "--segmenter.data.grabcut_size=32",
]


def test_options_reach_the_steps_they_describe(tmp_path: Path) -> None:
    workflow = SegmentThenClassify(
        [*SMALL, "--trainer.fast_dev_run=true", "--segmenter.model.lr=0.01"], output_dir=tmp_path
    )
    segmenter = workflow.segmenter_step()
    argv = segmenter.argv
    assert argv[:2] == ["fit", "--config"] and argv[2].endswith("autism-face-segmenter.yaml")
    assert (
        "--data.image_size=32" in argv and f"--data.synthetic_counts={json.dumps(COUNTS)}" in argv
    )
    assert "--trainer.accelerator=cpu" in argv and "--model.lr=0.01" in argv
    assert "--model.backbone=resnet18" not in argv  # the classifier's model stays its own
    # fast_dev_run saves no checkpoint: the segmenter trains one batch of one epoch instead
    assert "--trainer.fast_dev_run=true" not in argv and "--trainer.max_epochs=1" in argv
    assert "--trainer.limit_train_batches=1" in argv and "--data.limit_per_class=4" in argv
    copy = workflow.copy_step(tmp_path / "seg.ckpt", "segmenter-x")
    assert copy.argv[:2] == ["workflow", "remove-background"]
    assert {"--image-size=32", "--limit-per-folder=4", "--background=zero"} <= set(copy.argv)
    classifier = workflow.classifier_step(copy.run_dir, copy.run_dir.name)
    assert classifier.argv[-1] == f"--data.copy_root={copy.run_dir}"
    assert "--model.backbone=resnet18" in classifier.argv
    assert "--trainer.fast_dev_run=true" in classifier.argv
    folder = tmp_path / "autism-seg-resnet50"
    assert segmenter.run_dir.parent == copy.run_dir.parent == classifier.run_dir.parent == folder


def test_each_step_key_covers_its_inputs(tmp_path: Path) -> None:
    def steps(*extra: str) -> tuple[Path, Path, Path]:
        workflow = SegmentThenClassify([*SMALL, *extra], output_dir=tmp_path)
        copy = workflow.copy_step(tmp_path / "seg.ckpt", "segmenter-x")
        classifier = workflow.classifier_step(copy.run_dir, copy.run_dir.name)
        return workflow.segmenter_step().run_dir, copy.run_dir, classifier.run_dir

    segmenter, copy, classifier = steps()
    assert steps("--data.num_workers=3") == (segmenter, copy, classifier)  # speed, not results
    blur = steps("--data.background=blur")
    assert blur[0] == segmenter and blur[1] != copy and blur[2] != classifier
    lr = steps("--model.lr=0.1")
    assert lr[:2] == (segmenter, copy) and lr[2] != classifier
    assert steps("--segmenter.trainer.max_epochs=3")[0] != segmenter
    root = write_autism_folders(tmp_path / "faces", COUNTS)
    own = steps(f"--data.root={root}")
    assert own[0] != segmenter
    cv2.imwrite(str(root / "train" / "autistic" / "extra.jpg"), np.zeros((8, 8, 3), np.uint8))
    assert steps(f"--data.root={root}")[0] != own[0]  # the faces' files are in the key


def test_bad_options_stop_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["--data.segmenter_encoder=resnet18"], "--segmenter.model.encoder_name"),
        ([f"--data.copy_root={tmp_path}"], "set by the workflow"),
        (["--data.image_size=40"], "multiple of 16"),
        (["--segmenter-checkpoint", str(tmp_path / "none.ckpt")], "does not exist"),
        (["--config", "autism-seg-resnet5"], "autism-seg-resnet50"),
    ]
    for argv, message in cases:
        code = workflow_cli.main(["segment-then-classify", f"--output_dir={tmp_path}", *argv])
        assert code == 2, argv
        assert message in capsys.readouterr().err, argv


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "litlab.workflows.steps"]


def test_second_run_reuses_every_step_and_the_report_reads_both_arms(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the steps' processes share two cores
    argv = ["segment-then-classify", *SMALL, "--trainer.fast_dev_run=true"]
    with caplog.at_level(logging.INFO, logger="litlab.workflows.steps"):
        assert workflow_cli.main(argv) == 0, capsys.readouterr()
    assert sum(": starting in " in m for m in _messages(caplog)) == 3
    folder = tmp_path / "runs" / "autism-seg-resnet50"
    runs = {p.name.split("-")[0]: p for p in folder.iterdir()}
    assert set(runs) == {"segmenter", "copy", "classifier"}
    assert (runs["segmenter"] / "checkpoints" / "best.ckpt").is_file()
    assert (runs["segmenter"] / "fit.log").is_file() and (runs["classifier"] / "fit.log").is_file()
    stamps = {name: (run / "result.json").stat().st_mtime_ns for name, run in runs.items()}

    # The copy keeps the layout (one batch per folder under fast_dev_run) and nothing outside
    # the predicted face.
    copy_images = runs["copy"] / "images"
    assert len(index_autism_layout(copy_images).pooled()[0]) == 16
    for image_path in sorted(copy_images.rglob("*.png")):
        rel = image_path.relative_to(copy_images)
        mask = cv2.imread(str(runs["copy"] / "masks" / rel), cv2.IMREAD_GRAYSCALE)
        image = cv2.imread(str(image_path))
        assert image.shape[:2] == mask.shape == (32, 32) and not image[mask == 0].any()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="litlab.workflows.steps"):
        assert workflow_cli.main(argv) == 0
    messages = _messages(caplog)
    assert not any(": starting in " in m for m in messages), messages
    assert sum("reused (finished)" in m for m in messages) == 3
    assert {n: (r / "result.json").stat().st_mtime_ns for n, r in runs.items()} == stamps
    assert "reused" in capsys.readouterr().out

    # The raw arm, fitted as before, and the report over both arms.
    from litlab.cli import run_cli

    raw_args = [a for a in SMALL if not a.startswith("--segmenter.")]
    raw = run_cli(["fit", "--config", str(PRESET_DIR / "autism-resnet50.yaml"), *raw_args,
                   "--trainer.fast_dev_run=true"])  # fmt: skip
    seg = json.loads((runs["classifier"] / "test_confusion.json").read_text())
    assert seg["data"]["arm"] == "segmented" and seg["data"]["copy_root"] == str(runs["copy"])
    raw_test = raw.datamodule.describe()["test_paths"]
    assert raw_test == seg["data"]["source_test_paths"]  # both arms test the same faces
    assert litlab.report.main(["autism", "--runs", "runs", "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "83.7%" in out and "85.9%" in out and runs["classifier"].name in out
    assert (tmp_path / "rep" / "examples-raw-mask-segmented.png").is_file()

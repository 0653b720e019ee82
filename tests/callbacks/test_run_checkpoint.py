"""RunCheckpoint: best-model tracking that survives a resume, a moved folder, and NaN scores."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from litlab.callbacks.run_checkpoint import RunCheckpoint, run_checkpoints

from tests.callbacks.scripted_metric import ScriptedMetric


def _fit(root: Path, scores: list[float], callbacks: list[pl.Callback], ckpt_path=None):
    trainer = pl.Trainer(
        max_epochs=len(scores),
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
        callbacks=callbacks,
    )
    trainer.fit(ScriptedMetric("val/acc", scores), ckpt_path=ckpt_path)
    return trainer


def _epoch(path: str | Path) -> int:
    return int(torch.load(path, weights_only=True)["epoch"])


def test_a_non_finite_score_never_becomes_best(tmp_path):
    writers = run_checkpoints(tmp_path / "ckpt", "val/acc", "max")
    _fit(tmp_path, [float("nan"), 0.5, float("inf"), 0.4], writers)
    best = writers[0]
    assert best.best_model_score == pytest.approx(0.5)
    assert _epoch(best.best_model_path) == 1
    assert _epoch(tmp_path / "ckpt/last.ckpt") == 3


def test_no_best_checkpoint_when_every_score_is_nan(tmp_path):
    writers = run_checkpoints(tmp_path / "ckpt", "val/acc", "max")
    _fit(tmp_path, [float("nan")] * 2, writers)
    assert not (tmp_path / "ckpt/best.ckpt").exists()
    assert writers[0].best_model_path == ""


def test_state_key_names_the_role_not_the_settings(tmp_path):
    a = RunCheckpoint("last", dirpath=tmp_path)
    b = RunCheckpoint("last", dirpath=tmp_path, every_n_train_steps=5)
    assert a.state_key == b.state_key == "RunCheckpoint{'role': 'last'}"
    assert RunCheckpoint("best", dirpath=tmp_path).state_key != a.state_key


def test_resume_in_a_moved_folder_keeps_the_best(tmp_path):
    """Best at epoch 1; the run folder moves; the resumed epochs are worse: best stays epoch 1."""
    first = run_checkpoints(tmp_path / "a/ckpt", "val/acc", "max")
    _fit(tmp_path / "a", [0.3, 0.9, 0.5], first)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")

    again = run_checkpoints(tmp_path / "b/ckpt", "val/acc", "max", every_n_steps=1)
    _fit(tmp_path / "b", [0.3, 0.9, 0.5, 0.6, 0.2], again, tmp_path / "b/ckpt/last.ckpt")
    best = again[0]
    assert Path(best.best_model_path) == tmp_path / "b/ckpt/best.ckpt"
    assert best.best_model_score == pytest.approx(0.9)
    assert _epoch(best.best_model_path) == 1


def test_checkpoints_of_plain_model_checkpoints_are_adopted(tmp_path):
    """A run started before RunCheckpoint (plain ModelCheckpoint keys) resumes its best too."""
    plain = ModelCheckpoint(
        dirpath=tmp_path / "ckpt",
        filename="best",
        monitor="val/acc",
        mode="max",
        save_top_k=1,
        enable_version_counter=False,
    )
    last = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last", enable_version_counter=False)
    _fit(tmp_path, [0.8, 0.1], [plain, last])

    writers = run_checkpoints(tmp_path / "ckpt", "val/acc", "max")
    _fit(tmp_path, [0.8, 0.1, 0.2], writers, tmp_path / "ckpt/last.ckpt")
    assert writers[0].best_model_score == pytest.approx(0.8)
    assert _epoch(writers[0].best_model_path) == 0
